package tsup

import (
	"encoding/binary"
	"math"
	"time"

	"github.com/kadtracker/kadtracker/node/tsup/wire"
)

// campaign is a running election: CANDIDATUREs go to every connected
// neighbour sharing a swarm and come back from each; when all are in (or at
// the deadline) every tracker elects locally from the same numbers.
type campaign struct {
	deadline time.Time
	mandates int32 // ours, frozen for the campaign so every neighbour sees one value
}

// Campaign epochs (kadtracker's ranked CANDIDATURE carries one): a tracker
// starting a campaign numbers it one past the last it saw, a CANDIDATURE
// with a higher epoch starts (or joins) that campaign, and one with an
// epoch already seen is a straggler of a finished campaign: it is answered
// but starts nothing.
//
// XBT sends no epoch, and starts a campaign on any CANDIDATURE it gets
// outside one; its own CANDIDATURE follows on its next hello tick, which
// comes only after its hello interval (60 s by default) of silence toward
// every link, so any time later. Were that CANDIDATURE to start a campaign
// here, or be answered with ours, the two would echo without end. So
// toward a link without the extensions (which may be XBT; it is never a
// candidate here, as it sends no rank): its CANDIDATURE never starts a
// campaign; a campaign does not wait for it; and we answer it with ours only
// when it is not the one our last CANDIDATURE made it owe us (link.owed),
// that is when it comes from a campaign of its own that awaits ours. Each
// of our campaigns so costs such a neighbour one campaign at most. As XBT
// elects itself at the end of its campaigns (its both-leader defect), we
// repeat our LEADER claims to it whenever one of its campaigns may have
// ended.

// mandates counts the swarm leaderships (internal and external) we hold.
func (c *Core) mandates() int32 {
	var n int32
	for _, s := range c.list {
		for k := range 2 {
			if s.leader[k] == leaderSelf {
				n++
			}
		}
	}
	return n
}

func (c *Core) startCampaign(notifier *link, epoch uint32) {
	c.epoch = max(epoch, c.epoch+1)
	c.camp = &campaign{
		deadline: c.now.Add(c.cfg.DisconnectInterval + 2*c.cfg.HelloInterval),
		mandates: c.mandates(),
	}
	c.nextCampaign = c.now.Add(c.cfg.MandateInterval)
	c.electAt = time.Time{}
	c.stats.Elections++
	for _, l := range c.links {
		l.involved, l.candIn, l.candGot = false, false, l == notifier
	}
	for _, l := range c.links {
		if l.state == stateConnected && l.shared > 0 {
			c.involve(l, notifier)
		}
	}
	c.log.Debug("election campaign", "mandates", c.camp.mandates, "notifier", notifier != nil)
	c.checkCampaign()
}

// involve adds l to the running campaign: it gets our CANDIDATURE and,
// over a link with the extensions, we wait for its own unless it already
// came (XBT forgets to count a newcomer, so its campaigns end early or
// hang).
func (c *Core) involve(l *link, notifier *link) {
	l.involved = true
	l.candIn = l.ext() && !l.candGot && l != notifier
	c.sendCandidature(l, false)
}

// sendCandidature sends l our CANDIDATURE; reply says it answers one of
// l's (see link.owed).
func (c *Core) sendCandidature(l *link, reply bool) {
	l.candOut, l.candTx, l.candAt = true, c.txid(), c.now
	l.candReply = reply
	m := wire.Candidature{Header: c.hdr(l, l.candTx)}
	switch {
	case c.cfg.FullMesh:
	case c.camp != nil:
		m.Mandates = c.camp.mandates
	default:
		m.Mandates = c.mandates()
	}
	if l.ext() && !c.cfg.FullMesh {
		m.HasRank, m.Rank, m.Epoch = true, c.rank, c.epoch
	}
	c.send(l, wire.ActionCandidature, wire.AppendCandidature(nil, m))
}

