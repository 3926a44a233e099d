package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/kadtracker/kadtracker/records"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	kb "github.com/libp2p/go-libp2p-kbucket"
	"github.com/libp2p/go-libp2p-kbucket/peerdiversity"
	"github.com/libp2p/go-libp2p/core/peer"
	"gonum.org/v1/gonum/mathext"
)

// The early announce. publish walks until kad-dht has queried the k
// closest nodes it heard of (5 to 8 round trips) and only then PUTs to the
// m closest. As the early lookup (lookup_early.go) asks storing nodes
// while the walk runs, announceEarly PUTs while it runs, after kad-dht's
// optimistic provide (lookup_optim.go), with m for its bucket size:
//
//   - a node heard of gets the record at once when it is nearer the key
//     than the m-th closest node of a network of the estimated size is
//     with probability putCertainty (optimistic provide's individual
//     threshold): it is among the m closest with that probability;
//   - once the m closest heard of lie, on average, nearer than the
//     (m/2+1)-th closest node of such a network is with probability
//     1-setStrictness (optimistic provide's set threshold), they are taken
//     as the m closest and all get it; a node that then enters the m
//     closest heard of gets it too;
//   - the announce returns once the m closest heard of when they settled
//     all took it (one that refuses gives its place to the next).
//     Optimistic provide returns once 3/4 of its PUTs ended, ok or not;
//     here StoredOn keeps its meaning, m copies on the m closest known,
//     and a lookup right after finds them.
//
// Unlike optimistic provide the walk is not cut short: it goes on after
// the return, and when it ends the m closest it found get the record as
// publish gives it (the next closest when one refuses), so the record ends
// on the same nodes as publish's, plus the few near misses the early PUTs
// reached. Those hold a copy until it expires, as after churn. A hostile
// walk answer cannot steer the early PUTs more than publish's: both take
// the nodes the walk heard of, through the same diversity filter.
//
// Without a network-size estimate (a new node), or with
// Config.FullAnnounce, an announce is publish.
const (
	putCertainty  = 0.9
	setStrictness = 0.1
	// announceFollowUp bounds the walk and the PUTs that go on after an
	// early return.
	announceFollowUp = time.Minute
)

// followUps owns the announces' goroutines that outlive their call: Close
// waits for them, and a new announce of a key stops its predecessor's,
// whose record the new one replaces.
type followUps struct {
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
	byKey  map[records.Key]*followUp
}

type followUp struct{ cancel context.CancelFunc }

// start runs f in a goroutine owned by fs, after stopping key's earlier
// follow-up; false when fs is closed.
func (fs *followUps) start(key records.Key, cancel context.CancelFunc, f func()) bool {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.closed {
		return false
	}
	if old := fs.byKey[key]; old != nil {
		old.cancel()
	}
	if fs.byKey == nil {
		fs.byKey = make(map[records.Key]*followUp)
	}
	fu := &followUp{cancel: cancel}
	fs.byKey[key] = fu
	fs.wg.Go(func() {
		defer func() {
			fs.mu.Lock()
			if fs.byKey[key] == fu {
				delete(fs.byKey, key)
			}
			fs.mu.Unlock()
		}()
		f()
	})
	return true
}

// close refuses new follow-ups and waits for the running ones, which end
// with the node's context.
func (fs *followUps) close() {
	fs.mu.Lock()
	fs.closed = true
	fs.mu.Unlock()
	fs.wg.Wait()
}

// publishAnnounce is publish for Announce: announceEarly, or publish
// itself with Config.FullAnnounce. The caller holds key's publish lock.
func (n *Node) publishAnnounce(ctx context.Context, key records.Key, port uint16, seed bool) (AnnounceResult, error) {
	if n.cfg.FullAnnounce {
		return n.publish(ctx, key, port, seed, false)
	}
	return n.announceEarly(ctx, key, port, seed)
}

// putState is where one node's PUT stands.
type putState int

const (
	putNone putState = iota
	putSent
	putOK
	putFailed
)

type putResult struct {
	p   peer.ID
	err error
}

// earlyAnnounce is the state of one early announce.
type earlyAnnounce struct {
	n          *Node
	w          *earlyWalk
	rec        records.Record
	indiv, set float64 // the thresholds above, in normed distance
	state      map[peer.ID]putState
	results    chan putResult
	inflight   int
	budget     int // PUTs left before the walk ends
	groups     map[peerdiversity.PeerIPGroupKey]int
	errs       []error
	wg         sync.WaitGroup
}

