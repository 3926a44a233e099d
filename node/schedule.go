package node

// The republish scheduler. Republishing every key on its own costs a DHT
// walk plus m PUTs per key and per interval; one key after another, a node
// with a few thousand keys cannot finish a round within the record TTL.
// Like kad-dht's SweepingProvider (provider/), the scheduler groups the
// keys due by region of the keyspace: one walk towards a region's most
// urgent key finds the nodes around it, and every key of the region whose
// m closest nodes that walk provably found (exactWithin) is PUT to them
// without a walk of its own; a key it did not cover becomes the next
// walk's target. Regions come due at evenly spread slots of the interval,
// with jitter; a bounded pool of region jobs and of keys in flight does
// the work, keys nearest expiry first; a key refused keeps its own backoff
// (settle). New keys are still published at once by Announce and
// PublishBridged; the scheduler takes over from their next publish.

import (
	"bytes"
	"context"
	"encoding/binary"
	"hash/maphash"
	"math"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kadtracker/kadtracker/records"
	kb "github.com/libp2p/go-libp2p-kbucket"
	"github.com/libp2p/go-libp2p/core/peer"
)

const (
	// regionWorkers is how many regions are worked on at once, and
	// keyWorkers how many keys have PUTs in flight at once over all of
	// them (each key's m PUTs go out in parallel). regionKeys bounds the
	// keys in flight of one region: they go to the same few storing
	// nodes, which allow a peer 50 requests a second (PeerRate) and 64
	// streams (MaxStreamsPerPeer); 4 at a time stays under both at any
	// round trip above 80 ms, and a region's keys wait for each other
	// rather than being refused.
	regionWorkers = 8
	keyWorkers    = 32
	regionKeys    = 4
	// regionNodes is about how many DHT nodes a region should hold: a walk
	// returns kad-dht's 20 closest nodes (bucketSize), and the m closest
	// of a key must lie among them, so a region is a fraction of that.
	regionNodes = 8
	// maxRegionBits bounds the regions at 2^20 (a network of 8 million).
	maxRegionBits = 20
	// bucketSize is how many nodes kad-dht's GetClosestPeers returns.
	bucketSize = 20
	// capacityShare is the share of the interval the capacity estimate
	// lets publishing fill, leaving room for retries and slow moments.
	capacityShare = 0.5
	// persistEvery bounds how often the announcements are saved: each
	// republish moves their expiry, and a big file every few seconds is
	// wasted disk.
	persistEvery = 30 * time.Second
)

// scheduler owns the republishing of every key of the node (n.sched).
type scheduler struct {
	n    *Node
	seed maphash.Seed // the node's own phase of the region slots
	wake chan struct{}
	done chan struct{} // a region job ended
	keys chan struct{} // a slot of keyWorkers

	lapsed atomic.Int64 // records that expired before their republish

	mu sync.Mutex
	// Costs measured, smoothed: one walk, one key's PUTs, walks per
	// region job; netSize is the network size the walks suggest.
	walkCost, keyCost, walksPerRegion, netSize float64
	// serialCost is one publish in the serial scheduler (walk and PUTs).
	serialCost float64
	warned     time.Time // last Warn about capacity
}

func newScheduler(n *Node) *scheduler {
	return &scheduler{
		n: n, seed: maphash.MakeSeed(),
		wake: make(chan struct{}, 1),
		done: make(chan struct{}, regionWorkers),
		keys: make(chan struct{}, keyWorkers),
	}
}

// kick makes the scheduler look for due keys now.
func (s *scheduler) kick() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// batch is the due keys of one region, most urgent first.
type batch struct {
	keys   []records.Key
	urgent time.Time // the earliest expiry among them; zero: never stored
}

// run dispatches due regions to the region workers until the node closes.
func (s *scheduler) run() {
	n := s.n
	timer := time.NewTimer(0)
	defer timer.Stop()
	busy := 0
	var saved time.Time
	for {
		now := time.Now()
		if now.Sub(saved) >= min(persistEvery, n.retryBase()) {
			n.persistAnnounced()
			saved = now
		}
		batches, next := s.collect(now, regionWorkers-busy)
		for _, b := range batches {
			busy++
			n.wg.Go(func() {
				defer func() { s.done <- struct{}{} }()
				s.runRegion(b)
			})
		}
		wait := min(max(next.Sub(now), 50*time.Millisecond), n.retryBase())
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(wait)
		select {
		case <-n.ctx.Done():
			n.persistAnnounced()
			return
		case <-s.done:
			busy--
		case <-s.wake:
		case <-timer.C:
		}
	}
}

