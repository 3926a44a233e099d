package tsup

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/kadtracker/kadtracker/node/tsup/wire"
)

// xbtModel is XBT Unified Tracker (calinburloiu/XBT-Unified-Tracker,
// Tracker/server.cpp and transaction.cpp) as far as TSUP goes, written from
// reading its source, in one internal network, for the simulation. What it
// keeps of XBT, because kadtracker must cope with it:
//
//   - One main loop that wakes on a packet or after 5 s and compares its
//     timers in whole seconds with a strict >. One hello timer for all
//     links, reset by every packet sent to any link (ACKs included): a hello
//     tick comes only after hello seconds of silence toward everyone. The
//     hello tick sends each connected link at most one of SUMMARY, UPDATE+S,
//     CANDIDATURE, LEADER (in that priority), else a HELLO; CANDIDATURE and
//     LEADER go out on hello ticks only.
//   - Elections: a CANDIDATURE received outside a campaign starts one with
//     its sender as notifier (our CANDIDATURE is owed to everyone, theirs
//     is awaited from all but the notifier). Counters end the campaign, then
//     the leaders are chosen locally: fewest mandates, ties by host (as a
//     little-endian uint32) and port, our own address 0.0.0.0 winning every
//     tie, our own count decremented for the swarm being decided but the
//     neighbours' counts as they advertised them (both trackers of a
//     two-tracker swarm elect themselves). A LEADER received makes its
//     sender the leader, no questions asked. LEADER is sent only to a
//     newcomer of a swarm we lead, one info_hash per packet.
//   - Updates: every update tick rebuilds each link's buffer. A swarm's
//     block carries our own peers, and every peer when we lead it; it goes
//     to every member when there is no leader or we lead (full mesh), else
//     to the leader only. Remote peers are keyed by IP and expire
//     1.5 × announce interval after the last UPDATE that named them, on a
//     clean-up every 60 s.
//
// Not modelled: border trackers, NAT ports, dead-peer bookkeeping, SQL.
type xbtModel struct {
	addr netip.AddrPort
	cfg  xbtConfig
	rng  *rand.Rand
	now  time.Time
	out  []Datagram

	links  []*xbtLink
	swarms map[Infohash]*xbtSwarm

	helloT, updateT, mandateT, cleanT int64 // seconds
	wake                              time.Time

	campaign     bool
	nSend, nRecv int
	mandates     int64

	// What a test checks.
	campaigns   int // campaigns started
	unknownPeer int // peers sent for a swarm it lacks (undefined behaviour in XBT)
}

type xbtConfig struct {
	hello, update, disconnect, reconnect, mandate, announce int64 // seconds
	retry                                                   int
}

// defaultXBT is XBT's xbt_config defaults with the given announce, hello
// and update intervals.
func defaultXBT(announce, hello, update time.Duration) xbtConfig {
	return xbtConfig{
		hello: int64(hello / time.Second), update: int64(update / time.Second),
		disconnect: 240, reconnect: 900, mandate: 3600,
		announce: int64(announce / time.Second), retry: 5,
	}
}

// Link status bits, as XBT's.
const (
	xConnected = 1 << iota
	xPending
	xSyn
	xSummary
	xUpdating
	xSendCand
	xRecvCand
	xSendLeader
)

type xbtLink struct {
	addr     netip.AddrPort
	status   int
	cid      uint64
	cookie   uint64 // the id we give it as responder (XBT: a hash of a per-boot secret and its IP)
	delay    bool
	retries  int
	recv     int64
	reconnAt int64
	mandates int64 // advertised in its last CANDIDATURE; MaxInt32 before one

	outSyn, outUnify, outCand, outLeader, outUpdate uint32
	inSyn, inUnify                                  uint32

	summary []wire.SummaryEntry // unacknowledged SUMMARY entries
	update  []wire.Block
	leader  []Infohash
}

type xbtPeer struct {
	port  uint16
	own   bool
	next  int64 // an own peer's next announce
	dead  bool
	mtime int64
}

