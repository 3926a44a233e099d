package node

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// privateAmino is a stand-in for the public Amino DHT on loopback: n plain
// libp2p hosts running kad-dht servers under Amino's protocol, knowing each
// other and nothing of kadtracker.
func privateAmino(t *testing.T, n int) []peer.AddrInfo {
	t.Helper()
	var infos []peer.AddrInfo
	var hosts []host.Host
	for range n {
		h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
		if err != nil {
			t.Fatal(err)
		}
		d, err := dht.New(h, dht.Mode(dht.ModeServer))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = d.Close(); _ = h.Close() })
		hosts = append(hosts, h)
		infos = append(infos, peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i, h := range hosts {
		for _, ai := range infos[:i] {
			if err := h.Connect(ctx, ai); err != nil {
				t.Fatal(err)
			}
		}
	}
	return infos
}

// rendezvousConfig is a kadtracker node that knows nothing but one peer of
// the rendezvous DHT: an empty data dir, no bootstrap peers.
func rendezvousConfig(t *testing.T, amino peer.AddrInfo) Config {
	cfg := loopbackConfig(t.TempDir())
	cfg.Rendezvous = true
	cfg.RendezvousBootstrap = []peer.AddrInfo{amino}
	cfg.RendezvousRetry = 50 * time.Millisecond
	cfg.RendezvousHealthy = 1
	return cfg
}

func inRoutingTable(n *Node, p peer.ID) bool {
	return slices.Contains(n.DHT().RoutingTable().ListPeers(), p)
}

