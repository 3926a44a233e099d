package node

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/kadtracker/kadtracker/node/internal/pb"
	"github.com/kadtracker/kadtracker/node/vivaldi"
	"github.com/kadtracker/kadtracker/records"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-msgio/pbio"
)

// localityNode is a bare merge node with a settled coordinate and the
// given locality share.
func localityNode(t *testing.T, share float64) *Node {
	t.Helper()
	n := mergeNode(nil)
	v, err := vivaldi.New(vivaldi.DefaultConfig(), 1)
	if err != nil {
		t.Fatal(err)
	}
	far := vivaldi.Coord{Vec: [vivaldi.Dims]float64{0.05}, Height: 0.001, Error: 0.1}
	for range 100 {
		v.Update("r", far, 52*time.Millisecond)
	}
	if v.Coord().Error >= coordUsableError {
		t.Fatalf("coordinate did not settle: %+v", v.Coord())
	}
	n.viv = v
	n.SetLocality(share)
	return n
}

// at is a signed coordinate d seconds from c along the second axis.
func at(c vivaldi.Coord, d float64) *records.Coord {
	c.Vec[1] += d
	c.Height, c.Error = 0, 0.1
	rc := records.Coord(c.Round())
	return &rc
}

// swarm is n records at distinct global addresses, announcer i signing a
// coordinate dist(i) seconds away from own (nil for no coordinate).
func swarm(t *testing.T, key records.Key, n int, seed uint64, addr func(i int) netip.Addr, coord func(i int) *records.Coord) [][]byte {
	t.Helper()
	exp := time.Now().Add(20 * time.Minute)
	var out [][]byte
	for i, id := range newIdentities(t, n, seed) {
		out = append(out, sealAs(t, id, records.Record{Key: key, Port: uint16(7000 + i), Addr: addr(i), Seq: 1, Expires: exp, Coord: coord(i)}))
	}
	return out
}

func distinctAddr(base byte) func(int) netip.Addr {
	return func(i int) netip.Addr { return netip.AddrFrom4([4]byte{8, base, byte(i / 256), byte(i)}) }
}

// TestLocalityRanking: with share 0.5 and want 10 the 5 nearest come first,
// nearest first, then 5 of the rest at random; records without a
// coordinate are of unknown distance, never dropped.
func TestLocalityRanking(t *testing.T) {
	key := randomKey(t, rand.New(rand.NewPCG(3, 3)), false)
	n := localityNode(t, 0.5)
	own := n.viv.Coord()
	// 30 with coordinates 10 ms apart, in shuffled order; 10 without.
	dist := rand.New(rand.NewPCG(4, 4)).Perm(30)
	envs := swarm(t, key, 40, 5, distinctAddr(1), func(i int) *records.Coord {
		if i >= 30 {
			return nil
		}
		return at(own, 0.005+0.01*float64(dist[i]))
	})
	res := n.merge(key, answersOf(8, 0, envs, nil), 10, time.Now())
	if len(res.Peers) != 10 {
		t.Fatalf("%d peers", len(res.Peers))
	}
	for i, p := range res.Peers[:5] {
		want := own.RTT(vivaldi.Coord(*at(own, 0.005+0.01*float64(i))))
		if p.RTT == 0 || (p.RTT-want).Abs() > time.Millisecond {
			t.Fatalf("peer %d predicted at %s, want the %d-th nearest at %s", i, p.RTT, i+1, want)
		}
	}
	for _, p := range res.Peers[5:] {
		if p.RTT > 0 && p.RTT < res.Peers[4].RTT {
			t.Fatalf("a nearer peer (%s) in the random part", p.RTT)
		}
	}
	// Asking for all: nothing dropped, those without coordinates included.
	all := n.merge(key, answersOf(8, 0, envs, nil), 50, time.Now())
	unknown := 0
	for _, p := range all.Peers {
		if p.RTT == 0 {
			unknown++
		}
	}
	if len(all.Peers) != 40 || unknown != 10 {
		t.Fatalf("want 50: %d peers, %d of unknown distance; want 40 and 10", len(all.Peers), unknown)
	}
	// Over many lookups the random part draws from all the rest, unknown
	// ones included: swarms stay connected.
	seen := make(map[peer.ID]bool)
	for range 50 {
		for _, p := range n.merge(key, answersOf(8, 0, envs, nil), 10, time.Now()).Peers[5:] {
			seen[p.Announcer] = true
		}
	}
	if len(seen) < 30 {
		t.Fatalf("the random part drew only %d distinct peers of 35 in 50 lookups", len(seen))
	}
	// Share 0: the order of old, by vouchers then at random.
	n.SetLocality(0)
	near := 0
	for _, p := range n.merge(key, answersOf(8, 0, envs, nil), 10, time.Now()).Peers[:5] {
		if p.RTT > 0 && p.RTT < 60*time.Millisecond {
			near++
		}
	}
	if near == 5 {
		t.Fatal("locality off, yet the 5 nearest came first")
	}
}

