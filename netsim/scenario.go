package netsim

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/kadtracker/kadtracker/records"
)

// ProcessRun is the scenario `kadtracker netsim process` runs on a cluster
// of daemons, through their local APIs: Keys torrents announced by daemons
// that never fail, then lookups from random running daemons at a steady
// pace for Duration. With TTF set, every other daemon is killed (SIGKILL)
// after an exponential time of mean TTF and restarted on its data directory
// after one of mean TTR, and so on, while the announcers republish: the
// repair the in-process reliability runs leave out.
type ProcessRun struct {
	Cluster  ClusterConfig
	Keys     int
	Lookups  int
	Duration time.Duration
	// TTF and TTR are the means of the exponential times to failure and
	// to repair; TTF 0 means no failures.
	TTF, TTR time.Duration
	Seed     uint64
	// Window is the width of the success-over-time bins.
	Window   time.Duration
	Progress func(done, total int)
	Log      io.Writer
}

// DefaultProcessRun is five daemons for two minutes.
func DefaultProcessRun() ProcessRun {
	return ProcessRun{
		Cluster:  DefaultClusterConfig(),
		Keys:     4,
		Lookups:  200,
		Duration: 2 * time.Minute,
		TTR:      20 * time.Second,
		Seed:     1,
		Window:   10 * time.Second,
	}
}

// ProcessResults are what a ProcessRun measured.
type ProcessResults struct {
	Nodes       int           `json:"nodes"`
	Replication int           `json:"replication"`
	RecordTTL   time.Duration `json:"record_ttl"`
	Republish   time.Duration `json:"republish"`
	TTF         time.Duration `json:"ttf"`
	TTR         time.Duration `json:"ttr"`
	Netns       bool          `json:"netns"`
	NATShare    float64       `json:"nat_share"`
	Internet    bool          `json:"internet_addrs"`
	// NATed daemons sit behind a NAT without port mapping; NATedClients
	// of them said they were DHT clients once started.
	NATed        int        `json:"nated"`
	NATedClients int        `json:"nated_clients"`
	Keys         int        `json:"keys"`
	Lookups      int        `json:"lookups"`
	Successes    int        `json:"successes"`
	SuccessRate  float64    `json:"success_rate"`
	SuccessCI95  [2]float64 `json:"success_ci95"`
	LookupErrors int        `json:"lookup_errors"`
	// WrongIP counts found records whose IP was not the announcing
	// daemon's address: the storing node must take it from the connection.
	WrongIP int `json:"wrong_ip"`
	// Availability is TTF/(TTF+TTR); RepairModel and ReplicaBound are as in
	// the churn experiment (1 and 1 without failures).
	Availability   float64         `json:"availability"`
	RepairModel    float64         `json:"repair_model"`
	RepairModelTTL float64         `json:"repair_model_ttl"`
	ReplicaBound   float64         `json:"replica_bound"`
	HopsMean       float64         `json:"hops_mean"`
	QueriedMean    float64         `json:"queried_mean"`
	LatencyMS      Percentiles     `json:"latency_ms"`
	Kills          int             `json:"kills"`
	Restarts       int             `json:"restarts"`
	Windows        []ProcessWindow `json:"windows"`
	// ByRole splits the lookups by who looked and whose record was sought,
	// public or NATed; only with NATed daemons.
	ByRole   []ProcessRole    `json:"by_role,omitempty"`
	Seconds  float64          `json:"seconds"`
	Outcomes []ProcessOutcome `json:"-"`
}

// ProcessRole is the lookups from one kind of daemon for one kind of
// announcer's record.
type ProcessRole struct {
	From        string      `json:"from"`      // public or nated
	Announcer   string      `json:"announcer"` // public or nated
	Lookups     int         `json:"lookups"`
	Successes   int         `json:"successes"`
	SuccessRate float64     `json:"success_rate"`
	LatencyMS   Percentiles `json:"latency_ms"`
}

