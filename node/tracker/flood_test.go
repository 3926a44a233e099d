package tracker

import (
	"context"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kadtracker/kadtracker/node/tracker/wire"
	"github.com/kadtracker/kadtracker/records"
)

// gaugedNode is a fakeNode that measures how many calls run at once.
type gaugedNode struct {
	*fakeNode
	delay         time.Duration
	running, peak atomic.Int64
}

func (n *gaugedNode) enter() func() {
	r := n.running.Add(1)
	for p := n.peak.Load(); r > p && !n.peak.CompareAndSwap(p, r); p = n.peak.Load() {
	}
	time.Sleep(n.delay)
	return func() { n.running.Add(-1) }
}

func (n *gaugedNode) Announce(ctx context.Context, key records.Key, port uint16, seed bool) error {
	defer n.enter()()
	return n.fakeNode.Announce(ctx, key, port, seed)
}

func (n *gaugedNode) Withdraw(ctx context.Context, key records.Key) error {
	defer n.enter()()
	return n.fakeNode.Withdraw(ctx, key)
}

func (n *gaugedNode) Lookup(ctx context.Context, key records.Key, want int) (Swarm, error) {
	defer n.enter()()
	return n.fakeNode.Lookup(ctx, key, want)
}

// TestUDPFlood: one client floods the UDP front with announces for random
// infohashes. The swarms kept stay within CacheSize and the calls into the
// node within NodeConcurrency; refusals and deferred calls are counted; the
// honest client's swarm stays published and its announces still get peers.
func TestUDPFlood(t *testing.T) {
	fn := &gaugedNode{fakeNode: newFakeNode(), delay: 20 * time.Millisecond}
	honest := ihash(1)
	fn.set(honest, Swarm{Peers: []Peer{{Endpoint: ap("192.0.2.5:51413")}, {Endpoint: ap("192.0.2.6:6881"), Seed: true}}})
	cfg := testConfig()
	cfg.CacheSize = 300
	cfg.NodeConcurrency = 16
	cfg.LookupConcurrency = 4
	tr := newTracker(t, fn, cfg)
	addr := serveUDP(t, tr, "udp4")

	good := dialUDP(t, addr)
	conn := good.connect()
	if resp := good.announce(uareq(conn, honest, 6881, 100), false); len(resp.Peers) != 2 {
		t.Fatalf("honest announce before the flood: %d peers", len(resp.Peers))
	}
	eventually(t, "the honest swarm published", func() bool { return len(fn.ops("announce")) == 1 })

	// The flood: 20000 announces for random infohashes, as fast as the
	// socket takes them; the answers are read and thrown away.
	flood := dialUDP(t, addr)
	fconn := flood.connect()
	var answers atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		buf := make([]byte, 2048)
		for {
			flood.conn.SetReadDeadline(time.Now().Add(time.Second))
			if _, err := flood.conn.Read(buf); err != nil {
				return
			}
			answers.Add(1)
		}
	})
	baseline := runtime.NumGoroutine()
	var peakG int
	rng := rand.New(rand.NewPCG(1, 2))
	var pkt []byte
	for i := range 20000 {
		var ih [20]byte
		for j := range ih {
			ih[j] = byte(rng.Uint32())
		}
		r := uareq(fconn, ih, 7000, 100)
		r.TransactionID = uint32(i)
		pkt = wire.AppendUDPAnnounceRequest(pkt[:0], &r)
		if _, err := flood.conn.Write(pkt); err != nil {
			t.Fatal(err)
		}
		if i%500 == 0 {
			peakG = max(peakG, runtime.NumGoroutine())
		}
	}
	wg.Wait()

	st := tr.Stats()
	t.Logf("flood: %d answers; front %+v; node calls peak %d; goroutines %d → peak %d", answers.Load(), st, fn.peak.Load(), baseline, peakG)
	if st.Swarms > cfg.CacheSize {
		t.Errorf("%d swarms kept, CacheSize %d", st.Swarms, cfg.CacheSize)
	}
	if p := fn.peak.Load(); p > int64(cfg.NodeConcurrency) {
		t.Errorf("%d node calls at once, NodeConcurrency %d", p, cfg.NodeConcurrency)
	}
	if st.Refused == 0 || st.Deferred == 0 || st.UDPAnnounceFailures == 0 {
		t.Errorf("refusals not counted: %+v", st)
	}
	if limit := baseline + cfg.NodeConcurrency + maxUDPWaiting + 64; peakG > limit {
		t.Errorf("%d goroutines during the flood, want at most %d", peakG, limit)
	}

	// The honest client's swarm is still published, and answered.
	if w := fn.ops("withdraw"); len(w) != 0 {
		for _, c := range w {
			if c.key == records.SwarmKey(honest) {
				t.Fatal("the honest swarm was withdrawn")
			}
		}
	}
	resp := good.announce(uareq(good.connect(), honest, 6881, 100), false)
	if len(resp.Peers) != 2 {
		t.Fatalf("honest announce after the flood: %d peers", len(resp.Peers))
	}
	got := map[netip.AddrPort]bool{}
	for _, p := range resp.Peers {
		got[p] = true
	}
	if !got[ap("192.0.2.5:51413")] || !got[ap("192.0.2.6:6881")] {
		t.Fatalf("honest announce after the flood got %v", resp.Peers)
	}
}
