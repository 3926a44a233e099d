package node

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kadtracker/kadtracker/records"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"
)

// RateLimit is a token bucket: Rate requests a second on average, Burst at
// once. A zero Rate means no limit.
type RateLimit struct {
	Rate  float64
	Burst int
}

func (r RateLimit) on() bool { return r.Rate > 0 }

// Protection holds the node's limits against floods and Sybils. Every
// refusal is answered (a BUSY or FULL response, a routing-table entry not
// taken), counted in Stats and logged at Debug; none is fatal. Addresses in
// Config.Limits.Exempt are not rate limited and not subject to
// MaxStreamsPerPeer or the diversity limits: they are where tests, netsim
// and LANs run.
type Protection struct {
	// PeerRate limits record-protocol requests per peer ID, IPRate per
	// source address (records.SourceAddr: an IPv4 address or IPv6 /64).
	PeerRate, IPRate RateLimit
	// MaxTracked bounds the peers and the addresses rate limiters are kept
	// for. Past it, limiters that have refilled (and so equal a fresh one)
	// are dropped, and when none has, half of them at random.
	MaxTracked int
	// MaxStreams bounds the record-protocol streams open at once, from all
	// peers; MaxStreamsPerPeer from one peer. A stream counts from the
	// moment it opens, waiting for a request or served: an idle stream
	// holds a place of the host's inbound stream budget just as well. On a
	// host New builds, the resource manager lets the record protocol have
	// a quarter more (room to answer BUSY), and refuses to start when that
	// exceeds a quarter of the host's inbound streams, so a peer holding
	// record streams cannot starve the DHT.
	MaxStreams, MaxStreamsPerPeer int
	// RequestStartTimeout bounds the wait for a request's first byte, on a
	// new stream and between the requests of one: a stream that says
	// nothing gives its place back soon. RequestTimeout still bounds the
	// rest of the request.
	RequestStartTimeout time.Duration
	// DiversityPerCpl and DiversityPerTable bound the routing-table entries
	// from one IP group (kad-dht's peer diversity filter; a group is an
	// IPv4 /16, or an IPv6 address's AS) in one bucket and in the whole
	// table. Zero disables the filter.
	DiversityPerCpl, DiversityPerTable int
	// TargetsPerGroup bounds how many of the m nodes a record is stored on
	// (and a lookup asks) share an IP group. Zero disables the limit.
	TargetsPerGroup int

	// The libp2p host New builds (not one passed in Config.Host): the
	// connection manager trims connections to ConnsLow when there are more
	// than ConnsHigh; the resource manager refuses connections past
	// MaxConns and caps libp2p's memory at Memory bytes and its file
	// descriptors at FDs.
	ConnsLow, ConnsHigh int
	MaxConns            int
	Memory              int64
	FDs                 int
}

// DefaultProtection returns the limits the daemon runs with. An honest
// peer publishes a record per announced swarm every RepublishInterval and
// looks up what its clients ask for; the rates leave it far more than that.
func DefaultProtection() Protection {
	return Protection{
		PeerRate:   RateLimit{Rate: 50, Burst: 200},
		IPRate:     RateLimit{Rate: 200, Burst: 1000},
		MaxTracked: 10_000,
		// 256 streams, waiting ones included: a storing node serves a
		// request in milliseconds, so this is thousands a second.
		MaxStreams:          256,
		MaxStreamsPerPeer:   64,
		RequestStartTimeout: 3 * time.Second,
		DiversityPerCpl:     2,
		DiversityPerTable:   3,
		TargetsPerGroup:     2,
		ConnsLow:            128,
		ConnsHigh:           384,
		MaxConns:            1024,
		Memory:              512 << 20,
		FDs:                 2048,
	}
}

