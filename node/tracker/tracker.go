package tracker

import (
	"container/list"
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kadtracker/kadtracker/node/tracker/wire"
	"github.com/kadtracker/kadtracker/records"
)

const (
	// sweepEvery paces lapses, retries, background refreshes and cleanup.
	sweepEvery = 5 * time.Second
	// minLookupSpacing: a swarm is looked up at most this often.
	minLookupSpacing = 5 * time.Second
	// lookupSlack: a lookup asks for a few more peers than MaxNumwant, so
	// dropping the requester's own records still leaves a full answer.
	lookupSlack = 8
	// retryFirst and retryMax bound the backoff of failed node calls.
	retryFirst = 5 * time.Second
	retryMax   = 2 * time.Minute
	// withdrawTries: a failing Withdraw is given up after this many tries;
	// the record then expires by its TTL.
	withdrawTries = 3
)

// clientError is an error whose text goes to the client as it is.
type clientError string

func (e clientError) Error() string { return string(e) }

var (
	// ErrClosed is returned by Serve and ServeUDP on a closed Tracker.
	ErrClosed = errors.New("tracker: closed")

	errShutdown   = clientError("tracker is shutting down")
	errNotAllowed = clientError("torrent not allowed on this tracker")
	errFull       = clientError("tracker is full: too many torrents announced at once")
)

// reason is the failure text a client sees for err: parse errors and the
// front's own client errors verbatim, anything else as a fixed string.
func reason(err error) string {
	var we *wire.Error
	var ce clientError
	switch {
	case errors.As(err, &we):
		return we.Error()
	case errors.As(err, &ce):
		return string(ce)
	}
	return "internal error"
}

// Tracker is the swarm logic behind the HTTP and UDP fronts: it keeps the
// clients that announce through this daemon, publishes their swarms through
// the Node (once per change, not per announce), withdraws them when the
// clients stop or fall silent, and answers from a bounded lookup cache that
// it refreshes in the background. Its methods are safe for concurrent use.
type Tracker struct {
	cfg     Config
	node    Node
	log     *slog.Logger
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	refresh chan struct{} // semaphore of background lookups
	calls   chan struct{} // semaphore of all calls into the node
	scratch sync.Pool     // *scratch
	once    sync.Once

	mu     sync.Mutex
	closed bool
	swarms map[[20]byte]*swarm
	lru    list.List // of *swarm, most recently announced first

	stats counters
}

// swarm is one infohash: the local clients announcing it, what the node
// publishes for it, and the cached lookup.
type swarm struct {
	infohash [20]byte
	key      records.Key
	elem     *list.Element
	lastUsed time.Time

	clients []client       // few: a swarm rarely has more than one local client
	primary netip.AddrPort // the client whose port the node publishes
	want    pub            // what the node should publish
	have    pub            // what it publishes (last call that succeeded)
	busy    bool           // an Announce or Withdraw is running
	retryAt time.Time
	fails   int

	peers      []Peer
	seeds      int
	leechers   int
	fetched    time.Time     // end of the last successful lookup; zero: none yet
	lastLookup time.Time     // start of the last lookup
	lookupErr  bool          // the last lookup failed
	lookupDone chan struct{} // closed when the running lookup ends; nil: none
}

type client struct {
	ep       netip.AddrPort // source IP and announced port
	lastSeen time.Time
	seed     bool
}

// maxClientsPerSwarm caps the local clients of one swarm: a daemon serves
// the clients of one host, and every answer scans them.
const maxClientsPerSwarm = 64

var errTooManyClients = clientError("too many clients announce this torrent through this daemon")

func (s *swarm) find(ep netip.AddrPort) int {
	for i := range s.clients {
		if s.clients[i].ep == ep {
			return i
		}
	}
	return -1
}

func (s *swarm) drop(i int) {
	last := len(s.clients) - 1
	s.clients[i] = s.clients[last]
	s.clients = s.clients[:last]
}

// pub is a publication state: on with (port, seed), or withdrawn.
type pub struct {
	on   bool
	port uint16
	seed bool
}

