package netsim

import (
	"context"
	"errors"
	"math"
	"runtime"
	"testing"
	"time"
)

// newTestNetwork builds an n-node network with replication m and registers
// its Close.
func newTestNetwork(t *testing.T, n, m int, seed uint64, tweak func(*Config)) *Network {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Nodes = n
	cfg.Seed = seed
	cfg.Node.Replication = m
	cfg.RefreshRounds = 1
	if tweak != nil {
		tweak(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	nw, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := nw.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return nw
}

func run(t *testing.T, nw *Network, w Uniform, seed uint64) *Results {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := w.Run(ctx, nw, seed)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("N=%d m=%d rp=%.2f: success %.3f (holders alive %.3f), model %.3f, bound %.3f, hops %.2f %v, stored on %.2f, latency p50 %.1f ms = %.1f RTT (RTT %.2f ms), %.1fs",
		res.Nodes, res.Replication, res.Rp, res.SuccessRate, res.HolderAliveRate, res.ModelSuccess, res.ReplicaBound,
		res.HopsMean, res.HopHistogram, res.StoredOnMean, res.LatencyMS.P50, res.LatencyRTT.P50, res.RPCRTTMS, res.Seconds)
	return res
}

// TestWorkload runs the model's workload on one 40-node network, first
// with every node up, then with failures.
func TestWorkload(t *testing.T) {
	const nodes, m = 40, 3
	latency := 2 * time.Millisecond
	nw := newTestNetwork(t, nodes, m, 1, func(c *Config) { c.Latency = FixedLatency(latency) })
	t.Run("no failures", func(t *testing.T) { testNoFailures(t, nw, latency) })
	t.Run("failures", func(t *testing.T) { testFailures(t, nw) })
}

// With every node up, every lookup finds the record, stored on exactly m
// nodes.
func testNoFailures(t *testing.T, nw *Network, latency time.Duration) {
	m := nw.cfg.Node.Replication
	w := DefaultUniform()
	w.Keys, w.Lookups = 40, 100
	res := run(t, nw, w, 1)

	if res.Successes != res.Lookups || res.SuccessRate != 1 {
		for _, o := range res.Outcomes {
			if !o.Found {
				t.Errorf("lookup %+v: found %d peers, err %v, stats %+v", o.LookupOp, o.Peers, o.Err, o.Stats)
			}
		}
		t.Fatalf("%d of %d lookups succeeded with no failures", res.Successes, res.Lookups)
	}
	if res.AnnounceErrors != 0 || res.LookupErrors != 0 {
		t.Fatalf("%d announce and %d lookup errors", res.AnnounceErrors, res.LookupErrors)
	}
	if res.StoredOnMean != float64(m) {
		t.Fatalf("records stored on %v nodes on average, want %d", res.StoredOnMean, m)
	}
	if res.HolderAliveRate != 1 || res.ModelSuccess != 1 || res.ReplicaBound != 1 {
		t.Fatalf("holders alive %v, model %v, bound %v: want 1", res.HolderAliveRate, res.ModelSuccess, res.ReplicaBound)
	}
	// Every walk that ends takes at least one hop; an early answer may come
	// from routing-table nodes before the walk's first answer (0 hops).
	for _, o := range res.Outcomes {
		if o.Stats.Hops == 0 && !o.Stats.Early {
			t.Fatalf("lookup %+v: stats %+v: a walk that ended took no hop", o.LookupOp, o.Stats)
		}
	}
	if res.HopsMean < 0.5 || len(res.HopHistogram) < 2 {
		t.Fatalf("hops mean %.2f, histogram %v: walks take a hop", res.HopsMean, res.HopHistogram)
	}
	// One round trip is two link latencies, and a little scheduling.
	rtt := 2 * ms(latency)
	if res.RPCRTTMS < rtt || res.RPCRTTMS > rtt+50 {
		t.Fatalf("RPC round trip %.2f ms on %v links, want about %.0f ms", res.RPCRTTMS, latency, rtt)
	}
	// A lookup is at least a GET: one round trip.
	if res.LatencyRTT.P50 < 1 || res.LatencyMS.P50 > res.LatencyMS.P95 || res.LatencyMS.P95 > res.LatencyMS.P99 {
		t.Fatalf("latency %+v ms, %+v RTT", res.LatencyMS, res.LatencyRTT)
	}
}

// With failures, no lookup finds a record that no live node holds; nearly
// every lookup whose record has a live holder finds it; and the success
// rate lies between the series model R_DHT and the replica bound, within
// the 99.9 % Wilson interval of the measurement.
func testFailures(t *testing.T, nw *Network) {
	w := DefaultUniform()
	w.Rp, w.Epochs, w.Keys, w.Lookups = 0.5, 40, 120, 240
	res := run(t, nw, w, 2)

	if n := float64(nw.Size()); res.DownMean < n*0.3 || res.DownMean > n*0.7 {
		t.Fatalf("%.1f of %v nodes down on average at rp=%v", res.DownMean, n, w.Rp)
	}
	missed := 0
	for _, o := range res.Outcomes {
		if o.Found && o.LiveHolders == 0 {
			t.Fatalf("lookup %+v found a record no live node holds", o.LookupOp)
		}
		if !o.Found && o.LiveHolders > 0 {
			missed++
		}
	}
	// A walk in a small network reaches the live holders; allow a few
	// misses for routing tables that lost them.
	if limit := res.Lookups / 50; missed > limit {
		t.Fatalf("%d lookups missed a record a live node held (limit %d)", missed, limit)
	}
	lo, hi := Wilson(res.Successes, res.Lookups, 3.29)
	if hi < res.ModelSuccess || lo > res.ReplicaBound {
		t.Fatalf("success %.3f (99.9%% interval %.3f..%.3f) is not between the model %.3f and the replica bound %.3f",
			res.SuccessRate, lo, hi, res.ModelSuccess, res.ReplicaBound)
	}
	if res.LookupErrors != 0 {
		t.Fatalf("%d lookups failed outright", res.LookupErrors)
	}
}

// The same seed gives the same node identities, schedule, storing nodes and
// outcome counts; another seed a different schedule.
func TestSameSeedSameRun(t *testing.T) {
	const nodes, m, seed = 24, 2, 42
	w := DefaultUniform()
	w.Rp, w.Epochs, w.Keys, w.Lookups = 0.6, 10, 40, 80
	var runs []*Results
	for range 2 {
		nw := newTestNetwork(t, nodes, m, seed, nil)
		runs = append(runs, run(t, nw, w, seed))
		if err := nw.Close(); err != nil {
			t.Fatal(err)
		}
	}
	a, b := runs[0], runs[1]
	if a.ScheduleSHA256 != b.ScheduleSHA256 {
		t.Fatalf("schedules differ: %s and %s", a.ScheduleSHA256, b.ScheduleSHA256)
	}
	if a.HolderAliveRate != b.HolderAliveRate || a.StoredOnMean != b.StoredOnMean || a.DownMean != b.DownMean {
		t.Fatalf("storing nodes or failures differ: alive %v/%v, stored %v/%v, down %v/%v",
			a.HolderAliveRate, b.HolderAliveRate, a.StoredOnMean, b.StoredOnMean, a.DownMean, b.DownMean)
	}
	for i := range a.Outcomes {
		if a.Outcomes[i].LiveHolders != b.Outcomes[i].LiveHolders {
			t.Fatalf("lookup %d: %d live holders, then %d", i, a.Outcomes[i].LiveHolders, b.Outcomes[i].LiveHolders)
		}
	}
	// Which lookups succeed is decided by which storing nodes are up, which
	// the seed fixes; the walks' timing is not, but in a network this small
	// it never changes the outcome.
	if a.Successes != b.Successes {
		t.Fatalf("same seed, %d then %d successes", a.Successes, b.Successes)
	}
	other, err := w.Schedule(seed+1, nodes)
	if err != nil {
		t.Fatal(err)
	}
	if other.Hash() == a.ScheduleSHA256 {
		t.Fatal("another seed gave the same schedule")
	}
}

// A failed node refuses every dial at once and loses its connections; a
// repaired one answers again.
func TestFailAndRepair(t *testing.T) {
	nw := newTestNetwork(t, 12, 3, 3, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a, b := nw.Node(0), nw.Node(5)
	if _, err := a.PingRTT(ctx, b.ID()); err != nil {
		t.Fatal(err)
	}
	nw.Fail(5)
	if nw.Up(5) {
		t.Fatal("node 5 up after Fail")
	}
	if c := len(b.Host().Network().Conns()); c != 0 {
		t.Fatalf("a failed node has %d connections", c)
	}
	start := time.Now()
	_, err := a.PingRTT(ctx, b.ID())
	if !errors.Is(err, ErrDown) {
		t.Fatalf("ping of a failed node: %v, want ErrDown", err)
	}
	if _, err := b.PingRTT(ctx, a.ID()); !errors.Is(err, ErrDown) {
		t.Fatalf("ping from a failed node: %v, want ErrDown", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("failing dials took %v", d)
	}
	nw.Repair(5)
	if _, err := a.PingRTT(ctx, b.ID()); err != nil {
		t.Fatalf("ping after repair: %v", err)
	}
	if nw.Links() == 0 || nw.Conns() == 0 {
		t.Fatal("no links or connections counted")
	}
}

// TrimConns leaves at most MaxConns connections per node, and lookups work
// after it.
func TestTrimConns(t *testing.T) {
	const maxConns = 8
	nw := newTestNetwork(t, 20, 3, 4, func(c *Config) { c.MaxConns = maxConns })
	for i, nd := range nw.Nodes() {
		if c := len(nd.Host().Network().Conns()); c > maxConns {
			t.Fatalf("node %d has %d connections after the build, want at most %d", i, c, maxConns)
		}
	}
	w := DefaultUniform()
	w.Keys, w.Lookups = 10, 30
	res := run(t, nw, w, 4)
	if res.SuccessRate != 1 {
		t.Fatalf("success %.3f after trimming", res.SuccessRate)
	}
	before := nw.Conns()
	if closed := nw.TrimConns(); closed == 0 || nw.Conns() >= before {
		t.Fatalf("trim closed %d, connections %d -> %d", closed, before, nw.Conns())
	}
}

// Closing a network stops what it started.
func TestCloseLeavesNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	cfg := DefaultConfig()
	cfg.Nodes = 10
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	nw, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := nw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := nw.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		// libp2p and kad-dht keep a few package-level workers of their own.
		n := runtime.NumGoroutine()
		if n <= before+20 {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines before, %d after Close\n%s", before, n, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestConfigValidate(t *testing.T) {
	bad := []func(*Config){
		func(c *Config) { c.Nodes = 0 },
		func(c *Config) { c.Nodes = maxNodes + 1 },
		func(c *Config) { c.BootstrapPeers = 0 },
		func(c *Config) { c.Parallel = 0 },
		func(c *Config) { c.Latency = Latency{Kind: "gamma"} },
		func(c *Config) { c.Node.Replication = 0 },
	}
	for i, f := range bad {
		c := DefaultConfig()
		f(&c)
		if c.Validate() == nil {
			t.Errorf("case %d: invalid config accepted", i)
		}
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestModel(t *testing.T) {
	near := func(got, want float64) bool { return math.Abs(got-want) < 1e-9 }
	cases := []struct {
		name      string
		got, want float64
	}{
		{"bound m=1", ReplicaBound(0.7, 1), 0.7},
		{"bound m=3", ReplicaBound(0.5, 3), 0.875},
		{"R_DHT k=2", RDHT(0.5, 3, 2), 0.875 * 0.875},
		{"R_DHT k=0", RDHT(0.5, 3, 0), 1},
		{"R_server", RServer(0.9, 2), 0.99},
		{"lifespan", Lifespan(100, 10, 1), 10 * math.Log(100)},
		{"lifespan dead at birth", Lifespan(1, 10, 2), 0},
		{"repair model, instant republish", RepairModel(time.Hour, time.Hour, time.Nanosecond, 2), 1},
		{"repair model, no republish", math.Round(1e3*RepairModel(time.Hour, time.Hour, 1000*time.Hour, 2)) / 1e3, 0.75},
	}
	for _, c := range cases {
		if !near(c.got, c.want) {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if a, b := RepairModel(time.Hour, time.Hour, 10*time.Minute, 2), RepairModel(time.Hour, time.Hour, time.Hour, 2); !(a > b && b > 0.75) {
		t.Errorf("repair model: %v at 10 min, %v at an hour: want falling towards 0.75", a, b)
	}
	for _, T := range []time.Duration{10 * time.Minute, time.Hour, 3 * time.Hour} {
		pess, opt := RepairModel(time.Hour, time.Hour, T, 2), RepairModelTTL(time.Hour, time.Hour, T, 3*T, 2)
		if !(opt >= pess && pess >= 0.75) {
			t.Errorf("republish %v: repair models %v (last republish) and %v (within the TTL)", T, pess, opt)
		}
	}
	if a, b := RepairModelTTL(time.Hour, time.Hour, time.Hour, time.Hour, 2), RepairModel(time.Hour, time.Hour, time.Hour, 2); math.Abs(a-b) > 1e-3 {
		t.Errorf("with the TTL equal to the republish interval the models agree: %v and %v", a, b)
	}
	lo, hi := Wilson(50, 100, 1.96)
	if !(lo > 0.39 && lo < 0.41 && hi > 0.59 && hi < 0.61) {
		t.Errorf("Wilson(50, 100) = %v..%v, want about 0.40..0.60", lo, hi)
	}
	if lo, hi := Wilson(0, 0, 1.96); lo != 0 || hi != 1 {
		t.Errorf("Wilson of nothing = %v..%v", lo, hi)
	}
	p := percentiles([]float64{5, 1, 4, 2, 3})
	if p.P50 != 3 || p.P95 != 5 || p.Mean != 3 || p.Max != 5 {
		t.Errorf("percentiles = %+v", p)
	}
}

func TestLatency(t *testing.T) {
	for _, s := range []string{"10ms", "uniform:5ms,50ms", "normal:20ms,5ms", "lognormal:20ms,0.5"} {
		l, err := ParseLatency(s)
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		if l.String() != s {
			t.Errorf("ParseLatency(%q).String() = %q", s, l.String())
		}
		var sum time.Duration
		for i := range 200 {
			d := l.Link(9, i, i+1)
			if d < 0 || d != l.Link(9, i+1, i) {
				t.Fatalf("%s: link %d latency %v, reversed %v", s, i, d, l.Link(9, i+1, i))
			}
			sum += d
		}
		if mean, want := sum/200, l.Mean(); mean < want/2 || mean > want*2 {
			t.Errorf("%s: mean of draws %v, model mean %v", s, mean, want)
		}
	}
	u, _ := ParseLatency("uniform:5ms,50ms")
	if u.Link(1, 2, 3) == u.Link(2, 2, 3) && u.Link(1, 4, 5) == u.Link(2, 4, 5) {
		t.Error("the seed does not change the draws")
	}
	for _, s := range []string{"", "fast", "-1ms", "uniform:5ms", "uniform:50ms,5ms", "lognormal:1ms,x", "pareto:1ms,2ms"} {
		if _, err := ParseLatency(s); err == nil {
			t.Errorf("ParseLatency(%q) accepted", s)
		}
	}
}

// Schedules depend on the seed and sizes only, and obey the workload.
func TestSchedule(t *testing.T) {
	w := DefaultUniform()
	w.Rp, w.Epochs, w.Lookups, w.Keys = 0.3, 3, 100, 20
	a, err := w.Schedule(5, 64)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := w.Schedule(5, 64)
	if a.Hash() != b.Hash() {
		t.Fatal("same seed, different schedules")
	}
	if len(a.Lookups) != w.Lookups || len(a.Keys) != w.Keys || len(a.Down) != w.Epochs || len(a.Pings) != w.Pings {
		t.Fatalf("schedule sizes %d lookups, %d keys, %d epochs, %d pings", len(a.Lookups), len(a.Keys), len(a.Down), len(a.Pings))
	}
	down := 0
	for _, op := range a.Lookups {
		if a.Down[op.Epoch][op.From] {
			t.Fatalf("lookup %+v from a down node", op)
		}
	}
	for _, d := range a.Down {
		for _, x := range d {
			down += btoi(x)
		}
	}
	if share := float64(down) / float64(64*w.Epochs); share < 0.55 || share > 0.85 {
		t.Fatalf("%.2f of nodes down at rp=%v", share, w.Rp)
	}
	k0, _ := nodeKey(5, 0)
	k0again, _ := nodeKey(5, 0)
	k1, _ := nodeKey(5, 1)
	if !k0.Equals(k0again) || k0.Equals(k1) {
		t.Fatal("node keys are not a function of seed and index")
	}
}
