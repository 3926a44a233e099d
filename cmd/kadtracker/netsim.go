package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kadtracker/kadtracker/netsim"
	"github.com/kadtracker/kadtracker/node"
)

// netsimCmd is `kadtracker netsim run|experiment NAME|process`.
type netsimCmd struct {
	sub  string // run, experiment or process
	name string // the experiment

	nodes       int
	latency     string
	bandwidth   float64
	replication string
	rp          float64
	lookups     int
	keys        int
	epochs      int
	seed        uint64
	out         string
	concurrency int
	maxConns    int
	maxNodes    int
	replot      bool

	// process mode
	binary    string
	netns     bool
	duration  time.Duration
	ttf, ttr  time.Duration
	republish time.Duration
	recordTTL time.Duration

	args []string // the command line, recorded in the results
}

// netsimFlags says which subcommands each flag applies to.
var netsimFlags = map[string][]string{
	"nodes": {"run", "experiment", "process"}, "latency": {"run", "experiment"}, "bandwidth": {"run"},
	"replication": {"run", "experiment", "process"}, "rp": {"run", "experiment"}, "lookups": {"run", "experiment", "process"},
	"keys": {"run", "process"}, "epochs": {"run", "experiment"}, "seed": {"run", "experiment", "process"}, "out": {"run", "experiment", "process"},
	"concurrency": {"run", "experiment"}, "max-conns": {"run", "experiment"}, "max-nodes": {"experiment"}, "replot": {"experiment"},
	"binary": {"process"}, "netns": {"process"}, "duration": {"process"}, "ttf": {"process"}, "ttr": {"process"},
	"republish": {"process"}, "record-ttl": {"process"},
}