func (s *swarm) idle() bool { return len(s.clients) == 0 && !s.busy && !s.have.on }

func (s *swarm) hasLeecher() bool {
	for i := range s.clients {
		if !s.clients[i].seed {
			return true
		}
	}
	return false
}

// New starts a Tracker in front of node. Close stops it.
func New(node Node, cfg Config) (*Tracker, error) {
	if node == nil {
		return nil, errors.New("tracker: nil Node")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	t := &Tracker{
		cfg:     cfg,
		node:    node,
		log:     cfg.Logger.With("component", "tracker"),
		ctx:     ctx,
		cancel:  cancel,
		refresh: make(chan struct{}, cfg.LookupConcurrency),
		calls:   make(chan struct{}, cfg.NodeConcurrency),
		swarms:  make(map[[20]byte]*swarm),
	}
	t.scratch.New = func() any { return new(scratch) }
	t.wg.Go(t.loop)
	return t, nil
}

// Close stops the background work and waits for it; calls into the Node
// that are running are cancelled. Records the node publishes are left to the
// node (its Close stops republishing them). Close is idempotent.
func (t *Tracker) Close() error {
	t.once.Do(func() {
		t.mu.Lock()
		t.closed = true
		t.mu.Unlock()
		t.cancel()
		t.wg.Wait()
	})
	return nil
}

func (t *Tracker) loop() {
	tick := time.NewTicker(sweepEvery)
	defer tick.Stop()
	for {
		select {
		case <-t.ctx.Done():
			return
		case <-tick.C:
			t.sweep()
		}
	}
}

// request is an announce from either front.
type request struct {
	infohash [20]byte
	// client is the requester's listening endpoint: the source IP of the
	// request (unmapped) with the announced port.
	client netip.AddrPort
	// claimed is the "ip" parameter (or UDP IP field). It is never
	// published (storing nodes take the IP from the connection); it only
	// widens the self-exclusion.
	claimed netip.Addr
	event   wire.Event
	seed    bool
	numwant int // -1: default
	// only4/only6 restrict the answer to one family (BEP 15 layouts).
	only4, only6 bool
}

// answer is what the fronts encode.
type answer struct {
	interval    time.Duration
	minInterval time.Duration
	complete    int
	incomplete  int
	peers       []netip.AddrPort
	warning     string
}

// announce runs an announce from start to answer, waiting for a running
// lookup when begin says so.
func (t *Tracker) announce(ctx context.Context, req *request, dst []netip.AddrPort) (answer, error) {
	s, wait, err := t.begin(req)
	if err != nil {
		return answer{}, err
	}
	t.await(ctx, wait)
	return t.finish(s, req, dst), nil
}

// await waits for a lookup up to FirstLookupWait.
func (t *Tracker) await(ctx context.Context, wait <-chan struct{}) {
	if wait == nil || t.cfg.FirstLookupWait <= 0 {
		return
	}
	timer := time.NewTimer(t.cfg.FirstLookupWait)
	defer timer.Stop()
	select {
	case <-wait:
	case <-timer.C:
	case <-ctx.Done():
	case <-t.ctx.Done():
	}
}

// begin records the announce and starts what it calls for: a node Announce
// or Withdraw when the publication changes, a lookup when the cache is empty
// or stale. wait is non-nil when the answer should wait for that lookup.
func (t *Tracker) begin(req *request) (s *swarm, wait <-chan struct{}, err error) {
	t.stats.announces.Add(1)
	now := t.cfg.Clock()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, nil, errShutdown
	}
	if t.cfg.Allow != nil && !t.cfg.Allow(req.infohash) {
		t.stats.refused.Add(1)
		return nil, nil, errNotAllowed
	}
	s = t.swarms[req.infohash]
	if req.event == wire.EventStopped {
		if s != nil {
			if i := s.find(req.client); i >= 0 {
				s.drop(i)
				t.reconcile(s, now)
			}
		}
		return s, nil, nil
	}
	if s == nil {
		if s, err = t.add(req.infohash, now); err != nil {
			return nil, nil, err
		}
	}
	t.lru.MoveToFront(s.elem)
	s.lastUsed = now
	if req.client.Port() != 0 { // port 0 cannot take connections: look up only
		i := s.find(req.client)
		if i < 0 {
			if len(s.clients) >= maxClientsPerSwarm {
				return nil, nil, errTooManyClients
			}
			s.clients = append(s.clients, client{ep: req.client})
			i = len(s.clients) - 1
		}
		s.clients[i].lastSeen, s.clients[i].seed = now, req.seed
		t.reconcile(s, now)
	}
	starving := !req.seed && req.numwant != 0 && t.usable(s, req) == 0
	staleAfter := t.cfg.CacheTTL
	if starving {
		staleAfter = t.cfg.ShortInterval
	}
	if s.fetched.IsZero() || now.Sub(s.fetched) >= staleAfter {
		t.lookup(s, now, nil)
	}
	if s.lookupDone != nil && (s.fetched.IsZero() || starving) {
		wait = s.lookupDone
	}
	return s, wait, nil
}

