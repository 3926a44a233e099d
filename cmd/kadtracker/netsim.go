package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/kadtracker/kadtracker/netsim"
	"github.com/kadtracker/kadtracker/node"
)

// netsimCmd is `kadtracker netsim run|experiment NAME|process`, whose
// engines are netsim.RunCommand, ExperimentCommand and ProcessCommand.
type netsimCmd struct {
	sub  string   // run, experiment, process, plot-rtt or plot-publish
	name string   // the experiment
	dirs []string // plot-rtt's and plot-publish's run directories

	c                    netsim.Command
	latency, replication string // parsed into c when run
}

// netsimFlags says which subcommands each flag applies to.
var netsimFlags = map[string][]string{
	"nodes": {"run", "experiment", "process"}, "latency": {"run", "experiment"}, "bandwidth": {"run"},
	"replication": {"run", "experiment", "process"}, "rp": {"run", "experiment"}, "lookups": {"run", "experiment", "process"},
	"keys": {"run", "process"}, "epochs": {"run", "experiment"}, "seed": {"run", "experiment", "process"}, "out": {"run", "experiment", "process", "plot-rtt", "plot-publish"},
	"concurrency": {"run", "experiment"}, "max-conns": {"run", "experiment"}, "max-nodes": {"experiment"}, "full-lookup": {"run"}, "handshake-rtts": {"run"}, "full-announce": {"run"}, "busy-gc": {"run"}, "replot": {"experiment"},
	"binary": {"process"}, "netns": {"process"}, "nat-share": {"process"}, "duration": {"run", "process"}, "ttf": {"process"}, "ttr": {"process"},
	"republish": {"run", "process"}, "record-ttl": {"run", "process"}, "old-scheduler": {"run"},
	// Locality (issue 16).
	"latency-model": {"run"}, "locality": {"run"},
}

