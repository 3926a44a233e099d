package main

// End-to-end tests of the metrics face and the load tool: real daemons on
// loopback, /metrics scraped and parsed, the status page rendered by
// headless Chromium, and a short soak with `kadtracker load`.

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kadtracker/kadtracker/netsim"
	"github.com/kadtracker/kadtracker/node/tracker/wire"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

var metricsLogRe = regexp.MustCompile(`msg=metrics status=(http://127\.0\.0\.1:\d+)/`)

// metricsBase is the daemon's metrics URL, from its log.
func (d *daemonProc) metricsBase(t *testing.T) string {
	t.Helper()
	m := metricsLogRe.FindStringSubmatch(d.Logs())
	if m == nil {
		t.Fatalf("the daemon did not log its metrics address:\n%s", d.Logs())
	}
	return m[1]
}

func httpGet(t *testing.T, u string) string {
	t.Helper()
	c := &http.Client{Timeout: 30 * time.Second}
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %v\n%s", u, resp.Status, err, b)
	}
	return string(b)
}

// scrapeMetrics fetches and parses /metrics into "name{l=v,...}" -> value
// (histograms: their sample count under name_count).
func scrapeMetrics(t *testing.T, base string) map[string]float64 {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(httpGet(t, base+"/metrics")))
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
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
				out[strings.Replace(key, "{", "_count{", 1)] = float64(h.GetSampleCount())
				continue
			}
			out[key] = m.GetCounter().GetValue() + m.GetGauge().GetValue() + m.GetUntyped().GetValue()
		}
	}
	return out
}

// metricsTestAnnounce announces a client on port for ih to the daemon's HTTP
// tracker and returns the parsed answer.
func metricsTestAnnounce(t *testing.T, announceURL string, ih [20]byte, port uint16) wire.AnnounceResponse {
	t.Helper()
	q := wire.AppendAnnounceQuery(nil, &wire.AnnounceRequest{InfoHash: ih, PeerID: [20]byte([]byte("-TE0001-metricstest0")), Port: port, Left: 100, Compact: true, NumWant: 50})
	resp, err := wire.ParseAnnounceResponse([]byte(httpGet(t, announceURL+"?"+string(q))))
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// findChromium returns the Chromium binary; without one the test is
// skipped, except in CI, which installs it.
func findChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium is not installed (.ci/run installs it)")
	}
	t.Skip("chromium is not installed")
	return ""
}

// chromiumDump loads u in headless Chromium and returns the DOM it built,
// and a screenshot in dir.
func chromiumDump(t *testing.T, bin, u, dir string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	args := []string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-default-apps", "--disable-extensions", "--no-first-run", "--no-default-browser-check",
		"--user-data-dir=" + filepath.Join(dir, "profile"),
	}
	cmd := exec.CommandContext(ctx, bin, append(args, "--dump-dom", u)...)
	cmd.Env = append(os.Environ(), "HOME="+dir)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium --dump-dom: %v\n%s", err, stderr.String())
	}
	shot := filepath.Join(dir, "status.png")
	cmd = exec.CommandContext(ctx, bin, append(args, "--window-size=1280,1600", "--screenshot="+shot, u)...)
	cmd.Env = append(os.Environ(), "HOME="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("chromium --screenshot: %v\n%s", err, out)
	}
	if fi, err := os.Stat(shot); err != nil || fi.Size() < 2000 {
		t.Fatalf("screenshot %s: %v (%v bytes)", shot, err, fi)
	}
	return string(out)
}

