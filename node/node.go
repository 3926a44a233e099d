package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kadtracker/kadtracker/bootstrap"
	"github.com/kadtracker/kadtracker/node/vivaldi"
	"github.com/kadtracker/kadtracker/records"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	kb "github.com/libp2p/go-libp2p-kbucket"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/host/eventbus"
	ma "github.com/multiformats/go-multiaddr"
	"golang.org/x/time/rate"
)

// Files in DataDir besides the identity key.
const (
	storeDir   = "records"
	sweepEvery = time.Minute
	// rememberEvery is how often the routing table is saved for the next start.
	rememberEvery = 5 * time.Minute
	// bootstrapTimeout bounds dialling the bootstrap peers at start.
	bootstrapTimeout = 15 * time.Second
)

// Node is a running kadtracker DHT node. Its methods are safe for concurrent use.
type Node struct {
	cfg     Config
	log     *slog.Logger
	now     func() time.Time
	key     crypto.PrivKey
	host    host.Host
	ownHost bool
	dht     *dht.IpfsDHT
	store   records.Store
	lost    int               // records missing at open (records.Pebble.Lost)
	aside   string            // where a damaged store was moved, if it was
	memory  *bootstrap.Memory // nil for an ephemeral node
	mdns    io.Closer         // nil unless Config.MDNS
	rdv     *rendezvous       // nil unless Config.Rendezvous
	started time.Time
	// kadProto is the DHT protocol of Config.Network.
	kadProto protocol.ID
	reach    reach

	ctx    context.Context // cancelled by Close; parent of background work
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu             sync.Mutex
	announced      map[records.Key]announcement
	announcedDirty bool                             // announced changed since saved
	sched          map[records.Key]*pubState        // when each published key is due again
	saveMu         sync.Mutex                       // one save of announced at a time
	failLog        *rate.Limiter                    // Warn lines about publish failures
	unlogged       atomic.Int64                     // publish failures not logged at Warn since the last that was
	bridged        map[records.Key][]netip.AddrPort // endpoints PublishBridged keeps published
	lastSeq        uint64
	publishes      keyLocks  // one publish of a key at a time
	followUps      followUps // announces' walks and PUTs that go on after they return
	sch            *scheduler

	stats     counters
	guard     *guard
	refused   *tally       // requests and routing-table entries turned away
	rejected  *tally       // PUTs refused, by reason
	policy    lookupPolicy // the zero value; tests turn protections off
	apolicy   announcePolicy
	viv       *vivaldi.Client
	locality  atomic.Uint64 // float64 bits of the locality share (SetLocality)
	closeOnce sync.Once
	closeErr  error
}

// announcement is a key this node keeps published for its local client.
type announcement struct {
	port    uint16
	seed    bool
	expires time.Time // of the last record a storing node took; zero before
	// transient: not saved in DataDir (AnnounceTransient): its announcer
	// announces again after a restart, or not at all.
	transient bool
}

type counters struct {
	putsReceived, putsRejected, getsReceived atomic.Int64
	announces, lookups, republishes          atomic.Int64
	// What publishing sent: DHT walks, the queries they made, PUT
	// requests and their envelopes' bytes.
	walks, walkQueries, putsSent, putBytes atomic.Int64
}

