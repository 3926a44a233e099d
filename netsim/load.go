package netsim

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kadtracker/kadtracker/node"
	"github.com/kadtracker/kadtracker/node/tracker/wire"
	"github.com/kadtracker/kadtracker/records"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"golang.org/x/time/rate"
)

// LoadConfig parameterises RunLoad, the engine of `kadtracker load`: the
// fronts of one daemon to drive (at least one), the pace, and where to read
// the daemon's memory from. Start from DefaultLoadConfig.
type LoadConfig struct {
	// HTTPAddr is the HTTP tracker's host:port; empty: not driven.
	HTTPAddr string
	// UDPAddr is the UDP tracker (BEP 15); the zero value: not driven.
	UDPAddr netip.AddrPort
	// Records is the node whose record protocol gets PUTs and GETs in
	// turn; a zero ID: not driven.
	Records peer.AddrInfo
	// Rate is requests a second to each target; 0: as fast as the workers go.
	Rate        float64
	Duration    time.Duration
	Concurrency int // requests in flight per target at most
	Swarms      int // distinct infohashes announced and looked up
	Timeout     time.Duration
	// PID, if set, is the process whose /proc/PID/status VmRSS is sampled.
	PID int
	// MetricsURL, if set, is a /metrics page whose
	// process_resident_memory_bytes is sampled. Not with PID.
	MetricsURL string
	Sample     time.Duration // memory sampling period
	// Progress is how often a progress line goes to RunLoad's progress
	// writer; 0 or less: never.
	Progress time.Duration
	// RSSCSV, if set, is the file every memory sample is written to.
	RSSCSV string
	Seed   uint64 // infohashes and ports
}

// DefaultLoadConfig is `kadtracker load`'s defaults, with no target.
func DefaultLoadConfig() LoadConfig {
	return LoadConfig{
		Rate:        1000,
		Duration:    10 * time.Second,
		Concurrency: 32,
		Swarms:      1000,
		Timeout:     5 * time.Second,
		Sample:      time.Second,
		Progress:    10 * time.Second,
		Seed:        1,
	}
}

// Validate reports a config RunLoad cannot run.
func (c LoadConfig) Validate() error {
	switch {
	case c.HTTPAddr == "" && !c.UDPAddr.IsValid() && c.Records.ID == "":
		return errors.New("netsim: load: no target (HTTP, UDP or records)")
	case c.Rate < 0 || c.Duration <= 0 || c.Concurrency < 1 || c.Swarms < 1 || c.Timeout <= 0 || c.Sample <= 0:
		return errors.New("netsim: load: Rate must be >= 0; Duration, Concurrency, Swarms, Timeout and Sample positive")
	case c.PID != 0 && c.MetricsURL != "":
		return errors.New("netsim: load: PID or MetricsURL, not both")
	}
	return nil
}

// LoadReport is the outcome of RunLoad; `kadtracker load --json` prints it.
type LoadReport struct {
	Duration    float64        `json:"duration_s"`
	Rate        float64        `json:"target_rate"`
	Concurrency int            `json:"concurrency"`
	Swarms      int            `json:"swarms"`
	Targets     []TargetReport `json:"targets"`
	RSS         *RSSReport     `json:"rss,omitempty"`
}

// TargetReport is one target's throughput, errors and latency.
type TargetReport struct {
	Name       string             `json:"name"`
	Requests   int64              `json:"requests"`
	OK         int64              `json:"ok"`
	Errors     int64              `json:"errors"`
	ErrorKinds map[string]int64   `json:"error_kinds,omitempty"`
	Throughput float64            `json:"ok_per_s"`
	LatencyMS  map[string]float64 `json:"latency_ms"`
}

// RSSReport is the daemon's resident memory over the run.
type RSSReport struct {
	Source   string      `json:"source"`
	StartMB  float64     `json:"start_mb"`
	MinMB    float64     `json:"min_mb"`
	MaxMB    float64     `json:"max_mb"`
	EndMB    float64     `json:"end_mb"`
	Samples  []RSSSample `json:"samples"`
	Failures int         `json:"failed_samples"`
}

// RSSSample is one memory sample.
type RSSSample struct {
	T        float64 `json:"t_s"`
	Bytes    int64   `json:"rss_bytes"`
	Requests int64   `json:"requests"` // all targets, so far
}