func setupNetsim(fs *flag.FlagSet, _ func(string) string) func([]string) (runner, error) {
	c := &netsimCmd{args: os.Args}
	fs.IntVar(&c.nodes, "nodes", 0, "`N` nodes")
	fs.Lookup("nodes").DefValue = "50 for run, 200 for experiments, 5 for process"
	fs.StringVar(&c.latency, "latency", "10ms", "one-way link `LATENCY`: a duration, uniform:MIN,MAX, normal:MEAN,SD or lognormal:MEDIAN,SIGMA (drawn once per link from the seed)")
	fs.Float64Var(&c.bandwidth, "bandwidth", 0, "link bandwidth in `BYTES` a second, 0 for unlimited")
	fs.StringVar(&c.replication, "replication", "", "`M`, the storing nodes per record; experiments take a comma-separated list (rp and n: one curve each; m: the sweep)")
	fs.Lookup("replication").DefValue = fmt.Sprintf("%d for run, 3 for process; 2,4,8 for rp; 1..20 for m; 4 for the others", node.DefaultConfig().Replication)
	fs.Float64Var(&c.rp, "rp", 0, "`P`, the probability that a node is up at lookup time (failures are drawn after the announces)")
	fs.Lookup("rp").DefValue = "1 for run, 0.5 for the m and n experiments"
	fs.IntVar(&c.lookups, "lookups", 0, "`L` lookups (per point for experiments)")
	fs.Lookup("lookups").DefValue = "200 for run and process, 400 for experiments"
	fs.IntVar(&c.keys, "keys", 0, "`K` torrents announced, each by one random node")
	fs.Lookup("keys").DefValue = "half the lookups for run, 4 for process"
	fs.IntVar(&c.epochs, "epochs", 0, "independent failure draws the lookups are spread over")
	fs.Lookup("epochs").DefValue = "20 for run, 40 for experiments"
	fs.Uint64Var(&c.seed, "seed", 1, "`S` seeds node identities, latencies, failures and the schedule: the same seed, the same schedule")
	fs.StringVar(&c.out, "out", "netsim-out", "`DIR` for results.json and the experiments' CSV, JSON and PNG files")
	fs.IntVar(&c.concurrency, "concurrency", 4, "announces or lookups in flight at once")
	fs.IntVar(&c.maxConns, "max-conns", 0, "trim each node's connections to `C` between phases (routing-table peers kept first), 0 to keep all: saves memory in large networks")
	fs.IntVar(&c.maxNodes, "max-nodes", 1600, "the largest `N` the n experiment tries (100, 200, 400, ... up to it)")
	fs.BoolVar(&c.replot, "replot", false, "draw an experiment's plots again from the JSON in --out, without running it")
	fs.StringVar(&c.binary, "binary", "", "the kadtracker `PATH` to start daemons from")
	fs.Lookup("binary").DefValue = "this executable"
	fs.BoolVar(&c.netns, "netns", false, "put each daemon in a network namespace of its own with its own address (needs root and iproute2)")
	fs.DurationVar(&c.duration, "duration", 2*time.Minute, "how long the process scenario runs")
	fs.DurationVar(&c.ttf, "ttf", 0, "mean time to failure of a daemon (exponential; SIGKILL), 0 for no failures")
	fs.DurationVar(&c.ttr, "ttr", 20*time.Second, "mean time to repair (exponential; restart on the same data dir)")
	fs.DurationVar(&c.republish, "republish", 10*time.Second, "the daemons' --republish")
	fs.DurationVar(&c.recordTTL, "record-ttl", 30*time.Second, "the daemons' --record-ttl")

	return func(pos []string) (runner, error) {
		if len(pos) == 0 {
			return nil, errors.New("missing run, experiment NAME or process")
		}
		c.sub = pos[0]
		switch c.sub {
		case "run", "process":
			if err := wantArgs(pos[1:]); err != nil {
				return nil, err
			}
		case "experiment":
			if len(pos) != 2 {
				return nil, fmt.Errorf("experiment needs one NAME: %s", experimentNames())
			}
			c.name = pos[1]
			if !slices.Contains(strings.Split(experimentNames(), ", "), c.name) {
				return nil, fmt.Errorf("unknown experiment %q: want %s", c.name, experimentNames())
			}
		default:
			return nil, fmt.Errorf("unknown netsim command %q: want run, experiment NAME or process", c.sub)
		}
		var wrong []string
		fs.Visit(func(f *flag.Flag) {
			if !slices.Contains(netsimFlags[f.Name], c.sub) {
				wrong = append(wrong, "--"+f.Name)
			}
		})
		if len(wrong) > 0 {
			return nil, fmt.Errorf("%s: not a flag of netsim %s", strings.Join(wrong, ", "), c.sub)
		}
		if c.rp < 0 || c.rp > 1 || c.nodes < 0 || c.lookups < 0 || c.keys < 0 || c.epochs < 0 {
			return nil, errors.New("--rp must be in 0..1; --nodes, --lookups, --keys and --epochs must not be negative")
		}
		return c, nil
	}
}

func experimentNames() string {
	var names []string
	for _, e := range netsim.Experiments {
		names = append(names, e.Name)
	}
	return strings.Join(names, ", ")
}

func (c *netsimCmd) run(ctx context.Context, stdout, stderr io.Writer) error {
	limitMemory()
	bar := newProgress(stdout)
	defer bar.done()
	switch c.sub {
	case "run":
		return c.runOne(ctx, stdout, bar)
	case "experiment":
		return c.runExperiment(ctx, bar)
	}
	return c.runProcess(ctx, stdout, bar)
}