// announceEarly publishes key's record as described at the top of this
// file.
func (n *Node) announceEarly(ctx context.Context, key records.Key, port uint16, seed bool) (AnnounceResult, error) {
	w := n.newEarlyWalk(key)
	if w.size == 0 {
		return n.publish(ctx, key, port, seed, false)
	}
	rec, err := n.record(key, port, seed, false)
	if err != nil {
		return AnnounceResult{}, err
	}
	m := float64(w.m)
	a := &earlyAnnounce{
		n: n, w: w, rec: rec,
		indiv:   mathext.GammaIncRegInv(m, 1-putCertainty) / w.size,
		set:     mathext.GammaIncRegInv(m/2+1, 1-setStrictness) / w.size,
		state:   make(map[peer.ID]putState),
		results: make(chan putResult),
		budget:  earlyBudget * w.m,
		groups:  make(map[peerdiversity.PeerIPGroupKey]int),
	}
	if n.serving() {
		w.heard(n.host.ID()).queried = true
	}
	// The follow-up outlives the call: it ends with the node, its time
	// limit, a newer announce of the key, or the caller's ctx while the
	// caller still waits.
	runCtx, cancel := context.WithTimeout(n.ctx, announceFollowUp)
	detach := context.AfterFunc(ctx, cancel)
	done := make(chan publishOutcome, 1)
	if !n.followUps.start(key, cancel, func() { defer cancel(); a.run(runCtx, done) }) {
		detach()
		cancel()
		return AnnounceResult{}, ErrClosed
	}
	out := <-done
	detach()
	return out.res, out.err
}

type publishOutcome struct {
	res AnnounceResult
	err error
}

// announcePolicy turns the early announce's protections off, for the
// tests' controls.
type announcePolicy struct {
	anyGroup bool // no IP-group limit across an announce's PUTs, only the diversity filter's on the m closest heard of
}

// allowed reports whether p may get the record: the diversity filter
// keeps TargetsPerGroup of the m closest heard of in one IP group at any
// time, but as the walk hears of closer nodes the m closest change, and a
// crowd of identities ground ever closer to the key would take a new
// slot at each step. So the filter's limit holds for all the nodes of
// an announce, early or not.
func (a *earlyAnnounce) allowed(p peer.ID) bool {
	limit := a.n.cfg.Protect.TargetsPerGroup
	if limit <= 0 || p == a.n.host.ID() || a.n.apolicy.anyGroup {
		return true
	}
	groups, exempt := a.n.peerGroups(p)
	if exempt {
		return true
	}
	for _, g := range groups {
		if a.groups[g] >= limit {
			return false
		}
	}
	return true
}

// put sends the record to p in a goroutine of a's; the result comes on
// a.results.
func (a *earlyAnnounce) put(ctx context.Context, p peer.ID) {
	if p != a.n.host.ID() {
		if groups, exempt := a.n.peerGroups(p); !exempt {
			for _, g := range groups {
				a.groups[g]++
			}
		}
	}
	a.state[p] = putSent
	a.inflight++
	a.wg.Go(func() {
		var err error
		if ok, errs := a.n.putAll(ctx, []peer.ID{p}, a.rec); ok == 0 {
			err = errors.Join(errs...)
		}
		a.results <- putResult{p, err}
	})
}

func (a *earlyAnnounce) took(r putResult) {
	a.inflight--
	if r.err != nil {
		a.state[r.p] = putFailed
		a.w.heard(r.p).gone = true
		a.errs = append(a.errs, r.err)
		return
	}
	a.state[r.p] = putOK
}

// stored counts the nodes of ranked that took the record, up to m: the
// first m that did not refuse it, as publish counts.
func (a *earlyAnnounce) stored(ranked []peer.ID) int {
	ok := 0
	for _, p := range ranked {
		if ok == a.w.m {
			break
		}
		if a.state[p] == putOK {
			ok++
		}
	}
	return ok
}