// TestMetricsAndStatusPage runs two daemons with --metrics, makes them
// announce, store each other's records and look up, then scrapes /metrics
// and renders the status page in headless Chromium.
func TestMetricsAndStatusPage(t *testing.T) {
	chromium := findChromium(t)
	a := startDaemon(t, "--dht-mode", "server", "--metrics", "127.0.0.1:0")
	b := startDaemon(t, "--dht-mode", "server", "--metrics", "127.0.0.1:0", "--bootstrap", a.Addr())
	waitRouting(t, a, 1)
	base := a.metricsBase(t)

	const ihA, ihB = "0123456789abcdef0123456789abcdef01234567", "fedcba9876543210fedcba9876543210fedcba98"
	if out, errOut, code := a.CLI(t, "announce", ihA, "--port", "6881", "--seed"); code != 0 {
		t.Fatalf("announce on a: %s %s", out, errOut)
	}
	if out, errOut, code := b.CLI(t, "announce", ihB, "--port", "51413"); code != 0 {
		t.Fatalf("announce on b: %s %s", out, errOut)
	}
	if out, errOut, code := a.CLI(t, "peers", ihB, "--json"); code != 0 || !strings.Contains(out, "51413") {
		t.Fatalf("peers on a: %s %s", out, errOut)
	}
	// A BitTorrent client announces to a's HTTP tracker: the front's
	// lookup finds b's client.
	var ih [20]byte
	copy(ih[:], mustHex(t, ihB))
	resp := metricsTestAnnounce(t, a.TrackerHTTP, ih, 7000)
	for i := 0; len(resp.Peers) == 0 && i < 20; i++ {
		time.Sleep(250 * time.Millisecond)
		resp = metricsTestAnnounce(t, a.TrackerHTTP, ih, 7000)
	}
	if len(resp.Peers) == 0 {
		t.Fatal("the HTTP tracker found no peer for b's swarm")
	}

	m := scrapeMetrics(t, base)
	for _, c := range []struct {
		name string
		min  float64
	}{
		{"kadtracker_routing_table_size{}", 1},
		{"kadtracker_connections{}", 1},
		{"kadtracker_records_stored{}", 2}, // its own and b's
		{"kadtracker_swarms_stored{}", 2},
		{"kadtracker_swarms_tracked{}", 2}, // the CLI's and the tracker client's
		{"kadtracker_puts_received_total{}", 1},
		{"kadtracker_puts_accepted_total{}", 1},
		{"kadtracker_announces_total{front=api,result=ok}", 1},
		{"kadtracker_announces_total{front=http,result=ok}", 1},
		{"kadtracker_lookups_total{front=api,result=ok}", 1},
		{"kadtracker_lookup_duration_seconds_count{front=api}", 1},
		{"kadtracker_lookup_hops_count{front=api}", 1},
		{"process_resident_memory_bytes{}", 1 << 20},
	} {
		if v, ok := m[c.name]; !ok || v < c.min {
			t.Errorf("%s = %v (present %v), want at least %v", c.name, v, ok, c.min)
		}
	}
	if v := m["kadtracker_lookups_total{front=tracker,result=ok}"] + m["kadtracker_lookups_total{front=tracker,result=empty}"]; v < 1 {
		t.Errorf("no tracker lookups counted")
	}
	for _, k := range []string{"kadtracker_puts_rejected_total{reason=ip_full}", "kadtracker_rate_limited_total{limit=peer_rate}", "kadtracker_refused_total{reason=routing_ip}"} {
		if _, ok := m[k]; !ok {
			t.Errorf("%s missing", k)
		}
	}

	// The status page, as a browser shows it.
	dir := t.TempDir()
	dom := chromiumDump(t, chromium, base+"/", dir)
	for _, want := range []struct{ what, text string }{
		{"a's peer ID", a.PeerID},
		{"b in the routing table", b.PeerID},
		{"the swarm a tracks", ihA},
		{"b's swarm a stores", ihB},
		{"a's listen address", a.Addr()},
	} {
		if !strings.Contains(dom, want.text) {
			t.Errorf("the status page does not show %s (%s)", want.what, want.text)
		}
	}
	// The lookup of b's swarm, with its hops and latency.
	row := regexp.MustCompile(`<tr class="lookup"><td>[0-9:]+</td><td>api</td><td class="mono infohash">` + ihB +
		`</td><td class="result">ok</td><td class="peers">1</td><td class="hops">(\d+)</td><td>\d+</td><td class="latency">([0-9.]+) ms</td></tr>`)
	if !row.MatchString(dom) {
		t.Errorf("the status page shows no lookup row for %s with hops and latency:\n%s", ihB, dom)
	}
	if !regexp.MustCompile(`id="routing-size">1<`).MatchString(dom) {
		t.Error("the status page does not give the routing table's size")
	}
	t.Logf("status page rendered by %s; screenshot in %s", chromium, dir)
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestLoadShort is CI's short soak: `kadtracker load` drives a daemon's HTTP
// and UDP fronts and its record protocol for a few seconds, sampling the
// daemon's memory from its /metrics. The numbers are logged, not asserted:
// only that the load was answered and memory stayed bounded.
func TestLoadShort(t *testing.T) {
	if testing.Short() {
		t.Skip("a timed load run")
	}
	d := startDaemon(t, "--dht-mode", "server", "--metrics", "127.0.0.1:0", "--log-level", "info")
	base := d.metricsBase(t)
	httpAddr := strings.TrimSuffix(strings.TrimPrefix(d.TrackerHTTP, "http://"), "/announce")
	u, err := url.Parse(d.TrackerUDP)
	if err != nil {
		t.Fatal(err)
	}
	duration := "15s"
	if raceEnabled {
		duration = "10s"
	}
	bin := buildBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "load", "--http", httpAddr, "--udp", u.Host, "--records", d.Addr(),
		"--rate", "300", "--duration", duration, "--concurrency", "8", "--swarms", "500",
		"--metrics-url", base+"/metrics", "--progress", "0", "--json")
	cmd.Env = cleanEnv()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kadtracker load: %v\n%s", err, stderr.String())
	}
	var rep netsim.LoadReport
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("load --json printed %q: %v", out, err)
	}
	for _, tr := range rep.Targets {
		t.Logf("%-7s %6d requests, %6d ok (%.0f/s), %d errors %v; latency ms %v", tr.Name, tr.Requests, tr.OK, tr.Throughput, tr.Errors, tr.ErrorKinds, tr.LatencyMS)
		if tr.OK == 0 || float64(tr.Errors) > 0.01*float64(tr.Requests)+1 {
			t.Errorf("%s: %d of %d requests failed: %v", tr.Name, tr.Errors, tr.Requests, tr.ErrorKinds)
		}
	}
	if len(rep.Targets) != 3 {
		t.Fatalf("%d targets in the report, want http, udp and records", len(rep.Targets))
	}
	if rep.RSS == nil || len(rep.RSS.Samples) < 5 {
		t.Fatalf("memory not sampled: %+v", rep.RSS)
	}
	t.Logf("RSS: start %.1f MB, max %.1f MB, end %.1f MB over %d samples", rep.RSS.StartMB, rep.RSS.MaxMB, rep.RSS.EndMB, len(rep.RSS.Samples))
	if limit := 1024.0; rep.RSS.MaxMB > limit {
		t.Errorf("the daemon grew to %.0f MB under a short load, limit %.0f MB", rep.RSS.MaxMB, limit)
	}
	// The daemon answers as before, and counted what it served.
	m := scrapeMetrics(t, base)
	if m["kadtracker_announces_total{front=udp,result=ok}"] == 0 || m["kadtracker_puts_accepted_total{}"] == 0 || m["kadtracker_gets_received_total{}"] == 0 {
		t.Errorf("the load is not in the metrics: udp %v puts %v gets %v",
			m["kadtracker_announces_total{front=udp,result=ok}"], m["kadtracker_puts_accepted_total{}"], m["kadtracker_gets_received_total{}"])
	}
}
