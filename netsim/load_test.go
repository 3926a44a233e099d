package netsim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kadtracker/kadtracker/node"
	"github.com/kadtracker/kadtracker/node/daemon"
	"github.com/kadtracker/kadtracker/node/tracker/wire"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// startLoadDaemon runs a whole daemon in this process: a DHT server node,
// the tracker front on HTTP and UDP, and metrics, all on loopback.
func startLoadDaemon(t *testing.T) *daemon.Daemon {
	t.Helper()
	dir, err := os.MkdirTemp("", "ktl") // short: the API socket's path must fit
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	ncfg := node.DefaultConfig()
	ncfg.DataDir = dir
	ncfg.ListenAddrs = []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/0")}
	ncfg.DHTMode = node.ModeServer
	ncfg.Rendezvous, ncfg.NATPortMap = false, false // tests stay on loopback
	ctx, cancel := context.WithCancel(context.Background())
	d, err := daemon.Start(ctx, daemon.Config{
		Node:      &ncfg,
		RPCSocket: filepath.Join(dir, "api.sock"),
		Front:     &daemon.FrontConfig{HTTP: "127.0.0.1:0", UDP: "127.0.0.1:0"},
		Metrics:   &daemon.MetricsConfig{Addr: "127.0.0.1:0"},
	}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		if err := d.Wait(); err != nil {
			t.Errorf("daemon stopped with %v", err)
		}
	})
	return d
}

// TestRunLoad drives all three targets of a daemon in this process and
// checks the report: every target answered, the counts add up, memory was
// sampled from /metrics and written to the CSV, progress lines were
// printed, and the daemon counted the record protocol's load.
func TestRunLoad(t *testing.T) {
	d := startLoadDaemon(t)
	info := d.Info()
	hu, err := url.Parse(info.TrackerHTTP)
	if err != nil {
		t.Fatal(err)
	}
	uu, err := url.Parse(info.TrackerUDP)
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultLoadConfig()
	cfg.HTTPAddr = hu.Host
	cfg.UDPAddr = netip.MustParseAddrPort(uu.Host)
	cfg.Records = peer.AddrInfo{ID: d.Node().ID(), Addrs: d.Node().Addrs()}
	cfg.Rate, cfg.Concurrency, cfg.Swarms = 200, 2, 20
	cfg.Duration = time.Second
	cfg.MetricsURL = info.Metrics + "metrics"
	cfg.Sample, cfg.Progress = 200*time.Millisecond, 200*time.Millisecond
	cfg.RSSCSV = filepath.Join(t.TempDir(), "rss.csv")
	var progress bytes.Buffer
	rep, err := RunLoad(t.Context(), cfg, &progress)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tr := range rep.Targets {
		t.Logf("%s: %d requests, %d ok, %v; latency ms %v", tr.Name, tr.Requests, tr.OK, tr.ErrorKinds, tr.LatencyMS)
		names = append(names, tr.Name)
		if tr.OK == 0 || tr.Requests != tr.OK+tr.Errors {
			t.Errorf("%s: %d requests, %d ok, %d errors", tr.Name, tr.Requests, tr.OK, tr.Errors)
		}
		for _, q := range []string{"p50", "p90", "p99", "p999", "max", "mean"} {
			if _, ok := tr.LatencyMS[q]; !ok {
				t.Errorf("%s: no %s latency", tr.Name, q)
			}
		}
	}
	if !slices.Equal(names, []string{"http", "udp", "records"}) {
		t.Errorf("targets %v, want http, udp, records", names)
	}
	if rep.RSS == nil || len(rep.RSS.Samples) < 2 || rep.RSS.StartMB <= 0 || rep.RSS.Source != cfg.MetricsURL {
		t.Fatalf("memory not sampled from %s: %+v", cfg.MetricsURL, rep.RSS)
	}
	csv, err := os.ReadFile(cfg.RSSCSV)
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Split(strings.TrimSpace(string(csv)), "\n"); lines[0] != "t_s,rss_bytes,requests" || len(lines) != 1+len(rep.RSS.Samples) {
		t.Errorf("rss.csv has %d lines for %d samples:\n%s", len(lines), len(rep.RSS.Samples), csv)
	}
	if !strings.Contains(progress.String(), "  http ") || !strings.Contains(progress.String(), "  records ") {
		t.Errorf("progress lines: %q", progress.String())
	}
	if st := d.Node().Stats(); st.PutsReceived == 0 || st.GetsReceived == 0 {
		t.Errorf("the daemon received %d PUTs and %d GETs", st.PutsReceived, st.GetsReceived)
	}
}

