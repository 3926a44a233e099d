package records

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// fillClosed writes n records to a store in dir and closes it cleanly:
// pebble flushes them to an sst file and the count checkpoint is exact.
func fillClosed(t *testing.T, dir string, n int) {
	t.Helper()
	s, err := openPebble(dir, Options{}, pebble.NoSync)
	if err != nil {
		t.Fatal(err)
	}
	ids := identities(t, n)
	for i := range n {
		if err := s.Put(context.Background(), seal(t, ids[i], rec(testKey(t, i%50), 1, time.Now().Add(time.Hour)), testIP)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// files returns the paths in dir whose names match.
func files(t *testing.T, dir string, match func(string) bool) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if match(e.Name()) {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	if len(out) == 0 {
		t.Fatalf("no matching file in %s", dir)
	}
	return out
}

func isManifest(name string) bool { return strings.HasPrefix(name, "MANIFEST-") }

// checkDamagedErr checks the one error a damaged store opens with.
func checkDamagedErr(t *testing.T, dir string, err error) {
	t.Helper()
	if !errors.Is(err, ErrDamaged) {
		t.Fatalf("open = %v, want ErrDamaged", err)
	}
	msg := err.Error()
	for _, want := range []string{dir, "move the directory aside"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q does not say %q", msg, want)
		}
	}
	if strings.Count(msg, "\n") > 0 || len(msg) > 600 {
		t.Errorf("message is not one short line: %q", msg)
	}
	t.Logf("message: %s", msg)
}

// A damaged store opens with one error naming it and saying what to do,
// not pebble's fatal log (which ended the process) nor a silent start.
func TestPebbleDamaged(t *testing.T) {
	t.Run("sst block", func(t *testing.T) {
		dir := t.TempDir()
		fillClosed(t, dir, 3000)
		for _, p := range files(t, dir, func(n string) bool { return strings.HasSuffix(n, ".sst") }) {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			for i := len(b) / 3; i < len(b)/3+64; i++ {
				b[i] ^= 0xff
			}
			if err := os.WriteFile(p, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		_, err := OpenPebble(dir, Options{})
		checkDamagedErr(t, dir, err)
	})
	t.Run("MANIFEST truncated", func(t *testing.T) {
		dir := t.TempDir()
		fillClosed(t, dir, 100)
		for _, p := range files(t, dir, isManifest) {
			if err := os.Truncate(p, 20); err != nil {
				t.Fatal(err)
			}
		}
		_, err := OpenPebble(dir, Options{})
		checkDamagedErr(t, dir, err)
	})
}

// A MANIFEST cut short once the WALs it no longer needed are gone opens
// without any error from pebble, and empty: the count checkpoint tells.
// The control, without the checkpoint, opens as if nothing were wrong.
func TestPebbleLostRecords(t *testing.T) {
	for _, checkpoint := range []bool{true, false} {
		t.Run(fmt.Sprintf("checkpoint=%v", checkpoint), func(t *testing.T) {
			const n = 3000
			dir := t.TempDir()
			fillClosed(t, dir, n)
			for _, p := range files(t, dir, func(n string) bool { return strings.HasSuffix(n, ".log") }) {
				if err := os.Remove(p); err != nil {
					t.Fatal(err)
				}
			}
			for _, p := range files(t, dir, isManifest) {
				fi, err := os.Stat(p)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.Truncate(p, fi.Size()/2); err != nil {
					t.Fatal(err)
				}
			}
			if !checkpoint {
				if err := os.Remove(filepath.Join(dir, countFile)); err != nil {
					t.Fatal(err)
				}
			}
			s, err := OpenPebble(dir, Options{})
			if err != nil {
				checkDamagedErr(t, dir, err) // also a fine answer, but not what pebble does today
				return
			}
			defer s.Close()
			kept, dropped := s.Loaded()
			t.Logf("kept %d, dropped %d, lost %d", kept, dropped, s.Lost())
			if kept+dropped == n {
				t.Fatal("nothing was lost: the damage did not take, so the test shows nothing")
			}
			if !checkpoint {
				if s.Lost() != 0 {
					t.Fatalf("control: Lost = %d without a checkpoint", s.Lost())
				}
				return
			}
			if s.Lost() != n-kept-dropped {
				t.Errorf("Lost = %d, want %d", s.Lost(), n-kept-dropped)
			}
		})
	}
}

// TestPebbleDamagedWAL: a child process stores records and is killed
// before any flush, so they live in the WAL only; the WAL is then damaged
// in its middle. Reopening either fails with ErrDamaged or reports the
// records lost against the checkpoint the child's Expire wrote.
func TestPebbleDamagedWAL(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	const n = 600
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestPebbleSIGKILLChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), "RECORDS_SIGKILL_DIR="+dir, "RECORDS_SIGKILL_N="+strconv.Itoa(n), "RECORDS_SIGKILL_NOSYNC=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	done := false
	for sc.Scan() {
		if sc.Text() == "stored" {
			done = true
			break
		}
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	if !done {
		t.Fatal("child did not report its records stored")
	}
	var size int64
	for _, p := range files(t, dir, func(n string) bool { return strings.HasSuffix(n, ".log") }) {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) < 1024 {
			continue
		}
		size += int64(len(b))
		for i := len(b) / 2; i < len(b)/2+256; i++ {
			b[i] ^= 0x5a
		}
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if size == 0 {
		t.Fatal("no WAL with records in it")
	}
	s, err := OpenPebble(dir, Options{})
	if err != nil {
		checkDamagedErr(t, dir, err)
		return
	}
	defer s.Close()
	kept, dropped := s.Loaded()
	t.Logf("kept %d, dropped %d, lost %d", kept, dropped, s.Lost())
	if kept+dropped < n && s.Lost() == 0 {
		t.Fatalf("%d of %d records back and none reported lost", kept+dropped, n)
	}
	if kept+dropped == n {
		t.Fatal("nothing was lost: the damage did not take")
	}
}

// The store's directory and files are the daemon user's only, also when
// an earlier version left them open to others.
func TestPebblePermissions(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "records")
	fillClosed(t, dir, 10)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range files(t, dir, func(string) bool { return true }) {
		_ = os.Chmod(p, 0o644)
	}
	s := openPebbleT(t, dir, Options{})
	if err := s.Put(context.Background(), seal(t, newIdentity(t, 99), rec(testKey(t, 1), 1, time.Now().Add(time.Hour)), testIP)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s has mode %v", p, fi.Mode().Perm())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
