package metrics

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kadtracker/kadtracker/records"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// fakeSource is a Source with fixed answers.
type fakeSource struct {
	counts Counts
	status Status
	err    error
}

func (f *fakeSource) Counts() Counts { return f.counts }
func (f *fakeSource) Status(context.Context) (Status, error) {
	return f.status, f.err
}

func mustKey(t *testing.T, hex string) records.Key {
	t.Helper()
	k, err := records.ParseKey(hex)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func testSource(t *testing.T) *fakeSource {
	return &fakeSource{
		counts: Counts{
			RoutingTableSize: 17,
			Connections:      23,
			Store:            records.Stats{Keys: 4, Records: 9, Evicted: 2},
			Tracked:          1,
			TrackerSwarms:    3,
			PutsReceived:     100,
			GetsReceived:     50,
			PutsRejected:     map[string]int64{"ip_full": 7, "bad_signature": 3},
			RateLimited:      map[string]int64{"peer_rate": 11, "ip_rate": 0},
			Refused:          map[string]int64{"routing_ip": 5},
			Announces:        map[FrontResult]int64{{"http", "ok"}: 40, {"udp", "error"}: 2},
			Publish:          Publish{Keys: 5000, CapacityKeys: 19000, LapsedTotal: 2},
		},
		status: Status{
			PeerID:      "12D3KooWTestPeer",
			Addrs:       []string{"/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWTestPeer"},
			DHTMode:     "server",
			Replication: 8,
			Started:     time.Now().Add(-time.Hour),
			Routing: []RoutingPeer{
				{ID: "12D3KooWRoutingPeerA", CPL: 1, Connected: true, Addrs: []string{"/ip4/127.0.0.1/tcp/4002"}},
				{ID: "12D3KooWRoutingPeerB", CPL: 3},
			},
			Tracked: []TrackedSwarm{{Infohash: mustKey(t, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"), Port: 6881, Seed: true}},
			Stored:  []records.KeyCount{{Key: mustKey(t, "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"), Seeds: 2, Leechers: 5}},
		},
	}
}

// serve runs m on a loopback listener and returns its base URL.
func serve(t *testing.T, m *Metrics) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return "http://" + ln.Addr().String()
}

func get(t *testing.T, url string) (string, http.Header) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %v\n%s", url, resp.Status, err, b)
	}
	return string(b), resp.Header
}

// scrape fetches /metrics and flattens it to "name{l=v,...}" -> value,
// histograms to their sample count and sum.
func scrape(t *testing.T, base string) map[string]float64 {
	t.Helper()
	body, _ := get(t, base+"/metrics")
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parsing /metrics: %v\n%s", err, body)
	}
	out := map[string]float64{}
	for name, mf := range fams {
		for _, m := range mf.GetMetric() {
			var ls []string
			for _, lp := range m.GetLabel() {
				ls = append(ls, lp.GetName()+"="+lp.GetValue())
			}
			slices.Sort(ls)
			key := name + "{" + strings.Join(ls, ",") + "}"
			if h := m.GetHistogram(); h != nil {
				out[key+"_count"] = float64(h.GetSampleCount())
				out[key+"_sum"] = h.GetSampleSum()
				continue
			}
			out[key] = m.GetCounter().GetValue() + m.GetGauge().GetValue() + m.GetUntyped().GetValue()
		}
	}
	return out
}