func setupNetsim(fs *flag.FlagSet, _ func(string) string) func([]string) (runner, error) {
	n := &netsimCmd{c: netsim.DefaultCommand()}
	c := &n.c
	c.CommandLine = strings.Join(append([]string{"kadtracker"}, os.Args[1:]...), " ")
	fs.IntVar(&c.Nodes, "nodes", 0, "`N` nodes")
	fs.Lookup("nodes").DefValue = "50 for run, 200 for experiments, 5 for process"
	fs.StringVar(&n.latency, "latency", "10ms", "one-way link `LATENCY`: a duration, uniform:MIN,MAX, normal:MEAN,SD or lognormal:MEDIAN,SIGMA (drawn once per link from the seed)")
	fs.Float64Var(&c.Bandwidth, "bandwidth", 0, "link bandwidth in `BYTES` a second, 0 for unlimited")
	fs.StringVar(&n.replication, "replication", "", "`M`, the storing nodes per record; experiments take a comma-separated list (rp and n: one curve each; m: the sweep)")
	fs.Lookup("replication").DefValue = fmt.Sprintf("%d for run, 3 for process; 2,4,8 for rp; 1..20 for m; 4 for the others", node.DefaultConfig().Replication)
	fs.Float64Var(&c.Rp, "rp", 0, "`P`, the probability that a node is up at lookup time (failures are drawn after the announces)")
	fs.Lookup("rp").DefValue = "1 for run, 0.5 for the m and n experiments"
	fs.IntVar(&c.Lookups, "lookups", 0, "`L` lookups (per point for experiments)")
	fs.Lookup("lookups").DefValue = "200 for run and process, 400 for experiments"
	fs.IntVar(&c.Keys, "keys", 0, "`K` torrents announced, each by one random node")
	fs.Lookup("keys").DefValue = "half the lookups for run, 4 for process"
	fs.IntVar(&c.Epochs, "epochs", 0, "independent failure draws the lookups are spread over")
	fs.Lookup("epochs").DefValue = "20 for run, 40 for experiments"
	fs.Uint64Var(&c.Seed, "seed", c.Seed, "`S` seeds node identities, latencies, failures and the schedule: the same seed, the same schedule")
	fs.StringVar(&c.Out, "out", c.Out, "`DIR` for results.json and the experiments' CSV, JSON and PNG files")
	fs.IntVar(&c.Concurrency, "concurrency", c.Concurrency, "announces or lookups in flight at once")
	fs.IntVar(&c.MaxConns, "max-conns", 0, "trim each node's connections to `C` between phases (routing-table peers kept first), 0 to keep all: saves memory in large networks")
	fs.BoolVar(&c.FullLookup, "full-lookup", false, "wait for the whole DHT walk before asking the storing nodes (the lookup before the early answer), for comparison")
	fs.BoolVar(&c.FullAnnounce, "full-announce", false, "wait for the whole DHT walk before storing an announce's record (the announce before the early PUTs), for comparison")
	fs.BoolVar(&c.BusyGC, "busy-gc", false, "leave the Go collector running while announces and lookups are timed (by default it is held off then: one process holds every node's heap, and its collections stall the timed lookups), for comparison")
	fs.IntVar(&c.HandshakeRTTs, "handshake-rtts", 0, "round trips each new connection waits before it opens, for the handshake mocknet skips (QUIC 1, TCP+Noise 2-3)")
	fs.IntVar(&c.MaxNodes, "max-nodes", c.MaxNodes, "the largest `N` the n experiment tries (100, 200, 400, ... up to it)")
	fs.BoolVar(&c.Replot, "replot", false, "draw an experiment's plots again from the JSON in --out, without running it")
	fs.StringVar(&c.Binary, "binary", "", "the kadtracker `PATH` to start daemons from")
	fs.Lookup("binary").DefValue = "this executable"
	fs.BoolVar(&c.Netns, "netns", false, "put each daemon in a network namespace of its own with its own address (needs root and iproute2)")
	fs.Float64Var(&c.NATShare, "nat-share", 0, "put share `S` of the daemons (never the first) behind a NAT without port mapping, each in a LAN namespace behind a masquerading router namespace (needs --netns and nftables)")
	fs.DurationVar(&c.Duration, "duration", c.Duration, "how long the process scenario runs; for run, how long the lookups of the republish workload run (with --republish or --record-ttl as well, run is that workload: node 0 announces --keys torrents and republishes them)")
	fs.DurationVar(&c.TTF, "ttf", 0, "mean time to failure of a daemon (exponential; SIGKILL), 0 for no failures")
	fs.DurationVar(&c.TTR, "ttr", c.TTR, "mean time to repair (exponential; restart on the same data dir)")
	fs.DurationVar(&c.Republish, "republish", c.Republish, "the daemons' --republish (run: the nodes' republish interval, and the republish workload)")
	fs.DurationVar(&c.RecordTTL, "record-ttl", c.RecordTTL, "the daemons' --record-ttl (run: the nodes' record TTL, and the republish workload)")
	fs.BoolVar(&c.SerialRepublish, "old-scheduler", false, "run's republish workload with the old serial scheduler (a walk per key, one key after another), for comparison")
	// Locality (issue 16).
	fs.Var(oneOf{&c.LatencyModel, []string{"link", "geo"}}, "latency-model", "`MODEL` of link latency: link (--latency, per link) or geo (nodes in regions and cities; runs the locality workload first and adds locality to results.json)")
	fs.Lookup("latency-model").DefValue = "link"
	fs.Float64Var(&c.Locality, "locality", c.Locality, "the nodes' locality share `F` (0 off) that results.json's locality rtt_ms_* are measured at; the sweep adds 0, 0.25, 0.5, 0.75 and 1")

	return func(pos []string) (runner, error) {
		if len(pos) == 0 {
			return nil, errors.New("missing run, experiment NAME or process")
		}
		n.sub = pos[0]
		switch n.sub {
		case "run", "process":
			if err := wantArgs(pos[1:]); err != nil {
				return nil, err
			}
		case "plot-rtt", "plot-publish":
			if len(pos) < 2 {
				return nil, fmt.Errorf("%s needs the directories of netsim runs", n.sub)
			}
			n.dirs = pos[1:]
		case "experiment":
			if len(pos) != 2 {
				return nil, fmt.Errorf("experiment needs one NAME: %s", experimentNames())
			}
			n.name = pos[1]
			if !slices.Contains(strings.Split(experimentNames(), ", "), n.name) {
				return nil, fmt.Errorf("unknown experiment %q: want %s", n.name, experimentNames())
			}
		default:
			return nil, fmt.Errorf("unknown netsim command %q: want run, experiment NAME, process, plot-rtt or plot-publish", n.sub)
		}
		var wrong []string
		fs.Visit(func(f *flag.Flag) {
			if !slices.Contains(netsimFlags[f.Name], n.sub) {
				wrong = append(wrong, "--"+f.Name)
			}
		})
		if len(wrong) > 0 {
			return nil, fmt.Errorf("%s: not a flag of netsim %s", strings.Join(wrong, ", "), n.sub)
		}
		if n.sub == "run" {
			fs.Visit(func(f *flag.Flag) {
				c.Publish = c.Publish || f.Name == "republish" || f.Name == "record-ttl" || f.Name == "duration" || f.Name == "old-scheduler"
			})
		}
		if c.NATShare < 0 || c.NATShare >= 1 || (c.NATShare > 0 && !c.Netns) {
			return nil, errors.New("--nat-share must be in [0, 1) and needs --netns")
		}
		if c.Rp < 0 || c.Rp > 1 || c.Nodes < 0 || c.Lookups < 0 || c.Keys < 0 || c.Epochs < 0 {
			return nil, errors.New("--rp must be in 0..1; --nodes, --lookups, --keys and --epochs must not be negative")
		}
		return n, nil
	}
}

