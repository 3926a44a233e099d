package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kadtracker/kadtracker/bootstrap"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/discovery"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	drouting "github.com/libp2p/go-libp2p/p2p/discovery/routing"
	dutil "github.com/libp2p/go-libp2p/p2p/discovery/util"
)

// DefaultNetwork is the public kadtracker network.
const DefaultNetwork = "kadtracker"

// maxNetworkName bounds a network name: it goes into protocol IDs.
const maxNetworkName = 32

func validNetwork(s string) bool {
	if len(s) == 0 || len(s) > maxNetworkName {
		return false
	}
	for _, c := range s {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// networkKadPrefix is the DHT protocol prefix of a network. The public
// network keeps the prefix it always had, so upgraded nodes still meet the
// others.
func networkKadPrefix(network string) protocol.ID {
	if network == DefaultNetwork {
		return kadPrefix
	}
	return kadPrefix + "/net/" + protocol.ID(network)
}

// RendezvousNamespace is what nodes of a network advertise and look for in
// the rendezvous DHT. The version changes when what a node expects of the
// peers it finds there does.
func RendezvousNamespace(network string) string {
	return "/kadtracker/rendezvous/v1/" + network
}

// Rendezvous bounds. Anyone can advertise under our namespace in a public
// DHT, so what a round takes from it is capped: a flood of fake providers
// costs a bounded number of dial attempts per round, and rounds are spaced
// by RendezvousRetry.
const (
	rendezvousFindLimit   = 64 // providers asked for per round
	rendezvousMaxDial     = 32 // peers dialled per round
	rendezvousParallel    = 8  // dials at a time
	rendezvousRoundTime   = time.Minute
	rendezvousMaxBackoff  = 16 // times RendezvousRetry
	rendezvousAdvertiseIn = time.Minute
)

// RendezvousStats describe the rendezvous for status.
type RendezvousStats struct {
	Enabled   bool
	Serving   bool   // this node serves the rendezvous DHT
	State     string // off, starting, searching, resting (routing table healthy)
	Namespace string
	// DHTPeers is the size of the rendezvous DHT's routing table.
	DHTPeers int
	Rounds   int64
	// Found counts providers the rounds returned (self and already connected
	// peers included); Connected those this node dialled successfully;
	// Dropped those over the per-round caps.
	Found, Connected, Dropped int64
	LastSuccess               time.Time // last round that connected a peer
	LastAdvertised            time.Time
	LastError                 string
}

// rendezvous finds other kadtracker nodes through a DHT they all know when
// the node's own routing table is thin, and advertises the node there while
// it serves the kadtracker DHT.
type rendezvous struct {
	n    *Node
	log  *slog.Logger
	dht  *dht.IpfsDHT
	disc *drouting.RoutingDiscovery
	ns   string

	rounds, found, connected, dropped atomic.Int64
	// wake cuts a wait short: reachability changed.
	wake chan struct{}

	mu             sync.Mutex
	state          string
	lastSuccess    time.Time
	lastAdvertised time.Time
	lastErr        string
}

func newRendezvous(n *Node) (*rendezvous, error) {
	// Amino's own protocol and defaults: a client of the public DHT looks
	// like any other. A client does no periodic routing-table refresh: it
	// only needs the DHT for its own rounds and advertisements, which walk
	// from whatever peers it has, and the public DHT is not ours to load.
	opts := []dht.Option{dht.Mode(dht.ModeClient), dht.DisableAutoRefresh()}
	if n.cfg.RendezvousServe {
		opts = []dht.Option{dht.Mode(dht.ModeServer)}
	}
	d, err := dht.New(n.host, append(opts, dht.BootstrapPeers(n.cfg.RendezvousBootstrap...))...)
	if err != nil {
		return nil, fmt.Errorf("node: rendezvous dht: %w", err)
	}
	return &rendezvous{
		n:     n,
		log:   n.log.With("part", "rendezvous"),
		dht:   d,
		disc:  drouting.NewRoutingDiscovery(d),
		ns:    RendezvousNamespace(n.cfg.Network),
		state: "starting",
		wake:  make(chan struct{}, 1),
	}, nil
}

func (r *rendezvous) close() error { return r.dht.Close() }

func (r *rendezvous) setState(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.state = s
}

func (r *rendezvous) stats() RendezvousStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return RendezvousStats{
		Enabled:        true,
		Serving:        r.n.cfg.RendezvousServe,
		State:          r.state,
		Namespace:      r.ns,
		DHTPeers:       r.dht.RoutingTable().Size(),
		Rounds:         r.rounds.Load(),
		Found:          r.found.Load(),
		Connected:      r.connected.Load(),
		Dropped:        r.dropped.Load(),
		LastSuccess:    r.lastSuccess,
		LastAdvertised: r.lastAdvertised,
		LastError:      r.lastErr,
	}
}

// run searches while the routing table is below RendezvousHealthy, backing
// off while rounds fail, and rests while it is healthy; it advertises the
// node whenever it serves the kadtracker DHT. It returns when ctx is done.
func (r *rendezvous) run(ctx context.Context) {
	retry := r.n.cfg.RendezvousRetry
	wait := retry
	var nextAdvertise time.Time
	lonely := false
	for {
		size := r.n.dht.RoutingTable().Size()
		if size >= r.n.cfg.RendezvousHealthy {
			r.setState("resting")
			wait, lonely = retry, false
		} else {
			if size == 0 && !lonely {
				r.log.Info("no peers yet: looking for other kadtracker nodes through rendezvous", "namespace", r.ns)
			}
			lonely = size == 0
			r.setState("searching")
			if r.round(ctx) {
				wait = retry
			} else {
				wait = min(2*wait, rendezvousMaxBackoff*retry)
			}
		}
		if r.shouldAdvertise() && !r.n.now().Before(nextAdvertise) {
			if ttl, err := r.advertise(ctx); err == nil {
				nextAdvertise = r.n.now().Add(7 * ttl / 8)
			} else {
				nextAdvertise = r.n.now().Add(min(wait, rendezvousAdvertiseIn))
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		case <-r.wake:
		}
	}
}

// reachabilityChanged wakes the loop, so that a node found public
// advertises now rather than after its wait.
func (r *rendezvous) reachabilityChanged() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// advertiseGrace, in RendezvousRetry intervals, is how long a node that
// AutoNAT has not judged waits before advertising: on a LAN or loopback
// AutoNAT never decides, and those nodes are reachable to their peers.
const advertiseGrace = 8

// shouldAdvertise reports whether others should be told to dial this node:
// it serves the kadtracker DHT and AutoNAT found it public, or has not
// judged it within the grace period. A node behind NAT without a mapping
// never advertises: in a namespace most users share, unreachable providers
// would crowd out the reachable ones every newcomer needs.
func (r *rendezvous) shouldAdvertise() bool {
	if !r.n.serving() {
		return false
	}
	switch r.n.reach.reachability() {
	case network.ReachabilityPublic:
		return true
	case network.ReachabilityPrivate:
		return false
	}
	return r.n.now().Sub(r.n.started) >= advertiseGrace*r.n.cfg.RendezvousRetry
}

// ready makes sure the rendezvous DHT has a routing table, dialling its
// bootstrap peers if it has none.
func (r *rendezvous) ready(ctx context.Context) error {
	if r.dht.RoutingTable().Size() > 0 {
		return nil
	}
	if len(r.n.cfg.RendezvousBootstrap) == 0 {
		return errors.New("no rendezvous peers yet")
	}
	if _, err := bootstrap.Connect(ctx, r.n.host, r.n.cfg.RendezvousBootstrap, r.n.cfg.RequestTimeout); err != nil {
		return fmt.Errorf("rendezvous bootstrap: %w", err)
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for r.dht.RoutingTable().Size() == 0 {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return errors.New("rendezvous bootstrap peers connected but none joined the rendezvous routing table")
		}
	}
	if err := <-r.dht.RefreshRoutingTable(); err != nil {
		r.log.Debug("rendezvous routing table refresh", "err", err)
	}
	return nil
}

// round looks for providers of the namespace once and dials them. It
// reports whether a peer was connected.
func (r *rendezvous) round(ctx context.Context) bool {
	r.rounds.Add(1)
	ctx, cancel := context.WithTimeout(ctx, rendezvousRoundTime)
	defer cancel()
	if err := r.ready(ctx); err != nil {
		r.fail(err)
		return false
	}
	found, err := dutil.FindPeers(ctx, r.disc, r.ns, discovery.Limit(rendezvousFindLimit))
	if err != nil {
		r.fail(err)
		return false
	}
	r.found.Add(int64(len(found)))
	dial, dropped := rendezvousCandidates(found, r.n.host.ID(), r.n.isConnected, rendezvousMaxDial)
	r.dropped.Add(int64(dropped))
	var connected atomic.Int64
	var wg sync.WaitGroup
	sem := make(chan struct{}, rendezvousParallel)
	for _, ai := range dial {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			dctx, cancel := context.WithTimeout(ctx, r.n.cfg.RequestTimeout)
			defer cancel()
			if err := r.n.host.Connect(dctx, ai); err != nil {
				r.log.Debug("rendezvous peer unreachable", "peer", ai.ID, "err", err)
				return
			}
			connected.Add(1)
		})
	}
	wg.Wait()
	c := connected.Load()
	r.connected.Add(c)
	r.log.Debug("rendezvous round", "found", len(found), "dialled", len(dial), "connected", c, "dropped", dropped)
	if c == 0 {
		if len(dial) == 0 {
			r.fail(errors.New("no new peers found"))
		} else {
			r.fail(fmt.Errorf("none of %d peers found reachable", len(dial)))
		}
		return false
	}
	r.mu.Lock()
	r.lastSuccess, r.lastErr = r.n.now(), ""
	r.mu.Unlock()
	r.log.Info("rendezvous found peers", "connected", c)
	return true
}

