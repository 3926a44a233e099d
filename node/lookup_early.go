package node

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/kadtracker/kadtracker/records"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p-kad-dht/netsize"
	kb "github.com/libp2p/go-libp2p-kbucket"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/routing"
	ks "github.com/whyrusleeping/go-keyspace"
	"gonum.org/v1/gonum/mathext"
)

// The early answer. The full lookup walks until kad-dht has queried the k
// closest nodes it heard of (5 to 8 round trips from N=100 to 2,400) and
// only then asks the m closest for records. Yet the first round of the
// walk usually names the m closest already: the nodes it asks know their
// own neighbourhood. So lookupEarly watches the walk and, while it runs:
//
//   - asks the m closest nodes heard of so far with GET, as soon as they are
//     close enough that they may be among the m closest of a network of the
//     estimated size (kad-dht's netsize estimate, as its optimistic provide,
//     lookup_optim.go, uses it, with m for the bucket size; but where
//     optimistic provide stores only on nodes nearer than the 10th
//     percentile of the k-th closest node's distance, the lookup asks every
//     node nearer than the 90th: a GET too many costs little, one too few a
//     round trip). Without an estimate (kad-dht's, or failing that one from
//     the routing table), once one of them has answered the walk.
//   - answers once q = m/2+1 of the m closest heard of answered the GET,
//     every one of those m that was asked has answered, and they agree:
//     no announcer has two versions (sequence number, withdrawal) among
//     the answers, every record was returned by at least q of them, and
//     they returned at least one record (an empty answer waits for the
//     walk: the holders may be down and the nodes asked not hold the
//     key). With a
//     size estimate those q are all near enough to be among the m closest
//     with high probability (the test above); without one, the lookup also
//     waits until the earlyConfirm closest answered the walk (kad-dht's own
//     test that a walk is done), so their neighbours were heard of.
//
// The vouching rules (vouch.go) then merge those answers as they would the
// full lookup's. The trade: an early answer rests on q storing nodes that
// all agree instead of a majority of the m; q is a majority of m, so a
// minority of hostile storing nodes cannot make it by themselves, and one
// that adds, omits or replays a record breaks the agreement, and the
// lookup then waits for the walk and asks the m closest it found, as the
// full lookup does: a hostile node can cost time, not vouching.
const (
	// earlyCertainty: a node is asked early when it is nearer the key than
	// the m-th closest node is with probability 1-earlyCertainty or more.
	earlyCertainty = 0.9
	// earlyBudget caps the GETs of one lookup, in units of m.
	earlyBudget = 3
	// earlyConfirm: the m closest heard of are taken as found once this
	// many of the closest answered the walk, as kad-dht ends a walk once
	// its resiliency (3) closest answered.
	earlyConfirm = 3
	// kadBucketSize is kad-dht's k, the routing table's bucket size.
	kadBucketSize = 20
)

// walkPeer is a node the walk heard of.
type walkPeer struct {
	id      peer.ID
	dist    float64 // normed XOR distance to the key
	queried bool    // answered the walk
	gone    bool    // failed the walk or the GET
	asked   bool    // a GET was sent
	ans     *answer // the GET's answer, once it came
}

// earlyWalk is the state of one early lookup: what the walk heard and the
// storing nodes answered.
type earlyWalk struct {
	n         *Node
	key       records.Key
	ksKey     ks.Key
	m, q      int
	threshold float64 // ask nodes nearer than this; +Inf: no estimate
	size      float64 // the network's estimated size; 0: no estimate
	peers     map[peer.ID]*walkPeer
	envs      *envelopes // verified once, here and in merge
	now       time.Time
	depth     map[peer.ID]int // referral depth, as countHops
	hops      int
	asked     int
}

func (n *Node) newEarlyWalk(key records.Key) *earlyWalk {
	m := n.cfg.Replication
	w := &earlyWalk{
		n: n, key: key, ksKey: ks.XORKeySpace.Key([]byte(key.DHTKey())),
		m: m, q: m/2 + 1, threshold: math.Inf(1),
		peers: make(map[peer.ID]*walkPeer), depth: make(map[peer.ID]int),
		envs: newEnvelopes(), now: n.now(),
	}
	size, err := n.dht.NetworkSize()
	if err != nil || size <= 0 {
		size = int32(n.tableSize())
	}
	if size > 0 {
		w.size = float64(size)
		w.threshold = mathext.GammaIncRegInv(float64(m), earlyCertainty) / w.size
	}
	return w
}