// TestLoadReportJSON pins the JSON field names `kadtracker load --json`
// prints: scripts and docs/soak read them.
func TestLoadReportJSON(t *testing.T) {
	rep := LoadReport{
		Targets: []TargetReport{{Name: "udp", ErrorKinds: map[string]int64{"timeout": 1}, LatencyMS: map[string]float64{}}},
		RSS:     &RSSReport{Samples: []RSSSample{{}}},
	}
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	keys := func(m map[string]any) []string {
		var ks []string
		for k := range m {
			ks = append(ks, k)
		}
		slices.Sort(ks)
		return ks
	}
	for _, c := range []struct {
		got  map[string]any
		want []string
	}{
		{got, []string{"concurrency", "duration_s", "rss", "swarms", "target_rate", "targets"}},
		{got["targets"].([]any)[0].(map[string]any), []string{"error_kinds", "errors", "latency_ms", "name", "ok", "ok_per_s", "requests"}},
		{got["rss"].(map[string]any), []string{"end_mb", "failed_samples", "max_mb", "min_mb", "samples", "source", "start_mb"}},
		{got["rss"].(map[string]any)["samples"].([]any)[0].(map[string]any), []string{"requests", "rss_bytes", "t_s"}},
	} {
		if k := keys(c.got); !slices.Equal(k, c.want) {
			t.Errorf("fields %v, want %v", k, c.want)
		}
	}
}

func TestLoadConfigValidate(t *testing.T) {
	ok := DefaultLoadConfig()
	ok.HTTPAddr = "127.0.0.1:6969"
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	for name, tweak := range map[string]func(*LoadConfig){
		"no target":        func(c *LoadConfig) { c.HTTPAddr = "" },
		"negative rate":    func(c *LoadConfig) { c.Rate = -1 },
		"no duration":      func(c *LoadConfig) { c.Duration = 0 },
		"no workers":       func(c *LoadConfig) { c.Concurrency = 0 },
		"no swarms":        func(c *LoadConfig) { c.Swarms = 0 },
		"no timeout":       func(c *LoadConfig) { c.Timeout = 0 },
		"no sample period": func(c *LoadConfig) { c.Sample = 0 },
		"pid and metrics":  func(c *LoadConfig) { c.PID, c.MetricsURL = 1, "http://127.0.0.1:1/metrics" },
	} {
		c := ok
		tweak(&c)
		if c.Validate() == nil {
			t.Errorf("%s: valid", name)
		}
		if _, err := RunLoad(t.Context(), c, nil); err == nil {
			t.Errorf("%s: RunLoad ran", name)
		}
	}
}

func TestLatencyHist(t *testing.T) {
	var h latencyHist
	if h.quantile(.5) != 0 || h.mean() != 0 {
		t.Fatal("an empty histogram has latencies")
	}
	// 1..100 ms: each quantile lands in a bucket at most 5% above it.
	for i := 1; i <= 100; i++ {
		h.add(time.Duration(i) * time.Millisecond)
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{.5, 50 * time.Millisecond}, {.9, 90 * time.Millisecond}, {.99, 99 * time.Millisecond}, {1, 100 * time.Millisecond}} {
		if got := h.quantile(c.q); got < c.want || float64(got) > float64(c.want)*histBase {
			t.Errorf("quantile %v = %v, want %v..%v", c.q, got, c.want, time.Duration(float64(c.want)*histBase))
		}
	}
	if h.max != 100*time.Millisecond || h.mean() != 50500*time.Microsecond {
		t.Errorf("max %v, mean %v", h.max, h.mean())
	}
	// Below 1 µs and beyond the last bucket: counted, not lost.
	h.add(time.Nanosecond)
	h.add(time.Hour)
	if h.n != 102 || h.counts[0] != 1 || h.counts[len(h.counts)-1] != 1 || h.max != time.Hour {
		t.Errorf("extremes: n %d, first %d, last %d, max %v", h.n, h.counts[0], h.counts[len(h.counts)-1], h.max)
	}
}

