package tsup

import (
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/kadtracker/kadtracker/node/tsup/wire"
)

// omap is a map from peer address to V that iterates in a stable order
// (insertion, with deletes moving the last entry into the hole), so the
// Core's output depends on its inputs and its seed only.
type omap[V any] struct {
	idx  map[netip.AddrPort]int
	keys []netip.AddrPort
	vals []V
}

func (m *omap[V]) len() int { return len(m.keys) }

func (m *omap[V]) get(k netip.AddrPort) *V {
	if i, ok := m.idx[k]; ok {
		return &m.vals[i]
	}
	return nil
}

// put returns k's value, adding a zero one if k is new.
func (m *omap[V]) put(k netip.AddrPort) (v *V, added bool) {
	if i, ok := m.idx[k]; ok {
		return &m.vals[i], false
	}
	if m.idx == nil {
		m.idx = make(map[netip.AddrPort]int)
	}
	m.idx[k] = len(m.keys)
	m.keys = append(m.keys, k)
	var zero V
	m.vals = append(m.vals, zero)
	return &m.vals[len(m.vals)-1], true
}

// delAt removes entry i; the last entry takes its place.
func (m *omap[V]) delAt(i int) {
	last := len(m.keys) - 1
	delete(m.idx, m.keys[i])
	if i != last {
		m.keys[i], m.vals[i] = m.keys[last], m.vals[last]
		m.idx[m.keys[i]] = i
	}
	var zero V
	m.vals[last] = zero
	m.keys, m.vals = m.keys[:last], m.vals[:last]
}

type ownPeer struct {
	seed   bool
	dead   bool
	deadAt time.Time
	seen   bool // scratch for SetOwn
}

// maxSources is how many links that reported a peer are remembered (see
// remotePeer.suppressed).
const maxSources = 4

// maxPlainTTL caps the lifetime a slow neighbour's reports give a peer
// (see Core.ttl).
const maxPlainTTL = time.Hour

type source struct {
	link int
	at   time.Time
}

type remotePeer struct {
	origin Origin
	seed   bool
	mtime  time.Time // last positive report
	dead   bool
	deadAt time.Time
	// expired: dead because no report came for its lifetime, rather than
	// reported dead.
	expired bool
	src     [maxSources]source
	nsrc    int
}

func (p *remotePeer) addSource(l int, now time.Time) {
	oldest := 0
	for i := range p.nsrc {
		if p.src[i].link == l {
			p.src[i].at = now
			return
		}
		if p.src[i].at.Before(p.src[oldest].at) {
			oldest = i
		}
	}
	if p.nsrc < maxSources {
		p.src[p.nsrc] = source{l, now}
		p.nsrc++
		return
	}
	p.src[oldest] = source{l, now}
}

// suppressed reports whether the peer is kept from link l because l
// reported it itself: for as long as l is the only tracker reporting it
// (l's own peer, which an echo would keep alive at l after its client
// left), and, when others report it too, only while l's report is younger
// than window and l speaks the extensions. A link without them may be XBT,
// which forwards peers it does not refresh (an XBT leading the swarm) and
// forgets them 1.5 announce intervals after the last report it got, an
// interval we cannot see: such a peer goes back to it every round (XBT
// keeps one entry per IP, so the copy costs it nothing).
func (p *remotePeer) suppressed(l *link, now time.Time, window time.Duration) bool {
	mine, others := false, false
	for i := range p.nsrc {
		if p.src[i].link != l.idx {
			others = true
			continue
		}
		if l.ext() && now.Sub(p.src[i].at) < window {
			return true
		}
		mine = true
	}
	return mine && !others
}

func (p *remotePeer) reportedBy(l int) bool {
	for i := range p.nsrc {
		if p.src[i].link == l {
			return true
		}
	}
	return false
}

// Leader values in swarm.leader (else a link index).
const (
	leaderNone = -2
	leaderSelf = -1
)

type swarm struct {
	ih      Infohash
	pos     int  // index in Core.list
	local   bool // our clients announce it (own peers, live or lingering)
	own     omap[ownPeer]
	remote  omap[remotePeer]
	members []uint64 // bit set of link indices that share it
	// named: members that named it themselves (SUMMARY entry, UPDATE
	// block, LEADER), as opposed to border trackers, members of all.
	named  []uint64
	leader [2]int // per kind: leaderNone, leaderSelf or a link
	// heard is when a neighbour last named it with content (a SUMMARY
	// entry, live peers, a LEADER claim): a border tracker keeps a swarm
	// it has no clients of for PeerTTL after that.
	heard time.Time
}

