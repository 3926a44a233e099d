package tracker

import (
	"container/list"
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/kadtracker/kadtracker/node/tracker/wire"
	"github.com/kadtracker/kadtracker/records"
)

const (
	// sweepEvery paces lapses, retries, background refreshes and cleanup.
	sweepEvery = 5 * time.Second
	// minLookupSpacing: a swarm is looked up at most this often, whatever
	// asks (announces, scrapes, the sweep), failed lookups included.
	minLookupSpacing = time.Second
	// lookupSlack: a lookup asks for a few more peers than MaxNumwant, so
	// dropping the requester's own records still leaves a full answer.
	lookupSlack = 8
	// retryFirst and retryMax bound the backoff of failed node calls.
	retryFirst = 5 * time.Second
	retryMax   = 2 * time.Minute
	// withdrawTries: a failing Withdraw is given up after this many tries;
	// the record then expires by its TTL.
	withdrawTries = 3
	// listenerWarnEvery: a listener's errors are logged at most this often.
	listenerWarnEvery = time.Minute
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
	errNewSwarms  = clientError("too many new torrents from your address: announce again later")
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

	leaving   map[[20]byte]*swarm        // out of the cache, withdraw to do
	held      map[netip.Prefix]int       // swarms each address has clients in
	newSwarms map[netip.Prefix]time.Time // new-swarm rate (allowNewSwarm)

	stats counters

	// unprotected turns off the HTTP front's cutting of idle connections
	// (tests only: the control of the keep-alive flood).
	unprotected bool

	warnMu   sync.Mutex
	lastWarn time.Time // last Warn of a listener's error
	unwarned uint64    // listener errors not logged since
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
		held:    make(map[netip.Prefix]int),
		leaving: make(map[[20]byte]*swarm),

		newSwarms: make(map[netip.Prefix]time.Time),
	}
	t.scratch.New = func() any { return new(scratch) }
	t.wg.Go(t.loop)
	return t, nil
}

// Close stops the background work and waits for it; calls into the Node
// that are running are cancelled. Records the node publishes are left to the
// node (its Close stops republishing them), and listeners hear no Withdraw:
// their owner stops them too. Close is idempotent.
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

// await waits for lookups, all of them up to FirstLookupWait in total.
func (t *Tracker) await(ctx context.Context, waits ...<-chan struct{}) {
	if !slices.ContainsFunc(waits, func(w <-chan struct{}) bool { return w != nil }) || t.cfg.FirstLookupWait <= 0 {
		return
	}
	timer := time.NewTimer(t.cfg.FirstLookupWait)
	defer timer.Stop()
	for _, wait := range waits {
		if wait == nil {
			continue
		}
		select {
		case <-wait:
		case <-timer.C:
			return
		case <-ctx.Done():
			return
		case <-t.ctx.Done():
			return
		}
	}
}

// begin records the announce and starts what it calls for: a node Announce
// or Withdraw when the publication changes, a lookup when the cache is not
// fresh. wait is non-nil when the answer should wait for that lookup:
// whenever the cache is not fresh, whoever asks (seed or leecher).
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
				t.dropClient(s, i)
				t.reconcile(s, now)
			}
		}
		return s, nil, nil
	}
	addr := addrOf(req.client.Addr())
	if s == nil {
		if s, err = t.add(req.infohash, addr, req.client.Port() != 0, now); err != nil {
			return nil, nil, err
		}
	}
	t.lru.MoveToFront(s.elem)
	s.lastUsed = now
	if req.client.Port() != 0 { // port 0 cannot take connections: look up only
		i := s.find(req.client)
		if i < 0 {
			if len(s.clients) >= maxClientsPerSwarm {
				t.stats.refusedClients.Add(1)
				return nil, nil, errTooManyClients
			}
			if n := t.cfg.SwarmClientsPerAddr; n > 0 && s.addrClients(addr) >= n {
				t.stats.refusedClients.Add(1)
				return nil, nil, errAddrClients
			}
			t.addClient(s, client{ep: req.client})
			i = len(s.clients) - 1
		}
		s.clients[i].lastSeen, s.clients[i].seed = now, req.seed
		t.reconcile(s, now)
	}
	if !t.fresh(s, now) {
		t.lookup(s, now, nil)
		wait = s.lookupDone // nil when none could start: the cache answers
	}
	return s, wait, nil
}

// add makes room for and inserts a new swarm for a request from addr;
// holds says the request brings a client. A swarm of the infohash that is
// leaving comes back with its publication state. t.mu is held.
func (t *Tracker) add(ih [20]byte, addr netip.Prefix, holds bool, now time.Time) (*swarm, error) {
	if !t.allowNewSwarm(addr, now) {
		t.stats.refusedNewSwarms.Add(1)
		return nil, errNewSwarms
	}
	if len(t.swarms) >= t.cfg.CacheSize && !t.makeRoom(addr, holds, now) {
		t.stats.refused.Add(1)
		return nil, errFull
	}
	s := t.leaving[ih]
	if s != nil {
		delete(t.leaving, ih)
		s.lastUsed = now
	} else {
		s = &swarm{infohash: ih, key: records.SwarmKey(ih), lastUsed: now}
	}
	s.elem = t.lru.PushFront(s)
	t.swarms[ih] = s
	return s, nil
}

// makeRoom frees a place for a new swarm in a full cache, and refuses only
// when no rule gives one, in this order: the least recently used idle
// swarm is forgotten; a swarm whose clients have all left is retired (it
// leaves the cache and withdraws); an address under its share takes a
// swarm of the address holding the most (takeShare). t.mu is held.
func (t *Tracker) makeRoom(addr netip.Prefix, holds bool, now time.Time) bool {
	for e := t.lru.Back(); e != nil; e = e.Prev() {
		s := e.Value.(*swarm)
		if s.idle() {
			t.remove(s)
			return true
		}
		if len(s.clients) == 0 && len(t.leaving) < t.cfg.CacheSize {
			t.retire(s, now)
			return true
		}
	}
	return holds && len(t.leaving) < t.cfg.CacheSize && t.takeShare(addr, now)
}

// retire moves s, which has no clients, out of the cache into leaving,
// where it stays until its withdraw is done. t.mu is held.
func (t *Tracker) retire(s *swarm, now time.Time) {
	t.remove(s)
	t.leaving[s.infohash] = s
	t.reconcile(s, now)
	t.forgetLeft(s)
}

// forgetLeft drops s from leaving once it is idle. t.mu is held.
func (t *Tracker) forgetLeft(s *swarm) {
	if s.idle() && t.leaving[s.infohash] == s {
		delete(t.leaving, s.infohash)
	}
}

func (t *Tracker) remove(s *swarm) {
	t.lru.Remove(s.elem)
	delete(t.swarms, s.infohash)
}

// scratch holds per-request buffers, pooled per Tracker.
type scratch struct {
	out   []byte
	addrs []netip.AddrPort
	peers []wire.Peer
	files []wire.ScrapeFile
}