type xbtSwarm struct {
	ih       Infohash
	peers    map[netip.Addr]*xbtPeer // keyed by IP alone, as XBT
	order    []netip.Addr            // stable iteration
	trackers []*xbtLink
	// hasLeader with leader nil: we lead it (XBT's b_swarm_leader and
	// swarm_leader == NULL).
	hasLeader bool
	leader    *xbtLink
}

func (s *xbtSwarm) member(l *xbtLink) bool { return slices.Contains(s.trackers, l) }

func newXBT(addr netip.AddrPort, cfg xbtConfig, links []netip.AddrPort, seed uint64, now time.Time) *xbtModel {
	x := &xbtModel{addr: addr, cfg: cfg, rng: rand.New(rand.NewPCG(seed, 0x0b7)), now: now, swarms: make(map[Infohash]*xbtSwarm)}
	sec := now.Unix()
	x.helloT = sec - cfg.hello - 1
	x.mandateT = sec - 840
	x.updateT = sec
	x.cleanT = sec
	for _, a := range links {
		x.links = append(x.links, &xbtLink{addr: a, status: xPending, cid: wire.NoConnID, cookie: x.rng.Uint64() &^ 1,
			delay: x.rng.IntN(2) == 1, retries: cfg.retry, mandates: math.MaxInt32})
	}
	x.wake = now
	return x
}

// setOwn gives the tracker its own clients of ih; they announce every
// announce interval.
func (x *xbtModel) setOwn(ih Infohash, ps []Peer) {
	s := x.swarm(ih, true)
	for _, p := range ps {
		ip := p.Addr.Addr()
		if s.peers[ip] == nil {
			s.order = append(s.order, ip)
		}
		s.peers[ip] = &xbtPeer{port: p.Addr.Port(), own: true, mtime: x.now.Unix(), next: x.now.Unix() + x.rng.Int64N(x.cfg.announce)}
	}
}

func (x *xbtModel) swarm(ih Infohash, create bool) *xbtSwarm {
	s := x.swarms[ih]
	if s == nil && create {
		s = &xbtSwarm{ih: ih, peers: make(map[netip.Addr]*xbtPeer)}
		x.swarms[ih] = s
	}
	return s
}

// sorted is the swarms in XBT's std::map order.
func (x *xbtModel) sorted() []*xbtSwarm {
	out := make([]*xbtSwarm, 0, len(x.swarms))
	for _, s := range x.swarms {
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b *xbtSwarm) int { return slices.Compare(a.ih[:], b.ih[:]) })
	return out
}

// Peers is what the tracker answers its clients: every live peer.
func (x *xbtModel) Peers(ih Infohash) []Peer {
	s := x.swarms[ih]
	if s == nil {
		return nil
	}
	var out []Peer
	for _, ip := range s.order {
		if p := s.peers[ip]; p != nil && !p.dead {
			out = append(out, Peer{Addr: netip.AddrPortFrom(ip, p.port)})
		}
	}
	return out
}

// leaderOf says whom the tracker routes ih through: "" none, "self", or
// a neighbour's address.
func (x *xbtModel) leaderOf(ih Infohash) string {
	s := x.swarms[ih]
	switch {
	case s == nil || !s.hasLeader:
		return ""
	case s.leader == nil:
		return "self"
	}
	return s.leader.addr.String()
}

func (x *xbtModel) Ready() []Datagram {
	out := x.out
	x.out = nil
	return out
}

func (x *xbtModel) NextDeadline() time.Time { return x.wake }

func (x *xbtModel) Tick(now time.Time) {
	x.now = now
	x.loop()
}

// loop is the end of one pass of XBT's main loop.
func (x *xbtModel) loop() {
	sec := x.now.Unix()
	for _, s := range x.swarms {
		for _, p := range s.peers {
			if p.own && sec >= p.next {
				// Its client announces on time: alive again even if a
				// NEG from a neighbour killed it meanwhile.
				p.mtime, p.dead = sec, false
				p.next += x.cfg.announce
			}
		}
	}
	if sec-x.cleanT > 60 {
		x.cleanT = sec
		x.cleanUp(sec - x.cfg.announce*3/2)
	}
	x.timers()
	x.wake = x.now.Add(5 * time.Second)
}