func TestMetricsScrape(t *testing.T) {
	src := testSource(t)
	m := New(src, nil)
	k := mustKey(t, "cccccccccccccccccccccccccccccccccccccccc")
	m.ObserveLookup(Lookup{Front: "tracker", Infohash: k, Peers: 3, Hops: 2, Queried: 9, Duration: 40 * time.Millisecond})
	m.ObserveLookup(Lookup{Front: "tracker", Infohash: k, Hops: 4, Duration: 120 * time.Millisecond})
	m.ObserveLookup(Lookup{Front: "api", Infohash: k, Err: errors.New("walk failed")})
	m.ObserveAnnounce("api", nil)
	m.ObserveAnnounce("http", nil)
	got := scrape(t, serve(t, m))

	want := map[string]float64{
		"kadtracker_routing_table_size{}":                         17,
		"kadtracker_connections{}":                                23,
		"kadtracker_records_stored{}":                             9,
		"kadtracker_swarms_stored{}":                              4,
		"kadtracker_swarms_tracked{}":                             1,
		"kadtracker_tracker_swarms{}":                             3,
		"kadtracker_publish_keys{}":                               5000,
		"kadtracker_publish_capacity_keys{}":                      19000,
		"kadtracker_publish_lapsed_total{}":                       2,
		"kadtracker_records_evicted_total{}":                      2,
		"kadtracker_puts_received_total{}":                        100,
		"kadtracker_puts_accepted_total{}":                        90,
		"kadtracker_puts_rejected_total{reason=ip_full}":          7,
		"kadtracker_puts_rejected_total{reason=bad_signature}":    3,
		"kadtracker_gets_received_total{}":                        50,
		"kadtracker_rate_limited_total{limit=peer_rate}":          11,
		"kadtracker_rate_limited_total{limit=ip_rate}":            0,
		"kadtracker_refused_total{reason=routing_ip}":             5,
		"kadtracker_announces_total{front=http,result=ok}":        41,
		"kadtracker_announces_total{front=udp,result=error}":      2,
		"kadtracker_announces_total{front=api,result=ok}":         1,
		"kadtracker_lookups_total{front=tracker,result=ok}":       1,
		"kadtracker_lookups_total{front=tracker,result=empty}":    1,
		"kadtracker_lookups_total{front=api,result=error}":        1,
		"kadtracker_lookup_duration_seconds{front=tracker}_count": 2,
		"kadtracker_lookup_duration_seconds{front=tracker}_sum":   0.16,
		"kadtracker_lookup_hops{front=tracker}_count":             2,
		"kadtracker_lookup_hops{front=tracker}_sum":               6,
	}
	for k, v := range want {
		g, ok := got[k]
		if !ok {
			t.Errorf("%s missing", k)
			continue
		}
		if d := g - v; d > 1e-9 || d < -1e-9 {
			t.Errorf("%s = %v, want %v", k, g, v)
		}
	}
	// The Go and process collectors are there: the soak reads RSS here.
	for _, k := range []string{"go_goroutines{}", "process_resident_memory_bytes{}"} {
		if _, ok := got[k]; !ok {
			t.Errorf("%s missing", k)
		}
	}
}

// Two Metrics in one process do not share anything (netsim runs many).
func TestMetricsIndependent(t *testing.T) {
	a, b := New(testSource(t), nil), New(testSource(t), nil)
	a.ObserveLookup(Lookup{Front: "api", Peers: 1})
	ga, gb := scrape(t, serve(t, a)), scrape(t, serve(t, b))
	if ga["kadtracker_lookups_total{front=api,result=ok}"] != 1 {
		t.Error("a lost its lookup")
	}
	if _, ok := gb["kadtracker_lookups_total{front=api,result=ok}"]; ok {
		t.Error("b saw a's lookup")
	}
}

func TestRecentRing(t *testing.T) {
	m := New(testSource(t), nil)
	for i := range RecentLookups + 5 {
		m.ObserveLookup(Lookup{Front: "api", Hops: i})
	}
	r := m.Recent()
	if len(r) != RecentLookups || r[0].Hops != RecentLookups+4 || r[len(r)-1].Hops != 5 {
		t.Fatalf("Recent: %d lookups, newest hops %d, oldest %d", len(r), r[0].Hops, r[len(r)-1].Hops)
	}
}