// checkCampaign ends the campaign once every involved neighbour has both
// acknowledged our CANDIDATURE and sent its own.
func (c *Core) checkCampaign() {
	if c.camp == nil {
		return
	}
	for _, l := range c.links {
		if l.involved && (l.candOut || l.candIn) {
			return
		}
	}
	c.endCampaign()
}

func (c *Core) endCampaign() {
	my := c.camp.mandates
	c.camp = nil
	for _, l := range c.links {
		l.candOut, l.candIn = false, false
		clear(l.reasserted)
	}
	c.elect(my)
	for _, l := range c.links {
		l.involved, l.candGot = false, false
	}
}

func (c *Core) onCandidature(l *link, m wire.Candidature) error {
	if m.ConnID != l.cid {
		return ErrConnID
	}
	if l.state != stateConnected {
		return ErrState
	}
	l.lastRecv = c.now
	if m.Ack {
		if !l.candOut || m.TxID != l.candTx {
			return ErrStale
		}
		l.candOut = false
		if !l.ext() {
			// Unless ours answered its campaign, ours started one there,
			// whose CANDIDATURE it now owes us.
			l.owed = !l.candReply && !l.candGot
			c.reclaim(l)
		}
		c.checkCampaign()
		return nil
	}
	c.send(l, wire.ActionCandidature, wire.AppendCandidature(nil, wire.Candidature{Header: c.hdr(l, m.TxID), Ack: true}))
	l.mandates = max(m.Mandates, 0)
	l.hasCand = true
	l.hasRank, l.rank = m.HasRank, m.Rank
	if !l.ext() {
		c.plainCandidature(l)
		return nil
	}
	straggler := m.Epoch <= c.epoch
	switch {
	case c.camp != nil:
		c.epoch = max(c.epoch, m.Epoch)
		l.candGot, l.candIn = true, false
		if !l.involved {
			c.involve(l, nil)
		}
		c.checkCampaign()
	case c.cfg.FullMesh || straggler:
		// No new campaign: we elect no leaders, or this is a straggler of
		// a finished one. Send ours so the neighbour's campaign can end.
		if !l.candOut {
			c.sendCandidature(l, true)
		}
	default:
		c.startCampaign(l, m.Epoch)
	}
	return nil
}

// plainCandidature handles a CANDIDATURE, already acknowledged, over a link
// without the extensions: it starts nothing here (see above).
func (c *Core) plainCandidature(l *link) {
	owed := l.owed
	l.owed = false
	if c.camp != nil && l.involved {
		l.candGot, l.candIn = true, false
		c.checkCampaign()
	} else if !owed && !l.candOut {
		c.sendCandidature(l, true) // its campaign awaits ours
	}
	c.reclaim(l)
}

// reclaim repeats our LEADER claims to l, which may just have elected
// itself (XBT does at the end of its campaigns).
func (c *Core) reclaim(l *link) {
	if c.cfg.FullMesh {
		return
	}
	for _, s := range c.list {
		if s.member(l.idx) && s.leader[l.kind] == leaderSelf {
			c.queueLeader(l, s.ih)
		}
	}
}

// rankHash orders candidates of equal load for swarm ih: rendezvous
// hashing, so equal trackers split the swarms evenly and every tracker
// computes the same order.
func rankHash(rank uint64, ih Infohash) uint64 {
	x := rank
	for i := 0; i < len(ih); i += 8 {
		var w [8]byte
		copy(w[:], ih[i:])
		x = mix64(x ^ binary.BigEndian.Uint64(w[:]))
	}
	return x
}

// mix64 is the splitmix64 finaliser.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

type cand struct {
	link int // leaderSelf or a link index
	m    int64
	h    uint64
}