func (x *xbtModel) cleanUp(before int64) {
	for _, s := range x.swarms {
		keep := s.order[:0]
		for _, ip := range s.order {
			p := s.peers[ip]
			if p.mtime < before && (p.dead || !p.own) {
				delete(s.peers, ip)
				continue
			}
			if p.mtime < before {
				p.dead, p.mtime = true, x.now.Unix()
			}
			keep = append(keep, ip)
		}
		s.order = keep
	}
}

func (x *xbtModel) txid() uint32 { return uint32(x.rng.Int32N(math.MaxInt32)) }

func (x *xbtModel) send(l *xbtLink, pkt []byte) {
	x.helloT = x.now.Unix() // every send resets the one hello timer
	x.out = append(x.out, Datagram{To: l.addr, Data: pkt})
}

func (x *xbtModel) hdr(l *xbtLink, tx uint32) wire.Header {
	return wire.Header{ConnID: l.cid, TxID: tx, Port: x.addr.Port()}
}

func (x *xbtModel) sendUpdate(l *xbtLink, tx uint32, flags uint8) {
	x.send(l, wire.AppendUpdate(nil, wire.Update{Header: x.hdr(l, tx), Flags: flags, Blocks: l.update}, wire.Plain))
}

func (x *xbtModel) sendCand(l *xbtLink, tx uint32, ack bool) {
	x.send(l, wire.AppendCandidature(nil, wire.Candidature{Header: x.hdr(l, tx), Ack: ack, Mandates: int32(x.mandates)}))
}

func (x *xbtModel) timers() {
	sec := x.now.Unix()
	updTick, built := false, false
	if sec-x.updateT > x.cfg.update {
		updTick = true
		x.updateT = sec
		x.buildUpdates()
		built = true
	}
	helloTick := sec-x.helloT > x.cfg.hello
	if sec-x.mandateT > x.cfg.mandate {
		x.startCampaign(nil)
	}
	if !helloTick && !updTick {
		return
	}
	for _, l := range x.links {
		if sec-l.recv > x.cfg.disconnect && l.status != xPending && l.status != 0 {
			l.status = xPending
			l.retries = x.cfg.retry
		}
		if l.status&xConnected != 0 {
			if helloTick {
				switch {
				case l.status&xPending != 0:
					x.send(l, wire.AppendSummary(nil, wire.Summary{Header: x.hdr(l, l.outUnify), Entries: l.summary}))
				case l.status&xSummary != 0:
					if updTick && !built {
						x.buildUpdates()
						built = true
					}
					x.sendUpdate(l, l.inUnify, wire.UpdateSummary)
				case l.status&xSendCand != 0:
					l.outCand = x.txid()
					x.sendCand(l, l.outCand, false)
				case l.status&xSendLeader != 0:
					l.outLeader = x.txid()
					x.send(l, wire.AppendLeader(nil, wire.Leader{Header: x.hdr(l, l.outLeader), Infohashes: l.leader[:1]}, wire.Plain))
				}
				if l.status&(xPending|xSummary|xUpdating|xSendCand|xSendLeader) == 0 {
					x.send(l, wire.AppendHello(nil, wire.Hello{Header: x.hdr(l, 0)}))
				}
			}
			if l.status&(xPending|xSummary) == 0 && (updTick && len(l.update) > 0 || helloTick && l.status&xUpdating != 0) ||
				updTick && !helloTick && l.status&xPending == 0 && len(l.update) > 0 {
				x.sendUpdate(l, l.outUpdate, 0)
				l.status |= xUpdating
			}
			continue
		}
		if !helloTick {
			continue
		}
		switch {
		case l.status == xPending:
			if l.delay {
				l.delay = false
				break
			}
			l.outSyn = x.txid()
			x.send(l, wire.AppendSyn(nil, wire.Syn{Header: x.hdr(l, l.outSyn)}))
			if l.retries--; l.retries <= 0 {
				l.reconnAt, l.retries, l.status = sec, x.cfg.retry, 0
			}
		case l.status == 0 && sec-l.reconnAt > x.cfg.reconnect:
			if l.delay {
				l.delay = false
				break
			}
			l.outSyn = x.txid()
			x.send(l, wire.AppendSyn(nil, wire.Syn{Header: x.hdr(l, l.outSyn)}))
			l.reconnAt = sec
		case l.status == xSyn:
			x.send(l, wire.AppendSyn(nil, wire.Syn{Header: x.hdr(l, l.inSyn), Flags: wire.SynAck}))
		}
	}
}