// MB is the sample in MiB.
func (s RSSSample) MB() float64 { return mb(s.Bytes) }

// loadTarget is one front under load. do makes request i of worker w.
type loadTarget struct {
	name  string
	do    func(ctx context.Context, w, i int) error
	close func()
	stats *loadStats
}

// RunLoad drives the configured targets for cfg.Duration, each with
// cfg.Concurrency workers at cfg.Rate, samples the daemon's memory, and
// reports. Progress lines go to progress (nil: none) every cfg.Progress.
// Requests the end of the run cuts off are not counted.
func RunLoad(ctx context.Context, cfg LoadConfig, progress io.Writer) (*LoadReport, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x6c6f6164))
	hashes := make([][20]byte, cfg.Swarms)
	for i := range hashes {
		for j := range hashes[i] {
			hashes[i][j] = byte(rng.Uint32())
		}
	}
	setupCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var targets []*loadTarget
	defer func() {
		for _, t := range targets {
			if t.close != nil {
				t.close()
			}
		}
	}()
	if cfg.HTTPAddr != "" {
		targets = append(targets, httpTarget(cfg, hashes))
	}
	if cfg.UDPAddr.IsValid() {
		t, err := udpTarget(cfg, hashes)
		if err != nil {
			return nil, err
		}
		targets = append(targets, t)
	}
	if cfg.Records.ID != "" {
		t, err := recordsTarget(setupCtx, cfg, hashes)
		if err != nil {
			return nil, err
		}
		targets = append(targets, t)
	}
	var sampler *rssSampler
	switch {
	case cfg.PID != 0:
		sampler = &rssSampler{source: fmt.Sprintf("/proc/%d/status", cfg.PID), read: func(context.Context) (int64, error) { return procStatusRSS(cfg.PID) }}
	case cfg.MetricsURL != "":
		sampler = &rssSampler{source: cfg.MetricsURL, read: func(ctx context.Context) (int64, error) { return metricsRSS(ctx, cfg.MetricsURL) }}
	}

	runCtx, stop := context.WithTimeout(ctx, cfg.Duration)
	defer stop()
	start := time.Now()
	var wg sync.WaitGroup
	for _, t := range targets {
		t.stats = newLoadStats()
		var lim *rate.Limiter
		if cfg.Rate > 0 {
			lim = rate.NewLimiter(rate.Limit(cfg.Rate), cfg.Concurrency)
		}
		var next atomic.Int64
		for w := range cfg.Concurrency {
			wg.Go(func() {
				for {
					if lim != nil && lim.Wait(runCtx) != nil {
						return
					}
					if runCtx.Err() != nil {
						return
					}
					i := int(next.Add(1) - 1)
					rctx, cancel := context.WithTimeout(runCtx, cfg.Timeout)
					t0 := time.Now()
					err := t.do(rctx, w, i)
					d := time.Since(t0)
					cancel()
					if err != nil && runCtx.Err() != nil {
						return // cut off by the end of the run: not counted
					}
					t.stats.record(d, err)
				}
			})
		}
	}
	total := func() int64 {
		var n int64
		for _, t := range targets {
			n += t.stats.requests.Load()
		}
		return n
	}
	var samples []RSSSample
	failures := 0
	wg.Go(func() {
		tick := time.NewTicker(cfg.Sample)
		defer tick.Stop()
		var prog <-chan time.Time
		if cfg.Progress > 0 && progress != nil {
			pt := time.NewTicker(cfg.Progress)
			defer pt.Stop()
			prog = pt.C
		}
		last := make([]int64, len(targets))
		lastT := start
		takeSample := func() {
			if sampler == nil {
				return
			}
			sctx, cancel := context.WithTimeout(ctx, time.Second)
			b, err := sampler.read(sctx)
			cancel()
			if err != nil {
				failures++
				return
			}
			samples = append(samples, RSSSample{T: time.Since(start).Seconds(), Bytes: b, Requests: total()})
		}
		takeSample()
		for {
			select {
			case <-runCtx.Done():
				takeSample()
				return
			case <-tick.C:
				takeSample()
			case now := <-prog:
				var b strings.Builder
				fmt.Fprintf(&b, "t=%.0fs", now.Sub(start).Seconds())
				for i, t := range targets {
					ok := t.stats.ok.Load()
					fmt.Fprintf(&b, "  %s %.0f/s (%d errors)", t.name, float64(ok-last[i])/now.Sub(lastT).Seconds(), t.stats.requests.Load()-ok)
					last[i] = ok
				}
				if len(samples) > 0 {
					fmt.Fprintf(&b, "  rss %.1f MB", samples[len(samples)-1].MB())
				}
				lastT = now
				fmt.Fprintln(progress, b.String())
			}
		}
	})
	wg.Wait()
	elapsed := time.Since(start)

	rep := &LoadReport{Duration: elapsed.Seconds(), Rate: cfg.Rate, Concurrency: cfg.Concurrency, Swarms: cfg.Swarms}
	for _, t := range targets {
		rep.Targets = append(rep.Targets, t.stats.report(t.name, elapsed))
	}
	if sampler != nil {
		rep.RSS = rssReport(sampler.source, samples, failures)
	}
	if cfg.RSSCSV != "" {
		if err := writeRSSCSV(cfg.RSSCSV, samples); err != nil {
			return nil, err
		}
	}
	return rep, nil
}

