package tsup

import (
	"net/netip"
	"time"

	"github.com/kadtracker/kadtracker/node/tsup/wire"
)

type linkState uint8

const (
	// statePending: connecting, one SYN per hello tick, RetryTimes SYNs.
	statePending linkState = iota
	// stateDisconnected: gave up; one SYN per ReconnectInterval.
	stateDisconnected
	// stateSynReceived: answered a SYN with SYN+ACK, waiting for SUMMARY.
	stateSynReceived
	// stateConnected: the virtual connection is up.
	stateConnected
)

func (s linkState) String() string {
	switch s {
	case statePending:
		return "pending"
	case stateDisconnected:
		return "disconnected"
	case stateSynReceived:
		return "syn-received"
	case stateConnected:
		return "connected"
	}
	return "?"
}

// outPkt is a sent packet kept for timer-driven retransmission.
type outPkt struct {
	tx  uint32
	pkt []byte // encoded, unsealed
	at  time.Time
}

type link struct {
	idx   int
	cfg   Link
	addr  netip.AddrPort
	kind  int
	mac   *wire.MAC
	state linkState

	cid        uint64 // connection id in use (NoConnID before the first)
	synOut     uint32 // transaction id of our last SYN
	synOutOK   bool   // a SYN of ours is outstanding
	synIn      uint32 // transaction id of the SYN we answer
	retries    int
	reconnect  time.Time
	nextTick   time.Time
	lastRecv   time.Time
	lastSent   time.Time
	lastStamp  int64 // MAC timestamp of the last accepted packet
	peerKad    bool  // the neighbour set SYN EXT
	extOK      bool  // we speak the extensions (Config.NoExtensions unset)
	border     bool  // the neighbour is a border tracker
	shared     int   // swarms it is a member of
	everUp     bool
	downReason string

	// Unification: SUMMARY chunks out, one outstanding at a time.
	sumFull   bool // the connection's full SUMMARY is still to be sent
	sumQueue  []wire.SummaryEntry
	sumQueued map[Infohash]int // index into sumQueue
	sumOut    *outPkt          // our SUMMARY awaiting UPDATE+S
	sumDone   uint32           // last SUMMARY answered, to answer a repeated UPDATE+S
	sumDoneOK bool
	sumIn     bool // we sent UPDATE+S, awaiting UPDATE+S+A
	sumInTx   uint32
	sumInAt   time.Time

	upd []outPkt // data UPDATEs awaiting ACK

	// When it last sent peers, and its period of doing so (links without
	// the extensions only; see Core.ttl).
	dataAt  time.Time
	dataGap time.Duration

	// Election.
	involved bool // takes part in the running campaign
	candOut  bool // our CANDIDATURE awaits its ACK
	candTx   uint32
	candAt   time.Time
	candIn   bool // we await its CANDIDATURE
	candGot  bool // its CANDIDATURE arrived in this campaign
	// candReply: our outstanding CANDIDATURE answers its campaign. owed:
	// (links without the extensions) our last CANDIDATURE started a
	// campaign there, so its next CANDIDATURE ends that campaign and
	// awaits no answer.
	candReply bool
	owed      bool
	mandates  int32
	hasCand   bool // it ever sent a CANDIDATURE
	hasRank   bool
	rank      uint64

	leaderQ      []Infohash // LEADER notices to send
	leaderQueued map[Infohash]bool
	leaderOut    *outPkt
	leaderHashes []Infohash
	reasserted   map[Infohash]bool
}

func newLink(i int, cfg Link, retries int) *link {
	l := &link{
		idx:          i,
		cfg:          cfg,
		addr:         netip.AddrPortFrom(cfg.Addr.Addr().Unmap(), cfg.Addr.Port()),
		kind:         kindOf(cfg.External),
		cid:          wire.NoConnID,
		retries:      retries,
		sumQueued:    make(map[Infohash]int),
		leaderQueued: make(map[Infohash]bool),
		reasserted:   make(map[Infohash]bool),
	}
	if cfg.Key != nil {
		l.mac = wire.NewMAC(cfg.Key)
	}
	return l
}

