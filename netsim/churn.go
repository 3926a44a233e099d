package netsim

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/kadtracker/kadtracker/records"
)

// Churn is failure and repair in compressed time: every node but the
// announcers stays up for an exponential time of mean MTTF, then down for
// one of mean MTTR, and so on; while it is down its store survives (a
// restarted daemon keeps its records). Announcers republish every
// Republish; lookups run from random live nodes at a steady rate. Unlike
// the reliability model's runs, here republishing repairs what failures
// take away.
type Churn struct {
	MTTF time.Duration `json:"mttf"` // simulated
	MTTR time.Duration `json:"mttr"` // simulated
	// Republish are the republish intervals swept (simulated); the record
	// TTL is TTLFactor times the interval, as the daemon's defaults are.
	Republish []time.Duration `json:"republish"`
	TTLFactor float64         `json:"ttl_factor"`
	// WarmupHours of churn before lookups count, then Hours measured.
	WarmupHours float64 `json:"warmup_hours"`
	Hours       float64 `json:"hours"`
	// SecondsPerHour is the compression: real seconds per simulated hour.
	SecondsPerHour float64 `json:"real_seconds_per_hour"`
	// Keys torrents, each announced by a node that never fails.
	Keys           int     `json:"keys"`
	LookupsPerHour float64 `json:"lookups_per_hour"`
	Concurrency    int     `json:"concurrency"`
}

// DefaultChurn is harsh churn, nodes up half the time in sessions of half
// an hour, so that the republish interval matters at small m.
func DefaultChurn() Churn {
	return Churn{
		MTTF:           30 * time.Minute,
		MTTR:           30 * time.Minute,
		Republish:      []time.Duration{5 * time.Minute, 10 * time.Minute, 20 * time.Minute, 40 * time.Minute, 80 * time.Minute},
		TTLFactor:      3,
		WarmupHours:    0.5,
		Hours:          3,
		SecondsPerHour: 30,
		Keys:           16,
		LookupsPerHour: 300,
		Concurrency:    8,
	}
}

// Validate reports every problem with c.
func (c Churn) Validate() error {
	var errs []error
	if c.MTTF <= 0 || c.MTTR <= 0 {
		errs = append(errs, errors.New("netsim: MTTF and MTTR must be positive"))
	}
	if len(c.Republish) == 0 || c.TTLFactor <= 1 {
		errs = append(errs, errors.New("netsim: churn needs republish intervals and a TTL factor above 1"))
	}
	for _, r := range c.Republish {
		if r <= 0 {
			errs = append(errs, errors.New("netsim: republish intervals must be positive"))
		}
	}
	if c.WarmupHours < 0 || !(c.Hours > 0 && c.SecondsPerHour > 0 && c.LookupsPerHour > 0) || c.Keys < 1 || c.Concurrency < 1 {
		errs = append(errs, errors.New("netsim: churn durations, rates, keys and concurrency must be positive"))
	}
	return errors.Join(errs...)
}

// Availability is MTTF/(MTTF+MTTR), the share of time a node is up.
func (c Churn) Availability() float64 {
	return c.MTTF.Hours() / (c.MTTF.Hours() + c.MTTR.Hours())
}

// RepairModel is the success a lookup can expect under churn with
// republishing every T to m nodes. A republish puts the record on m nodes
// that are up; a node up at time 0 is up at age a with probability
// p(a) = A + (1-A)·e^(-a(1/MTTF+1/MTTR)); lookups come at a uniform age in
// [0, T), so success is 1 - (1/T)∫(1-p(a))^m da. As T grows it falls to the
// replica bound 1-(1-A)^m; copies left on nodes that were holders before
// are ignored, which makes the model a little pessimistic.
func RepairModel(mttf, mttr, t time.Duration, m int) float64 {
	a := mttf.Hours() / (mttf.Hours() + mttr.Hours())
	rate := 1/mttf.Hours() + 1/mttr.Hours()
	T := t.Hours()
	const steps = 2000
	sum := 0.0
	for i := range steps {
		age := (float64(i) + 0.5) / steps * T
		p := a + (1-a)*math.Exp(-rate*age)
		sum += math.Pow(1-p, float64(m))
	}
	return 1 - sum/steps
}

