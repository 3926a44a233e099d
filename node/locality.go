package node

import (
	"context"
	"math"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/kadtracker/kadtracker/node/internal/pb"
	"github.com/kadtracker/kadtracker/node/vivaldi"
	"github.com/kadtracker/kadtracker/records"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Locality (issue 16, the CTracker design). Every node keeps a Vivaldi
// coordinate (package node/vivaldi). Every record-protocol response carries
// the answering node's coordinate, and the asker takes the round trip of its
// request (write to read, dial excluded) as a sample: announces, lookups and
// republishes already make these round trips; a node whose coordinate has
// not settled adds a ping to a routing-table peer every
// Config.CoordProbeInterval, a settled one every coordProbeSlowdown times
// that. The announcer signs its coordinate into its records (payload type
// 3), so a record tells where its announcer is.
//
// A lookup then orders the peers a majority of storing nodes vouch for (the
// strong set of vouch.go, and only it) by the round trip this node
// predicts to each: the nearest Config.Locality share of the answer first,
// then the rest of the strong set at random (biased neighbour selection,
// Bindal et al., ICDCS 2006: the random part keeps swarms connected); the
// minority share and bridged endpoints follow as before, unranked, so
// locality never promotes a record fewer storing nodes vouch for. A record
// without a coordinate is of unknown distance: it is never dropped, only
// left to the random part. So is a record while this node's own coordinate
// has not settled (error above coordUsableError).
//
// The announcer chooses its coordinate: it may lie, to be served first. A
// lie cannot promote it past the strong set, and the nearest share takes at
// most one peer per source address (records.SourceAddr), so Sybils at one
// address claiming to sit next to every user take one place, not the share.
//
// Hairpin NAT: a peer whose signed address is one of this node's own
// addresses sits behind the same public address as this node's client
// (the same NAT, usually the same LAN). Its predicted round trip is tiny,
// but its endpoint is the shared public address, which the client reaches
// only if the NAT hairpins, and many home routers do not. Such peers are
// ranked as unknown: served in the random part, as without locality,
// never first. The LAN path between them is BitTorrent's own to find
// (Local Service Discovery, BEP 14).
//
// Old daemons (before payload type 3) refuse version 3 records, as their
// strict parser must. A node signs its coordinate only for storing nodes
// not known to be old; a storing node that refuses a record for its
// payload type is remembered as old (in the peerstore: only then, as its
// lock is shared by every request) and gets version 2 at once. Lookups by old daemons
// still drop the version 3 records new storing nodes serve them: in a
// mixed network, Config.SignCoordinates off keeps every record readable
// by old daemons until they are upgraded.
const (
	// coordUsableError: this node ranks by coordinate, and signs its own,
	// only once its error estimate is below this (it starts at 1.5).
	coordUsableError = 1.0
	// coordProbeSlowdown: a settled coordinate probes this many times less
	// often.
	coordProbeSlowdown = 8
	// coordSettledError: below it the coordinate counts as settled.
	coordSettledError = 0.3
	// localityAsk: with locality on, a lookup asks each storing node for
	// this many times want (at most MaxWant), so that there are near peers
	// to choose from.
	localityAsk = 4
	// peerstore key marking a peer that refused payload type 3.
	coordPeerstoreKey = "kadtracker/record-v3"
)

// RefusedBadCoord counts responses whose coordinate did not parse or
// was out of range (vivaldi.Parse); the response itself is used.
const RefusedBadCoord = "bad_coord"

var localityRefusalNames = []string{RefusedBadCoord}

// Coordinate is this node's network coordinate and what its Vivaldi client
// counted.
func (n *Node) Coordinate() (vivaldi.Coord, vivaldi.Stats) {
	return n.viv.Coord(), n.viv.Stats()
}

// SetLocality changes Config.Locality while the node runs (experiments,
// the local API): the share of a lookup's answer given to the nearest
// peers, 0 to 1; 0 turns ranking off.
func (n *Node) SetLocality(share float64) {
	n.locality.Store(math.Float64bits(min(max(share, 0), 1)))
}

func (n *Node) localityShare() float64 { return math.Float64frombits(n.locality.Load()) }

// askFor is how many records a lookup asks each storing node for.
func (n *Node) askFor(want int) int {
	if n.localityShare() > 0 {
		return min(MaxWant, max(minAsk, localityAsk*want))
	}
	return max(want, minAsk)
}

// sample takes a response's coordinate and the request's round trip as a
// Vivaldi sample.
func (n *Node) sample(p peer.ID, resp *pb.Response, rtt time.Duration) {
	raw := resp.GetCoord()
	if len(raw) == 0 || n.viv == nil {
		return
	}
	c, err := vivaldi.Parse(raw)
	if err != nil {
		n.refuse(RefusedBadCoord, p, netip.Addr{}, "err", err)
		return
	}
	if why := n.viv.Update(string(p), c, rtt); why != "" {
		n.log.Debug("coordinate sample refused", "peer", p, "reason", why, "rtt", rtt)
	}
}

// coordWire is this node's coordinate as responses carry it.
func (n *Node) coordWire() []byte {
	if n.viv == nil {
		return nil
	}
	return vivaldi.Append(make([]byte, 0, vivaldi.EncodedSize), n.viv.Coord())
}

// signedCoord is the coordinate to sign in a record for storing node p:
// nil while this node's own has not settled, with signing off, or when p
// is known not to read payload type 3.
func (n *Node) signedCoord(p peer.ID) *records.Coord {
	if !n.cfg.SignCoordinates || n.viv == nil {
		return nil
	}
	c := n.viv.Coord().Round()
	if c.Error >= coordUsableError {
		return nil
	}
	if p != n.host.ID() {
		if v, err := n.host.Peerstore().Get(p, coordPeerstoreKey); err == nil && v == false {
			return nil
		}
	}
	return &c
}

// putTo seals rec for p and stores it there (on this node, directly). A
// storing node that refuses the record's payload type is an old one: it is
// remembered, and gets the record without a coordinate.
func (n *Node) putTo(ctx context.Context, p peer.ID, rec records.Record) error {
	sealed, env, err := n.sealFor(ctx, p, rec)
	if err != nil {
		return err
	}
	if p == n.host.ID() {
		// The zero IP marks our own record; GET fills in the address the
		// asker reached us on.
		return n.store.Put(ctx, records.Entry{Record: sealed, Envelope: env})
	}
	put := func(env []byte) (*pb.Response, error) {
		n.stats.putsSent.Add(1)
		n.stats.putBytes.Add(int64(len(env)))
		return n.request(ctx, p, &pb.Request{Body: &pb.Request_Put{Put: &pb.Put{Envelope: env}}})
	}
	resp, err := put(env)
	if err != nil && sealed.Coord != nil && resp.GetStatus() == pb.Status_REJECTED && strings.Contains(resp.GetError(), "unknown payload type") {
		_ = n.host.Peerstore().Put(p, coordPeerstoreKey, false)
		if _, env, err = n.sealFor(ctx, p, rec); err != nil {
			return err
		}
		_, err = put(env)
	}
	return err
}

// probeLoop pings a random routing-table peer every CoordProbeInterval
// while the coordinate has not settled, and coordProbeSlowdown times less
// often once it has: the round trips of real traffic may be too few.
func (n *Node) probeLoop() {
	every := n.cfg.CoordProbeInterval
	t := time.NewTimer(every)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
		if ps := n.dht.RoutingTable().ListPeers(); len(ps) > 0 {
			_ = n.Probe(n.ctx, ps[rand.IntN(len(ps))])
		}
		next := every
		if n.viv.Coord().Error < coordSettledError {
			next *= coordProbeSlowdown
		}
		t.Reset(next)
	}
}

