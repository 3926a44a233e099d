package tracker

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/kadtracker/kadtracker/node/tracker/wire"
	"github.com/kadtracker/kadtracker/records"
)

// liveSource is a LiveSource (as the TSUP overlay and the bridge are).
type liveSource struct {
	mu   sync.Mutex
	live map[records.Key][]Peer
}

func newLiveSource() *liveSource { return &liveSource{live: map[records.Key][]Peer{}} }

func (s *liveSource) LivePeers(key records.Key) []Peer {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.live[key])
}

func (s *liveSource) set(key records.Key, peers ...Peer) {
	s.mu.Lock()
	s.live[key] = peers
	s.mu.Unlock()
}

// Live peers reach the next answer at once, not after the cache's TTL, and
// follow the same rules as looked-up peers: no seeds to seeds, never the
// client itself.
func TestLivePeersBypassTheCache(t *testing.T) {
	src := newLiveSource()
	cfg := testConfig()
	cfg.Live = []LiveSource{src}
	tr := newTracker(t, newFakeNode(), cfg)
	ih := ihash(7)
	key := records.SwarmKey(ih)
	seeder, leecher := "127.0.0.1:7001", "127.0.0.1:7002"

	first, err := tr.announce(t.Context(), treq(ih, seeder, true), nil)
	if err != nil || len(first.peers) != 0 {
		t.Fatalf("first answer %+v, %v", first, err)
	}
	remoteLeecher := netip.MustParseAddrPort("10.1.1.1:6881")
	remoteSeed := netip.MustParseAddrPort("10.1.1.2:6881")
	src.set(key, Peer{Endpoint: remoteLeecher}, Peer{Endpoint: remoteSeed, Seed: true}, Peer{Endpoint: ap(leecher)})

	a, _ := tr.announce(t.Context(), treq(ih, seeder, true), nil)
	if !slices.Equal(a.peers, []netip.AddrPort{remoteLeecher, ap(leecher)}) {
		t.Fatalf("seeder got %v: want the two leechers, not the other seed", a.peers)
	}
	if a.complete != 2 || a.incomplete != 2 {
		t.Fatalf("counts complete=%d incomplete=%d, want 2 and 2", a.complete, a.incomplete)
	}
	a, _ = tr.announce(t.Context(), treq(ih, leecher, false), nil)
	if slices.Contains(a.peers, ap(leecher)) || !slices.Contains(a.peers, remoteSeed) || !slices.Contains(a.peers, ap(seeder)) {
		t.Fatalf("leecher got %v", a.peers)
	}
}

// Every live source is read, in either order. (The wrapper chain this
// replaced passed LivePeers on in one order only: swapped, the classic
// trackers' peers vanished.)
func TestEveryLiveSourceIsRead(t *testing.T) {
	ih := ihash(8)
	key := records.SwarmKey(ih)
	overlay, bridge := newLiveSource(), newLiveSource()
	fromOverlay, fromBridge := ap("10.2.0.1:6881"), ap("10.3.0.1:6881")
	overlay.set(key, Peer{Endpoint: fromOverlay})
	bridge.set(key, Peer{Endpoint: fromBridge, Seed: true})
	for name, live := range map[string][]LiveSource{
		"overlay first": {overlay, bridge},
		"bridge first":  {bridge, overlay},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := testConfig()
			cfg.Live = live
			tr := newTracker(t, newFakeNode(), cfg)
			a, err := tr.announce(t.Context(), treq(ih, "127.0.0.1:7001", false), nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(a.peers) != 2 || !slices.Contains(a.peers, fromOverlay) || !slices.Contains(a.peers, fromBridge) {
				t.Fatalf("answer %v: want both sources' peers", a.peers)
			}
			if a.complete != 1 || a.incomplete != 2 {
				t.Fatalf("complete=%d incomplete=%d, want 1 and 2", a.complete, a.incomplete)
			}
		})
	}
}

func TestConfigValidateNilParts(t *testing.T) {
	cfg := testConfig()
	cfg.Live = []LiveSource{nil}
	cfg.Listeners = []Listener{nil}
	err := cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), "Live[0]") || !strings.Contains(err.Error(), "Listeners[0]") {
		t.Fatalf("Validate: %v", err)
	}
}

// recListener records its calls in the fake node's call log, so their
// order against the node's calls shows; it fails every Announce with err.
type recListener struct {
	n    *fakeNode
	name string
	err  error
}

func (l *recListener) Announce(key records.Key, port uint16, seed bool) error {
	l.n.record(call{op: l.name + " announce", key: key, port: port, seed: seed})
	return l.err
}

func (l *recListener) Withdraw(key records.Key) {
	l.n.record(call{op: l.name + " withdraw", key: key})
}

