package tracker

import (
	"net/netip"
	"slices"
	"sync"
	"testing"

	"github.com/kadtracker/kadtracker/records"
)

// liveNode is a fakeNode that also has live peers (as the TSUP overlay does).
type liveNode struct {
	*fakeNode
	mu   sync.Mutex
	live map[records.Key][]Peer
}

func (n *liveNode) LivePeers(key records.Key) []Peer {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.live[key])
}

// Live peers reach the next answer at once, not after the cache's TTL, and
// follow the same rules as looked-up peers: no seeds to seeds, never the
// client itself.
func TestLivePeersBypassTheCache(t *testing.T) {
	n := &liveNode{fakeNode: newFakeNode(), live: map[records.Key][]Peer{}}
	tr := newTracker(t, n, testConfig())
	ih := ihash(7)
	key := records.SwarmKey(ih)
	seeder, leecher := "127.0.0.1:7001", "127.0.0.1:7002"

	first, err := tr.announce(t.Context(), treq(ih, seeder, true), nil)
	if err != nil || len(first.peers) != 0 {
		t.Fatalf("first answer %+v, %v", first, err)
	}
	remoteLeecher := netip.MustParseAddrPort("10.1.1.1:6881")
	remoteSeed := netip.MustParseAddrPort("10.1.1.2:6881")
	n.mu.Lock()
	n.live[key] = []Peer{{Endpoint: remoteLeecher}, {Endpoint: remoteSeed, Seed: true}, {Endpoint: ap(leecher)}}
	n.mu.Unlock()

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
