package bridge

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/kadtracker/kadtracker/node/tracker/wire"
)

// Config tunes an Announcer. Start from DefaultConfig.
type Config struct {
	// Trackers are the classic trackers' announce URLs (see ParseURL).
	Trackers []string
	// PeerID is the peer_id sent to the trackers; the zero value means a
	// random one with the prefix "-KT0100-".
	PeerID [20]byte
	// NumWant is the numwant sent.
	NumWant int
	// RequestTimeout bounds one announce, UDP retransmissions included.
	RequestTimeout time.Duration
	// MinInterval is the least time between two announces of a swarm to
	// one tracker, whatever the tracker says; MaxInterval the most. The
	// tracker's own "min interval" is honoured too, and its "interval"
	// within these bounds.
	MinInterval, MaxInterval time.Duration
	// RetryFirst and RetryMax bound the exponential backoff after a
	// failed announce (no answer, a malformed one, or a failure reason).
	RetryFirst, RetryMax time.Duration
	// MaxSwarms bounds the infohashes bridged at once.
	MaxSwarms int
	// MaxPeers bounds the peers kept from one tracker's answer.
	MaxPeers int
	// Concurrency bounds the announces running at once.
	Concurrency int
	// UDPRetransmit and UDPTries: see ClientConfig.
	UDPRetransmit time.Duration
	UDPTries      int
	// HTTP is the client for http(s) trackers; nil: ClientConfig's default.
	HTTP *http.Client
	// OnPeers, if set, is called after an announce that got peers, with the
	// swarm's merged peers (Peers). It runs on the announcer's goroutine:
	// it must not block.
	OnPeers func(infohash [20]byte, peers []netip.AddrPort)
	Clock   func() time.Time
	Logger  *slog.Logger
}

// DefaultConfig returns the daemon's settings, without trackers.
func DefaultConfig() Config {
	return Config{
		NumWant:        50,
		RequestTimeout: 15 * time.Second,
		MinInterval:    30 * time.Second,
		MaxInterval:    time.Hour,
		RetryFirst:     15 * time.Second,
		RetryMax:       30 * time.Minute,
		MaxSwarms:      1000,
		MaxPeers:       200,
		Concurrency:    16,
		UDPRetransmit:  DefaultUDPRetransmit,
		UDPTries:       DefaultUDPTries,
		Clock:          time.Now,
		Logger:         slog.New(slog.DiscardHandler),
	}
}

// Validate reports every setting out of range.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf("bridge: "+format, args...)) }
	if len(c.Trackers) == 0 {
		bad("no trackers")
	}
	for _, t := range c.Trackers {
		if _, err := ParseURL(t); err != nil {
			errs = append(errs, err)
		}
	}
	if c.NumWant < 0 || c.NumWant > 1000 {
		bad("NumWant %d is not within [0, 1000]", c.NumWant)
	}
	if c.RequestTimeout <= 0 {
		bad("RequestTimeout %v is not positive", c.RequestTimeout)
	}
	if c.MinInterval <= 0 || c.MaxInterval < c.MinInterval {
		bad("MinInterval %v and MaxInterval %v: want 0 < min <= max", c.MinInterval, c.MaxInterval)
	}
	if c.RetryFirst <= 0 || c.RetryMax < c.RetryFirst {
		bad("RetryFirst %v and RetryMax %v: want 0 < first <= max", c.RetryFirst, c.RetryMax)
	}
	if c.MaxSwarms < 1 || c.MaxPeers < 1 || c.Concurrency < 1 {
		bad("MaxSwarms %d, MaxPeers %d and Concurrency %d must be at least 1", c.MaxSwarms, c.MaxPeers, c.Concurrency)
	}
	if c.Clock == nil || c.Logger == nil {
		bad("Clock and Logger must be set")
	}
	return errors.Join(errs...)
}

// ErrFull is returned by Announce when MaxSwarms swarms are bridged.
var ErrFull = errors.New("bridge: too many swarms bridged")

// tick paces the announcer's schedule.
const tick = 250 * time.Millisecond

// Announcer announces, on behalf of the BitTorrent clients of this host,
// to classic trackers: for each swarm a client announces (Announce) it
// announces the client's port to every tracker, again at the interval the
// tracker asks for, backing off when a tracker fails, and sends stopped
// when the client stops (Withdraw). The trackers' peers are kept, merged,
// for Peers. Nothing a tracker does blocks a caller: announces run on the
// Announcer's own goroutines, each bounded by RequestTimeout.
type Announcer struct {
	cfg     Config
	log     *slog.Logger
	clients []*Client
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	sem     chan struct{}
	kick    chan struct{}
	once    sync.Once

	mu     sync.Mutex
	swarms map[[20]byte]*swarm
}

