package netsim

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kadtracker/kadtracker/node"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	ma "github.com/multiformats/go-multiaddr"
)

// Errors of the simulated network.
var (
	// ErrDown is what a dial to or from a failed node returns, at once.
	ErrDown = errors.New("netsim: node is down")
	// ErrUnknownPeer is a dial to a peer outside the network.
	ErrUnknownPeer = errors.New("netsim: peer not in this network")
)

// Config describes an in-process network. Start from DefaultConfig.
type Config struct {
	// Nodes is N, the number of DHT-server nodes.
	Nodes int
	// Latency is the one-way delay of each link.
	Latency Latency
	// Bandwidth of each link in bytes per second; 0 means unlimited.
	Bandwidth float64
	// Seed makes node identities, link latencies and bootstrap choices
	// repeatable.
	Seed uint64
	// Node is the configuration every node starts from; Host, Clock and
	// BootstrapPeers are set by the network.
	Node node.Config
	// Clock is every node's time source; nil means time.Now.
	Clock func() time.Time
	// BootstrapPeers is how many earlier nodes each node joins through.
	BootstrapPeers int
	// RefreshRounds of routing-table refreshes on every node after all have
	// joined, so early nodes learn of later ones.
	RefreshRounds int
	// Parallel bounds how many nodes join, or refresh, at once.
	Parallel int
	// BuildWithoutLatency joins and refreshes on zero-latency links and
	// applies Latency only once the network is built: much faster for large
	// networks, and the routing tables come out the same.
	BuildWithoutLatency bool
	// HandshakeRTTs is how many round trips of the link a new connection
	// waits before it opens, once the build is done: mocknet connections
	// open at once, real ones pay a handshake (QUIC 1, TCP with Noise 2 to
	// 3). identify's round trip, which host.NewStream waits for on a new
	// connection, mocknet already pays. 0: none.
	HandshakeRTTs int
	// MaxConns, when positive, is how many connections TrimConns leaves each
	// node (routing-table peers first). New trims as it builds.
	MaxConns int
	// Progress, if set, is called as nodes join: done of total.
	Progress func(done, total int)
	Logger   *slog.Logger
}

// DefaultConfig is a small network for tests: short timeouts, m = 8.
func DefaultConfig() Config {
	nc := node.DefaultConfig()
	nc.DHTMode = node.ModeServer
	// Simulated nodes meet through netsim's own bootstrap plan, and their
	// hosts are netsim's: nothing reaches beyond the process.
	nc.Rendezvous = false
	nc.NATPortMap = false
	nc.RequestTimeout = 2 * time.Second
	nc.Protect.RequestStartTimeout = time.Second // within RequestTimeout, as Validate demands
	// Locality off and no background coordinate pings: the experiments
	// before it stay as they were; the locality workload turns both on
	// its own terms (locality.go).
	nc.Locality = 0
	nc.CoordProbeInterval = 0
	return Config{
		Nodes:               50,
		Latency:             FixedLatency(2 * time.Millisecond),
		Node:                nc,
		BootstrapPeers:      3,
		RefreshRounds:       2,
		Parallel:            16,
		BuildWithoutLatency: true,
	}
}