// New starts a node: host (unless cfg.Host), store (unless cfg.Store),
// kad-dht, the record protocol, bootstrap and background loops. Close stops it.
func New(ctx context.Context, cfg Config) (_ *Node, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := checkNoPublicNetwork(cfg, publicNetworkForbidden(os.Getenv), inOwnNetns); err != nil {
		return nil, err
	}
	n := &Node{
		cfg:       cfg,
		log:       cfg.Logger,
		now:       cfg.Clock,
		store:     cfg.Store,
		announced: make(map[records.Key]announcement),
		sched:     make(map[records.Key]*pubState),
		failLog:   rate.NewLimiter(rate.Every(failLogEvery/publishFailBurst), publishFailBurst),
		bridged:   make(map[records.Key][]netip.AddrPort),
		refused:   newTally(slices.Concat(refusalNames, vouchRefusalNames, localityRefusalNames)),
		rejected:  newTally(slices.Concat(rejectNames, vouchRejectNames)),

		kadProto: networkKadPrefix(cfg.Network) + "/kad/1.0.0",
	}
	if n.log == nil {
		n.log = slog.New(slog.DiscardHandler)
	}
	n.log = n.log.With("component", "node")
	if n.now == nil {
		n.now = time.Now
	}
	n.started = n.now()
	n.sch = newScheduler(n)
	n.SetLocality(cfg.Locality)
	if n.viv, err = vivaldi.New(cfg.Vivaldi, rand.Uint64()); err != nil {
		return nil, err
	}
	n.guard = newGuard(cfg.Protect, cfg.Limits, n.now)
	n.ctx, n.cancel = context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			_ = n.Close()
		}
	}()

	if cfg.DataDir != "" {
		if err := privateDir(cfg.DataDir, n.log); err != nil {
			return nil, err
		}
	}
	if cfg.Host != nil {
		n.host = cfg.Host
		n.key = cfg.Host.Peerstore().PrivKey(cfg.Host.ID())
		if n.key == nil {
			return nil, errors.New("node: host has no private key in its peerstore")
		}
	} else {
		if n.key, err = loadIdentity(cfg.DataDir); err != nil {
			return nil, err
		}
		if n.host, err = newHost(cfg, n.key, n.reach.setNATManager); err != nil {
			return nil, err
		}
		n.ownHost = true
	}
	if n.store == nil {
		opts := records.Options{Limits: cfg.Limits, Now: n.now}
		if cfg.DataDir == "" {
			n.store = records.NewMemory(opts)
		} else {
			p, err := n.openStore(filepath.Join(cfg.DataDir, storeDir), opts)
			if err != nil {
				return nil, err
			}
			n.store = p
		}
	}

	// Remembered peers first: kad-dht may ask for bootstrap peers at once.
	if cfg.DataDir != "" {
		path := bootstrap.MemoryPath(cfg.DataDir)
		n.memory, err = bootstrap.LoadMemory(path)
		if err != nil {
			// A damaged peer list only costs us the shortcut into the network.
			n.log.Warn("remembered peers unreadable, starting without them", "err", err)
			_ = os.Remove(path)
			if n.memory, err = bootstrap.LoadMemory(path); err != nil {
				return nil, err
			}
		}
	}
	if cfg.DataDir != "" {
		n.restoreAnnounced()
	}
	opts := []dht.Option{
		dht.ProtocolPrefix(networkKadPrefix(cfg.Network)),
		dht.Mode(kadMode(cfg.DHTMode)),
		dht.DisableProviders(),
		dht.DisableValues(),
		dht.BootstrapPeersFunc(n.bootstrapPeers),
	}
	if p := cfg.Protect; p.DiversityPerTable > 0 {
		opts = append(opts, dht.RoutingTablePeerDiversityFilter(newRTDiversity(n, p.DiversityPerCpl, p.DiversityPerTable)))
	}
	// Subscribed before kad-dht starts, so no reachability verdict is
	// missed; buffered for the events of join, before watchLoop reads them.
	sub, err := n.host.EventBus().Subscribe([]any{new(event.EvtLocalReachabilityChanged), new(event.EvtHostReachableAddrsChanged)}, eventbus.BufSize(64))
	if err != nil {
		return nil, fmt.Errorf("node: event bus: %w", err)
	}
	defer func() {
		if err != nil {
			_ = sub.Close()
		}
	}()
	n.dht, err = dht.New(n.host, opts...)
	if err != nil {
		return nil, fmt.Errorf("node: kad-dht: %w", err)
	}
	n.host.SetStreamHandler(ProtocolID, n.handleStream)

	if err := n.join(ctx); err != nil {
		n.log.Warn("bootstrap incomplete", "err", err)
	}
	if cfg.MDNS {
		if n.mdns, err = bootstrap.StartMDNS(n.host, bootstrap.DefaultServiceName, n.foundOnLAN); err != nil {
			return nil, fmt.Errorf("node: mdns: %w", err)
		}
	}

	// Rendezvous after the remembered and configured peers had their turn:
	// it only searches while they leave the routing table thin.
	if cfg.Rendezvous {
		if n.rdv, err = newRendezvous(n); err != nil {
			return nil, err
		}
		n.wg.Go(func() { n.rdv.run(n.ctx) })
	}
	// Started once n.rdv is set, which it reads.
	n.wg.Go(func() { n.watchLoop(sub) })
	if cfg.SerialRepublish {
		n.wg.Go(n.republishLoop)
	} else {
		n.wg.Go(n.sch.run)
	}
	n.wg.Go(n.sweepLoop)
	if cfg.CoordProbeInterval > 0 {
		n.wg.Go(n.probeLoop)
	}
	if n.memory != nil {
		n.wg.Go(n.rememberLoop)
	}
	return n, nil
}

