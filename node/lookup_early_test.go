package node

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/kadtracker/kadtracker/records"
	"github.com/libp2p/go-libp2p/core/peer"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
)

// found is what a lookup served, in a form two lookups can be compared by.
func found(lr LookupResult) []string {
	var out []string
	for _, p := range lr.Peers {
		out = append(out, fmt.Sprintf("%s %s seed=%v bridged=%v", p.Announcer, p.Endpoint, p.Seed, p.Bridged))
	}
	slices.Sort(out)
	return append(out, fmt.Sprintf("seeds=%d leechers=%d", lr.Seeds, lr.Leechers))
}

// TestEarlyEqualsFull: in a 40-node mocknet, every node looks up keys with
// several announcers, a withdrawn one and none at all, with the early
// answer and with the full lookup: both serve the same peers and counts,
// and most early lookups do answer before the walk ends.
func TestEarlyEqualsFull(t *testing.T) {
	const nodes, m = 40, 8
	tn := newTestNet(t, nodes, 5*time.Millisecond, func(c *Config) { c.Replication = m })
	rng := rand.New(rand.NewPCG(3, 4))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	busy, withdrawn, empty := randomKey(t, rng, false), randomKey(t, rng, false), randomKey(t, rng, false)
	for i, nd := range tn.nodes[:4] {
		if _, err := nd.Announce(ctx, busy, uint16(6881+i), i%2 == 0); err != nil {
			t.Fatal(err)
		}
	}
	for i, nd := range tn.nodes[4:6] {
		if _, err := nd.Announce(ctx, withdrawn, uint16(6881+i), true); err != nil {
			t.Fatal(err)
		}
	}
	if err := tn.nodes[5].Withdraw(ctx, withdrawn); err != nil {
		t.Fatal(err)
	}

	early, lookups := 0, 0
	for _, key := range []records.Key{busy, withdrawn, empty} {
		for _, nd := range tn.nodes[6:] {
			nd.cfg.FullLookup = true
			full, err := nd.Lookup(ctx, key, 50)
			nd.cfg.FullLookup = false
			if err != nil {
				t.Fatal(err)
			}
			if full.Stats.Early {
				t.Fatal("the full lookup answered early")
			}
			got, err := nd.Lookup(ctx, key, 50)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(found(got), found(full)) {
				t.Fatalf("key %s from %s: early lookup served\n%v\nthe full lookup\n%v", key, nd.ID(), found(got), found(full))
			}
			lookups++
			if got.Stats.Early {
				early++
				if got.Stats.Answered < m/2+1 && !slices.Contains(tn.trueClosest(key, m), nd.ID()) {
					t.Errorf("early answer from %d storing nodes, want a majority of %d", got.Stats.Answered, m)
				}
			}
		}
	}
	t.Logf("%d of %d lookups answered early", early, lookups)
	if early < lookups/2 {
		t.Errorf("%d of %d lookups answered early, want most", early, lookups)
	}
	want := []int{4, 1, 0}
	for i, key := range []records.Key{busy, withdrawn, empty} {
		lr, err := tn.nodes[10].Lookup(ctx, key, 50)
		if err != nil {
			t.Fatal(err)
		}
		if len(lr.Peers) != want[i] {
			t.Errorf("key %d: %d peers, want %d", i, len(lr.Peers), want[i])
		}
	}
}

// TestEarlyHostileColluders: 3 of the m=8 storing nodes collude and return
// the same 30 Sybils; the asker's links to 3 of the honest ones are slow, so
// the first 5 answers (a majority of m) are the 3 colluders' and 2 honest
// nodes'. The early answer needs those answers to agree, so it waits, and
// the Sybils get the minority share, as in the full lookup. The control
// answers from the first 5 answers, agreeing or not: the colluders are a
// majority of them and every Sybil is served.
func TestEarlyHostileColluders(t *testing.T) {
	const m, k, want = 8, 3, 50
	tn := newTestNet(t, 16, 2*time.Millisecond, func(c *Config) { c.Replication = m })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	key := randomKey(t, rand.New(rand.NewPCG(5, 6)), false)
	closest := tn.trueClosest(key, m)
	byID := make(map[peer.ID]*Node)
	for _, nd := range tn.nodes {
		byID[nd.ID()] = nd
	}
	var bad []*Node
	for _, id := range closest[:k] {
		bad = append(bad, byID[id])
	}
	var others []*Node
	for _, nd := range tn.nodes {
		if !slices.Contains(closest, nd.ID()) {
			others = append(others, nd)
		}
	}
	asker, a := others[0], others[1]
	if _, err := a.Announce(ctx, key, 6881, true); err != nil {
		t.Fatal(err)
	}
	h := &hostile{held: make(map[peer.ID][]byte)}
	h.forged = sybils(t, key, 30, forgedAddr, time.Now().Add(20*time.Minute), 1)
	turnHostile(h, bad...)
	for _, id := range closest[m-3:] {
		if err := asker.Host().Connect(ctx, peer.AddrInfo{ID: id, Addrs: byID[id].Host().Addrs()}); err != nil {
			t.Fatal(err)
		}
		for _, l := range tn.mn.LinksBetweenPeers(asker.ID(), id) {
			l.SetOptions(mocknet.LinkOptions{Latency: 60 * time.Millisecond})
		}
	}
	aEndpoint := netip.AddrPortFrom(connIP(t, a), 6881)

	lookup := func(pol lookupPolicy) (LookupResult, int) {
		t.Helper()
		asker.policy = pol
		defer func() { asker.policy = lookupPolicy{} }()
		lr, err := asker.Lookup(ctx, key, want)
		if err != nil {
			t.Fatal(err)
		}
		forged := 0
		for _, p := range lr.Peers {
			if p.Endpoint.Addr() == forgedAddr {
				forged++
			}
		}
		return lr, forged
	}
	lr, forged := lookup(lookupPolicy{})
	if len(lr.Peers) == 0 || lr.Peers[0].Endpoint != aEndpoint {
		t.Fatalf("peers %+v, want %s first", lr.Peers, aEndpoint)
	}
	if lr.Stats.Early {
		t.Error("answered early although the answers disagree")
	}
	if forged > 1 {
		t.Errorf("%d Sybils served, want at most the minority share of 1", forged)
	}
	lr, forged = lookup(lookupPolicy{earlyAnyAnswer: true})
	if !lr.Stats.Early || forged < 30 {
		t.Errorf("control: answering from the first answers served %d Sybils (early %v), want all 30", forged, lr.Stats.Early)
	}
}
