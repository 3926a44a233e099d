package tsup

import (
	"fmt"
	"net/netip"
	"testing"
	"time"
)

var testIH = Infohash{0x5e, 0xed}

// The paper's largest scenario: 12 trackers, 4 peers each (1 seed, 3
// leechers), one internal network.
const (
	nTrackers = 12
	nClients  = 4
)

// startSwarm runs n trackers sharing testIH, each with nClients own peers,
// until every one knows all peers; it fails after limit.
func startSwarm(t *testing.T, net *simNet, n int, base Config, tweak func(int, *Config), limit time.Duration) ([]*simNode, map[netip.AddrPort]bool, time.Duration) {
	t.Helper()
	nodes := mesh(net, n, base, tweak)
	var all [][]Peer
	for i, nd := range nodes {
		ps := clientPeers(i, nClients)
		all = append(all, ps)
		if err := nd.core.SetOwn(net.now, testIH, ps); err != nil {
			t.Fatal(err)
		}
		net.collect(nd)
	}
	want := peerSet(all...)
	took, ok := net.runUntil(limit, 100*time.Millisecond, func() bool { return knowsAll(nodes, testIH, want) })
	if !ok {
		t.Fatalf("no convergence within %v:\n%s", limit, describe(nodes))
	}
	return nodes, want, took
}

// settle runs until the live trackers agree on one internal leader of
// testIH other than not and have no election running.
func settle(t *testing.T, net *simNet, nodes []*simNode, limit time.Duration, not string) string {
	t.Helper()
	var leader string
	_, ok := net.runUntil(limit, time.Second, func() bool {
		_, l, agree := leaders(nodes, testIH)
		leader = l
		if !agree || l == not {
			return false
		}
		for _, nd := range nodes {
			if nd.alive && nd.core.camp != nil {
				return false
			}
		}
		return true
	})
	if !ok {
		ls, _, _ := leaders(nodes, testIH)
		t.Fatalf("no single leader within %v: %v\n%s", limit, ls, describe(nodes))
	}
	return leader
}

// countRounds counts data UPDATEs over rounds update intervals.
func countRounds(net *simNet, cfg Config, rounds int) float64 {
	net.resetCounters()
	net.runFor(time.Duration(rounds) * cfg.UpdateInterval)
	return float64(net.sent["UPDATE"]) / float64(rounds)
}

func TestConvergeWithLeader(t *testing.T) {
	net := newSimNet(t, 1, 0)
	cfg := DefaultConfig()
	// Unification (SUMMARY → UPDATE+S → UPDATE+S+A) already exchanges every
	// pair's peers, so a cold start converges within one update interval.
	nodes, want, took := startSwarm(t, net, nTrackers, cfg, nil, cfg.UpdateInterval)
	t.Logf("12 trackers × 4 peers: all 48 known after %v (%.2f update intervals)", took, took.Seconds()/cfg.UpdateInterval.Seconds())

	leader := settle(t, net, nodes, 3*time.Minute, "")
	t.Logf("leader %s after %v", leader, net.now.Sub(simEpoch))

	perRound := countRounds(net, cfg, 10)
	if want := float64(2 * (nTrackers - 1)); perRound != want {
		t.Fatalf("%.1f UPDATEs per round with a leader, want 2(n-1) = %v (%v)", perRound, want, net.sent)
	}
	t.Logf("UPDATEs per round with a swarm leader: %.0f = 2(n-1); all packets over 10 rounds: %v", perRound, net.sent)
	for _, nd := range nodes {
		if nd.addr.String() != leader && net.dataBySrc[nd.addr] != 10 {
			t.Errorf("member %v sent %d UPDATEs in 10 rounds, want 10 (to the leader only)", nd.addr, net.dataBySrc[nd.addr])
		}
	}
	if !knowsAll(nodes, testIH, want) {
		t.Fatal("lost peers in steady state")
	}

	// A new client of a member reaches everyone through the leader within
	// two update intervals (member → leader, leader → members).
	newPeer := Peer{Addr: netip.MustParseAddrPort("10.9.9.9:7000")}
	member := nodes[0]
	if member.addr.String() == leader {
		member = nodes[1]
	}
	own := append(clientPeers(indexOf(nodes, member), nClients), newPeer)
	member.core.SetOwn(net.now, testIH, own)
	net.collect(member)
	want[newPeer.Addr] = true
	took, ok := net.runUntil(2*cfg.UpdateInterval, 100*time.Millisecond, func() bool { return knowsAll(nodes, testIH, want) })
	if !ok {
		t.Fatalf("new peer not everywhere after 2 update intervals")
	}
	t.Logf("a new peer reached all 12 trackers via the leader in %v", took)

	// A stopped client is advertised dead and disappears everywhere.
	member.core.SetOwn(net.now, testIH, own[:nClients])
	net.collect(member)
	delete(want, newPeer.Addr)
	if _, ok := net.runUntil(2*cfg.UpdateInterval, 100*time.Millisecond, func() bool { return knowsAll(nodes, testIH, want) }); !ok {
		t.Fatalf("stopped peer still known after 2 update intervals")
	}
}