// TestLocalityMinority: Sybils of 3 hostile storing nodes of 8, each at an
// address of its own and claiming to sit on this node, stay in the minority
// share behind every honest peer (want 30: the share has room). The control ranks all records together:
// the Sybils come first.
func TestLocalityMinority(t *testing.T) {
	key := randomKey(t, rand.New(rand.NewPCG(6, 6)), false)
	for _, pol := range []lookupPolicy{{}, {rankAll: true, nearAnyGroup: true}} {
		n := localityNode(t, 0.5)
		n.policy = pol
		own := n.viv.Coord()
		honest := swarm(t, key, 20, 7, distinctAddr(2), func(i int) *records.Coord { return at(own, 0.05+0.01*float64(i)) })
		forged := swarm(t, key, 20, 8, distinctAddr(3), func(int) *records.Coord { return at(own, 0) })
		res := n.merge(key, answersOf(5, 3, honest, forged), 30, time.Now())
		first := slices.IndexFunc(res.Peers, func(p Peer) bool { return p.Endpoint.Addr().As4()[1] == 3 })
		t.Logf("policy %+v: first Sybil at %d of %d", pol, first, len(res.Peers))
		if pol == (lookupPolicy{}) {
			if first < 20 {
				t.Fatalf("a Sybil at %d, before the 20 honest peers", first)
			}
			continue
		}
		if first != 0 {
			t.Fatalf("control: Sybils first at %d, want 0 (the rule matters)", first)
		}
	}
}

// TestLocalitySourceGroup: ten announcers at one address, vouched for by
// every storing node, all claiming to sit on this node, take one of the
// five near places; the control, any number per address, gives them all.
func TestLocalitySourceGroup(t *testing.T) {
	key := randomKey(t, rand.New(rand.NewPCG(8, 8)), false)
	for _, anyGroup := range []bool{false, true} {
		n := localityNode(t, 0.5)
		n.policy.nearAnyGroup = anyGroup
		own := n.viv.Coord()
		honest := swarm(t, key, 30, 9, distinctAddr(4), func(i int) *records.Coord { return at(own, 0.02+0.01*float64(i)) })
		sybil := swarm(t, key, 10, 10, func(int) netip.Addr { return forgedAddr }, func(int) *records.Coord { return at(own, 0) })
		res := n.merge(key, answersOf(8, 0, slices.Concat(honest, sybil), nil), 10, time.Now())
		inNear := 0
		for _, p := range res.Peers[:5] {
			if p.Endpoint.Addr() == forgedAddr {
				inNear++
			}
		}
		t.Logf("any group %v: %d of 5 near places to one address", anyGroup, inNear)
		switch {
		case !anyGroup && inNear != 1:
			t.Fatalf("%d near places to one address, want 1", inNear)
		case anyGroup && inNear != 5:
			t.Fatalf("control: %d near places to one address, want all 5", inNear)
		}
	}
}

