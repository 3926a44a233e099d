package netsim

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kadtracker/kadtracker/node"
	"github.com/kadtracker/kadtracker/records"
)

// Command is one `kadtracker netsim` command line in plain values. A zero
// field takes the default of the mode that runs it (RunCommand,
// ExperimentCommand or ProcessCommand), as the command's help says.
type Command struct {
	Nodes       int
	Latency     Latency // the zero Latency: 10 ms
	Bandwidth   float64 // bytes a second per link; 0: unlimited
	Replication []int   // one value for run and process; nil: the mode's default
	Rp          float64
	Lookups     int
	Keys        int
	Epochs      int
	Seed        uint64
	Out         string // the results' directory
	Concurrency int
	MaxConns    int
	// FullLookup runs the full lookup (node.Config.FullLookup) instead of
	// the early answer, for comparison.
	FullLookup bool
	// HandshakeRTTs: round trips a new connection pays (Config.HandshakeRTTs).
	HandshakeRTTs int
	// FullAnnounce runs the full announce (node.Config.FullAnnounce), and
	// BusyGC leaves the collector on while lookups are timed (Uniform), for
	// comparison.
	FullAnnounce, BusyGC bool
	// Publish makes run the republish workload (Publish) with Keys,
	// Republish, RecordTTL and Duration; SerialRepublish runs it with the
	// old serial scheduler.
	Publish, SerialRepublish bool
	// Locality (issue 16): LatencyModel "geo" places the nodes in regions
	// and cities (geo.go) and runs the locality workload (locality.go) at
	// share Locality before the run's own; "" keeps Latency.
	LatencyModel string
	Locality     float64

	// MaxNodes is the largest network of the n experiment: it tries 100,
	// 200, 400, ... up to it.
	MaxNodes int
	Replot   bool

	// Process mode: the daemons' binary and their life.
	Binary               string
	Netns                bool
	NATShare             float64 // share of daemons behind NAT without mapping; needs Netns
	Duration             time.Duration
	TTF, TTR             time.Duration
	Republish, RecordTTL time.Duration

	// CommandLine is recorded in the results.
	CommandLine string
	// Progress, if set, reports progress within a stage.
	Progress func(stage string, done, total int)
	// Log, if set, gets the experiments' and process runs' log lines.
	Log io.Writer
}

// DefaultCommand is `kadtracker netsim`'s flag defaults.
func DefaultCommand() Command {
	return Command{
		Latency:     FixedLatency(10 * time.Millisecond),
		Seed:        1,
		Out:         "netsim-out",
		Concurrency: 4,
		MaxNodes:    1600,
		Locality:    node.DefaultLocality,
		Duration:    2 * time.Minute,
		TTR:         20 * time.Second,
		Republish:   10 * time.Second,
		RecordTTL:   30 * time.Second,
	}
}

func (c Command) progress(stage string) func(done, total int) {
	return func(done, total int) {
		if c.Progress != nil {
			c.Progress(stage, done, total)
		}
	}
}

func (c Command) latency() Latency {
	if c.Latency == (Latency{}) {
		return FixedLatency(10 * time.Millisecond)
	}
	return c.Latency
}

// one is the replication of the modes that take one value.
func (c Command) one(mode string, def int) (int, error) {
	switch len(c.Replication) {
	case 0:
		return def, nil
	case 1:
		return c.Replication[0], nil
	}
	return 0, fmt.Errorf("netsim: %s takes one replication value", mode)
}