func indexOf(nodes []*simNode, nd *simNode) int {
	for i, x := range nodes {
		if x == nd {
			return i
		}
	}
	return -1
}

func TestConvergeFullMesh(t *testing.T) {
	net := newSimNet(t, 2, 0)
	cfg := DefaultConfig()
	cfg.FullMesh = true
	nodes, want, took := startSwarm(t, net, nTrackers, cfg, nil, cfg.UpdateInterval)
	t.Logf("full mesh: all 48 known after %v", took)
	net.runFor(time.Minute)
	perRound := countRounds(net, cfg, 10)
	if want := float64(nTrackers * (nTrackers - 1)); perRound != want {
		t.Fatalf("%.1f UPDATEs per round in full mesh, want n(n-1) = %v (%v)", perRound, want, net.sent)
	}
	t.Logf("UPDATEs per round in full mesh: %.0f = n(n-1)", perRound)
	if _, l, _ := leaders(nodes, testIH); l != "" {
		t.Fatalf("full mesh elected %q", l)
	}
	if !knowsAll(nodes, testIH, want) {
		t.Fatal("lost peers")
	}
}

func TestConvergeWithLoss(t *testing.T) {
	for _, fullMesh := range []bool{false, true} {
		t.Run(fmt.Sprintf("fullmesh=%v", fullMesh), func(t *testing.T) {
			net := newSimNet(t, 3, 0.2)
			cfg := DefaultConfig()
			cfg.FullMesh = fullMesh
			nodes, want, took := startSwarm(t, net, nTrackers, cfg, nil, 5*cfg.UpdateInterval)
			t.Logf("20%% loss: all 48 known after %v (%.2f update intervals)", took, took.Seconds()/cfg.UpdateInterval.Seconds())
			// Keep running: the swarm stays converged despite loss (links
			// drop when three keep-alives in a row are lost, which moves
			// leaders now and then), and a new peer still spreads.
			for range 10 {
				net.runFor(cfg.UpdateInterval)
				if !knowsAll(nodes, testIH, want) {
					t.Fatalf("lost convergence under loss\n%s", describe(nodes))
				}
			}
			if !fullMesh {
				ls, _, agree := leaders(nodes, testIH)
				t.Logf("leaders after 10 lossy rounds (agree %v): %v", agree, ls)
			}
			newPeer := Peer{Addr: netip.MustParseAddrPort("10.9.9.9:7000")}
			nodes[3].core.SetOwn(net.now, testIH, append(clientPeers(3, nClients), newPeer))
			net.collect(nodes[3])
			want[newPeer.Addr] = true
			took, ok := net.runUntil(6*cfg.UpdateInterval, 100*time.Millisecond, func() bool { return knowsAll(nodes, testIH, want) })
			if !ok {
				t.Fatalf("new peer not everywhere under 20%% loss\n%s", describe(nodes))
			}
			t.Logf("new peer everywhere after %v under 20%% loss; packets: %v", took, net.sent)
		})
	}
}

func TestLeaderDies(t *testing.T) {
	net := newSimNet(t, 4, 0)
	cfg := DefaultConfig()
	nodes, want, _ := startSwarm(t, net, nTrackers, cfg, nil, cfg.UpdateInterval)
	old := settle(t, net, nodes, 3*time.Minute, "")
	var dead *simNode
	for i, nd := range nodes {
		if nd.addr.String() == old {
			nd.alive = false
			dead = nd
			for _, p := range clientPeers(i, nClients) {
				delete(want, p.Addr)
			}
		}
	}
	killed := net.now
	t.Logf("killed leader %v", old)

	// The survivors notice after the disconnect interval, fall back to full
	// mesh, elect a new leader and keep the swarm converged.
	leader := settle(t, net, nodes, 5*time.Minute, old)
	t.Logf("new leader %v after %v", leader, net.now.Sub(killed))
	perRound := countRounds(net, cfg, 5)
	if want := float64(2 * (nTrackers - 2)); perRound != want {
		t.Fatalf("%.1f UPDATEs per round with the new leader, want %v", perRound, want)
	}

	// A new peer spreads through the new leader.
	newPeer := Peer{Addr: netip.MustParseAddrPort("10.9.9.9:7000")}
	i := 0
	for nodes[i] == dead || nodes[i].addr.String() == leader {
		i++
	}
	nodes[i].core.SetOwn(net.now, testIH, append(clientPeers(i, nClients), newPeer))
	net.collect(nodes[i])
	want[newPeer.Addr] = true

	// The dead leader's own peers expire: PeerTTL after they were last
	// refreshed, then they are dead (never returned) at once.
	if _, ok := net.runUntil(cfg.PeerTTL+3*cfg.UpdateInterval, time.Second, func() bool { return knowsAll(nodes, testIH, want) }); !ok {
		t.Fatalf("survivors did not converge on the 44+1 live peers\n%s", describe(nodes))
	}
	t.Logf("survivors converged on the live peers %v after the kill (PeerTTL %v)", net.now.Sub(killed), cfg.PeerTTL)
}

