package bridge

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/kadtracker/kadtracker/node/tracker"
	"github.com/kadtracker/kadtracker/node/tracker/wire"
	"github.com/kadtracker/kadtracker/records"
)

// fakeClock is a clock the test moves.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// recorder is an HTTP tracker that records announces and answers with
// what answer returns.
type recorder struct {
	mu     sync.Mutex
	got    []wire.AnnounceRequest
	answer func(ar wire.AnnounceRequest) []byte
}

func (r *recorder) requests() []wire.AnnounceRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]wire.AnnounceRequest(nil), r.got...)
}

func newRecorder(t *testing.T, answer func(ar wire.AnnounceRequest) []byte) (*recorder, string) {
	r := &recorder{answer: answer}
	srv := httpTracker(t, func(w http.ResponseWriter, _ *http.Request, ar wire.AnnounceRequest) {
		r.mu.Lock()
		r.got = append(r.got, ar)
		f := r.answer
		r.mu.Unlock()
		w.Write(f(ar))
	})
	return r, srv.URL + "/announce"
}

func peersAnswer(interval time.Duration, peers ...string) func(wire.AnnounceRequest) []byte {
	return func(wire.AnnounceRequest) []byte {
		resp := wire.AnnounceResponse{Interval: interval, Complete: 1, ExternalIP: netip.MustParseAddr("192.0.2.1")}
		for _, p := range peers {
			resp.Peers = append(resp.Peers, wire.Peer{Addr: netip.MustParseAddrPort(p)})
		}
		return wire.AppendAnnounceResponse(nil, &resp, wire.FormCompact)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func newTestAnnouncer(t *testing.T, clock *fakeClock, trackers ...string) *Announcer {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Trackers = trackers
	cfg.Clock = clock.Now
	cfg.RequestTimeout = 2 * time.Second
	cfg.UDPRetransmit = 50 * time.Millisecond
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

func TestAnnouncerLifecycle(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1e9, 0)}
	rec, url := newRecorder(t, peersAnswer(10*time.Minute, "10.0.0.1:1", "192.0.2.1:6881", "0.0.0.0:5", "10.0.0.2:0"))
	a := newTestAnnouncer(t, clock, url)
	if err := a.Announce(testIH, 6881, false); err != nil {
		t.Fatal(err)
	}
	a.Settle(t.Context(), testIH, 5*time.Second)
	got := rec.requests()
	if len(got) != 1 || got[0].Event != wire.EventStarted || got[0].Port != 6881 || got[0].Left == 0 || string(got[0].PeerID[:8]) != "-KT0100-" {
		t.Fatalf("tracker got %+v", got)
	}
	// Not the client itself (BEP 24 says we are 192.0.2.1), nor the
	// undialable peers.
	if ps := a.Peers(testIH); len(ps) != 1 || ps[0].Addr != netip.MustParseAddrPort("10.0.0.1:1") || ps[0].Tracker != url {
		t.Fatalf("peers %+v", ps)
	}
	// The tracker's interval is honoured: nothing before it, one after.
	clock.Add(9 * time.Minute)
	time.Sleep(3 * tick)
	if n := len(rec.requests()); n != 1 {
		t.Fatalf("%d announces before the interval", n)
	}
	clock.Add(time.Minute)
	waitFor(t, "the re-announce", func() bool { return len(rec.requests()) == 2 })
	if ev := rec.requests()[1].Event; ev != wire.EventNone {
		t.Errorf("re-announce with event %v", ev)
	}
	// The client completes: completed goes out at once, as a seed.
	a.Announce(testIH, 6881, true)
	waitFor(t, "completed", func() bool { return len(rec.requests()) == 3 })
	if r := rec.requests()[2]; r.Event != wire.EventCompleted || r.Left != 0 {
		t.Errorf("completed announce %+v", r)
	}
	st := a.State()
	if len(st) != 1 || !st[0].Seed || st[0].Trackers[0].Interval != 10*time.Minute || st[0].Trackers[0].Peers != 2 ||
		st[0].Trackers[0].LastSuccess.IsZero() || st[0].Trackers[0].Error != "" {
		t.Errorf("state %+v", st)
	}
	// The client stops: stopped goes out, and the swarm is forgotten.
	a.Withdraw(testIH)
	waitFor(t, "stopped", func() bool { return len(rec.requests()) == 4 })
	if r := rec.requests()[3]; r.Event != wire.EventStopped || r.NumWant != 0 {
		t.Errorf("stopped announce %+v", r)
	}
	waitFor(t, "the swarm to go", func() bool { return len(a.State()) == 0 })
	if ps := a.Peers(testIH); ps != nil {
		t.Errorf("peers after withdraw: %v", ps)
	}
}

// A tracker that refuses is retried with a growing backoff, and its reason
// is in the state; one that is down does not delay the others' peers.
func TestAnnouncerFailures(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1e9, 0)}
	failing, failURL := newRecorder(t, func(wire.AnnounceRequest) []byte { return wire.AppendFailure(nil, "not whitelisted") })
	silent := newUDPTracker(t)
	silent.silent.Store(true)
	_, okURL := newRecorder(t, peersAnswer(time.Minute, "10.0.0.1:1"))
	a := newTestAnnouncer(t, clock, failURL, silent.URL(), okURL)
	a.Announce(testIH, 6881, false)
	// The good tracker's peers are there long before the silent one gives up.
	waitFor(t, "peers", func() bool { return len(a.Peers(testIH)) == 1 })
	a.Settle(t.Context(), testIH, 5*time.Second)
	st := a.State()[0].Trackers
	if st[0].Error != "tracker failure: not whitelisted" || !st[0].Failure || st[0].Fails != 1 {
		t.Errorf("failing tracker state %+v", st[0])
	}
	if st[1].Error == "" || st[1].Failure {
		t.Errorf("silent tracker state %+v", st[1])
	}
	if wait := st[0].NextAnnounce.Sub(clock.Now()); wait < 13*time.Second || wait > 15*time.Second {
		t.Errorf("first retry in %v, want about RetryFirst", wait)
	}
	clock.Add(15 * time.Second)
	waitFor(t, "the retry", func() bool { return len(failing.requests()) == 2 })
	waitFor(t, "the second failure", func() bool { return a.State()[0].Trackers[0].Fails == 2 })
	if wait := a.State()[0].Trackers[0].NextAnnounce.Sub(clock.Now()); wait < 27*time.Second || wait > 30*time.Second {
		t.Errorf("second retry in %v, want twice RetryFirst", wait)
	}
	// The failing tracker keeps sending started until it takes it.
	if r := failing.requests()[1]; r.Event != wire.EventStarted {
		t.Errorf("retry carries %v", r.Event)
	}
}