// TestLocalityHairpin: a peer behind this node's own address is of
// unknown distance, however near its coordinate.
func TestLocalityHairpin(t *testing.T) {
	own := vivaldi.Coord{Error: 0.1}
	mine := netip.MustParseAddr("198.51.100.4")
	pr := predictor{own: own, usable: true, mine: []netip.Addr{mine}}
	r := records.Record{Addr: mine, Coord: at(own, 0.001)}
	if got := pr.rtt(r); got != 0 {
		t.Fatalf("hairpin peer predicted at %s, want unknown", got)
	}
	r.Addr = netip.MustParseAddr("198.51.100.5")
	if got := pr.rtt(r); got == 0 {
		t.Fatal("a neighbour at another address is unknown")
	}
	pr.usable = false
	if got := pr.rtt(r); got != 0 {
		t.Fatalf("unsettled coordinate predicted %s", got)
	}
}

// TestCoordinatesTravel: on mocknet with 10 ms links, pings settle the
// coordinates near the true 20 ms round trip; an announce then stores
// version 3 records; a node with locality off finds the peer all the same
// (records with coordinates are valid for daemons that ignore them), and
// an announcer that signs none is found and of unknown distance.
func TestCoordinatesTravel(t *testing.T) {
	tn := newTestNet(t, 8, 10*time.Millisecond, func(c *Config) {
		c.Replication = 4
		c.CoordProbeInterval = 0
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for range 12 {
		for i, a := range tn.nodes {
			for j, b := range tn.nodes {
				if i != j {
					if err := a.Probe(ctx, b.ID()); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
	}
	a, b := tn.nodes[0], tn.nodes[1]
	ca, sa := a.Coordinate()
	cb, _ := b.Coordinate()
	t.Logf("coordinates %+v and %+v predict %s; %d samples, refused %v", ca, cb, ca.RTT(cb), sa.Samples, sa.Refused)
	// 20 ms on the wire; a loaded -race run inflates every sample, so
	// the band is wide: without coordinates travelling the prediction is
	// not near it at all.
	if rtt := ca.RTT(cb); rtt < 12*time.Millisecond || rtt > 40*time.Millisecond || ca.Error >= coordUsableError {
		t.Fatalf("predicted %s (error %.2f), want about 20ms", rtt, ca.Error)
	}

	key := randomKey(t, rand.New(rand.NewPCG(11, 11)), false)
	if _, err := a.Announce(ctx, key, 6881, true); err != nil {
		t.Fatal(err)
	}
	v3 := 0
	for _, nd := range tn.nodes {
		es, err := nd.Records(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			if r, err := records.Open(e.Envelope); err == nil && r.Announcer == a.ID() && r.Coord != nil {
				v3++
			}
		}
	}
	if v3 < 3 {
		t.Fatalf("%d storing nodes hold a version 3 record", v3)
	}
	for _, share := range []float64{0, 1} {
		reader := tn.nodes[7]
		reader.SetLocality(share)
		lr, err := reader.Lookup(ctx, key, 10)
		if err != nil || len(lr.Peers) != 1 || lr.Peers[0].Announcer != a.ID() {
			t.Fatalf("locality %v: lookup %+v, %v", share, lr.Peers, err)
		}
		if share > 0 && lr.Peers[0].RTT == 0 {
			t.Fatal("a version 3 record ranked as unknown")
		}
	}
	// An announcer that signs no coordinate: found, of unknown distance.
	c := tn.nodes[2]
	c.cfg.SignCoordinates = false
	key2 := randomKey(t, rand.New(rand.NewPCG(12, 12)), false)
	if _, err := c.Announce(ctx, key2, 6881, true); err != nil {
		t.Fatal(err)
	}
	lr, err := tn.nodes[7].Lookup(ctx, key2, 10)
	if err != nil || len(lr.Peers) != 1 || lr.Peers[0].RTT != 0 {
		t.Fatalf("record without coordinate: %+v, %v; want found, of unknown distance", lr.Peers, err)
	}
}

// TestOldStoringNode: a storing node that refuses payload type 3, as a
// daemon before coordinates does, gets the record as version 2 and is
// remembered as old; a response with a bad coordinate is counted and the
// rest of it used.
func TestOldStoringNode(t *testing.T) {
	tn := newTestNet(t, 2, time.Millisecond, func(c *Config) { c.CoordProbeInterval = 0 })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, old := tn.nodes[0], tn.nodes[1]
	var got []int // payload versions the old node was sent
	old.Host().SetStreamHandler(ProtocolID, func(s network.Stream) {
		defer s.Close()
		var req pb.Request
		if pbio.NewDelimitedReader(s, MaxRequestSize).ReadMsg(&req) != nil {
			return
		}
		resp := &pb.Response{}
		if put := req.GetPut(); put != nil {
			r, err := records.Open(put.GetEnvelope())
			switch {
			case err != nil:
			case r.Coord != nil:
				got = append(got, 3)
				resp = failure(pb.Status_REJECTED, fmt.Errorf("%w: unknown payload type %q", records.ErrMalformed, records.PayloadTypeV3))
			default:
				got = append(got, 2)
			}
		}
		resp.Coord = []byte{1, 2, 3} // a bad coordinate
		_ = pbio.NewDelimitedWriter(s).WriteMsg(resp)
	})
	// Settle a's coordinate by hand, so it signs one.
	for range 50 {
		a.viv.Update("x", vivaldi.Coord{Vec: [vivaldi.Dims]float64{0.01}, Error: 0.1}, 10*time.Millisecond)
	}
	rec := records.Record{Key: randomKey(t, rand.New(rand.NewPCG(13, 13)), false), Announcer: a.ID(), Port: 6881, Seq: 1, Expires: time.Now().Add(time.Hour)}
	if err := a.putTo(ctx, old.ID(), rec); err != nil {
		t.Fatal(err)
	}
	rec.Seq = 2
	if err := a.putTo(ctx, old.ID(), rec); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []int{3, 2, 2}) {
		t.Fatalf("old node was sent versions %v, want 3, then 2, then 2 only", got)
	}
	if r := a.Stats().Refused[RefusedBadCoord]; r != 3 {
		t.Fatalf("%d bad coordinates counted, want 3", r)
	}
}

// BenchmarkMergeLocality: BenchmarkMerge's 8 answers, with 200 records
// each carrying a coordinate, want 50, at locality 0 and 0.75.
func BenchmarkMergeLocality(b *testing.B) {
	key := randomKey(b, rand.New(rand.NewPCG(12, 12)), false)
	exp := time.Now().Add(time.Hour)
	for _, share := range []float64{0, 0.75} {
		b.Run(fmt.Sprintf("share=%v", share), func(b *testing.B) {
			n := mergeNode(nil)
			v, err := vivaldi.New(vivaldi.DefaultConfig(), 1)
			if err != nil {
				b.Fatal(err)
			}
			n.viv = v
			for range 100 {
				v.Update("r", vivaldi.Coord{Vec: [vivaldi.Dims]float64{0.05}, Error: 0.1}, 52*time.Millisecond)
			}
			n.SetLocality(share)
			own := v.Coord()
			var envs [][]byte
			for i, id := range newIdentities(b, 200, 13) {
				envs = append(envs, sealAs(b, id, records.Record{Key: key, Port: 7000, Addr: netip.AddrFrom4([4]byte{8, 8, byte(i / 256), byte(i)}), Seq: 1, Expires: exp, Coord: at(own, 0.001*float64(i))}))
			}
			answers := answersOf(8, 0, envs, nil)
			b.ReportAllocs()
			for b.Loop() {
				if res := n.merge(key, answers, 50, time.Now()); len(res.Peers) != 50 {
					b.Fatalf("%d peers", len(res.Peers))
				}
			}
		})
	}
}