// waitFor polls cond until it holds or the test's patience runs out.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Two nodes with empty data dirs and no bootstrap peers find each other
// through the rendezvous DHT alone, then work as one network; a node of
// another network on the same rendezvous DHT is not found.
func TestRendezvousJoin(t *testing.T) {
	amino := privateAmino(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := func(cfg Config) *Node { return startNode(t, ctx, cfg) }
	a := start(rendezvousConfig(t, amino[0]))
	b := start(rendezvousConfig(t, amino[2]))
	otherCfg := rendezvousConfig(t, amino[1])
	otherCfg.Network = "elsewhere"
	other := start(otherCfg)

	began := time.Now()
	waitFor(t, "a and b in each other's routing tables", 30*time.Second, func() bool {
		return inRoutingTable(a, b.ID()) && inRoutingTable(b, a.ID())
	})
	t.Logf("joined by rendezvous in %s", time.Since(began))

	// Whichever found the other first dialled it; both advertise, once
	// their loops come round after the grace period.
	waitFor(t, "both advertised", 10*time.Second, func() bool {
		return !a.Stats().Rendezvous.LastAdvertised.IsZero() && !b.Stats().Rendezvous.LastAdvertised.IsZero()
	})
	var connected int64
	for _, nd := range []*Node{a, b} {
		rv := nd.Stats().Rendezvous
		connected += rv.Connected
		if !rv.Enabled || rv.LastAdvertised.IsZero() || rv.Connected > 0 && rv.LastSuccess.IsZero() {
			t.Errorf("rendezvous stats %+v", rv)
		}
		if rv.Namespace != RendezvousNamespace(DefaultNetwork) {
			t.Errorf("namespace %q", rv.Namespace)
		}
	}
	if connected == 0 {
		t.Error("neither node connected a peer it found by rendezvous")
	}
	key := randomKey(t, rand.New(rand.NewPCG(12, 1)), false)
	if res, err := a.Announce(ctx, key, 6881, true); err != nil || res.StoredOn == 0 {
		t.Fatalf("announce: %+v, %v", res, err)
	}
	lr, err := b.Lookup(ctx, key, 10)
	if err != nil || len(lr.Peers) != 1 || lr.Peers[0].Announcer != a.ID() {
		t.Fatalf("lookup from b: %+v, %v", lr.Peers, err)
	}
	// The other network advertises and searches under its own namespace
	// and speaks another DHT protocol: it never joins.
	if inRoutingTable(a, other.ID()) || inRoutingTable(b, other.ID()) || other.DHT().RoutingTable().Size() != 0 {
		t.Error("a node of another network joined the routing tables")
	}
	if got := other.Stats().Network; got != "elsewhere" {
		t.Errorf("network %q", got)
	}
}

// Rendezvous rests while the routing table is healthy and searches again
// when it empties; a node whose table never gets healthy keeps searching
// (the control).
func TestRendezvousRestsWhenHealthy(t *testing.T) {
	amino := privateAmino(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := func(cfg Config) *Node { return startNode(t, ctx, cfg) }
	a := start(rendezvousConfig(t, amino[0]))
	eager := rendezvousConfig(t, amino[1])
	eager.RendezvousHealthy = 5 // more peers than this network has
	b := start(eager)
	waitFor(t, "join", 30*time.Second, func() bool {
		return inRoutingTable(a, b.ID()) && inRoutingTable(b, a.ID())
	})
	waitFor(t, "a resting", 5*time.Second, func() bool { return a.Stats().Rendezvous.State == "resting" })

	restA, restB := a.Stats().Rendezvous.Rounds, b.Stats().Rendezvous.Rounds
	// Ten retry intervals; b backs off to at most 16 of them, so it runs at
	// least one more round in 20 (its rounds may be doubling already).
	time.Sleep(20 * a.cfg.RendezvousRetry * 16 / 10)
	if got := a.Stats().Rendezvous.Rounds; got != restA {
		t.Errorf("healthy node ran %d rendezvous rounds while resting", got-restA)
	}
	if b.Stats().Rendezvous.Rounds == restB || b.Stats().Rendezvous.State != "searching" {
		t.Errorf("unhealthy node stopped searching: %+v", b.Stats().Rendezvous)
	}

	// a loses its only peer: rendezvous comes back.
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	a.DHT().RoutingTable().RemovePeer(b.ID())
	waitFor(t, "a searching again", 5*time.Second, func() bool {
		st := a.Stats().Rendezvous
		return st.State == "searching" && st.Rounds > restA
	})
}

// A flood of providers under our namespace costs at most
// rendezvousMaxDial dials a round; self, duplicates, connected and
// address-less entries cost none.
func TestRendezvousCandidatesCapped(t *testing.T) {
	self := randomPeerID(t)
	addr := ma.StringCast("/ip4/127.0.0.1/tcp/9")
	connectedID := randomPeerID(t)
	var found []peer.AddrInfo
	found = append(found,
		peer.AddrInfo{ID: self, Addrs: []ma.Multiaddr{addr}},
		peer.AddrInfo{ID: connectedID, Addrs: []ma.Multiaddr{addr}},
		peer.AddrInfo{ID: randomPeerID(t)},
	)
	for range 1000 {
		id := randomPeerID(t)
		found = append(found, peer.AddrInfo{ID: id, Addrs: []ma.Multiaddr{addr}}, peer.AddrInfo{ID: id, Addrs: []ma.Multiaddr{addr}})
	}
	isConnected := func(p peer.ID) bool { return p == connectedID }
	dial, dropped := rendezvousCandidates(found, self, isConnected, rendezvousMaxDial)
	if len(dial) != rendezvousMaxDial || dropped != 1000-rendezvousMaxDial {
		t.Fatalf("capped: dial %d, dropped %d", len(dial), dropped)
	}
	for _, ai := range dial {
		if ai.ID == self || ai.ID == connectedID || len(ai.Addrs) == 0 {
			t.Fatalf("dialling %s", ai.ID)
		}
	}
	// Control: without the cap every distinct new peer is dialled.
	dial, dropped = rendezvousCandidates(found, self, isConnected, len(found))
	if len(dial) != 1000 || dropped != 0 {
		t.Fatalf("uncapped: dial %d, dropped %d", len(dial), dropped)
	}
}

// Where the public network is forbidden, the defaults are refused, and so
// are DNS names and port mapping from the host's namespace; the same
// configurations pass where it is allowed (the control).
func TestNoPublicNetworkGuard(t *testing.T) {
	if !publicNetworkForbidden(func(string) string { return "" }) {
		t.Fatal("a test binary may reach the public network")
	}
	hostNetns := func() bool { return false }
	ownNetns := func() bool { return true }
	def := DefaultConfig()
	err := checkNoPublicNetwork(def, true, hostNetns)
	if err == nil || !strings.Contains(err.Error(), "public bootstrap peer") || !strings.Contains(err.Error(), "port mapping") {
		t.Fatalf("defaults: %v", err)
	}
	if err := checkNoPublicNetwork(def, false, hostNetns); err != nil {
		t.Fatalf("defaults where allowed: %v", err)
	}

	dns := offlineConfig()
	dns.Rendezvous = true
	id := randomPeerID(t)
	dns.RendezvousBootstrap = []peer.AddrInfo{{ID: id, Addrs: []ma.Multiaddr{ma.StringCast("/dns4/rendezvous.example/tcp/4001")}}}
	if err := checkNoPublicNetwork(dns, true, hostNetns); err == nil || !strings.Contains(err.Error(), "DNS") {
		t.Fatalf("DNS bootstrap: %v", err)
	}
	own := dns
	own.RendezvousBootstrap = []peer.AddrInfo{{ID: id, Addrs: []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/4001")}}}
	if err := checkNoPublicNetwork(own, true, hostNetns); err != nil {
		t.Fatalf("own bootstrap peers: %v", err)
	}

	nat := offlineConfig()
	nat.NATPortMap = true
	if err := checkNoPublicNetwork(nat, true, ownNetns); err != nil {
		t.Fatalf("port mapping in a test's namespace: %v", err)
	}
	if err := checkNoPublicNetwork(nat, true, hostNetns); err == nil {
		t.Fatal("port mapping from the host's namespace accepted")
	}

	// New applies the guard: the defaults do not start a node in a test.
	if _, err := New(context.Background(), DefaultConfig()); err == nil || !strings.Contains(err.Error(), ErrPublicNetwork.Error()) {
		t.Fatalf("New with the defaults: %v", err)
	}
}

func TestNetworkNames(t *testing.T) {
	if networkKadPrefix(DefaultNetwork) != kadPrefix {
		t.Error("the public network changed its DHT protocol")
	}
	if a, b := networkKadPrefix("lab"), networkKadPrefix("lab2"); a == b || a == kadPrefix {
		t.Errorf("prefixes %s, %s", a, b)
	}
	for name, ok := range map[string]bool{"kadtracker": true, "lab-1": true, "": false, "Lab": false, "a/b": false, strings.Repeat("x", maxNetworkName+1): false} {
		cfg := offlineConfig()
		cfg.Network = name
		if err := cfg.Validate(); (err == nil) != ok {
			t.Errorf("network %q: %v", name, err)
		}
	}
}

func randomPeerID(t *testing.T) peer.ID {
	t.Helper()
	_, pub, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// A node on loopback without port mapping or rendezvous says so in its
// stats, and tells a newcomer in the log what to do next.
func TestStatsReachabilityAndNextSteps(t *testing.T) {
	var logs strings.Builder
	var mu sync.Mutex
	cfg := loopbackConfig("")
	cfg.Logger = slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, nil))
	nd, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer nd.Close()
	st := nd.Stats()
	if st.Reachability != "unknown" || st.PortMapping.Enabled || st.Rendezvous.Enabled || st.Rendezvous.State != "off" || len(st.PublicAddrs) != 0 {
		t.Errorf("stats: reachability %q, port mapping %+v, rendezvous %+v, public %v", st.Reachability, st.PortMapping, st.Rendezvous, st.PublicAddrs)
	}
	if st.Network != DefaultNetwork {
		t.Errorf("network %q", st.Network)
	}
	nd.LogNextSteps("http://127.0.0.1:6969/announce")
	mu.Lock()
	out := logs.String()
	mu.Unlock()
	for _, want := range []string{"http://127.0.0.1:6969/announce", "no public address yet", "rendezvous is off"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *strings.Builder
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// Only a node others can reach advertises itself: public, or not judged by
// AutoNAT within the grace period (a LAN); never a node found private.
func TestRendezvousAdvertisesOnlyReachable(t *testing.T) {
	amino := privateAmino(t, 1)
	clock := newFakeClock()
	cfg := rendezvousConfig(t, amino[0])
	cfg.RendezvousRetry = time.Hour // the loop stays out of the way
	cfg.Clock = clock.Now
	nd, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer nd.Close()
	set := func(r network.Reachability) {
		nd.reach.mu.Lock()
		nd.reach.state = r
		nd.reach.mu.Unlock()
	}
	r := nd.rdv
	if r.shouldAdvertise() {
		t.Error("advertises before AutoNAT judged it, within the grace period")
	}
	set(network.ReachabilityPublic)
	if !r.shouldAdvertise() {
		t.Error("a public node does not advertise")
	}
	set(network.ReachabilityPrivate)
	clock.Advance(advertiseGrace * cfg.RendezvousRetry)
	if r.shouldAdvertise() {
		t.Error("a private node advertises")
	}
	set(network.ReachabilityUnknown)
	if !r.shouldAdvertise() {
		t.Error("a node AutoNAT never judged does not advertise after the grace period")
	}
}

// Peers joining and leaving the routing table are logged as one summary a
// call (watchLoop calls it every peerLogEvery), not one line a peer.
func TestLogPeerChanges(t *testing.T) {
	var logs strings.Builder
	var mu sync.Mutex
	cfg := loopbackConfig("")
	cfg.Logger = slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, nil))
	x, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	var others []*Node
	for range 3 {
		c := loopbackConfig("")
		c.BootstrapPeers = []peer.AddrInfo{{ID: x.ID(), Addrs: x.Host().Addrs()}}
		nd, err := New(context.Background(), c)
		if err != nil {
			t.Fatal(err)
		}
		defer nd.Close()
		others = append(others, nd)
	}
	waitFor(t, "routing table", 10*time.Second, func() bool { return x.DHT().RoutingTable().Size() == 3 })
	count := func(msg string) int {
		mu.Lock()
		defer mu.Unlock()
		return strings.Count(logs.String(), msg)
	}
	known := make(map[peer.ID]bool)
	x.logPeerChanges(known)
	if count(`msg="peers joined the routing table" component=node count=3`) != 1 {
		t.Fatalf("want one summary of three joins:\n%s", logs.String())
	}
	x.logPeerChanges(known)
	if count("peers joined") != 1 || count("peers left") != 0 {
		t.Fatalf("logged again with nothing changed:\n%s", logs.String())
	}
	for _, nd := range others[:2] {
		x.DHT().RoutingTable().RemovePeer(nd.ID())
	}
	x.logPeerChanges(known)
	if count(`msg="peers left the routing table" component=node count=2`) != 1 {
		t.Fatalf("want one summary of two departures:\n%s", logs.String())
	}
}

// startNode starts a node of cfg, closed when the test ends.
func startNode(t *testing.T, ctx context.Context, cfg Config) *Node {
	t.Helper()
	nd, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nd.Close() })
	return nd
}