func TestAnnouncerFull(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Trackers = []string{"http://127.0.0.1:1/announce"}
	cfg.MaxSwarms = 1
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if err := a.Announce([20]byte{1}, 1, false); err != nil {
		t.Fatal(err)
	}
	if err := a.Announce([20]byte{2}, 1, false); err == nil {
		t.Fatal("second swarm accepted beyond MaxSwarms")
	}
	if err := a.Announce([20]byte{1}, 2, true); err != nil {
		t.Fatalf("updating the bridged swarm: %v", err)
	}
}

// fakeNode is a tracker.Node with no DHT: the front's answers then hold
// its own clients only.
type fakeNode struct{}

func (fakeNode) Announce(context.Context, records.Key, uint16, bool) error { return nil }
func (fakeNode) Withdraw(context.Context, records.Key) error               { return nil }
func (fakeNode) Lookup(context.Context, records.Key, int) (tracker.Swarm, error) {
	return tracker.Swarm{}, nil
}

// The client against kadtracker's own tracker front, over HTTP and UDP: two
// announcers for clients on different ports find each other.
func TestAgainstTrackerFront(t *testing.T) {
	cfg := tracker.DefaultConfig()
	cfg.FirstLookupWait = 0
	front, err := tracker.New(fakeNode{}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer front.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	wg.Go(func() { front.Serve(ctx, ln) })
	wg.Go(func() { front.ServeUDP(ctx, pc) })
	for _, url := range []string{"http://" + ln.Addr().String() + "/announce", "udp://" + pc.LocalAddr().String() + "/announce"} {
		t.Run(url[:3], func(t *testing.T) {
			c := newTestClient(t, url)
			ih := [20]byte{byte(len(url))}
			r := testRequest(1001)
			r.InfoHash = ih
			if _, err := c.Announce(t.Context(), r); err != nil {
				t.Fatal(err)
			}
			r.Port = 1002
			resp, err := c.Announce(t.Context(), r)
			if err != nil {
				t.Fatal(err)
			}
			if len(resp.Peers) != 1 || resp.Peers[0] != netip.MustParseAddrPort("127.0.0.1:1001") || resp.Interval <= 0 {
				t.Errorf("second client got %+v", resp)
			}
			files, err := c.Scrape(t.Context(), [][20]byte{ih})
			if err != nil || len(files) != 1 || files[0].Incomplete != 2 {
				t.Errorf("scrape: %+v %v", files, err)
			}
		})
	}
}
