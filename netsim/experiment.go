package netsim

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Experiments are the names RunExperiment knows, with what each measures.
var Experiments = []struct{ Name, About string }{
	{"rp", "lookup success against node reliability Rp (0.3-0.99), one curve per m, beside R_DHT, the replica bound and R_server"},
	{"m", "lookup success against replication m (1-20) at a fixed Rp, beside R_DHT and R_server with n = m"},
	{"n", "lookup success, hops, latency in RPC round trips and memory against network size N"},
	{"latency", "lookup latency in RPC round trips and hops under fixed, uniform and lognormal link latencies"},
	{"evolution", "torrent evolution of Guo et al.: service availability over a torrent's life, lifespan against τ·ln(λ0/γ)"},
	{"churn", "exponential time to failure and repair; lookup success against the republish interval, beside a repair model"},
}

// ExperimentConfig parameterises RunExperiment. Start from
// DefaultExperimentConfig; zero fields an experiment does not use are fine.
type ExperimentConfig struct {
	Name string `json:"name"`
	// Out is the directory CSV, JSON and PNG files are written to.
	Out  string `json:"-"`
	Seed uint64 `json:"seed"`
	// Nodes is the network size of every experiment but n.
	Nodes int `json:"nodes"`
	// NodeCounts are the sizes n sweeps.
	NodeCounts []int `json:"node_counts,omitempty"`
	// Replication: rp and n draw one curve per value; m sweeps them.
	Replication []int `json:"replication"`
	// RpValues are the reliabilities rp sweeps.
	RpValues []float64 `json:"rp_values,omitempty"`
	// Rp is the node reliability of the m and n sweeps.
	Rp          float64 `json:"rp"`
	Latency     Latency `json:"-"`
	LatencyName string  `json:"latency"`
	// Lookups and Epochs per point of a sweep.
	Lookups     int `json:"lookups"`
	Epochs      int `json:"epochs"`
	Concurrency int `json:"concurrency"`
	// MaxConns trims connections per node (0: never), for large networks.
	MaxConns int `json:"max_conns"`
	// Evolution and Churn parameterise those experiments.
	Evolution Evolution `json:"evolution"`
	Churn     Churn     `json:"churn"`
	// Command is the command line that ran the experiment, for the record.
	Command string `json:"command"`
	// Progress, if set, reports progress within a stage.
	Progress func(stage string, done, total int) `json:"-"`
	// Log, if set, gets a line per finished point.
	Log    io.Writer    `json:"-"`
	Logger *slog.Logger `json:"-"`
}

// DefaultExperimentConfig is what `kadtracker netsim experiment` runs.
func DefaultExperimentConfig() ExperimentConfig {
	return ExperimentConfig{
		Seed:        1,
		Nodes:       200,
		NodeCounts:  []int{100, 200, 400, 800, 1600},
		Replication: []int{2, 4, 8},
		RpValues:    []float64{0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99},
		Rp:          0.5,
		Latency:     FixedLatency(10 * time.Millisecond),
		Lookups:     400,
		Epochs:      40,
		Concurrency: 4,
		Evolution:   DefaultEvolution(),
		Churn:       DefaultChurn(),
	}
}

// mSweep is the replication the m experiment sweeps unless told otherwise.
var mSweep = []int{1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20}

// RunExperiment runs the experiment ec.Name and writes its files to ec.Out.
func RunExperiment(ctx context.Context, ec ExperimentConfig) error {
	if ec.Out == "" {
		return errors.New("netsim: experiment needs an output directory")
	}
	if err := os.MkdirAll(ec.Out, 0o755); err != nil {
		return err
	}
	if ec.Logger == nil {
		ec.Logger = slog.New(slog.DiscardHandler)
	}
	if ec.Log == nil {
		ec.Log = io.Discard
	}
	ec.LatencyName = ec.Latency.String()
	switch ec.Name {
	case "rp":
		return ec.runRp(ctx)
	case "m":
		return ec.runM(ctx)
	case "n":
		return ec.runN(ctx)
	case "latency":
		return ec.runLatency(ctx)
	case "evolution":
		return ec.runEvolution(ctx)
	case "churn":
		return ec.runChurn(ctx)
	}
	names := make([]string, len(Experiments))
	for i, e := range Experiments {
		names[i] = e.Name
	}
	return fmt.Errorf("netsim: unknown experiment %q (want one of %s)", ec.Name, strings.Join(names, ", "))
}

