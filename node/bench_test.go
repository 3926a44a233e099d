package node

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/kadtracker/kadtracker/records"
)

// BenchmarkLookup measures lookups in mocknets of 100 and 300 nodes with
// 10 ms links. Besides ns/op it reports hops, the one-RPC round trip measured
// in the same network, and latency as a multiple of that round trip.
func BenchmarkLookup(b *testing.B) {
	for _, size := range []int{100, 300} {
		b.Run(fmt.Sprintf("nodes=%d", size), func(b *testing.B) {
			const latency = 10 * time.Millisecond
			tn := newTestNet(b, size, latency, nil)
			rng := rand.New(rand.NewPCG(uint64(size), 11))
			ctx := context.Background()
			keys := make([]records.Key, 16)
			for i := range keys {
				keys[i] = randomKey(b, rng, false)
				if _, err := tn.nodes[rng.IntN(size)].Announce(ctx, keys[i], 6881, true); err != nil {
					b.Fatal(err)
				}
			}
			var rtts []time.Duration
			for range 20 {
				a, c := tn.nodes[rng.IntN(size)], tn.nodes[rng.IntN(size)]
				if a == c {
					continue
				}
				rtt, err := a.PingRTT(ctx, c.ID())
				if err != nil {
					b.Fatal(err)
				}
				rtts = append(rtts, rtt)
			}
			slices.Sort(rtts)
			rtt := rtts[len(rtts)/2]

			var hops, queried, found int
			b.ResetTimer()
			for b.Loop() {
				lr, err := tn.nodes[rng.IntN(size)].Lookup(ctx, keys[rng.IntN(len(keys))], 50)
				if err != nil {
					b.Fatal(err)
				}
				hops += lr.Stats.Hops
				queried += lr.Stats.Queried
				if len(lr.Peers) > 0 {
					found++
				}
			}
			b.StopTimer()
			n := float64(b.N)
			perOp := b.Elapsed().Seconds() / n
			b.ReportMetric(float64(hops)/n, "hops/op")
			b.ReportMetric(float64(queried)/n, "queried/op")
			b.ReportMetric(float64(found)/n, "found/op")
			b.ReportMetric(float64(rtt.Microseconds())/1000, "rtt-ms")
			b.ReportMetric(perOp/rtt.Seconds(), "rtts/op")
		})
	}
}
