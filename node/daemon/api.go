package daemon

import (
	"context"
	"net/netip"
	"time"

	"github.com/kadtracker/kadtracker/node"
	"github.com/kadtracker/kadtracker/node/localapi"
	"github.com/kadtracker/kadtracker/node/metrics"
	"github.com/kadtracker/kadtracker/records"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// dhtNode is what the daemon's faces use of *node.Node.
type dhtNode interface {
	Announce(ctx context.Context, key records.Key, port uint16, seed bool) (node.AnnounceResult, error)
	AnnounceTransient(ctx context.Context, key records.Key, port uint16, seed bool) (node.AnnounceResult, error)
	Withdraw(ctx context.Context, key records.Key) error
	Lookup(ctx context.Context, key records.Key, want int) (node.LookupResult, error)
	Records(ctx context.Context) ([]records.Entry, error)
	Routing() []node.RoutingPeer
	Stats() node.Stats
	ID() peer.ID
}

var _ dhtNode = (*node.Node)(nil)

// offlineNode stands in for the DHT node without one (--dht=false): the
// daemon is a plain tracker for its clients (and the TSUP overlay),
// publishing nothing and finding nothing in a DHT.
type offlineNode struct{ started time.Time }

func (offlineNode) Announce(context.Context, records.Key, uint16, bool) (node.AnnounceResult, error) {
	return node.AnnounceResult{}, nil
}
func (offlineNode) AnnounceTransient(context.Context, records.Key, uint16, bool) (node.AnnounceResult, error) {
	return node.AnnounceResult{}, nil
}
func (offlineNode) Withdraw(context.Context, records.Key) error { return nil }
func (offlineNode) Lookup(context.Context, records.Key, int) (node.LookupResult, error) {
	return node.LookupResult{}, nil
}
func (offlineNode) Records(context.Context) ([]records.Entry, error) { return nil, nil }
func (offlineNode) Routing() []node.RoutingPeer                      { return nil }
func (o offlineNode) Stats() node.Stats                              { return node.Stats{DHTMode: "off", Started: o.started} }
func (offlineNode) ID() peer.ID                                      { return "" }

// apiBackend serves the local API from the node, adding the peers TSUP
// and the bridge know to /v1/peers.
type apiBackend struct {
	n       dhtNode
	m       *metrics.Metrics // nil: metrics off
	info    *Info            // the front's URLs for /v1/status
	overlay *overlay         // nil without TSUP
	bridge  *bridge          // nil without the bridge
}

var _ localapi.Backend = (*apiBackend)(nil)

func (b *apiBackend) Status(context.Context) (localapi.Status, error) {
	st := b.n.Stats()
	out := localapi.Status{
		PeerID:           st.PeerID.String(),
		Addrs:            addrStrings(st.Addrs),
		RoutingTableSize: st.RoutingTableSize,
		RecordsStored:    st.RecordsStored,
		KeysStored:       st.KeysStored,
		Announced:        st.Announced,
		Replication:      st.Replication,
		DHTMode:          st.DHTMode,
		Started:          st.Started.UTC(),
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
	}
	out.RecordsLost, out.StoreMovedAside = st.RecordsLost, st.StoreMovedAside
	if st.DHTMode != "off" {
		out.Publish = &localapi.Publish{Keys: st.Publish.Keys, CapacityKeys: st.Publish.CapacityKeys, LapsedTotal: st.Publish.LapsedTotal}
	}
	if b.info != nil {
		out.TrackerHTTP, out.TrackerUDP = b.info.TrackerHTTP, b.info.TrackerUDP
	}
	return out, nil
}

// Announce, Withdraw and Peers name swarms as users see them: a v2 (64-hex)
// infohash reaches the swarm its clients announce to trackers, under the
// 20-byte truncation BEP 52 prescribes (see records.Key.Swarm).
func (b *apiBackend) Announce(ctx context.Context, key records.Key, port uint16, seed bool) (localapi.AnnounceResult, error) {
	res, err := b.n.Announce(ctx, key.Swarm(), port, seed)
	if b.m != nil {
		b.m.ObserveAnnounce("api", err)
	}
	if err != nil {
		return localapi.AnnounceResult{}, err
	}
	return localapi.AnnounceResult{StoredOn: res.StoredOn, Targets: res.Targets}, nil
}

func (b *apiBackend) Withdraw(ctx context.Context, key records.Key) error {
	return b.n.Withdraw(ctx, key.Swarm())
}

func (b *apiBackend) Peers(ctx context.Context, key records.Key, want int) (localapi.PeersResult, error) {
	key = key.Swarm()
	res, err := observedLookup(ctx, b.n, b.m, "api", key, want)
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
	if b.bridge != nil {
		peers = append(peers, b.bridge.apiPeers(key)...)
	}
	if b.overlay != nil {
		peers = append(peers, b.overlay.apiPeers(key)...)
	}
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

func (b *apiBackend) Records(ctx context.Context) ([]localapi.Record, error) {
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

func (b *apiBackend) Routing(context.Context) ([]localapi.RoutingPeer, error) {
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

// observedLookup is n.Lookup, told to the metrics as front's when m is set.
func observedLookup(ctx context.Context, n dhtNode, m *metrics.Metrics, front string, key records.Key, want int) (node.LookupResult, error) {
	start := time.Now()
	res, err := n.Lookup(ctx, key, want)
	if m != nil {
		d := res.Stats.Duration
		if d == 0 {
			d = time.Since(start)
		}
		m.ObserveLookup(metrics.Lookup{
			Front: front, Infohash: key, Peers: len(res.Peers),
			Hops: res.Stats.Hops, Queried: res.Stats.Queried, Duration: d, Err: err,
		})
	}
	return res, err
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