// Two internal networks joined by one external link between their border
// trackers: A1, A2, B1 | B2, C1, C2, B1—B2 external. Swarm S is on A1, A2,
// C1, C2 and on neither border tracker; swarm T only on A2 and C2.
func TestBorderTrackers(t *testing.T) {
	net := newSimNet(t, 5, 0)
	cfg := DefaultConfig()
	addr := map[string]netip.AddrPort{}
	names := []string{"A1", "A2", "B1", "B2", "C1", "C2"}
	for i, n := range names {
		addr[n] = trackerAddr(i)
	}
	links := map[string][]Link{
		"A1": {{Addr: addr["A2"]}, {Addr: addr["B1"]}},
		"A2": {{Addr: addr["A1"]}, {Addr: addr["B1"]}},
		"B1": {{Addr: addr["A1"]}, {Addr: addr["A2"]}, {Addr: addr["B2"], External: true}},
		"B2": {{Addr: addr["C1"]}, {Addr: addr["C2"]}, {Addr: addr["B1"], External: true}},
		"C1": {{Addr: addr["C2"]}, {Addr: addr["B2"]}},
		"C2": {{Addr: addr["C1"]}, {Addr: addr["B2"]}},
	}
	nodes := map[string]*simNode{}
	var all []*simNode
	for i, n := range names {
		c := cfg
		c.Rand = simConfig(uint64(i)).Rand
		c.Links = links[n]
		nodes[n] = net.add(addr[n], c)
		all = append(all, nodes[n])
	}
	if !nodes["B1"].core.Border() || nodes["A1"].core.Border() {
		t.Fatal("border detection")
	}
	S, T := Infohash{'S'}, Infohash{'T'}
	var sPeers, tPeers [][]Peer
	for i, n := range []string{"A1", "A2", "C1", "C2"} {
		ps := clientPeers(10+i, 2)
		sPeers = append(sPeers, ps)
		nodes[n].core.SetOwn(net.now, S, ps)
		net.collect(nodes[n])
	}
	for i, n := range []string{"A2", "C2"} {
		ps := clientPeers(20+i, 3)
		tPeers = append(tPeers, ps)
		nodes[n].core.SetOwn(net.now, T, ps)
		net.collect(nodes[n])
	}
	wantS, wantT := peerSet(sPeers...), peerSet(tPeers...)
	sHolders := []*simNode{nodes["A1"], nodes["A2"], nodes["C1"], nodes["C2"], nodes["B1"], nodes["B2"]}
	tHolders := []*simNode{nodes["A2"], nodes["C2"], nodes["B1"], nodes["B2"]}
	took, ok := net.runUntil(5*cfg.UpdateInterval, 100*time.Millisecond, func() bool {
		return knowsAll(sHolders, S, wantS) && knowsAll(tHolders, T, wantT)
	})
	if !ok {
		for _, n := range names {
			t.Logf("%s S=%d T=%d", n, len(nodes[n].core.Peers(S)), len(nodes[n].core.Peers(T)))
		}
		t.Fatalf("networks did not converge\n%s", describe(all))
	}
	t.Logf("two networks via border trackers converged after %v (%.2f update intervals)", took, took.Seconds()/cfg.UpdateInterval.Seconds())
	for _, ss := range nodes["B2"].core.Swarms() {
		if ss.Infohash == S && (ss.Local || ss.External != 4 || ss.Internal != 4) {
			t.Errorf("B2's view of S: %+v, want 4 external (A side) and 4 internal (C side) peers", ss)
		}
	}
	for _, ss := range nodes["C1"].core.Swarms() {
		if ss.Infohash == S && (ss.Own != 2 || ss.Internal != 6) {
			t.Errorf("C1's view of S: %+v", ss)
		}
	}
	if nodes["A1"].core.Peers(T) != nil || nodes["C1"].core.Peers(T) != nil {
		t.Error("a tracker without T got T's swarm")
	}
	// Stays converged through elections and rounds.
	net.runFor(10 * time.Minute)
	if !knowsAll(sHolders, S, wantS) || !knowsAll(tHolders, T, wantT) {
		t.Fatalf("lost convergence\n%s", describe(all))
	}
}
