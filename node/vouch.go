package node

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"time"

	"github.com/kadtracker/kadtracker/records"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// What a lookup believes. A storing node can lie in its GET answer: leave
// records out, replay old ones, or add records it made up. It cannot forge
// a signature, so a lookup believes only what announcers signed and what
// several storing nodes agree on:
//
//   - Endpoints are signed. An announcer signs its own address (Record.Addr,
//     payload version 2); honest storing nodes refuse a record whose address
//     is not the one it arrived from (RejectWrongAddr). A lookup serves a
//     client's endpoint only from a signed address, never from the address a
//     storing node reports, and counts seeds and leechers from the records it
//     verified, never from the counts a storing node sends.
//   - Vouching. An announcer's record is vouched for by every storing node
//     whose answer holds a record of that announcer, and by this node's own
//     store (which checked it at PUT). Records vouched for by a majority of
//     the answering nodes come first, most vouched for first. The others
//     form the minority share, ranked last: first those at least two nodes
//     vouch for, then (when two or more nodes answered) those only one
//     returned (Stats.Unvouched), which is what a lone hostile storing
//     node's Sybil records, forged or replayed, look like. The share fills
//     at most one place per weakShare majority records (rounded up, at
//     least one) and at most 1/weakShare of want. Seeds and leechers count
//     the majority records and the minority ones served.
//     Why serve lone records at all: after failures, or churn between two
//     republishes, the one surviving holder of a record is often the only
//     node that has it. netsim measured the rule that dropped them (N=40,
//     m=3, half the nodes failed): lookups found 0.55 of records while
//     0.85 had a live holder. TestVouchChurn gives the share for m=8: with
//     5%, 10%, 25%, 50% of the nodes replaced between two republishes,
//     0%, 0%, 0.03%, 6% of records have one voucher and 0.1%, 1%, 20%,
//     74% fewer than a majority.
//     What an attacker keeps (TestVouchShare, m=8, all answering, 5
//     honest clients, 40 Sybils per hostile node, want 50): 1 to 4
//     colluding storing nodes get 2 of 7 places (29% of the answer, 4% of
//     want), ranked last; 5 (a majority) get all they return. In a swarm
//     with no honest record, one hostile node gets one place.
//   - Withdrawals are tombstones, signed and stored like records: the
//     announcer's newest record wins, tombstone or not, so a storing node
//     replaying a withdrawn record loses to those holding the tombstone.
//   - Bridged endpoints (peers a bridge learned from classic trackers) are
//     named by one bridge's signature only, for addresses nobody checked.
//     A lookup serves one only when bridges at BridgeQuorum distinct
//     addresses (IPv4 address or IPv6 /64; addresses in Limits.Exempt each
//     count alone) name it (this node's own bridge excepted), from records
//     vouched for as above; only global
//     unicast endpoints unless Config.LocalBridgedEndpoints; after every
//     direct record, and at most half the answer (bridgedShare). Measured
//     (TestBridgeQuorum, want 50): an attacker with one address makes
//     clients dial none of its 40 third parties (25 with quorum 1); with
//     two addresses (two IPv4, or IPv6 in two /64s) 25 per lookup, global
//     ones only.
//   - GET answers are bounded: one with more entries than asked for (at most
//     MaxWant) is refused whole (RefusedLongAnswer): a storing node cannot
//     make a lookup check thousands of signatures.
const (
	// minAsk is the fewest records a lookup asks each storing node for.
	minAsk = 32
	// weakShare: records vouched for by fewer than a majority of the
	// answering storing nodes fill at most 1/weakShare of an answer.
	weakShare = 4
	// bridgedShare: bridged endpoints fill at most 1/bridgedShare of an
	// answer.
	bridgedShare = 2
)