func (s *swarm) member(i int) bool  { return s.members[i/64]&(1<<(i%64)) != 0 }
func (s *swarm) isNamed(i int) bool { return s.named[i/64]&(1<<(i%64)) != 0 }

func (c *Core) newSwarm(ih Infohash) *swarm {
	s := &swarm{
		ih:      ih,
		pos:     len(c.list),
		members: make([]uint64, (len(c.links)+63)/64),
		named:   make([]uint64, (len(c.links)+63)/64),
		leader:  [2]int{leaderNone, leaderNone},
		heard:   c.now,
	}
	c.swarms[ih] = s
	c.list = append(c.list, s)
	for _, l := range c.links {
		if l.border && l.state == stateConnected {
			c.unify(s, l)
		}
	}
	return s
}

// removeSwarm forgets s, telling the neighbours when it was announced.
func (c *Core) removeSwarm(s *swarm, tell bool) {
	for _, l := range c.links {
		c.part(s, l)
	}
	if tell {
		c.announce(s.ih, true)
	}
	last := len(c.list) - 1
	c.list[s.pos] = c.list[last]
	c.list[s.pos].pos = s.pos
	c.list[last] = nil
	c.list = c.list[:last]
	delete(c.swarms, s.ih)
}

// unify makes l a member of s, with the hooks for a newcomer: a LEADER
// notice if we lead s, a part in a running campaign, an election if s has
// no leader of l's kind.
func (c *Core) unify(s *swarm, l *link) {
	if s.member(l.idx) {
		return
	}
	s.members[l.idx/64] |= 1 << (l.idx % 64)
	l.shared++
	if c.cfg.FullMesh {
		return
	}
	switch s.leader[l.kind] {
	case leaderSelf:
		c.queueLeader(l, s.ih)
	case leaderNone:
		c.needElection = true
	}
	if c.camp != nil && !l.involved {
		c.involve(l, nil)
	}
}

// named makes l a member of s that named s itself.
func (c *Core) named(s *swarm, l *link) {
	c.unify(s, l)
	s.named[l.idx/64] |= 1 << (l.idx % 64)
}

// part ends l's membership of s; s loses l as its leader.
func (c *Core) part(s *swarm, l *link) {
	if !s.member(l.idx) {
		return
	}
	s.members[l.idx/64] &^= 1 << (l.idx % 64)
	s.named[l.idx/64] &^= 1 << (l.idx % 64)
	l.shared--
	if s.leader[l.kind] == l.idx {
		s.leader[l.kind] = leaderNone
		c.needElection = true
	}
}

// validPeer reports an endpoint worth handing to clients.
func validPeer(a netip.AddrPort) bool {
	ip := a.Addr()
	return ip.IsValid() && a.Port() != 0 && !ip.IsUnspecified() && !ip.IsMulticast()
}

// SetOwn sets the peers our own clients announce for ih (the endpoints
// other trackers' clients should connect to, typically this host's public
// address with each client's port). Peers no longer listed are advertised
// as dead, then forgotten; when none are left the swarm goes and the
// neighbours are told. A new swarm is announced to the neighbours at once.
// Invalid endpoints are skipped.
func (c *Core) SetOwn(now time.Time, ih Infohash, peers []Peer) error {
	c.now = now
	s := c.swarms[ih]
	if s == nil {
		if !slices.ContainsFunc(peers, func(p Peer) bool { return validPeer(p.Addr) }) {
			return nil
		}
		if len(c.list) >= c.cfg.MaxSwarms {
			return ErrTooManySwarms
		}
		s = c.newSwarm(ih)
	}
	for i := range s.own.vals {
		s.own.vals[i].seen = false
	}
	n := 0
	for _, p := range peers {
		a := netip.AddrPortFrom(p.Addr.Addr().Unmap(), p.Addr.Port())
		if !validPeer(a) || (s.own.get(a) == nil && s.own.len() >= c.cfg.MaxPeersPerSwarm) {
			continue
		}
		op, _ := s.own.put(a)
		*op = ownPeer{seed: p.Seed, seen: true}
		n++
	}
	for i := range s.own.vals {
		if op := &s.own.vals[i]; !op.seen && !op.dead {
			op.dead, op.deadAt = true, now
		}
	}
	if n > 0 && !s.local {
		s.local = true
		if !c.border() {
			c.announce(ih, false)
		}
	}
	return nil
}