// Replot draws the plots of experiment ec.Name again from the JSON a run
// left in ec.Out, without running anything.
func Replot(ec ExperimentConfig) error {
	load := func(name string, v any) error {
		b, err := os.ReadFile(filepath.Join(ec.Out, name+".json"))
		if err != nil {
			return err
		}
		return json.Unmarshal(b, v)
	}
	var doc struct {
		Config ExperimentConfig `json:"config"`
		Points []Point          `json:"points"`
	}
	switch ec.Name {
	case "rp", "m", "latency":
		if err := load(ec.Name, &doc); err != nil {
			return err
		}
		doc.Config.Out = ec.Out
		switch ec.Name {
		case "rp":
			return doc.Config.plotRp(doc.Points)
		case "m":
			return doc.Config.plotM(doc.Points)
		}
		return doc.Config.plotLatency(doc.Points)
	case "n":
		if err := load("n", &doc); err != nil {
			return err
		}
		var lat struct {
			Points []Point `json:"points"`
		}
		if err := load("n_latency", &lat); err != nil {
			return err
		}
		doc.Config.Out = ec.Out
		return doc.Config.plotN(doc.Points, lat.Points)
	case "evolution":
		var res EvolutionResults
		if err := load("evolution", &res); err != nil {
			return err
		}
		return ec.plotEvolution(&res)
	case "churn":
		var c churnDoc
		if err := load("churn", &c); err != nil {
			return err
		}
		ec.Nodes, ec.Churn = c.Nodes, c.Config
		return ec.plotChurn(c.Results)
	}
	return fmt.Errorf("netsim: unknown experiment %q", ec.Name)
}

func (ec ExperimentConfig) progress(stage string, done, total int) {
	if ec.Progress != nil {
		ec.Progress(stage, done, total)
	}
}

// network builds the network of one sweep point. Records live a day and are
// never republished during a run, as the reliability model assumes.
func (ec ExperimentConfig) network(ctx context.Context, nodes, m int) (*Network, Memory, error) {
	cfg := DefaultConfig()
	cfg.Nodes = nodes
	cfg.Seed = ec.Seed
	cfg.Latency = ec.Latency
	cfg.MaxConns = ec.MaxConns
	cfg.Node.Replication = m
	NoRepublish(&cfg)
	cfg.Logger = ec.Logger
	stage := fmt.Sprintf("build N=%d m=%d", nodes, m)
	cfg.Progress = func(done, total int) { ec.progress(stage, done, total) }
	base := MemBaseline()
	start := time.Now()
	nw, err := New(ctx, cfg)
	if err != nil {
		return nil, Memory{}, err
	}
	mem := nw.Memory(base)
	fmt.Fprintf(ec.Log, "built N=%d m=%d in %.0fs: %.2f MB per node, RSS %.0f MB, %d connections, %d goroutines\n",
		nodes, m, time.Since(start).Seconds(), float64(mem.PerNode)/(1<<20), float64(mem.RSS)/(1<<20), mem.Conns, mem.Goroutines)
	return nw, mem, nil
}

// workload is the uniform workload of one sweep point.
func (ec ExperimentConfig) workload(rp float64, stage string) Uniform {
	w := DefaultUniform()
	w.Rp = rp
	w.Lookups = ec.Lookups
	w.Keys = max(1, ec.Lookups/2)
	w.Epochs = min(ec.Epochs, ec.Lookups)
	if rp == 1 {
		w.Epochs = 1
	}
	w.Concurrency = ec.Concurrency
	w.Progress = func(done, total int) { ec.progress(stage, done, total) }
	return w
}

