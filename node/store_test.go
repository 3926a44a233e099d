package node

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kadtracker/kadtracker/records"
)

// damageStore truncates the MANIFEST of the record store in dataDir.
func damageStore(t *testing.T, dataDir string) {
	t.Helper()
	ms, err := filepath.Glob(filepath.Join(dataDir, storeDir, "MANIFEST-*"))
	if err != nil || len(ms) == 0 {
		t.Fatalf("no MANIFEST: %v", err)
	}
	for _, m := range ms {
		if err := os.Truncate(m, 20); err != nil {
			t.Fatal(err)
		}
	}
}

// A damaged store stops New with one message naming it and what to do;
// with StoreRecovery the node moves it aside, keeps it, and starts empty.
func TestDamagedStore(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	nd, err := New(ctx, loopbackConfig(dir))
	if err != nil {
		t.Fatal(err)
	}
	if err := nd.Close(); err != nil {
		t.Fatal(err)
	}
	damageStore(t, dir)

	_, err = New(ctx, loopbackConfig(dir))
	if !errors.Is(err, records.ErrDamaged) {
		t.Fatalf("New on a damaged store = %v, want ErrDamaged", err)
	}
	t.Logf("New: %v", err)
	for _, want := range []string{filepath.Join(dir, storeDir), "store recovery"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message %q does not say %q", err, want)
		}
	}

	cfg := loopbackConfig(dir)
	cfg.StoreRecovery = true
	nd, err = New(ctx, cfg)
	if err != nil {
		t.Fatalf("New with store recovery: %v", err)
	}
	defer nd.Close()
	st := nd.Stats()
	if st.StoreMovedAside == "" || st.RecordsStored != 0 {
		t.Fatalf("stats after recovery: moved to %q, %d records", st.StoreMovedAside, st.RecordsStored)
	}
	if ms, _ := filepath.Glob(filepath.Join(st.StoreMovedAside, "MANIFEST-*")); len(ms) == 0 {
		t.Errorf("the damaged store was not kept at %s", st.StoreMovedAside)
	}
	// The fresh store works.
	if _, err := nd.Announce(ctx, randomKey(t, rand.New(rand.NewPCG(13, 1)), false), 6881, false); err != nil {
		t.Fatal(err)
	}
}

// A data dir left open to others (0755) is made 0700, and so is the store.
func TestDataDirPrivate(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	nd, err := New(ctx, loopbackConfig(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer nd.Close()
	for _, d := range []string{dir, filepath.Join(dir, storeDir)} {
		fi, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if perm := fi.Mode().Perm(); perm != 0o700 {
			t.Errorf("%s has mode %v, want 0700", d, perm)
		}
	}
}
