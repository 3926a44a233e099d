package node

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kadtracker/kadtracker/records"
	kb "github.com/libp2p/go-libp2p-kbucket"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/test"
)

// coveredBy only vouches for keys whose m closest nodes the walk's
// bucketSize closest nodes hold: the m closest of what the walks found are
// the true m closest. Without the check (every key taken as covered, as a
// region walk naively would), many keys of a region get the wrong nodes.
func TestCoveredBy(t *testing.T) {
	const m = 8
	rng := rand.New(rand.NewPCG(3, 3))
	all := make([]peer.ID, 2000)
	for i := range all {
		id, err := test.RandPeerID()
		if err != nil {
			t.Fatal(err)
		}
		all[i] = id
	}
	// 8 bits: about regionNodes nodes a region, as regionBits picks; 5
	// bits: 60 nodes a region, where a region's keys stray from the
	// walk's nodes.
	for _, bits := range []int{8, 5} {
		var covered, wrongChecked, wrongNaive, total int
		for range 200 {
			target := randomKey(t, rng, false)
			tk := kb.ConvertKey(target.DHTKey())
			found := kb.SortClosestPeers(slices.Clone(all), tk)[:bucketSize]
			w := walked{target: tk, reach: kb.Xor(kb.ConvertPeerID(found[bucketSize-1]), tk)}
			for range 40 {
				k := randomKey(t, rng, false)
				kk := kb.ConvertKey(k.DHTKey())
				if region(kk, bits) != region(tk, bits) {
					continue
				}
				total++
				got := kb.SortClosestPeers(slices.Clone(found), kk)[:m]
				right := slices.Equal(got, kb.SortClosestPeers(slices.Clone(all), kk)[:m])
				if coveredBy([]walked{w}, kk, found, m) {
					covered++
					if !right {
						wrongChecked++
					}
				}
				if !right {
					wrongNaive++
				}
			}
		}
		t.Logf("%d bits: %d region keys, %d covered by the target's walk, %d would have gone to wrong nodes unchecked", bits, total, covered, wrongNaive)
		if total == 0 || covered == 0 {
			t.Fatalf("%d bits: no key of a region covered (%d keys)", bits, total)
		}
		if wrongChecked > 0 {
			t.Fatalf("%d bits: %d of %d covered keys got the wrong m closest", bits, wrongChecked, covered)
		}
		if bits == 5 && wrongNaive == 0 {
			t.Fatal("control: every key of a wide region was right without the check; the test shows nothing")
		}
	}
}

// slot spreads regions over the interval and gives each one slot per
// interval, half an interval or more after the time asked.
func TestSlot(t *testing.T) {
	n := &Node{cfg: DefaultConfig()}
	s := newScheduler(n)
	iv := n.cfg.RepublishInterval
	now := time.Now()
	const bits = 6
	var offsets []time.Duration
	for r := range uint64(1 << bits) {
		at := s.slot(r, bits, now)
		if !at.After(now) || at.Sub(now) > iv+iv>>bits {
			t.Fatalf("region %d: slot %s after now", r, at.Sub(now))
		}
		next := s.slot(r, bits, at)
		if d := next.Sub(at); d < iv-iv>>bits || d > iv+iv>>bits {
			t.Fatalf("region %d: slots %s apart", r, d)
		}
		offsets = append(offsets, at.Sub(now))
	}
	slices.Sort(offsets)
	for i := 1; i < len(offsets); i++ {
		if gap := offsets[i] - offsets[i-1]; gap > 2*(iv>>bits) {
			t.Fatalf("regions' slots bunch: a gap of %s where %s is even", gap, iv>>bits)
		}
	}
}