// Point is one measurement of a sweep: a row of the CSV.
type Point struct {
	Experiment string  `json:"experiment"`
	X          float64 `json:"x"`
	*Results
	// LatencyRTTs are the lookups' latencies in RPC round trips (the
	// latency experiment keeps them for its CDF).
	LatencyRTTs []float64 `json:"latency_rtt_samples,omitempty"`
}

func (ec ExperimentConfig) logPoint(p Point) {
	r := p.Results
	fmt.Fprintf(ec.Log, "%s x=%g N=%d m=%d rp=%.2f: success %.3f [%.3f, %.3f], holders alive %.3f, R_DHT %.3f, bound %.3f, hops %.2f, latency p50 %.0f ms = %.1f RTT (%.0fs)\n",
		p.Experiment, p.X, r.Nodes, r.Replication, r.Rp, r.SuccessRate, r.SuccessCI95[0], r.SuccessCI95[1],
		r.HolderAliveRate, r.ModelSuccess, r.ReplicaBound, r.HopsMean, r.LatencyMS.P50, r.LatencyRTT.P50, r.Seconds)
	if r.Republishes > 0 {
		fmt.Fprintf(ec.Log, "warning: %d records were republished during that run; its lookups may have found records put back after the failures\n", r.Republishes)
	}
}

// runRp sweeps Rp, one network per m.
func (ec ExperimentConfig) runRp(ctx context.Context) error {
	var points []Point
	for _, m := range ec.Replication {
		nw, mem, err := ec.network(ctx, ec.Nodes, m)
		if err != nil {
			return err
		}
		for i, rp := range ec.RpValues {
			res, err := ec.workload(rp, fmt.Sprintf("m=%d rp=%.2f", m, rp)).Run(ctx, nw, ec.Seed+uint64(i))
			if err != nil {
				nw.Close()
				return err
			}
			res.Memory = &mem
			p := Point{Experiment: "rp", X: rp, Results: res}
			ec.logPoint(p)
			points = append(points, p)
		}
		if err := nw.Close(); err != nil {
			return err
		}
	}
	if err := ec.writePoints("rp", points); err != nil {
		return err
	}
	return ec.plotRp(points)
}

func (ec ExperimentConfig) plotRp(points []Point) error {
	c := chart{
		title:  fmt.Sprintf("Lookup success against node reliability (N=%d, %d lookups a point, 95%% intervals)", ec.Nodes, ec.Lookups),
		xlabel: "Rp, probability a node is up at lookup time",
		ylabel: "lookup success",
		yMin:   0, yMax: 1.02,
	}
	var ms []int
	var rps []float64
	for _, p := range points {
		if !slices.Contains(ms, p.Replication) {
			ms = append(ms, p.Replication)
		}
		if !slices.Contains(rps, p.Rp) {
			rps = append(rps, p.Rp)
		}
	}
	for i, m := range ms {
		sel := filter(points, func(p Point) bool { return p.Replication == m })
		c.series = append(c.series, colored(i,
			measured(fmt.Sprintf("measured, m=%d", m), sel),
			line(fmt.Sprintf("R_DHT=(1-(1-Rp)^m)^k, k=hops, m=%d", m), sel, func(p Point) float64 { return p.ModelSuccess }, false),
			line(fmt.Sprintf("replica bound 1-(1-Rp)^m = R_server n=%d, Rs=Rp", m), sel, func(p Point) float64 { return p.ReplicaBound }, true))...)
	}
	c.series = append(c.series, colored(6, modelCurve("R_server n=1, Rs=Rp (one tracker)", rps, func(x float64) float64 { return RServer(x, 1) }))...)
	return c.save(filepath.Join(ec.Out, "rp.png"))
}

