package netsim

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/kadtracker/kadtracker/node"
	"github.com/kadtracker/kadtracker/records"
)

// Uniform is the reliability model's workload. Keys torrents are each
// announced by one random node, with every node up. Then, in each epoch,
// every node is down with probability 1-Rp (drawn independently), and the
// epoch's share of Lookups runs, each from a random live node for a random
// torrent. Nothing republishes between the announces and the lookups, as the
// model assumes. After an epoch every node is repaired and every routing
// table gets back the entries its failed queries removed, so each epoch
// starts from the same routing state, the one the announces left.
type Uniform struct {
	Keys    int
	Lookups int
	// Rp is the probability that a node is up at lookup time; 1 means no
	// failures.
	Rp float64
	// Epochs is how many independent failure draws the lookups are spread
	// over. The records of nearby keys share storing nodes, so the lookups
	// of one draw are correlated: more epochs average out the luck of a draw.
	Epochs int
	// Want is how many peers a lookup asks for.
	Want int
	// Concurrency is how many announces or lookups are in flight at once.
	Concurrency int
	// Pings is how many random node pairs the one-RPC round trip is
	// measured on, with every node up.
	Pings int
	// LookupTimeout bounds one lookup.
	LookupTimeout time.Duration
	// BusyGC leaves the collector running while announces and lookups are
	// timed; by default it is held off then (see quietGC).
	BusyGC bool
	// Locality, if set, runs first on the same network (locality.go):
	// its results are Results.Locality.
	Locality *Locality
	// Progress, if set, is called after each lookup: done of total.
	Progress func(done, total int)
}

// DefaultUniform is a workload for a small network.
func DefaultUniform() Uniform {
	return Uniform{Keys: 100, Lookups: 200, Rp: 1, Epochs: 1, Want: 50, Concurrency: 4, Pings: 32, LookupTimeout: time.Minute}
}

// Validate reports every problem with w.
func (w Uniform) Validate() error {
	var errs []error
	if w.Keys < 1 || w.Lookups < 1 {
		errs = append(errs, errors.New("netsim: a workload needs keys and lookups"))
	}
	if !(w.Rp > 0 && w.Rp <= 1) {
		errs = append(errs, fmt.Errorf("netsim: rp %v out of range (0, 1]", w.Rp))
	}
	if w.Epochs < 1 || w.Epochs > w.Lookups {
		errs = append(errs, fmt.Errorf("netsim: %d epochs for %d lookups", w.Epochs, w.Lookups))
	}
	if w.Want < 1 || w.Concurrency < 1 || w.Pings < 0 || w.LookupTimeout <= 0 {
		errs = append(errs, errors.New("netsim: want, concurrency, pings or lookup timeout out of range"))
	}
	return errors.Join(errs...)
}

// Schedule is everything a workload run decides by chance, drawn from the
// seed alone: the same seed and sizes give the same schedule.
type Schedule struct {
	Seed       uint64
	Nodes      int
	Keys       []records.Key
	Announcers []int    // Announcers[k] announces Keys[k]
	Down       [][]bool // Down[e][i]: node i is down in epoch e
	Lookups    []LookupOp
	Pings      [][2]int
}

// LookupOp is one scheduled lookup.
type LookupOp struct {
	Epoch, From, Key int
}