// add makes room for and inserts a new swarm. t.mu is held.
func (t *Tracker) add(ih [20]byte, now time.Time) (*swarm, error) {
	if len(t.swarms) >= t.cfg.CacheSize && !t.evictOne() {
		t.stats.refused.Add(1)
		return nil, errFull
	}
	s := &swarm{infohash: ih, key: records.SwarmKey(ih), lastUsed: now}
	s.elem = t.lru.PushFront(s)
	t.swarms[ih] = s
	return s, nil
}

func (t *Tracker) evictOne() bool {
	for e := t.lru.Back(); e != nil; e = e.Prev() {
		if s := e.Value.(*swarm); s.idle() {
			t.remove(s)
			return true
		}
	}
	return false
}

func (t *Tracker) remove(s *swarm) {
	t.lru.Remove(s.elem)
	delete(t.swarms, s.infohash)
}

// reconcile starts a node call when what should be published differs from
// what is. One call per swarm runs at a time; its end reconciles again.
// t.mu is held.
func (t *Tracker) reconcile(s *swarm, now time.Time) {
	s.want = s.desired()
	if s.busy || s.want == s.have || now.Before(s.retryAt) || t.closed || !t.acquire() {
		return
	}
	s.busy = true
	op := s.want
	t.wg.Go(func() {
		defer t.release()
		t.apply(s, op)
	})
}

// acquire takes a node-call slot if one is free; a call that gets none is
// tried again later (the sweep reconciles every swarm).
func (t *Tracker) acquire() bool {
	select {
	case t.calls <- struct{}{}:
		return true
	default:
		t.stats.deferred.Add(1)
		return false
	}
}

func (t *Tracker) release() { <-t.calls }

// desired is the publication the swarm's clients call for: the port of one
// client (the primary, kept while it announces) and its seed flag.
func (s *swarm) desired() pub {
	if len(s.clients) == 0 {
		return pub{}
	}
	i := s.find(s.primary)
	if i < 0 {
		i = 0
		for j := range s.clients {
			if s.clients[j].ep.Compare(s.clients[i].ep) < 0 {
				i = j
			}
		}
		s.primary = s.clients[i].ep
	}
	return pub{on: true, port: s.primary.Port(), seed: s.clients[i].seed}
}

func (t *Tracker) apply(s *swarm, op pub) {
	ctx, cancel := context.WithTimeout(t.ctx, t.cfg.NodeTimeout)
	var err error
	if op.on {
		err = t.node.Announce(ctx, s.key, op.port, op.seed)
	} else {
		err = t.node.Withdraw(ctx, s.key)
	}
	cancel()
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.cfg.Clock()
	s.busy = false
	switch {
	case err == nil:
		s.have, s.fails, s.retryAt = op, 0, time.Time{}
		if op.on {
			t.stats.published.Add(1)
		} else {
			t.stats.withdrawn.Add(1)
		}
	case !op.on && s.fails+1 >= withdrawTries:
		t.stats.nodeErrors.Add(1)
		t.log.Warn("withdraw failed; the record will expire", "infohash", s.key, "err", err)
		s.have, s.fails, s.retryAt = op, 0, time.Time{}
	default:
		t.stats.nodeErrors.Add(1)
		s.fails++
		backoff := min(retryFirst<<(s.fails-1), retryMax)
		s.retryAt = now.Add(backoff)
		if !t.closed {
			t.log.Info("node call failed; will retry", "announce", op.on, "infohash", s.key, "retry_in", backoff, "err", err)
		}
	}
	t.reconcile(s, now)
}