// ext reports whether both ends speak the extensions.
func (l *link) ext() bool { return l.peerKad && l.extOK }

func (l *link) mode() wire.Mode {
	if l.ext() {
		return wire.Extended
	}
	return wire.Plain
}

// disconnect is how long l may stay silent.
func (c *Core) disconnect(l *link) time.Duration {
	if l.ext() {
		return c.cfg.DisconnectInterval
	}
	return c.cfg.PlainDisconnect()
}

// up reports a link that counts as alive: connected or answering a SYN.
func (l *link) up() bool { return l.state == stateConnected || l.state == stateSynReceived }

// handshaking reports a connected link still unifying (XBT sends it no
// ordinary UPDATE meanwhile).
func (l *link) handshaking() bool { return l.sumOut != nil || l.sumIn }

func (c *Core) synFlags(ack bool) uint8 {
	var f uint8
	if ack {
		f |= wire.SynAck
	}
	if !c.cfg.NoExtensions {
		f |= wire.SynExt
	}
	return f
}

func (c *Core) sendSyn(l *link) {
	l.synOut, l.synOutOK = c.txid(), true
	c.send(l, wire.ActionSyn, wire.AppendSyn(nil, wire.Syn{Header: c.hdr(l, l.synOut), Flags: c.synFlags(false)}))
}

func (c *Core) sendSynAck(l *link) {
	c.send(l, wire.ActionSyn, wire.AppendSyn(nil, wire.Syn{Header: c.hdr(l, l.synIn), Flags: c.synFlags(true)}))
}

// onSyn: a SYN is always accepted; it (re)starts the connection with us as
// responder, even over an established one (the neighbour lost it).
func (c *Core) onSyn(l *link, m wire.Syn) error {
	if l.state == stateConnected && m.TxID == l.synIn && m.ConnID == l.cid {
		return ErrStale // a late copy of the SYN this connection began with
	}
	prev := l.cid
	if l.up() {
		c.linkDown(l, "neighbour reconnected")
	}
	l.peerKad = m.Ext()
	l.extOK = !c.cfg.NoExtensions
	l.synIn = m.TxID
	if m.ConnID == wire.NoConnID || m.ConnID != prev {
		l.cid = c.cookie(l.addr)
	}
	l.state = stateSynReceived
	l.lastRecv = c.now
	l.nextTick = c.now.Add(c.cfg.HelloInterval)
	c.sendSynAck(l)
	return nil
}

// onSynAck accepts the answer to our last SYN. In a simultaneous open (we
// answered their SYN too) only one side may become the initiator, or each
// would adopt the other's connection id and drop the other's SUMMARY
// forever (XBT's deadlock). Between two kadtrackers the larger id wins: the
// side whose own id is smaller adopts the other's and sends the SUMMARY.
// XBT never leaves its SYN state except on a SUMMARY, so toward it we
// always become the initiator.
func (c *Core) onSynAck(l *link, m wire.Syn) error {
	if !l.synOutOK || m.TxID != l.synOut {
		return ErrStale
	}
	switch l.state {
	case statePending, stateDisconnected:
	case stateSynReceived:
		if c.cfg.NoExtensions {
			return ErrState // XBT drops it and waits for the SUMMARY
		}
		if m.Ext() && m.ConnID < l.cid {
			l.peerKad = true
			l.lastRecv = c.now
			return nil // they adopt our id and send the SUMMARY
		}
	default:
		return ErrState
	}
	l.peerKad = m.Ext()
	l.extOK = !c.cfg.NoExtensions
	l.cid = m.ConnID
	c.connect(l)
	l.sumFull = true
	c.kickSummary(l)
	return nil
}

