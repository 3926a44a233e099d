package netsim

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/kadtracker/kadtracker/node"
	"github.com/kadtracker/kadtracker/records"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Locality is the workload of issue 16 (CTracker's latency experiment):
// rounds of coordinate traffic, in which every node pings Probes random
// peers of its routing table, with the coordinates' relative error after
// each; then Swarms torrents, each announced by SwarmSize random nodes;
// then, at each locality share of Shares, every member of every swarm
// looks its swarm up for Want peers. For each lookup it compares the true
// round trips (twice the link latency) from the requester to the peers
// returned with those to as many random members of the swarm and to the
// as many nearest (the oracle), and it records who got whom.
type Locality struct {
	Swarms, SwarmSize, Want int
	Rounds, Probes          int
	// Share is the run's locality share (--locality): results.json's
	// rtt_ms_* are at it. Shares are the sweep's; Share is added.
	Share  float64
	Shares []float64
	// ErrorPairs is how many random node pairs the coordinates' error is
	// measured on.
	ErrorPairs int
	// Concurrency bounds the announces and lookups in flight; nodes ping
	// ProbeConcurrency at a time (a ping costs little CPU, and CPU
	// queueing inflates the round trips the coordinates learn from).
	Concurrency, ProbeConcurrency int
	Timeout                       time.Duration
	Progress                      func(stage string, done, total int)
}

// DefaultLocality is the workload of `netsim run --latency-model geo`.
func DefaultLocality() Locality {
	return Locality{
		Swarms: 20, SwarmSize: 40, Want: 10, Rounds: 40, Probes: 2,
		Share: node.DefaultLocality, Shares: []float64{0, 0.25, 0.5, 0.75, 1},
		ErrorPairs: 2000, Concurrency: 16, ProbeConcurrency: 64, Timeout: time.Minute,
	}
}

// Validate reports every problem with l.
func (l Locality) Validate() error {
	var errs []error
	if l.Swarms < 1 || l.SwarmSize < 2 || l.Want < 1 || l.Rounds < 0 || l.Probes < 0 || l.ErrorPairs < 1 || l.Concurrency < 1 || l.ProbeConcurrency < 1 || l.Timeout <= 0 {
		errs = append(errs, errors.New("netsim: locality workload sizes out of range"))
	}
	for _, s := range append([]float64{l.Share}, l.Shares...) {
		if !(s >= 0 && s <= 1) {
			errs = append(errs, fmt.Errorf("netsim: locality share %v out of 0..1", s))
		}
	}
	return errors.Join(errs...)
}

// LocalityResults are results.json's "locality".
type LocalityResults struct {
	Share float64 `json:"share"`
	// Medians over lookups of the median true round trip from the
	// requester to the peers returned: random members, kadtracker's
	// ranking at Share, the nearest members.
	RTTMsRandom float64 `json:"rtt_ms_random"`
	RTTMsRanked float64 `json:"rtt_ms_ranked"`
	RTTMsOracle float64 `json:"rtt_ms_oracle"`
	// Means over lookups of the mean round trip to the peers returned.
	RTTMsRandomMean float64 `json:"rtt_ms_random_mean"`
	RTTMsRankedMean float64 `json:"rtt_ms_ranked_mean"`
	RTTMsOracleMean float64 `json:"rtt_ms_oracle_mean"`
	// CoordRelErrorMedian is the median over node pairs of |predicted -
	// true| / true round trip, after the lookups; ByRound after each round
	// of coordinate traffic (index 0: before any).
	CoordRelErrorMedian  float64   `json:"coord_rel_error_median"`
	CoordRelErrorByRound []float64 `json:"coord_rel_error_by_round"`
	// RoundsToConverge is the first round after which the error stays
	// within 10 % (plus 0.02) of its value after the last round.
	RoundsToConverge int `json:"rounds_to_converge"`
	// SwarmsConnected: at Share, in every swarm the graph of who got whom
	// (undirected) is connected.
	SwarmsConnected bool              `json:"swarms_connected"`
	Lookups         int               `json:"lookups"`
	LookupErrors    int               `json:"lookup_errors"`
	Sweep           []LocalityPoint   `json:"sweep"`
	Regions         map[string]int    `json:"regions"`
	Refused         map[string]int64  `json:"coord_refused"`
	Samples         int64             `json:"coord_samples"`
	Seconds         float64           `json:"seconds"`
	points          map[float64][]rtt `json:"-"`
}

// LocalityPoint is one share of the sweep.
type LocalityPoint struct {
	Share           float64 `json:"share"`
	RTTMsRandom     float64 `json:"rtt_ms_random"`
	RTTMsRanked     float64 `json:"rtt_ms_ranked"`
	RTTMsOracle     float64 `json:"rtt_ms_oracle"`
	RTTMsRankedMean float64 `json:"rtt_ms_ranked_mean"`
	// CoordRelError is the coordinates' median relative error after this
	// share's lookups (their round trips are samples too).
	CoordRelError float64 `json:"coord_rel_error"`
	// Unsettled is the share of nodes whose own error estimate was 1 or
	// more after this share's lookups: they rank nothing and sign no
	// coordinate (node.coordUsableError).
	Unsettled float64 `json:"unsettled"`
	// SwarmsConnected is the share of swarms whose who-got-whom graph is
	// connected.
	SwarmsConnected float64 `json:"swarms_connected"`
	Lookups         int     `json:"lookups"`
}

// rtt is one lookup's medians and means, ms.
type rtt struct{ random, ranked, oracle, randomMean, rankedMean, oracleMean float64 }

// trueRTT is the round trip between nodes i and j.
func (nw *Network) trueRTT(i, j int) time.Duration {
	return 2 * nw.cfg.Latency.Link(nw.cfg.Seed, min(i, j), max(i, j))
}

// coordError is the median relative error of the coordinates' predictions
// over pairs.
func (nw *Network) coordError(pairs [][2]int) float64 {
	errs := make([]float64, 0, len(pairs))
	for _, p := range pairs {
		a, _ := nw.nodes[p[0]].Coordinate()
		b, _ := nw.nodes[p[1]].Coordinate()
		t := nw.trueRTT(p[0], p[1]).Seconds()
		if t > 0 {
			errs = append(errs, math.Abs(a.Distance(b)-t)/t)
		}
	}
	return median(errs)
}

// Run runs l on nw with seed.
func (l Locality) Run(ctx context.Context, nw *Network, seed uint64) (*LocalityResults, error) {
	if err := l.Validate(); err != nil {
		return nil, err
	}
	start := time.Now()
	n := nw.Size()
	if l.SwarmSize > n {
		return nil, fmt.Errorf("netsim: swarms of %d in a network of %d", l.SwarmSize, n)
	}
	rng := rand.New(rand.NewPCG(seed, 0x6c6f_6361_6c69_7479))
	res := &LocalityResults{Share: l.Share, Regions: make(map[string]int), points: make(map[float64][]rtt)}
	for i := range n {
		res.Regions[RegionName(GeoPlaceOf(nw.cfg.Seed, i).Region)]++
	}
	pairs := make([][2]int, l.ErrorPairs)
	for k := range pairs {
		a := rng.IntN(n)
		pairs[k] = [2]int{a, (a + 1 + rng.IntN(n-1)) % n}
	}
	progress := func(stage string, done, total int) {
		if l.Progress != nil {
			l.Progress(stage, done, total)
		}
	}

	// Coordinate traffic: each round every node pings Probes random peers
	// of its routing table, as its probe loop would.
	res.CoordRelErrorByRound = append(res.CoordRelErrorByRound, nw.coordError(pairs))
	for r := range l.Rounds {
		targets := make([][]peer.ID, n)
		for i, nd := range nw.nodes {
			rt := nd.DHT().RoutingTable().ListPeers()
			for range min(l.Probes, len(rt)) {
				targets[i] = append(targets[i], rt[rng.IntN(len(rt))])
			}
		}
		forEach(ctx, n, l.ProbeConcurrency, func(i int) {
			for _, p := range targets[i] {
				pctx, cancel := context.WithTimeout(ctx, l.Timeout)
				_ = nw.nodes[i].Probe(pctx, p)
				cancel()
			}
		})
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		res.CoordRelErrorByRound = append(res.CoordRelErrorByRound, nw.coordError(pairs))
		progress("coordinates", r+1, l.Rounds)
	}
	final := res.CoordRelErrorByRound[len(res.CoordRelErrorByRound)-1]
	res.RoundsToConverge = len(res.CoordRelErrorByRound) - 1
	for r := len(res.CoordRelErrorByRound) - 1; r >= 0 && res.CoordRelErrorByRound[r] <= final*1.1+0.02; r-- {
		res.RoundsToConverge = r
	}

	// Swarms: distinct random members each, announced once.
	keys := make([]records.Key, l.Swarms)
	members := make([][]int, l.Swarms)
	memberOf := make([]map[peer.ID]int, l.Swarms)
	var announces [][2]int
	for s := range keys {
		k, err := randomKey(rng)
		if err != nil {
			return nil, err
		}
		keys[s] = k
		members[s] = sample(rng, n, l.SwarmSize)
		memberOf[s] = make(map[peer.ID]int, l.SwarmSize)
		for _, i := range members[s] {
			memberOf[s][nw.nodes[i].ID()] = i
			announces = append(announces, [2]int{s, i})
		}
	}
	var mu sync.Mutex
	done := 0
	forEach(ctx, len(announces), l.Concurrency, func(a int) {
		s, i := announces[a][0], announces[a][1]
		actx, cancel := context.WithTimeout(ctx, l.Timeout)
		_, _ = nw.nodes[i].Announce(actx, keys[s], uint16(6881+i%1000), false)
		cancel()
		mu.Lock()
		done++
		progress("announces", done, len(announces))
		mu.Unlock()
	})
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	shares := slices.Clone(l.Shares)
	if !slices.Contains(shares, l.Share) {
		shares = append(shares, l.Share)
	}
	slices.Sort(shares)
	defer func() {
		for _, nd := range nw.nodes {
			nd.SetLocality(nw.cfg.Node.Locality)
		}
	}()
	for _, share := range shares {
		for _, nd := range nw.nodes {
			nd.SetLocality(share)
		}
		type op struct{ s, i int }
		var ops []op
		for s := range keys {
			for _, i := range members[s] {
				ops = append(ops, op{s, i})
			}
		}
		got := make([][]int, len(ops)) // members each lookup returned
		rtts := make([]rtt, len(ops))
		ok := make([]bool, len(ops))
		errs := 0
		done = 0
		forEach(ctx, len(ops), l.Concurrency, func(k int) {
			o := ops[k]
			lctx, cancel := context.WithTimeout(ctx, l.Timeout)
			lr, err := nw.nodes[o.i].Lookup(lctx, keys[o.s], l.Want)
			cancel()
			mu.Lock()
			defer mu.Unlock()
			done++
			progress(fmt.Sprintf("lookups at locality %.2f", share), done, len(ops))
			if err != nil {
				errs++
				return
			}
			for _, p := range lr.Peers {
				if j, in := memberOf[o.s][p.Announcer]; in && j != o.i {
					got[k] = append(got[k], j)
				}
			}
			if len(got[k]) > 0 {
				rtts[k], ok[k] = l.compare(nw, rng, o.i, members[o.s], got[k]), true
			}
		})
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var kept []rtt
		for k := range ops {
			if ok[k] {
				kept = append(kept, rtts[k])
			}
		}
		res.points[share] = kept
		connected := 0
		for s := range keys {
			var edges [][2]int
			for k, o := range ops {
				if o.s == s {
					for _, j := range got[k] {
						edges = append(edges, [2]int{o.i, j})
					}
				}
			}
			if isConnected(members[s], edges) {
				connected++
			}
		}
		pt := LocalityPoint{Share: share, Lookups: len(kept), SwarmsConnected: float64(connected) / float64(len(keys))}
		pt.RTTMsRandom = median(field(kept, func(r rtt) float64 { return r.random }))
		pt.RTTMsRanked = median(field(kept, func(r rtt) float64 { return r.ranked }))
		pt.RTTMsOracle = median(field(kept, func(r rtt) float64 { return r.oracle }))
		pt.RTTMsRankedMean = mean(field(kept, func(r rtt) float64 { return r.rankedMean }))
		pt.CoordRelError = nw.coordError(pairs)
		for _, nd := range nw.nodes {
			if c, _ := nd.Coordinate(); c.Error >= 1 {
				pt.Unsettled += 1 / float64(n)
			}
		}
		res.Sweep = append(res.Sweep, pt)
		if share == l.Share {
			res.RTTMsRandom, res.RTTMsRanked, res.RTTMsOracle = pt.RTTMsRandom, pt.RTTMsRanked, pt.RTTMsOracle
			res.RTTMsRandomMean = mean(field(kept, func(r rtt) float64 { return r.randomMean }))
			res.RTTMsRankedMean = pt.RTTMsRankedMean
			res.RTTMsOracleMean = mean(field(kept, func(r rtt) float64 { return r.oracleMean }))
			res.SwarmsConnected = connected == len(keys)
			res.Lookups, res.LookupErrors = len(ops), errs
		}
	}
	res.CoordRelErrorMedian = nw.coordError(pairs)
	res.Refused = make(map[string]int64)
	for _, nd := range nw.nodes {
		_, st := nd.Coordinate()
		res.Samples += st.Samples
		for k, v := range st.Refused {
			res.Refused[k] += v
		}
	}
	res.Seconds = time.Since(start).Seconds()
	return res, nil
}

// compare is one lookup's round trips: from requester i to the members it
// got, to as many random members, and to as many nearest.
func (l Locality) compare(nw *Network, rng *rand.Rand, i int, members, got []int) rtt {
	others := slices.DeleteFunc(slices.Clone(members), func(j int) bool { return j == i })
	ms := func(js []int) []float64 {
		out := make([]float64, len(js))
		for k, j := range js {
			out[k] = float64(nw.trueRTT(i, j)) / 1e6
		}
		return out
	}
	all := ms(others)
	slices.Sort(all)
	oracle := all[:len(got)]
	perm := rng.Perm(len(others))[:len(got)]
	random := make([]float64, len(got))
	for k, p := range perm {
		random[k] = float64(nw.trueRTT(i, others[p])) / 1e6
	}
	ranked := ms(got)
	return rtt{median(random), median(ranked), median(oracle), mean(random), mean(ranked), mean(oracle)}
}

// isConnected reports whether the undirected graph of edges spans nodes.
func isConnected(nodes []int, edges [][2]int) bool {
	if len(nodes) == 0 {
		return true
	}
	adj := make(map[int][]int)
	for _, e := range edges {
		adj[e[0]] = append(adj[e[0]], e[1])
		adj[e[1]] = append(adj[e[1]], e[0])
	}
	seen := map[int]bool{nodes[0]: true}
	stack := []int{nodes[0]}
	for len(stack) > 0 {
		x := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, y := range adj[x] {
			if !seen[y] {
				seen[y] = true
				stack = append(stack, y)
			}
		}
	}
	for _, x := range nodes {
		if !seen[x] {
			return false
		}
	}
	return true
}

func field(rs []rtt, f func(rtt) float64) []float64 {
	out := make([]float64, len(rs))
	for i, r := range rs {
		out[i] = f(r)
	}
	return out
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func mean(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	sum := 0.0
	for _, x := range xs {
		sum += x
	}
	return sum / float64(len(xs))
}

// PlotLocality draws locality_rtt.png (round trip to the peers returned
// against the locality share) and locality_error.png (the coordinates'
// error by round) into dir.
func PlotLocality(dir string, nodes int, res *LocalityResults) error {
	var xs, rnd, rk, or []float64
	for _, p := range res.Sweep {
		xs = append(xs, p.Share)
		rnd = append(rnd, p.RTTMsRandom)
		rk = append(rk, p.RTTMsRanked)
		or = append(or, p.RTTMsOracle)
	}
	c := chart{
		title:  fmt.Sprintf("Round trip to the peers a lookup returns (N=%d, geo model)", nodes),
		xlabel: "locality share (--locality)", ylabel: "median RTT to returned peers (ms)", legendTop: true,
		yMin: 0, yMax: 1.4 * slices.Max(append(rnd, 1)),
		series: []series{
			{name: "random selection", xs: xs, ys: rnd, points: true},
			{name: "kadtracker ranking", xs: xs, ys: rk, points: true},
			{name: "oracle (true nearest)", xs: xs, ys: or, points: true},
		},
	}
	if err := c.save(filepath.Join(dir, "locality_rtt.png")); err != nil {
		return err
	}
	var rounds []float64
	for r := range res.CoordRelErrorByRound {
		rounds = append(rounds, float64(r))
	}
	e := chart{
		title:  fmt.Sprintf("Vivaldi coordinates' error (N=%d, geo model, 2 pings a node a round)", nodes),
		xlabel: "rounds of coordinate traffic", ylabel: "median relative error of predicted RTT", legendTop: true,
		yMin: 0, yMax: 1.05,
		series: []series{{name: "median over node pairs", xs: rounds, ys: res.CoordRelErrorByRound, points: true}},
	}
	return e.save(filepath.Join(dir, "locality_error.png"))
}