// swarm is one infohash a local client announces.
type swarm struct {
	ih     [20]byte
	port   uint16
	seed   bool
	active bool // false: withdrawing (stopped goes out, then it is forgotten)
	links  []*link
}

// link is one swarm on one tracker.
type link struct {
	started  bool       // the tracker knows the client (started went out)
	event    wire.Event // the event the next announce carries
	next     time.Time  // the next announce is due
	busy     bool
	stopped  bool // withdrawing, and stopped went out (or cannot)
	tries    int  // announces since the swarm (re)started, failed ones included
	fails    int  // failures in a row
	last     time.Time
	lastOK   time.Time
	interval time.Duration
	minIvl   time.Duration
	seeders  int
	leechers int
	peers    []netip.AddrPort
	external netip.Addr
	err      string
	failure  bool // err is the tracker's own failure reason
	warning  string
}

// New starts an Announcer. Close stops it.
func New(cfg Config) (*Announcer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.PeerID == ([20]byte{}) {
		copy(cfg.PeerID[:], "-KT0100-")
		const alnum = "0123456789abcdefghijklmnopqrstuvwxyz"
		var rnd [12]byte
		rand.Read(rnd[:])
		for i, b := range rnd {
			cfg.PeerID[8+i] = alnum[int(b)%len(alnum)]
		}
	}
	a := &Announcer{
		cfg:    cfg,
		log:    cfg.Logger.With("component", "bridge"),
		sem:    make(chan struct{}, cfg.Concurrency),
		kick:   make(chan struct{}, 1),
		swarms: make(map[[20]byte]*swarm),
	}
	for _, t := range cfg.Trackers {
		c, err := NewClient(t, ClientConfig{
			HTTP: cfg.HTTP, Timeout: cfg.RequestTimeout,
			UDPRetransmit: cfg.UDPRetransmit, UDPTries: cfg.UDPTries,
			UserAgent: "kadtracker", Clock: cfg.Clock,
		})
		if err != nil {
			return nil, err
		}
		a.clients = append(a.clients, c)
	}
	a.ctx, a.cancel = context.WithCancel(context.Background())
	a.wg.Go(a.loop)
	return a, nil
}

// Trackers are the announce URLs.
func (a *Announcer) Trackers() []string {
	out := make([]string, len(a.clients))
	for i, c := range a.clients {
		out[i] = c.URL()
	}
	return out
}

// Close stops announcing; announces in flight are cancelled (no stopped
// is sent for the swarms still announced). It is idempotent.
func (a *Announcer) Close() error {
	a.once.Do(func() {
		a.cancel()
		a.wg.Wait()
	})
	return nil
}

func (a *Announcer) poke() {
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

// Announce starts bridging infohash for a client on port, or updates it:
// a new port starts it again, a leecher turned seed sends completed. It
// returns at once; the announces follow.
func (a *Announcer) Announce(infohash [20]byte, port uint16, seed bool) error {
	if port == 0 {
		return errors.New("bridge: announce needs a port")
	}
	now := a.cfg.Clock()
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.swarms[infohash]
	if s == nil {
		if len(a.swarms) >= a.cfg.MaxSwarms {
			return fmt.Errorf("%w: %d", ErrFull, len(a.swarms))
		}
		s = &swarm{ih: infohash, links: make([]*link, len(a.clients))}
		for i := range s.links {
			s.links[i] = &link{}
		}
		a.swarms[infohash] = s
	}
	restart := !s.active || s.port != port
	completed := s.active && !s.seed && seed
	s.port, s.seed, s.active = port, seed, true
	for _, l := range s.links {
		l.stopped = false
		switch {
		case restart:
			l.event, l.next, l.tries = wire.EventStarted, now, 0
			l.fails = 0
		case completed && l.started:
			l.event, l.next = wire.EventCompleted, now
		case completed:
			l.next = now // still starting: the next try says started, as a seed
		}
	}
	a.poke()
	return nil
}

// Withdraw stops bridging infohash: each tracker that knows the client is
// sent stopped, once, and the swarm is then forgotten.
func (a *Announcer) Withdraw(infohash [20]byte) {
	now := a.cfg.Clock()
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.swarms[infohash]
	if s == nil || !s.active {
		return
	}
	s.active = false
	for _, l := range s.links {
		l.peers = nil
		if l.started {
			l.event, l.next, l.stopped = wire.EventStopped, now, false
		} else {
			l.stopped = true
		}
	}
	a.poke()
}

// Peer is a peer one of the trackers gave.
type Peer struct {
	Addr    netip.AddrPort
	Tracker string // announce URL
}

// Peers returns the peers the trackers gave in their latest answers for
// infohash, without duplicates and without the client itself (its port at
// an address a tracker said is ours, BEP 24). Cheap: it reads memory only.
func (a *Announcer) Peers(infohash [20]byte) []Peer {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.swarms[infohash]
	if s == nil || !s.active {
		return nil
	}
	return a.merged(s)
}

// merged is s's peers from every tracker. a.mu is held.
func (a *Announcer) merged(s *swarm) []Peer {
	var out []Peer
	seen := make(map[netip.AddrPort]struct{})
	for _, l := range s.links {
		if l.external.IsValid() {
			seen[netip.AddrPortFrom(l.external, s.port)] = struct{}{}
		}
	}
	for i, l := range s.links {
		for _, p := range l.peers {
			if _, ok := seen[p]; ok {
				continue
			}
			seen[p] = struct{}{}
			out = append(out, Peer{Addr: p, Tracker: a.clients[i].URL()})
		}
	}
	return out
}

// Settle waits until every tracker has answered (or failed) at least once
// for infohash since its client started, or until wait has passed or ctx
// ends. An infohash not bridged yet is waited for too, within wait: a
// caller may ask just before Announce registers it.
func (a *Announcer) Settle(ctx context.Context, infohash [20]byte, wait time.Duration) {
	timer := time.NewTimer(wait)
	defer timer.Stop()
	poll := time.NewTicker(20 * time.Millisecond)
	defer poll.Stop()
	for {
		if a.settled(infohash) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-a.ctx.Done():
			return
		case <-timer.C:
			return
		case <-poll.C:
		}
	}
}