func (p Protection) validate() error {
	var errs []error
	for _, r := range []struct {
		name string
		r    RateLimit
	}{{"peer", p.PeerRate}, {"IP", p.IPRate}} {
		if r.r.Rate < 0 || (r.r.on() && r.r.Burst < 1) {
			errs = append(errs, fmt.Errorf("node: %s rate %v/s with burst %d: want a rate >= 0 and a burst >= 1", r.name, r.r.Rate, r.r.Burst))
		}
	}
	if (p.PeerRate.on() || p.IPRate.on()) && p.MaxTracked < 1 {
		errs = append(errs, errors.New("node: MaxTracked must be positive with rate limits on"))
	}
	if p.MaxStreams < 1 || p.MaxStreamsPerPeer < 1 || p.MaxStreamsPerPeer > p.MaxStreams {
		errs = append(errs, fmt.Errorf("node: stream caps %d per peer, %d in all: want 1 <= per peer <= all", p.MaxStreamsPerPeer, p.MaxStreams))
	}
	if p.RequestStartTimeout <= 0 {
		errs = append(errs, errors.New("node: RequestStartTimeout must be positive"))
	}
	if p.DiversityPerCpl < 0 || p.DiversityPerTable < 0 || (p.DiversityPerCpl > 0) != (p.DiversityPerTable > 0) {
		errs = append(errs, fmt.Errorf("node: diversity %d per bucket, %d per table: both positive, or both zero to disable", p.DiversityPerCpl, p.DiversityPerTable))
	}
	if p.TargetsPerGroup < 0 {
		errs = append(errs, errors.New("node: TargetsPerGroup must not be negative"))
	}
	if p.ConnsLow < 1 || p.ConnsHigh < p.ConnsLow || p.MaxConns < p.ConnsHigh {
		errs = append(errs, fmt.Errorf("node: connections low %d, high %d, max %d: want 1 <= low <= high <= max", p.ConnsLow, p.ConnsHigh, p.MaxConns))
	}
	if p.Memory < 16<<20 || p.FDs < 64 {
		errs = append(errs, fmt.Errorf("node: resource limits of %d bytes and %d file descriptors are too small", p.Memory, p.FDs))
	}
	return errors.Join(errs...)
}

// Refusal reasons, the keys of Stats.Refused: requests and routing-table
// entries the node turned away.
const (
	RefusedPeerRate    = "peer_rate"    // a peer over PeerRate
	RefusedIPRate      = "ip_rate"      // an address over IPRate
	RefusedStreams     = "streams"      // MaxStreams requests were being served
	RefusedPeerStreams = "peer_streams" // MaxStreamsPerPeer of the peer's were
	RefusedBadRequest  = "bad_request"  // an unreadable or unknown request
	RefusedTimeout     = "timeout"      // a request did not start or end in time
	RefusedBroken      = "broken"       // the stream failed mid-request (reset, cut)
	RefusedRoutingIP   = "routing_ip"   // a routing-table entry over the diversity limits
	RefusedTargetIP    = "target_ip"    // a storing node skipped over TargetsPerGroup
)

var refusalNames = []string{RefusedPeerRate, RefusedIPRate, RefusedStreams, RefusedPeerStreams, RefusedBadRequest,
	RefusedTimeout, RefusedBroken, RefusedRoutingIP, RefusedTargetIP}

// PUT rejection reasons, the keys of Stats.PutsRejectedBy.
const (
	RejectNoIP           = "no_ip"
	RejectMalformed      = "malformed"
	RejectBadSignature   = "bad_signature"
	RejectWrongAnnouncer = "wrong_announcer"
	RejectExpired        = "expired"
	RejectTooFarAhead    = "too_far_ahead"
	RejectStale          = "stale"
	RejectKeyFull        = "key_full"
	RejectStoreFull      = "store_full"
	RejectAnnouncerFull  = "announcer_full"
	RejectIPFull         = "ip_full"
	RejectKeyIPFull      = "key_ip_full"
	RejectInternal       = "internal"
)

var rejectNames = []string{RejectNoIP, RejectMalformed, RejectBadSignature, RejectWrongAnnouncer, RejectExpired,
	RejectTooFarAhead, RejectStale, RejectKeyFull, RejectStoreFull, RejectAnnouncerFull, RejectIPFull, RejectKeyIPFull, RejectInternal}

// rejectReason names why err refused a PUT.
func rejectReason(err error) string {
	for _, c := range []struct {
		err    error
		reason string
	}{
		// Most specific first: Open wraps ErrBadSignature and ErrMalformed.
		{records.ErrWrongAnnouncer, RejectWrongAnnouncer},
		{records.ErrBadSignature, RejectBadSignature},
		{records.ErrExpired, RejectExpired},
		{records.ErrTooFarAhead, RejectTooFarAhead},
		{records.ErrStale, RejectStale},
		{records.ErrKeyFull, RejectKeyFull},
		{records.ErrStoreFull, RejectStoreFull},
		{records.ErrAnnouncerFull, RejectAnnouncerFull},
		{records.ErrIPFull, RejectIPFull},
		{records.ErrKeyIPFull, RejectKeyIPFull},
		{records.ErrMalformed, RejectMalformed},
		{records.ErrTooLarge, RejectMalformed},
	} {
		if errors.Is(err, c.err) {
			return c.reason
		}
	}
	return RejectInternal
}