// announce queues a one-entry SUMMARY to every connected link: a swarm
// appeared or went.
func (c *Core) announce(ih Infohash, removed bool) {
	for _, l := range c.links {
		if l.state != stateConnected {
			continue
		}
		e := wire.SummaryEntry{Infohash: ih, Removed: removed}
		if i, ok := l.sumQueued[ih]; ok {
			l.sumQueue[i] = e
		} else {
			l.sumQueued[ih] = len(l.sumQueue)
			l.sumQueue = append(l.sumQueue, e)
		}
		c.kickSummary(l)
	}
}

// kickSummary sends l's next SUMMARY chunk unless one is outstanding. The
// first SUMMARY of a connection lists every local swarm (a border tracker
// sends only the border byte); later ones carry the queued changes.
func (c *Core) kickSummary(l *link) {
	if l.state != stateConnected || l.sumOut != nil || (!l.sumFull && len(l.sumQueue) == 0) {
		return
	}
	m := wire.Summary{Header: c.hdr(l, c.txid())}
	switch {
	case c.border():
		m.Border = l.sumFull
		l.sumQueue = l.sumQueue[:0]
		clear(l.sumQueued)
		if !m.Border {
			return
		}
	case l.sumFull:
		clear(l.sumQueued)
		l.sumQueue = l.sumQueue[:0]
		for _, s := range c.list {
			if s.local {
				l.sumQueue = append(l.sumQueue, wire.SummaryEntry{Infohash: s.ih})
			}
		}
	}
	l.sumFull = false
	if !m.Border {
		n := min(len(l.sumQueue), (c.budget(l)-wire.HeaderLen)/wire.SummaryEntryLen)
		m.Entries = append([]wire.SummaryEntry(nil), l.sumQueue[:n]...)
		l.sumQueue = append(l.sumQueue[:0], l.sumQueue[n:]...)
		clear(l.sumQueued)
		for i, e := range l.sumQueue {
			l.sumQueued[e.Infohash] = i
		}
	}
	l.sumOut = &outPkt{tx: m.TxID, pkt: wire.AppendSummary(nil, m), at: c.now}
	c.send(l, wire.ActionSummary, l.sumOut.pkt)
}

// onSummary: the third leg of the handshake, or a change of the
// neighbour's swarms. We answer with UPDATE+S carrying our peers of the
// common swarms. (XBT changes state before it checks the payload; here a
// malformed SUMMARY never got this far.)
func (c *Core) onSummary(l *link, m wire.Summary) error {
	if m.ConnID != l.cid {
		return ErrConnID
	}
	switch l.state {
	case stateSynReceived:
		c.connect(l)
	case stateConnected:
		l.lastRecv = c.now
	default:
		return ErrState
	}
	if m.Border {
		c.markBorder(l)
	}
	for _, e := range m.Entries {
		s := c.swarms[e.Infohash]
		if e.Removed {
			if s != nil {
				c.part(s, l)
			}
			continue
		}
		if s == nil && c.border() && len(c.list) < c.cfg.MaxSwarms {
			s = c.newSwarm(e.Infohash)
		}
		if s != nil {
			c.named(s, l)
			s.heard = c.now
		}
	}
	l.sumIn, l.sumInTx, l.sumInAt = true, m.TxID, c.now
	c.sendUnify(l, m.TxID, wire.UpdateSummary)
	return nil
}

// markBorder records that l is a border tracker: a member of every swarm.
func (c *Core) markBorder(l *link) {
	if l.border {
		return
	}
	l.border = true
	for _, s := range c.list {
		c.unify(s, l)
	}
}

// sendUnify sends UPDATE+S or UPDATE+S+A with transaction tx: our peers of
// every swarm l shares, whatever the leaders (unification is the first
// update between the two). Blocks beyond one packet follow as data UPDATEs.
func (c *Core) sendUnify(l *link, tx uint32, flags uint8) {
	if c.border() {
		flags |= wire.UpdateBorder
	}
	pkts := c.packUpdate(l, c.blocksFor(l, true))
	for i, blocks := range pkts {
		if i == 0 {
			c.send(l, wire.ActionUpdate, wire.AppendUpdate(nil, wire.Update{Header: c.hdr(l, tx), Flags: flags, Blocks: blocks}, l.mode()))
			continue
		}
		c.sendData(l, blocks)
	}
	if len(pkts) == 0 {
		c.send(l, wire.ActionUpdate, wire.AppendUpdate(nil, wire.Update{Header: c.hdr(l, tx), Flags: flags}, l.mode()))
	}
}

