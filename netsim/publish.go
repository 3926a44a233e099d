package netsim

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kadtracker/kadtracker/node"
	"github.com/kadtracker/kadtracker/records"
	kadpb "github.com/libp2p/go-libp2p-kad-dht/pb"
	"google.golang.org/protobuf/proto"
)

// Publish is the republish workload (issue 15): node 0 announces Keys
// torrents, as a seedbox does, and then, across Duration, Lookups lookups
// of random announced torrents run from random other nodes while node 0
// republishes with the network's RepublishInterval and RecordTTL. Over
// two record TTLs every key must stay findable. Serial runs the old
// scheduler (node.Config.SerialRepublish) for comparison.
type Publish struct {
	Keys     int
	Lookups  int
	Duration time.Duration
	// Concurrency is how many of the first announces are in flight at once.
	Concurrency   int
	Want          int
	LookupTimeout time.Duration
	Progress      func(done, total int)
}

// DefaultPublish is a small run.
func DefaultPublish() Publish {
	return Publish{Keys: 1000, Lookups: 200, Duration: time.Minute, Concurrency: 16, Want: 50, LookupTimeout: time.Minute}
}

// Validate reports every problem with p.
func (p Publish) Validate() error {
	if p.Keys < 1 || p.Lookups < 1 || p.Duration <= 0 || p.Concurrency < 1 || p.Want < 1 || p.LookupTimeout <= 0 {
		return errors.New("netsim: the publish workload needs keys, lookups, a duration, concurrency, want and a lookup timeout")
	}
	return nil
}

// PublishResults are results.json's "publish": what the announcer's
// republishing cost and whether it kept every record alive.
type PublishResults struct {
	Keys int `json:"keys"`
	// Lapsed counts records that expired before the announcer republished
	// them (node.PublishStats.LapsedTotal); KeysUnheld the keys no node
	// stored a live record of at the end.
	Lapsed     int64 `json:"lapsed"`
	KeysUnheld int   `json:"keys_unheld"`
	// RPCsPerKeyRound is the requests the announcer sent while
	// republishing (walk queries and PUTs) per key and republish
	// interval; BytesPerKeyHour the bytes of those requests per key and
	// hour (the messages alone, without transport framing).
	RPCsPerKeyRound float64 `json:"rpcs_per_key_round"`
	BytesPerKeyHour float64 `json:"bytes_per_key_hour"`
	// BytesPerKeyRound is the same per republish interval: times 6, the
	// cost per hour at the default 10-minute interval.
	BytesPerKeyRound float64 `json:"bytes_per_key_round"`
	// RPCsPerRepublish is the same per key republished: for a scheduler
	// that cannot finish a round within the interval, what a key's
	// republish costs, where RPCsPerKeyRound shows only the keys it got to.
	RPCsPerRepublish float64 `json:"rpcs_per_republish"`
	Republishes      int64   `json:"republishes"`
	// Scheduler is "regions" or "serial" (the old one).
	Scheduler      string  `json:"scheduler"`
	Republish      string  `json:"republish"`
	RecordTTL      string  `json:"record_ttl"`
	Rounds         float64 `json:"rounds"` // republish intervals measured
	Walks          int64   `json:"walks"`
	WalkQueries    int64   `json:"walk_queries"`
	PutsSent       int64   `json:"puts_sent"`
	QueriesPerWalk float64 `json:"queries_per_walk"`
	CapacityKeys   int     `json:"capacity_keys"`
	// The Mainline DHT's cost for the same torrents: one get_peers walk
	// (as many queries as this network's walks) plus 8 announce_peer per
	// torrent every 30 minutes, in KRPC messages of about mainlineGetPeers
	// and mainlineAnnounce bytes.
	MainlineRPCsPer30Min    float64 `json:"mainline_rpcs_per_key_30min"`
	MainlineBytesPerKeyHour float64 `json:"mainline_bytes_per_key_hour"`
	AnnounceSeconds         float64 `json:"announce_seconds"`
}

// Sizes of Mainline's KRPC queries, bencoded, without UDP and IP headers:
// get_peers with a transaction ID, node ID and infohash; announce_peer with
// a token and port as well.
const (
	mainlineGetPeers = 95
	mainlineAnnounce = 150
)

// findNodeBytes is the size of one kad-dht FIND_NODE request for key, with
// its length prefix: what a walk sends each node it queries.
func findNodeBytes(key records.Key) int {
	m := kadpb.NewMessage(kadpb.Message_FIND_NODE, []byte(key.DHTKey()), 0)
	n := proto.Size(m)
	return n + varintLen(n)
}

func varintLen(n int) int {
	l := 1
	for ; n >= 0x80; n >>= 7 {
		l++
	}
	return l
}