// elect picks the leaders of every swarm from the campaign's numbers, the
// same way on every tracker:
//   - candidates are we and each connected neighbour of the kind that shares
//     the swarm and sent a ranked CANDIDATURE in this campaign (XBT sends
//     none and is never elected; it follows any LEADER it is sent);
//   - a swarm without a leader among them gets the candidate with the
//     fewest mandates not counting this swarm, ties broken by rankHash;
//   - a leader keeps its swarm unless another candidate leads at least two
//     fewer; then the swarm moves with probability gap/(2·leader's mandates),
//     drawn from a hash every member computes alike, so the gap halves each
//     campaign instead of all swarms swinging back and forth.
//
// The winner claims its swarms with LEADER; the others route to a leader
// only once it has claimed (full mesh meanwhile).
func (c *Core) elect(frozen int32) {
	if c.cfg.FullMesh {
		return
	}
	my := int64(frozen)
	var cands []cand
	for _, s := range c.list {
		for k := range 2 {
			cands = append(cands[:0], cand{leaderSelf, my, rankHash(c.rank, s.ih)})
			others := false
			for _, l := range c.links {
				if l.kind != k || !s.member(l.idx) || l.state != stateConnected {
					continue
				}
				others = true
				if l.candGot && l.hasRank {
					cands = append(cands, cand{l.idx, int64(l.mandates), rankHash(l.rank, s.ih)})
				}
			}
			if !others {
				if s.leader[k] == leaderSelf {
					s.leader[k] = leaderNone
				}
				continue
			}
			w := choose(cands, s.leader[k], s.ih)
			switch {
			case w == leaderSelf:
				s.leader[k] = leaderSelf
			case s.leader[k] != w:
				s.leader[k] = leaderNone
				c.needElection = true
			}
		}
	}
	// Claim every swarm we lead, to every member of its kind: new members
	// learn the leader, and an XBT neighbour that elected itself yields.
	for _, s := range c.list {
		for _, l := range c.links {
			if s.member(l.idx) && s.leader[l.kind] == leaderSelf {
				c.queueLeader(l, s.ih)
			}
		}
	}
	c.log.Debug("elected", "mandates", c.mandates())
}

func choose(cands []cand, incumbent int, ih Infohash) int {
	load := func(x cand) int64 {
		if x.link == incumbent {
			return x.m - 1
		}
		return x.m
	}
	best := cands[0]
	var inc *cand
	for i := range cands {
		x := cands[i]
		if x.link == incumbent {
			inc = &cands[i]
		}
		if lx, lb := load(x), load(best); lx < lb || (lx == lb && x.h < best.h) {
			best = x
		}
	}
	if inc == nil || best.link == inc.link || load(best) >= load(*inc) {
		if inc != nil {
			return inc.link
		}
		return best.link
	}
	p := float64(inc.m-best.m) / float64(2*inc.m)
	var w [8]byte
	binary.BigEndian.PutUint64(w[:], uint64(inc.m)<<32|uint64(best.m))
	u := mix64(rankHash(inc.h^best.h, ih)^binary.BigEndian.Uint64(w[:])) >> 11
	if float64(u)/(1<<53) < math.Min(p, 1) {
		return best.link
	}
	return inc.link
}

// tickElection runs the periodic election and the anticipated one a
// leaderless shared swarm asks for, backing off while elections keep
// leaving swarms without a leader.
func (c *Core) tickElection() {
	if c.cfg.FullMesh {
		return
	}
	if c.camp != nil {
		if !c.now.Before(c.camp.deadline) {
			c.endCampaign()
		}
		return
	}
	if !c.now.Before(c.nextCampaign) {
		c.startCampaign(nil, 0)
		return
	}
	if c.needElection && c.electAt.IsZero() {
		c.needElection = false
		if c.leaderless() {
			c.electAt = c.now.Add(c.electDelay)
		}
	}
	if !c.electAt.IsZero() && !c.now.Before(c.electAt) {
		c.electAt = time.Time{}
		if c.leaderless() {
			c.electDelay = min(2*c.electDelay, c.cfg.MandateInterval)
			c.startCampaign(nil, 0)
		} else {
			c.electDelay = 2 * c.cfg.HelloInterval
		}
	}
}