// Validate reports every problem with c.
func (c Config) Validate() error {
	var errs []error
	if c.Nodes < 1 {
		errs = append(errs, fmt.Errorf("netsim: %d nodes", c.Nodes))
	}
	if c.Nodes > maxNodes {
		errs = append(errs, fmt.Errorf("netsim: %d nodes is more than the %d the address plan holds", c.Nodes, maxNodes))
	}
	if err := c.Latency.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.Bandwidth < 0 {
		errs = append(errs, errors.New("netsim: negative bandwidth"))
	}
	if c.BootstrapPeers < 1 {
		errs = append(errs, errors.New("netsim: each node needs at least one bootstrap peer"))
	}
	if c.RefreshRounds < 0 || c.Parallel < 1 || c.MaxConns < 0 || c.HandshakeRTTs < 0 {
		errs = append(errs, errors.New("netsim: refresh rounds, parallelism or connections out of range"))
	}
	nc := c.Node
	nc.Host = placeholderHost{} // the network supplies it
	if err := nc.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Network is N kadtracker nodes, the real node package, on one in-process
// mocknet. Links are made on first dial, with their latency, so memory grows
// with the pairs that talk rather than with N². A node can be failed and
// repaired: while down, every dial to or from it fails at once and its
// connections are closed, as if its machine were off.
type Network struct {
	cfg   Config
	log   *slog.Logger
	mn    mocknet.Mocknet
	hosts []*simHost
	nodes []*node.Node
	index map[peer.ID]int

	// latencyOn is false while BuildWithoutLatency builds.
	latencyOn atomic.Bool
	linkMu    sync.Mutex
	links     map[[2]int]mocknet.Link

	closeOnce sync.Once
	closeErr  error
}

// New builds and joins a network. It returns when every node has joined and
// the refresh rounds are done, or ctx ends.
func New(ctx context.Context, cfg Config) (_ *Network, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	nw := &Network{
		cfg:   cfg,
		log:   cfg.Logger,
		mn:    mocknet.New(),
		index: make(map[peer.ID]int, cfg.Nodes),
		links: make(map[[2]int]mocknet.Link),
	}
	if nw.log == nil {
		nw.log = slog.New(slog.DiscardHandler)
	}
	nw.log = nw.log.With("component", "netsim")
	nw.latencyOn.Store(!cfg.BuildWithoutLatency)
	defer func() {
		if err != nil {
			_ = nw.Close()
		}
	}()

	for i := range cfg.Nodes {
		h, err := nw.addHost(i)
		if err != nil {
			return nil, err
		}
		nw.hosts = append(nw.hosts, h)
		nw.index[h.ID()] = i
	}
	if err := nw.join(ctx); err != nil {
		return nil, err
	}
	for range cfg.RefreshRounds {
		if err := nw.Refresh(ctx); err != nil {
			return nil, err
		}
		nw.TrimConns()
	}
	if !nw.latencyOn.Load() {
		nw.enableLatency()
	}
	return nw, nil
}

// nodeKey is node i's identity, derived from the seed so peer IDs, and so
// which nodes are closest to which key, repeat with the seed.
func nodeKey(seed uint64, i int) (crypto.PrivKey, error) {
	rng := rand.New(rand.NewPCG(seed^0x6b65_7973, uint64(i)))
	var s [ed25519.SeedSize]byte
	for j := range s {
		s[j] = byte(rng.Uint32())
	}
	return crypto.UnmarshalEd25519PrivateKey(ed25519.NewKeyFromSeed(s[:]))
}

// firstOctets are the IPv4 /8s node addresses come from: unicast, not
// private, loopback, link-local, shared or documentation space.
var firstOctets = func() []int {
	var out []int
	for a := 1; a < 224; a++ {
		switch a {
		case 10, 100, 127, 169, 172, 192, 198, 203:
			continue
		}
		out = append(out, a)
	}
	return out
}()

// maxNodes is how many nodes get an IPv4 /16 of their own.
var maxNodes = len(firstOctets) * 256

// nodeAddr gives node i an address in a /16 of its own, as independent
// hosts on the Internet have, so records carry each node's own IP and no
// per-address-group limit binds.
func nodeAddr(i int) ma.Multiaddr {
	return ma.StringCast(fmt.Sprintf("/ip4/%d.%d.0.1/tcp/4001", firstOctets[i/256], i%256))
}

func (nw *Network) addHost(i int) (*simHost, error) {
	key, err := nodeKey(nw.cfg.Seed, i)
	if err != nil {
		return nil, err
	}
	h, err := nw.mn.AddPeer(key, nodeAddr(i))
	if err != nil {
		return nil, fmt.Errorf("netsim: host %d: %w", i, err)
	}
	return &simHost{Host: h, nw: nw, idx: i}, nil
}

// join starts the nodes: the first few one after another, then the rest
// cfg.Parallel at a time, each through BootstrapPeers random nodes that
// started before it.
func (nw *Network) join(ctx context.Context) error {
	n := nw.cfg.Nodes
	nw.nodes = make([]*node.Node, n)
	rng := rand.New(rand.NewPCG(nw.cfg.Seed, 0x626f_6f74))
	// Bootstrap choices are drawn up front, so they depend on the seed only:
	// the first few nodes join one after another, each through all before
	// it; the rest join in batches, through nodes of earlier batches.
	seedNodes := min(n, nw.cfg.BootstrapPeers+1)
	poolOf := func(i int) int {
		if i < seedNodes {
			return i
		}
		return i - (i-seedNodes)%nw.cfg.Parallel
	}
	choice := make([][]int, n)
	for i := range n {
		if pool := poolOf(i); pool > 0 {
			choice[i] = sample(rng, pool, nw.cfg.BootstrapPeers)
		}
	}
	start := func(i int) error {
		cfg := nw.cfg.Node
		cfg.Host = nw.hosts[i]
		cfg.Clock = nw.cfg.Clock
		cfg.Logger = nw.log.With("node", i)
		cfg.BootstrapPeers = nil
		for _, j := range choice[i] {
			cfg.BootstrapPeers = append(cfg.BootstrapPeers, peer.AddrInfo{ID: nw.hosts[j].ID(), Addrs: nw.hosts[j].Addrs()})
		}
		nd, err := node.New(ctx, cfg)
		if err != nil {
			return fmt.Errorf("netsim: node %d: %w", i, err)
		}
		nw.nodes[i] = nd
		return nil
	}
	done := 0
	for i := range seedNodes {
		if err := start(i); err != nil {
			return err
		}
		done++
		nw.progress(done)
	}
	for lo := seedNodes; lo < n; lo += nw.cfg.Parallel {
		hi := min(n, lo+nw.cfg.Parallel)
		errs := make([]error, hi-lo)
		var wg sync.WaitGroup
		for i := lo; i < hi; i++ {
			wg.Go(func() { errs[i-lo] = start(i) })
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		done += hi - lo
		nw.progress(done)
		nw.TrimConns()
	}
	return nil
}

func (nw *Network) progress(done int) {
	if nw.cfg.Progress != nil {
		nw.cfg.Progress(done, nw.cfg.Nodes)
	}
}

// Refresh runs one routing-table refresh on every node that is up,
// cfg.Parallel at a time.
func (nw *Network) Refresh(ctx context.Context) error {
	sem := make(chan struct{}, nw.cfg.Parallel)
	var wg sync.WaitGroup
	for i, nd := range nw.nodes {
		if nw.hosts[i].down.Load() {
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return ctx.Err()
		}
		wg.Go(func() {
			defer func() { <-sem }()
			select {
			case <-nd.DHT().RefreshRoutingTable():
			case <-ctx.Done():
			}
		})
	}
	wg.Wait()
	return ctx.Err()
}

// enableLatency gives every link its latency, from now on and on links
// already made.
func (nw *Network) enableLatency() {
	nw.linkMu.Lock()
	defer nw.linkMu.Unlock()
	nw.latencyOn.Store(true)
	for pair, l := range nw.links {
		l.SetOptions(nw.linkOptions(pair[0], pair[1]))
	}
}

func (nw *Network) linkOptions(i, j int) mocknet.LinkOptions {
	o := mocknet.LinkOptions{Bandwidth: nw.cfg.Bandwidth}
	if nw.latencyOn.Load() {
		o.Latency = nw.cfg.Latency.Link(nw.cfg.Seed, i, j)
	}
	return o
}

// prepareDial fails a dial that involves a down node and otherwise makes
// sure the two nodes are linked.
func (nw *Network) prepareDial(from int, to peer.ID) error {
	j, ok := nw.index[to]
	if !ok {
		return ErrUnknownPeer
	}
	if nw.hosts[from].down.Load() || nw.hosts[j].down.Load() {
		return ErrDown
	}
	pair := [2]int{min(from, j), max(from, j)}
	nw.linkMu.Lock()
	defer nw.linkMu.Unlock()
	if _, ok := nw.links[pair]; ok {
		return nil
	}
	l, err := nw.mn.LinkPeers(nw.hosts[from].Host.ID(), to)
	if err != nil {
		return err
	}
	l.SetOptions(nw.linkOptions(pair[0], pair[1]))
	nw.links[pair] = l
	return nil
}

// Size is N.
func (nw *Network) Size() int { return len(nw.nodes) }

// Node is node i.
func (nw *Network) Node(i int) *node.Node { return nw.nodes[i] }

// Nodes are all nodes, in index order.
func (nw *Network) Nodes() []*node.Node { return nw.nodes }

// Index is the index of the node with peer ID p.
func (nw *Network) Index(p peer.ID) (int, bool) {
	i, ok := nw.index[p]
	return i, ok
}

// Links is how many node pairs have been linked so far.
func (nw *Network) Links() int {
	nw.linkMu.Lock()
	defer nw.linkMu.Unlock()
	return len(nw.links)
}

// Conns is the number of open connections, counted at both ends.
func (nw *Network) Conns() int {
	c := 0
	for _, h := range nw.hosts {
		c += len(h.Network().Conns())
	}
	return c
}

// Up reports whether node i is up.
func (nw *Network) Up(i int) bool { return !nw.hosts[i].down.Load() }

// Fail takes node i down: its connections close and every dial to or from
// it fails until Repair. Its store and its announcements survive, as on a
// machine that was switched off and on again.
func (nw *Network) Fail(i int) {
	h := nw.hosts[i]
	if h.down.Swap(true) {
		return
	}
	// mocknet closes the far end of a connection in the background; close
	// both ends here, so no peer keeps a dead connection to use.
	for _, p := range h.Network().Peers() {
		_ = h.Network().ClosePeer(p)
		if j, ok := nw.index[p]; ok {
			_ = nw.hosts[j].Network().ClosePeer(h.ID())
		}
	}
}

// Repair brings node i back up. Its routing table still names the peers
// it knew; kad-dht's own refresh, or Refresh, brings it up to date.
func (nw *Network) Repair(i int) { nw.hosts[i].down.Store(false) }

// SetDown fails exactly the nodes marked true in down and repairs the rest.
func (nw *Network) SetDown(down []bool) {
	for i := range nw.hosts {
		if i < len(down) && down[i] {
			nw.Fail(i)
		} else {
			nw.Repair(i)
		}
	}
}

// Routing is a snapshot of every node's routing table.
type Routing [][]peer.ID

// SnapshotRouting records every routing table.
func (nw *Network) SnapshotRouting() Routing {
	snap := make(Routing, len(nw.nodes))
	for i, nd := range nw.nodes {
		snap[i] = nd.DHT().RoutingTable().ListPeers()
	}
	return snap
}

// RestoreRouting puts back every entry of snap that a routing table has
// lost since, as after failed queries to nodes that were down. Entries
// learnt since stay. It returns how many entries it restored.
func (nw *Network) RestoreRouting(snap Routing) int {
	restored := 0
	for i, nd := range nw.nodes {
		rt := nd.DHT().RoutingTable()
		for _, p := range snap[i] {
			if rt.Find(p) != "" {
				continue
			}
			if ok, err := rt.TryAddPeer(p, true, false); ok && err == nil {
				restored++
			}
		}
	}
	return restored
}

// TrimConns closes connections beyond cfg.MaxConns per node, keeping
// those to routing-table peers first, and returns how many it closed. A
// connection holds kad-dht's reusable stream to that peer, and in mocknet
// each stream costs goroutines and buffers, so this is what keeps memory
// per node low. Call it between phases, not under load: a request on a
// closed connection fails. The next request to a trimmed peer dials again.
func (nw *Network) TrimConns() int {
	if nw.cfg.MaxConns <= 0 {
		return 0
	}
	closed := 0
	for i, h := range nw.hosts {
		conns := h.Network().Conns()
		if len(conns) <= nw.cfg.MaxConns {
			continue
		}
		inRT := make(map[peer.ID]bool)
		for _, p := range nw.nodes[i].DHT().RoutingTable().ListPeers() {
			inRT[p] = true
		}
		slices.SortStableFunc(conns, func(a, b network.Conn) int {
			ra, rb := inRT[a.RemotePeer()], inRT[b.RemotePeer()]
			switch {
			case ra && !rb:
				return -1
			case rb && !ra:
				return 1
			}
			return 0
		})
		for _, c := range conns[nw.cfg.MaxConns:] {
			_ = c.Close()
			closed++
		}
	}
	return closed
}

// Close stops every node and the mocknet. It is idempotent.
func (nw *Network) Close() error {
	nw.closeOnce.Do(func() {
		errs := make([]error, len(nw.nodes))
		var wg sync.WaitGroup
		for i, nd := range nw.nodes {
			if nd != nil {
				wg.Go(func() { errs[i] = nd.Close() })
			}
		}
		wg.Wait()
		nw.closeErr = errors.Join(append(errs, nw.mn.Close())...)
	})
	return nw.closeErr
}

// simHost is a mocknet host whose dials go through the network first, for
// lazy links and failed nodes.
type simHost struct {
	host.Host
	nw   *Network
	idx  int
	down atomic.Bool
}

func (h *simHost) Connect(ctx context.Context, pi peer.AddrInfo) error {
	if err := h.dial(ctx, pi.ID); err != nil {
		return err
	}
	return h.Host.Connect(ctx, pi)
}

func (h *simHost) NewStream(ctx context.Context, p peer.ID, pids ...protocol.ID) (network.Stream, error) {
	if err := h.dial(ctx, p); err != nil {
		return nil, err
	}
	return h.Host.NewStream(ctx, p, pids...)
}

// dial prepares a dial to p and, when it will open a new connection, waits
// for the handshake's round trips (Config.HandshakeRTTs).
func (h *simHost) dial(ctx context.Context, p peer.ID) error {
	if err := h.nw.prepareDial(h.idx, p); err != nil {
		return err
	}
	k := h.nw.cfg.HandshakeRTTs
	if k == 0 || !h.nw.latencyOn.Load() || h.Host.Network().Connectedness(p) == network.Connected {
		return nil
	}
	j := h.nw.index[p]
	t := time.NewTimer(time.Duration(2*k) * h.nw.cfg.Latency.Link(h.nw.cfg.Seed, min(h.idx, j), max(h.idx, j)))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Network is the host's network with the same dial hook: a node that opens
// streams on the network directly (the record protocol does, to skip
// identify) links and dials as through the host.
func (h *simHost) Network() network.Network { return simNetwork{h.Host.Network(), h} }

type simNetwork struct {
	network.Network
	h *simHost
}

func (n simNetwork) NewStream(ctx context.Context, p peer.ID) (network.Stream, error) {
	if err := n.h.dial(ctx, p); err != nil {
		return nil, err
	}
	return n.Network.NewStream(ctx, p)
}

func (n simNetwork) DialPeer(ctx context.Context, p peer.ID) (network.Conn, error) {
	if err := n.h.dial(ctx, p); err != nil {
		return nil, err
	}
	return n.Network.DialPeer(ctx, p)
}

// placeholderHost stands in for the host in Config.Validate.
type placeholderHost struct{ host.Host }

// sample draws min(k, n) distinct integers from [0, n).
func sample(rng *rand.Rand, n, k int) []int {
	k = min(k, n)
	if k*4 > n {
		return rng.Perm(n)[:k]
	}
	out := make([]int, 0, k)
	seen := make(map[int]bool, k)
	for len(out) < k {
		if x := rng.IntN(n); !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}
