package daemon

import (
	"context"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kadtracker/kadtracker/records"
)

type fakeBridgedNode struct {
	mu    sync.Mutex
	calls []string
	eps   map[records.Key][]netip.AddrPort
}

func (f *fakeBridgedNode) SetBridged(key records.Key, eps []netip.AddrPort) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(eps) == 0 {
		f.calls = append(f.calls, "withdraw")
		delete(f.eps, key)
		return
	}
	f.calls = append(f.calls, "publish")
	f.eps[key] = eps
}

// The publisher publishes the union of its sources once per change and
// withdraws a key when no source has it any more.
func TestBridgedPublisher(t *testing.T) {
	f := &fakeBridgedNode{eps: map[records.Key][]netip.AddrPort{}}
	p := newBridgedPublisher(f, slog.New(slog.DiscardHandler))
	key, err := records.ParseKey("0102030405060708090a0b0c0d0e0f1011121314")
	if err != nil {
		t.Fatal(err)
	}
	a, b := netip.MustParseAddrPort("10.0.0.1:1"), netip.MustParseAddrPort("10.0.0.2:2")
	ctx := context.Background()
	p.Set("tracker", key, []netip.AddrPort{b, a})
	p.Set("public", key, []netip.AddrPort{a})
	p.flush(ctx)
	p.Set("tracker", key, []netip.AddrPort{a, b}) // the same set: nothing to do
	p.flush(ctx)
	if !slices.Equal(f.eps[key], []netip.AddrPort{a, b}) || len(f.calls) != 1 || p.Len() != 1 {
		t.Fatalf("published %v with calls %v", f.eps, f.calls)
	}
	p.Set("tracker", key, nil)
	p.flush(ctx)
	if !slices.Equal(f.eps[key], []netip.AddrPort{a}) {
		t.Fatalf("after one source left: %v", f.eps)
	}
	p.Set("public", key, nil)
	p.flush(ctx)
	if _, ok := f.eps[key]; ok || p.Len() != 0 || f.calls[len(f.calls)-1] != "withdraw" {
		t.Fatalf("after both left: %v, calls %v", f.eps, f.calls)
	}
	// run returns when its context ends.
	rctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := p.run(rctx); err != nil {
		t.Fatal(err)
	}
}

func TestAllowlist(t *testing.T) {
	path := t.TempDir() + "/allow"
	write := func(s string) {
		t.Helper()
		if err := writeFileNewMtime(path, s); err != nil {
			t.Fatal(err)
		}
	}
	write("# comment\n0102030405060708090a0b0c0d0e0f1011121314  # trailing\n\n")
	a, err := loadAllowlist(path, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ih := [20]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20}
	if !a.Allow(ih) || a.Allow([20]byte{}) {
		t.Fatal("allowlist does not hold what the file says")
	}
	write("ffffffffffffffffffffffffffffffffffffffff\n")
	var ones [20]byte
	for i := range ones {
		ones[i] = 0xff
	}
	if err := a.reload(); err != nil || a.Allow(ih) || !a.Allow(ones) {
		t.Fatalf("reload: %v", err)
	}
	write("not hex\n")
	if err := a.reload(); err == nil {
		t.Fatal("a bad line was accepted")
	}
	if a.Allow(ih) {
		t.Fatal("a failed reload changed the list")
	}
}

// writeFileNewMtime writes s to path with a modification time unlike the
// last one, so a reload within the same clock tick sees the change.
func writeFileNewMtime(path, s string) error {
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		return err
	}
	mtimeSeq++
	t := time.Unix(1e9+mtimeSeq, 0)
	return os.Chtimes(path, t, t)
}

var mtimeSeq int64
