package daemon

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/kadtracker/kadtracker/node"
	"github.com/kadtracker/kadtracker/node/metrics"
	"github.com/libp2p/go-libp2p/core/peer"
)

// gathered flattens m's registry to "name{value,...}" -> value, for the
// metrics this test looks at (no histograms).
func gathered(t *testing.T, m *metrics.Metrics) map[string]float64 {
	t.Helper()
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range fams {
		for _, mt := range f.GetMetric() {
			var ls []string
			for _, l := range mt.GetLabel() {
				ls = append(ls, l.GetValue())
			}
			out[f.GetName()+"{"+strings.Join(ls, ",")+"}"] = mt.GetGauge().GetValue() + mt.GetCounter().GetValue() + mt.GetUntyped().GetValue()
		}
	}
	return out
}

// The reachability node.Stats reports reaches /metrics and the status page.
func TestMetricsSourceReachability(t *testing.T) {
	id, err := peer.Decode(peerID)
	if err != nil {
		t.Fatal(err)
	}
	n := &fakeNode{stats: node.Stats{
		PeerID: id, DHTMode: "server", Started: started, Network: "lab", Reachability: "public",
		PublicAddrs: addrs(t, "/ip4/203.0.113.7/tcp/4001", "/ip4/203.0.113.7/udp/4001/quic-v1"),
		PortMapping: node.PortMappingStats{Enabled: true, Gateway: true, Mapped: addrs(t, "/ip4/203.0.113.7/tcp/4001")},
		Rendezvous:  node.RendezvousStats{Enabled: true, State: "resting", DHTPeers: 6, Rounds: 3, Found: 5, Connected: 2, Dropped: 1, LastSuccess: started},
	}}
	src := &metricsSource{n: n}
	m := metrics.New(src, nil)
	got := gathered(t, m)
	for k, v := range map[string]float64{
		"kadtracker_reachability{public}":                        1,
		"kadtracker_reachability{private}":                       0,
		"kadtracker_reachability{unknown}":                       0,
		"kadtracker_dht_mode{server}":                            1,
		"kadtracker_dht_mode{client}":                            0,
		"kadtracker_public_addrs{}":                              2,
		"kadtracker_port_mapping_enabled{}":                      1,
		"kadtracker_port_mapping_gateway{}":                      1,
		"kadtracker_port_mapping_addrs{}":                        1,
		"kadtracker_rendezvous_state{resting}":                   1,
		"kadtracker_rendezvous_state{searching}":                 0,
		"kadtracker_rendezvous_dht_peers{}":                      6,
		"kadtracker_rendezvous_rounds_total{}":                   3,
		"kadtracker_rendezvous_peers_found_total{}":              5,
		"kadtracker_rendezvous_peers_connected_total{}":          2,
		"kadtracker_rendezvous_peers_dropped_total{}":            1,
		"kadtracker_rendezvous_last_success_timestamp_seconds{}": float64(started.Unix()),
	} {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}

	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{
		`id="network">lab<`, `id="reachability-state">public<`, "/ip4/203.0.113.7/udp/4001/quic-v1",
		`id="port-mapping">on, 1 mapped<`, `id="mapped-addrs"><code>/ip4/203.0.113.7/tcp/4001</code>`,
		`id="rendezvous-peers">5 / 2<`, "2026-11-22 01:02:03 UTC",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("status page lacks %q", want)
		}
	}

	// A private node behind a NAT without a gateway, rendezvous off: the
	// gauges move, and nothing claims a last success.
	n.stats.Reachability, n.stats.DHTMode, n.stats.PublicAddrs = "private", "client", nil
	n.stats.PortMapping = node.PortMappingStats{Enabled: true}
	n.stats.Rendezvous = node.RendezvousStats{State: "off"}
	got = gathered(t, m)
	for k, v := range map[string]float64{
		"kadtracker_reachability{public}":                        0,
		"kadtracker_reachability{private}":                       1,
		"kadtracker_dht_mode{client}":                            1,
		"kadtracker_port_mapping_gateway{}":                      0,
		"kadtracker_rendezvous_state{off}":                       1,
		"kadtracker_rendezvous_last_success_timestamp_seconds{}": 0,
	} {
		if g := got[k]; g != v {
			t.Errorf("private: %s = %v, want %v", k, g, v)
		}
	}
}

// The daemon without a DHT node (--dht=false) exports no reachability: it
// has none to report.
func TestMetricsSourceOffline(t *testing.T) {
	m := metrics.New(&metricsSource{n: offlineNode{started: started}}, nil)
	for k := range gathered(t, m) {
		if strings.HasPrefix(k, "kadtracker_reachability") || strings.HasPrefix(k, "kadtracker_rendezvous") {
			t.Errorf("offline daemon exports %s", k)
		}
	}
}