// lookup starts a lookup of s unless one runs or ran moments ago. release,
// when non-nil, runs when it ends. t.mu is held.
func (t *Tracker) lookup(s *swarm, now time.Time, release func()) bool {
	if s.lookupDone != nil || t.closed || (!s.lastLookup.IsZero() && now.Sub(s.lastLookup) < minLookupSpacing) || !t.acquire() {
		return false
	}
	done := make(chan struct{})
	s.lookupDone, s.lastLookup = done, now
	t.stats.lookups.Add(1)
	t.wg.Go(func() {
		defer t.release()
		if release != nil {
			defer release()
		}
		ctx, cancel := context.WithTimeout(t.ctx, t.cfg.NodeTimeout)
		sw, err := t.node.Lookup(ctx, s.key, t.cfg.MaxNumwant+lookupSlack)
		cancel()
		var peers []Peer
		if err == nil {
			peers = make([]Peer, 0, len(sw.Peers))
			for _, p := range sw.Peers {
				a := p.Endpoint.Addr().Unmap().WithZone("")
				if a.IsValid() && !a.IsUnspecified() && p.Endpoint.Port() != 0 {
					p.Endpoint = netip.AddrPortFrom(a, p.Endpoint.Port())
					peers = append(peers, p)
				}
			}
		}
		t.mu.Lock()
		defer t.mu.Unlock()
		if err != nil {
			t.stats.lookupErrors.Add(1)
			t.log.Debug("lookup failed", "infohash", s.key, "err", err)
		} else {
			s.peers, s.seeds, s.leechers = peers, max(sw.Seeds, 0), max(sw.Leechers, 0)
			s.fetched = t.cfg.Clock()
		}
		s.lookupErr = err != nil
		s.lookupDone = nil
		close(done)
	})
	return true
}

// sweep lapses silent clients, retries failed node calls, refreshes the
// swarms of leeching clients and forgets idle swarms.
func (t *Tracker) sweep() {
	now := t.cfg.Clock()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return
	}
	for _, s := range t.swarms {
		for i := len(s.clients) - 1; i >= 0; i-- {
			if c := s.clients[i]; now.Sub(c.lastSeen) > t.cfg.ClientTimeout {
				s.drop(i)
				t.stats.lapsed.Add(1)
				t.log.Debug("client lapsed", "infohash", s.key, "client", c.ep)
			}
		}
		t.reconcile(s, now)
		if s.lookupDone == nil && s.hasLeecher() && now.Sub(s.fetched) >= t.cfg.CacheTTL {
			select {
			case t.refresh <- struct{}{}:
				if !t.lookup(s, now, func() { <-t.refresh }) {
					<-t.refresh
				}
			default:
			}
		}
		if s.idle() && now.Sub(s.lastUsed) > t.cfg.ClientTimeout {
			t.remove(s)
		}
	}
}

// self reports whether ep is the requester itself: its endpoint as seen or
// claimed; on loopback any loopback address with its port (a client bound
// to 127.0.0.1 may announce from ::1 and the other way round); and any
// record this daemon published with its port.
func (req *request) self(ep netip.AddrPort, local bool) bool {
	if ep.Port() != req.client.Port() {
		return false
	}
	a := ep.Addr()
	return local || a == req.client.Addr() || a == req.claimed ||
		(a.IsLoopback() && req.client.Addr().IsLoopback())
}

func (req *request) fits(a netip.Addr) bool {
	return !(req.only4 && !a.Is4()) && !(req.only6 && !a.Is6())
}