// ProcessWindow is success in one time bin.
type ProcessWindow struct {
	StartSeconds float64 `json:"start_seconds"`
	Lookups      int     `json:"lookups"`
	Successes    int     `json:"successes"`
	// Down is how many daemons were down at the window's lookups, on average.
	Down float64 `json:"down_mean"`
}

// ProcessOutcome is one lookup.
type ProcessOutcome struct {
	At    time.Duration // since the lookups began
	From  int
	Key   int
	Found bool
	Peers int
	Hops  int
	// Queried is how many DHT nodes the walk queried.
	Queried int
	Took    time.Duration
	Down    int
	// FromNATed and OfNATed say whether the daemon that looked, and the
	// one whose record it sought, sit behind a NAT.
	FromNATed, OfNATed bool
	// IP is the address the announcer's record came back with.
	IP  string
	Err error
}

// Run starts the cluster, runs the scenario and stops the cluster, also
// when ctx is cancelled or something fails.
func (pr ProcessRun) Run(ctx context.Context) (_ *ProcessResults, err error) {
	if pr.Keys < 1 || pr.Lookups < 1 || pr.Duration <= 0 || pr.TTF < 0 || (pr.TTF > 0 && pr.TTR <= 0) || pr.Window <= 0 {
		return nil, errors.New("netsim: process run needs keys, lookups, a duration, a window, and TTR with TTF")
	}
	// Half the daemons at most announce; the others can fail.
	announcers := max(1, min(pr.Keys, pr.Cluster.Nodes/2))
	if pr.TTF > 0 && announcers >= pr.Cluster.Nodes {
		return nil, fmt.Errorf("netsim: %d announcers leave none of the %d daemons to fail", announcers, pr.Cluster.Nodes)
	}
	start := time.Now()
	cl, err := StartCluster(ctx, pr.Cluster)
	if err != nil {
		return nil, err
	}
	defer func() {
		if cerr := cl.Close(); err == nil && cerr != nil {
			err = cerr
		}
	}()
	logf := func(format string, args ...any) {
		if pr.Log != nil {
			fmt.Fprintf(pr.Log, format, args...)
		}
	}
	logf("started %d daemons in %.1fs (netns %v)\n", len(cl.Daemons), time.Since(start).Seconds(), pr.Cluster.Netns)
	nated, natedClients, err := natedModes(ctx, cl, logf)
	if err != nil {
		return nil, err
	}

	rng := rand.New(rand.NewPCG(pr.Seed, 0x70726f63))
	keys := make([]records.Key, pr.Keys)
	owner := make([]int, pr.Keys)
	for k := range keys {
		if keys[k], err = randomKey(rng); err != nil {
			return nil, err
		}
		owner[k] = k % announcers
		actx, cancel := context.WithTimeout(ctx, time.Minute)
		r, err := cl.Daemons[owner[k]].Client().Announce(actx, keys[k], uint16(6881+k), true)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("netsim: announce %d from daemon %d: %w", k, owner[k], err)
		}
		logf("key %s announced by daemon %d, stored on %d\n", keys[k], owner[k], r.StoredOn)
	}

	res := &ProcessResults{
		Nodes: pr.Cluster.Nodes, Replication: pr.Cluster.Replication, RecordTTL: pr.Cluster.RecordTTL, Republish: pr.Cluster.Republish,
		TTF: pr.TTF, TTR: pr.TTR, Netns: pr.Cluster.Netns, Keys: pr.Keys, Availability: 1, RepairModel: 1, RepairModelTTL: 1, ReplicaBound: 1,
		NATShare: pr.Cluster.NATShare, Internet: pr.Cluster.Internet || nated > 0, NATed: nated, NATedClients: natedClients,
	}
	if pr.TTF > 0 {
		res.Availability = pr.TTF.Seconds() / (pr.TTF + pr.TTR).Seconds()
		res.RepairModel = RepairModel(pr.TTF, pr.TTR, pr.Cluster.Republish, pr.Cluster.Replication)
		res.RepairModelTTL = RepairModelTTL(pr.TTF, pr.TTR, pr.Cluster.Republish, pr.Cluster.RecordTTL, pr.Cluster.Replication)
		res.ReplicaBound = ReplicaBound(res.Availability, pr.Cluster.Replication)
	}

	runCtx, stop := context.WithTimeout(ctx, pr.Duration)
	defer stop()
	begin := time.Now()
	var (
		mu      sync.Mutex
		wg      sync.WaitGroup
		kills   int
		restart int
	)
	// Failure and repair of every daemon but the announcers.
	if pr.TTF > 0 {
		churnRng := rand.New(rand.NewPCG(pr.Seed, 0x6b696c6c))
		wg.Go(func() {
			k, r := pr.churn(runCtx, cl, announcers, churnRng, logf)
			mu.Lock()
			kills, restart = k, r
			mu.Unlock()
		})
	}
	// Lookups at a steady pace, at most eight in flight.
	gap := pr.Duration / time.Duration(pr.Lookups)
	sem := make(chan struct{}, 8)
	ticker := time.NewTicker(gap)
	defer ticker.Stop()
