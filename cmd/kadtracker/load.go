package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"slices"

	"github.com/kadtracker/kadtracker/bootstrap"
	"github.com/kadtracker/kadtracker/netsim"
)

// loadCmd is `kadtracker load`: a load generator for a daemon's fronts,
// whose engine is netsim.RunLoad.
type loadCmd struct {
	cfg                netsim.LoadConfig
	udpAddr, recordsMA string // parsed into cfg when run
	json               bool
}

func setupLoad(fs *flag.FlagSet, _ func(string) string) func([]string) (runner, error) {
	l := &loadCmd{cfg: netsim.DefaultLoadConfig()}
	c := &l.cfg
	fs.StringVar(&c.HTTPAddr, "http", "", "drive the HTTP tracker at `ADDR` (host:port)")
	fs.StringVar(&l.udpAddr, "udp", "", "drive the UDP tracker at `ADDR` (host:port)")
	fs.StringVar(&l.recordsMA, "records", "", "drive the record protocol of the node at `MULTIADDR` (ending in /p2p/<peer ID>): PUTs and GETs in turn")
	fs.Float64Var(&c.Rate, "rate", c.Rate, "requests a second to each target; 0: as fast as the workers go")
	fs.DurationVar(&c.Duration, "duration", c.Duration, "how long to run")
	fs.IntVar(&c.Concurrency, "concurrency", c.Concurrency, "`N` requests in flight per target at most")
	fs.IntVar(&c.Swarms, "swarms", c.Swarms, "distinct infohashes to announce and look up")
	fs.DurationVar(&c.Timeout, "timeout", c.Timeout, "give up on one request after this long")
	fs.IntVar(&c.PID, "pid", 0, "sample the resident memory of process `PID` (from /proc/PID/status)")
	fs.StringVar(&c.MetricsURL, "metrics-url", "", "sample resident memory from a daemon's `URL` (http://127.0.0.1:PORT/metrics, its --metrics)")
	fs.DurationVar(&c.Sample, "sample", c.Sample, "memory sampling period")
	fs.DurationVar(&c.Progress, "progress", c.Progress, "print progress to stderr this often; 0: never")
	fs.StringVar(&c.RSSCSV, "rss-csv", "", "write every memory sample to `FILE` as CSV")
	fs.BoolVar(&l.json, "json", false, "print the report as JSON")
	fs.Uint64Var(&c.Seed, "seed", c.Seed, "random seed (infohashes and ports)")
	return func(pos []string) (runner, error) {
		if err := wantArgs(pos); err != nil {
			return nil, err
		}
		switch {
		case c.HTTPAddr == "" && l.udpAddr == "" && l.recordsMA == "":
			return nil, errors.New("nothing to load: give --http, --udp or --records")
		case c.Rate < 0 || c.Duration <= 0 || c.Concurrency < 1 || c.Swarms < 1 || c.Timeout <= 0 || c.Sample <= 0:
			return nil, errors.New("--rate must be >= 0; --duration, --concurrency, --swarms, --timeout and --sample positive")
		case c.PID != 0 && c.MetricsURL != "":
			return nil, errors.New("give --pid or --metrics-url, not both")
		}
		return l, nil
	}
}

func (l *loadCmd) run(ctx context.Context, stdout, stderr io.Writer) error {
	cfg := l.cfg
	if l.udpAddr != "" {
		to, err := netip.ParseAddrPort(l.udpAddr)
		if err != nil {
			return fmt.Errorf("--udp %q: %w", l.udpAddr, err)
		}
		cfg.UDPAddr = to
	}
	if l.recordsMA != "" {
		infos, err := bootstrap.ParseAddrs([]string{l.recordsMA})
		if err != nil || len(infos) != 1 {
			return fmt.Errorf("--records %q: want one multiaddr ending in /p2p/<peer ID>: %v", l.recordsMA, err)
		}
		cfg.Records = infos[0]
	}
	rep, err := netsim.RunLoad(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	if l.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	printLoadReport(stdout, rep)
	return nil
}

func printLoadReport(w io.Writer, r *netsim.LoadReport) {
	rateS := "unpaced"
	if r.Rate > 0 {
		rateS = fmt.Sprintf("%.0f/s per target", r.Rate)
	}
	fmt.Fprintf(w, "load: %.1fs, %s, %d workers per target, %d swarms\n\n", r.Duration, rateS, r.Concurrency, r.Swarms)
	fmt.Fprintf(w, "%-8s %10s %10s %8s %10s %9s %9s %9s %9s %9s\n", "target", "requests", "ok", "errors", "ok/s", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms")
	for _, t := range r.Targets {
		l := t.LatencyMS
		fmt.Fprintf(w, "%-8s %10d %10d %8d %10.0f %9.2f %9.2f %9.2f %9.2f %9.2f\n", t.Name, t.Requests, t.OK, t.Errors, t.Throughput, l["p50"], l["p90"], l["p99"], l["p999"], l["max"])
	}
	for _, t := range r.Targets {
		kinds := make([]string, 0, len(t.ErrorKinds))
		for k := range t.ErrorKinds {
			kinds = append(kinds, k)
		}
		slices.Sort(kinds)
		for _, k := range kinds {
			fmt.Fprintf(w, "  %s error: %d × %s\n", t.Name, t.ErrorKinds[k], k)
		}
	}
	if r.RSS == nil {
		return
	}
	fmt.Fprintf(w, "\nRSS of %s: start %.1f MB, min %.1f, max %.1f, end %.1f (%d samples, %d failed)\n",
		r.RSS.Source, r.RSS.StartMB, r.RSS.MinMB, r.RSS.MaxMB, r.RSS.EndMB, len(r.RSS.Samples), r.RSS.Failures)
	// A dozen points of the curve.
	n := len(r.RSS.Samples)
	step := max(1, n/12)
	for i := 0; i < n; i += step {
		s := r.RSS.Samples[i]
		fmt.Fprintf(w, "  t=%5.0fs  %7.1f MB  %d requests\n", s.T, s.MB(), s.Requests)
	}
	if (n-1)%step != 0 {
		s := r.RSS.Samples[n-1]
		fmt.Fprintf(w, "  t=%5.0fs  %7.1f MB  %d requests\n", s.T, s.MB(), s.Requests)
	}
}