// Run announces, measures the republishing across p.Duration with
// lookups spread over it, and returns Results with Publish set.
func (p Publish) Run(ctx context.Context, nw *Network, seed uint64) (*Results, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if nw.Size() < 2 {
		return nil, errors.New("netsim: the publish workload needs two nodes or more")
	}
	start := time.Now()
	cfg := nw.cfg.Node
	rng := rand.New(rand.NewPCG(seed, 0x7075_626c_6973_68))
	keys := make([]records.Key, p.Keys)
	for i := range keys {
		k, err := randomKey(rng)
		if err != nil {
			return nil, err
		}
		keys[i] = k
	}
	a := nw.Node(0)
	res := &Results{
		Nodes: nw.Size(), Replication: cfg.Replication, Rp: 1, Lookups: p.Lookups, Keys: p.Keys, Epochs: 1,
		Seed: seed, Latency: nw.cfg.Latency.String(), Lookup: "early", HandshakeRTTs: nw.cfg.HandshakeRTTs,
	}
	if cfg.FullLookup {
		res.Lookup = "full"
	}
	// The first announces: the immediate path, as a seedbox's client
	// announcing its torrents at start.
	var announceErrs int
	var mu sync.Mutex
	forEach(ctx, len(keys), p.Concurrency, func(i int) {
		if _, err := a.Announce(ctx, keys[i], 6881, true); err != nil {
			mu.Lock()
			announceErrs++
			mu.Unlock()
		}
	})
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	res.AnnounceErrors = announceErrs
	announced := time.Since(start)
	beforeAll := a.Stats()
	before := beforeAll.Publish

	// Lookups at even times across the duration, from random nodes but
	// the announcer, of random keys.
	ops := make([]LookupOp, p.Lookups)
	at := make([]time.Duration, p.Lookups)
	for i := range ops {
		ops[i] = LookupOp{From: 1 + rng.IntN(nw.Size()-1), Key: rng.IntN(len(keys))}
		at[i] = p.Duration * time.Duration(i+1) / time.Duration(p.Lookups+1)
	}
	res.Schedule = Schedule{Seed: seed, Nodes: nw.Size(), Keys: keys, Announcers: make([]int, len(keys)), Lookups: ops}
	res.ScheduleSHA256 = res.Schedule.Hash()
	res.Outcomes = make([]Outcome, len(ops))
	measureStart := time.Now()
	var wg sync.WaitGroup
	done := 0
	for i, op := range ops {
		select {
		case <-ctx.Done():
		case <-time.After(time.Until(measureStart.Add(at[i]))):
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			lctx, cancel := context.WithTimeout(ctx, p.LookupTimeout)
			lr, err := nw.Node(op.From).Lookup(lctx, keys[op.Key], p.Want)
			cancel()
			o := Outcome{LookupOp: op, Err: err, Peers: len(lr.Peers), Stats: lr.Stats, LiveHolders: 1} // every node is up
			for _, pe := range lr.Peers {
				o.Found = o.Found || pe.Announcer == a.ID()
			}
			mu.Lock()
			res.Outcomes[i] = o
			done++
			if p.Progress != nil {
				p.Progress(done, len(ops))
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if wait := p.Duration - time.Since(measureStart); wait > 0 {
		time.Sleep(wait)
	}
	elapsed := time.Since(measureStart)
	afterAll := a.Stats()
	after := afterAll.Publish

	unheld, err := unheldKeys(ctx, nw, keys, a)
	if err != nil {
		return nil, err
	}
	pr := &PublishResults{
		Keys: p.Keys, Lapsed: after.LapsedTotal, KeysUnheld: unheld,
		Scheduler: "regions", Republish: cfg.RepublishInterval.String(), RecordTTL: cfg.RecordTTL.String(),
		Rounds:       elapsed.Seconds() / cfg.RepublishInterval.Seconds(),
		Walks:        after.Walks - before.Walks,
		WalkQueries:  after.WalkQueries - before.WalkQueries,
		PutsSent:     after.PutsSent - before.PutsSent,
		CapacityKeys: after.CapacityKeys, AnnounceSeconds: announced.Seconds(),
	}
	if cfg.SerialRepublish {
		pr.Scheduler = "serial"
	}
	rpcs := float64(pr.WalkQueries + pr.PutsSent)
	bytes := float64(after.PutBytes-before.PutBytes) + float64(pr.WalkQueries)*float64(findNodeBytes(keys[0]))
	pr.RPCsPerKeyRound = rpcs / float64(p.Keys) / pr.Rounds
	pr.Republishes = afterAll.Republishes - beforeAll.Republishes
	res.Republishes = pr.Republishes
	if pr.Republishes > 0 {
		pr.RPCsPerRepublish = rpcs / float64(pr.Republishes)
	}
	pr.BytesPerKeyHour = bytes / float64(p.Keys) / elapsed.Hours()
	pr.BytesPerKeyRound = bytes / float64(p.Keys) / pr.Rounds
	// Queries per walk: of the republish walks, or failing those, of the
	// first announces'.
	if pr.Walks > 0 {
		pr.QueriesPerWalk = float64(pr.WalkQueries) / float64(pr.Walks)
	} else if before.Walks > 0 {
		pr.QueriesPerWalk = float64(before.WalkQueries) / float64(before.Walks)
	}
	pr.MainlineRPCsPer30Min = pr.QueriesPerWalk + 8
	pr.MainlineBytesPerKeyHour = 2 * (pr.QueriesPerWalk*mainlineGetPeers + 8*mainlineAnnounce)
	res.Publish = pr
	res.summarise()
	res.Seconds = time.Since(start).Seconds()
	return res, nil
}

// unheldKeys counts the keys of which no node stores a live record of a.
func unheldKeys(ctx context.Context, nw *Network, keys []records.Key, a *node.Node) (int, error) {
	held := make(map[records.Key]bool, len(keys))
	for _, nd := range nw.Nodes() {
		entries, err := nd.Records(ctx)
		if err != nil {
			return 0, err
		}
		for _, e := range entries {
			if e.Announcer == a.ID() && !e.Withdrawn {
				held[e.Key] = true
			}
		}
	}
	unheld := 0
	for _, k := range keys {
		if !held[k] {
			unheld++
		}
	}
	return unheld, nil
}

// RunPublish builds a network from cfg, runs p on it and closes it.
func RunPublish(ctx context.Context, cfg Config, p Publish, seed uint64) (*Results, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	start := time.Now()
	nw, err := New(ctx, cfg)
	if err != nil {
		return nil, err
	}
	built := time.Since(start)
	res, err := p.Run(ctx, nw, seed)
	if cerr := nw.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	res.BuildSeconds = built.Seconds()
	return res, nil
}

// String is a line on a publish run.
func (pr *PublishResults) String() string {
	return fmt.Sprintf("%s scheduler, %d keys: %d records lapsed, %d keys unheld at the end; %.1f RPCs per key and round of %s (%.1f per republish), %.0f bytes per key and hour; capacity about %d keys; Mainline: %.1f RPCs per key and 30 min, %.0f bytes per key and hour",
		pr.Scheduler, pr.Keys, pr.Lapsed, pr.KeysUnheld, pr.RPCsPerKeyRound, pr.Republish, pr.RPCsPerRepublish, pr.BytesPerKeyHour,
		pr.CapacityKeys, pr.MainlineRPCsPer30Min, pr.MainlineBytesPerKeyHour)
}

// PlotRunsPublish reads the results.json of republish runs (`netsim run
// --republish ...`) and plots the announcer's RPCs per key republished
// (its cost per key and round) against K, one curve per scheduler, beside
// Mainline's walk plus 8 announces per torrent and 30 minutes, to path.
func PlotRunsPublish(path string, dirs []string) error {
	type point struct{ k, rpcs float64 }
	curves := make(map[string][]point)
	var ticks []float64
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "results.json"))
		if err != nil {
			return err
		}
		var r Results
		if err := json.Unmarshal(b, &r); err != nil {
			return fmt.Errorf("netsim: %s: %w", d, err)
		}
		if r.Publish == nil {
			return fmt.Errorf("netsim: %s is not a republish run", d)
		}
		pr := r.Publish
		name := pr.Scheduler + " scheduler"
		// Per key republished: a serial round that does not finish within
		// the interval reaches only some keys, and RPCsPerKeyRound would
		// show its cost as lower than it is.
		rpcs := pr.RPCsPerRepublish
		if rpcs == 0 {
			rpcs = pr.RPCsPerKeyRound
		}
		curves[name] = append(curves[name], point{float64(pr.Keys), rpcs})
		curves["Mainline (a walk + 8 announces per 30 min)"] = append(curves["Mainline (a walk + 8 announces per 30 min)"], point{float64(pr.Keys), pr.MainlineRPCsPer30Min})
		if !slices.Contains(ticks, float64(pr.Keys)) {
			ticks = append(ticks, float64(pr.Keys))
		}
	}
	slices.Sort(ticks)
	ch := chart{
		title:  "Republishing K keys from one node (netsim, 1000 nodes, 10 ms links)",
		xlabel: "K, keys announced by one node (log scale)", ylabel: "RPCs sent per key republished (a round)", logX: true,
		legendLeft: true, xTicks: ticks, yMin: 0, yMax: 45,
	}
	names := make([]string, 0, len(curves))
	for name := range curves {
		names = append(names, name)
	}
	slices.Sort(names)
	for i, name := range names {
		ps := curves[name]
		slices.SortFunc(ps, func(a, b point) int { return cmp.Compare(a.k, b.k) })
		// One point per K: the mean of the runs at it.
		var xs, ys []float64
		for j := 0; j < len(ps); {
			k, sum, n := ps[j].k, 0.0, 0
			for ; j < len(ps) && ps[j].k == k; j++ {
				sum += ps[j].rpcs
				n++
			}
			xs, ys = append(xs, k), append(ys, sum/float64(n))
		}
		sr := series{name: name, xs: xs, ys: ys, points: true, color: i + 1}
		if strings.HasPrefix(name, "Mainline") {
			sr.points, sr.dashes = false, true
		}
		ch.series = append(ch.series, sr)
	}
	return ch.save(path)
}