loop:
	for i := 0; i < pr.Lookups; i++ {
		select {
		case <-runCtx.Done():
			break loop
		case <-ticker.C:
		}
		var running []int
		for _, d := range cl.Daemons {
			if d.Running() {
				running = append(running, d.Index)
			}
		}
		from, k := running[rng.IntN(len(running))], rng.IntN(pr.Keys)
		down := len(cl.Daemons) - len(running)
		at := time.Since(begin)
		select {
		case sem <- struct{}{}:
		case <-runCtx.Done():
			break loop
		}
		wg.Go(func() {
			defer func() { <-sem }()
			o := pr.lookup(runCtx, cl, from, keys[k], cl.Daemons[owner[k]].PeerID)
			if o.Err != nil && runCtx.Err() != nil {
				return // cut off by the end of the run: not an outcome
			}
			o.At, o.From, o.Key, o.Down = at, from, k, down
			o.FromNATed, o.OfNATed = cl.Daemons[from].NATed, cl.Daemons[owner[k]].NATed
			// The announcer's own daemon answers with 127.0.0.1: its
			// client runs there.
			if o.Found && from != owner[k] && o.IP != cl.Daemons[owner[k]].IP {
				mu.Lock()
				res.WrongIP++
				mu.Unlock()
			}
			mu.Lock()
			res.Outcomes = append(res.Outcomes, o)
			n := len(res.Outcomes)
			mu.Unlock()
			if pr.Progress != nil {
				pr.Progress(n, pr.Lookups)
			}
		})
	}
	stop()
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	res.Kills, res.Restarts = kills, restart
	res.summarise(pr.Window)
	res.Seconds = time.Since(start).Seconds()
	return res, nil
}

// natedModes counts the NATed daemons and those of them that report
// being DHT clients: behind a NAT without mapping, a daemon must not serve.
func natedModes(ctx context.Context, cl *Cluster, logf func(string, ...any)) (nated, clients int, err error) {
	for _, d := range cl.Daemons {
		if !d.NATed {
			continue
		}
		nated++
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		st, err := d.Client().Status(sctx)
		cancel()
		if err != nil {
			return 0, 0, fmt.Errorf("netsim: status of NATed daemon %d: %w", d.Index, err)
		}
		if st.DHTMode == "client" {
			clients++
		} else {
			logf("NATed daemon %d is in DHT mode %s, reachability %s\n", d.Index, st.DHTMode, st.Reachability)
		}
	}
	if nated > 0 {
		logf("%d daemons behind NAT without port mapping, %d of them DHT clients\n", nated, clients)
	}
	return nated, clients, nil
}