// RepairModelTTL counts the copies older republishes left as well: a
// lookup asks the m closest live nodes, and one of them has the record if
// it was up at any republish of the last TTL. For a node up now, the chance
// it was down at the republish of age a is (1-A)(1-e^(-ra)), and down again
// T earlier (1-A)+A·e^(-rT) (the chain is reversible), r = 1/MTTF+1/MTTR.
// It takes a node up at a republish to have been among the m closest live
// nodes then, which need not be so when nodes closer to the key were up
// too, so it is optimistic where RepairModel is pessimistic; the truth lies
// between them.
func RepairModelTTL(mttf, mttr, t, ttl time.Duration, m int) float64 {
	a := mttf.Hours() / (mttf.Hours() + mttr.Hours())
	rate := 1/mttf.Hours() + 1/mttr.Hours()
	T, L := t.Hours(), ttl.Hours()
	again := (1 - a) + a*math.Exp(-rate*T)
	const steps = 2000
	sum := 0.0
	for i := range steps {
		age := (float64(i) + 0.5) / steps * T
		copies := 0
		for k := 0; age+float64(k)*T < L; k++ {
			copies++
		}
		if copies == 0 {
			sum++ // every copy has expired
			continue
		}
		none := (1 - a) * (1 - math.Exp(-rate*age)) * math.Pow(again, float64(copies-1))
		sum += math.Pow(none, float64(m))
	}
	return 1 - sum/steps
}

// ChurnResult is one run: one m and one republish interval.
type ChurnResult struct {
	Nodes        int           `json:"nodes"`
	Replication  int           `json:"replication"`
	Republish    time.Duration `json:"republish"`
	RecordTTL    time.Duration `json:"record_ttl"`
	MTTF         time.Duration `json:"mttf"`
	MTTR         time.Duration `json:"mttr"`
	Availability float64       `json:"availability"`
	Lookups      int           `json:"lookups"`
	Successes    int           `json:"successes"`
	SuccessRate  float64       `json:"success_rate"`
	SuccessCI95  [2]float64    `json:"success_ci95"`
	HopsMean     float64       `json:"hops_mean"`
	// RepairModel and RepairModelTTL are the models with republishing
	// (pessimistic and optimistic); ReplicaBound the one without (republish
	// interval → ∞); ModelSuccess R_DHT with Rp = A.
	RepairModel    float64 `json:"repair_model"`
	RepairModelTTL float64 `json:"repair_model_ttl"`
	ReplicaBound   float64 `json:"replica_bound"`
	ModelSuccess   float64 `json:"model_success"`
	// DownMean is the share of churning nodes down when lookups ran.
	DownMean     float64 `json:"down_share_mean"`
	LookupErrors int     `json:"lookup_errors"`
	Failures     int     `json:"failures"`
	Seconds      float64 `json:"seconds"`
}

type churnEvent struct {
	at   time.Duration // simulated, since the start
	kind int           // churnFail, churnRepair, churnLookup
	node int
	seq  int
}

const (
	churnFail = iota
	churnRepair
	churnLookup
)

type churnQueue []churnEvent

func (q churnQueue) Len() int { return len(q) }
func (q churnQueue) Less(i, j int) bool {
	if q[i].at != q[j].at {
		return q[i].at < q[j].at
	}
	return q[i].seq < q[j].seq
}
func (q churnQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *churnQueue) Push(x any)   { *q = append(*q, x.(churnEvent)) }
func (q *churnQueue) Pop() any {
	old := *q
	x := old[len(old)-1]
	*q = old[:len(old)-1]
	return x
}

