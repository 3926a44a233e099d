package tracker

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/kadtracker/kadtracker/node/tracker/wire"
	"github.com/kadtracker/kadtracker/records"
)

// fakeDHT is one in-memory DHT shared by several daemons: Announce stores
// the daemon's record (its address, the client's port), Lookup returns
// every record of the key after lookupDelay, the caller's own marked Local.
type fakeDHT struct {
	mu          sync.Mutex
	records     map[records.Key]map[netip.Addr]Peer // by announcing daemon
	lookupDelay time.Duration
	lookups     int
}

func newFakeDHT(lookupDelay time.Duration) *fakeDHT {
	return &fakeDHT{records: map[records.Key]map[netip.Addr]Peer{}, lookupDelay: lookupDelay}
}

// daemon is the Node of the daemon at addr.
func (d *fakeDHT) daemon(addr string) Node { return &dhtNode{d: d, addr: netip.MustParseAddr(addr)} }

type dhtNode struct {
	d    *fakeDHT
	addr netip.Addr
}

func (n *dhtNode) Announce(ctx context.Context, key records.Key, port uint16, seed bool) error {
	n.d.mu.Lock()
	defer n.d.mu.Unlock()
	if n.d.records[key] == nil {
		n.d.records[key] = map[netip.Addr]Peer{}
	}
	n.d.records[key][n.addr] = Peer{Endpoint: netip.AddrPortFrom(n.addr, port), Seed: seed}
	return nil
}

func (n *dhtNode) Withdraw(ctx context.Context, key records.Key) error {
	n.d.mu.Lock()
	defer n.d.mu.Unlock()
	delete(n.d.records[key], n.addr)
	return nil
}

func (n *dhtNode) Lookup(ctx context.Context, key records.Key, want int) (Swarm, error) {
	n.d.mu.Lock()
	n.d.lookups++
	delay := n.d.lookupDelay
	n.d.mu.Unlock()
	select { // the walk: what it returns is what the DHT held at its end
	case <-time.After(delay):
	case <-ctx.Done():
		return Swarm{}, ctx.Err()
	}
	n.d.mu.Lock()
	defer n.d.mu.Unlock()
	var sw Swarm
	for from, p := range n.d.records[key] {
		p.Local = from == n.addr
		sw.Peers = append(sw.Peers, p)
		if p.Seed {
			sw.Seeds++
		} else {
			sw.Leechers++
		}
	}
	return sw, nil
}

// twoFronts: a seed announces to front A, then a leecher to front B (on
// another host), both over one DHT whose lookups take 120 ms (a lookup's
// six round trips on 10 ms links).
func twoFronts(t *testing.T) (a, b *Tracker, dht *fakeDHT) {
	dht = newFakeDHT(120 * time.Millisecond)
	a = newTracker(t, dht.daemon("10.0.0.1"), testConfig())
	b = newTracker(t, dht.daemon("10.0.0.2"), testConfig())
	ih := ihash(40)
	if ans, err := a.announce(t.Context(), treq(ih, "127.0.0.1:7001", true), nil); err != nil || len(ans.peers) != 0 {
		t.Fatalf("seed's first answer %+v, %v", ans, err)
	}
	synctest.Wait() // A has published the seed
	ans, err := b.announce(t.Context(), treq(ih, "127.0.0.1:7002", false), nil)
	if err != nil || len(ans.peers) != 1 || ans.peers[0] != ap("10.0.0.1:7001") {
		t.Fatalf("leecher's first answer %+v, %v: want the seed", ans, err)
	}
	synctest.Wait() // B has published the leecher
	return a, b, dht
}

// A seed hears of a leecher that announced through another daemon at its
// next re-announce, 3 s later: the stale cache is refreshed and waited for
// whoever asks, not only leechers.
func TestSeedLearnsOfLeecherAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, _, _ := twoFronts(t)
		time.Sleep(3 * time.Second)
		ans, err := a.announce(t.Context(), treq(ihash(40), "127.0.0.1:7001", true), nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(ans.peers) != 1 || ans.peers[0] != ap("10.0.0.2:7002") || ans.incomplete != 1 {
			t.Fatalf("seed's re-announce 3 s later got %v (incomplete %d): want the leecher", ans.peers, ans.incomplete)
		}
	})
}

// The same for a scrape at front A 3 s later.
func TestScrapeCountsAreFresh(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, _, _ := twoFronts(t)
		time.Sleep(3 * time.Second)
		files := scrapeNow(t, a, ihash(40))
		if files[0].Complete != 1 || files[0].Incomplete != 1 {
			t.Fatalf("scrape at A 3 s later: complete %d incomplete %d, want 1 and 1", files[0].Complete, files[0].Incomplete)
		}
	})
}

func scrapeNow(t *testing.T, tr *Tracker, hashes ...[20]byte) []wire.ScrapeFile {
	return tr.scrape(t.Context(), hashes, nil)
}

// Announces of one swarm within FreshFor share one lookup: freshness
// costs at most one lookup per swarm per FreshFor, however many ask.
func TestFreshnessSharesLookups(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, _, dht := twoFronts(t)
		time.Sleep(3 * time.Second)
		dht.mu.Lock()
		before := dht.lookups
		dht.mu.Unlock()
		var wg sync.WaitGroup
		for i := range 20 {
			wg.Go(func() {
				a.announce(t.Context(), treq(ihash(40), netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(8000+i)).String(), false), nil)
			})
		}
		wg.Wait()
		for range 5 {
			scrapeNow(t, a, ihash(40))
		}
		dht.mu.Lock()
		got := dht.lookups - before
		dht.mu.Unlock()
		if got != 1 {
			t.Fatalf("%d lookups for 20 announces and 5 scrapes within FreshFor, want 1", got)
		}
	})
}

// Over real sockets, with the clock injected: a scrape that finds the
// cache older than FreshFor waits for a refresh, on both fronts (the UDP
// front from a goroutine of its own).
func TestScrapeRefreshOverSockets(t *testing.T) {
	n := newFakeNode()
	clk := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	cfg := testConfig()
	cfg.Clock = clk.Now
	tr := newTracker(t, n, cfg)
	base, uaddr := serveHTTP(t, tr), serveUDP(t, tr, "udp4")
	ih := ihash(50)
	httpAnnounce(t, base, areq(ih, 6881, 0))
	n.set(ih, Swarm{Leechers: 3, Peers: []Peer{{Endpoint: ap("192.0.2.7:6881")}}})
	clk.Advance(cfg.FreshFor)

	_, _, body := get(t, base+"/scrape?"+string(wire.AppendScrapeQuery(nil, [][20]byte{ih})))
	files, err := wire.ParseScrapeResponse(body)
	if err != nil || len(files) != 1 || files[0].Incomplete != 3 || files[0].Complete != 1 {
		t.Fatalf("HTTP scrape %+v %v: want the refreshed counts", files, err)
	}

	n.set(ih, Swarm{Leechers: 5})
	clk.Advance(cfg.FreshFor)
	c := dialUDP(t, uaddr)
	id := c.connect()
	c.tx++
	b := c.roundTrip(wire.AppendUDPScrapeRequest(nil, &wire.UDPScrapeRequest{ConnectionID: id, TransactionID: c.tx, InfoHashes: [][20]byte{ih}}))
	sr, err := wire.ParseUDPScrapeResponse(b)
	if err != nil || sr.TransactionID != c.tx || len(sr.Stats) != 1 || sr.Stats[0].Leechers != 5 {
		t.Fatalf("UDP scrape %+v %v: want the refreshed counts", sr, err)
	}
}