// httpTarget announces over HTTP: worker w is a client on port 20000+w,
// a leecher or a seed by turns, each request for a random swarm.
func httpTarget(cfg LoadConfig, hashes [][20]byte) *loadTarget {
	tr := &http.Transport{
		MaxIdleConns:        cfg.Concurrency,
		MaxIdleConnsPerHost: cfg.Concurrency,
		DisableCompression:  true,
		IdleConnTimeout:     time.Minute,
	}
	client := &http.Client{Transport: tr}
	base := "http://" + cfg.HTTPAddr + "/announce?"
	return &loadTarget{
		name:  "http",
		close: tr.CloseIdleConnections,
		do: func(ctx context.Context, w, i int) error {
			r := wire.AnnounceRequest{
				InfoHash: hashes[pick(w, i, len(hashes))],
				PeerID:   loadPeerID(w),
				Port:     uint16(20000 + w),
				Left:     int64(w%2) * 1000,
				Compact:  true,
				NumWant:  50,
			}
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+string(wire.AppendAnnounceQuery(nil, &r)), nil)
			if err != nil {
				return err
			}
			resp, err := client.Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			if err != nil {
				return err
			}
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("HTTP %d", resp.StatusCode)
			}
			_, err = wire.ParseAnnounceResponse(b)
			return err
		},
	}
}

// udpTarget announces over UDP (BEP 15): worker w has a socket of its own
// and a connection ID it renews every 30 s or when told it expired.
func udpTarget(cfg LoadConfig, hashes [][20]byte) (*loadTarget, error) {
	to := cfg.UDPAddr
	type worker struct {
		conn   *net.UDPConn
		id     uint64
		issued time.Time
		buf    []byte
		tx     uint32
	}
	workers := make([]*worker, cfg.Concurrency)
	for i := range workers {
		c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(to))
		if err != nil {
			for _, w := range workers[:i] {
				w.conn.Close()
			}
			return nil, fmt.Errorf("udp target: %w", err)
		}
		workers[i] = &worker{conn: c, buf: make([]byte, 2048), tx: uint32(i) << 24}
	}
	// roundTrip sends pkt and reads the answer with transaction ID tx.
	roundTrip := func(ctx context.Context, wk *worker, pkt []byte, tx uint32) ([]byte, error) {
		if _, err := wk.conn.Write(pkt); err != nil {
			return nil, err
		}
		deadline, _ := ctx.Deadline()
		wk.conn.SetReadDeadline(deadline)
		for {
			n, err := wk.conn.Read(wk.buf)
			if err != nil {
				return nil, err
			}
			if _, got, ok := wire.PeekUDPResponse(wk.buf[:n]); ok && got == tx {
				return wk.buf[:n], nil
			}
			// A late answer to an earlier request: keep reading.
		}
	}
	return &loadTarget{
		name: "udp",
		close: func() {
			for _, w := range workers {
				w.conn.Close()
			}
		},
		do: func(ctx context.Context, w, i int) error {
			wk := workers[w]
			if wk.id == 0 || time.Since(wk.issued) > 30*time.Second {
				wk.tx++
				b, err := roundTrip(ctx, wk, wire.AppendConnectRequest(nil, wire.ConnectRequest{TransactionID: wk.tx}), wk.tx)
				if err != nil {
					return fmt.Errorf("connect: %w", err)
				}
				cr, err := wire.ParseConnectResponse(b)
				if err != nil {
					return fmt.Errorf("connect: %w", err)
				}
				wk.id, wk.issued = cr.ConnectionID, time.Now()
			}
			wk.tx++
			r := wire.UDPAnnounceRequest{
				ConnectionID: wk.id, TransactionID: wk.tx, InfoHash: hashes[pick(w, i, len(hashes))],
				PeerID: loadPeerID(w), Left: int64(w%2) * 1000, NumWant: 50, Port: uint16(30000 + w),
			}
			b, err := roundTrip(ctx, wk, wire.AppendUDPAnnounceRequest(nil, &r), wk.tx)
			if err != nil {
				return err
			}
			if e, perr := wire.ParseUDPError(b); perr == nil {
				if strings.Contains(e.Message, "connection ID") {
					wk.id = 0
				}
				return &wire.FailureError{Reason: e.Message}
			}
			_, err = wire.ParseUDPAnnounceResponse(b, to.Addr().Is6())
			return err
		},
	}, nil
}