// Run churns nw, whose nodes run on clock and republish every republish,
// and measures lookups. Nodes 0..Keys-1 are the announcers and never fail.
func (c Churn) Run(ctx context.Context, nw *Network, clock *SimClock, republish time.Duration, seed uint64) (*ChurnResult, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if c.Keys >= nw.Size() {
		return nil, fmt.Errorf("netsim: %d announcers in a %d-node network", c.Keys, nw.Size())
	}
	start := time.Now()
	m := nw.cfg.Node.Replication
	res := &ChurnResult{
		Nodes: nw.Size(), Replication: m, Republish: republish, RecordTTL: nw.cfg.Node.RecordTTL,
		MTTF: c.MTTF, MTTR: c.MTTR, Availability: c.Availability(),
	}
	rng := rand.New(rand.NewPCG(seed, 0x6368_7572_6e))
	keys := make([]records.Key, c.Keys)
	for k := range keys {
		key, err := randomKey(rng)
		if err != nil {
			return nil, err
		}
		keys[k] = key
		if _, err := nw.Node(k).Announce(ctx, key, 6881, true); err != nil {
			return nil, fmt.Errorf("netsim: announce %d: %w", k, err)
		}
	}
	defer nw.SetDown(nil)

	exp := func(mean time.Duration) time.Duration { return time.Duration(rng.ExpFloat64() * float64(mean)) }
	warmup := time.Duration(c.WarmupHours * float64(time.Hour))
	end := warmup + time.Duration(c.Hours*float64(time.Hour))
	q := &churnQueue{}
	seq := 0
	push := func(at time.Duration, kind, node int) {
		heap.Push(q, churnEvent{at: at, kind: kind, node: node, seq: seq})
		seq++
	}
	for i := c.Keys; i < nw.Size(); i++ {
		// Start in the stationary state: up with probability A.
		if rng.Float64() < res.Availability {
			push(exp(c.MTTF), churnFail, i)
		} else {
			push(0, churnFail, i)
		}
	}
	gap := time.Duration(float64(time.Hour) / c.LookupsPerHour)
	for at := warmup; at < end; at += gap {
		push(at, churnLookup, -1)
	}

	type outcome struct {
		found bool
		hops  int
		err   error
	}
	var (
		mu       sync.Mutex
		outcomes []outcome
		downSum  float64
		wg       sync.WaitGroup
	)
	defer wg.Wait()
	sem := make(chan struct{}, c.Concurrency)
	spawn := func(f func()) error {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		wg.Go(func() {
			defer func() { <-sem }()
			f()
		})
		return nil
	}
	origin := clock.Now()
	churning := nw.Size() - c.Keys
	for q.Len() > 0 {
		ev := heap.Pop(q).(churnEvent)
		if ev.at > end {
			break
		}
		if err := clock.SleepUntil(ctx, origin.Add(ev.at)); err != nil {
			return nil, err
		}
		var err error
		switch ev.kind {
		case churnFail:
			nw.Fail(ev.node)
			res.Failures++
			push(ev.at+exp(c.MTTR), churnRepair, ev.node)
		case churnRepair:
			nw.Repair(ev.node)
			push(ev.at+exp(c.MTTF), churnFail, ev.node)
			// A restarted daemon rejoins: one refresh of its routing table.
			nd := nw.Node(ev.node)
			err = spawn(func() {
				rctx, cancel := context.WithTimeout(ctx, clock.Real(c.MTTF))
				defer cancel()
				select {
				case <-nd.DHT().RefreshRoutingTable():
				case <-rctx.Done():
				}
			})
		case churnLookup:
			var up []int
			down := 0
			for i := range nw.Size() {
				if nw.Up(i) {
					up = append(up, i)
				} else {
					down++
				}
			}
			downSum += float64(down) / float64(churning)
			from, k := up[rng.IntN(len(up))], rng.IntN(c.Keys)
			err = spawn(func() {
				lctx, cancel := context.WithTimeout(ctx, time.Minute)
				defer cancel()
				lr, lerr := nw.Node(from).Lookup(lctx, keys[k], 50)
				o := outcome{hops: lr.Stats.Hops, err: lerr}
				for _, p := range lr.Peers {
					if p.Announcer == nw.Node(k).ID() {
						o.found = true
					}
				}
				mu.Lock()
				outcomes = append(outcomes, o)
				mu.Unlock()
			})
		}
		if err != nil {
			return nil, err
		}
	}
	wg.Wait()
	hops := 0
	for _, o := range outcomes {
		res.Successes += btoi(o.found)
		res.LookupErrors += btoi(o.err != nil)
		hops += o.hops
	}
	res.Lookups = len(outcomes)
	if res.Lookups > 0 {
		res.SuccessRate = float64(res.Successes) / float64(res.Lookups)
		res.HopsMean = float64(hops) / float64(res.Lookups)
		res.DownMean = downSum / float64(res.Lookups)
	}
	lo, hi := Wilson(res.Successes, res.Lookups, 1.96)
	res.SuccessCI95 = [2]float64{lo, hi}
	res.RepairModel = RepairModel(c.MTTF, c.MTTR, republish, m)
	res.RepairModelTTL = RepairModelTTL(c.MTTF, c.MTTR, republish, res.RecordTTL, m)
	res.ReplicaBound = ReplicaBound(res.Availability, m)
	res.ModelSuccess = RDHT(res.Availability, m, res.HopsMean)
	res.Seconds = time.Since(start).Seconds()
	return res, nil
}