// Schedule draws the run's schedule for a network of n nodes.
func (w Uniform) Schedule(seed uint64, n int) (Schedule, error) {
	rng := rand.New(rand.NewPCG(seed, 0x776f_726b_6c6f_6164))
	s := Schedule{Seed: seed, Nodes: n}
	for range w.Keys {
		k, err := randomKey(rng)
		if err != nil {
			return Schedule{}, err
		}
		s.Keys = append(s.Keys, k)
		s.Announcers = append(s.Announcers, rng.IntN(n))
	}
	if n > 1 {
		for range w.Pings {
			a := rng.IntN(n)
			b := (a + 1 + rng.IntN(n-1)) % n
			s.Pings = append(s.Pings, [2]int{a, b})
		}
	}
	for e := range w.Epochs {
		down := make([]bool, n)
		var up []int
		for i := range down {
			down[i] = rng.Float64() >= w.Rp
			if !down[i] {
				up = append(up, i)
			}
		}
		if len(up) == 0 {
			// Someone must be up to look anything up.
			i := rng.IntN(n)
			down[i] = false
			up = append(up, i)
		}
		s.Down = append(s.Down, down)
		// Lookups are spread evenly over the epochs.
		count := w.Lookups/w.Epochs + btoi(e < w.Lookups%w.Epochs)
		for range count {
			s.Lookups = append(s.Lookups, LookupOp{Epoch: e, From: up[rng.IntN(len(up))], Key: rng.IntN(w.Keys)})
		}
	}
	return s, nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// randomKey is a random v1 infohash's key.
func randomKey(rng *rand.Rand) (records.Key, error) {
	var b [records.InfohashV1Len]byte
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return records.KeyFromInfohash(b[:])
}

// Hash is a digest of the schedule, to compare runs.
func (s Schedule) Hash() string {
	h := sha256.New()
	put := func(v uint64) { _ = binary.Write(h, binary.BigEndian, v) }
	put(s.Seed)
	put(uint64(s.Nodes))
	for k, key := range s.Keys {
		h.Write(key.Multihash())
		put(uint64(s.Announcers[k]))
	}
	for _, d := range s.Down {
		for _, x := range d {
			put(uint64(btoi(x)))
		}
	}
	for _, op := range s.Lookups {
		put(uint64(op.Epoch))
		put(uint64(op.From))
		put(uint64(op.Key))
	}
	for _, p := range s.Pings {
		put(uint64(p[0]))
		put(uint64(p[1]))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Outcome is what one lookup found.
type Outcome struct {
	LookupOp
	// Found: the lookup returned the record of the key's announcer.
	Found bool
	Peers int
	Err   error
	// LiveHolders is how many nodes storing the record were up.
	LiveHolders int
	Stats       node.LookupStats
}

// Results of a Uniform run. The JSON names are what `kadtracker netsim run`
// writes to results.json.
type Results struct {
	Nodes          int     `json:"nodes"`
	Replication    int     `json:"replication"`
	Rp             float64 `json:"rp"`
	Lookups        int     `json:"lookups"`
	Keys           int     `json:"keys"`
	Epochs         int     `json:"epochs"`
	Seed           uint64  `json:"seed"`
	Latency        string  `json:"latency"`
	ScheduleSHA256 string  `json:"schedule_sha256"`
	// Lookup is "early" (the default) or "full" (node.Config.FullLookup);
	// HandshakeRTTs the round trips a new connection paid.
	Lookup        string `json:"lookup"`
	HandshakeRTTs int    `json:"handshake_rtts"`
	// Announce is "early" (the default) or "full" (node.Config.FullAnnounce);
	// BusyGC: the collector ran while announces and lookups were timed.
	Announce string `json:"announce"`
	BusyGC   bool   `json:"busy_gc"`

	Successes   int        `json:"successes"`
	SuccessRate float64    `json:"success_rate"`
	SuccessCI95 [2]float64 `json:"success_ci95"`
	// HolderAliveRate is the share of lookups for which at least one node
	// storing the record was up: what a perfect walk would achieve.
	HolderAliveRate float64 `json:"holder_alive_rate"`
	HopsMean        float64 `json:"hops_mean"`
	HopHistogram    []int   `json:"hop_histogram"` // lookups by hops, from 0
	QueriedMean     float64 `json:"queried_mean"`
	AnsweredMean    float64 `json:"answered_mean"`
	// ModelSuccess is R_DHT = (1-(1-Rp)^m)^k with k = HopsMean;
	// ReplicaBound is 1-(1-Rp)^m; RServer1 is one tracker server as reliable
	// as a peer.
	ModelSuccess float64 `json:"model_success"`
	ReplicaBound float64 `json:"replica_bound"`
	RServer1     float64 `json:"r_server_1"`
	DownMean     float64 `json:"nodes_down_mean"`

	StoredOnMean float64 `json:"stored_on_mean"`
	// AnnouncesEarly counts the announces that returned before their walk
	// ended (node.AnnounceResult.Early).
	AnnouncesEarly int `json:"announces_early"`
	AnnounceErrors int `json:"announce_errors"`
	LookupErrors   int `json:"lookup_errors"`
	// Republishes counts republished records during the run: nonzero means
	// some lookups may have found records put back after the failures.
	Republishes int64 `json:"republishes"`

	LatencyMS Percentiles `json:"latency_ms"`
	RPCRTTMS  float64     `json:"rpc_rtt_ms"`
	// LatencyRTT is lookup latency in RPC round trips.
	LatencyRTT Percentiles `json:"latency_rtt"`
	// AnnounceMS and AnnounceRTT are the announces' latency (walk and
	// PUTs), in milliseconds and in RPC round trips.
	AnnounceMS  Percentiles `json:"announce_ms"`
	AnnounceRTT Percentiles `json:"announce_rtt"`

	// Locality is the locality workload's, when it ran (--latency-model geo).
	Locality *LocalityResults `json:"locality,omitempty"`

	Memory *Memory `json:"memory,omitempty"`
	// Publish is the republish workload's (Publish), absent from others.
	Publish *PublishResults `json:"publish,omitempty"`
	// BuildSeconds is how long the network took to build (RunNetwork);
	// Seconds how long the workload ran.
	BuildSeconds float64   `json:"build_seconds,omitempty"`
	Seconds      float64   `json:"seconds"`
	Outcomes     []Outcome `json:"-"`
	Schedule     Schedule  `json:"-"`
}

// NoRepublish makes records live a day and puts republishing as far off as
// the node allows (just under records.MaxBridgedTTL, which the bridged TTL
// may not exceed), so no republish falls between the announces and the
// lookups of a run, as the reliability model assumes: what the announces
// stored is all the lookups can find. Results.Republishes counts any that
// do fall within a run.
func NoRepublish(c *Config) {
	c.Node.RecordTTL = 24 * time.Hour
	c.Node.MaxRecordTTL = 24 * time.Hour
	c.Node.BridgedRecordTTL = records.MaxBridgedTTL
	c.Node.RepublishInterval = records.MaxBridgedTTL - time.Minute
}

// RunNetwork builds a network from cfg, runs w on it with seed, measures
// the memory the network took, and closes it.
func RunNetwork(ctx context.Context, cfg Config, w Uniform, seed uint64) (*Results, error) {
	if err := w.Validate(); err != nil {
		return nil, err
	}
	base := MemBaseline()
	start := time.Now()
	nw, err := New(ctx, cfg)
	if err != nil {
		return nil, err
	}
	built := time.Since(start)
	mem := nw.Memory(base)
	res, err := w.Run(ctx, nw, seed)
	if cerr := nw.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	res.Memory = &mem
	res.BuildSeconds = built.Seconds()
	return res, nil
}

// Run runs the workload on nw: announces, pings, then each epoch's failures
// and lookups. Every failed node is repaired before it returns.
func (w Uniform) Run(ctx context.Context, nw *Network, seed uint64) (*Results, error) {
	if err := w.Validate(); err != nil {
		return nil, err
	}
	start := time.Now()
	s, err := w.Schedule(seed, nw.Size())
	if err != nil {
		return nil, err
	}
	m := nw.cfg.Node.Replication
	res := &Results{
		Nodes: nw.Size(), Replication: m, Rp: w.Rp, Lookups: w.Lookups, Keys: w.Keys,
		Epochs: w.Epochs, Seed: seed, Latency: nw.cfg.Latency.String(), ScheduleSHA256: s.Hash(),
		Schedule: s, Lookup: "early", HandshakeRTTs: nw.cfg.HandshakeRTTs,
		Announce: "early", BusyGC: w.BusyGC,
	}
	if nw.cfg.Node.FullAnnounce {
		res.Announce = "full"
	}
	if nw.cfg.Node.FullLookup {
		res.Lookup = "full"
	}
	defer nw.SetDown(nil)
	if w.Locality != nil {
		if res.Locality, err = w.Locality.Run(ctx, nw, seed); err != nil {
			return nil, err
		}
	}
	republishes := nw.republishes()
	if !w.BusyGC {
		defer quietGC()()
	}

	// Announce every key with every node up.
	storedOn := make([]int, len(s.Keys))
	announceErrs := make([]error, len(s.Keys))
	announceMS := make([]float64, len(s.Keys))
	early := make([]bool, len(s.Keys))
	forEach(ctx, len(s.Keys), w.Concurrency, func(k int) {
		t0 := time.Now()
		r, err := nw.Node(s.Announcers[k]).Announce(ctx, s.Keys[k], 6881, true)
		storedOn[k], announceErrs[k], announceMS[k] = r.StoredOn, err, ms(time.Since(t0))
		early[k] = r.Early
	})
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	stored := 0
	var announced []float64
	for k := range s.Keys {
		stored += storedOn[k]
		res.AnnouncesEarly += btoi(early[k])
		if announceErrs[k] != nil {
			res.AnnounceErrors++
		} else {
			announced = append(announced, announceMS[k])
		}
	}
	res.AnnounceMS = percentiles(announced)
	res.StoredOnMean = float64(stored) / float64(len(s.Keys))
	holders, err := nw.holders(ctx, s)
	if err != nil {
		return nil, err
	}

	// One round trip on an open stream, the unit of lookup latency.
	var rtts []float64
	for _, p := range s.Pings {
		pctx, cancel := context.WithTimeout(ctx, w.LookupTimeout)
		rtt, err := nw.Node(p[0]).PingRTT(pctx, nw.Node(p[1]).ID())
		cancel()
		if err == nil {
			rtts = append(rtts, ms(rtt))
		}
	}
	res.RPCRTTMS = percentiles(rtts).P50
	res.AnnounceRTT = res.AnnounceMS.scale(res.RPCRTTMS)

	res.Outcomes = make([]Outcome, len(s.Lookups))
	done, downs := 0, 0
	routing := nw.SnapshotRouting()
	for e, down := range s.Down {
		if e > 0 {
			nw.RestoreRouting(routing)
			nw.TrimConns()
		}
		nw.SetDown(down)
		for _, d := range down {
			downs += btoi(d)
		}
		var ops []int
		for i, op := range s.Lookups {
			if op.Epoch == e {
				ops = append(ops, i)
			}
		}
		var mu sync.Mutex
		forEach(ctx, len(ops), w.Concurrency, func(j int) {
			i := ops[j]
			op := s.Lookups[i]
			lctx, cancel := context.WithTimeout(ctx, w.LookupTimeout)
			lr, err := nw.Node(op.From).Lookup(lctx, s.Keys[op.Key], w.Want)
			cancel()
			o := Outcome{LookupOp: op, Err: err, Peers: len(lr.Peers), Stats: lr.Stats}
			announcer := nw.Node(s.Announcers[op.Key]).ID()
			for _, p := range lr.Peers {
				if p.Announcer == announcer {
					o.Found = true
				}
			}
			for _, h := range holders[op.Key] {
				if !down[h] {
					o.LiveHolders++
				}
			}
			res.Outcomes[i] = o
			mu.Lock()
			done++
			if w.Progress != nil {
				w.Progress(done, len(s.Lookups))
			}
			mu.Unlock()
		})
		nw.SetDown(nil)
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	nw.RestoreRouting(routing)
	res.Republishes = nw.republishes() - republishes
	res.DownMean = float64(downs) / float64(len(s.Down))
	res.summarise()
	res.Seconds = time.Since(start).Seconds()
	return res, nil
}

// summarise fills the aggregate fields from Outcomes.
func (res *Results) summarise() {
	var lat []float64
	alive, hops, queried, answered := 0, 0, 0, 0
	res.HopHistogram = nil
	for _, o := range res.Outcomes {
		if o.Err != nil {
			res.LookupErrors++
		} else {
			lat = append(lat, ms(o.Stats.Duration))
		}
		res.Successes += btoi(o.Found)
		alive += btoi(o.LiveHolders > 0)
		for len(res.HopHistogram) <= o.Stats.Hops {
			res.HopHistogram = append(res.HopHistogram, 0)
		}
		res.HopHistogram[o.Stats.Hops]++
		hops += o.Stats.Hops
		queried += o.Stats.Queried
		answered += o.Stats.Answered
	}
	if n := float64(len(res.Outcomes)); n > 0 {
		res.SuccessRate = float64(res.Successes) / n
		res.HolderAliveRate = float64(alive) / n
		res.HopsMean = float64(hops) / n
		res.QueriedMean = float64(queried) / n
		res.AnsweredMean = float64(answered) / n
	}
	lo, hi := Wilson(res.Successes, len(res.Outcomes), 1.96)
	res.SuccessCI95 = [2]float64{lo, hi}
	res.ModelSuccess = RDHT(res.Rp, res.Replication, res.HopsMean)
	res.ReplicaBound = ReplicaBound(res.Rp, res.Replication)
	res.RServer1 = RServer(res.Rp, 1)
	res.LatencyMS = percentiles(lat)
	res.LatencyRTT = res.LatencyMS.scale(res.RPCRTTMS)
}

// republishes is the number of republished records, over all nodes.
func (nw *Network) republishes() int64 {
	var n int64
	for _, nd := range nw.nodes {
		n += nd.Stats().Republishes
	}
	return n
}

// holders maps each scheduled key to the nodes that store its record.
func (nw *Network) holders(ctx context.Context, s Schedule) ([][]int, error) {
	keyIndex := make(map[records.Key]int, len(s.Keys))
	for k, key := range s.Keys {
		keyIndex[key] = k
	}
	out := make([][]int, len(s.Keys))
	for i, nd := range nw.nodes {
		entries, err := nd.Records(ctx)
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			k, ok := keyIndex[e.Key]
			if ok && e.Announcer == nw.nodes[s.Announcers[k]].ID() && !slices.Contains(out[k], i) {
				out[k] = append(out[k], i)
			}
		}
	}
	return out, nil
}

// forEach calls f(0..n-1), at most par at a time, and returns when all
// calls have; once ctx ends it starts no more.
func forEach(ctx context.Context, n, par int, f func(i int)) {
	sem := make(chan struct{}, max(par, 1))
	var wg sync.WaitGroup
	for i := range n {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return
		}
		wg.Go(func() {
			defer func() { <-sem }()
			f(i)
		})
	}
	wg.Wait()
}