// buildUpdates refills every link's update buffer (a new transaction id
// each time).
func (x *xbtModel) buildUpdates() {
	for _, l := range x.links {
		l.update = nil
		l.outUpdate = x.txid()
	}
	for _, s := range x.sorted() {
		if len(s.trackers) == 0 {
			continue
		}
		var cands []wire.Peer
		for _, ip := range s.order {
			p := s.peers[ip]
			if p.own || s.hasLeader && s.leader == nil {
				cands = append(cands, wire.Peer{Addr: netip.AddrPortFrom(ip, p.port), Dead: p.dead})
			}
		}
		if len(cands) > wire.SendBlockPeers {
			x.rng.Shuffle(len(cands), func(i, j int) { cands[i], cands[j] = cands[j], cands[i] })
			cands = cands[:wire.SendBlockPeers]
		}
		b := wire.Block{Infohash: s.ih, Peers: cands}
		if s.leader != nil && s.leader.status == 0 {
			s.hasLeader, s.leader = false, nil
		}
		for _, l := range s.trackers {
			if s.hasLeader && s.leader != nil {
				if l.status&xConnected != 0 && l.status&(xPending|xSummary) != 0 {
					l.update = append(l.update, b)
				}
				continue
			}
			l.update = append(l.update, b)
		}
		if s.hasLeader && s.leader != nil {
			s.leader.update = append(s.leader.update, b)
		}
	}
}