// runChurn sweeps the republish interval for each m.
func (ec ExperimentConfig) runChurn(ctx context.Context) error {
	c := ec.Churn
	if err := c.Validate(); err != nil {
		return err
	}
	ms := ec.Replication
	if len(ms) == 0 {
		ms = []int{2, 4}
	}
	var results []*ChurnResult
	for _, m := range ms {
		for i, rep := range c.Republish {
			clock := NewSimClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), 3600/c.SecondsPerHour)
			cfg := DefaultConfig()
			cfg.Nodes, cfg.Seed, cfg.Latency, cfg.MaxConns = ec.Nodes, ec.Seed, ec.Latency, ec.MaxConns
			cfg.Clock = clock.Now
			cfg.Logger = ec.Logger
			cfg.Node.Replication = m
			cfg.Node.RecordTTL = time.Duration(c.TTLFactor * float64(rep))
			cfg.Node.MaxRecordTTL = cfg.Node.RecordTTL
			cfg.Node.RepublishInterval = clock.Real(rep) // a real-time ticker
			stage := fmt.Sprintf("churn m=%d republish=%s", m, rep)
			cfg.Progress = func(done, total int) { ec.progress(stage+" build", done, total) }
			nw, err := New(ctx, cfg)
			if err != nil {
				return err
			}
			stop := make(chan struct{})
			var wg sync.WaitGroup
			total := int((c.WarmupHours + c.Hours) * 60)
			wg.Go(func() {
				t := time.NewTicker(500 * time.Millisecond)
				defer t.Stop()
				begin := clock.Now()
				for {
					select {
					case <-stop:
						return
					case <-t.C:
						ec.progress(stage+" (simulated minutes)", int(clock.Now().Sub(begin).Minutes()), total)
					}
				}
			})
			res, err := c.Run(ctx, nw, clock, rep, ec.Seed+uint64(i))
			close(stop)
			wg.Wait()
			if cerr := nw.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(ec.Log, "churn m=%d republish=%s ttl=%s A=%.2f: success %.3f [%.3f, %.3f] of %d lookups, repair model %.3f..%.3f, without repair %.3f, R_DHT %.3f, hops %.2f, %d failures (%.0fs)\n",
				m, rep, res.RecordTTL, res.Availability, res.SuccessRate, res.SuccessCI95[0], res.SuccessCI95[1], res.Lookups,
				res.RepairModel, res.RepairModelTTL, res.ReplicaBound, res.ModelSuccess, res.HopsMean, res.Failures, res.Seconds)
			results = append(results, res)
		}
	}
	if err := writeJSON(filepath.Join(ec.Out, "churn.json"), churnDoc{ec.Command, c, ec.Nodes, results}); err != nil {
		return err
	}
	rows := [][]string{{"nodes", "replication", "republish_minutes", "record_ttl_minutes", "mttf_minutes", "mttr_minutes", "availability",
		"lookups", "successes", "success_rate", "ci95_lo", "ci95_hi", "repair_model", "repair_model_ttl", "replica_bound", "model_success", "hops_mean", "down_share_mean", "lookup_errors", "failures"}}
	f := func(x float64) string { return fmt.Sprintf("%.6g", x) }
	for _, r := range results {
		rows = append(rows, []string{fmt.Sprint(r.Nodes), fmt.Sprint(r.Replication), f(r.Republish.Minutes()), f(r.RecordTTL.Minutes()), f(r.MTTF.Minutes()), f(r.MTTR.Minutes()),
			f(r.Availability), fmt.Sprint(r.Lookups), fmt.Sprint(r.Successes), f(r.SuccessRate), f(r.SuccessCI95[0]), f(r.SuccessCI95[1]),
			f(r.RepairModel), f(r.RepairModelTTL), f(r.ReplicaBound), f(r.ModelSuccess), f(r.HopsMean), f(r.DownMean), fmt.Sprint(r.LookupErrors), fmt.Sprint(r.Failures)})
	}
	if err := writeCSV(filepath.Join(ec.Out, "churn.csv"), rows); err != nil {
		return err
	}
	return ec.plotChurn(results)
}