// recordsTarget runs a DHT-client node of its own and sends the node at
// cfg.Records PUTs (even requests) and GETs (odd ones) for random swarms.
func recordsTarget(ctx context.Context, cfg LoadConfig, hashes [][20]byte) (*loadTarget, error) {
	target := cfg.Records
	keys := make([]records.Key, len(hashes))
	for i, h := range hashes {
		var err error
		if keys[i], err = records.KeyFromInfohash(h[:]); err != nil {
			return nil, err
		}
	}
	ncfg := node.DefaultConfig()
	ncfg.ListenAddrs = []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/0")}
	ncfg.DHTMode = node.ModeClient
	ncfg.Rendezvous, ncfg.NATPortMap = false, false // a load client talks to its target only
	ncfg.BootstrapPeers = []peer.AddrInfo{target}
	ncfg.RequestTimeout = cfg.Timeout
	ncfg.Protect.RequestStartTimeout = min(ncfg.Protect.RequestStartTimeout, cfg.Timeout)
	nd, err := node.New(ctx, ncfg)
	if err != nil {
		return nil, fmt.Errorf("load client node: %w", err)
	}
	if err := nd.Host().Connect(ctx, target); err != nil {
		nd.Close()
		return nil, fmt.Errorf("records target: %w", err)
	}
	return &loadTarget{
		name:  "records",
		close: func() { _ = nd.Close() },
		do: func(ctx context.Context, w, i int) error {
			k := keys[pick(w, i, len(keys))]
			if i%2 == 0 {
				return nd.PutTo(ctx, target.ID, k, uint16(40000+w), w%2 == 0)
			}
			_, err := nd.GetFrom(ctx, target.ID, k, 50)
			return err
		},
	}, nil
}

// pick is request i's swarm: spread over all of them, the same for every
// run with the same arguments.
func pick(w, i, n int) int {
	x := uint64(i)*0x9e3779b97f4a7c15 + uint64(w)*0xbf58476d1ce4e5b9
	x ^= x >> 31
	return int(x % uint64(n))
}

func loadPeerID(w int) [20]byte {
	var id [20]byte
	copy(id[:], fmt.Sprintf("-KL0001-%012d", w))
	return id
}

// loadStats counts one target's requests and keeps a latency histogram.
type loadStats struct {
	requests, ok atomic.Int64
	mu           sync.Mutex
	hist         latencyHist
	kinds        map[string]int64
	maxKinds     int
}

func newLoadStats() *loadStats {
	return &loadStats{kinds: make(map[string]int64), maxKinds: maxErrorKinds}
}

// maxErrorKinds bounds the distinct error texts kept: a daemon under test
// chooses its failure reasons, and a unique one per answer must not grow
// the report without end.
const maxErrorKinds = 16

func (s *loadStats) record(d time.Duration, err error) {
	s.requests.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		s.ok.Add(1)
		s.hist.add(d)
		return
	}
	k := errorKind(err)
	if _, ok := s.kinds[k]; !ok && len(s.kinds) >= s.maxKinds {
		k = "other"
	}
	s.kinds[k]++
}