// runM sweeps m at ec.Rp; m is a node setting, so each point is a network
// of its own (the same node identities: the same seed).
func (ec ExperimentConfig) runM(ctx context.Context) error {
	ms := ec.Replication
	if len(ms) < 2 {
		ms = mSweep
	}
	var points []Point
	for i, m := range ms {
		nw, mem, err := ec.network(ctx, ec.Nodes, m)
		if err != nil {
			return err
		}
		res, err := ec.workload(ec.Rp, fmt.Sprintf("m=%d", m)).Run(ctx, nw, ec.Seed+uint64(i))
		cerr := nw.Close()
		if err := errors.Join(err, cerr); err != nil {
			return err
		}
		res.Memory = &mem
		p := Point{Experiment: "m", X: float64(m), Results: res}
		ec.logPoint(p)
		points = append(points, p)
	}
	if err := ec.writePoints("m", points); err != nil {
		return err
	}
	return ec.plotM(points)
}

func (ec ExperimentConfig) plotM(points []Point) error {
	var xs []float64
	rp := ec.Rp
	for _, p := range points {
		xs = append(xs, p.X)
		rp = p.Rp
	}
	nodes := ec.Nodes
	if len(points) > 0 {
		nodes = points[0].Nodes
	}
	c := chart{
		title:  fmt.Sprintf("Lookup success against replication (N=%d, Rp=%.2f, 95%% intervals)", nodes, rp),
		xlabel: "m, storing nodes per record",
		ylabel: "lookup success",
		yMin:   0, yMax: 1.02,
		series: []series{
			measured("measured", points),
			line("R_DHT=(1-(1-Rp)^m)^k, k=hops", points, func(p Point) float64 { return p.ModelSuccess }, false),
			line("replica bound 1-(1-Rp)^m = R_server n=m, Rs=Rp", points, func(p Point) float64 { return p.ReplicaBound }, true),
			modelCurve("R_server n=1, Rs=Rp (one tracker)", xs, func(float64) float64 { return RServer(rp, 1) }),
		},
	}
	return c.save(filepath.Join(ec.Out, "m.png"))
}

// runN sweeps N: per size one network, a run with every node up for hops
// and latency, and a run at ec.Rp for success.
func (ec ExperimentConfig) runN(ctx context.Context) error {
	m := 4
	if len(ec.Replication) > 0 {
		m = ec.Replication[0]
	}
	var success, latency []Point
	for i, n := range ec.NodeCounts {
		nw, mem, err := ec.network(ctx, n, m)
		if err != nil {
			return err
		}
		// Latency with one lookup at a time, so lookups do not queue for
		// the CPU behind each other.
		lw := ec.workload(1, fmt.Sprintf("N=%d latency", n))
		lw.Concurrency = 1
		lw.Lookups = min(ec.Lookups, 200)
		lres, err := lw.Run(ctx, nw, ec.Seed+uint64(i))
		if err != nil {
			nw.Close()
			return err
		}
		lres.Memory = &mem
		sres, err := ec.workload(ec.Rp, fmt.Sprintf("N=%d rp=%.2f", n, ec.Rp)).Run(ctx, nw, ec.Seed+uint64(i)+1000)
		cerr := nw.Close()
		if err := errors.Join(err, cerr); err != nil {
			return err
		}
		sres.Memory = &mem
		lp := Point{Experiment: "n-latency", X: float64(n), Results: lres}
		sp := Point{Experiment: "n", X: float64(n), Results: sres}
		ec.logPoint(lp)
		ec.logPoint(sp)
		latency = append(latency, lp)
		success = append(success, sp)
	}
	if err := ec.writePoints("n", success); err != nil {
		return err
	}
	if err := ec.writePoints("n_latency", latency); err != nil {
		return err
	}
	return ec.plotN(success, latency)
}