// RunCommand is `kadtracker netsim run`: one network, the Uniform
// workload, results.json and lookups.csv written to c.Out.
func RunCommand(ctx context.Context, c Command) (*Results, error) {
	m, err := c.one("run", node.DefaultConfig().Replication)
	if err != nil {
		return nil, err
	}
	cfg := DefaultConfig()
	cfg.Nodes = orDefault(c.Nodes, 50)
	cfg.Latency = c.latency()
	cfg.Bandwidth = c.Bandwidth
	cfg.Seed = c.Seed
	cfg.MaxConns = c.MaxConns
	cfg.Node.Replication = m
	cfg.Node.FullLookup = c.FullLookup
	cfg.HandshakeRTTs = c.HandshakeRTTs
	cfg.Node.FullAnnounce = c.FullAnnounce
	NoRepublish(&cfg)
	cfg.Progress = c.progress("joining")
	if c.Publish {
		return c.runPublish(ctx, cfg)
	}
	w := DefaultUniform()
	w.Rp = orDefault(c.Rp, 1)
	w.Lookups = orDefault(c.Lookups, 200)
	w.Keys = orDefault(c.Keys, max(1, w.Lookups/2))
	w.Epochs = orDefault(c.Epochs, min(20, w.Lookups))
	if w.Rp == 1 {
		w.Epochs = 1
	}
	w.Concurrency = c.Concurrency
	w.BusyGC = c.BusyGC
	w.Progress = c.progress("lookups")
	switch c.LatencyModel {
	case "", "link":
	case "geo":
		cfg.Latency = GeoLatency()
		l := DefaultLocality()
		l.Share = c.Locality
		l.Concurrency = c.Concurrency
		l.SwarmSize = min(l.SwarmSize, cfg.Nodes)
		l.Progress = c.Progress
		w.Locality = &l
	default:
		return nil, fmt.Errorf("netsim: latency model %q: want link or geo", c.LatencyModel)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	res, err := RunNetwork(ctx, cfg, w, c.Seed)
	if err != nil {
		return nil, err
	}
	if err := WriteResults(c.Out, res); err != nil {
		return nil, err
	}
	if res.Locality != nil {
		if err := PlotLocality(c.Out, res.Nodes, res.Locality); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// runPublish is `kadtracker netsim run --republish D --record-ttl D
// --duration D`: node 0 announces c.Keys torrents and republishes them.
func (c Command) runPublish(ctx context.Context, cfg Config) (*Results, error) {
	cfg.Node.RepublishInterval, cfg.Node.RecordTTL = c.Republish, c.RecordTTL
	cfg.Node.MaxRecordTTL = max(cfg.Node.MaxRecordTTL, c.RecordTTL)
	cfg.Node.BridgedRecordTTL = min(records.MaxBridgedTTL, max(c.RecordTTL, c.Republish+time.Second))
	cfg.Node.SerialRepublish = c.SerialRepublish
	p := DefaultPublish()
	p.Keys = orDefault(c.Keys, p.Keys)
	p.Lookups = orDefault(c.Lookups, p.Lookups)
	p.Duration = c.Duration
	p.Concurrency = max(c.Concurrency, p.Concurrency)
	p.Progress = c.progress("lookups")
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	res, err := RunPublish(ctx, cfg, p, c.Seed)
	if err != nil {
		return nil, err
	}
	if err := WriteResults(c.Out, res); err != nil {
		return nil, err
	}
	return res, nil
}

// Experiment is the config of experiment name under c.
func (c Command) Experiment(name string) ExperimentConfig {
	ec := DefaultExperimentConfig()
	ec.Name, ec.Out, ec.Seed = name, c.Out, c.Seed
	ec.Command = c.CommandLine
	ec.Latency = c.latency()
	ec.Nodes = orDefault(c.Nodes, ec.Nodes)
	switch {
	case c.Replication != nil:
		ec.Replication = c.Replication
	case name == "rp":
		// DefaultExperimentConfig's curves.
	case name == "m":
		ec.Replication = nil // the sweep's own
	default:
		ec.Replication = []int{4}
	}
	ec.Rp = orDefault(c.Rp, ec.Rp)
	ec.Lookups = orDefault(c.Lookups, ec.Lookups)
	ec.Epochs = orDefault(c.Epochs, ec.Epochs)
	ec.Concurrency = c.Concurrency
	ec.MaxConns = c.MaxConns
	ec.NodeCounts = nil
	for n := 100; n <= c.MaxNodes; n *= 2 {
		ec.NodeCounts = append(ec.NodeCounts, n)
	}
	if len(ec.NodeCounts) == 0 || ec.NodeCounts[len(ec.NodeCounts)-1] != c.MaxNodes {
		ec.NodeCounts = append(ec.NodeCounts, c.MaxNodes)
	}
	ec.Progress = c.Progress
	ec.Log = c.Log
	return ec
}

// ExperimentCommand is `kadtracker netsim experiment NAME`: it runs the
// experiment, or with c.Replot draws its plots again from the JSON in c.Out.
func ExperimentCommand(ctx context.Context, c Command, name string) error {
	ec := c.Experiment(name)
	if c.Replot {
		return Replot(ec)
	}
	return RunExperiment(ctx, ec)
}

// ProcessCommand is `kadtracker netsim process`: daemons of c.Binary under
// ProcessRun, process.json, process_lookups.csv, process.png and logs/
// written to c.Out. With a NAT share it first runs the same network all
// public, on the same "Internet" addresses, into c.Out/all-public, and
// returns that run's results as the second value.
func ProcessCommand(ctx context.Context, c Command) (res, allPublic *ProcessResults, err error) {
	if c.Binary == "" {
		return nil, nil, errors.New("netsim: process needs the kadtracker binary")
	}
	pr := DefaultProcessRun()
	pr.Cluster.Binary = c.Binary
	pr.Cluster.Nodes = orDefault(c.Nodes, pr.Cluster.Nodes)
	m, err := c.one("process", pr.Cluster.Replication)
	if err != nil {
		return nil, nil, err
	}
	pr.Cluster.Replication = m
	pr.Cluster.RecordTTL, pr.Cluster.Republish = c.RecordTTL, c.Republish
	pr.Cluster.Netns = c.Netns
	pr.Cluster.NATShare = c.NATShare
	pr.Cluster.Internet = c.NATShare > 0
	pr.Cluster.Seed, pr.Seed = c.Seed, c.Seed
	pr.Cluster.LogDir = filepath.Join(c.Out, "logs")
	pr.Lookups = orDefault(c.Lookups, pr.Lookups)
	pr.Keys = orDefault(c.Keys, pr.Keys)
	pr.Duration, pr.TTF, pr.TTR = c.Duration, c.TTF, c.TTR
	pr.Progress = c.progress("lookups")
	pr.Log = c.Log
	if err := os.MkdirAll(c.Out, 0o755); err != nil {
		return nil, nil, err
	}
	if pr.Cluster.NATShare > 0 {
		base := pr
		dir := filepath.Join(c.Out, "all-public")
		base.Cluster.NATShare = 0
		base.Cluster.LogDir = filepath.Join(dir, "logs")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, nil, err
		}
		if c.Log != nil {
			fmt.Fprintf(c.Log, "the same network all public first\n")
		}
		if allPublic, err = base.Run(ctx); err != nil {
			return nil, nil, err
		}
		if err := WriteProcessResults(dir, c.CommandLine+" (all public)", allPublic); err != nil {
			return nil, nil, err
		}
		if c.Log != nil {
			fmt.Fprintf(c.Log, "now %.0f %% of the daemons behind NAT\n", 100*pr.Cluster.NATShare)
		}
	}
	if res, err = pr.Run(ctx); err != nil {
		return nil, nil, err
	}
	if err := WriteProcessResults(c.Out, c.CommandLine, res); err != nil {
		return nil, nil, err
	}
	return res, allPublic, nil
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// LimitMemory sets the process's soft memory limit at 80 % of the
// machine's memory (from /proc/meminfo), so the collector works harder
// before a large network runs out of it. It is a no-op where meminfo is
// missing.
func LimitMemory() {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "MemTotal:" {
			if kb, err := strconv.ParseInt(fields[1], 10, 64); err == nil {
				debug.SetMemoryLimit(kb << 10 * 8 / 10)
			}
			return
		}
	}
}

// ProgressBar draws a one-line progress bar when its writer is a terminal,
// and passes log lines through above it. Elsewhere it only passes the
// lines through.
type ProgressBar struct {
	mu       sync.Mutex
	w        io.Writer
	terminal bool
	shown    bool
	last     time.Time
}

// NewProgressBar draws on w.
func NewProgressBar(w io.Writer) *ProgressBar {
	p := &ProgressBar{w: w}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.terminal = true
		}
	}
	return p
}

// Set shows stage at done of total, at most every 100 ms until the end.
func (p *ProgressBar) Set(stage string, done, total int) {
	if !p.terminal || total <= 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if done < total && time.Since(p.last) < 100*time.Millisecond {
		return
	}
	p.last = time.Now()
	const width = 30
	filled := min(width, width*done/total)
	fmt.Fprintf(p.w, "\r\x1b[K[%s%s] %3d%% %s (%d/%d)", strings.Repeat("#", filled), strings.Repeat("-", width-filled), 100*done/total, stage, done, total)
	p.shown = true
}

// Write prints log lines, above the bar.
func (p *ProgressBar) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clear()
	return p.w.Write(b)
}

// Done clears the bar.
func (p *ProgressBar) Done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clear()
}

func (p *ProgressBar) clear() {
	if p.shown {
		fmt.Fprint(p.w, "\r\x1b[K")
		p.shown = false
	}
}