func (a *Announcer) settled(ih [20]byte) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.swarms[ih]
	if s == nil {
		return false
	}
	for _, l := range s.links {
		if l.tries == 0 {
			return false
		}
	}
	return true
}

func (a *Announcer) loop() {
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-a.ctx.Done():
			return
		case <-t.C:
		case <-a.kick:
		}
		a.schedule()
	}
}

// schedule starts the announces that are due, as many as Concurrency
// allows; the rest wait for the next tick.
func (a *Announcer) schedule() {
	now := a.cfg.Clock()
	a.mu.Lock()
	defer a.mu.Unlock()
	for ih, s := range a.swarms {
		done := !s.active
		for i, l := range s.links {
			if !s.active && l.stopped && !l.busy {
				continue
			}
			done = false
			if l.busy || now.Before(l.next) {
				continue
			}
			select {
			case a.sem <- struct{}{}:
			default:
				return
			}
			l.busy = true
			req := AnnounceRequest{
				InfoHash: ih, PeerID: a.cfg.PeerID, Port: s.port,
				Event: l.event, NumWant: a.cfg.NumWant, Key: keyOf(a.cfg.PeerID),
			}
			if !s.seed {
				// The client's progress is not known here; a leecher must
				// not count as a seed, so it reports one byte left.
				req.Left = 1
			}
			if l.event == wire.EventStopped {
				req.NumWant = 0
			}
			c, sw := a.clients[i], s
			a.wg.Go(func() {
				defer func() { <-a.sem }()
				a.announce(c, sw, l, req)
			})
		}
		if done {
			delete(a.swarms, ih)
		}
	}
}

func keyOf(id [20]byte) uint32 {
	return uint32(id[16])<<24 | uint32(id[17])<<16 | uint32(id[18])<<8 | uint32(id[19])
}