// tableSize estimates the network's size from the routing table, for when
// kad-dht's estimator has too few walks yet: the first bucket that is not
// full holds every node at its distance, and the nodes at that distance or
// nearer fill 2^-cpl of the keyspace. 0 when the table says nothing.
func (n *Node) tableSize() int {
	rt := n.dht.RoutingTable()
	for cpl := range 256 {
		if rt.NPeersForCpl(uint(cpl)) >= kadBucketSize {
			continue
		}
		nearer := 0
		for c := cpl; c < 256; c++ {
			k := rt.NPeersForCpl(uint(c))
			if k == 0 && c > cpl+8 {
				break
			}
			nearer += k
		}
		if nearer == 0 || cpl > 40 {
			return 0
		}
		return (nearer + 1) << cpl
	}
	return 0
}

func (w *earlyWalk) heard(p peer.ID) *walkPeer {
	wp := w.peers[p]
	if wp == nil {
		wp = &walkPeer{id: p, dist: netsize.NormedDistance(p, w.ksKey)}
		w.peers[p] = wp
	}
	return wp
}

// event takes in one of the walk's lookup events.
func (w *earlyWalk) event(ev *dht.LookupEvent) {
	up := ev.Response
	if up == nil {
		up = ev.Request
	}
	if up == nil {
		return
	}
	parent := 0
	if up.Cause != nil {
		parent = w.depth[up.Cause.Peer]
	}
	for _, h := range up.Heard {
		if _, seen := w.depth[h.Peer]; !seen {
			w.depth[h.Peer] = parent + 1
		}
		w.heard(h.Peer)
	}
	if ev.Response == nil {
		return
	}
	for _, p := range up.Queried {
		w.hops = max(w.hops, w.depth[p.Peer])
		w.heard(p.Peer).queried = true
	}
	for _, p := range up.Unreachable {
		w.heard(p.Peer).gone = true
	}
}

// closest is the m nodes nearest the key that the walk heard of and that
// have not failed, after the diversity filter.
func (w *earlyWalk) closest() []*walkPeer {
	all := make([]*walkPeer, 0, len(w.peers))
	for _, wp := range w.peers {
		if !wp.gone {
			all = append(all, wp)
		}
	}
	slices.SortFunc(all, func(a, b *walkPeer) int { return cmp.Compare(a.dist, b.dist) })
	ids := make([]peer.ID, len(all))
	for i, wp := range all {
		ids[i] = wp.id
	}
	ids, _ = w.n.diverse(ids)
	out := make([]*walkPeer, 0, w.m)
	for _, p := range ids[:min(w.m, len(ids))] {
		out = append(out, w.peers[p])
	}
	return out
}

// toAsk is the nodes of top to send a GET to now.
func (w *earlyWalk) toAsk(top []*walkPeer) []*walkPeer {
	confirmed := !math.IsInf(w.threshold, 1)
	for _, wp := range top {
		confirmed = confirmed || (wp.queried && wp.id != w.n.host.ID())
	}
	var out []*walkPeer
	for _, wp := range top {
		if wp.asked || w.asked >= earlyBudget*w.m || !confirmed || wp.dist > w.threshold {
			continue
		}
		wp.asked = true
		w.asked++
		out = append(out, wp)
	}
	return out
}

