package main

import (
	"context"
	"net/netip"
	"time"

	"github.com/kadtracker/kadtracker/node"
	"github.com/kadtracker/kadtracker/node/localapi"
	"github.com/kadtracker/kadtracker/node/tracker"
	"github.com/kadtracker/kadtracker/node/tracker/bridge"
	"github.com/kadtracker/kadtracker/records"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// nodeAPI is what the local API uses of *node.Node.
type nodeAPI interface {
	Announce(ctx context.Context, key records.Key, port uint16, seed bool) (node.AnnounceResult, error)
	Withdraw(ctx context.Context, key records.Key) error
	Lookup(ctx context.Context, key records.Key, want int) (node.LookupResult, error)
	Records(ctx context.Context) ([]records.Entry, error)
	Routing() []node.RoutingPeer
	Stats() node.Stats
	ID() peer.ID
}

var _ nodeAPI = (*node.Node)(nil)

// apiBackend serves the local API from a node.
type apiBackend struct {
	n nodeAPI
	// trackerHTTP and trackerUDP are the tracker front's announce URLs.
	trackerHTTP, trackerUDP string
	overlay                 *overlay          // nil without TSUP
	bridge                  *bridge.Announcer // nil without --bridge-trackers
	published               *bridgedPublisher // nil unless bridged records are published
}

var _ localapi.Backend = apiBackend{}

func (b apiBackend) Status(context.Context) (localapi.Status, error) {
	st := b.n.Stats()
	return localapi.Status{
		PeerID:           st.PeerID.String(),
		Addrs:            addrStrings(st.Addrs),
		RoutingTableSize: st.RoutingTableSize,
		RecordsStored:    st.RecordsStored,
		KeysStored:       st.KeysStored,
		Announced:        st.Announced,
		Replication:      st.Replication,
		DHTMode:          st.DHTMode,
		Started:          st.Started.UTC(),
		TrackerHTTP:      b.trackerHTTP,
		TrackerUDP:       b.trackerUDP,
		Network:          st.Network,
		Reachability:     st.Reachability,
		PublicAddrs:      addrStrings(st.PublicAddrs),
		PortMapping: localapi.PortMapping{
			Enabled: st.PortMapping.Enabled,
			Gateway: st.PortMapping.Gateway,
			Mapped:  addrStrings(st.PortMapping.Mapped),
		},
		Rendezvous: localapi.Rendezvous{
			Enabled:        st.Rendezvous.Enabled,
			Serving:        st.Rendezvous.Serving,
			State:          st.Rendezvous.State,
			Namespace:      st.Rendezvous.Namespace,
			DHTPeers:       st.Rendezvous.DHTPeers,
			Rounds:         st.Rendezvous.Rounds,
			PeersFound:     st.Rendezvous.Found,
			PeersConnected: st.Rendezvous.Connected,
			LastSuccess:    utc(st.Rendezvous.LastSuccess),
			LastAdvertised: utc(st.Rendezvous.LastAdvertised),
			LastError:      st.Rendezvous.LastError,
		},
	}, nil
}

// Announce, Withdraw and Peers name swarms as users see them: a v2 (64-hex)
// infohash reaches the swarm its clients announce to trackers, under the
// 20-byte truncation BEP 52 prescribes (see records.Key.Swarm).
func (b apiBackend) Announce(ctx context.Context, key records.Key, port uint16, seed bool) (localapi.AnnounceResult, error) {
	res, err := b.n.Announce(ctx, key.Swarm(), port, seed)
	if err != nil {
		return localapi.AnnounceResult{}, err
	}
	return localapi.AnnounceResult{StoredOn: res.StoredOn, Targets: res.Targets}, nil
}

func (b apiBackend) Withdraw(ctx context.Context, key records.Key) error {
	return b.n.Withdraw(ctx, key.Swarm())
}

func (b apiBackend) Peers(ctx context.Context, key records.Key, want int) (localapi.PeersResult, error) {
	res, err := b.n.Lookup(ctx, key.Swarm(), want)
	if err != nil {
		return localapi.PeersResult{}, err
	}
	peers := make([]localapi.Peer, len(res.Peers))
	for i, p := range res.Peers {
		source := "dht"
		if p.Bridged {
			source = "bridged"
		}
		peers[i] = localapi.Peer{
			IP:        ipString(p.Endpoint.Addr()),
			Port:      p.Endpoint.Port(),
			Seed:      p.Seed,
			Announcer: p.Announcer.String(),
			Source:    source,
		}
	}
	peers = append(peers, b.livePeers(key)...)
	return localapi.PeersResult{
		Peers:    peers,
		Seeds:    res.Seeds,
		Leechers: res.Leechers,
		Stats: localapi.LookupStats{
			Hops:       res.Stats.Hops,
			Queried:    res.Stats.Queried,
			Asked:      res.Stats.Asked,
			Answered:   res.Stats.Answered,
			DurationMS: float64(res.Stats.Duration) / float64(time.Millisecond),
		},
	}, nil
}

func (b apiBackend) Records(ctx context.Context) ([]localapi.Record, error) {
	entries, err := b.n.Records(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]localapi.Record, len(entries))
	for i, e := range entries {
		out[i] = localapi.Record{
			Infohash:  e.Key,
			IP:        ipString(e.IP),
			Port:      e.Port,
			Seed:      e.Seed,
			Announcer: e.Announcer.String(),
			Expires:   e.Expires.UTC(),
		}
	}
	return out, nil
}

