package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"

	"github.com/kadtracker/kadtracker/node"
	"github.com/kadtracker/kadtracker/node/metrics"
	"github.com/kadtracker/kadtracker/node/tracker"
	"github.com/kadtracker/kadtracker/records"
)

// MetricsConfig serves Prometheus metrics at /metrics and a status page at
// /.
type MetricsConfig struct {
	// Addr is host:port to listen on, such as 127.0.0.1:9090.
	Addr string
}

// daemonMetrics is the metrics face of a running daemon. A nil
// *daemonMetrics (metrics off) does nothing.
type daemonMetrics struct {
	ln  net.Listener
	m   *metrics.Metrics
	src *metricsSource
}

// open takes the metrics port, so a port in use stops the daemon before the
// store is opened. It returns nil when metrics are off.
func (c *MetricsConfig) open(ctx context.Context) (*daemonMetrics, error) {
	if c == nil {
		return nil, nil
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", c.Addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	src := &metricsSource{}
	return &daemonMetrics{ln: ln, m: metrics.New(src, nil), src: src}, nil
}

// Close closes the listener (Serve has closed it already when it ran).
func (dm *daemonMetrics) Close() error { return dm.ln.Close() }

// sink is where the daemon's fronts report lookups and announces; nil
// when metrics are off.
func (dm *daemonMetrics) sink() *metrics.Metrics {
	if dm == nil {
		return nil
	}
	return dm.m
}

// setNode and setFront give the source what it reads; both are called
// before the faces start. dn is nil without a DHT node.
func (dm *daemonMetrics) setNode(n dhtNode, dn *node.Node) {
	if dm != nil {
		dm.src.n, dm.src.dn = n, dn
	}
}

func (dm *daemonMetrics) setFront(t *tracker.Tracker) {
	if dm != nil {
		dm.src.front = t
	}
}

// face is the metrics listener's face; ok is false when metrics are off.
func (dm *daemonMetrics) face(log *slog.Logger) (f face, ok bool) {
	if dm == nil {
		return face{}, false
	}
	addr := dm.ln.Addr().String()
	if ap, err := netip.ParseAddrPort(addr); err == nil && !ap.Addr().IsLoopback() {
		log.Warn("metrics and status page open beyond this host", "addr", addr)
	}
	log.Info("metrics", "status", "http://"+addr+"/", "metrics", "http://"+addr+"/metrics")
	return face{"metrics", func(ctx context.Context) error { return dm.m.Serve(ctx, dm.ln) }}, true
}

// metricsSource reads the node and the tracker front for the metrics.
type metricsSource struct {
	n     dhtNode
	dn    *node.Node       // nil without a DHT node
	front *tracker.Tracker // nil without a tracker front
}

var _ metrics.Source = (*metricsSource)(nil)

// rateLimits are the refusals the metrics call rate limiting.
var rateLimits = map[string]bool{
	node.RefusedPeerRate: true, node.RefusedIPRate: true, node.RefusedStreams: true, node.RefusedPeerStreams: true,
}

func (s *metricsSource) Counts() metrics.Counts {
	st := s.n.Stats()
	c := metrics.Counts{
		RoutingTableSize: st.RoutingTableSize,
		Connections:      st.Connections,
		Store:            records.Stats{Keys: st.KeysStored, Records: st.RecordsStored, Evicted: st.Evicted},
		Tracked:          st.Announced,
		PutsReceived:     st.PutsReceived,
		GetsReceived:     st.GetsReceived,
		PutsRejected:     st.PutsRejectedBy,
		RateLimited:      make(map[string]int64),
		Refused:          make(map[string]int64),
		Reachability:     reachabilityCounts(st),
		Publish:          metrics.Publish{Keys: st.Publish.Keys, CapacityKeys: st.Publish.CapacityKeys, LapsedTotal: st.Publish.LapsedTotal},
	}
	for reason, n := range st.Refused {
		if rateLimits[reason] {
			c.RateLimited[reason] = n
		} else {
			c.Refused[reason] = n
		}
	}
	if s.front != nil {
		ts := s.front.Stats()
		c.TrackerSwarms = ts.Swarms
		c.Refused["tracker_full"] = int64(ts.Refused) // new infohashes the full front turned away
		c.Announces = map[metrics.FrontResult]int64{
			{Front: "http", Result: "ok"}: int64(ts.HTTPAnnounces), {Front: "http", Result: "error"}: int64(ts.HTTPAnnounceFailures),
			{Front: "udp", Result: "ok"}: int64(ts.UDPAnnounces), {Front: "udp", Result: "error"}: int64(ts.UDPAnnounceFailures),
		}
	}
	return c
}

// storedShown is how many stored swarms the status page lists.
const storedShown = 50

func (s *metricsSource) Status(context.Context) (metrics.Status, error) {
	st := s.n.Stats()
	out := metrics.Status{
		PeerID:      st.PeerID.String(),
		Addrs:       addrStrings(st.Addrs),
		DHTMode:     st.DHTMode,
		Replication: st.Replication,
		Started:     st.Started,
		Network:     st.Network,
		PublicAddrs: addrStrings(st.PublicAddrs),
		MappedAddrs: addrStrings(st.PortMapping.Mapped),
	}
	for _, p := range s.n.Routing() {
		out.Routing = append(out.Routing, metrics.RoutingPeer{ID: p.ID.String(), CPL: p.CPL, Connected: p.Connected, Addrs: addrStrings(p.Addrs)})
	}
	if s.dn != nil {
		for _, a := range s.dn.Announced() {
			out.Tracked = append(out.Tracked, metrics.TrackedSwarm{Infohash: a.Key, Port: a.Port, Seed: a.Seed})
		}
		out.Stored = s.dn.StoredSwarms(storedShown)
	}
	return out, nil
}

// reachabilityCounts is st's reachability for the metrics; zero (nothing
// exported) when the node reports none.
func reachabilityCounts(st node.Stats) metrics.Reachability {
	if st.Reachability == "" {
		return metrics.Reachability{}
	}
	r := st.Rendezvous
	return metrics.Reachability{
		State:       st.Reachability,
		DHTMode:     st.DHTMode,
		PublicAddrs: len(st.PublicAddrs),
		PortMapping: metrics.PortMapping{Enabled: st.PortMapping.Enabled, Gateway: st.PortMapping.Gateway, Mapped: len(st.PortMapping.Mapped)},
		Rendezvous: metrics.Rendezvous{
			State: r.State, Serving: r.Serving, DHTPeers: r.DHTPeers, Rounds: r.Rounds,
			Found: r.Found, Connected: r.Connected, Dropped: r.Dropped, LastSuccess: r.LastSuccess,
		},
	}
}