// Refusal and rejection reasons of the vouching rules, counted with the
// others in Stats.Refused and Stats.PutsRejectedBy.
const (
	// RefusedLongAnswer: a GET answer with more entries than asked for.
	RefusedLongAnswer = "long_answer"
	// RejectWrongAddr: a record whose signed address is not the one it
	// arrived from.
	RejectWrongAddr = "wrong_addr"
	// RejectLocalEndpoint: a bridged record naming an endpoint that is not
	// global unicast (records.IsGlobal).
	RejectLocalEndpoint = "local_endpoint"
)

var (
	vouchRefusalNames = []string{RefusedLongAnswer}
	vouchRejectNames  = []string{RejectWrongAddr, RejectLocalEndpoint}
)

// lookupPolicy turns the vouching rules off, one by one, for the tests
// that show each is needed. The zero value is the protected node.
type lookupPolicy struct {
	takeOneWord    bool // serve records a single storing node returned as vouched for
	dropLone       bool // drop records a single storing node returned, rather than serve them in the minority share
	noWeakShare    bool // no cap on records vouched for by a minority
	trustCounts    bool // take the largest seed and leecher counts a storing node sent
	acceptUnsigned bool // serve version 1 records at the address the storing node reports
	skipTombstones bool // drop tombstones before comparing sequence numbers
	anyBridge      bool // serve a bridged endpoint one bridge names
	earlyAnyAnswer bool // answer early from the first q answers, agreeing or not
	rankAll        bool // locality ranks the minority share too, and first
	nearAnyGroup   bool // the nearest share takes any number of peers of one source address
}

// answer is one storing node's GET answer.
type answer struct {
	from    peer.ID
	trusted bool // this node's own store
	target  bool // one of the m closest nodes
	entries []answerEntry
	seeds   int // what the storing node claims; see lookupPolicy.trustCounts
	leech   int
	err     error
}

type answerEntry struct {
	envelope []byte
	ip       netip.Addr // where the storing node says the record came from
}

// vouched is an announcer's newest record and who returned one of its.
type vouched struct {
	rec     records.Record
	ip      netip.Addr // the storing node's word, for version 1 records
	support int        // storing nodes whose answer held a record of the announcer
	trusted bool
}

// envelopes verifies each envelope once, for all who read it: the early
// lookup as answers arrive, then merge.
type envelopes struct {
	opened map[string]records.Record
	bad    map[string]bool
}

func newEnvelopes() *envelopes {
	return &envelopes{opened: make(map[string]records.Record), bad: make(map[string]bool)}
}

// open returns env's record if its signature holds, it is of key and it is
// valid at now.
func (e *envelopes) open(n *Node, key records.Key, env []byte, now time.Time, from peer.ID) (records.Record, bool) {
	if rec, ok := e.opened[string(env)]; ok {
		return rec, true
	}
	if e.bad[string(env)] {
		return records.Record{}, false
	}
	r, err := records.Open(env)
	switch {
	case err != nil:
		n.log.Debug("GET returned a bad record", "peer", from, "err", err)
	case r.Key != key:
		n.log.Debug("GET returned a record of another key", "peer", from, "key", r.Key)
	case r.Validate(now, n.cfg.MaxRecordTTL) != nil:
	default:
		e.opened[string(env)] = r
		return r, true
	}
	e.bad[string(env)] = true
	return records.Record{}, false
}

// merge turns the answers into a lookup result by the rules above.
func (n *Node) merge(key records.Key, answers []answer, want int, now time.Time) LookupResult {
	return n.mergeOpened(key, answers, want, now, newEnvelopes())
}