// lookup asks daemon from for key and says whether announcer's record came
// back.
func (pr ProcessRun) lookup(ctx context.Context, cl *Cluster, from int, key records.Key, announcer string) ProcessOutcome {
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	t0 := time.Now()
	r, err := cl.Daemons[from].Client().Peers(lctx, key, 50)
	o := ProcessOutcome{Err: err, Took: time.Since(t0), Peers: len(r.Peers), Hops: r.Stats.Hops, Queried: r.Stats.Queried}
	for _, p := range r.Peers {
		if p.Announcer == announcer {
			o.Found, o.IP = true, p.IP
		}
	}
	return o
}

// churn kills and restarts daemons announcers.. until ctx ends, and
// returns how many kills and restarts it made. Daemons it killed are
// running again when it returns.
func (pr ProcessRun) churn(ctx context.Context, cl *Cluster, announcers int, rng *rand.Rand, logf func(string, ...any)) (kills, restarts int) {
	exp := func(mean time.Duration) time.Duration { return time.Duration(rng.ExpFloat64() * float64(mean)) }
	q := &churnQueue{}
	seq := 0
	begin := time.Now()
	for i := announcers; i < len(cl.Daemons); i++ {
		heap.Push(q, churnEvent{at: exp(pr.TTF), kind: churnFail, node: i, seq: seq})
		seq++
	}
	defer func() {
		// Leave the cluster whole for Close's orderly stop.
		for _, d := range cl.Daemons {
			if !d.Running() {
				rctx, cancel := context.WithTimeout(context.Background(), cl.cfg.ReadyTimeout)
				if d.Start(rctx) == nil {
					restarts++
				}
				cancel()
			}
		}
	}()
	for q.Len() > 0 {
		ev := heap.Pop(q).(churnEvent)
		timer := time.NewTimer(time.Until(begin.Add(ev.at)))
		select {
		case <-ctx.Done():
			timer.Stop()
			return kills, restarts
		case <-timer.C:
		}
		d := cl.Daemons[ev.node]
		switch ev.kind {
		case churnFail:
			if err := d.Kill(); err != nil {
				logf("kill daemon %d: %v\n", d.Index, err)
			}
			kills++
			heap.Push(q, churnEvent{at: ev.at + exp(pr.TTR), kind: churnRepair, node: ev.node, seq: seq})
		case churnRepair:
			next := time.Since(begin)
			if err := d.Start(ctx); err != nil {
				if ctx.Err() != nil {
					return kills, restarts
				}
				logf("restart daemon %d: %v\n", d.Index, err)
			} else {
				restarts++
			}
			heap.Push(q, churnEvent{at: next + exp(pr.TTF), kind: churnFail, node: ev.node, seq: seq})
		}
		seq++
	}
	return kills, restarts
}

func (res *ProcessResults) summarise(window time.Duration) {
	var lat []float64
	hops, queried := 0, 0
	for _, o := range res.Outcomes {
		if o.Err != nil {
			res.LookupErrors++
			continue
		}
		res.Lookups++
		res.Successes += btoi(o.Found)
		hops += o.Hops
		queried += o.Queried
		lat = append(lat, ms(o.Took))
		w := int(o.At / window)
		for len(res.Windows) <= w {
			res.Windows = append(res.Windows, ProcessWindow{StartSeconds: (time.Duration(len(res.Windows)) * window).Seconds()})
		}
		res.Windows[w].Lookups++
		res.Windows[w].Successes += btoi(o.Found)
		res.Windows[w].Down += float64(o.Down)
	}
	for i := range res.Windows {
		if n := res.Windows[i].Lookups; n > 0 {
			res.Windows[i].Down /= float64(n)
		}
	}
	if res.Lookups > 0 {
		res.SuccessRate = float64(res.Successes) / float64(res.Lookups)
		res.HopsMean = float64(hops) / float64(res.Lookups)
		res.QueriedMean = float64(queried) / float64(res.Lookups)
	}
	lo, hi := Wilson(res.Successes, res.Lookups, 1.96)
	res.SuccessCI95 = [2]float64{lo, hi}
	res.LatencyMS = percentiles(lat)
	if res.NATed > 0 {
		res.ByRole = byRole(res.Outcomes)
	}
}