// agreed returns the answers to early-answer with: those of top, when the
// earlyConfirm closest of top answered the walk (kad-dht's own test that a
// walk is done) and q of top the GET, and every envelope in the GET answers
// is in q of them. This node's own store, when among top, counts like any
// other storing node.
func (w *earlyWalk) agreed(top []*walkPeer) ([]answer, bool) {
	if math.IsInf(w.threshold, 1) {
		for _, wp := range top[:min(earlyConfirm, len(top))] {
			if !wp.queried {
				return nil, false
			}
		}
	}
	var answers []answer
	for _, wp := range top {
		if wp.asked && wp.ans == nil && !w.n.policy.earlyAnyAnswer {
			// Asked at about the same time as the others: its answer may
			// hold a newer record or a tombstone the others lack.
			return nil, false
		}
		if wp.ans != nil && wp.ans.err == nil {
			answers = append(answers, *wp.ans)
		}
	}
	if len(answers) < w.q {
		return nil, false
	}
	if w.n.policy.earlyAnyAnswer {
		return answers, true
	}
	// Agreement is on the announcer's newest record (sequence number and
	// withdrawal), not on envelopes: each storing node holds its own seal.
	type version struct {
		announcer peer.ID
		seq       uint64
		withdrawn bool
	}
	count := make(map[version]int)
	first := make(map[peer.ID]version) // the version first seen of each announcer
	for _, a := range answers {
		seen := make(map[version]bool, len(a.entries))
		for _, e := range a.entries {
			rec, ok := w.envs.open(w.n, w.key, e.envelope, w.now, a.from)
			if !ok {
				continue
			}
			v := version{rec.Announcer, rec.Seq, rec.Withdrawn}
			if f, ok := first[rec.Announcer]; ok && f != v {
				// Two versions of one announcer: the merge must pick the
				// newest from every answer, which only the walk's end gives.
				return nil, false
			}
			first[rec.Announcer] = v
			if !seen[v] {
				seen[v] = true
				count[v]++
			}
		}
	}
	if len(count) == 0 {
		// Nothing to agree on: a new swarm, or storing nodes that lost their
		// records or never got them (the holders may be down): the walk
		// may yet find nodes that hold some.
		return nil, false
	}
	for _, c := range count {
		if c < w.q {
			return nil, false
		}
	}
	return answers, true
}