// openStore opens the record store in dir. A damaged one fails New with
// what to do, or with Config.StoreRecovery is moved aside, never deleted,
// and the node starts empty.
func (n *Node) openStore(dir string, opts records.Options) (*records.Pebble, error) {
	p, err := records.OpenPebble(dir, opts)
	if errors.Is(err, records.ErrDamaged) {
		if !n.cfg.StoreRecovery {
			return nil, fmt.Errorf("node: %w", err) // it says what to do, StoreRecovery included
		}
		aside := fmt.Sprintf("%s.damaged-%s", dir, n.now().UTC().Format("20060102T150405Z"))
		if rerr := os.Rename(dir, aside); rerr != nil {
			return nil, fmt.Errorf("node: %w; moving it aside failed: %w", err, rerr)
		}
		n.log.Error("RECORD STORE DAMAGED: moved aside, starting with an empty store; the DHT and announcers refill it",
			"dir", dir, "moved_to", aside, "err", err)
		n.aside = aside
		p, err = records.OpenPebble(dir, opts)
	}
	if err != nil {
		return nil, err
	}
	kept, dropped := p.Loaded()
	n.lost = p.Lost()
	if n.lost > 0 {
		n.log.Error("RECORDS LOST: the store on disk holds fewer records than its count checkpoint; the DHT and announcers refill it",
			"dir", dir, "lost", n.lost, "records", kept, "dropped", dropped)
	} else {
		n.log.Info("record store opened", "records", kept, "dropped", dropped)
	}
	return p, nil
}

// privateDir creates dir 0700, or makes an existing one 0700: it holds
// the node's identity key and other people's addresses.
func privateDir(dir string, log *slog.Logger) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("node: data dir: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("node: data dir: %w", err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		if err := os.Chmod(dir, perm&0o700); err != nil {
			return fmt.Errorf("node: data dir: %w", err)
		}
		log.Warn("data dir was open to other users: made it 0700", "dir", dir, "was", perm.String())
	}
	return nil
}

func kadMode(m DHTMode) dht.ModeOpt {
	switch m {
	case ModeServer:
		return dht.ModeServer
	case ModeClient:
		return dht.ModeClient
	}
	return dht.ModeAutoServer
}

// bootstrapPeers are the configured peers and those remembered from the last
// run; kad-dht falls back to them when its routing table empties.
func (n *Node) bootstrapPeers() []peer.AddrInfo {
	peers := append([]peer.AddrInfo(nil), n.cfg.BootstrapPeers...)
	if n.memory != nil {
		peers = append(peers, n.memory.Peers()...)
	}
	return peers
}