// sendData sends one data UPDATE and keeps it until acknowledged.
func (c *Core) sendData(l *link, blocks []wire.Block) {
	tx := c.txid()
	var f uint8
	if c.border() {
		f = wire.UpdateBorder
	}
	pkt := wire.AppendUpdate(nil, wire.Update{Header: c.hdr(l, tx), Flags: f, Blocks: blocks}, l.mode())
	l.upd = append(l.upd, outPkt{tx: tx, pkt: pkt, at: c.now})
	c.send(l, wire.ActionUpdate, pkt)
}

func (c *Core) onUpdate(l *link, m wire.Update) error {
	if m.ConnID != l.cid {
		return ErrConnID
	}
	if l.state != stateConnected {
		return ErrState
	}
	l.lastRecv = c.now
	if m.Flags&wire.UpdateBorder != 0 {
		c.markBorder(l)
	}
	if !m.IsAck() && len(m.Blocks) > 0 {
		c.sawData(l)
	}
	switch {
	case m.IsAck():
		for i := range l.upd {
			if l.upd[i].tx == m.TxID {
				l.upd = append(l.upd[:i], l.upd[i+1:]...)
				return nil
			}
		}
		return ErrStale
	case m.Flags&wire.UpdateSummary != 0 && m.Flags&wire.UpdateAck == 0: // UPDATE+S
		switch {
		case l.sumOut != nil && m.TxID == l.sumOut.tx:
			l.sumOut = nil
			l.sumDone, l.sumDoneOK = m.TxID, true
		case l.sumDoneOK && m.TxID == l.sumDone: // our UPDATE+S+A was lost
		default:
			return ErrStale
		}
		c.apply(l, m.Blocks)
		c.sendUnify(l, m.TxID, wire.UpdateSummary|wire.UpdateAck)
		c.kickSummary(l)
	case m.Flags&wire.UpdateSummary != 0: // UPDATE+S+A
		if m.TxID != l.sumInTx {
			return ErrStale
		}
		l.sumIn = false
		c.apply(l, m.Blocks)
	default:
		c.apply(l, m.Blocks)
		c.send(l, wire.ActionUpdate, wire.AppendUpdate(nil, wire.Update{Header: c.hdr(l, m.TxID), Flags: wire.UpdateAck}, l.mode()))
	}
	return nil
}

// apply takes in the peers of an UPDATE from l. A block makes l a member
// of its swarm; a border tracker creates a swarm it hears of: from a block
// with live peers, or from any block over a link without the extensions
// (an empty block is how a border tracker toward XBT names a swarm).
// Remote peers never override own ones.
func (c *Core) apply(l *link, blocks []wire.Block) {
	for _, b := range blocks {
		s := c.swarms[b.Infohash]
		if s == nil {
			if !c.border() || (l.ext() && !anyLive(b.Peers)) || len(c.list) >= c.cfg.MaxSwarms {
				continue
			}
			s = c.newSwarm(b.Infohash)
		}
		c.named(s, l)
		if anyLive(b.Peers) {
			s.heard = c.now
		}
		for _, p := range b.Peers {
			a := netip.AddrPortFrom(p.Addr.Addr().Unmap(), p.Addr.Port())
			if !validPeer(a) {
				continue
			}
			if op := s.own.get(a); op != nil && !op.dead {
				continue
			}
			if p.Dead {
				if rp := s.remote.get(a); rp != nil && (!rp.dead || rp.expired) {
					rp.dead, rp.deadAt, rp.expired = true, c.now, false
				}
				continue
			}
			rp := s.remote.get(a)
			if rp == nil {
				if s.remote.len() >= c.cfg.MaxPeersPerSwarm {
					c.stats.PeersRefused++
					continue
				}
				rp, _ = s.remote.put(a)
			}
			rp.origin = originOf(l.kind)
			rp.mtime = c.now
			rp.dead, rp.expired = false, false
			if l.ext() {
				rp.seed = p.Seed
			}
			rp.addSource(l.idx, c.now)
		}
	}
}

