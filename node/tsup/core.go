package tsup

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net/netip"
	"time"

	"github.com/kadtracker/kadtracker/node/tsup/wire"
)

// Infohash is a swarm's 20-byte info_hash (for a BEP 52 v2 torrent, the
// SHA2-256 infohash truncated to 20 bytes, as clients announce it).
type Infohash = wire.Infohash

// Origin says where a peer came from.
type Origin uint8

const (
	// Own peers announced to this tracker (fed in with SetOwn).
	Own Origin = iota
	// Internal peers came over an internal link.
	Internal
	// External peers came over an external link.
	External
)

func (o Origin) String() string {
	switch o {
	case Own:
		return "own"
	case Internal:
		return "internal"
	case External:
		return "external"
	}
	return fmt.Sprintf("origin(%d)", uint8(o))
}

// Peer is a BitTorrent client in a swarm.
type Peer struct {
	Addr netip.AddrPort
	// Seed is known for own peers and for peers learned over links that
	// speak the extensions; false also means unknown.
	Seed   bool
	Origin Origin
}

// Datagram is a packet the Core wants sent. Data is the caller's.
type Datagram struct {
	To   netip.AddrPort
	Data []byte
}

// Errors Step reports for a packet it drops. A dropped packet changes
// nothing; these are for counters and debug logs.
var (
	ErrUnknownTracker = errors.New("tsup: packet from no configured link")
	ErrConnID         = errors.New("tsup: wrong connection id")
	ErrState          = errors.New("tsup: packet not expected in the link's state")
	ErrStale          = errors.New("tsup: transaction id matches nothing outstanding")
	ErrReplay         = errors.New("tsup: keyed packet replayed or outside the time window")
	ErrReflected      = errors.New("tsup: our own packet reflected back")
	ErrTooManySwarms  = errors.New("tsup: swarm limit reached")
)

// kinds of links and networks, and the index into per-kind arrays.
const (
	internal = 0
	external = 1
)

func kindOf(external bool) int {
	if external {
		return 1
	}
	return 0
}

func originOf(k int) Origin {
	if k == external {
		return External
	}
	return Internal
}

// Core is the TSUP protocol engine: a state machine with no I/O and no
// clock of its own (as etcd-io/raft's RawNode). The caller feeds it
// received packets (Step), the passage of time (Tick, by NextDeadline), and
// its own clients' peers (SetOwn); it collects packets to send with Ready
// and reads the unified swarms with Peers. A Core is not safe for
// concurrent use; Transport wraps one for a real socket.
type Core struct {
	cfg    Config
	log    *slog.Logger
	rng    *mrand.Rand
	now    time.Time
	secret [32]byte
	nonce  uint64 // MAC trailer nonce: this process
	stamp  int64  // last MAC timestamp sent
	rank   uint64 // election rank

	links  []*link
	byAddr map[netip.AddrPort]*link
	haveK  [2]bool // links of each kind exist: both make a border tracker

	swarms map[Infohash]*swarm
	list   []*swarm // the swarms in a stable order

	out []Datagram

	nextUpdate time.Time

	camp         *campaign
	nextCampaign time.Time
	epoch        uint32    // of the running or last campaign
	electAt      time.Time // a pending anticipated election
	electDelay   time.Duration
	needElection bool

	scratch []wire.Peer
	stats   Stats
}

// NewCore returns a Core whose links start connecting at now. cfg.Port must
// be set.
func NewCore(cfg Config, now time.Time) (*Core, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Port == 0 {
		return nil, errors.New("tsup: Config.Port is 0")
	}
	src := cfg.Rand
	if src == nil {
		var seed [32]byte
		rand.Read(seed[:])
		src = mrand.NewChaCha8(seed)
	}
	c := &Core{
		cfg:    cfg,
		log:    cfg.Logger.With("component", "tsup"),
		rng:    mrand.New(src),
		now:    now,
		byAddr: make(map[netip.AddrPort]*link, len(cfg.Links)),
		swarms: make(map[Infohash]*swarm),
	}
	for i := range c.secret {
		c.secret[i] = byte(c.rng.Uint32())
	}
	c.nonce = c.rng.Uint64()
	c.rank = c.rng.Uint64()
	c.electDelay = 2 * cfg.HelloInterval
	c.nextUpdate = now.Add(c.jitter(cfg.UpdateInterval))
	c.nextCampaign = now.Add(cfg.MandateInterval)
	for i, lc := range cfg.Links {
		l := newLink(i, lc, cfg.RetryTimes)
		l.nextTick = now.Add(c.jitter(cfg.HelloInterval))
		c.links = append(c.links, l)
		c.byAddr[l.addr] = l
		c.haveK[l.kind] = true
	}
	return c, nil
}

// jitter is a random duration in [0, d).
func (c *Core) jitter(d time.Duration) time.Duration { return time.Duration(c.rng.Int64N(int64(d))) }

// txid is a fresh transaction id (XBT uses rand(): 0..2^31-1; 0 is avoided).
func (c *Core) txid() uint32 { return c.rng.Uint32N(1<<31-1) + 1 }

// cookie is the connection id we choose as responder to a SYN from a:
// opaque, stable for this process, unpredictable to others.
func (c *Core) cookie(a netip.AddrPort) uint64 {
	h := sha256.New()
	h.Write(c.secret[:])
	ip := a.Addr().As16()
	h.Write(ip[:])
	h.Write([]byte{byte(a.Port() >> 8), byte(a.Port())})
	id := binary.BigEndian.Uint64(h.Sum(nil))
	if id == wire.NoConnID {
		id--
	}
	return id
}