func (ec ExperimentConfig) plotN(success, latency []Point) error {
	var xs []float64
	m, rp := 4, ec.Rp
	for _, p := range success {
		xs = append(xs, p.X)
		m, rp = p.Replication, p.Rp
	}
	c := chart{
		title:  fmt.Sprintf("Lookup success against network size (m=%d, Rp=%.2f, 95%% intervals)", m, rp),
		xlabel: "N, nodes (log scale)", ylabel: "lookup success", logX: true, yMin: 0, yMax: 1.02, xTicks: xs,
		series: []series{
			measured("measured", success),
			line("R_DHT=(1-(1-Rp)^m)^k, k=hops", success, func(p Point) float64 { return p.ModelSuccess }, false),
			line(fmt.Sprintf("replica bound 1-(1-Rp)^m = R_server n=%d, Rs=Rp", m), success, func(p Point) float64 { return p.ReplicaBound }, true),
			modelCurve("R_server n=1, Rs=Rp (one tracker)", xs, func(float64) float64 { return RServer(rp, 1) }),
		},
	}
	if err := c.save(filepath.Join(ec.Out, "n.png")); err != nil {
		return err
	}
	lat := ec.LatencyName
	if len(latency) > 0 {
		lat = latency[0].Latency
	}
	lc := chart{
		title:  fmt.Sprintf("Lookup latency and hops against network size (%s links, one lookup at a time)", lat),
		xlabel: "N, nodes (log scale)", ylabel: "RPC round trips; hops", logX: true, legendTop: true, legendLeft: true, xTicks: xs,
		series: []series{
			line("latency p50, in RPC round trips (every node up)", latency, func(p Point) float64 { return p.LatencyRTT.P50 }, false),
			line("latency p95, in RPC round trips (every node up)", latency, func(p Point) float64 { return p.LatencyRTT.P95 }, true),
			line("hops, mean (every node up)", latency, func(p Point) float64 { return p.HopsMean }, false),
			line(fmt.Sprintf("hops, mean, at Rp=%.2f", rp), success, func(p Point) float64 { return p.HopsMean }, true),
		},
	}
	if err := lc.save(filepath.Join(ec.Out, "n_latency.png")); err != nil {
		return err
	}
	if err := hopBars(filepath.Join(ec.Out, "n_hops.png"), "Hop histogram (every node up)", latency, func(p Point) string { return fmt.Sprintf("N=%d", p.Nodes) }); err != nil {
		return err
	}
	mc := chart{
		title:  "Memory per node against network size, after the build",
		xlabel: "N, nodes (log scale)", ylabel: "MB per node", logX: true, legendTop: true, xTicks: xs,
	}
	var withMem []Point
	for _, p := range latency {
		if p.Memory != nil {
			withMem = append(withMem, p)
		}
	}
	mc.series = []series{
		line("Go heap and stacks per node", withMem, func(p Point) float64 { return float64(p.Memory.PerNode) / (1 << 20) }, false),
		line("process RSS per node", withMem, func(p Point) float64 { return float64(p.Memory.RSS) / (1 << 20) / float64(p.Nodes) }, true),
	}
	return mc.save(filepath.Join(ec.Out, "n_memory.png"))
}

// latencyModels are the link latencies the latency experiment compares.
var latencyModels = []Latency{
	FixedLatency(10 * time.Millisecond),
	{Kind: "uniform", A: 2 * time.Millisecond, B: 38 * time.Millisecond},
	{Kind: "lognormal", A: 15 * time.Millisecond, B: 700 * time.Millisecond}, // sigma 0.7
}

// runLatency measures lookups under several link-latency models with every
// node up, one lookup at a time.
func (ec ExperimentConfig) runLatency(ctx context.Context) error {
	var points []Point
	m := 4
	if len(ec.Replication) > 0 {
		m = ec.Replication[0]
	}
	for i, l := range latencyModels {
		lc := ec
		lc.Latency = l
		nw, mem, err := lc.network(ctx, ec.Nodes, m)
		if err != nil {
			return err
		}
		w := lc.workload(1, "latency "+l.String())
		w.Concurrency = 1
		res, err := w.Run(ctx, nw, ec.Seed+uint64(i))
		cerr := nw.Close()
		if err := errors.Join(err, cerr); err != nil {
			return err
		}
		res.Memory = &mem
		p := Point{Experiment: "latency", X: float64(i), Results: res}
		for _, o := range res.Outcomes {
			if o.Err == nil && res.RPCRTTMS > 0 {
				p.LatencyRTTs = append(p.LatencyRTTs, ms(o.Stats.Duration)/res.RPCRTTMS)
			}
		}
		ec.logPoint(p)
		points = append(points, p)
	}
	if err := ec.writePoints("latency", points); err != nil {
		return err
	}
	return ec.plotLatency(points)
}