// mergeOpened is merge with the envelopes verified so far.
func (n *Node) mergeOpened(key records.Key, answers []answer, want int, now time.Time, envs *envelopes) LookupResult {
	pol := n.policy
	var res LookupResult
	by := make(map[peer.ID]*vouched)
	answered, claimedSeeds, claimedLeech := 0, 0, 0
	for _, a := range answers {
		if a.err != nil {
			continue
		}
		if !a.trusted {
			answered++
		}
		claimedSeeds, claimedLeech = max(claimedSeeds, a.seeds), max(claimedLeech, a.leech)
		counted := make(map[peer.ID]bool, len(a.entries))
		for _, ae := range a.entries {
			rec, ok := envs.open(n, key, ae.envelope, now, a.from)
			if !ok || (pol.skipTombstones && rec.Withdrawn) {
				continue
			}
			v := by[rec.Announcer]
			if v == nil {
				v = &vouched{rec: rec, ip: ae.ip}
				by[rec.Announcer] = v
			} else if rec.Seq > v.rec.Seq || (rec.Seq == v.rec.Seq && rec.Withdrawn == v.rec.Withdrawn && v.rec.Coord == nil && rec.Coord != nil) {
				// Of one version, the seal with a coordinate (version 3;
				// old storing nodes hold version 2 of it).
				v.rec, v.ip = rec, ae.ip
			}
			if !counted[rec.Announcer] {
				counted[rec.Announcer] = true
				v.support++
				v.trusted = v.trusted || a.trusted
			}
		}
	}
	need, majority := 1, 1
	if answered >= 2 && !pol.takeOneWord {
		need, majority = 2, answered/2+1
	}

	type ranked struct {
		p       Peer
		support int
	}
	var strong, weak, lone []ranked
	pr := n.predictor()
	// Seeds and leechers count every record vouched for by a majority, and
	// of the others only those served: a minority of storing nodes can add
	// no more to the counts than to the peers.
	count := func(p Peer) {
		if p.Seed {
			res.Seeds++
		} else {
			res.Leechers++
		}
	}
	bridges := make(map[netip.AddrPort]map[netip.Addr]bool) // endpoint -> bridge groups
	var bridgeFirst []netip.AddrPort                        // endpoints in the order first named
	bridgeOf := make(map[netip.AddrPort]Peer)
	ownBridged := make(map[netip.AddrPort]bool)
	for _, v := range by {
		r := v.rec
		if r.Withdrawn {
			continue
		}
		alone := !v.trusted && v.support < need
		if alone {
			res.Stats.Unvouched++
			if pol.dropLone {
				continue
			}
		}
		signed := r.Signed()
		// A bridge's record counts towards the quorum only when two storing
		// nodes vouch for it: one hostile storing node could otherwise make
		// up the bridges of a quorum, each signed at a made-up address.
		if r.Bridged && signed && !alone {
			group := n.bridgeGroup(r.Addr)
			// This node's own bridge it takes at its word: the quorum guards
			// its users against others' bridges, not against their own.
			own := n.host != nil && r.Announcer == n.host.ID()
			for _, ep := range r.Endpoints {
				if !n.cfg.LocalBridgedEndpoints && !records.IsGlobal(ep.Addr()) {
					continue
				}
				if bridges[ep] == nil {
					bridges[ep] = make(map[netip.Addr]bool)
					bridgeFirst = append(bridgeFirst, ep)
					bridgeOf[ep] = Peer{Endpoint: ep, Announcer: r.Announcer, Expires: r.Expires, Bridged: true}
				}
				bridges[ep][group] = true
				ownBridged[ep] = ownBridged[ep] || own
			}
		}
		if r.Port == 0 {
			continue // bridged endpoints only
		}
		addr := r.Addr
		if !signed {
			if !pol.acceptUnsigned || !v.ip.IsValid() {
				res.Stats.Unsigned++
				continue
			}
			addr = v.ip
		}
		p := ranked{Peer{Endpoint: netip.AddrPortFrom(addr, r.Port), Seed: r.Seed, Announcer: r.Announcer, Expires: r.Expires, Vouchers: v.support, RTT: pr.rtt(r)}, v.support}
		switch {
		case v.trusted || v.support >= majority || pol.noWeakShare:
			strong = append(strong, p)
			count(p.p)
		case alone:
			p.p.RTT = rankedRTT(p.p.RTT, pol)
			lone = append(lone, p)
		default:
			p.p.RTT = rankedRTT(p.p.RTT, pol)
			weak = append(weak, p)
		}
	}
	// Most vouched for first; map order breaks ties at random.
	bySupport := func(a, b ranked) int { return b.support - a.support }
	slices.SortStableFunc(strong, bySupport)
	slices.SortStableFunc(weak, bySupport)
	weak = append(weak, lone...) // after every record two storing nodes vouch for
	if share := n.localityShare(); share > 0 {
		// Nearest first within the strong set only (locality.go).
		rtt := func(r ranked) time.Duration { return r.p.RTT }
		addrOf := func(r ranked) netip.Addr { return r.p.Endpoint.Addr() }
		if pol.rankAll {
			strong, weak = nearFirst(slices.Concat(strong, weak), rtt, addrOf, want, share, pol.nearAnyGroup), nil
		} else {
			strong = nearFirst(strong, rtt, addrOf, want, share, pol.nearAnyGroup)
		}
	}
	seen := make(map[netip.AddrPort]bool)
	add := func(p Peer) bool {
		if seen[p.Endpoint] || len(res.Peers) >= want {
			return false
		}
		seen[p.Endpoint] = true
		res.Peers = append(res.Peers, p)
		return true
	}
	for _, p := range strong {
		add(p.p)
	}
	maxWeak := len(weak)
	if !pol.noWeakShare {
		// One place per weakShare records vouched for by a majority
		// (rounded up, at least one), and at most 1/weakShare of want.
		maxWeak = min(max(1, ceilDiv(len(res.Peers), weakShare)), ceilDiv(want, weakShare))
	}
	for _, p := range weak {
		if maxWeak == 0 {
			break
		}
		if add(p.p) {
			count(p.p)
			maxWeak--
		}
	}
	if pol.trustCounts {
		res.Seeds, res.Leechers = max(res.Seeds, claimedSeeds), max(res.Leechers, claimedLeech)
	}
	quorum := max(1, n.cfg.BridgeQuorum)
	if pol.anyBridge {
		quorum = 1
	}
	var agreed []ranked
	for _, ep := range bridgeFirst {
		if k := len(bridges[ep]); k >= quorum || ownBridged[ep] {
			p := bridgeOf[ep]
			p.Vouchers = k
			agreed = append(agreed, ranked{p, k})
		}
	}
	slices.SortStableFunc(agreed, bySupport)
	maxBridged := ceilDiv(want, bridgedShare)
	for _, p := range agreed {
		if maxBridged == 0 {
			break
		}
		if add(p.p) {
			maxBridged--
		}
	}
	return res
}