// sawData measures how often l sends peers, for ttl: a neighbour without
// the extensions may be an XBT with its own update interval. A short gap
// (a retransmission) only halves the estimate.
func (c *Core) sawData(l *link) {
	if !l.ext() && !l.dataAt.IsZero() {
		if gap := c.now.Sub(l.dataAt); gap >= time.Second {
			l.dataGap = max(gap, l.dataGap/2)
		}
	}
	l.dataAt = c.now
}

func anyLive(ps []wire.Peer) bool {
	for _, p := range ps {
		if !p.Dead {
			return true
		}
	}
	return false
}

// linger is how long dead peers are advertised (NEG) before they are
// forgotten.
func (c *Core) linger() time.Duration { return 3 * c.cfg.UpdateInterval }

// blocksFor builds l's blocks: for each swarm l shares, the peers the
// forwarding rules allow on l's kind of link (own peers always; internal
// peers over internal links only by the internal leader, external peers
// over external links only by the external leader; the other kind always),
// not a peer l itself reported (see remotePeer.suppressed), and toward a
// link without the extensions that reported a peer no NEG when the peer
// merely expired: XBT applies a NEG to its own clients too, and the
// silence may be the slow neighbour's own (XBT expires remote peers
// itself). Unless unifying, a swarm whose leader of l's kind is another
// connected tracker goes to that leader only.
func (c *Core) blocksFor(l *link, unifying bool) []wire.Block {
	md := l.mode()
	limit := wire.SendBlockPeers
	if l.ext() {
		limit = c.cfg.ExtendedPeers
	}
	var blocks []wire.Block
	for _, s := range c.list {
		if !s.member(l.idx) {
			continue
		}
		k := l.kind
		if L := s.leader[k]; !unifying && L >= 0 && L != l.idx && c.links[L].state == stateConnected {
			continue
		}
		lead := s.leader[k] == leaderSelf
		cands := c.scratch[:0]
		for i, a := range s.own.keys {
			op := &s.own.vals[i]
			p := wire.Peer{Addr: a, Seed: op.seed, Dead: op.dead}
			if wire.Encodable(p, md) {
				cands = append(cands, p)
			}
		}
		for i, a := range s.remote.keys {
			rp := &s.remote.vals[i]
			if (rp.origin == originOf(k) && !lead) || rp.suppressed(l, c.now, c.echoWindow()) ||
				(rp.expired && !l.ext() && rp.reportedBy(l.idx)) {
				continue
			}
			p := wire.Peer{Addr: a, Seed: rp.seed, Dead: rp.dead}
			if wire.Encodable(p, md) {
				cands = append(cands, p)
			}
		}
		if len(cands) > limit {
			for i := range limit {
				j := i + c.rng.IntN(len(cands)-i)
				cands[i], cands[j] = cands[j], cands[i]
			}
			cands = cands[:limit]
		}
		c.scratch = cands
		if !l.ext() && !s.isNamed(l.idx) {
			// A border neighbour that may be XBT and has not named s: XBT
			// misreads the peers of a block for a swarm it lacks, but
			// creates the swarm from an empty block and names it back.
			cands = cands[:0]
		}
		ps := append([]wire.Peer(nil), cands...)
		for len(ps) > wire.SendBlockPeers {
			blocks = append(blocks, wire.Block{Infohash: s.ih, Peers: ps[:wire.SendBlockPeers:wire.SendBlockPeers]})
			ps = ps[wire.SendBlockPeers:]
		}
		blocks = append(blocks, wire.Block{Infohash: s.ih, Peers: ps})
	}
	return blocks
}

// packUpdate splits blocks into UPDATE payloads that fit l's packets.
func (c *Core) packUpdate(l *link, blocks []wire.Block) [][]wire.Block {
	room := c.budget(l) - wire.FlagsHeaderLen
	var pkts [][]wire.Block
	var cur []wire.Block
	size := 0
	for _, b := range blocks {
		n := wire.BlockLen(b.Peers)
		if size+n > room && len(cur) > 0 {
			pkts = append(pkts, cur)
			cur, size = nil, 0
		}
		cur = append(cur, b)
		size += n
	}
	if len(cur) > 0 {
		pkts = append(pkts, cur)
	}
	return pkts
}