func (c *netsimCmd) intList(def []int) ([]int, error) {
	if c.replication == "" {
		return def, nil
	}
	var out []int
	for _, s := range strings.Split(c.replication, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 || n > 64 {
			return nil, fmt.Errorf("--replication %q: want numbers in 1..64", c.replication)
		}
		out = append(out, n)
	}
	return out, nil
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

func (c *netsimCmd) runOne(ctx context.Context, stdout io.Writer, bar *progress) error {
	lat, err := netsim.ParseLatency(c.latency)
	if err != nil {
		return err
	}
	ms, err := c.intList([]int{node.DefaultConfig().Replication})
	if err != nil {
		return err
	}
	if len(ms) != 1 {
		return errors.New("--replication: run takes one value")
	}
	cfg := netsim.DefaultConfig()
	cfg.Nodes = orDefault(c.nodes, 50)
	cfg.Latency = lat
	cfg.Bandwidth = c.bandwidth
	cfg.Seed = c.seed
	cfg.MaxConns = c.maxConns
	cfg.Node.Replication = ms[0]
	netsim.NoRepublish(&cfg)
	cfg.Progress = func(done, total int) { bar.set("joining", done, total) }
	w := netsim.DefaultUniform()
	w.Rp = orDefault(c.rp, 1)
	w.Lookups = orDefault(c.lookups, 200)
	w.Keys = orDefault(c.keys, max(1, w.Lookups/2))
	w.Epochs = orDefault(c.epochs, min(20, w.Lookups))
	if w.Rp == 1 {
		w.Epochs = 1
	}
	w.Concurrency = c.concurrency
	w.Progress = func(done, total int) { bar.set("lookups", done, total) }
	if err := cfg.Validate(); err != nil {
		return err
	}
	res, err := netsim.RunNetwork(ctx, cfg, w, c.seed)
	if err != nil {
		return err
	}
	if err := netsim.WriteResults(c.out, res); err != nil {
		return err
	}
	bar.done()
	fmt.Fprintf(stdout, "N=%d m=%d rp=%.2f: %d of %d lookups found the record (%.3f, 95%% %.3f..%.3f); R_DHT %.3f (k=%.2f hops), replica bound %.3f\n",
		res.Nodes, res.Replication, res.Rp, res.Successes, res.Lookups, res.SuccessRate, res.SuccessCI95[0], res.SuccessCI95[1],
		res.ModelSuccess, res.HopsMean, res.ReplicaBound)
	fmt.Fprintf(stdout, "latency p50 %.1f ms, p95 %.1f ms, p99 %.1f ms; RPC round trip %.2f ms: p50 %.1f round trips\n",
		res.LatencyMS.P50, res.LatencyMS.P95, res.LatencyMS.P99, res.RPCRTTMS, res.LatencyRTT.P50)
	fmt.Fprintf(stdout, "built in %.0fs; %.2f MB per node (Go heap and stacks), RSS %.0f MB (peak %.0f MB)\n",
		res.BuildSeconds, float64(res.Memory.PerNode)/(1<<20), float64(res.Memory.RSS)/(1<<20), float64(res.Memory.PeakRSS)/(1<<20))
	fmt.Fprintf(stdout, "wrote %s/results.json and %s/lookups.csv\n", c.out, c.out)
	return nil
}

func (c *netsimCmd) runExperiment(ctx context.Context, bar *progress) error {
	ec := netsim.DefaultExperimentConfig()
	ec.Name, ec.Out, ec.Seed = c.name, c.out, c.seed
	ec.Command = strings.Join(append([]string{"kadtracker"}, c.args[1:]...), " ")
	lat, err := netsim.ParseLatency(c.latency)
	if err != nil {
		return err
	}
	ec.Latency = lat
	ec.Nodes = orDefault(c.nodes, ec.Nodes)
	def := []int{4}
	switch c.name {
	case "rp":
		def = ec.Replication
	case "m":
		def = nil // the sweep's own
	}
	if ec.Replication, err = c.intList(def); err != nil {
		return err
	}
	ec.Rp = orDefault(c.rp, ec.Rp)
	ec.Lookups = orDefault(c.lookups, ec.Lookups)
	ec.Epochs = orDefault(c.epochs, ec.Epochs)
	ec.Concurrency = c.concurrency
	ec.MaxConns = c.maxConns
	ec.NodeCounts = nil
	for n := 100; n <= c.maxNodes; n *= 2 {
		ec.NodeCounts = append(ec.NodeCounts, n)
	}
	if len(ec.NodeCounts) == 0 || ec.NodeCounts[len(ec.NodeCounts)-1] != c.maxNodes {
		ec.NodeCounts = append(ec.NodeCounts, c.maxNodes)
	}
	ec.Progress = bar.set
	ec.Log = bar
	if c.replot {
		return netsim.Replot(ec)
	}
	return netsim.RunExperiment(ctx, ec)
}

// limitMemory sets a soft memory limit at 80 % of the machine's memory, so
// the collector works harder before a large network runs out of it.
func limitMemory() {
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

// progress draws a one-line progress bar when w is a terminal, and passes
// log lines through above it. Elsewhere it only passes the lines through.
type progress struct {
	mu       sync.Mutex
	w        io.Writer
	terminal bool
	shown    bool
	last     time.Time
}

func newProgress(w io.Writer) *progress {
	p := &progress{w: w}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.terminal = true
		}
	}
	return p
}