// join dials the bootstrap peers and fills the routing table. A node with no
// peers at all is a one-node tracker, which is fine.
func (n *Node) join(ctx context.Context) error {
	peers := n.bootstrapPeers()
	if len(peers) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, bootstrapTimeout)
	defer cancel()
	connected, err := bootstrap.Connect(ctx, n.host, peers, n.cfg.RequestTimeout)
	n.log.Info("bootstrap", "peers", len(peers), "connected", connected)
	if connected == 0 {
		return err
	}
	// Peers enter the routing table once identify shows they speak the DHT;
	// wait for that, then for one refresh, so the first Announce has a
	// routing table. Never past the caller's patience.
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for n.dht.RoutingTable().Size() == 0 {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return fmt.Errorf("node: connected to %d bootstrap peers but none joined the routing table", connected)
		}
	}
	select {
	case err := <-n.dht.RefreshRoutingTable():
		if err != nil {
			n.log.Debug("routing table refresh", "err", err)
		}
	case <-ctx.Done():
	}
	return nil
}

func (n *Node) foundOnLAN(ai peer.AddrInfo) {
	ctx, cancel := context.WithTimeout(n.ctx, n.cfg.RequestTimeout)
	defer cancel()
	if err := n.host.Connect(ctx, ai); err != nil {
		n.log.Debug("mdns peer unreachable", "peer", ai.ID, "err", err)
		return
	}
	n.log.Info("mdns peer connected", "peer", ai.ID)
}

// ID is the node's peer ID.
func (n *Node) ID() peer.ID { return n.host.ID() }

// Host is the node's libp2p host.
func (n *Node) Host() host.Host { return n.host }

// DHT is the node's kad-dht instance (netsim inspects it).
func (n *Node) DHT() *dht.IpfsDHT { return n.dht }

// Addrs are the node's listen addresses with /p2p/ID, ready to give to others
// as --bootstrap.
func (n *Node) Addrs() []ma.Multiaddr {
	addrs, err := peer.AddrInfoToP2pAddrs(&peer.AddrInfo{ID: n.host.ID(), Addrs: n.host.Addrs()})
	if err != nil {
		return nil
	}
	return addrs
}

// Records lists the unexpired records this node stores.
func (n *Node) Records(ctx context.Context) ([]records.Entry, error) {
	var out []records.Entry
	err := n.store.List(ctx, func(e records.Entry) bool {
		out = append(out, e)
		return true
	})
	return out, err
}

// Announced lists the keys this node keeps published for its local
// clients, in no particular order.
func (n *Node) Announced() []Announcement {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]Announcement, 0, len(n.announced))
	for k, a := range n.announced {
		out = append(out, Announcement{Key: k, Port: a.port, Seed: a.seed})
	}
	return out
}

// StoredSwarms returns the limit infohashes this node stores the most
// records for, most first (nil when the store cannot tell).
func (n *Node) StoredSwarms(limit int) []records.KeyCount {
	if b, ok := n.store.(interface{ Busiest(int) []records.KeyCount }); ok {
		return b.Busiest(limit)
	}
	return nil
}

// Routing lists the routing table.
func (n *Node) Routing() []RoutingPeer {
	self := kb.ConvertPeerID(n.host.ID())
	ids := n.dht.RoutingTable().ListPeers()
	out := make([]RoutingPeer, 0, len(ids))
	for _, p := range ids {
		out = append(out, RoutingPeer{
			ID:        p,
			Addrs:     n.host.Peerstore().Addrs(p),
			CPL:       kb.CommonPrefixLen(self, kb.ConvertPeerID(p)),
			Connected: n.host.Network().Connectedness(p) == network.Connected,
		})
	}
	return out
}