func (c *Core) connect(l *link) {
	l.state = stateConnected
	l.synOutOK = false
	l.retries = c.cfg.RetryTimes
	l.lastRecv = c.now
	l.nextTick = c.now.Add(c.cfg.HelloInterval)
	l.everUp = true
	c.log.Info("link up", "link", l.addr, "external", l.cfg.External, "extended", l.ext())
}

// linkDown forgets everything a connection carried: memberships, leaders
// it was, unification and election state. Its peers stay until they
// expire.
func (c *Core) linkDown(l *link, why string) {
	if l.state == stateConnected {
		c.log.Info("link down", "link", l.addr, "reason", why)
	}
	l.downReason = why
	for _, s := range c.list {
		c.part(s, l)
	}
	l.border = false
	l.sumFull, l.sumQueue, l.sumOut, l.sumDoneOK, l.sumIn = false, l.sumQueue[:0], nil, false, false
	clear(l.sumQueued)
	l.upd = l.upd[:0]
	l.leaderQ, l.leaderOut, l.leaderHashes = l.leaderQ[:0], nil, nil
	clear(l.leaderQueued)
	wasInvolved := l.involved
	l.involved, l.candOut, l.candIn, l.candGot, l.candReply, l.owed = false, false, false, false, false, false
	l.state = statePending
	if wasInvolved {
		c.checkCampaign()
	}
}

func (c *Core) onHello(l *link, m wire.Hello) error {
	if m.ConnID != l.cid {
		return ErrConnID
	}
	if !l.up() {
		return ErrState
	}
	l.lastRecv = c.now
	return nil
}

// tickLink runs a link's timers: disconnect, SYN retries, reconnects,
// retransmissions and HELLO.
func (c *Core) tickLink(l *link) {
	now := c.now
	if l.up() && now.Sub(l.lastRecv) > c.disconnect(l) {
		c.linkDown(l, "silent for the disconnect interval")
		l.retries = c.cfg.RetryTimes
		l.nextTick = now
	}
	if now.Before(l.nextTick) {
		return
	}
	l.nextTick = now.Add(c.cfg.HelloInterval)
	switch l.state {
	case statePending:
		c.sendSyn(l)
		if l.retries--; l.retries <= 0 {
			l.state = stateDisconnected
			l.reconnect = now.Add(c.cfg.ReconnectInterval)
		}
	case stateDisconnected:
		if !now.Before(l.reconnect) {
			c.sendSyn(l)
			l.reconnect = now.Add(c.cfg.ReconnectInterval)
		}
	case stateSynReceived:
		c.sendSynAck(l)
	case stateConnected:
		c.retransmit(l)
		if now.Sub(l.lastSent) >= c.cfg.HelloInterval/2 {
			c.send(l, wire.ActionHello, wire.AppendHello(nil, wire.Hello{Header: c.hdr(l, 0)}))
		}
	}
}

// retransmit resends what l has not acknowledged for half a hello
// interval or more: the timer-driven retransmission of the paper.
func (c *Core) retransmit(l *link) {
	old := func(at time.Time) bool { return c.now.Sub(at) >= c.cfg.HelloInterval/2 }
	if l.sumOut != nil && old(l.sumOut.at) {
		l.sumOut.at = c.now
		c.stats.Retransmits++
		c.send(l, wire.ActionSummary, l.sumOut.pkt)
	}
	if l.sumIn && old(l.sumInAt) {
		c.stats.Retransmits++
		c.sendUnify(l, l.sumInTx, wire.UpdateSummary)
	}
	for i := range l.upd {
		if old(l.upd[i].at) {
			l.upd[i].at = c.now
			c.stats.Retransmits++
			c.send(l, wire.ActionUpdate, l.upd[i].pkt)
		}
	}
	if l.candOut && old(l.candAt) {
		c.stats.Retransmits++
		c.sendCandidature(l, l.candReply)
	}
	if l.leaderOut != nil && old(l.leaderOut.at) {
		c.stats.Retransmits++
		c.sendLeader(l)
	}
}