func TestStatusPage(t *testing.T) {
	src := testSource(t)
	m := New(src, nil)
	m.ObserveLookup(Lookup{Front: "tracker", Infohash: mustKey(t, "cccccccccccccccccccccccccccccccccccccccc"), Peers: 3, Hops: 2, Queried: 9, Duration: 42 * time.Millisecond})
	base := serve(t, m)
	body, h := get(t, base+"/")
	if ct := h.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Errorf("Content-Type %q", ct)
	}
	for _, want := range []string{
		"12D3KooWTestPeer", "12D3KooWRoutingPeerA", "12D3KooWRoutingPeerB",
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", "cccccccccccccccccccccccccccccccccccccccc",
		`<td class="hops">2</td>`, "42.0 ms", `id="routing-size">17<`, `id="records-stored">9<`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("status page lacks %q", want)
		}
	}
	for _, bad := range []string{"http://", "https://", "<script"} {
		if strings.Contains(body, bad) {
			t.Errorf("status page refers to %q: it must stand alone", bad)
		}
	}
	// A failing source still gets a page, saying so.
	src.err = errors.New("node closed")
	if body, _ := get(t, base+"/"); !strings.Contains(body, "node closed") {
		t.Error("source error not shown")
	}
	// Only / and /metrics are served.
	resp, err := http.Get(base + "/nope")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("/nope: %s", resp.Status)
	}
}

func TestReachabilityMetrics(t *testing.T) {
	src := testSource(t)
	last := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	src.counts.Reachability = Reachability{
		State: "private", DHTMode: "client",
		PortMapping: PortMapping{Enabled: true, Gateway: true},
		Rendezvous:  Rendezvous{State: "searching", DHTPeers: 4, Rounds: 2, Found: 3, Connected: 1, LastSuccess: last},
	}
	src.status.Network = "lab"
	base := serve(t, New(src, nil))
	got := scrape(t, base)
	want := map[string]float64{
		"kadtracker_reachability{state=public}":                  0,
		"kadtracker_reachability{state=private}":                 1,
		"kadtracker_reachability{state=unknown}":                 0,
		"kadtracker_dht_mode{mode=server}":                       0,
		"kadtracker_dht_mode{mode=client}":                       1,
		"kadtracker_public_addrs{}":                              0,
		"kadtracker_port_mapping_enabled{}":                      1,
		"kadtracker_port_mapping_gateway{}":                      1,
		"kadtracker_port_mapping_addrs{}":                        0,
		"kadtracker_rendezvous_state{state=off}":                 0,
		"kadtracker_rendezvous_state{state=searching}":           1,
		"kadtracker_rendezvous_dht_peers{}":                      4,
		"kadtracker_rendezvous_rounds_total{}":                   2,
		"kadtracker_rendezvous_peers_found_total{}":              3,
		"kadtracker_rendezvous_peers_connected_total{}":          1,
		"kadtracker_rendezvous_peers_dropped_total{}":            0,
		"kadtracker_rendezvous_last_success_timestamp_seconds{}": float64(last.Unix()),
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}
	body, _ := get(t, base+"/")
	for _, s := range []string{`id="reachability-state">private<`, `id="network">lab<`, "others cannot dial this node",
		`id="port-mapping">on, gateway found, nothing mapped<`, `id="rendezvous-state">searching<`, `id="rendezvous-peers">3 / 1<`,
		"2026-12-01 10:00:00 UTC", `id="public-addrs"><span class="empty">none known`} {
		if !strings.Contains(body, s) {
			t.Errorf("status page lacks %q", s)
		}
	}

	// Without a DHT node there is no reachability: no series, no section.
	src.counts.Reachability = Reachability{}
	for k := range scrape(t, base) {
		if strings.HasPrefix(k, "kadtracker_reachability") || strings.HasPrefix(k, "kadtracker_rendezvous") || strings.HasPrefix(k, "kadtracker_port_mapping") {
			t.Errorf("%s exported without a DHT node", k)
		}
	}
	if body, _ := get(t, base+"/"); strings.Contains(body, `id="reachability"`) {
		t.Error("reachability section without a DHT node")
	}
}