// collect marks and returns the keys due by now, grouped by region, the
// most urgent regions first and at most free of them, and when the next
// key not taken is due. It counts records that expired unrepublished and
// warns when the node is falling behind.
func (s *scheduler) collect(now time.Time, free int) ([]batch, time.Time) {
	n := s.n
	bits := s.regionBits()
	// A region's keys come due at its slot, give or take jitter and
	// retries: take those due within half a slot with them.
	window := n.cfg.RepublishInterval >> bits / 2
	next := now.Add(n.retryBase())
	groups := make(map[uint64]*batch)
	var behind, total int
	n.mu.Lock()
	for k, st := range n.sched {
		total++
		if !st.expires.IsZero() && !st.lapsed && !now.Before(st.expires) {
			st.lapsed = true
			s.lapsed.Add(1)
		}
		if st.queued {
			continue
		}
		if st.due.After(now.Add(window)) {
			if st.due.Before(next) {
				next = st.due
			}
			continue
		}
		if !st.due.IsZero() && now.Sub(st.due) > n.cfg.RepublishInterval/4 {
			behind++
		}
		r := region(st.kadKey(k), bits)
		b := groups[r]
		if b == nil {
			b = &batch{urgent: st.expires}
			groups[r] = b
		}
		b.keys = append(b.keys, k)
		if st.expires.Before(b.urgent) {
			b.urgent = st.expires
		}
	}
	out := make([]batch, 0, len(groups))
	for _, b := range groups {
		out = append(out, *b)
	}
	slices.SortFunc(out, func(a, b batch) int { return a.urgent.Compare(b.urgent) })
	if len(out) > free {
		out = out[:max(free, 0)]
	}
	for _, b := range out {
		slices.SortFunc(b.keys, func(a, c records.Key) int {
			return n.sched[a].expires.Compare(n.sched[c].expires)
		})
		for _, k := range b.keys {
			n.sched[k].queued = true
		}
	}
	n.mu.Unlock()
	s.warnCapacity(now, total, behind)
	return out, next
}

// warnCapacity warns, at most every failLogEvery, when more keys are
// published than the scheduler can keep alive, or when keys wait for
// their republish a quarter interval past their time: their records will
// expire before they are published again.
func (s *scheduler) warnCapacity(now time.Time, keys, behind int) {
	capacity := s.capacity()
	if (capacity == 0 || keys <= capacity) && behind == 0 {
		return
	}
	s.mu.Lock()
	if now.Sub(s.warned) < min(failLogEvery, s.n.cfg.RepublishInterval) {
		s.mu.Unlock()
		return
	}
	s.warned = now
	s.mu.Unlock()
	s.n.log.Warn("republishing cannot keep every record alive: some will expire before they are published again; lengthen the republish interval and record TTL, or publish fewer keys",
		"keys", keys, "capacity_keys", capacity, "keys_behind", behind, "republish", s.n.cfg.RepublishInterval, "lapsed_total", s.lapsed.Load())
}