// Probe sends p one ping, whose round trip is a coordinate sample.
func (n *Node) Probe(ctx context.Context, p peer.ID) error {
	_, err := n.request(ctx, p, &pb.Request{Body: &pb.Request_Ping{Ping: &pb.Ping{}}})
	return err
}

// predictor predicts this node's round trip to the announcers of records,
// or 0 for unknown: no coordinate, this node's own not settled, or an
// announcer behind one of this node's own addresses (hairpin NAT, above).
type predictor struct {
	own    vivaldi.Coord
	usable bool
	mine   []netip.Addr
}

func (n *Node) predictor() predictor {
	if n.viv == nil {
		return predictor{} // a bare Node of a unit test
	}
	pr := predictor{own: n.viv.Coord()}
	pr.usable = pr.own.Error < coordUsableError
	if n.host != nil {
		for _, m := range n.host.Addrs() {
			if a, err := addrIP(m); err == nil {
				pr.mine = append(pr.mine, a)
			}
		}
		if a := n.hostAddr(records.IsGlobal); a.IsValid() && !slices.Contains(pr.mine, a) {
			pr.mine = append(pr.mine, a) // a NAT's address, unreachable to AutoNAT
		}
	}
	return pr
}

func (pr predictor) rtt(r records.Record) time.Duration {
	if !pr.usable || r.Coord == nil || !r.Addr.IsValid() || slices.Contains(pr.mine, r.Addr) {
		return 0
	}
	return max(pr.own.RTT(vivaldi.Coord(*r.Coord)), 1)
}

// rankedRTT is the RTT a peer of the minority share is served with: none,
// so that nobody downstream (the tracker front) ranks it near.
func rankedRTT(rtt time.Duration, pol lookupPolicy) time.Duration {
	if pol.rankAll {
		return rtt
	}
	return 0
}

// nearFirst orders xs (peers equally trusted) for an answer of want: the
// nearest ceil(share × min(want, len(xs))) of those of known round trip,
// at most one per source address unless anyGroup, then all others at
// random.
func nearFirst[T any](xs []T, rtt func(T) time.Duration, addr func(T) netip.Addr, want int, share float64, anyGroup bool) []T {
	near := int(math.Ceil(share * float64(min(want, len(xs)))))
	idx := make([]int, 0, len(xs))
	for i, x := range xs {
		if rtt(x) > 0 {
			idx = append(idx, i)
		}
	}
	slices.SortStableFunc(idx, func(a, b int) int { return int(rtt(xs[a]) - rtt(xs[b])) })
	out := make([]T, 0, len(xs))
	taken := make([]bool, len(xs))
	groups := make(map[netip.Addr]bool)
	for _, i := range idx {
		if len(out) >= near {
			break
		}
		g := records.SourceAddr(addr(xs[i]))
		if !anyGroup && groups[g] {
			continue
		}
		groups[g] = true
		taken[i] = true
		out = append(out, xs[i])
	}
	rest := make([]T, 0, len(xs)-len(out))
	for i, x := range xs {
		if !taken[i] {
			rest = append(rest, x)
		}
	}
	rand.Shuffle(len(rest), func(i, j int) { rest[i], rest[j] = rest[j], rest[i] })
	return append(out, rest...)
}
