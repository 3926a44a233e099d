package tsup

import (
	"fmt"
	"net/netip"
	"testing"
	"time"
)

// BenchmarkConvergence simulates n trackers (4 to 64) in one internal
// network sharing one swarm, 4 peers each, with the default 10 s / 30 s
// timers, and reports in simulated time:
//   - intervals/cold: from a cold start until every tracker knows every
//     peer, in update intervals;
//   - intervals/new-peer: in steady state, until a peer a member announces
//     is known everywhere;
//   - B/round and updates/round: bytes of all TSUP traffic and data
//     UPDATEs per update interval in steady state.
//
// The ns/op is the simulator's cost, not the protocol's.
func BenchmarkConvergence(b *testing.B) {
	for _, mode := range []string{"leader", "fullmesh"} {
		for _, n := range []int{4, 8, 16, 32, 64} {
			b.Run(fmt.Sprintf("%s/n=%d", mode, n), func(b *testing.B) {
				b.ReportAllocs()
				var r convergence
				for b.Loop() {
					r = simulateConvergence(b, n, mode == "fullmesh")
				}
				b.ReportMetric(r.cold, "intervals/cold")
				b.ReportMetric(r.newPeer, "intervals/new-peer")
				b.ReportMetric(r.bytes, "B/round")
				b.ReportMetric(r.updates, "updates/round")
			})
		}
	}
}

type convergence struct{ cold, newPeer, bytes, updates float64 }

func simulateConvergence(tb testing.TB, n int, fullMesh bool) convergence {
	net := newSimNet(tb, uint64(n), 0)
	cfg := DefaultConfig()
	cfg.FullMesh = fullMesh
	nodes := mesh(net, n, cfg, nil)
	var all [][]Peer
	for i, nd := range nodes {
		ps := clientPeers(i, nClients)
		all = append(all, ps)
		nd.core.SetOwn(net.now, testIH, ps)
		net.collect(nd)
	}
	want := peerSet(all...)
	iv := cfg.UpdateInterval.Seconds()
	cold, ok := net.runUntil(10*cfg.UpdateInterval, 100*time.Millisecond, func() bool { return knowsAll(nodes, testIH, want) })
	if !ok {
		tb.Fatalf("n=%d: no convergence", n)
	}
	// Steady state: elections done, several rounds.
	net.runFor(5 * time.Minute)
	net.resetCounters()
	const rounds = 10
	net.runFor(rounds * cfg.UpdateInterval)
	r := convergence{
		cold:    cold.Seconds() / iv,
		bytes:   float64(net.bytes) / rounds,
		updates: float64(net.sent["UPDATE"]) / rounds,
	}
	p := Peer{Addr: netip.MustParseAddrPort("10.250.0.1:7000")}
	nodes[n-1].core.SetOwn(net.now, testIH, append(all[n-1], p))
	net.collect(nodes[n-1])
	want[p.Addr] = true
	took, ok := net.runUntil(10*cfg.UpdateInterval, 100*time.Millisecond, func() bool { return knowsAll(nodes, testIH, want) })
	if !ok {
		tb.Fatalf("n=%d: new peer did not spread", n)
	}
	r.newPeer = took.Seconds() / iv
	return r
}

// TestUpdateCounts checks the paper's formulas across sizes: 2(n-1) data
// UPDATEs per round with a swarm leader, n(n-1) in full mesh.
func TestUpdateCounts(t *testing.T) {
	if testing.Short() {
		t.Skip("simulates up to 32 trackers")
	}
	for _, n := range []int{4, 8, 32} {
		for _, fm := range []bool{false, true} {
			r := simulateConvergence(t, n, fm)
			want := float64(2 * (n - 1))
			if fm {
				want = float64(n * (n - 1))
			}
			if r.updates != want {
				t.Errorf("n=%d fullmesh=%v: %.1f UPDATEs per round, want %v", n, fm, r.updates, want)
			}
			t.Logf("n=%2d fullmesh=%-5v cold %.2f intervals, new peer %.2f intervals, %6.0f B/round, %4.0f UPDATEs/round",
				n, fm, r.cold, r.newPeer, r.bytes, r.updates)
		}
	}
}