// tally is a fixed set of named counters.
type tally struct {
	names  []string
	counts []atomic.Int64
}

func newTally(names []string) *tally {
	return &tally{names: names, counts: make([]atomic.Int64, len(names))}
}

func (t *tally) add(name string) {
	for i, n := range t.names {
		if n == name {
			t.counts[i].Add(1)
			return
		}
	}
}

func (t *tally) get(name string) int64 {
	for i, n := range t.names {
		if n == name {
			return t.counts[i].Load()
		}
	}
	return 0
}

// snapshot has every name, zeros included, so a scrape always sees them.
func (t *tally) snapshot() map[string]int64 {
	m := make(map[string]int64, len(t.names))
	for i, n := range t.names {
		m[n] = t.counts[i].Load()
	}
	return m
}

// limiterSet keeps a token bucket per key, at most max of them.
type limiterSet[K comparable] struct {
	limit rate.Limit
	burst int
	max   int

	mu sync.Mutex
	m  map[K]*rate.Limiter
}

func newLimiterSet[K comparable](r RateLimit, max int) *limiterSet[K] {
	if !r.on() {
		return nil
	}
	return &limiterSet[K]{limit: rate.Limit(r.Rate), burst: r.Burst, max: max, m: make(map[K]*rate.Limiter)}
}

// allow takes a token for k at now; a nil set allows everything.
func (s *limiterSet[K]) allow(k K, now time.Time) bool {
	if s == nil {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.m[k]
	if l == nil {
		if len(s.m) >= s.max {
			s.prune(now)
		}
		l = rate.NewLimiter(s.limit, s.burst)
		s.m[k] = l
	}
	return l.AllowN(now, 1)
}

// prune drops the limiters that have refilled: a fresh one would be the
// same. When none has, it drops half at random: their keys get a fresh
// burst, which is what more keys than max buys anyway.
func (s *limiterSet[K]) prune(now time.Time) {
	for k, l := range s.m {
		if l.TokensAt(now) >= float64(s.burst) {
			delete(s.m, k)
		}
	}
	if len(s.m) < s.max {
		return
	}
	i := 0
	for k := range s.m {
		if i%2 == 0 {
			delete(s.m, k)
		}
		i++
	}
}

func (s *limiterSet[K]) size() int {
	if s == nil {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}

// streamGate counts the open record-protocol streams, in all and per peer.
// Its map holds only peers with a stream open, so it is bounded by max.
type streamGate struct {
	max, perPeer int

	mu    sync.Mutex
	total int
	peers map[peer.ID]int
}

func newStreamGate(max, perPeer int) *streamGate {
	return &streamGate{max: max, perPeer: perPeer, peers: make(map[peer.ID]int)}
}

// enter admits a stream from p, or names the refusal. An exempt peer is
// held to the total only.
func (g *streamGate) enter(p peer.ID, exempt bool) string {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case g.total >= g.max:
		return RefusedStreams
	case !exempt && g.peers[p] >= g.perPeer:
		return RefusedPeerStreams
	}
	g.total++
	g.peers[p]++
	return ""
}

func (g *streamGate) leave(p peer.ID) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.total--
	if g.peers[p] <= 1 {
		delete(g.peers, p)
	} else {
		g.peers[p]--
	}
}

// guard applies the rate limits and stream caps to the record protocol.
type guard struct {
	exempt func(netip.Addr) bool
	now    func() time.Time
	peers  *limiterSet[peer.ID]
	ips    *limiterSet[netip.Addr]
	gate   *streamGate
}

func newGuard(p Protection, limits records.Limits, now func() time.Time) *guard {
	return &guard{
		exempt: limits.Exempts,
		now:    now,
		peers:  newLimiterSet[peer.ID](p.PeerRate, p.MaxTracked),
		ips:    newLimiterSet[netip.Addr](p.IPRate, p.MaxTracked),
		gate:   newStreamGate(p.MaxStreams, p.MaxStreamsPerPeer),
	}
}

// allow takes a token for one request from p at ip, or names the refusal.
// An exempt address passes; an unknown one (no IP) is limited per peer.
func (g *guard) allow(p peer.ID, ip netip.Addr) string {
	if ip.IsValid() && g.exempt(ip) {
		return ""
	}
	now := g.now()
	if !g.peers.allow(p, now) {
		return RefusedPeerRate
	}
	if ip.IsValid() && !g.ips.allow(records.SourceAddr(ip), now) {
		return RefusedIPRate
	}
	return ""
}
