package node

import (
	"context"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// wait waits for the follow-ups running now; tests only (an announce
// started meanwhile may be missed).
func (fs *followUps) wait() { fs.wg.Wait() }

// TestAnnounceEarly: in a 60-node mocknet most announces return before
// their walk ends, with the m closest heard of holding the record; a
// lookup right then finds it; and once the follow-up is done every one of
// the m closest holds it, as after the full announce (the control, on
// other keys), with few copies beyond them.
func TestAnnounceEarly(t *testing.T) {
	const nodes, m, keys = 60, 8, 10
	tn := newTestNet(t, nodes, 5*time.Millisecond, func(c *Config) { c.Replication = m })
	rng := rand.New(rand.NewPCG(9, 1))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	for _, full := range []bool{false, true} {
		early, extra := 0, 0
		for i := range keys {
			key := randomKey(t, rng, false)
			nd, asker := tn.nodes[i], tn.nodes[nodes-1-i]
			nd.cfg.FullAnnounce = full
			res, err := nd.Announce(ctx, key, 6881, true)
			if err != nil {
				t.Fatal(err)
			}
			if full && res.Early {
				t.Fatal("the full announce returned early")
			}
			if res.Early {
				early++
				if res.StoredOn != m {
					t.Errorf("early return with %d copies, want %d", res.StoredOn, m)
				}
			}
			lr, err := asker.Lookup(ctx, key, 50)
			if err != nil {
				t.Fatal(err)
			}
			if len(lr.Peers) != 1 || lr.Peers[0].Announcer != nd.ID() {
				t.Errorf("full=%v key %d: a lookup right after the announce served %v", full, i, found(lr))
			}
			nd.followUps.wait()
			holders := tn.holders(t, key, nd.ID())
			for _, p := range tn.trueClosest(key, m) {
				if !slices.Contains(holders, p) {
					t.Errorf("full=%v key %d: %s, among the %d closest, holds no record; holders %v", full, i, p, m, holders)
				}
			}
			extra += len(holders) - m
		}
		t.Logf("full=%v: %d of %d announces returned early; %d copies beyond the m closest", full, early, keys, extra)
		if !full && early < keys/2 {
			t.Errorf("%d of %d announces returned early, want most", early, keys)
		}
		if extra > keys*m/2 {
			t.Errorf("%d copies beyond the m closest in %d announces", extra, keys)
		}
	}
}
