package node

import (
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	bhost "github.com/libp2p/go-libp2p/p2p/host/basic"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// peerLogEvery spaces the info lines about peers joining and leaving the
// routing table: one summary per interval at most, however busy the table.
const peerLogEvery = 10 * time.Second

// PortMappingStats describe the NAT port mapping.
type PortMappingStats struct {
	Enabled bool
	// Gateway reports that a UPnP IGD or NAT-PMP gateway was found.
	Gateway bool
	// Mapped are the external addresses the gateway maps to our listeners.
	Mapped []ma.Multiaddr
}

// reach follows what AutoNAT says about the node.
type reach struct {
	mu        sync.Mutex
	state     network.Reachability
	confirmed []ma.Multiaddr // addresses AutoNAT v2 confirmed reachable
	natmgr    bhost.NATManager
}

func (r *reach) setNATManager(m bhost.NATManager) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.natmgr = m
}

func (r *reach) reachability() network.Reachability {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.state
}

// reachabilityName is how status shows a reachability.
func reachabilityName(r network.Reachability) string {
	switch r {
	case network.ReachabilityPublic:
		return "public"
	case network.ReachabilityPrivate:
		return "private"
	}
	return "unknown"
}

// portMapping reports the gateway's mappings of the node's listeners.
func (n *Node) portMapping() PortMappingStats {
	n.reach.mu.Lock()
	m := n.reach.natmgr
	n.reach.mu.Unlock()
	if m == nil {
		return PortMappingStats{}
	}
	st := PortMappingStats{Enabled: true, Gateway: m.HasDiscoveredNAT()}
	for _, a := range n.host.Network().ListenAddresses() {
		if ext := m.GetMapping(a); ext != nil && !slices.ContainsFunc(st.Mapped, ext.Equal) {
			st.Mapped = append(st.Mapped, ext)
		}
	}
	return st
}

// publicAddrs are the host's addresses that others on the Internet may
// dial: those AutoNAT v2 confirmed, or while it has confirmed none, every
// public address the host has (listening, observed by peers, mapped).
func (n *Node) publicAddrs() []ma.Multiaddr {
	n.reach.mu.Lock()
	confirmed := slices.Clone(n.reach.confirmed)
	n.reach.mu.Unlock()
	if len(confirmed) > 0 {
		return confirmed
	}
	var out []ma.Multiaddr
	for _, a := range n.host.Addrs() {
		if manet.IsPublicAddr(a) {
			out = append(out, a)
		}
	}
	return out
}

// watchLoop follows reachability and the routing table for the log: what
// AutoNAT decides and what it means for the user, and the peers that come
// and go, summed up every peerLogEvery.
func (n *Node) watchLoop(sub event.Subscription) {
	defer sub.Close()
	t := time.NewTicker(peerLogEvery)
	defer t.Stop()
	known := make(map[peer.ID]bool)
	for {
		select {
		case <-n.ctx.Done():
			return
		case e := <-sub.Out():
			switch e := e.(type) {
			case event.EvtLocalReachabilityChanged:
				n.reach.mu.Lock()
				n.reach.state = e.Reachability
				n.reach.mu.Unlock()
				n.logReachability(e.Reachability)
				if n.rdv != nil {
					n.rdv.reachabilityChanged()
				}
			case event.EvtHostReachableAddrsChanged:
				n.reach.mu.Lock()
				n.reach.confirmed = slices.Clone(e.Reachable)
				n.reach.mu.Unlock()
				if len(e.Reachable) > 0 {
					n.log.Info("AutoNAT confirmed addresses reachable", "addrs", e.Reachable)
				}
			}
		case <-t.C:
			n.logPeerChanges(known)
		}
	}
}

func (n *Node) logReachability(r network.Reachability) {
	switch r {
	case network.ReachabilityPublic:
		n.log.Info("reachable from the Internet: this node serves the DHT; others can use", "addrs", n.publicAddrs())
	case network.ReachabilityPrivate:
		n.log.Info("not reachable from the Internet (behind NAT without a port mapping): this node is a DHT client; announces and lookups still work",
			"port_mapping", n.cfg.NATPortMap && n.cfg.Host == nil)
	default:
		n.log.Info("reachability unknown")
	}
}

// logPeerChanges logs, at most once a call, the routing table peers that
// joined and left since the last call.
func (n *Node) logPeerChanges(known map[peer.ID]bool) {
	now := n.dht.RoutingTable().ListPeers()
	var joined, left []peer.ID
	cur := make(map[peer.ID]bool, len(now))
	for _, p := range now {
		cur[p] = true
		if !known[p] {
			joined = append(joined, p)
		}
	}
	for p := range known {
		if !cur[p] {
			left = append(left, p)
			delete(known, p)
		}
	}
	for _, p := range joined {
		known[p] = true
	}
	if len(joined) > 0 {
		n.log.Info("peers joined the routing table", "count", len(joined), "first", joined[0], "size", len(now))
	}
	if len(left) > 0 {
		n.log.Info("peers left the routing table", "count", len(left), "first", left[0], "size", len(now))
	}
}

// LogNextSteps tells a newcomer, in the log, what to do next: the tracker
// URL to add to torrents, the address others can use, whether the node is
// reachable and how it finds peers. trackerURL may be empty (no front).
func (n *Node) LogNextSteps(trackerURL string) {
	if trackerURL != "" {
		n.log.Info("add this tracker URL to your torrents (most clients: torrent properties, trackers)", "url", trackerURL)
	}
	if pub := n.publicAddrs(); len(pub) > 0 {
		n.log.Info("others can reach this node at", "addrs", pub)
	} else {
		n.log.Info("no public address yet; AutoNAT is finding out whether this node is reachable", "port_mapping", n.cfg.NATPortMap && n.cfg.Host == nil)
	}
	if n.dht.RoutingTable().Size() == 0 {
		if n.rdv != nil {
			n.log.Info("no peers yet: looking for other kadtracker nodes through rendezvous", "namespace", n.rdv.ns)
		} else {
			n.log.Info("no peers yet and rendezvous is off: pass --bootstrap with another node's address")
		}
	}
}