// warnCounter is a slog handler counting Warn records.
type warnCounter struct{ n atomic.Int64 }

func (h *warnCounter) Enabled(context.Context, slog.Level) bool { return true }
func (h *warnCounter) Handle(_ context.Context, r slog.Record) error {
	if r.Level == slog.LevelWarn {
		h.n.Add(1)
	}
	return nil
}
func (h *warnCounter) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *warnCounter) WithGroup(string) slog.Handler      { return h }

// A listener that fails every announce does not stop, fail or repeat the
// DHT publish, nor the other listeners; its errors are counted and logged
// once per listenerWarnEvery. Listeners hear each change once, before the
// node, and a Withdraw even when the node never published.
func TestFailingListener(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newFakeNode()
		failing := &recListener{n: n, name: "failing", err: errors.New("overlay is full")}
		ok := &recListener{n: n, name: "ok"}
		warns := &warnCounter{}
		cfg := testConfig()
		cfg.Listeners = []Listener{failing, ok}
		cfg.Logger = slog.New(warns)
		tr, err := New(n, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer tr.Close()

		for i := range 3 {
			if _, err := tr.announce(t.Context(), treq(ihash(byte(10*i)), "127.0.0.1:7001", false), nil); err != nil {
				t.Fatal(err)
			}
		}
		synctest.Wait()
		if got := len(n.ops("announce")); got != 3 {
			t.Fatalf("%d node announces, want 3 despite the failing listener", got)
		}
		for _, l := range []string{"failing", "ok"} {
			if got := len(n.ops(l + " announce")); got != 3 {
				t.Fatalf("listener %s heard %d announces, want 3", l, got)
			}
		}
		if st := tr.Stats(); st.ListenerErrors != 3 || st.Published != 3 {
			t.Fatalf("ListenerErrors %d, Published %d; want 3 and 3", st.ListenerErrors, st.Published)
		}
		if got := warns.n.Load(); got != 1 {
			t.Fatalf("%d warnings for 3 listener errors within a minute, want 1", got)
		}
		// Listeners hear first, then the node.
		key := records.SwarmKey(ihash(0))
		var order []string
		n.mu.Lock()
		for _, c := range n.calls {
			if c.key == key && c.op != "lookup" {
				order = append(order, c.op)
			}
		}
		n.mu.Unlock()
		if !slices.Equal(order, []string{"failing announce", "ok announce", "announce"}) {
			t.Fatalf("call order %v", order)
		}

		// A re-announce with no change is not heard again; a change of the
		// seed flag is, once.
		tr.announce(t.Context(), treq(ihash(0), "127.0.0.1:7001", false), nil)
		tr.announce(t.Context(), treq(ihash(0), "127.0.0.1:7001", true), nil)
		tr.announce(t.Context(), treq(ihash(0), "127.0.0.1:7001", true), nil)
		synctest.Wait()
		if got := len(n.ops("ok announce")); got != 4 {
			t.Fatalf("listener heard %d announces, want 4", got)
		}

		// The node fails: it is retried with backoff, the listeners are
		// not called again; when the client stops, they hear a Withdraw
		// although the node never published.
		n.mu.Lock()
		n.announceErr = errors.New("no DHT peers")
		n.mu.Unlock()
		ih := ihash(99)
		tr.announce(t.Context(), treq(ih, "127.0.0.1:7001", false), nil)
		time.Sleep(time.Minute) // sweeps retry the node
		synctest.Wait()
		if got := countKey(n.ops("announce"), ih); got < 2 {
			t.Fatalf("node announce tried %d times, want retries", got)
		}
		if got := countKey(n.ops("ok announce"), ih); got != 1 {
			t.Fatalf("listener heard %d announces of a swarm the node retries, want 1", got)
		}
		stop := treq(ih, "127.0.0.1:7001", false)
		stop.event = wire.EventStopped
		tr.announce(t.Context(), stop, nil)
		synctest.Wait()
		if countKey(n.ops("ok withdraw"), ih) != 1 || countKey(n.ops("failing withdraw"), ih) != 1 {
			t.Fatalf("listeners not told of the withdraw: %v", n.ops("ok withdraw"))
		}
		// Past listenerWarnEvery a new error is logged again.
		tr.announce(t.Context(), treq(ihash(100), "127.0.0.1:7001", false), nil)
		synctest.Wait()
		if got := warns.n.Load(); got != 2 {
			t.Fatalf("%d warnings, want 2 (one per minute)", got)
		}
	})
}

func countKey(cs []call, ih [20]byte) int {
	n := 0
	for _, c := range cs {
		if c.key == records.SwarmKey(ih) {
			n++
		}
	}
	return n
}