// runRegion publishes the keys of one region: a walk towards the most
// urgent key not covered yet, then every key the walks cover.
func (s *scheduler) runRegion(b batch) {
	n := s.n
	ctx, cancel := context.WithTimeout(n.ctx, n.cfg.RepublishInterval)
	defer cancel()
	defer func() {
		n.mu.Lock()
		for _, k := range b.keys {
			if st := n.sched[k]; st != nil {
				st.queued = false
			}
		}
		n.mu.Unlock()
	}()
	var (
		walks   []walked
		union   = make(map[peer.ID]struct{})
		pending = b.keys
		wg      sync.WaitGroup
		inJob   = make(chan struct{}, regionKeys)
	)
	for len(pending) > 0 && ctx.Err() == nil {
		target := pending[0]
		start := time.Now()
		found, ws, err := n.closest(ctx, target)
		if err != nil {
			// Nobody to ask: the keys back off on their own.
			for _, k := range pending {
				wg.Go(func() { s.publishKey(ctx, k, nil, err) })
			}
			break
		}
		n.stats.walks.Add(1)
		n.stats.walkQueries.Add(int64(ws.queried))
		w := newWalked(n, target, found)
		s.observeWalk(time.Since(start), w)
		walks = append(walks, w)
		for _, p := range found {
			union[p] = struct{}{}
		}
		peers := make([]peer.ID, 0, len(union))
		for p := range union {
			peers = append(peers, p)
		}
		rest := pending[:0:0]
		for i, k := range pending {
			if i > 0 && !coveredBy(walks, kb.ConvertKey(k.DHTKey()), peers, n.cfg.Replication) {
				rest = append(rest, k)
				continue
			}
			select {
			case inJob <- struct{}{}:
			case <-ctx.Done():
				continue // closing or out of time: the key stays due
			}
			select {
			case s.keys <- struct{}{}:
			case <-ctx.Done():
				<-inJob
				continue
			}
			wg.Go(func() {
				defer func() { <-s.keys; <-inJob }()
				s.publishKey(ctx, k, peers, nil)
			})
		}
		pending = rest
	}
	wg.Wait()
	s.observeRegion(len(walks))
}

// publishKey republishes key to the m closest of peers, from the key's
// state now, under its publish lock; walkErr is the walk's failure.
func (s *scheduler) publishKey(ctx context.Context, key records.Key, peers []peer.ID, walkErr error) {
	n := s.n
	unlock, err := n.publishes.lock(ctx, key)
	if err != nil {
		n.settle(key, AnnounceResult{}, err)
		return
	}
	defer unlock()
	n.mu.Lock()
	st := n.sched[key]
	a, own := n.announced[key]
	_, bridged := n.bridged[key]
	tombstone := st != nil && st.tombstone && !own && !bridged
	switch {
	case st == nil:
	case !own && !bridged && !tombstone:
		delete(n.sched, key)
		st = nil
	case st.due.After(time.Now().Add(n.cfg.RepublishInterval / 4)):
		st = nil // published meanwhile (Announce, PublishBridged)
	}
	n.mu.Unlock()
	if st == nil {
		return
	}
	if walkErr != nil {
		n.settle(key, AnnounceResult{}, walkErr)
		return
	}
	rec, err := n.record(key, a.port, a.seed, tombstone)
	if err != nil {
		n.settle(key, AnnounceResult{}, err)
		return
	}
	target := kb.ConvertKey(key.DHTKey())
	candidates, _ := n.diverse(kb.SortClosestPeers(peers, target))
	start := time.Now()
	res, err := n.putClosest(ctx, rec, candidates)
	s.observeKey(time.Since(start))
	n.stats.republishes.Add(1)
	if tombstone {
		n.mu.Lock()
		if cur := n.sched[key]; cur == st && cur.tombstone {
			delete(n.sched, key)
		}
		n.mu.Unlock()
		return
	}
	n.settle(key, res, err)
}

// SetBridged hands key's bridged endpoints to the scheduler, which
// publishes them with the next region it works on, within seconds, and
// keeps them published; no endpoints withdraws them (the record goes back
// to this node's own client of key, or a withdrawn record replaces it).
// Unlike PublishBridged it never blocks: the bridges and trackers that
// learn thousands of swarms at once use it.
func (n *Node) SetBridged(key records.Key, endpoints []netip.AddrPort) {
	if key.IsZero() {
		return
	}
	eps := bridgeable(endpoints, n.cfg.LocalBridgedEndpoints)
	n.mu.Lock()
	old, had := n.bridged[key]
	if slices.Equal(old, eps) && (had || len(eps) == 0) {
		n.mu.Unlock()
		return
	}
	st := n.sched[key]
	if st == nil {
		if len(eps) == 0 {
			n.mu.Unlock()
			return
		}
		st = &pubState{}
		n.sched[key] = st
	}
	if len(eps) > 0 {
		n.bridged[key] = eps
	} else {
		delete(n.bridged, key)
	}
	_, own := n.announced[key]
	st.tombstone = len(eps) == 0 && !own
	st.due, st.failures = time.Time{}, 0
	n.mu.Unlock()
	if n.sch != nil {
		n.sch.kick()
	}
}