// round is an update round: expire peers, then send every connected link
// that is not unifying its UPDATE (superseding unacknowledged ones).
func (c *Core) round() {
	c.stats.Rounds++
	c.gc()
	for _, l := range c.links {
		if l.state != stateConnected || l.handshaking() {
			continue
		}
		l.upd = l.upd[:0]
		for _, blocks := range c.packUpdate(l, c.blocksFor(l, false)) {
			c.sendData(l, blocks)
		}
	}
}

// echoWindow is how long a link's report of a peer keeps the peer from
// being sent back to it when another tracker reports it too: a round, and
// a hello interval for its retransmission.
func (c *Core) echoWindow() time.Duration { return c.cfg.UpdateInterval + c.cfg.HelloInterval }

// ttl is how long a report over link i keeps a peer alive: PeerTTL, or
// for a neighbour that updates more slowly (XBT's default period is 300 s,
// PeerTTL's default too) twice its period, at most maxPlainTTL.
func (c *Core) ttl(i int) time.Duration {
	return max(c.cfg.PeerTTL, min(2*c.links[i].dataGap, maxPlainTTL))
}

// fresh reports a remote peer some report still keeps alive.
func (c *Core) fresh(rp *remotePeer) bool {
	if c.now.Sub(rp.mtime) <= c.cfg.PeerTTL {
		return true
	}
	for i := range rp.nsrc {
		if c.now.Sub(rp.src[i].at) <= c.ttl(rp.src[i].link) {
			return true
		}
	}
	return false
}

// gc expires peers and swarms: remote peers no report keeps alive (see ttl) turn dead,
// dead peers are forgotten after the linger, a swarm with no own peers
// left goes (a border tracker keeps it while it has peers or members other
// than border trackers, and for PeerTTL after it was last named).
func (c *Core) gc() {
	now := c.now
	for i := len(c.list) - 1; i >= 0; i-- {
		s := c.list[i]
		for j := s.own.len() - 1; j >= 0; j-- {
			if op := &s.own.vals[j]; op.dead && now.Sub(op.deadAt) > c.linger() {
				s.own.delAt(j)
			}
		}
		for j := s.remote.len() - 1; j >= 0; j-- {
			rp := &s.remote.vals[j]
			switch {
			case rp.dead && now.Sub(rp.deadAt) > c.linger():
				s.remote.delAt(j)
				continue
			case !rp.dead && !c.fresh(rp):
				rp.dead, rp.deadAt, rp.expired = true, now, true
			}
			for k := rp.nsrc - 1; k >= 0 && !rp.dead; k-- {
				// A dead peer keeps its reporters while it lingers, for
				// blocksFor's NEG rules.
				if now.Sub(rp.src[k].at) > c.ttl(rp.src[k].link) {
					rp.src[k] = rp.src[rp.nsrc-1]
					rp.nsrc--
				}
			}
		}
		if s.local && s.own.len() == 0 {
			s.local = false
			if !c.border() {
				c.removeSwarm(s, true)
				continue
			}
		}
		if !s.local && s.remote.len() == 0 && !c.hasPlainMember(s) && now.Sub(s.heard) > c.cfg.PeerTTL {
			c.removeSwarm(s, false)
		}
	}
}

// hasPlainMember reports a member that is not a border tracker (border
// trackers are members of everything, which keeps nothing alive).
func (c *Core) hasPlainMember(s *swarm) bool {
	for _, l := range c.links {
		if s.member(l.idx) && !l.border {
			return true
		}
	}
	return false
}

// Peers returns the unified swarm of ih: own peers and the live peers
// learned over TSUP, each endpoint once (own first). Dead peers are never
// returned.
func (c *Core) Peers(ih Infohash) []Peer {
	s := c.swarms[ih]
	if s == nil {
		return nil
	}
	out := make([]Peer, 0, s.own.len()+s.remote.len())
	for i, a := range s.own.keys {
		if op := s.own.vals[i]; !op.dead {
			out = append(out, Peer{Addr: a, Seed: op.seed, Origin: Own})
		}
	}
	for i, a := range s.remote.keys {
		rp := &s.remote.vals[i]
		if rp.dead {
			continue
		}
		if op := s.own.get(a); op != nil && !op.dead {
			continue
		}
		out = append(out, Peer{Addr: a, Seed: rp.seed, Origin: rp.origin})
	}
	return out
}

func (s *swarm) String() string { return fmt.Sprintf("swarm %v", s.ih) }