// churnDoc is churn.json.
type churnDoc struct {
	Command string         `json:"command,omitempty"`
	Config  Churn          `json:"config"`
	Nodes   int            `json:"nodes"`
	Results []*ChurnResult `json:"results"`
}

func (ec ExperimentConfig) plotChurn(results []*ChurnResult) error {
	c := ec.Churn
	ch := chart{
		title:  fmt.Sprintf("Lookup success under churn against the republish interval (N=%d, MTTF=%s, MTTR=%s)", ec.Nodes, c.MTTF, c.MTTR),
		xlabel: fmt.Sprintf("republish interval / MTTF (log scale); record TTL = %g × republish interval", c.TTLFactor), ylabel: "lookup success", logX: true, yMin: 0.5, yMax: 1.01,
	}
	var xs []float64
	for _, rep := range c.Republish {
		xs = append(xs, rep.Hours()/c.MTTF.Hours())
	}
	var ms []int
	for _, r := range results {
		if !slices.Contains(ms, r.Replication) {
			ms = append(ms, r.Replication)
		}
	}
	ch.xTicks = xs
	for i, m := range ms {
		s := series{name: fmt.Sprintf("measured, m=%d", m), points: true}
		for _, r := range results {
			if r.Replication == m {
				s.xs = append(s.xs, r.Republish.Hours()/c.MTTF.Hours())
				s.ys = append(s.ys, r.SuccessRate)
				s.lo = append(s.lo, r.SuccessCI95[0])
				s.hi = append(s.hi, r.SuccessCI95[1])
			}
		}
		model := modelCurve(fmt.Sprintf("repair model, last republish only, m=%d", m), xs, func(x float64) float64 {
			return RepairModel(c.MTTF, c.MTTR, time.Duration(x*float64(c.MTTF)), m)
		})
		withTTL := modelCurve(fmt.Sprintf("repair model, every copy within the TTL, m=%d", m), xs, func(x float64) float64 {
			t := time.Duration(x * float64(c.MTTF))
			return RepairModelTTL(c.MTTF, c.MTTR, t, time.Duration(c.TTLFactor*float64(t)), m)
		})
		withTTL.dashes = true
		bound := modelCurve(fmt.Sprintf("no repair: 1-(1-A)^m, m=%d", m), xs, func(float64) float64 { return ReplicaBound(c.Availability(), m) })
		bound.dotted = true
		ch.series = append(ch.series, colored(i, s, model, withTTL, bound)...)
	}
	return ch.save(filepath.Join(ec.Out, "churn.png"))
}