// republishRun announces keys from one node of a mocknet network and
// returns its publish stats after ttls record TTLs.
func republishRun(t *testing.T, serial bool, keys int, ttls float64) (PublishStats, *testNet, []records.Key) {
	t.Helper()
	// 20 ms links: a serial publish (a walk of two or three hops and a
	// PUT) takes 120 ms or more, so a serial round of 150 keys outlasts
	// the TTL on any machine; the scheduler's work (450 PUTs per interval)
	// fits under -race on a loaded one.
	tn := newTestNet(t, 30, 20*time.Millisecond, func(c *Config) {
		c.Replication = 3
		c.RecordTTL = 10 * time.Second
		c.RepublishInterval = 3 * time.Second
		c.BridgedRecordTTL = 10 * time.Second
		c.SerialRepublish = serial
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rng := rand.New(rand.NewPCG(9, 9))
	ks := make([]records.Key, keys)
	for i := range ks {
		ks[i] = randomKey(t, rng, false)
	}
	a := tn.nodes[0]
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for _, k := range ks {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if _, err := a.AnnounceTransient(ctx, k, 7000, true); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	time.Sleep(time.Duration(ttls * float64(a.cfg.RecordTTL)))
	return a.Stats().Publish, tn, ks
}

// The scheduler keeps 150 keys alive on a 30-node network with a 3 s
// interval, sharing walks between the keys of a region; the serial
// scheduler, a walk per key one after another, cannot, and records lapse.
func TestSchedulerKeepsKeysAlive(t *testing.T) {
	if testing.Short() {
		t.Skip("mocknet run of several seconds")
	}
	const keys = 150
	st, tn, ks := republishRun(t, false, keys, 2)
	if st.LapsedTotal != 0 {
		t.Fatalf("%d records lapsed", st.LapsedTotal)
	}
	if st.Keys != keys || st.CapacityKeys == 0 {
		t.Fatalf("stats %+v", st)
	}
	// Rounds: two TTLs of intervals plus the first publish.
	rounds := int64(2*10/3) + 1
	if st.Walks >= rounds*keys/2 {
		t.Fatalf("%d walks for %d keys in about %d rounds: regions do not share walks", st.Walks, keys, rounds)
	}
	for _, k := range ks {
		if h := tn.holders(t, k, tn.nodes[0].ID()); len(h) == 0 {
			t.Fatalf("key %s held by no node", k)
		}
	}
	t.Logf("scheduler: %+v", st)

	t.Run("control: serial", func(t *testing.T) {
		st, _, _ := republishRun(t, true, keys, 1.5)
		if st.LapsedTotal == 0 {
			t.Fatalf("the serial scheduler kept every key alive (%+v): the setup does not load it", st)
		}
		t.Logf("serial: %+v", st)
	})
}

// SetBridged hands keys to the scheduler without blocking; they are
// published, and withdrawn with a tombstone, by it. A tombstone PUT that
// fails on a loaded machine goes to the next closest node instead, and the
// holder it missed hears of it at the next round: the short interval keeps
// that within the wait.
func TestSetBridged(t *testing.T) {
	tn := newTestNet(t, 12, time.Millisecond, func(c *Config) {
		c.Replication = 3
		c.LocalBridgedEndpoints = true
		c.RepublishInterval = 10 * time.Second
	})
	a := tn.nodes[0]
	rng := rand.New(rand.NewPCG(5, 5))
	ks := make([]records.Key, 40)
	ep := []netip.AddrPort{netip.MustParseAddrPort("127.0.0.9:6881")}
	for i := range ks {
		ks[i] = randomKey(t, rng, false)
		a.SetBridged(ks[i], ep)
	}
	waitFor(t, "bridged records stored", 30*time.Second, func() bool {
		for _, k := range ks {
			if len(tn.holders(t, k, a.ID())) == 0 {
				return false
			}
		}
		return true
	})
	if w := a.Stats().Publish.Walks; w >= int64(len(ks)) {
		t.Errorf("%d walks for %d keys", w, len(ks))
	}
	for _, k := range ks {
		a.SetBridged(k, nil)
	}
	waitFor(t, "bridged records withdrawn", time.Minute, func() bool {
		for _, k := range ks {
			if len(tn.holders(t, k, a.ID())) != 0 {
				return false
			}
		}
		return true
	})
	if st := a.Stats().Publish; st.Keys != 0 {
		t.Fatalf("%d keys still scheduled after withdrawing them all", st.Keys)
	}
}

// Tests and netsim run the daemon with --republish 10s --record-ttl 30s.
func TestShortIntervalsValidate(t *testing.T) {
	cfg := DefaultConfig()
	cfg.RepublishInterval, cfg.RecordTTL = 10*time.Second, 30*time.Second
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	n := &Node{cfg: cfg}
	n.sch = newScheduler(n)
	// The next publish is always before the record expires, whatever
	// the region's slot.
	now := time.Now()
	for r := range uint64(64) {
		if due := n.sch.slot(r, 6, now.Add(cfg.RepublishInterval/2)); due.Sub(now) > cfg.RecordTTL {
			t.Fatalf("region %d due after the TTL", r)
		}
	}
}

// BenchmarkRepublishRound republishes K keys of one node in a mocknet of
// 100 nodes with 10 ms links, once per op, with the region scheduler and
// with the serial one (a walk per key): RPCs (walk queries and PUTs) and
// walks per key, and wall time per key. go test -run '^$' -bench
// RepublishRound ./node/
func BenchmarkRepublishRound(b *testing.B) {
	for _, serial := range []bool{false, true} {
		for _, k := range []int{100, 1000} {
			if serial && k > 100 {
				continue // a walk per key costs the same at any K
			}
			name := fmt.Sprintf("regions/keys=%d", k)
			if serial {
				name = fmt.Sprintf("serial/keys=%d", k)
			}
			b.Run(name, func(b *testing.B) {
				tn := newTestNet(b, 100, 10*time.Millisecond, func(c *Config) {
					// Nothing comes due on its own during the benchmark.
					c.RepublishInterval, c.RecordTTL, c.BridgedRecordTTL = 20*time.Minute, time.Hour, 30*time.Minute
				})
				a := tn.nodes[0]
				rng := rand.New(rand.NewPCG(uint64(k), 21))
				ctx := context.Background()
				keys := make([]records.Key, k)
				for i := range keys {
					keys[i] = randomKey(b, rng, false)
					if _, err := a.AnnounceTransient(ctx, keys[i], 6881, true); err != nil {
						b.Fatal(err)
					}
				}
				before := a.Stats().Publish
				b.ResetTimer()
				for b.Loop() {
					if serial {
						for _, key := range keys {
							if _, _, err := a.republish(ctx, key); err != nil {
								b.Fatal(err)
							}
						}
						continue
					}
					round := time.Now()
					a.mu.Lock()
					for _, st := range a.sched {
						st.due = time.Time{}
					}
					a.mu.Unlock()
					a.sch.kick()
					for {
						a.mu.Lock()
						left := 0
						for _, st := range a.sched {
							if !st.due.After(round) || st.queued {
								left++
							}
						}
						a.mu.Unlock()
						if left == 0 {
							break
						}
						time.Sleep(5 * time.Millisecond)
					}
				}
				after := a.Stats().Publish
				per := float64(b.N) * float64(k)
				b.ReportMetric(float64(after.WalkQueries-before.WalkQueries+after.PutsSent-before.PutsSent)/per, "rpcs/key")
				b.ReportMetric(float64(after.Walks-before.Walks)/per, "walks/key")
				b.ReportMetric(float64(b.Elapsed().Milliseconds())/per, "ms/key")
			})
		}
	}
}