// errorKind names an error without the details that make every one unique.
func errorKind(err error) string {
	var fe *wire.FailureError
	var ne net.Error
	switch {
	case errors.As(err, &fe):
		return "tracker failure: " + fe.Reason
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, node.ErrRemote):
		s := err.Error()
		if i := strings.Index(s, node.ErrRemote.Error()+": "); i >= 0 {
			s = s[i+len(node.ErrRemote.Error())+2:]
		}
		if i := strings.Index(s, ":"); i >= 0 {
			s = s[:i]
		}
		return "refused: " + s
	}
	s := err.Error()
	if len(s) > 60 {
		s = s[:60]
	}
	return s
}

func (s *loadStats) report(name string, elapsed time.Duration) TargetReport {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := TargetReport{
		Name: name, Requests: s.requests.Load(), OK: s.ok.Load(),
		Throughput: float64(s.ok.Load()) / elapsed.Seconds(),
		LatencyMS:  map[string]float64{},
	}
	r.Errors = r.Requests - r.OK
	if len(s.kinds) > 0 {
		r.ErrorKinds = make(map[string]int64, len(s.kinds))
		for k, n := range s.kinds {
			r.ErrorKinds[k] = n
		}
	}
	for _, q := range []struct {
		name string
		q    float64
	}{{"p50", .5}, {"p90", .9}, {"p99", .99}, {"p999", .999}} {
		r.LatencyMS[q.name] = ms64(s.hist.quantile(q.q))
	}
	r.LatencyMS["max"] = ms64(s.hist.max)
	r.LatencyMS["mean"] = ms64(s.hist.mean())
	return r
}

func ms64(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }

// latencyHist is a log-bucketed histogram (5% wide buckets from 1 µs),
// so a long run keeps a few kilobytes, not every sample.
type latencyHist struct {
	counts [400]int64
	n      int64
	sum    time.Duration
	max    time.Duration
}

const histBase = 1.05

func (h *latencyHist) add(d time.Duration) {
	i := 0
	if us := float64(d) / 1e3; us > 1 {
		i = min(int(math.Log(us)/math.Log(histBase))+1, len(h.counts)-1)
	}
	h.counts[i]++
	h.n++
	h.sum += d
	h.max = max(h.max, d)
}

// quantile is the upper edge of the bucket holding quantile q.
func (h *latencyHist) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := int64(math.Ceil(q * float64(h.n)))
	var seen int64
	for i, c := range h.counts {
		if seen += c; seen >= rank {
			return min(time.Duration(math.Pow(histBase, float64(i))*1e3), h.max)
		}
	}
	return h.max
}

func (h *latencyHist) mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return h.sum / time.Duration(h.n)
}

// rssSampler reads a daemon's resident memory.
type rssSampler struct {
	source string
	read   func(context.Context) (int64, error)
}

// procStatusRSS reads VmRSS from /proc/pid/status.
func procStatusRSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// metricsRSS reads process_resident_memory_bytes from a /metrics page.
func metricsRSS(ctx context.Context, url string) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 4<<20))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "process_resident_memory_bytes "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			return int64(v), err
		}
	}
	return 0, errors.New("no process_resident_memory_bytes in " + url)
}

func mb(b int64) float64 { return float64(b) / (1 << 20) }

func rssReport(source string, samples []RSSSample, failures int) *RSSReport {
	r := &RSSReport{Source: source, Samples: samples, Failures: failures}
	if len(samples) == 0 {
		return r
	}
	r.StartMB, r.EndMB = mb(samples[0].Bytes), mb(samples[len(samples)-1].Bytes)
	r.MinMB, r.MaxMB = r.StartMB, r.StartMB
	for _, s := range samples {
		r.MinMB, r.MaxMB = min(r.MinMB, mb(s.Bytes)), max(r.MaxMB, mb(s.Bytes))
	}
	return r
}

func writeRSSCSV(path string, samples []RSSSample) error {
	var b strings.Builder
	b.WriteString("t_s,rss_bytes,requests\n")
	for _, s := range samples {
		fmt.Fprintf(&b, "%.3f,%d,%d\n", s.T, s.Bytes, s.Requests)
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}