// set shows stage at done of total.
func (p *progress) set(stage string, done, total int) {
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
func (p *progress) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.shown {
		fmt.Fprint(p.w, "\r\x1b[K")
		p.shown = false
	}
	return p.w.Write(b)
}

// done clears the bar.
func (p *progress) done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.shown {
		fmt.Fprint(p.w, "\r\x1b[K")
		p.shown = false
	}
}

func (c *netsimCmd) runProcess(ctx context.Context, stdout io.Writer, bar *progress) error {
	pr := netsim.DefaultProcessRun()
	pr.Cluster.Binary = c.binary
	if pr.Cluster.Binary == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("finding this executable: %w (set --binary)", err)
		}
		pr.Cluster.Binary = exe
	}
	pr.Cluster.Nodes = orDefault(c.nodes, pr.Cluster.Nodes)
	ms, err := c.intList([]int{pr.Cluster.Replication})
	if err != nil {
		return err
	}
	if len(ms) != 1 {
		return errors.New("--replication: process takes one value")
	}
	pr.Cluster.Replication = ms[0]
	pr.Cluster.RecordTTL, pr.Cluster.Republish = c.recordTTL, c.republish
	pr.Cluster.Netns = c.netns
	pr.Cluster.Seed, pr.Seed = c.seed, c.seed
	pr.Cluster.LogDir = filepath.Join(c.out, "logs")
	pr.Lookups = orDefault(c.lookups, pr.Lookups)
	pr.Keys = orDefault(c.keys, pr.Keys)
	pr.Duration, pr.TTF, pr.TTR = c.duration, c.ttf, c.ttr
	pr.Progress = func(done, total int) { bar.set("lookups", done, total) }
	pr.Log = bar
	if err := os.MkdirAll(c.out, 0o755); err != nil {
		return err
	}
	res, err := pr.Run(ctx)
	if err != nil {
		return err
	}
	if err := netsim.WriteProcessResults(c.out, strings.Join(append([]string{"kadtracker"}, c.args[1:]...), " "), res); err != nil {
		return err
	}
	bar.done()
	fmt.Fprintf(stdout, "%d daemons, m=%d: %d of %d lookups found the record (%.3f, 95%% %.3f..%.3f), %d errors; %d kills, %d restarts; repair model %.3f..%.3f, no repair %.3f; latency p50 %.1f ms\n",
		res.Nodes, res.Replication, res.Successes, res.Lookups, res.SuccessRate, res.SuccessCI95[0], res.SuccessCI95[1], res.LookupErrors,
		res.Kills, res.Restarts, res.RepairModel, res.RepairModelTTL, res.ReplicaBound, res.LatencyMS.P50)
	fmt.Fprintf(stdout, "wrote %s/process.json, process_lookups.csv, process.png and logs/\n", c.out)
	return nil
}
