package tracker

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/kadtracker/kadtracker/node/tracker/wire"
	"github.com/kadtracker/kadtracker/records"
)

func treq(ih [20]byte, client string, seed bool) *request {
	return &request{infohash: ih, client: ap(client), event: wire.EventStarted, seed: seed, numwant: -1}
}

func TestConfigValidate(t *testing.T) {
	cfg := DefaultConfig()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	cfg.Interval = time.Hour // ClientTimeout now below two intervals
	cfg.MinInterval = 0
	cfg.MaxNumwant = 0
	cfg.Clock = nil
	cfg.Logger = nil
	err := cfg.Validate()
	for _, want := range []string{"MinInterval", "MaxNumwant", "DefaultNumwant", "ClientTimeout", "Clock", "Logger"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate does not report %s: %v", want, err)
		}
	}
	if _, err := New(newFakeNode(), cfg); err == nil {
		t.Error("New accepted a bad config")
	}
	if _, err := New(nil, DefaultConfig()); err == nil {
		t.Error("New accepted a nil node")
	}
}

// The first announce of a swarm waits for its lookup, but no longer than
// FirstLookupWait; then it answers with a short interval.
func TestFirstLookupWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newFakeNode()
		tr, err := New(n, testConfig())
		if err != nil {
			t.Fatal(err)
		}
		defer tr.Close()
		ih := ihash(1)
		n.set(ih, Swarm{Peers: []Peer{{Endpoint: ap("192.0.2.1:6881"), Seed: true}}})

		// Fast lookup: the answer waits for it and holds the peer.
		n.lookupDelay = 300 * time.Millisecond
		start := time.Now()
		a, err := tr.announce(t.Context(), treq(ih, "127.0.0.1:7000", false), nil)
		if err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d != 300*time.Millisecond || len(a.peers) != 1 || a.interval != 120*time.Second || a.warning != "" {
			t.Fatalf("after %v: %+v", d, a)
		}

		// Slow lookup: the answer comes at FirstLookupWait, empty and short.
		n.lookupDelay = 10 * time.Second
		start = time.Now()
		a, err = tr.announce(t.Context(), treq(ihash(2), "127.0.0.1:7000", false), nil)
		if err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d != 1500*time.Millisecond || len(a.peers) != 0 || a.interval != 15*time.Second || a.minInterval != 15*time.Second || a.warning == "" {
			t.Fatalf("after %v: %+v", d, a)
		}
		// A seed's re-announce while the lookup runs is answered at once.
		start = time.Now()
		tr.announce(t.Context(), treq(ihash(2), "127.0.0.1:7001", true), nil)
		if d := time.Since(start); d != 1500*time.Millisecond {
			// It waits too: nothing is cached yet for anyone.
			t.Fatalf("second first-announce answered after %v", d)
		}
		time.Sleep(7 * time.Second) // the lookup, started at 0.3 s, ends
		synctest.Wait()
		// Within FreshFor of the lookup, the cache answers at once.
		start = time.Now()
		a, _ = tr.announce(t.Context(), treq(ihash(2), "127.0.0.1:7001", true), nil)
		if d := time.Since(start); d != 0 || a.interval != 120*time.Second || a.warning != "" {
			t.Fatalf("after the lookup: %v %+v", d, a)
		}
		if got := len(n.ops("lookup")); got != 2 {
			t.Fatalf("%d lookups, want one per swarm", got)
		}
	})
}

// Concurrent first announces of one swarm share one lookup.
func TestLookupShared(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newFakeNode()
		n.lookupDelay = 100 * time.Millisecond
		tr, _ := New(n, testConfig())
		defer tr.Close()
		var wg sync.WaitGroup
		for i := range 10 {
			wg.Go(func() {
				tr.announce(t.Context(), treq(ihash(1), "127.0.0.1:"+strconv.Itoa(7000+i), false), nil)
			})
		}
		wg.Wait()
		synctest.Wait()
		if got := len(n.ops("lookup")); got != 1 {
			t.Fatalf("%d lookups", got)
		}
		// One Announce: the first client's port, kept while it announces.
		if a := n.ops("announce"); len(a) != 1 {
			t.Fatalf("announces %+v", a)
		}
	})
}

// A leecher with no peers re-announcing after ShortInterval triggers a new
// lookup and waits for it: the seeder that appeared meanwhile is in the
// answer.
func TestStarvingLeecherRefreshes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newFakeNode()
		tr, _ := New(n, testConfig())
		defer tr.Close()
		ih := ihash(3)
		a, _ := tr.announce(t.Context(), treq(ih, "127.0.0.1:7000", false), nil)
		if len(a.peers) != 0 || a.interval != 15*time.Second {
			t.Fatalf("first %+v", a)
		}
		n.set(ih, Swarm{Seeds: 1, Peers: []Peer{{Endpoint: ap("192.0.2.1:6881"), Seed: true}}})
		n.lookupDelay = 200 * time.Millisecond
		time.Sleep(a.interval)
		start := time.Now()
		a, _ = tr.announce(t.Context(), treq(ih, "127.0.0.1:7000", false), nil)
		if d := time.Since(start); d != 200*time.Millisecond || len(a.peers) != 1 || a.interval != 120*time.Second || a.complete != 1 || a.incomplete != 1 {
			t.Fatalf("after %v: %+v", d, a)
		}
	})
}