// candidates calls f for every peer the requester may be given: other local
// clients, then the cached DHT peers, never itself, a seed never to a seed.
// It stops when f returns false. t.mu is held.
func (s *swarm) candidates(req *request, f func(ep netip.AddrPort) bool) {
	for i := range s.clients {
		c := &s.clients[i]
		if req.self(c.ep, false) || (req.seed && c.seed) || !req.fits(c.ep.Addr()) {
			continue
		}
		if !f(c.ep) {
			return
		}
	}
	for i := range s.peers {
		p := &s.peers[i]
		if !s.offerable(req, p) {
			continue
		}
		if !f(p.Endpoint) {
			return
		}
	}
}

// offerable reports whether the peer p, found by the node, may be handed to
// the client behind req.
func (s *swarm) offerable(req *request, p *Peer) bool {
	return !s.isClient(p) && !req.self(p.Endpoint, p.Local) && !(req.seed && p.Seed) && req.fits(p.Endpoint.Addr())
}

// isClient reports whether the DHT peer p is one of the swarm's local
// clients, which are offered and counted as such: a record this daemon
// published on a client's port, or the client's own endpoint (any loopback
// address for a client on loopback).
func (s *swarm) isClient(p *Peer) bool {
	for i := range s.clients {
		ep := s.clients[i].ep
		if ep.Port() != p.Endpoint.Port() {
			continue
		}
		a := p.Endpoint.Addr()
		if p.Local || a == ep.Addr() || (a.IsLoopback() && ep.Addr().IsLoopback()) {
			return true
		}
	}
	return false
}

func (t *Tracker) usable(s *swarm, req *request) int {
	n := 0
	s.candidates(req, func(netip.AddrPort) bool { n++; return false })
	return n
}

// counts are the swarm's seeds and leechers: the larger of what the storing
// nodes report and what this daemon sees (its clients and the peers found).
func (s *swarm) counts() (seeds, leechers int) {
	for i := range s.clients {
		if s.clients[i].seed {
			seeds++
		} else {
			leechers++
		}
	}
	for i := range s.peers {
		p := &s.peers[i]
		if s.isClient(p) {
			continue
		}
		if p.Seed {
			seeds++
		} else {
			leechers++
		}
	}
	return max(seeds, s.seeds), max(leechers, s.leechers)
}

// finish builds the answer from the cache, peers appended to dst.
func (t *Tracker) finish(s *swarm, req *request, dst []netip.AddrPort) answer {
	a := answer{interval: t.cfg.Interval, minInterval: t.cfg.MinInterval, peers: dst[:0]}
	if s == nil {
		return a
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	a.complete, a.incomplete = s.counts()
	var live []Peer
	if src, ok := t.node.(LiveSource); ok {
		live = src.LivePeers(s.key)
		for _, p := range live {
			if p.Seed {
				a.complete++
			} else {
				a.incomplete++
			}
		}
	}
	if req.event == wire.EventStopped {
		return a
	}
	want := req.numwant
	if want < 0 {
		want = t.cfg.DefaultNumwant
	}
	want = min(want, t.cfg.MaxNumwant)
	if want > 0 {
		s.candidates(req, func(ep netip.AddrPort) bool {
			a.peers = append(a.peers, ep)
			return true
		})
		for i := range live {
			if s.offerable(req, &live[i]) {
				a.peers = append(a.peers, live[i].Endpoint)
			}
		}
		if len(a.peers) > want { // a uniform sample of want
			for i := range want {
				j := i + rand.IntN(len(a.peers)-i)
				a.peers[i], a.peers[j] = a.peers[j], a.peers[i]
			}
			a.peers = a.peers[:want]
		}
	}
	switch {
	case s.fetched.IsZero():
		a.interval, a.minInterval = t.cfg.ShortInterval, t.cfg.ShortInterval
		if s.lookupErr {
			a.warning = "DHT lookup failed; retrying"
		} else {
			a.warning = "DHT lookup in progress; announce again shortly"
		}
	case !req.seed && len(a.peers) == 0:
		a.interval, a.minInterval = t.cfg.ShortInterval, t.cfg.ShortInterval
	}
	return a
}

// Clients returns the endpoints of the clients announcing each swarm (their
// source address and announced port), for a daemon that publishes them.
func (t *Tracker) Clients() map[records.Key][]netip.AddrPort {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[records.Key][]netip.AddrPort)
	for _, s := range t.swarms {
		for _, c := range s.clients {
			out[s.key] = append(out[s.key], c.ep)
		}
	}
	return out
}