// lookupEarly is Lookup when Config.FullLookup is off: the walk and the
// GETs run together and the lookup answers as soon as the m closest heard
// of agree (see the comment at the top of this file), or else once the
// walk ends, from the m closest it found.
func (n *Node) lookupEarly(ctx context.Context, key records.Key, want int, start time.Time) (LookupResult, error) {
	w := n.newEarlyWalk(key)
	ctx, cancel := context.WithCancel(ctx)
	walkCtx, lookupEvents := dht.RegisterForLookupEvents(ctx)
	walkCtx, queryEvents := routing.RegisterForQueryEvents(walkCtx)
	type walkEnd struct {
		peers []peer.ID
		err   error
	}
	var (
		wg      sync.WaitGroup
		queried int
		ended   = make(chan walkEnd, 1)
		// Every GET can finish without a reader: the lookup may be gone.
		answers = make(chan answer, earlyBudget*w.m+2*w.m+1)
	)
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		// The walk and the GETs end with ctx; the event channels close
		// with it and are drained until then, as kad-dht needs.
		cancel()
		wg.Go(func() {
			for range lookupEvents {
			}
		})
		wg.Wait()
	}
	defer stop()
	wg.Go(func() { queried = countQueried(queryEvents) })
	wg.Go(func() {
		peers, err := n.dht.GetClosestPeers(walkCtx, key.DHTKey())
		ended <- walkEnd{peers, err}
	})
	// One salt for all, as in the full lookup (see merge).
	salt := newSalt()
	ask := func(p peer.ID) {
		wg.Go(func() { answers <- n.get(ctx, p, key, n.askFor(want), salt) })
	}
	// This node's own store is read too, as in the full lookup.
	self := n.host.ID()
	selfWP := w.heard(self)
	selfWP.queried, selfWP.asked = true, true
	ask(self)
	// Not a DHT server, it cannot be among the m closest.
	selfWP.gone = !n.serving()

	finish := func(top []*walkPeer, early bool) (LookupResult, error) {
		res := LookupResult{Stats: LookupStats{Hops: w.hops, Asked: w.asked, Early: early}}
		var all []answer
		selfIn := false
		for _, wp := range top {
			if wp.ans == nil {
				continue
			}
			a := *wp.ans
			a.target = true
			if a.err == nil && !a.trusted {
				res.Stats.Answered++
			}
			selfIn = selfIn || a.trusted
			all = append(all, a)
		}
		if !selfIn && selfWP.ans != nil {
			all = append(all, *selfWP.ans)
		}
		merged := n.mergeOpened(key, all, want, w.now, w.envs)
		res.Peers, res.Seeds, res.Leechers = merged.Peers, merged.Seeds, merged.Leechers
		res.Stats.Unvouched, res.Stats.Unsigned = merged.Stats.Unvouched, merged.Stats.Unsigned
		stop()
		res.Stats.Queried = queried
		res.Stats.Duration = time.Since(start)
		return res, nil
	}

	var final []*walkPeer // the walk's m closest, once it ended
	events := lookupEvents
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			w.event(ev)
		case a := <-answers:
			wp := w.peers[a.from]
			a2 := a
			wp.ans = &a2
			if a.err != nil {
				n.log.Debug("GET failed", "peer", a.from, "key", key, "err", a.err)
				wp.gone = wp.gone || !a.trusted
			}
		case end := <-ended:
			if end.err != nil && !errors.Is(end.err, kb.ErrLookupFailure) {
				if ctx.Err() != nil {
					return LookupResult{}, ctx.Err()
				}
				n.log.Debug("DHT walk incomplete", "key", key, "found", len(end.peers), "err", end.err)
			}
			final = w.targets(end.peers)
			if n.log.Enabled(ctx, slog.LevelDebug) {
				top := w.closest()
				var state []string
				for _, wp := range top {
					state = append(state, fmt.Sprintf("d=%.4g queried=%v asked=%v answered=%v", wp.dist, wp.queried, wp.asked, wp.ans != nil))
				}
				n.log.Debug("early answer missed", "key", key, "threshold", w.threshold, "heard", len(w.peers), "top", state)
			}
			for _, wp := range final {
				if !wp.asked {
					wp.asked = true
					w.asked++
					ask(wp.id)
				}
			}
		case <-ctx.Done():
			return LookupResult{}, ctx.Err()
		}
		if final != nil {
			// The walk ended: the full lookup's rule, on its m closest.
			done := selfWP.ans != nil
			for _, wp := range final {
				done = done && wp.ans != nil
			}
			if done {
				return finish(final, false)
			}
			continue
		}
		top := w.closest()
		if _, ok := w.agreed(top); ok && selfWP.ans != nil {
			return finish(top, true)
		}
		for _, wp := range w.toAsk(top) {
			ask(wp.id)
		}
	}
}

// targets are the walk's m closest nodes as closest (publish.go) ranks
// them (see candidates).
func (w *earlyWalk) targets(found []peer.ID) []*walkPeer {
	sorted := w.candidates(found)
	out := make([]*walkPeer, 0, w.m)
	for _, p := range sorted[:min(w.m, len(sorted))] {
		out = append(out, w.heard(p))
	}
	return out
}

// candidates ranks the nodes a walk found as closest (publish.go) does:
// this node too when it serves, sorted by distance, the diversity filter
// applied, with routing-table peers added when it dropped some.
func (w *earlyWalk) candidates(found []peer.ID) []peer.ID {
	n := w.n
	if n.serving() {
		found = append(found, n.host.ID())
	}
	target := kb.ConvertKey(w.key.DHTKey())
	sorted, dropped := n.diverse(kb.SortClosestPeers(found, target))
	if dropped > 0 {
		seen := make(map[peer.ID]struct{}, len(found))
		for _, p := range found {
			seen[p] = struct{}{}
		}
		for _, p := range n.dht.RoutingTable().NearestPeers(target, 2*n.cfg.Replication) {
			if _, ok := seen[p]; !ok {
				found = append(found, p)
			}
		}
		sorted, dropped = n.diverse(kb.SortClosestPeers(found, target))
		n.log.Debug("refused", "reason", RefusedTargetIP, "key", w.key, "peers", dropped)
		for range dropped {
			n.refused.add(RefusedTargetIP)
		}
	}
	return sorted
}