func experimentNames() string {
	var names []string
	for _, e := range netsim.Experiments {
		names = append(names, e.Name)
	}
	return strings.Join(names, ", ")
}

func (n *netsimCmd) run(ctx context.Context, stdout, stderr io.Writer) error {
	netsim.LimitMemory()
	bar := netsim.NewProgressBar(stdout)
	defer bar.Done()
	c := n.c
	c.Progress, c.Log = bar.Set, bar
	if n.sub == "process" && c.Binary == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("finding this executable: %w (set --binary)", err)
		}
		c.Binary = exe
	}
	if n.sub != "process" {
		lat, err := netsim.ParseLatency(n.latency)
		if err != nil {
			return err
		}
		c.Latency = lat
	}
	if n.replication != "" {
		for s := range strings.SplitSeq(n.replication, ",") {
			m, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil || m < 1 || m > 64 {
				return fmt.Errorf("--replication %q: want numbers in 1..64", n.replication)
			}
			c.Replication = append(c.Replication, m)
		}
	}
	if n.sub != "experiment" && len(c.Replication) > 1 {
		return fmt.Errorf("--replication: %s takes one value", n.sub)
	}

	switch n.sub {
	case "experiment":
		return netsim.ExperimentCommand(ctx, c, n.name)
	case "plot-rtt", "plot-publish":
		path, plot := filepath.Join(c.Out, "rtt_n.png"), netsim.PlotRunsRTT
		if n.sub == "plot-publish" {
			path, plot = filepath.Join(c.Out, "publish_k.png"), netsim.PlotRunsPublish
		}
		if err := os.MkdirAll(c.Out, 0o755); err != nil {
			return err
		}
		if err := plot(path, n.dirs); err != nil {
			return err
		}
		if n.sub == "plot-publish" {
			fmt.Fprintf(stdout, "wrote %s\n", path)
			return nil
		}
		announces := filepath.Join(c.Out, "rtt_announce.png")
		if err := netsim.PlotRunsAnnounceRTT(announces, n.dirs); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote %s and %s\n", path, announces)
		return nil
	case "run":
		res, err := netsim.RunCommand(ctx, c)
		if err != nil {
			return err
		}
		bar.Done()
		fmt.Fprintf(stdout, "N=%d m=%d rp=%.2f: %d of %d lookups found the record (%.3f, 95%% %.3f..%.3f); R_DHT %.3f (k=%.2f hops), replica bound %.3f\n",
			res.Nodes, res.Replication, res.Rp, res.Successes, res.Lookups, res.SuccessRate, res.SuccessCI95[0], res.SuccessCI95[1],
			res.ModelSuccess, res.HopsMean, res.ReplicaBound)
		fmt.Fprintf(stdout, "latency p50 %.1f ms, p95 %.1f ms, p99 %.1f ms; RPC round trip %.2f ms: p50 %.1f, p95 %.1f, p99 %.1f round trips\n",
			res.LatencyMS.P50, res.LatencyMS.P95, res.LatencyMS.P99, res.RPCRTTMS, res.LatencyRTT.P50, res.LatencyRTT.P95, res.LatencyRTT.P99)
		fmt.Fprintf(stdout, "announce p50 %.1f ms, p90 %.1f ms: p50 %.1f, p90 %.1f round trips\n",
			res.AnnounceMS.P50, res.AnnounceMS.P90, res.AnnounceRTT.P50, res.AnnounceRTT.P90)
		if res.Memory != nil {
			fmt.Fprintf(stdout, "built in %.0fs; %.2f MB per node (Go heap and stacks), RSS %.0f MB (peak %.0f MB)\n",
				res.BuildSeconds, float64(res.Memory.PerNode)/(1<<20), float64(res.Memory.RSS)/(1<<20), float64(res.Memory.PeakRSS)/(1<<20))
		}
		if res.Publish != nil {
			fmt.Fprintf(stdout, "%s\n", res.Publish)
		}
		if l := res.Locality; l != nil {
			fmt.Fprintf(stdout, "locality %.2f: median RTT to returned peers %.1f ms ranked, %.1f random, %.1f oracle; coordinates' median error %.3f, converged in %d rounds; swarms connected %v\n",
				l.Share, l.RTTMsRanked, l.RTTMsRandom, l.RTTMsOracle, l.CoordRelErrorMedian, l.RoundsToConverge, l.SwarmsConnected)
			for _, p := range l.Sweep {
				fmt.Fprintf(stdout, "  share %.2f: ranked %.1f ms (mean %.1f), random %.1f, oracle %.1f; swarms connected %.2f\n",
					p.Share, p.RTTMsRanked, p.RTTMsRankedMean, p.RTTMsRandom, p.RTTMsOracle, p.SwarmsConnected)
			}
		}
		fmt.Fprintf(stdout, "wrote %s/results.json and %s/lookups.csv\n", c.Out, c.Out)
		return nil
	}
	res, allPublic, err := netsim.ProcessCommand(ctx, c)
	if err != nil {
		return err
	}
	bar.Done()
	if allPublic != nil {
		fmt.Fprintf(stdout, "all public: %d of %d lookups found the record (%.3f, 95%% %.3f..%.3f), %d errors; latency p50 %.1f ms, p95 %.1f ms; %.1f nodes queried (in %s/all-public)\n",
			allPublic.Successes, allPublic.Lookups, allPublic.SuccessRate, allPublic.SuccessCI95[0], allPublic.SuccessCI95[1], allPublic.LookupErrors,
			allPublic.LatencyMS.P50, allPublic.LatencyMS.P95, allPublic.QueriedMean, c.Out)
	}
	fmt.Fprintf(stdout, "%d daemons, m=%d: %d of %d lookups found the record (%.3f, 95%% %.3f..%.3f), %d errors; %d kills, %d restarts; repair model %.3f..%.3f, no repair %.3f; latency p50 %.1f ms, p95 %.1f ms; %.1f nodes queried\n",
		res.Nodes, res.Replication, res.Successes, res.Lookups, res.SuccessRate, res.SuccessCI95[0], res.SuccessCI95[1], res.LookupErrors,
		res.Kills, res.Restarts, res.RepairModel, res.RepairModelTTL, res.ReplicaBound, res.LatencyMS.P50, res.LatencyMS.P95, res.QueriedMean)
	for _, r := range res.ByRole {
		fmt.Fprintf(stdout, "from %s daemons, %s announcers: %d of %d found, latency p50 %.1f ms, p95 %.1f ms\n",
			r.From, r.Announcer, r.Successes, r.Lookups, r.LatencyMS.P50, r.LatencyMS.P95)
	}
	if res.NATed > 0 {
		fmt.Fprintf(stdout, "%d daemons behind NAT without mapping, %d of them DHT clients\n", res.NATed, res.NATedClients)
	}
	fmt.Fprintf(stdout, "wrote %s/process.json, process_lookups.csv, process.png and logs/\n", c.Out)
	return nil
}