func (x *xbtModel) Step(now time.Time, from netip.AddrPort, b []byte) error {
	x.now = now
	defer x.loop()
	_, h, err := wire.PeekHeader(b)
	if err != nil {
		return err
	}
	var l *xbtLink
	for _, c := range x.links {
		if c.addr == netip.AddrPortFrom(from.Addr(), h.Port) {
			l = c
		}
	}
	if l == nil {
		return ErrUnknownTracker
	}
	m, err := wire.Parse(b, wire.Plain)
	if err != nil {
		return err
	}
	sec := now.Unix()
	connected := l.status != 0 && l.status != xPending
	switch m := m.(type) {
	case wire.Syn:
		if m.Ack() {
			if l.status != 0 && l.status != xPending || m.TxID != l.outSyn {
				return ErrState
			}
			l.status = xConnected | xPending
			l.cid, l.recv = m.ConnID, sec
			l.outUnify = x.txid()
			var es []wire.SummaryEntry
			for _, s := range x.sorted() {
				es = append(es, wire.SummaryEntry{Infohash: s.ih})
			}
			l.summary = append(l.summary, es...)
			x.send(l, wire.AppendSummary(nil, wire.Summary{Header: x.hdr(l, l.outUnify), Entries: es}))
			return nil
		}
		l.inSyn = m.TxID
		l.status = xSyn
		if l.cid == wire.NoConnID || m.ConnID != l.cid {
			l.cid = l.cookie
		}
		l.recv = sec
		l.update, l.summary = nil, nil
		x.send(l, wire.AppendSyn(nil, wire.Syn{Header: x.hdr(l, l.inSyn), Flags: wire.SynAck}))
	case wire.Hello:
		if m.ConnID != l.cid || !connected {
			return ErrState
		}
		l.recv = sec
	case wire.Summary:
		if m.ConnID != l.cid {
			return ErrConnID
		}
		l.inUnify = m.TxID
		if l.status&(xConnected|xSyn) == 0 {
			return ErrState
		}
		if l.status&xSyn != 0 {
			l.status = xConnected | xSummary
		} else {
			l.status |= xSummary
		}
		l.recv = sec
		for _, e := range m.Entries {
			s := x.swarms[e.Infohash]
			if s == nil {
				continue
			}
			if e.Removed {
				s.trackers = slices.DeleteFunc(s.trackers, func(t *xbtLink) bool { return t == l })
				if s.leader == l {
					s.hasLeader, s.leader = false, nil
				}
				continue
			}
			x.unify(s, l)
		}
		x.buildUpdates()
		x.sendUpdate(l, l.inUnify, wire.UpdateSummary)
	case wire.Update:
		if m.ConnID != l.cid {
			return ErrConnID
		}
		s, a := m.Flags&wire.UpdateSummary != 0, m.Flags&wire.UpdateAck != 0
		switch {
		case s && !a && m.TxID != l.outUnify:
			return ErrStale
		case s && a && l.status&xSummary != 0 && m.TxID != l.inUnify:
			return ErrStale
		}
		if l.status&xConnected == 0 {
			return ErrState
		}
		l.recv = sec
		x.apply(l, m.Blocks)
		switch {
		case s && !a:
			l.status &^= xPending
			l.summary = nil
			x.buildUpdates()
			x.sendUpdate(l, l.outUnify, wire.UpdateSummary|wire.UpdateAck)
		case s && a && l.status&xSummary != 0:
			l.status &^= xSummary
		case !s && a:
			l.status &^= xUpdating
		case !s && !a:
			x.send(l, wire.AppendUpdate(nil, wire.Update{Header: x.hdr(l, m.TxID), Flags: wire.UpdateAck}, wire.Plain))
		}
	case wire.Candidature:
		if m.ConnID != l.cid || !connected {
			return ErrState
		}
		if m.Ack {
			if m.TxID != l.outCand {
				return ErrStale
			}
			if l.status&xSendCand != 0 {
				l.status &^= xSendCand
				x.nSend--
			}
		} else {
			x.sendCand(l, m.TxID, true)
			l.mandates = int64(m.Mandates)
			if !x.campaign {
				x.startCampaign(l)
			} else if l.status&xRecvCand != 0 {
				l.status &^= xRecvCand
				x.nRecv--
			}
		}
		if x.nSend <= 0 && x.nRecv <= 0 { // checked in or out of a campaign
			x.campaign = false
			x.chooseLeaders()
		}
		l.recv = sec
	case wire.Leader:
		if m.ConnID != l.cid || !connected {
			return ErrState
		}
		if m.Ack {
			if m.TxID != l.outLeader {
				return ErrStale
			}
			l.status &^= xSendLeader
			l.leader = nil
		} else {
			x.send(l, wire.AppendLeader(nil, wire.Leader{Header: x.hdr(l, m.TxID), Ack: true}, wire.Plain))
			for _, ih := range m.Infohashes {
				if s := x.swarms[ih]; s != nil {
					s.hasLeader, s.leader = true, l
				}
			}
		}
		l.recv = sec
	}
	return nil
}

// unify adds l to s; a newcomer owes a CANDIDATURE in a running campaign
// (not counted: XBT's defect) and learns that we lead s.
func (x *xbtModel) unify(s *xbtSwarm, l *xbtLink) {
	if s.member(l) {
		return
	}
	s.trackers = append(s.trackers, l)
	if x.campaign {
		l.status |= xSendCand
	}
	if s.hasLeader && s.leader == nil {
		l.leader = append(l.leader, s.ih)
		l.status |= xSendLeader
	}
}

func (x *xbtModel) apply(l *xbtLink, blocks []wire.Block) {
	sec := x.now.Unix()
	for _, b := range blocks {
		s := x.swarms[b.Infohash]
		if s == nil {
			if len(b.Peers) > 0 {
				x.unknownPeer++
			}
			continue
		}
		x.unify(s, l)
		for _, wp := range b.Peers {
			ip := wp.Addr.Addr()
			p := s.peers[ip]
			if wp.Dead {
				if p != nil {
					p.dead = true
				}
				continue
			}
			if p == nil {
				p = &xbtPeer{port: wp.Addr.Port()}
				s.peers[ip] = p
				s.order = append(s.order, ip)
			}
			p.dead, p.mtime = false, sec
		}
	}
}