func TestErrorKind(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{&wire.FailureError{Reason: "not allowed"}, "tracker failure: not allowed"},
		{fmt.Errorf("get: %w", context.DeadlineExceeded), "timeout"},
		{fmt.Errorf("put: %w", fmt.Errorf("%w: %s: %s", node.ErrRemote, "rate-limited", "slow down")), "refused: rate-limited"},
		{errors.New(strings.Repeat("x", 100)), strings.Repeat("x", 60)},
	} {
		if got := errorKind(c.err); got != c.want {
			t.Errorf("errorKind(%v) = %q, want %q", c.err, got, c.want)
		}
	}
}

// TestErrorKindsBounded: a daemon that fails each request with a reason of
// its own gets maxErrorKinds kinds and "other", not one entry per request.
// The control lifts the bound and shows the report growing with the
// reasons.
func TestErrorKindsBounded(t *testing.T) {
	const reasons = 1000
	fail := func(s *loadStats) {
		for i := range reasons {
			s.record(0, &wire.FailureError{Reason: fmt.Sprintf("unique %d", i)})
		}
	}
	s := newLoadStats()
	fail(s)
	r := s.report("udp", time.Second)
	if len(r.ErrorKinds) != maxErrorKinds+1 || r.ErrorKinds["other"] != reasons-maxErrorKinds || r.Errors != reasons {
		t.Errorf("bounded: %d kinds, %d other, %d errors", len(r.ErrorKinds), r.ErrorKinds["other"], r.Errors)
	}
	t.Run("control", func(t *testing.T) {
		s := newLoadStats()
		s.maxKinds = reasons + 1
		fail(s)
		if r := s.report("udp", time.Second); len(r.ErrorKinds) != reasons {
			t.Errorf("unbounded: %d kinds, want %d", len(r.ErrorKinds), reasons)
		}
	})
}

func TestMetricsRSS(t *testing.T) {
	page := "# HELP x\ngo_goroutines 12\nprocess_resident_memory_bytes 5.0331648e+07\n"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/metrics" {
			io.WriteString(w, page)
		}
	}))
	defer srv.Close()
	if b, err := metricsRSS(t.Context(), srv.URL+"/metrics"); err != nil || b != 50331648 {
		t.Errorf("metricsRSS = %d, %v; want 50331648", b, err)
	}
	if _, err := metricsRSS(t.Context(), srv.URL+"/other"); err == nil {
		t.Error("a page without the metric gave a size")
	}
}

func TestProcStatusRSS(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("no /proc")
	}
	if b, err := procStatusRSS(os.Getpid()); err != nil || b <= 0 {
		t.Errorf("own RSS = %d, %v", b, err)
	}
	if _, err := procStatusRSS(-1); err == nil {
		t.Error("pid -1 has an RSS")
	}
}

func TestRSSReport(t *testing.T) {
	samples := []RSSSample{{T: 0, Bytes: 3 << 20}, {T: 1, Bytes: 1 << 20}, {T: 2, Bytes: 5 << 20}, {T: 3, Bytes: 4 << 20}}
	r := rssReport("src", samples, 2)
	if r.StartMB != 3 || r.MinMB != 1 || r.MaxMB != 5 || r.EndMB != 4 || r.Failures != 2 || r.Source != "src" {
		t.Errorf("report %+v", r)
	}
	if r := rssReport("src", nil, 1); r.Failures != 1 || r.MaxMB != 0 {
		t.Errorf("no samples: %+v", r)
	}
	path := filepath.Join(t.TempDir(), "rss.csv")
	if err := writeRSSCSV(path, samples[:2]); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	if want := "t_s,rss_bytes,requests\n0.000,3145728,0\n1.000,1048576,0\n"; string(got) != want {
		t.Errorf("csv %q, want %q", got, want)
	}
}

// TestPick: the same worker and request pick the same swarm in every run,
// and the picks cover the swarms.
func TestPick(t *testing.T) {
	const n = 50
	seen := make(map[int]bool)
	for w := range 4 {
		for i := range 200 {
			p := pick(w, i, n)
			if p < 0 || p >= n || p != pick(w, i, n) {
				t.Fatalf("pick(%d, %d) = %d", w, i, p)
			}
			seen[p] = true
		}
	}
	if len(seen) != n {
		t.Errorf("800 picks covered %d of %d swarms", len(seen), n)
	}
}