func (ec ExperimentConfig) plotLatency(points []Point) error {
	nodes, m := ec.Nodes, 4
	if len(points) > 0 {
		nodes, m = points[0].Nodes, points[0].Replication
	}
	c := chart{
		title:  fmt.Sprintf("Lookup latency in RPC round trips (N=%d, m=%d, every node up)", nodes, m),
		xlabel: "lookup latency / median RPC round trip", ylabel: "share of lookups (CDF)", yMin: 0, yMax: 1.02,
	}
	for _, p := range points {
		xs := slices.Clone(p.LatencyRTTs)
		slices.Sort(xs)
		ys := make([]float64, len(xs))
		for i := range xs {
			ys[i] = float64(i+1) / float64(len(xs))
		}
		c.series = append(c.series, series{name: fmt.Sprintf("%s links (RTT %.1f ms)", p.Latency, p.RPCRTTMS), xs: xs, ys: ys})
	}
	if err := c.save(filepath.Join(ec.Out, "latency.png")); err != nil {
		return err
	}
	return hopBars(filepath.Join(ec.Out, "latency_hops.png"), fmt.Sprintf("Hop histogram (N=%d)", nodes), points, func(p Point) string { return p.Latency })
}

// hopBars draws the hop histograms of points side by side, as shares.
func hopBars(path, title string, points []Point, name func(Point) string) error {
	maxHops := 0
	for _, p := range points {
		maxHops = max(maxHops, len(p.HopHistogram))
	}
	cats := make([]string, maxHops)
	for i := range cats {
		cats[i] = strconv.Itoa(i)
	}
	var groups []barGroup
	for _, p := range points {
		g := barGroup{name: name(p), values: make([]float64, maxHops)}
		total := 0
		for _, c := range p.HopHistogram {
			total += c
		}
		for h, c := range p.HopHistogram {
			g.values[h] = float64(c) / float64(max(total, 1))
		}
		groups = append(groups, g)
	}
	return saveBars(path, title, "hops (referral depth of the walk)", "share of lookups", cats, groups)
}

func filter(points []Point, keep func(Point) bool) []Point {
	var out []Point
	for _, p := range points {
		if keep(p) {
			out = append(out, p)
		}
	}
	return out
}

// measured is the success rate of points with their 95 % intervals.
func measured(name string, points []Point) series {
	s := series{name: name, points: true}
	for _, p := range points {
		s.xs = append(s.xs, p.X)
		s.ys = append(s.ys, p.SuccessRate)
		s.lo = append(s.lo, p.SuccessCI95[0])
		s.hi = append(s.hi, p.SuccessCI95[1])
	}
	return s
}

func line(name string, points []Point, y func(Point) float64, dashes bool) series {
	s := series{name: name, dashes: dashes}
	for _, p := range points {
		s.xs = append(s.xs, p.X)
		s.ys = append(s.ys, y(p))
	}
	return s
}

// modelCurve samples f finely between the ends of xs.
func modelCurve(name string, xs []float64, f func(float64) float64) series {
	s := series{name: name}
	if len(xs) == 0 {
		return s
	}
	lo, hi := slices.Min(xs), slices.Max(xs)
	const steps = 100
	for i := range steps + 1 {
		x := lo + (hi-lo)*float64(i)/steps
		s.xs = append(s.xs, x)
		s.ys = append(s.ys, f(x))
	}
	return s
}