// leaderless reports a swarm shared over a connected link of some kind
// that has no leader of that kind.
func (c *Core) leaderless() bool {
	for _, s := range c.list {
		for _, l := range c.links {
			if l.state == stateConnected && s.member(l.idx) && s.leader[l.kind] == leaderNone {
				return true
			}
		}
	}
	return false
}

func (c *Core) queueLeader(l *link, ih Infohash) {
	if l.leaderQueued[ih] {
		return
	}
	l.leaderQueued[ih] = true
	l.leaderQ = append(l.leaderQ, ih)
	c.kickLeader(l)
}

// kickLeader sends the next LEADER notice unless one is outstanding,
// batching as many swarms as fit (XBT accepts several, though it sends one).
func (c *Core) kickLeader(l *link) {
	if l.state != stateConnected || l.leaderOut != nil {
		return
	}
	room := (c.budget(l) - wire.FlagsHeaderLen - 8) / 20
	var hs []Infohash
	for len(l.leaderQ) > 0 && len(hs) < room {
		ih := l.leaderQ[0]
		l.leaderQ = l.leaderQ[1:]
		delete(l.leaderQueued, ih)
		if s := c.swarms[ih]; s != nil && s.leader[l.kind] == leaderSelf && s.member(l.idx) {
			hs = append(hs, ih)
		}
	}
	if len(hs) == 0 {
		return
	}
	l.leaderHashes = hs
	l.leaderOut = &outPkt{}
	c.sendLeader(l)
}

// sendLeader (re)sends the outstanding notice with a new transaction id,
// as XBT does, so a late ACK of an older copy is ignored.
func (c *Core) sendLeader(l *link) {
	l.leaderOut.tx, l.leaderOut.at = c.txid(), c.now
	m := wire.Leader{Header: c.hdr(l, l.leaderOut.tx), HasRank: l.ext(), Rank: c.rank, Infohashes: l.leaderHashes}
	c.send(l, wire.ActionLeader, wire.AppendLeader(nil, m, l.mode()))
}

func (c *Core) onLeader(l *link, m wire.Leader) error {
	if m.ConnID != l.cid {
		return ErrConnID
	}
	if l.state != stateConnected {
		return ErrState
	}
	l.lastRecv = c.now
	if m.Ack {
		if l.leaderOut == nil || m.TxID != l.leaderOut.tx {
			return ErrStale
		}
		l.leaderOut, l.leaderHashes = nil, nil
		c.kickLeader(l)
		return nil
	}
	c.send(l, wire.ActionLeader, wire.AppendLeader(nil, wire.Leader{Header: c.hdr(l, m.TxID), Ack: true}, l.mode()))
	if m.HasRank {
		l.hasRank, l.rank = true, m.Rank
	}
	if c.cfg.FullMesh {
		return nil
	}
	for _, ih := range m.Infohashes {
		if s := c.swarms[ih]; s != nil {
			c.named(s, l) // a leader of s has s
			s.heard = c.now
			c.claim(s, l, m.HasRank)
		}
	}
	return nil
}

// claim handles l's claim to lead s. Members follow the latest claim, but
// between two ranked claimants (a tracker's own claim included) the lower
// rankHash wins, which both claimants compute alike; a ranked leader wins
// over an unranked (XBT) one, to which we re-assert our claim once per
// election before giving in.
func (c *Core) claim(s *swarm, l *link, ranked bool) {
	k := l.kind
	cur := s.leader[k]
	switch {
	case cur == l.idx:
	case cur == leaderSelf:
		if ranked && rankHash(l.rank, s.ih) < rankHash(c.rank, s.ih) {
			s.leader[k] = l.idx
			break
		}
		if ranked || !l.reasserted[s.ih] {
			l.reasserted[s.ih] = true
			c.queueLeader(l, s.ih)
			break
		}
		s.leader[k] = l.idx
	case cur >= 0 && c.links[cur].hasRank:
		if ranked && rankHash(l.rank, s.ih) < rankHash(c.links[cur].rank, s.ih) {
			s.leader[k] = l.idx
		}
	default:
		s.leader[k] = l.idx
	}
}