// scrape appends the counts of each infohash, from the cache only (zeros
// for an infohash the daemon does not track).
func (t *Tracker) scrape(hashes [][20]byte, dst []wire.ScrapeFile) []wire.ScrapeFile {
	t.stats.scrapes.Add(1)
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, h := range hashes {
		f := wire.ScrapeFile{InfoHash: h}
		if s := t.swarms[h]; s != nil && (t.cfg.Allow == nil || t.cfg.Allow(h)) {
			f.Complete, f.Incomplete = s.counts()
		}
		dst = append(dst, f)
	}
	return dst
}

type counters struct {
	announces, scrapes, badRequests, refused  atomic.Uint64
	lookups, lookupErrors, nodeErrors, lapsed atomic.Uint64
	published, withdrawn                      atomic.Uint64
	udpConnects, udpBadConnIDs, udpIgnored    atomic.Uint64
	deferred                                  atomic.Uint64
	// Announces answered, by front and outcome.
	httpOK, httpFailed, udpOK, udpFailed atomic.Uint64
}

// Stats is a snapshot of the front.
type Stats struct {
	Swarms    int // infohashes kept (cache entries and announced swarms)
	Clients   int // local clients announcing, all swarms
	Published int // swarms the node publishes for them

	Announces     uint64 // announces handled, HTTP and UDP
	Scrapes       uint64
	BadRequests   uint64 // requests answered with a failure or error packet
	Refused       uint64 // new infohashes refused because the cache was full
	Lookups       uint64
	LookupErrors  uint64
	NodeErrors    uint64 // failed Announce and Withdraw calls
	Lapsed        uint64 // clients dropped after ClientTimeout of silence
	UDPConnects   uint64
	UDPBadConnIDs uint64 // announces and scrapes with a forged or expired connection ID
	UDPIgnored    uint64 // packets too short to answer
	Deferred      uint64 // node calls put off because NodeConcurrency were running
	// Announces answered with peers, and with a failure (malformed,
	// refused, shutting down), by front.
	HTTPAnnounces, HTTPAnnounceFailures uint64
	UDPAnnounces, UDPAnnounceFailures   uint64
}

// Stats returns a snapshot.
func (t *Tracker) Stats() Stats {
	t.mu.Lock()
	st := Stats{Swarms: len(t.swarms)}
	for _, s := range t.swarms {
		st.Clients += len(s.clients)
		if s.have.on {
			st.Published++
		}
	}
	t.mu.Unlock()
	c := &t.stats
	st.Announces, st.Scrapes, st.BadRequests, st.Refused = c.announces.Load(), c.scrapes.Load(), c.badRequests.Load(), c.refused.Load()
	st.Lookups, st.LookupErrors, st.NodeErrors, st.Lapsed = c.lookups.Load(), c.lookupErrors.Load(), c.nodeErrors.Load(), c.lapsed.Load()
	st.UDPConnects, st.UDPBadConnIDs, st.UDPIgnored = c.udpConnects.Load(), c.udpBadConnIDs.Load(), c.udpIgnored.Load()
	st.Deferred = c.deferred.Load()
	st.HTTPAnnounces, st.HTTPAnnounceFailures = c.httpOK.Load(), c.httpFailed.Load()
	st.UDPAnnounces, st.UDPAnnounceFailures = c.udpOK.Load(), c.udpFailed.Load()
	return st
}

// scratch holds per-request buffers, pooled per Tracker.
type scratch struct {
	out   []byte
	addrs []netip.AddrPort
	peers []wire.Peer
	files []wire.ScrapeFile
}