// announce runs one announce and records its outcome.
func (a *Announcer) announce(c *Client, s *swarm, l *link, req AnnounceRequest) {
	ctx, cancel := context.WithTimeout(a.ctx, a.cfg.RequestTimeout)
	resp, err := c.Announce(ctx, req)
	cancel()
	now := a.cfg.Clock()
	a.mu.Lock()
	l.busy = false
	l.last = now
	l.tries++
	if a.ctx.Err() != nil {
		a.mu.Unlock()
		return
	}
	var notify []netip.AddrPort
	switch {
	case req.Event == wire.EventStopped:
		// One try: a tracker that misses it lets the peer time out.
		l.stopped, l.started = true, false
		if err != nil {
			a.log.Debug("stopped not delivered", "tracker", c.URL(), "infohash", fmt.Sprintf("%x", req.InfoHash), "err", err)
		}
	case err != nil:
		l.fails++
		var fe *wire.FailureError
		l.failure = errors.As(err, &fe)
		l.err = err.Error()
		backoff := a.backoff(l.fails)
		l.next = now.Add(backoff)
		a.log.Info("tracker announce failed", "tracker", c.URL(), "infohash", fmt.Sprintf("%x", req.InfoHash), "retry_in", backoff, "err", err)
	case !s.active:
		// Withdrawn while this announce ran: the tracker knows the client
		// now, so tell it the client stopped.
		l.started = true
		l.event, l.next, l.stopped = wire.EventStopped, now, false
	case s.port != req.Port:
		// Restarted on another port meanwhile: the next announce says so.
	default:
		l.fails, l.err, l.failure = 0, "", false
		l.lastOK = now
		l.started = true
		if l.event == req.Event {
			l.event = wire.EventNone
		}
		l.interval, l.minIvl = resp.Interval, resp.MinInterval
		l.seeders, l.leechers, l.warning = resp.Seeders, resp.Leechers, resp.Warning
		l.external = resp.ExternalIP
		l.peers = sanitize(resp.Peers, a.cfg.MaxPeers)
		l.next = now.Add(a.interval(resp))
		if a.cfg.OnPeers != nil {
			notify = slices.Clone(peerAddrs(a.merged(s)))
		}
	}
	a.mu.Unlock()
	if notify != nil {
		a.cfg.OnPeers(req.InfoHash, notify)
	}
}

func peerAddrs(ps []Peer) []netip.AddrPort {
	out := make([]netip.AddrPort, len(ps))
	for i, p := range ps {
		out[i] = p.Addr
	}
	return out
}

// interval is when to announce again after resp: the tracker's interval,
// never below its min interval, within [MinInterval, MaxInterval].
func (a *Announcer) interval(resp AnnounceResponse) time.Duration {
	d := max(resp.Interval, resp.MinInterval, a.cfg.MinInterval)
	return min(d, a.cfg.MaxInterval)
}

// backoff is RetryFirst doubled per failure in a row, up to RetryMax, with
// a tenth of jitter so that many swarms do not retry in step.
func (a *Announcer) backoff(fails int) time.Duration {
	d := a.cfg.RetryFirst << min(fails-1, 30)
	if d <= 0 || d > a.cfg.RetryMax {
		d = a.cfg.RetryMax
	}
	return d - time.Duration(mrand.Int64N(int64(d)/10+1))
}

// sanitize keeps at most n peers a client can dial: a unicast address
// without zone and a nonzero port.
func sanitize(peers []netip.AddrPort, n int) []netip.AddrPort {
	var out []netip.AddrPort
	for _, p := range peers {
		ip := p.Addr().Unmap()
		if len(out) == n {
			break
		}
		if p.Port() == 0 || !ip.IsValid() || ip.IsUnspecified() || ip.IsMulticast() || ip.Zone() != "" || ip == netip.IPv4Unspecified() {
			continue
		}
		out = append(out, netip.AddrPortFrom(ip, p.Port()))
	}
	return out
}

// TrackerState is one swarm on one tracker, for the local API.
type TrackerState struct {
	URL          string
	LastAnnounce time.Time // zero: none yet
	LastSuccess  time.Time
	NextAnnounce time.Time // zero while one runs
	Interval     time.Duration
	MinInterval  time.Duration
	Seeders      int
	Leechers     int
	Peers        int
	Fails        int    // failures in a row
	Error        string // the last failure, "" after a success
	Failure      bool   // Error is the tracker's failure reason
	Warning      string
}

// SwarmState is one bridged swarm.
type SwarmState struct {
	Infohash [20]byte
	Port     uint16
	Seed     bool
	Active   bool // false: stopping
	Trackers []TrackerState
}

// State returns every bridged swarm, sorted by infohash.
func (a *Announcer) State() []SwarmState {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]SwarmState, 0, len(a.swarms))
	for _, s := range a.swarms {
		st := SwarmState{Infohash: s.ih, Port: s.port, Seed: s.seed, Active: s.active}
		for i, l := range s.links {
			ts := TrackerState{
				URL: a.clients[i].URL(), LastAnnounce: l.last, LastSuccess: l.lastOK,
				Interval: l.interval, MinInterval: l.minIvl, Seeders: l.seeders, Leechers: l.leechers,
				Peers: len(l.peers), Fails: l.fails, Error: l.err, Failure: l.failure, Warning: l.warning,
			}
			if !l.busy && !(l.stopped && !s.active) {
				ts.NextAnnounce = l.next
			}
			st.Trackers = append(st.Trackers, ts)
		}
		out = append(out, st)
	}
	slices.SortFunc(out, func(x, y SwarmState) int {
		for i := range x.Infohash {
			if c := int(x.Infohash[i]) - int(y.Infohash[i]); c != 0 {
				return c
			}
		}
		return 0
	})
	return out
}