// border reports whether this tracker joins two networks.
func (c *Core) border() bool { return c.haveK[internal] && c.haveK[external] }

// Rank is this tracker's election rank, random per start; among equally
// loaded candidates a swarm's leader is the one whose rank hashes lowest
// with the swarm's info_hash.
func (c *Core) Rank() uint64 { return c.rank }

// Ready returns the packets to send and forgets them.
func (c *Core) Ready() []Datagram {
	out := c.out
	c.out = nil
	return out
}

// NextDeadline is when Tick has something to do next.
func (c *Core) NextDeadline() time.Time {
	d := c.nextUpdate
	earlier := func(t time.Time) {
		if !t.IsZero() && t.Before(d) {
			d = t
		}
	}
	for _, l := range c.links {
		earlier(l.nextTick)
		if l.up() {
			earlier(l.lastRecv.Add(c.disconnect(l) + time.Nanosecond))
		}
	}
	if c.camp != nil {
		earlier(c.camp.deadline)
	}
	if !c.cfg.FullMesh {
		earlier(c.nextCampaign)
		earlier(c.electAt)
	}
	return d
}

// Tick runs the timers due at now.
func (c *Core) Tick(now time.Time) {
	c.now = now
	for _, l := range c.links {
		c.tickLink(l)
	}
	if !now.Before(c.nextUpdate) {
		c.round()
		c.nextUpdate = c.nextUpdate.Add(c.cfg.UpdateInterval)
		if !c.nextUpdate.After(now) {
			c.nextUpdate = now.Add(c.cfg.UpdateInterval)
		}
	}
	c.tickElection()
}

// Step handles one received packet from the UDP source address from. The
// error says why a packet was dropped (see the Err variables and
// wire.ErrMalformed); it is for counting, not for answering.
func (c *Core) Step(now time.Time, from netip.AddrPort, b []byte) error {
	c.now = now
	c.stats.PacketsIn++
	c.stats.BytesIn += uint64(len(b))
	err := c.step(from, b)
	if err != nil {
		c.stats.Dropped++
		if errors.Is(err, wire.ErrMAC) || errors.Is(err, ErrReplay) || errors.Is(err, ErrReflected) {
			c.stats.BadMAC++
		}
		c.log.Debug("dropped packet", "from", from, "err", err)
	}
	return err
}

func (c *Core) step(from netip.AddrPort, b []byte) error {
	_, h, err := wire.PeekHeader(b)
	if err != nil {
		return err
	}
	l := c.byAddr[netip.AddrPortFrom(from.Addr().Unmap(), h.Port)]
	if l == nil {
		return fmt.Errorf("%w: %v with port %d", ErrUnknownTracker, from.Addr(), h.Port)
	}
	if l.mac != nil {
		pkt, nonce, ts, err := l.mac.Open(b)
		if err != nil {
			return err
		}
		if nonce == c.nonce {
			return ErrReflected
		}
		if d := time.Duration(ts - c.now.UnixNano()); ts <= l.lastStamp || d > c.cfg.MACWindow || d < -c.cfg.MACWindow {
			return ErrReplay
		}
		l.lastStamp = ts
		b = pkt
	}
	m, err := wire.Parse(b, l.mode())
	if err != nil {
		return err
	}
	switch m := m.(type) {
	case wire.Syn:
		if m.Ack() {
			return c.onSynAck(l, m)
		}
		return c.onSyn(l, m)
	case wire.Hello:
		return c.onHello(l, m)
	case wire.Summary:
		return c.onSummary(l, m)
	case wire.Update:
		return c.onUpdate(l, m)
	case wire.Candidature:
		return c.onCandidature(l, m)
	case wire.Leader:
		return c.onLeader(l, m)
	default:
		return fmt.Errorf("%w: %T", wire.ErrAction, m) // unreachable
	}
}

// hdr is the header of a packet to l.
func (c *Core) hdr(l *link, tx uint32) wire.Header {
	return wire.Header{ConnID: l.cid, TxID: tx, Port: c.cfg.Port}
}

// budget is the most bytes a packet to l may have before its trailer.
func (c *Core) budget(l *link) int {
	if l.mac != nil {
		return wire.MaxPacket - wire.TrailerLen
	}
	return wire.MaxPacket
}

// send queues the encoded packet pkt for l, sealing it on a keyed link.
// pkt is copied.
func (c *Core) send(l *link, a wire.Action, pkt []byte) {
	n := len(pkt)
	if l.mac != nil {
		n += wire.TrailerLen
	}
	b := append(make([]byte, 0, n), pkt...)
	if l.mac != nil {
		ts := c.now.UnixNano()
		if ts <= c.stamp {
			ts = c.stamp + 1
		}
		c.stamp = ts
		b = l.mac.Seal(b, c.nonce, ts)
	}
	c.out = append(c.out, Datagram{To: l.addr, Data: b})
	l.lastSent = c.now
	c.stats.PacketsOut++
	c.stats.BytesOut += uint64(len(b))
	if a == wire.ActionUpdate && len(pkt) > wire.FlagsHeaderLen-1 && pkt[wire.FlagsHeaderLen-1]&(wire.UpdateAck|wire.UpdateSummary) == 0 {
		c.stats.Updates++
	}
}