// Clients that fall silent lapse after ClientTimeout, and the node withdraws
// the swarm; announcing keeps them alive. Time is the bubble's.
func TestLapse(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newFakeNode()
		cfg := testConfig()
		tr, _ := New(n, cfg)
		defer tr.Close()
		ih := ihash(4)
		tr.announce(t.Context(), treq(ih, "127.0.0.1:7000", true), nil)
		time.Sleep(cfg.ClientTimeout - time.Minute)
		tr.announce(t.Context(), treq(ih, "127.0.0.1:7000", true), nil) // still here
		time.Sleep(cfg.ClientTimeout - sweepEvery)
		synctest.Wait()
		if w := n.ops("withdraw"); len(w) != 0 {
			t.Fatalf("withdrawn while announcing: %+v", w)
		}
		time.Sleep(2 * sweepEvery)
		synctest.Wait()
		if w := n.ops("withdraw"); len(w) != 1 || w[0].key != records.SwarmKey(ih) {
			t.Fatalf("withdraws %+v", w)
		}
		if st := tr.Stats(); st.Lapsed != 1 || st.Clients != 0 || st.Published != 0 {
			t.Fatalf("stats %+v", st)
		}
		if a := n.ops("announce"); len(a) != 1 {
			t.Fatalf("announces %+v", a)
		}
		// An idle swarm is forgotten after another ClientTimeout.
		time.Sleep(cfg.ClientTimeout + sweepEvery)
		synctest.Wait()
		if st := tr.Stats(); st.Swarms != 0 {
			t.Fatalf("stats %+v", st)
		}
	})
}

// The same lapse with an injected clock and the sweep called directly.
func TestLapseInjectedClock(t *testing.T) {
	n := newFakeNode()
	clk := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	cfg := testConfig()
	cfg.Clock = clk.Now
	tr := newTracker(t, n, cfg)
	ih := ihash(5)
	tr.announce(t.Context(), treq(ih, "127.0.0.1:7000", false), nil)
	tr.announce(t.Context(), treq(ih, "127.0.0.1:7001", false), nil)
	eventually(t, "announce", func() bool { return len(n.ops("announce")) == 1 })
	clk.Advance(cfg.ClientTimeout / 2)
	tr.announce(t.Context(), treq(ih, "127.0.0.1:7001", false), nil)
	clk.Advance(cfg.ClientTimeout/2 + time.Second)
	tr.sweep() // 7000 lapses, 7001 stays: re-published with its port
	eventually(t, "re-announce", func() bool { return len(n.ops("announce")) == 2 })
	if a := n.ops("announce")[1]; a.port != 7001 {
		t.Fatalf("re-announce %+v", a)
	}
	if len(n.ops("withdraw")) != 0 {
		t.Fatal("withdrawn while a client remains")
	}
	clk.Advance(cfg.ClientTimeout)
	tr.sweep()
	eventually(t, "withdraw", func() bool { return len(n.ops("withdraw")) == 1 })
}

// Failed node calls are retried with backoff.
func TestAnnounceRetry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newFakeNode()
		n.announceErr = errors.New("no DHT peers yet")
		tr, _ := New(n, testConfig())
		defer tr.Close()
		tr.announce(t.Context(), treq(ihash(6), "127.0.0.1:7000", true), nil)
		synctest.Wait()
		time.Sleep(retryFirst + sweepEvery)
		synctest.Wait()
		if got := len(n.ops("announce")); got != 2 {
			t.Fatalf("%d tries", got)
		}
		n.mu.Lock()
		n.announceErr = nil
		n.mu.Unlock()
		time.Sleep(2*retryFirst + sweepEvery)
		synctest.Wait()
		if st := tr.Stats(); st.Published != 1 || st.NodeErrors != 2 {
			t.Fatalf("stats %+v, %d tries", st, len(n.ops("announce")))
		}
		// Published: client announces do not reach the node again.
		tr.announce(t.Context(), treq(ihash(6), "127.0.0.1:7000", true), nil)
		time.Sleep(time.Minute)
		synctest.Wait()
		if got := len(n.ops("announce")); got != 3 {
			t.Fatalf("%d node announces", got)
		}
	})
}

// Swarms with local clients, leeching or seeding, are refreshed in the
// background; a swarm only looked up (port 0) is not.
func TestBackgroundRefresh(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newFakeNode()
		cfg := testConfig()
		tr, _ := New(n, cfg)
		defer tr.Close()
		tr.announce(t.Context(), treq(ihash(7), "127.0.0.1:7000", false), nil)
		tr.announce(t.Context(), treq(ihash(8), "127.0.0.1:7000", true), nil)
		tr.announce(t.Context(), treq(ihash(9), "127.0.0.1:0", false), nil)
		synctest.Wait()
		time.Sleep(cfg.CacheTTL + sweepEvery)
		synctest.Wait()
		lookups := map[records.Key]int{}
		for _, c := range n.ops("lookup") {
			lookups[c.key]++
		}
		leech, seed, none := lookups[records.SwarmKey(ihash(7))], lookups[records.SwarmKey(ihash(8))], lookups[records.SwarmKey(ihash(9))]
		if leech < 2 || seed < 2 || none != 1 {
			t.Fatalf("lookups: leecher swarm %d, seed swarm %d, no client %d", leech, seed, none)
		}
	})
}

func TestClosedTracker(t *testing.T) {
	tr, _ := New(newFakeNode(), testConfig())
	tr.Close()
	if _, err := tr.announce(context.Background(), treq(ihash(1), "127.0.0.1:1", true), nil); reason(err) != "tracker is shutting down" {
		t.Fatalf("announce after close: %v", err)
	}
	if reason(errors.New("secret detail")) != "internal error" {
		t.Fatal("internal error text leaks")
	}
}
