package tracker

import (
	"context"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kadtracker/kadtracker/records"
)

// fakeNode is an in-memory Node: lookups answer from swarms after
// lookupDelay, calls are recorded.
type fakeNode struct {
	mu          sync.Mutex
	swarms      map[records.Key]Swarm
	lookupDelay time.Duration
	lookupErr   error
	announceErr error
	calls       []call
}

type call struct {
	op   string // "announce", "withdraw", "lookup"
	key  records.Key
	port uint16
	seed bool
	want int
}

func newFakeNode() *fakeNode { return &fakeNode{swarms: map[records.Key]Swarm{}} }

func (n *fakeNode) record(c call) {
	n.mu.Lock()
	n.calls = append(n.calls, c)
	n.mu.Unlock()
}

func (n *fakeNode) Announce(ctx context.Context, key records.Key, port uint16, seed bool) error {
	n.record(call{op: "announce", key: key, port: port, seed: seed})
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.announceErr
}

func (n *fakeNode) Withdraw(ctx context.Context, key records.Key) error {
	n.record(call{op: "withdraw", key: key})
	return nil
}

func (n *fakeNode) Lookup(ctx context.Context, key records.Key, want int) (Swarm, error) {
	n.record(call{op: "lookup", key: key, want: want})
	n.mu.Lock()
	d, err, sw := n.lookupDelay, n.lookupErr, n.swarms[key]
	n.mu.Unlock()
	if d > 0 {
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return Swarm{}, ctx.Err()
		}
	}
	if err != nil {
		return Swarm{}, err
	}
	sw.Peers = slices.Clone(sw.Peers)
	return sw, nil
}

func (n *fakeNode) set(ih [20]byte, sw Swarm) {
	n.mu.Lock()
	n.swarms[records.SwarmKey(ih)] = sw
	n.mu.Unlock()
}

// ops returns the recorded calls of kind op.
func (n *fakeNode) ops(op string) []call {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []call
	for _, c := range n.calls {
		if c.op == op {
			out = append(out, c)
		}
	}
	return out
}

// eventually polls cond for up to 5 s (socket tests, real time).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// fakeClock is an injectable clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func testConfig() Config {
	cfg := DefaultConfig()
	// cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return cfg
}

func newTracker(t *testing.T, n Node, cfg Config) *Tracker {
	t.Helper()
	tr, err := New(n, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

func ihash(b byte) [20]byte {
	var h [20]byte
	for i := range h {
		h[i] = b + byte(i)
	}
	return h
}

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }
