package netsim

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/kadtracker/kadtracker/records"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Evolution is the torrent-evolution workload of Guo et al. (section 3.2),
// run on a network in compressed time. Per torrent, peers arrive at rate
// λ(t) = λ0·e^(-t/τ). Each arriving peer's daemon (a node of its own) looks
// the torrent up; if the answer names at least one live seed, the peer
// downloads (instantly), announces itself as a seed, stays for an
// exponential time of mean 1/γ and withdraws. Otherwise it fails and leaves.
// The original seed leaves when the first downloader has become a seed. A
// torrent dies when its last seed leaves: nobody can be served after that.
// Probe lookups at a fixed interval measure availability when arrivals are
// rare.
type Evolution struct {
	// Lambda0 are the initial arrival rates, per simulated hour: one
	// torrent per value and replica, all running at once.
	Lambda0      []float64 `json:"lambda0_per_hour"`
	Replicas     int       `json:"replicas"`
	TauHours     float64   `json:"tau_hours"`
	GammaPerHour float64   `json:"gamma_per_hour"`
	// HorizonHours is how long torrents are followed; 0 means 1.4 times the
	// longest model lifespan.
	HorizonHours float64 `json:"horizon_hours"`
	// SecondsPerHour is the compression: real seconds per simulated hour.
	SecondsPerHour  float64 `json:"real_seconds_per_hour"`
	ProbeEveryHours float64 `json:"probe_every_hours"`
	BinHours        float64 `json:"bin_hours"`
	// RecordTTL and Republish are the nodes' settings, in simulated time.
	RecordTTL time.Duration `json:"record_ttl"`
	Republish time.Duration `json:"republish"`
	// Concurrency bounds the lookups, announces and withdraws in flight.
	Concurrency int `json:"concurrency"`
}

// DefaultEvolution follows four torrents of different popularity, twice
// each: lifespans of 17 to 33 simulated hours in about three real minutes.
func DefaultEvolution() Evolution {
	return Evolution{
		Lambda0:         []float64{8, 16, 32, 64},
		Replicas:        2,
		TauHours:        8,
		GammaPerHour:    1,
		SecondsPerHour:  4,
		ProbeEveryHours: 0.5,
		BinHours:        2,
		RecordTTL:       4 * time.Hour,
		Republish:       2 * time.Hour,
		Concurrency:     32,
	}
}

// Validate reports every problem with e.
func (e Evolution) Validate() error {
	var errs []error
	if len(e.Lambda0) == 0 || e.Replicas < 1 {
		errs = append(errs, errors.New("netsim: evolution needs torrents"))
	}
	for _, l := range e.Lambda0 {
		if !(l > 0) {
			errs = append(errs, fmt.Errorf("netsim: λ0 %v must be positive", l))
		}
	}
	if !(e.TauHours > 0 && e.GammaPerHour > 0 && e.SecondsPerHour > 0 && e.ProbeEveryHours > 0 && e.BinHours > 0) {
		errs = append(errs, errors.New("netsim: τ, γ, compression, probe interval and bin must be positive"))
	}
	if e.HorizonHours < 0 || e.Concurrency < 1 {
		errs = append(errs, errors.New("netsim: negative horizon or no concurrency"))
	}
	if e.Republish <= 0 || e.Republish >= e.RecordTTL {
		errs = append(errs, errors.New("netsim: republish must be positive and shorter than the record TTL"))
	}
	return errors.Join(errs...)
}

func (e Evolution) horizon() float64 {
	if e.HorizonHours > 0 {
		return e.HorizonHours
	}
	longest := 0.0
	for _, l := range e.Lambda0 {
		longest = max(longest, Lifespan(l, e.TauHours, e.GammaPerHour))
	}
	return 1.4 * max(longest, e.TauHours)
}

// TorrentResult is what one torrent lived through.
type TorrentResult struct {
	Torrent      int     `json:"torrent"`
	Lambda0      float64 `json:"lambda0_per_hour"`
	TauHours     float64 `json:"tau_hours"`
	GammaPerHour float64 `json:"gamma_per_hour"`
	// ModelLifespan is τ·ln(λ0/γ); Lifespan is when the last seed left (the
	// horizon if it never did, with Censored set); DHTLifespan is the last
	// lookup that returned a live seed.
	ModelLifespan float64 `json:"model_lifespan_hours"`
	Lifespan      float64 `json:"lifespan_hours"`
	DHTLifespan   float64 `json:"dht_lifespan_hours"`
	Censored      bool    `json:"censored"`
	// Arrivals, served and failed peers; FailureRatio is failed/arrivals,
	// beside the model's γ/λ0.
	Arrivals          int     `json:"arrivals"`
	Served            int     `json:"served"`
	Failed            int     `json:"failed"`
	FailureRatio      float64 `json:"failure_ratio"`
	ModelFailureRatio float64 `json:"model_failure_ratio"`
	// Availability is the share of all lookups (arrivals and probes) while
	// the torrent was alive that returned a live seed.
	Availability float64 `json:"availability_while_alive"`
	// StaleAnswers counts lookups that returned seeds, none of them live.
	StaleAnswers int          `json:"stale_answers"`
	LookupErrors int          `json:"lookup_errors"`
	Bins         []AvailBin   `json:"bins"`
	Seeds        []SeedSample `json:"seeds"`

	mu      sync.Mutex
	key     records.Key
	lookups []evLookup
	live    map[peer.ID]bool // announcers that are live seeds now
	busy    map[int]bool     // nodes that host a peer of this torrent
	seeds   int
	initial int // node of the original seed, -1 once it left
}

// AvailBin is the availability of one time bin.
type AvailBin struct {
	StartHours   float64 `json:"start_hours"`
	Lookups      int     `json:"lookups"`
	Served       int     `json:"served"`
	Availability float64 `json:"availability"` // NaN-free: -1 when no lookups
}

// SeedSample is the live seed count at a simulated time.
type SeedSample struct {
	Hours float64 `json:"hours"`
	Seeds int     `json:"seeds"`
}

type evLookup struct {
	hours  float64
	served bool
	probe  bool
}

// evEvent is a scheduled simulation event.
type evEvent struct {
	hours   float64
	kind    int // evArrival, evDeparture, evProbe
	torrent int
	stay    float64 // arrival: how long it stays as a seed
	peer    *evPeer // departure
	seq     int     // tie-break, keeps the order deterministic
}

const (
	evArrival = iota
	evDeparture
	evProbe
)

// evPeer is one peer of a torrent.
type evPeer struct {
	node int
	done chan struct{} // closed when its arrival has been handled
	seed bool          // it became a seed (valid after done)
}

type evQueue []*evEvent

func (q evQueue) Len() int { return len(q) }
func (q evQueue) Less(i, j int) bool {
	if q[i].hours != q[j].hours {
		return q[i].hours < q[j].hours
	}
	return q[i].seq < q[j].seq
}
func (q evQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *evQueue) Push(x any)   { *q = append(*q, x.(*evEvent)) }
func (q *evQueue) Pop() any {
	old := *q
	x := old[len(old)-1]
	*q = old[:len(old)-1]
	return x
}

// EvolutionResults are the torrents of a run.
type EvolutionResults struct {
	Config   Evolution        `json:"config"`
	Nodes    int              `json:"nodes"`
	Horizon  float64          `json:"horizon_hours"`
	Torrents []*TorrentResult `json:"torrents"`
	// ExtinctionLevel is the c of lifespan = τ·ln(λ0/(cγ)) fitted to the
	// torrents that died: the model's deterministic lifespan has c = 1.
	ExtinctionLevel float64 `json:"extinction_level_c"`
	Seconds         float64 `json:"seconds"`
}

// Run runs the workload on nw, whose nodes must run on clock.
func (e Evolution) Run(ctx context.Context, nw *Network, clock *SimClock, seed uint64) (*EvolutionResults, error) {
	if err := e.Validate(); err != nil {
		return nil, err
	}
	start := time.Now()
	rng := rand.New(rand.NewPCG(seed, 0x65766f6c))
	horizon := e.horizon()
	res := &EvolutionResults{Config: e, Nodes: nw.Size(), Horizon: horizon}
	q := &evQueue{}
	seq := 0
	push := func(ev *evEvent) {
		ev.seq = seq
		seq++
		heap.Push(q, ev)
	}
	for range e.Replicas {
		for _, l0 := range e.Lambda0 {
			key, err := randomKey(rng)
			if err != nil {
				return nil, err
			}
			t := &TorrentResult{
				Torrent: len(res.Torrents), Lambda0: l0, TauHours: e.TauHours, GammaPerHour: e.GammaPerHour,
				ModelLifespan: Lifespan(l0, e.TauHours, e.GammaPerHour), ModelFailureRatio: math.Min(1, e.GammaPerHour/l0),
				live: make(map[peer.ID]bool), busy: make(map[int]bool), key: key, initial: -1,
			}
			res.Torrents = append(res.Torrents, t)
			// Arrivals of a Poisson process of rate λ0·e^(-t/τ), by thinning
			// one of rate λ0; each with its stay as a seed.
			for h := 0.0; ; {
				h += rng.ExpFloat64() / l0
				if h > horizon {
					break
				}
				if rng.Float64() < math.Exp(-h/e.TauHours) {
					push(&evEvent{hours: h, kind: evArrival, torrent: t.Torrent, stay: rng.ExpFloat64() / e.GammaPerHour})
				}
			}
			for h := e.ProbeEveryHours; h <= horizon; h += e.ProbeEveryHours {
				push(&evEvent{hours: h, kind: evProbe, torrent: t.Torrent})
			}
		}
	}
	if len(res.Torrents)*2 > nw.Size() {
		return nil, fmt.Errorf("netsim: %d torrents on %d nodes: too few nodes", len(res.Torrents), nw.Size())
	}

	// The original seeds announce at birth, each from a node of its own.
	birth := clock.Now()
	for _, t := range res.Torrents {
		t.initial = rng.IntN(nw.Size())
		t.busy[t.initial] = true
		nd := nw.Node(t.initial)
		if _, err := nd.Announce(ctx, t.key, 6881, true); err != nil {
			return nil, fmt.Errorf("netsim: original seed of torrent %d: %w", t.Torrent, err)
		}
		t.live[nd.ID()] = true
		t.seeds = 1
		t.Seeds = append(t.Seeds, SeedSample{Hours: 0, Seeds: 1})
	}

	hoursNow := func() float64 { return clock.Now().Sub(birth).Hours() }
	sem := make(chan struct{}, e.Concurrency)
	var wg sync.WaitGroup
	defer wg.Wait()
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
	// freeNode picks a node that hosts no peer of t, or -1 if all do.
	freeNode := func(t *TorrentResult) int {
		t.mu.Lock()
		defer t.mu.Unlock()
		if len(t.busy) >= nw.Size() {
			return -1
		}
		for {
			if i := rng.IntN(nw.Size()); !t.busy[i] {
				t.busy[i] = true
				return i
			}
		}
	}
	for q.Len() > 0 {
		ev := heap.Pop(q).(*evEvent)
		if err := clock.SleepUntil(ctx, birth.Add(time.Duration(ev.hours*float64(time.Hour)))); err != nil {
			return nil, err
		}
		t := res.Torrents[ev.torrent]
		var err error
		switch ev.kind {
		case evArrival:
			p := &evPeer{node: freeNode(t), done: make(chan struct{})}
			if p.node < 0 {
				return nil, fmt.Errorf("netsim: torrent %d has a peer on each of the %d nodes: too few nodes", t.Torrent, nw.Size())
			}
			push(&evEvent{hours: ev.hours + ev.stay, kind: evDeparture, torrent: t.Torrent, peer: p})
			err = spawn(func() { e.arrive(ctx, nw, t, p, hoursNow) })
		case evDeparture:
			if ev.hours > horizon {
				continue // still seeding when we stop watching
			}
			err = spawn(func() { e.depart(ctx, nw, t, ev.peer, hoursNow) })
		case evProbe:
			from := rng.IntN(nw.Size())
			err = spawn(func() { e.probe(ctx, nw, t, from, hoursNow) })
		}
		if err != nil {
			return nil, err
		}
	}
	wg.Wait()
	for _, t := range res.Torrents {
		t.summarise(horizon, e.BinHours)
	}
	res.ExtinctionLevel = extinctionLevel(res.Torrents)
	res.Seconds = time.Since(start).Seconds()
	return res, nil
}

// lookup asks for t from node from and reports whether a live seed came
// back, and whether any seed did.
func (e Evolution) lookup(ctx context.Context, nw *Network, t *TorrentResult, from int) (live, anySeed bool, err error) {
	lctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	lr, err := nw.Node(from).Lookup(lctx, t.key, 50)
	if err != nil {
		return false, false, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, p := range lr.Peers {
		if p.Seed {
			anySeed = true
			if t.live[p.Announcer] {
				live = true
			}
		}
	}
	return live, anySeed, nil
}

func (t *TorrentResult) record(hours float64, served, anySeed, probe bool, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err != nil {
		t.LookupErrors++
	}
	if anySeed && !served {
		t.StaleAnswers++
	}
	t.lookups = append(t.lookups, evLookup{hours: hours, served: served, probe: probe})
}

func (t *TorrentResult) setSeeds(hours float64, delta int) {
	t.seeds += delta
	t.Seeds = append(t.Seeds, SeedSample{Hours: hours, Seeds: t.seeds})
	if t.seeds == 0 && t.Lifespan == 0 {
		t.Lifespan = hours
	}
}

func (e Evolution) arrive(ctx context.Context, nw *Network, t *TorrentResult, p *evPeer, now func() float64) {
	defer close(p.done)
	served, anySeed, err := e.lookup(ctx, nw, t, p.node)
	t.record(now(), served, anySeed, false, err)
	t.mu.Lock()
	t.Arrivals++
	if !served {
		t.Failed++
		delete(t.busy, p.node)
		t.mu.Unlock()
		return
	}
	t.Served++
	t.mu.Unlock()
	nd := nw.Node(p.node)
	if _, err := nd.Announce(ctx, t.key, 6881, true); err != nil {
		return
	}
	t.mu.Lock()
	p.seed = true
	t.live[nd.ID()] = true
	t.setSeeds(now(), +1)
	initial := t.initial
	t.initial = -1
	if initial >= 0 {
		// The original seed leaves once a downloader has the whole file.
		delete(t.live, nw.Node(initial).ID())
		t.setSeeds(now(), -1)
	}
	t.mu.Unlock()
	if initial >= 0 {
		_ = nw.Node(initial).Withdraw(ctx, t.key)
		t.mu.Lock()
		delete(t.busy, initial)
		t.mu.Unlock()
	}
}

func (e Evolution) depart(ctx context.Context, nw *Network, t *TorrentResult, p *evPeer, now func() float64) {
	select {
	case <-p.done:
	case <-ctx.Done():
		return
	}
	if !p.seed {
		return
	}
	nd := nw.Node(p.node)
	t.mu.Lock()
	delete(t.live, nd.ID())
	t.setSeeds(now(), -1)
	t.mu.Unlock()
	_ = nd.Withdraw(ctx, t.key)
	t.mu.Lock()
	delete(t.busy, p.node)
	t.mu.Unlock()
}

func (e Evolution) probe(ctx context.Context, nw *Network, t *TorrentResult, from int, now func() float64) {
	served, anySeed, err := e.lookup(ctx, nw, t, from)
	t.record(now(), served, anySeed, true, err)
}

// summarise fills lifespans, ratios and bins.
func (t *TorrentResult) summarise(horizon, bin float64) {
	if t.Lifespan == 0 {
		t.Lifespan, t.Censored = horizon, true
	}
	alive, aliveServed := 0, 0
	nb := int(math.Ceil(horizon / bin))
	t.Bins = make([]AvailBin, nb)
	for i := range t.Bins {
		t.Bins[i].StartHours = float64(i) * bin
	}
	for _, l := range t.lookups {
		if l.served {
			t.DHTLifespan = max(t.DHTLifespan, l.hours)
		}
		if l.hours <= t.Lifespan {
			alive++
			aliveServed += btoi(l.served)
		}
		if i := min(int(l.hours/bin), nb-1); i >= 0 {
			t.Bins[i].Lookups++
			t.Bins[i].Served += btoi(l.served)
		}
	}
	for i := range t.Bins {
		t.Bins[i].Availability = -1
		if t.Bins[i].Lookups > 0 {
			t.Bins[i].Availability = float64(t.Bins[i].Served) / float64(t.Bins[i].Lookups)
		}
	}
	if alive > 0 {
		t.Availability = float64(aliveServed) / float64(alive)
	}
	if t.Arrivals > 0 {
		t.FailureRatio = float64(t.Failed) / float64(t.Arrivals)
	}
}

// expectedSeeds is the fluid model's seed count when every arrival is
// served: ds/dt = λ0·e^(-t/τ) - γ·s, s(0) = 1.
func expectedSeeds(lambda0, tau, gamma, t float64) float64 {
	a := 1 / tau
	if math.Abs(gamma-a) < 1e-9 {
		return lambda0*t*math.Exp(-gamma*t) + math.Exp(-gamma*t)
	}
	return lambda0/(gamma-a)*(math.Exp(-a*t)-math.Exp(-gamma*t)) + math.Exp(-gamma*t)
}

// runEvolution builds a network on a simulated clock and follows the
// torrents of ec.Evolution.
func (ec ExperimentConfig) runEvolution(ctx context.Context) error {
	e := ec.Evolution
	if err := e.Validate(); err != nil {
		return err
	}
	speed := 3600 / e.SecondsPerHour
	clock := NewSimClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), speed)
	cfg := DefaultConfig()
	cfg.Nodes = ec.Nodes
	cfg.Seed = ec.Seed
	cfg.Latency = ec.Latency
	cfg.MaxConns = ec.MaxConns
	cfg.Clock = clock.Now
	cfg.Logger = ec.Logger
	cfg.Node.Replication = 4
	if len(ec.Replication) > 0 {
		cfg.Node.Replication = ec.Replication[0]
	}
	cfg.Node.RecordTTL = e.RecordTTL
	cfg.Node.MaxRecordTTL = e.RecordTTL
	// The republish ticker runs on real time.
	cfg.Node.RepublishInterval = clock.Real(e.Republish)
	cfg.Progress = func(done, total int) { ec.progress("build", done, total) }
	nw, err := New(ctx, cfg)
	if err != nil {
		return err
	}
	defer nw.Close()
	horizon := e.horizon()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		// The bar follows simulated time.
		t := time.NewTicker(time.Second)
		defer t.Stop()
		begin := clock.Now()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				ec.progress("evolution (simulated hours)", int(clock.Now().Sub(begin).Hours()), int(horizon))
			}
		}
	})
	res, err := e.Run(ctx, nw, clock, ec.Seed)
	close(stop)
	wg.Wait()
	if err != nil {
		return err
	}
	for _, t := range res.Torrents {
		fmt.Fprintf(ec.Log, "torrent %d λ0=%g/h: lifespan %.1f h (DHT saw %.1f h, censored %v), model τ·ln(λ0/γ) = %.1f h; %d arrivals, failure ratio %.3f (model γ/λ0 %.3f), availability while alive %.3f\n",
			t.Torrent, t.Lambda0, t.Lifespan, t.DHTLifespan, t.Censored, t.ModelLifespan, t.Arrivals, t.FailureRatio, t.ModelFailureRatio, t.Availability)
	}
	fmt.Fprintf(ec.Log, "fitted: lifespan = τ·ln(λ0/(cγ)) with c = %.2f\n", res.ExtinctionLevel)
	if err := writeJSON(filepath.Join(ec.Out, "evolution.json"), struct {
		Command string `json:"command,omitempty"`
		*EvolutionResults
	}{ec.Command, res}); err != nil {
		return err
	}
	rows := [][]string{{"torrent", "lambda0_per_hour", "tau_hours", "gamma_per_hour", "model_lifespan_hours", "lifespan_hours", "dht_lifespan_hours", "censored",
		"arrivals", "served", "failed", "failure_ratio", "model_failure_ratio", "availability_while_alive", "stale_answers", "lookup_errors"}}
	binRows := [][]string{{"torrent", "lambda0_per_hour", "bin_start_hours", "lookups", "served", "availability"}}
	f := func(x float64) string { return strconv.FormatFloat(x, 'g', 6, 64) }
	for _, t := range res.Torrents {
		rows = append(rows, []string{strconv.Itoa(t.Torrent), f(t.Lambda0), f(t.TauHours), f(t.GammaPerHour), f(t.ModelLifespan), f(t.Lifespan), f(t.DHTLifespan),
			strconv.FormatBool(t.Censored), strconv.Itoa(t.Arrivals), strconv.Itoa(t.Served), strconv.Itoa(t.Failed), f(t.FailureRatio), f(t.ModelFailureRatio),
			f(t.Availability), strconv.Itoa(t.StaleAnswers), strconv.Itoa(t.LookupErrors)})
		for _, b := range t.Bins {
			binRows = append(binRows, []string{strconv.Itoa(t.Torrent), f(t.Lambda0), f(b.StartHours), strconv.Itoa(b.Lookups), strconv.Itoa(b.Served), f(b.Availability)})
		}
	}
	if err := writeCSV(filepath.Join(ec.Out, "evolution.csv"), rows); err != nil {
		return err
	}
	if err := writeCSV(filepath.Join(ec.Out, "evolution_bins.csv"), binRows); err != nil {
		return err
	}
	return ec.plotEvolution(res)
}

func (ec ExperimentConfig) plotEvolution(res *EvolutionResults) error {
	e := res.Config
	// Availability over time, replicas of one λ0 pooled.
	av := chart{
		title:  fmt.Sprintf("Service availability over a torrent's life (τ=%gh, γ=%g/h, N=%d)", e.TauHours, e.GammaPerHour, res.Nodes),
		xlabel: "simulated hours since the torrent's birth", ylabel: "lookups returning a live seed", yMin: 0, yMax: 1.05,
		legendTop: true,
	}
	for i, l0 := range e.Lambda0 {
		var xs, ys []float64
		nb := 0
		for _, t := range res.Torrents {
			nb = max(nb, len(t.Bins))
		}
		for b := range nb {
			lookups, served := 0, 0
			for _, t := range res.Torrents {
				if t.Lambda0 == l0 && b < len(t.Bins) {
					lookups += t.Bins[b].Lookups
					served += t.Bins[b].Served
				}
			}
			if lookups > 0 {
				xs = append(xs, (float64(b)+0.5)*e.BinHours)
				ys = append(ys, float64(served)/float64(lookups))
			}
		}
		life := Lifespan(l0, e.TauHours, e.GammaPerHour)
		av.series = append(av.series, colored(i,
			series{name: fmt.Sprintf("measured, λ0=%g/h", l0), xs: xs, ys: ys, points: true},
			series{name: fmt.Sprintf("model lifespan τ·ln(λ0/γ) = %.1f h", life), xs: []float64{life, life}, ys: []float64{0, 1.05}, dashes: true})...)
	}
	if err := av.save(filepath.Join(ec.Out, "evolution.png")); err != nil {
		return err
	}
	// Lifespan against λ0, with the model and the model shifted by the
	// fitted level c of λ(t)/γ at which the swarm dies.
	var lx, ly, dx, dy []float64
	for _, t := range res.Torrents {
		lx = append(lx, t.Lambda0)
		ly = append(ly, t.Lifespan)
		dx = append(dx, t.Lambda0)
		dy = append(dy, t.DHTLifespan)
	}
	c := extinctionLevel(res.Torrents)
	lc := chart{
		title:  fmt.Sprintf("Torrent lifespan against initial popularity (τ=%gh, γ=%g/h)", e.TauHours, e.GammaPerHour),
		xlabel: "λ0, arrivals per hour at birth (log scale)", ylabel: "lifespan, hours", logX: true, legendTop: true, legendLeft: true, xTicks: e.Lambda0,
		series: []series{
			{name: "measured: when the last seed left", xs: lx, ys: ly, points: true, noLine: true},
			{name: "measured: last lookup that found a live seed", xs: dx, ys: dy, points: true, noLine: true},
			modelCurve("model τ·ln(λ0/γ)", e.Lambda0, func(x float64) float64 { return Lifespan(x, e.TauHours, e.GammaPerHour) }),
		},
	}
	if c > 0 {
		fit := modelCurve(fmt.Sprintf("τ·ln(λ0/(cγ)): dies when λ(t)/γ falls to c = %.1f (fitted)", c), e.Lambda0, func(x float64) float64 {
			return Lifespan(x, e.TauHours, c*e.GammaPerHour)
		})
		fit.dashes = true
		lc.series = append(lc.series, fit)
	}
	if err := lc.save(filepath.Join(ec.Out, "evolution_lifespan.png")); err != nil {
		return err
	}
	// Seeds over time against the fluid model, first replica of each λ0.
	sc := chart{
		title:  "Live seeds over time, and the fluid model with every arrival served",
		xlabel: "simulated hours since the torrent's birth", ylabel: "live seeds", legendTop: true,
	}
	for i, l0 := range e.Lambda0 {
		for _, t := range res.Torrents {
			if t.Lambda0 != l0 {
				continue
			}
			var xs, ys []float64
			for _, s := range t.Seeds {
				xs = append(xs, s.Hours)
				ys = append(ys, float64(s.Seeds))
			}
			fluid := modelCurve(fmt.Sprintf("fluid model λ0=%g/h", l0), []float64{0, res.Horizon}, func(x float64) float64 {
				return expectedSeeds(l0, e.TauHours, e.GammaPerHour, x)
			})
			fluid.dashes = true
			sc.series = append(sc.series, colored(i, series{name: fmt.Sprintf("measured, λ0=%g/h", l0), xs: xs, ys: ys}, fluid)...)
			break
		}
	}
	return sc.save(filepath.Join(ec.Out, "evolution_seeds.png"))
}

// extinctionLevel fits the c of lifespan = τ·ln(λ0/(cγ)) to the torrents
// that died (the geometric mean of λ0/γ·e^(-lifespan/τ)); 0 if none did.
// In the fluid model c is 1; with whole seeds arriving and leaving at random
// a swarm dies while a few are still expected.
func extinctionLevel(ts []*TorrentResult) float64 {
	sum, n := 0.0, 0
	for _, t := range ts {
		if t.Censored || t.Lifespan <= 0 {
			continue
		}
		sum += math.Log(t.Lambda0/t.GammaPerHour) - t.Lifespan/t.TauHours
		n++
	}
	if n == 0 {
		return 0
	}
	return math.Exp(sum / float64(n))
}