// walked is one walk of a region job: its target and how far from it the
// walk is known to have found every node.
type walked struct {
	target kb.ID
	// reach: every node closer to target than reach answered the walk (is
	// among its peers). nil: the walk found the whole network.
	reach []byte
}

// newWalked reads what a walk towards target found: kad-dht's bucketSize
// closest nodes it reached, so every node closer than the farthest of them
// is among them. Fewer means the network holds no more when the routing
// table is that small too; otherwise the diversity filter dropped some
// (nodes no key goes to anyway), and the farthest found bounds what is
// known. This node, which closest adds, does not count.
func newWalked(n *Node, target records.Key, found []peer.ID) walked {
	w := walked{target: kb.ConvertKey(target.DHTKey())}
	others := make([]peer.ID, 0, len(found))
	for _, p := range found {
		if p != n.host.ID() {
			others = append(others, p)
		}
	}
	others = kb.SortClosestPeers(others, w.target)
	switch {
	case len(others) >= bucketSize:
		w.reach = kb.Xor(kb.ConvertPeerID(others[bucketSize-1]), w.target)
	case n.dht.RoutingTable().Size() < bucketSize:
		// The whole network: reach stays nil.
	case len(others) > 0:
		w.reach = kb.Xor(kb.ConvertPeerID(others[len(others)-1]), w.target)
	default:
		w.reach = make([]byte, len(w.target)) // covers no other key
	}
	return w
}

// coveredBy reports whether the m closest nodes to key are surely in
// peers, the nodes the walks found: when some walk found every node
// within reach of its target t, and every node x closer to key than the
// m-th closest of peers has d(t,x) = d(t,key) XOR d(key,x) below that
// reach. With d(key,x) < d_m, d(t,x) is at most d(t,key) with every bit
// below d_m's top bit set.
func coveredBy(walks []walked, key kb.ID, peers []peer.ID, m int) bool {
	if len(peers) < m {
		return len(walks) > 0 && walks[0].reach == nil
	}
	dm := mthDistance(key, peers, m)
	for _, w := range walks {
		if w.reach == nil {
			return true
		}
		if bytes.Compare(orBelowTopBit(kb.Xor(key, w.target), dm), w.reach) < 0 {
			return true
		}
	}
	return false
}

// mthDistance is the distance from key to the m-th closest of peers.
func mthDistance(key kb.ID, peers []peer.ID, m int) []byte {
	ds := make([][]byte, len(peers))
	for i, p := range peers {
		ds[i] = kb.Xor(kb.ConvertPeerID(p), key)
	}
	slices.SortFunc(ds, bytes.Compare)
	return ds[m-1]
}

// orBelowTopBit returns a with every bit from d's top set bit down set:
// no a XOR y with y < d exceeds it.
func orBelowTopBit(a, d []byte) []byte {
	out := slices.Clone(a)
	top := -1
	for i, b := range d {
		if b != 0 {
			top = i*8 + 7 - bitsLen8(b) + 1
			break
		}
	}
	if top < 0 {
		return out
	}
	for i := top; i < len(out)*8; i++ {
		out[i/8] |= 0x80 >> (i % 8)
	}
	return out
}

func bitsLen8(b byte) int {
	l := 0
	for ; b != 0; b >>= 1 {
		l++
	}
	return l
}

// kadKey is key in kad-dht's keyspace, cached. The caller holds n.mu.
func (st *pubState) kadKey(key records.Key) []byte {
	if st.kad == nil {
		st.kad = kb.ConvertKey(key.DHTKey())
	}
	return st.kad
}

// region is the region of a kad key: its first bits bits.
func region(kad []byte, bits int) uint64 {
	if bits == 0 {
		return 0
	}
	return binary.BigEndian.Uint64(kad[:8]) >> (64 - bits)
}

// regionBits is the prefix length of the regions: about regionNodes DHT
// nodes share each.
func (s *scheduler) regionBits() int {
	size := s.networkSize()
	if size <= regionNodes {
		return 0
	}
	return min(int(math.Log2(size/regionNodes)), maxRegionBits)
}