// run walks, PUTs, and sends one outcome on done: the early one, or the
// final one when the walk ended first.
func (a *earlyAnnounce) run(ctx context.Context, done chan<- publishOutcome) {
	n, w := a.n, a.w
	ctx, cancel := context.WithCancel(ctx)
	walkCtx, events := dht.RegisterForLookupEvents(ctx)
	type walkEnd struct {
		peers []peer.ID
		err   error
	}
	ended := make(chan walkEnd, 1)
	var walk sync.WaitGroup
	walk.Go(func() {
		peers, err := n.dht.GetClosestPeers(walkCtx, w.key.DHTKey())
		ended <- walkEnd{peers, err}
	})
	sent := false
	send := func(res AnnounceResult, err error) {
		if !sent {
			sent = true
			done <- publishOutcome{res, err}
		}
	}
	defer func() {
		// The walk and the PUTs end with ctx; the events channel closes
		// with it and is drained until then, as kad-dht needs.
		cancel()
		walk.Go(func() {
			for range events {
			}
		})
		for a.inflight > 0 {
			a.took(<-a.results)
		}
		a.wg.Wait()
		walk.Wait()
	}()

	settled := false
	var wait []peer.ID // once settled: the m nodes the return waits for
	var end walkEnd
early:
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			w.event(ev)
		case r := <-a.results:
			a.took(r)
		case end = <-ended:
			break early
		case <-ctx.Done():
			send(AnnounceResult{}, ctx.Err())
			return
		}
		top := w.closest()
		sum := 0.0
		for _, wp := range top {
			sum += wp.dist
		}
		settled = settled || len(top) == w.m && sum/float64(len(top)) <= a.set
		for _, wp := range top {
			if a.state[wp.id] == putNone && a.budget > 0 && (settled || wp.dist <= a.indiv) && a.allowed(wp.id) {
				a.budget--
				a.put(ctx, wp.id)
			}
		}
		if !settled || sent {
			continue
		}
		// The return waits for the m closest heard of when they settled,
		// not for the nodes the walk finds after: those get the record too,
		// but under handshakes their PUTs lag the walk, and a return that
		// chased them would come as late as the walk's end. A node that
		// refuses gives its place to the closest one put to since.
		wait = slices.DeleteFunc(wait, func(p peer.ID) bool { return a.state[p] == putFailed })
		for _, wp := range top {
			if len(wait) < w.m && !slices.Contains(wait, wp.id) && (a.state[wp.id] == putSent || a.state[wp.id] == putOK) {
				wait = append(wait, wp.id)
			}
		}
		took := 0
		for _, p := range wait {
			if a.state[p] == putOK {
				took++
			}
		}
		if took == w.m {
			send(AnnounceResult{Targets: w.m, StoredOn: took, Early: true}, nil)
		}
	}

	// The walk ended: publish's rule on the nodes it found, counting the
	// PUTs already made.
	if end.err != nil && !errors.Is(end.err, kb.ErrLookupFailure) {
		if ctx.Err() != nil {
			send(AnnounceResult{}, ctx.Err())
			return
		}
		n.log.Debug("DHT walk incomplete", "key", w.key, "found", len(end.peers), "err", end.err)
	}
	for a.inflight > 0 {
		a.took(<-a.results)
	}
	candidates := w.candidates(end.peers)
	for ctx.Err() == nil && a.current() {
		var wave []peer.ID
		have := 0
		for _, p := range candidates {
			if have+len(wave) >= w.m {
				break
			}
			switch a.state[p] {
			case putOK:
				have++
			case putNone:
				if a.allowed(p) {
					wave = append(wave, p)
				}
			}
		}
		if len(wave) == 0 {
			break
		}
		for _, p := range wave {
			a.put(ctx, p)
		}
		for a.inflight > 0 {
			a.took(<-a.results)
		}
	}
	res := AnnounceResult{Targets: min(w.m, len(candidates)), StoredOn: a.stored(candidates)}
	var err error
	switch {
	case res.StoredOn == 0 && ctx.Err() != nil:
		err = ctx.Err()
	case res.StoredOn == 0 && len(a.errs) > 0:
		err = fmt.Errorf("node: no storing node accepted the record: %w", errors.Join(a.errs...))
	}
	if sent {
		n.log.Debug("announce follow-up done", "key", w.key, "stored_on", res.StoredOn, "err", err)
	} else if len(a.errs) > 0 {
		n.log.Debug("some PUTs failed", "key", w.key, "stored_on", res.StoredOn, "err", errors.Join(a.errs...))
	}
	send(res, err)
}

// current reports whether the record is still this node's announcement of
// its key: a withdrawal since makes the rest of the follow-up moot (a
// newer announce stops it through followUps).
func (a *earlyAnnounce) current() bool {
	a.n.mu.Lock()
	defer a.n.mu.Unlock()
	_, own := a.n.announced[a.rec.Key]
	_, bridged := a.n.bridged[a.rec.Key]
	return own || bridged
}