func (x *xbtModel) startCampaign(notifier *xbtLink) {
	if x.campaign {
		return
	}
	x.campaign = true
	x.mandateT = x.now.Unix()
	x.campaigns++
	if len(x.swarms) == 0 {
		return
	}
	x.nSend, x.nRecv = 0, 0
	for _, s := range x.sorted() {
		for _, l := range s.trackers {
			if l.status&xConnected == 0 {
				continue
			}
			if l.status&xSendCand == 0 {
				l.status |= xSendCand
				x.nSend++
			}
			if l.status&xRecvCand == 0 && l != notifier {
				l.status |= xRecvCand
				x.nRecv++
			}
		}
	}
}

// hostKey is XBT's tie-break: the IPv4 address as a native (little-endian)
// uint32, then the port.
func hostKey(a netip.AddrPort) uint64 {
	b := a.Addr().As4()
	return uint64(binary.LittleEndian.Uint32(b[:]))<<16 | uint64(a.Port())
}

func (x *xbtModel) chooseLeaders() {
	for _, s := range x.sorted() {
		if s.hasLeader {
			if s.leader != nil {
				s.leader.mandates--
			} else {
				x.mandates--
			}
		}
		var min *xbtLink
		for _, l := range s.trackers {
			if min == nil {
				min = l
				s.hasLeader = true
				continue
			}
			if l.mandates < min.mandates || l.mandates == min.mandates && hostKey(l.addr) < hostKey(min.addr) {
				min = l
			}
		}
		// Our own key: config ip 0.0.0.0 and our port, so we win ties.
		if min != nil && (x.mandates < min.mandates || x.mandates == min.mandates && uint64(x.addr.Port()) < hostKey(min.addr)) {
			min = nil
		}
		if min != nil {
			min.mandates++
		} else if s.hasLeader {
			x.mandates++
		}
		s.leader = min
	}
}

// The model reproduces what two XBTs were seen doing on the wire
// (TSUP-WIRE.md §7): after their first campaign (mandate interval - 840 s
// after start) both lead the swarm they share, and each sends the other
// every peer, its own included.
func TestXBTModelBothLead(t *testing.T) {
	net := newSimNet(t, 6, 0)
	a, b := trackerAddr(1), trackerAddr(2)
	cfg := defaultXBT(30*time.Minute, 10*time.Second, time.Minute)
	xa := newXBT(a, cfg, []netip.AddrPort{b}, 1, net.now)
	xb := newXBT(b, cfg, []netip.AddrPort{a}, 2, net.now)
	xa.setOwn(testIH, clientPeers(1, 2))
	xb.setOwn(testIH, clientPeers(2, 2))
	net.addTracker(a, xa, nil)
	net.addTracker(b, xb, nil)
	echoed := false
	net.observe = func(from netip.AddrPort, d Datagram) {
		m, err := wire.Parse(d.Data, wire.Plain)
		if u, ok := m.(wire.Update); err == nil && ok && from == a {
			for _, blk := range u.Blocks {
				for _, p := range blk.Peers {
					echoed = echoed || p.Addr.Addr() == clientPeers(2, 1)[0].Addr.Addr()
				}
			}
		}
	}
	net.runFor(time.Duration(cfg.mandate-840)*time.Second - time.Minute)
	if l := xa.leaderOf(testIH); l != "" || echoed || len(xa.Peers(testIH)) != 4 {
		t.Fatalf("before the first campaign: leader %q, echoed %v, %d peers", l, echoed, len(xa.Peers(testIH)))
	}
	net.runFor(5 * time.Minute)
	if xa.campaigns == 0 || xa.leaderOf(testIH) != "self" || xb.leaderOf(testIH) != "self" {
		t.Fatalf("after %d campaigns: leaders %q and %q, want both self", xa.campaigns, xa.leaderOf(testIH), xb.leaderOf(testIH))
	}
	net.runFor(2 * time.Minute)
	if !echoed {
		t.Fatal("a leader did not send the other its own peers back")
	}
}