// networkSize estimates the DHT's size: kad-dht's estimate when it has
// one, else what the walks suggest, else the routing table's size.
func (s *scheduler) networkSize() float64 {
	if ns, err := s.n.dht.NetworkSize(); err == nil && ns > 0 {
		return float64(ns)
	}
	s.mu.Lock()
	ns := s.netSize
	s.mu.Unlock()
	if ns > 0 {
		return ns
	}
	return float64(s.n.dht.RoutingTable().Size() + 1)
}

// nextDue is when a key just published (at now, its record living ttl)
// is due again: at its region's next slot half an interval away or more,
// so a region's keys come due together, but with room before the record
// expires.
func (n *Node) nextDue(st *pubState, key records.Key, now time.Time, ttl time.Duration) time.Time {
	iv := n.cfg.RepublishInterval
	latest := now.Add(iv + (ttl-iv)/2)
	if n.sch == nil || n.cfg.SerialRepublish {
		return now.Add(iv)
	}
	bits := n.sch.regionBits()
	due := n.sch.slot(region(st.kadKey(key), bits), bits, now.Add(iv/2))
	if due.After(latest) {
		return latest
	}
	return due
}

// slot is region r's first slot after t. Regions' slots spread evenly over
// the interval from a phase of the node's own (seed), each moved by up to
// a quarter of a slot's width, differently every interval.
func (s *scheduler) slot(r uint64, bits int, t time.Time) time.Time {
	iv := s.n.cfg.RepublishInterval
	width := iv >> bits
	base := time.Duration(maphash.Comparable(s.seed, "phase") % uint64(iv))
	phase := (base + time.Duration(r)*width) % iv
	at := t.Add(-phase).Truncate(iv).Add(phase) // the slot at or before t, unjittered
	for {
		j := maphash.Comparable(s.seed, [2]int64{int64(r), at.UnixNano() / int64(iv)})
		if jittered := at.Add(time.Duration(j%uint64(width/2+1)) - width/4); jittered.After(t) {
			return jittered
		}
		at = at.Add(iv)
	}
}

// Measurements, smoothed over about the last 20.
const smooth = 0.05

func ewma(old, v float64) float64 {
	if old == 0 {
		return v
	}
	return old + smooth*(v-old)
}

func (s *scheduler) observeWalk(d time.Duration, w walked) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.walkCost = ewma(s.walkCost, d.Seconds())
	if w.reach != nil {
		// bucketSize nodes within reach: the network holds about
		// bucketSize / (reach / 2^256) nodes.
		frac := float64(binary.BigEndian.Uint64(w.reach[:8])) / math.Exp2(64)
		if frac > 0 {
			s.netSize = math.Exp2(ewma(math.Log2(max(s.netSize, 1)), math.Log2(bucketSize/frac)))
		}
	}
}

func (s *scheduler) observeKey(d time.Duration) {
	s.mu.Lock()
	s.keyCost = ewma(s.keyCost, d.Seconds())
	s.mu.Unlock()
}

func (s *scheduler) observeRegion(walks int) {
	if walks == 0 {
		return
	}
	s.mu.Lock()
	s.walksPerRegion = ewma(s.walksPerRegion, float64(walks))
	s.mu.Unlock()
}

func (s *scheduler) observeSerial(d time.Duration) {
	s.mu.Lock()
	s.serialCost = ewma(s.serialCost, d.Seconds())
	s.mu.Unlock()
}

// capacity is about how many keys the scheduler can republish every
// interval using capacityShare of it, from the costs measured; 0 until it
// has measured them. Keys cost keyCost each on keyWorkers; each region
// with keys costs walksPerRegion walks on regionWorkers; past the regions
// the walks fit in, keys are walked for one by one.
func (s *scheduler) capacity() int {
	iv := s.n.cfg.RepublishInterval.Seconds() * capacityShare
	bits := s.regionBits()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n.cfg.SerialRepublish {
		if s.serialCost == 0 {
			return 0
		}
		return int(iv / s.serialCost)
	}
	if s.keyCost == 0 || s.walkCost == 0 {
		return 0
	}
	keys := iv * keyWorkers / s.keyCost
	regions := math.Exp2(float64(bits))
	walkTime := regions * max(s.walksPerRegion, 1) * s.walkCost / regionWorkers
	if walkTime > iv {
		keys *= iv / walkTime
	}
	return int(keys)
}