// csvHeader and csvRow are the columns of a sweep's CSV.
var csvHeader = []string{
	"experiment", "x", "nodes", "replication", "rp", "lookups", "epochs", "successes", "success_rate", "ci95_lo", "ci95_hi",
	"holder_alive_rate", "hops_mean", "queried_mean", "model_success", "replica_bound", "r_server_1",
	"latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "rpc_rtt_ms", "latency_p50_rtt", "latency_p95_rtt", "latency_p99_rtt",
	"stored_on_mean", "nodes_down_mean", "announce_errors", "lookup_errors", "mem_per_node_bytes", "rss_bytes", "seconds", "hop_histogram",
}

func csvRow(p Point) []string {
	r := p.Results
	f := func(x float64) string { return strconv.FormatFloat(x, 'g', 6, 64) }
	var perNode, rss uint64
	if r.Memory != nil {
		perNode, rss = r.Memory.PerNode, r.Memory.RSS
	}
	hist := make([]string, len(r.HopHistogram))
	for i, c := range r.HopHistogram {
		hist[i] = strconv.Itoa(c)
	}
	return []string{
		p.Experiment, f(p.X), strconv.Itoa(r.Nodes), strconv.Itoa(r.Replication), f(r.Rp), strconv.Itoa(r.Lookups), strconv.Itoa(r.Epochs),
		strconv.Itoa(r.Successes), f(r.SuccessRate), f(r.SuccessCI95[0]), f(r.SuccessCI95[1]),
		f(r.HolderAliveRate), f(r.HopsMean), f(r.QueriedMean), f(r.ModelSuccess), f(r.ReplicaBound), f(r.RServer1),
		f(r.LatencyMS.P50), f(r.LatencyMS.P95), f(r.LatencyMS.P99), f(r.RPCRTTMS), f(r.LatencyRTT.P50), f(r.LatencyRTT.P95), f(r.LatencyRTT.P99),
		f(r.StoredOnMean), f(r.DownMean), strconv.Itoa(r.AnnounceErrors), strconv.Itoa(r.LookupErrors),
		strconv.FormatUint(perNode, 10), strconv.FormatUint(rss, 10), f(r.Seconds), strings.Join(hist, " "),
	}
}

// writePoints writes NAME.csv and NAME.json.
func (ec ExperimentConfig) writePoints(name string, points []Point) error {
	rows := [][]string{csvHeader}
	for _, p := range points {
		rows = append(rows, csvRow(p))
	}
	if err := writeCSV(filepath.Join(ec.Out, name+".csv"), rows); err != nil {
		return err
	}
	return writeJSON(filepath.Join(ec.Out, name+".json"), struct {
		Experiment string           `json:"experiment"`
		Command    string           `json:"command,omitempty"`
		Config     ExperimentConfig `json:"config"`
		Points     []Point          `json:"points"`
	}{name, ec.Command, ec, points})
}

func writeCSV(path string, rows [][]string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	if err := w.WriteAll(rows); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// writeJSON writes v, indented, to path.
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// WriteResults writes a run's results.json and lookups.csv (one row per
// lookup) to dir.
func WriteResults(dir string, res *Results) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := writeJSON(filepath.Join(dir, "results.json"), res); err != nil {
		return err
	}
	rows := [][]string{{"epoch", "from", "key", "found", "peers", "live_holders", "hops", "queried", "asked", "answered", "duration_ms", "error", "early"}}
	for _, o := range res.Outcomes {
		errText := ""
		if o.Err != nil {
			errText = o.Err.Error()
		}
		rows = append(rows, []string{
			strconv.Itoa(o.Epoch), strconv.Itoa(o.From), res.Schedule.Keys[o.Key].Hex(), strconv.FormatBool(o.Found),
			strconv.Itoa(o.Peers), strconv.Itoa(o.LiveHolders), strconv.Itoa(o.Stats.Hops), strconv.Itoa(o.Stats.Queried),
			strconv.Itoa(o.Stats.Asked), strconv.Itoa(o.Stats.Answered), strconv.FormatFloat(ms(o.Stats.Duration), 'f', 3, 64), errText,
			strconv.FormatBool(o.Stats.Early),
		})
	}
	return writeCSV(filepath.Join(dir, "lookups.csv"), rows)
}