// Stats is a snapshot for the local API.
func (n *Node) Stats() Stats {
	st := n.store.Stats()
	n.mu.Lock()
	announced, published := len(n.announced), len(n.sched)
	n.mu.Unlock()
	mode := "client"
	if n.serving() {
		mode = "server"
	}
	rdv := RendezvousStats{State: "off"}
	if n.rdv != nil {
		rdv = n.rdv.stats()
	}
	return Stats{
		Network:          n.cfg.Network,
		Reachability:     reachabilityName(n.reach.reachability()),
		PublicAddrs:      n.publicAddrs(),
		PortMapping:      n.portMapping(),
		Rendezvous:       rdv,
		PeerID:           n.host.ID(),
		Addrs:            n.Addrs(),
		RoutingTableSize: n.dht.RoutingTable().Size(),
		RecordsStored:    st.Records,
		KeysStored:       st.Keys,
		Announced:        announced,
		Replication:      n.cfg.Replication,
		DHTMode:          mode,
		Started:          n.started,
		Connections:      len(n.host.Network().Conns()),
		Evicted:          st.Evicted,
		RecordsLost:      n.lost,
		StoreMovedAside:  n.aside,
		PutsRejectedBy:   n.rejected.snapshot(),
		Refused:          n.refused.snapshot(),
		PutsReceived:     n.stats.putsReceived.Load(),
		PutsRejected:     n.stats.putsRejected.Load(),
		GetsReceived:     n.stats.getsReceived.Load(),
		Announces:        n.stats.announces.Load(),
		Lookups:          n.stats.lookups.Load(),
		Republishes:      n.stats.republishes.Load(),
		Publish: PublishStats{
			Keys:         published,
			CapacityKeys: n.sch.capacity(),
			LapsedTotal:  n.sch.lapsed.Load(),
			Walks:        n.stats.walks.Load(),
			WalkQueries:  n.stats.walkQueries.Load(),
			PutsSent:     n.stats.putsSent.Load(),
			PutBytes:     n.stats.putBytes.Load(),
		},
	}
}

// kadPrefix is kad-dht's protocol prefix on the public network; a node
// handles its kad protocol exactly when it serves the DHT.
const (
	kadPrefix   protocol.ID = "/kadtracker"
	kadProtocol             = kadPrefix + "/kad/1.0.0"
)

// serving reports whether the node serves the DHT right now. In auto mode
// that changes with reachability, which kad-dht's Mode() does not show.
func (n *Node) serving() bool {
	return slices.Contains(n.host.Mux().Protocols(), n.kadProto)
}

func (n *Node) isConnected(p peer.ID) bool {
	return n.host.Network().Connectedness(p) == network.Connected
}

// sweepLoop deletes expired records.
func (n *Node) sweepLoop() {
	t := time.NewTicker(sweepEvery)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
			if removed, err := n.store.Expire(n.ctx); err != nil {
				n.log.Warn("expiring records", "err", err)
			} else if removed > 0 {
				n.log.Debug("expired records", "count", removed)
			}
		}
	}
}

// rememberLoop saves the routing table so the next start can rejoin without
// bootstrap flags.
func (n *Node) rememberLoop() {
	t := time.NewTicker(rememberEvery)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
			n.remember()
		}
	}
}

func (n *Node) remember() {
	var peers []peer.AddrInfo
	for _, p := range n.dht.RoutingTable().ListPeers() {
		if addrs := n.host.Peerstore().Addrs(p); len(addrs) > 0 {
			peers = append(peers, peer.AddrInfo{ID: p, Addrs: addrs})
		}
	}
	if len(peers) == 0 {
		return // keep what we had rather than forget the way back in
	}
	if err := n.memory.Save(peers); err != nil {
		n.log.Warn("saving peers", "err", err)
	}
}

// Close stops the node. It is idempotent.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		var errs []error
		if n.memory != nil && n.dht != nil {
			n.remember()
		}
		if n.mdns != nil {
			errs = append(errs, n.mdns.Close())
		}
		n.cancel()
		n.wg.Wait()
		n.followUps.close()
		if n.rdv != nil {
			errs = append(errs, n.rdv.close())
		}
		if n.host != nil {
			n.host.RemoveStreamHandler(ProtocolID)
		}
		if n.dht != nil {
			errs = append(errs, n.dht.Close())
		}
		if n.ownHost && n.host != nil {
			errs = append(errs, n.host.Close())
		}
		if n.store != nil {
			errs = append(errs, n.store.Close())
		}
		n.closeErr = errors.Join(errs...)
	})
	return n.closeErr
}