func (b apiBackend) Routing(context.Context) ([]localapi.RoutingPeer, error) {
	rt := b.n.Routing()
	out := make([]localapi.RoutingPeer, len(rt))
	for i, p := range rt {
		out[i] = localapi.RoutingPeer{
			PeerID:    p.ID.String(),
			Addrs:     addrStrings(p.Addrs),
			CPL:       p.CPL,
			Connected: p.Connected,
		}
	}
	return out, nil
}

// ipString prints an IPv4-mapped address as IPv4, and the zero Addr (a
// record this node announced itself) as "".
func ipString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.Unmap().String()
}

func addrStrings(addrs []ma.Multiaddr) []string {
	out := make([]string, len(addrs))
	for i, a := range addrs {
		out[i] = a.String()
	}
	return out
}

// trackerBackend serves the BitTorrent tracker front from a node.
type trackerBackend struct{ n nodeAPI }

var _ tracker.Node = trackerBackend{}

// Announce publishes the client. A record that no storing node took yet is
// not an error for the front: the node keeps the key announced and its
// republish loop tries again.
func (b trackerBackend) Announce(ctx context.Context, key records.Key, port uint16, seed bool) error {
	_, err := b.n.Announce(ctx, key, port, seed)
	return err
}

func (b trackerBackend) Withdraw(ctx context.Context, key records.Key) error {
	return b.n.Withdraw(ctx, key)
}

func (b trackerBackend) Lookup(ctx context.Context, key records.Key, want int) (tracker.Swarm, error) {
	res, err := b.n.Lookup(ctx, key, want)
	if err != nil {
		return tracker.Swarm{}, err
	}
	self := b.n.ID()
	sw := tracker.Swarm{Seeds: res.Seeds, Leechers: res.Leechers, Peers: make([]tracker.Peer, 0, len(res.Peers))}
	for _, p := range res.Peers {
		if p.Bridged && p.Announcer == self {
			continue // this daemon's own bridge: its peers reach the front live
		}
		sw.Peers = append(sw.Peers, tracker.Peer{
			Endpoint: netip.AddrPortFrom(p.Endpoint.Addr().Unmap(), p.Endpoint.Port()),
			Seed:     p.Seed,
			Local:    p.Announcer == self && !p.Bridged,
		})
	}
	return sw, nil
}