func byRole(outcomes []ProcessOutcome) []ProcessRole {
	name := map[bool]string{false: "public", true: "nated"}
	var out []ProcessRole
	for _, from := range []bool{false, true} {
		for _, of := range []bool{false, true} {
			r := ProcessRole{From: name[from], Announcer: name[of]}
			var lat []float64
			for _, o := range outcomes {
				if o.Err != nil || o.FromNATed != from || o.OfNATed != of {
					continue
				}
				r.Lookups++
				r.Successes += btoi(o.Found)
				lat = append(lat, ms(o.Took))
			}
			if r.Lookups > 0 {
				r.SuccessRate = float64(r.Successes) / float64(r.Lookups)
				r.LatencyMS = percentiles(lat)
			}
			out = append(out, r)
		}
	}
	return out
}

// WriteProcessResults writes process.json, process_lookups.csv and
// process.png to dir.
func WriteProcessResults(dir, command string, res *ProcessResults) error {
	if err := writeJSON(filepath.Join(dir, "process.json"), struct {
		Command string `json:"command,omitempty"`
		*ProcessResults
	}{command, res}); err != nil {
		return err
	}
	rows := [][]string{{"at_seconds", "from", "key", "found", "peers", "hops", "queried", "took_ms", "daemons_down", "from_nated", "announcer_nated", "error"}}
	for _, o := range res.Outcomes {
		e := ""
		if o.Err != nil {
			e = o.Err.Error()
		}
		rows = append(rows, []string{strconv.FormatFloat(o.At.Seconds(), 'f', 3, 64), strconv.Itoa(o.From), strconv.Itoa(o.Key),
			strconv.FormatBool(o.Found), strconv.Itoa(o.Peers), strconv.Itoa(o.Hops), strconv.Itoa(o.Queried), strconv.FormatFloat(ms(o.Took), 'f', 3, 64), strconv.Itoa(o.Down),
			strconv.FormatBool(o.FromNATed), strconv.FormatBool(o.OfNATed), e})
	}
	if err := writeCSV(filepath.Join(dir, "process_lookups.csv"), rows); err != nil {
		return err
	}
	c := chart{
		title:  fmt.Sprintf("%d daemons, m=%d, republish %s, TTF %s, TTR %s: success over time", res.Nodes, res.Replication, res.Republish, res.TTF, res.TTR),
		xlabel: "seconds", ylabel: "lookup success; share of daemons down", yMin: 0, yMax: 1.05,
	}
	succ := series{name: "measured success per window", points: true}
	down := series{name: "share of daemons down", dashes: true}
	var xs []float64
	for _, w := range res.Windows {
		if w.Lookups == 0 {
			continue
		}
		x := w.StartSeconds
		xs = append(xs, x)
		succ.xs = append(succ.xs, x)
		succ.ys = append(succ.ys, float64(w.Successes)/float64(w.Lookups))
		down.xs = append(down.xs, x)
		down.ys = append(down.ys, w.Down/float64(res.Nodes))
	}
	c.series = []series{succ,
		modelCurve(fmt.Sprintf("repair model, last republish only: %.3f", res.RepairModel), xs, func(float64) float64 { return res.RepairModel }),
		modelCurve(fmt.Sprintf("repair model, every copy within the TTL: %.3f", res.RepairModelTTL), xs, func(float64) float64 { return res.RepairModelTTL }),
		modelCurve(fmt.Sprintf("no repair 1-(1-A)^m %.3f", res.ReplicaBound), xs, func(float64) float64 { return res.ReplicaBound }),
		down}
	return c.save(filepath.Join(dir, "process.png"))
}