func (r *rendezvous) fail(err error) {
	r.mu.Lock()
	r.lastErr = err.Error()
	r.mu.Unlock()
	r.log.Debug("rendezvous round", "err", err)
}

func (r *rendezvous) advertise(ctx context.Context) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, rendezvousRoundTime)
	defer cancel()
	if err := r.ready(ctx); err != nil {
		return 0, err
	}
	ttl, err := r.disc.Advertise(ctx, r.ns)
	if err != nil {
		r.log.Debug("rendezvous advertise", "err", err)
		return 0, err
	}
	r.mu.Lock()
	r.lastAdvertised = r.n.now()
	r.mu.Unlock()
	r.log.Debug("rendezvous advertised", "namespace", r.ns, "ttl", ttl)
	return ttl, nil
}

// rendezvousCandidates picks the providers worth dialling: not self, not
// connected already, with an address, each once; at most maxPeers of them.
// It returns them and how many it dropped over the cap.
func rendezvousCandidates(found []peer.AddrInfo, self peer.ID, connected func(peer.ID) bool, maxPeers int) ([]peer.AddrInfo, int) {
	var out []peer.AddrInfo
	dropped := 0
	seen := make(map[peer.ID]bool, len(found))
	for _, ai := range found {
		if ai.ID == self || ai.ID == "" || len(ai.Addrs) == 0 || seen[ai.ID] || connected(ai.ID) {
			continue
		}
		seen[ai.ID] = true
		if len(out) == maxPeers {
			dropped++
			continue
		}
		out = append(out, ai)
	}
	return out, dropped
}
