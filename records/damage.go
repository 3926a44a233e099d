package records

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/record"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// ErrDamaged is wrapped by OpenPebble's error when the store on disk is
// damaged: a block fails its checksum, the MANIFEST or a WAL does not
// parse. Moving the directory aside and starting empty loses nothing the
// DHT does not give back: announcers republish within their interval.
var ErrDamaged = errors.New("records: store damaged")

// damaged reports whether err, from opening or reading pebble, means the
// files are damaged rather than, say, locked or unreadable for permission.
func damaged(err error, seen *damageSeen) bool {
	_, ok := seen.get()
	return ok || pebble.IsCorruptionError(err) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, record.ErrInvalidChunk) || errors.Is(err, record.ErrZeroedChunk) || errors.Is(err, record.ErrUnexpectedEOF)
}

// pebbleOptions make pebble report damage to us instead of ending the
// process (its default on a corrupt block is a fatal log), keep its own
// logging quiet, and create files 0600 and directories 0700.
func pebbleOptions(corrupt *damageSeen) *pebble.Options {
	return &pebble.Options{
		FS:     privateFS{vfs.Default},
		Logger: quietLogger{corrupt},
		EventListener: &pebble.EventListener{
			DataCorruption: func(info pebble.DataCorruptionInfo) {
				corrupt.set(fmt.Sprintf("%s: %v", filepath.Base(info.Path), info.Details))
			},
			BackgroundError: func(err error) {
				if pebble.IsCorruptionError(err) {
					corrupt.set(err.Error())
				}
			},
		},
	}
}

// damageSeen keeps the first damage pebble reported.
type damageSeen struct {
	mu  sync.Mutex
	why string
}

func (d *damageSeen) set(why string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.why == "" {
		d.why = why
	}
}

func (d *damageSeen) get() (string, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.why, d.why != ""
}

// quietLogger drops pebble's informational lines. Fatalf, which pebble
// calls when it cannot go on, panics instead of exiting, so a caller that
// recovers can say what is wrong; it marks the store damaged.
type quietLogger struct{ corrupt *damageSeen }

func (quietLogger) Infof(string, ...any)  {}
func (quietLogger) Errorf(string, ...any) {}
func (l quietLogger) Fatalf(format string, args ...any) {
	err := fmt.Errorf("pebble: "+format, args...)
	l.corrupt.set(err.Error())
	panic(fmt.Errorf("%w: %w", ErrDamaged, err))
}

// privateFS is the OS file system with the store's files readable by the
// daemon's user only: records name other people's IP addresses.
type privateFS struct{ vfs.FS }

func (p privateFS) Create(name string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := p.FS.Create(name, category)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(name, 0o600); err != nil {
		_ = f.Close()
		return nil, err
	}
	return f, nil
}

func (p privateFS) OpenReadWrite(name string, category vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	f, err := p.FS.OpenReadWrite(name, category, opts...)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(name, 0o600); err != nil { // it may have created name
		_ = f.Close()
		return nil, err
	}
	return f, nil
}

func (p privateFS) MkdirAll(dir string, _ os.FileMode) error { return p.FS.MkdirAll(dir, 0o700) }

// tighten makes an existing store private: the directory 0700, its files
// 0600 (earlier versions left pebble's 0755 and 0644). It reports whether
// it changed anything.
func tighten(dir string) (bool, error) {
	changed := false
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if path == dir && errors.Is(err, fs.ErrNotExist) {
				return filepath.SkipDir
			}
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		want := fs.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		}
		if fi.Mode().Perm()&^want != 0 {
			changed = true
			return os.Chmod(path, fi.Mode().Perm()&want)
		}
		return nil
	})
	return changed, err
}

// countFile holds the store's count checkpoint: a number of records at
// least that many of which are on disk. It lives in the store's
// directory, so it moves with it.
const countFile = "kadtracker-count"

// countSlack is how far below the record count the checkpoint is written
// while the store runs, so deletions rewrite it once per countSlack of
// them rather than each time.
func countSlack(records int) int { return 64 + records/64 }

func readCount(dir string) (int, bool, error) {
	b, err := os.ReadFile(filepath.Join(dir, countFile))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || n < 0 {
		return 0, false, nil // unreadable: no check this time, a fresh one is written
	}
	return n, true, nil
}

// writeCount replaces the checkpoint atomically and durably.
func writeCount(dir string, n int) error {
	path := filepath.Join(dir, countFile)
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.WriteString(strconv.Itoa(n) + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