// ErrWrongAddr refuses a record whose signed address is not the one it
// arrived from.
var ErrWrongAddr = errors.New("node: record's signed address is not the one it came from")

// checkVouchable is what a storing node checks of a record beyond its
// signature and expiry: a signed address is the connection's source, and
// a bridged record names only global endpoints (unless
// Config.LocalBridgedEndpoints). It returns the rejection reason too.
func (n *Node) checkVouchable(rec records.Record, remoteIP netip.Addr) (string, error) {
	if rec.Addr.IsValid() && rec.Addr != remoteIP.Unmap().WithZone("") {
		return RejectWrongAddr, fmt.Errorf("%w: signed %s, came from %s", ErrWrongAddr, rec.Addr, remoteIP)
	}
	if n.cfg.LocalBridgedEndpoints {
		return "", nil
	}
	for _, ep := range rec.Endpoints {
		if err := records.CheckGlobalEndpoint(ep); err != nil {
			return RejectLocalEndpoint, err
		}
	}
	return "", nil
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

// bridgeGroup is the unit bridges are counted by: an address a Sybil
// cannot have many of (SourceAddr), or, in the exempt ranges (loopback,
// LAN, mocknet), the address itself.
func (n *Node) bridgeGroup(a netip.Addr) netip.Addr {
	if n.cfg.Limits.Exempts(a) {
		return a.Unmap().WithZone("")
	}
	return records.SourceAddr(a)
}

// signedAddr is the address to sign in a record for storing node p: the
// one p sees this node's connections come from. Without NAT on the way
// that is the local address of the connection; towards a global address
// from a local one (behind NAT) it is the global address of that family
// the host learned from identify's observed addresses or its NAT mapping.
// The zero Addr when there is no connection to p.
func (n *Node) signedAddr(p peer.ID) netip.Addr {
	if p == n.host.ID() {
		return n.ownAddr()
	}
	for _, c := range n.host.Network().ConnsToPeer(p) {
		local, err := addrIP(c.LocalMultiaddr())
		if err != nil {
			continue
		}
		remote, err := addrIP(c.RemoteMultiaddr())
		if err == nil && local.IsUnspecified() {
			// A QUIC connection names the listener's wildcard address as
			// its local one: take the host's own address of the remote's
			// kind instead.
			local = n.hostAddr(func(a netip.Addr) bool {
				return a.Is4() == remote.Is4() && a.IsLoopback() == remote.IsLoopback() && records.IsGlobal(a) == records.IsGlobal(remote)
			})
			if !local.IsValid() {
				continue
			}
		}
		if err != nil || records.IsGlobal(local) || !records.IsGlobal(remote) {
			return local
		}
		if pub := n.hostAddr(func(a netip.Addr) bool { return records.IsGlobal(a) && a.Is4() == local.Is4() }); pub.IsValid() {
			return pub
		}
		return local
	}
	return netip.Addr{}
}

// sealFor signs rec for storing node p: with the address p will see it
// arrive from (signedAddr), unless it is a tombstone, which needs none. It
// connects to p first, so that there is a connection to take it from.
func (n *Node) sealFor(ctx context.Context, p peer.ID, rec records.Record) (records.Record, []byte, error) {
	if !rec.Withdrawn {
		if p != n.host.ID() && n.host.Network().Connectedness(p) != network.Connected {
			if err := n.host.Connect(ctx, peer.AddrInfo{ID: p}); err != nil {
				return rec, nil, err
			}
		}
		rec.Addr = n.signedAddr(p)
		if !rec.Addr.IsValid() {
			return rec, nil, fmt.Errorf("node: no address of ours that %s sees", p)
		}
		rec.Coord = n.signedCoord(p)
	}
	env, err := records.Seal(rec, n.key)
	return rec, env, err
}

// ownAddr is the address signed in the record this node stores for itself
// (it is among the closest to its own key): its first global address, or
// failing that its first other address, loopback last.
func (n *Node) ownAddr() netip.Addr {
	if a := n.hostAddr(records.IsGlobal); a.IsValid() {
		return a
	}
	if a := n.hostAddr(func(a netip.Addr) bool { return !a.IsLoopback() }); a.IsValid() {
		return a
	}
	return n.hostAddr(func(netip.Addr) bool { return true })
}

// hostAddr returns the first of the host's addresses that ok accepts.
// It reads every direct address the host knows, those AutoNAT v2 found
// unreachable included: Addrs drops them, and behind a NAT without a
// mapping the NAT's address, which the node must sign, is one of them.
func (n *Node) hostAddr(ok func(netip.Addr) bool) netip.Addr {
	addrs := n.host.Addrs()
	if h, isAll := n.host.(interface{ AllAddrs() []ma.Multiaddr }); isAll {
		addrs = h.AllAddrs()
	}
	for _, m := range addrs {
		if a, err := addrIP(m); err == nil && !a.IsUnspecified() && ok(a) {
			return a
		}
	}
	return netip.Addr{}
}

// newSalt is a Get's salt: random and nonzero.
func newSalt() uint64 {
	for {
		if s := rand.Uint64(); s != 0 {
			return s
		}
	}
}
