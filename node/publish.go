package node

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kadtracker/kadtracker/records"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	kb "github.com/libp2p/go-libp2p-kbucket"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/routing"
)

// ErrClosed is returned by a node that has been closed.
var ErrClosed = errors.New("node: closed")

// Announce publishes this node's client (port, seed) for key on the m closest
// DHT nodes and keeps republishing it until Withdraw, also across restarts
// (the announcement is saved in DataDir).
func (n *Node) Announce(ctx context.Context, key records.Key, port uint16, seed bool) (AnnounceResult, error) {
	return n.announce(ctx, key, port, seed, false)
}

// AnnounceTransient is Announce for an announcer that announces again after
// a restart, the tracker front: its clients re-announce, and a client that
// stopped while the daemon was down must not be republished for ever. It is
// not saved in DataDir (unless Announce made the same key persistent).
func (n *Node) AnnounceTransient(ctx context.Context, key records.Key, port uint16, seed bool) (AnnounceResult, error) {
	return n.announce(ctx, key, port, seed, true)
}

func (n *Node) announce(ctx context.Context, key records.Key, port uint16, seed, transient bool) (AnnounceResult, error) {
	if key.IsZero() {
		return AnnounceResult{}, records.ErrBadKey
	}
	if port == 0 {
		return AnnounceResult{}, errors.New("node: announce needs a port")
	}
	if n.ctx.Err() != nil {
		return AnnounceResult{}, ErrClosed
	}
	unlock, err := n.publishes.lock(ctx, key)
	if err != nil {
		return AnnounceResult{}, err
	}
	defer unlock()
	n.stats.announces.Add(1)
	n.mu.Lock()
	old, had := n.announced[key]
	transient = transient && (!had || old.transient)
	changed := !had || old.port != port || old.seed != seed || old.transient != transient
	n.announced[key] = announcement{port: port, seed: seed, expires: old.expires, transient: transient}
	n.announcedDirty = n.announcedDirty || changed && !transient
	n.mu.Unlock()
	res, err := n.publishAnnounce(ctx, key, port, seed)
	n.settle(key, res, err)
	if changed {
		n.persistAnnounced() // a new announcement survives a crash right after
	}
	return res, err
}

// Withdraw stops republishing key and asks the storing nodes to drop the
// record. It returns an error only when no storing node could be told.
// Bridged endpoints of key (PublishBridged) stay published.
func (n *Node) Withdraw(ctx context.Context, key records.Key) error {
	unlock, err := n.publishes.lock(ctx, key)
	if err != nil {
		return err
	}
	defer unlock()
	n.mu.Lock()
	a, ok := n.announced[key]
	delete(n.announced, key)
	_, bridged := n.bridged[key]
	if ok {
		n.announcedDirty = true
		if !bridged {
			delete(n.sched, key)
		}
	}
	n.mu.Unlock()
	if !ok {
		return nil
	}
	n.persistAnnounced()
	if bridged {
		_, err := n.publish(ctx, key, 0, false, false)
		return err
	}
	res, err := n.publish(ctx, key, a.port, a.seed, true)
	if err != nil {
		return err
	}
	if res.StoredOn == 0 && res.Targets > 0 {
		return fmt.Errorf("node: withdraw of %s reached none of %d storing nodes", key, res.Targets)
	}
	return nil
}

// PublishBridged publishes endpoints, peers of key this node learned from
// classic trackers (or serves as a public tracker), as a bridged record
// signed by this node, and keeps republishing them until WithdrawBridged
// or Close. The record also carries this node's own client of key, if it
// announces one: a node has one record per key. At most
// records.MaxEndpoints endpoints are published; unusable ones are dropped.
func (n *Node) PublishBridged(ctx context.Context, key records.Key, endpoints []netip.AddrPort) (AnnounceResult, error) {
	if key.IsZero() {
		return AnnounceResult{}, records.ErrBadKey
	}
	if n.ctx.Err() != nil {
		return AnnounceResult{}, ErrClosed
	}
	eps := bridgeable(endpoints, n.cfg.LocalBridgedEndpoints)
	if len(eps) == 0 {
		return AnnounceResult{}, n.WithdrawBridged(ctx, key)
	}
	unlock, err := n.publishes.lock(ctx, key)
	if err != nil {
		return AnnounceResult{}, err
	}
	defer unlock()
	n.mu.Lock()
	n.bridged[key] = eps
	a, own := n.announced[key]
	n.mu.Unlock()
	res, err := n.publish(ctx, key, a.port, own && a.seed, false)
	n.settle(key, res, err)
	return res, err
}

// WithdrawBridged stops publishing key's bridged endpoints: the record
// goes back to this node's own client, or is withdrawn when there is none.
func (n *Node) WithdrawBridged(ctx context.Context, key records.Key) error {
	unlock, err := n.publishes.lock(ctx, key)
	if err != nil {
		return err
	}
	defer unlock()
	n.mu.Lock()
	_, ok := n.bridged[key]
	delete(n.bridged, key)
	a, own := n.announced[key]
	if ok && !own {
		delete(n.sched, key)
	}
	n.mu.Unlock()
	if !ok {
		return nil
	}
	_, err = n.publish(ctx, key, a.port, a.seed, !own)
	return err
}

// Bridged lists the keys whose bridged endpoints this node keeps published.
func (n *Node) Bridged() map[records.Key][]netip.AddrPort {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make(map[records.Key][]netip.AddrPort, len(n.bridged))
	for k, eps := range n.bridged {
		out[k] = slices.Clone(eps)
	}
	return out
}

// bridgeable keeps the first records.MaxEndpoints distinct endpoints a
// bridged record may carry: global ones only, unless local is set (see
// Config.LocalBridgedEndpoints), since storing nodes refuse the others.
func bridgeable(endpoints []netip.AddrPort, local bool) []netip.AddrPort {
	var out []netip.AddrPort
	for _, ep := range endpoints {
		if len(out) == records.MaxEndpoints {
			break
		}
		ep = netip.AddrPortFrom(ep.Addr().Unmap(), ep.Port())
		if records.CheckEndpoint(ep) != nil || (!local && !records.IsGlobal(ep.Addr())) || slices.Contains(out, ep) {
			continue
		}
		out = append(out, ep)
	}
	return out
}

// nextSeq returns a sequence number above every earlier one, also across
// restarts: it follows the clock in milliseconds.
func (n *Node) nextSeq() uint64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	seq := max(uint64(n.now().UnixMilli()), n.lastSeq+1)
	n.lastSeq = seq
	return seq
}

// publish seals a record and PUTs it to the m closest nodes, moving on to the
// next closest when one refuses or fails, so m copies exist when m nodes can
// take one. Unless withdrawn, the record carries key's bridged endpoints,
// if any (port is then 0 when this node has no client of key). The caller
// holds key's publish lock.
func (n *Node) publish(ctx context.Context, key records.Key, port uint16, seed, withdrawn bool) (AnnounceResult, error) {
	rec, err := n.record(key, port, seed, withdrawn)
	if err != nil {
		return AnnounceResult{}, err
	}
	candidates, ws, err := n.closest(ctx, key)
	if err != nil {
		return AnnounceResult{}, err
	}
	n.stats.walks.Add(1)
	n.stats.walkQueries.Add(int64(ws.queried))
	return n.putClosest(ctx, rec, candidates)
}

// record is key's next record, unsealed: Seal fails only on a record unfit
// whatever the address, which this checks once before any PUT.
func (n *Node) record(key records.Key, port uint16, seed, withdrawn bool) (records.Record, error) {
	rec := records.Record{
		Key:       key,
		Announcer: n.host.ID(),
		Port:      port,
		Seed:      seed,
		Seq:       n.nextSeq(),
		Expires:   n.now().Add(n.cfg.RecordTTL),
		Withdrawn: withdrawn,
	}
	if !withdrawn {
		n.mu.Lock()
		eps := n.bridged[key]
		n.mu.Unlock()
		if len(eps) > 0 {
			rec.Bridged, rec.Endpoints = true, eps
			rec.Expires = n.now().Add(min(n.cfg.RecordTTL, n.cfg.BridgedRecordTTL))
		}
	}
	if _, err := records.Seal(rec, n.key); err != nil {
		return rec, err
	}
	return rec, nil
}

// putClosest PUTs rec to the first m of candidates (sorted by distance to
// its key), and to the next ones in waves while fewer than m took it.
func (n *Node) putClosest(ctx context.Context, rec records.Record, candidates []peer.ID) (AnnounceResult, error) {
	m := n.cfg.Replication
	res := AnnounceResult{Targets: min(m, len(candidates))}
	var errs []error
	for len(candidates) > 0 && res.StoredOn < m {
		wave := candidates[:min(m-res.StoredOn, len(candidates))]
		candidates = candidates[len(wave):]
		ok, waveErrs := n.putAll(ctx, wave, rec)
		res.StoredOn += ok
		errs = append(errs, waveErrs...)
		if ctx.Err() != nil {
			break
		}
	}
	if res.StoredOn == 0 && len(errs) > 0 {
		return res, fmt.Errorf("node: no storing node accepted the record: %w", errors.Join(errs...))
	}
	if len(errs) > 0 {
		n.log.Debug("some PUTs failed", "key", rec.Key, "stored_on", res.StoredOn, "err", errors.Join(errs...))
	}
	return res, nil
}

// putAll sends the record to every peer in parallel, each copy signed with
// the address that peer sees (sealFor); this node stores its own copy
// directly.
func (n *Node) putAll(ctx context.Context, peers []peer.ID, rec records.Record) (int, []error) {
	var (
		mu   sync.Mutex
		ok   int
		errs []error
		wg   sync.WaitGroup
	)
	for _, p := range peers {
		wg.Go(func() {
			err := n.putTo(ctx, p, rec)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", p, err))
				return
			}
			ok++
		})
	}
	wg.Wait()
	return ok, errs
}

// closest walks the DHT towards key and returns every node that answered,
// this node included when it serves the DHT, sorted by XOR distance to the
// key in kad-dht's keyspace (SHA-256 of key and peer ID).
func (n *Node) closest(ctx context.Context, key records.Key) ([]peer.ID, walkStats, error) {
	walkCtx, stop := context.WithCancel(ctx)
	walkCtx, lookupEvents := dht.RegisterForLookupEvents(walkCtx)
	walkCtx, queryEvents := routing.RegisterForQueryEvents(walkCtx)
	var (
		stats walkStats
		wg    sync.WaitGroup
	)
	// Both channels must be drained while the walk runs: kad-dht blocks on a
	// full one. They close once walkCtx is cancelled.
	wg.Go(func() { stats.hops = countHops(lookupEvents) })
	wg.Go(func() { stats.queried = countQueried(queryEvents) })
	peers, err := n.dht.GetClosestPeers(walkCtx, key.DHTKey())
	stop()
	wg.Wait()
	if err != nil && !errors.Is(err, kb.ErrLookupFailure) {
		if ctx.Err() != nil {
			return nil, stats, ctx.Err()
		}
		// A partial walk still names the best nodes it found.
		n.log.Debug("DHT walk incomplete", "key", key, "found", len(peers), "err", err)
	}
	if n.serving() {
		peers = append(peers, n.host.ID())
	}
	target := kb.ConvertKey(key.DHTKey())
	sorted, dropped := n.diverse(kb.SortClosestPeers(peers, target))
	if dropped > 0 {
		// Peers of one IP group crowded the walk's answer: the routing
		// table, which the diversity filter guards, knows honest nodes
		// near the key that the crowd may have pushed out.
		seen := make(map[peer.ID]struct{}, len(peers))
		for _, p := range peers {
			seen[p] = struct{}{}
		}
		for _, p := range n.dht.RoutingTable().NearestPeers(target, 2*n.cfg.Replication) {
			if _, ok := seen[p]; !ok {
				peers = append(peers, p)
			}
		}
		sorted, dropped = n.diverse(kb.SortClosestPeers(peers, target))
		n.log.Debug("refused", "reason", RefusedTargetIP, "key", key, "peers", dropped)
		for range dropped {
			n.refused.add(RefusedTargetIP)
		}
	}
	return sorted, stats, nil
}

// walkStats describe one DHT walk.
type walkStats struct {
	hops    int
	queried int
}

// countHops reads a lookup's events and returns its referral depth: peers
// from the routing table are one hop away, peers a hop-d peer told us of are
// d+1 hops away, and the walk's depth is that of the deepest peer that
// answered.
func countHops(events <-chan *dht.LookupEvent) int {
	depth := make(map[peer.ID]int)
	hops := 0
	for ev := range events {
		up := ev.Response
		if up == nil {
			up = ev.Request
		}
		if up == nil {
			continue
		}
		parent := 0
		if up.Cause != nil {
			parent = depth[up.Cause.Peer]
		}
		for _, h := range up.Heard {
			if _, seen := depth[h.Peer]; !seen {
				depth[h.Peer] = parent + 1
			}
		}
		if ev.Response != nil {
			for _, q := range up.Queried {
				hops = max(hops, depth[q.Peer])
			}
		}
	}
	return hops
}

// countQueried reads a walk's query events and counts the distinct peers it
// sent a query to.
func countQueried(events <-chan *routing.QueryEvent) int {
	sent := make(map[peer.ID]struct{})
	for ev := range events {
		if ev.Type == routing.SendingQuery {
			sent[ev.ID] = struct{}{}
		}
	}
	return len(sent)
}

// Republish scheduling. Each published key is due again RepublishInterval
// after a publish some storing node took; after one none took (refused,
// unreachable, nobody to ask) it is retried sooner, backing off:
// republishRetry doubling per failure up to RepublishInterval, with ±25%
// jitter so keys refused together do not retry together.
const (
	republishRetry = 30 * time.Second
	// failLogEvery: a key failing again and again is logged at Warn at most
	// this often; across keys at most publishFailBurst Warn lines per
	// failLogEvery. The rest go to Debug and are counted in the next Warn.
	failLogEvery     = 10 * time.Minute
	publishFailBurst = 10
)

// pubState is a published key's place in the republish schedule.
type pubState struct {
	due      time.Time // wall time of the next publish; zero: now
	failures int       // consecutive publishes no storing node took
	warned   time.Time // when a failure of the key was last logged at Warn
	// expires is the wall time the last record a storing node took
	// expires; zero before one did. lapsed: it passed while the key was
	// still published (counted once in the scheduler's lapsed total).
	expires time.Time
	lapsed  bool
	// queued: a region job of the scheduler holds the key.
	queued bool
	// tombstone: the key's bridged endpoints were withdrawn through
	// SetBridged and it has no own client: the scheduler publishes a
	// withdrawn record, then forgets the key.
	tombstone bool
	kad       []byte // the key in kad-dht's keyspace, computed once
}

// retryBase is the first retry delay: republishRetry, or less for a short
// RepublishInterval.
func (n *Node) retryBase() time.Duration {
	return min(republishRetry, n.cfg.RepublishInterval/8)
}

// backoff is the delay before the next publish of a key after failures
// consecutive failures.
func (n *Node) backoff(failures int) time.Duration {
	d := n.cfg.RepublishInterval
	if failures < 30 {
		d = min(d, n.retryBase()<<(failures-1))
	}
	return d*3/4 + rand.N(d/2+1)
}

// settle schedules key's next publish after one that gave res, err, and
// logs a failure within the limits above.
func (n *Node) settle(key records.Key, res AnnounceResult, err error) {
	wall := time.Now()
	n.mu.Lock()
	st := n.sched[key]
	if st == nil {
		st = &pubState{}
		n.sched[key] = st
	}
	if err == nil && res.StoredOn > 0 {
		recovered := st.failures
		ttl := n.cfg.RecordTTL
		if _, bridged := n.bridged[key]; bridged {
			ttl = min(ttl, n.cfg.BridgedRecordTTL)
		}
		if !st.expires.IsZero() && !st.lapsed && wall.After(st.expires) && n.sch != nil {
			n.sch.lapsed.Add(1) // lapsed between two looks of the scheduler
		}
		st.failures, st.expires, st.lapsed = 0, wall.Add(ttl), false
		st.due = n.nextDue(st, key, wall, ttl)
		if a, ok := n.announced[key]; ok {
			a.expires = n.now().Add(n.cfg.RecordTTL)
			n.announced[key] = a
			n.announcedDirty = n.announcedDirty || !a.transient
		}
		n.mu.Unlock()
		if recovered > 0 {
			n.log.Info("publishing works again", "key", key, "after_failures", recovered, "stored_on", res.StoredOn)
		}
		return
	}
	st.failures++
	failures, retry := st.failures, n.backoff(st.failures)
	st.due = wall.Add(retry)
	warn := (failures == 1 || wall.Sub(st.warned) >= failLogEvery) && n.failLog.AllowN(wall, 1)
	if warn {
		st.warned = wall
	}
	n.mu.Unlock()
	if err == nil {
		err = fmt.Errorf("node: no storing node to publish to (%d targets)", res.Targets)
	}
	if !warn {
		n.unlogged.Add(1)
		n.log.Debug("publish failed", "key", key, "failures", failures, "retry_in", retry, "err", err)
		return
	}
	n.log.Warn("publish failed, retrying with backoff", "key", key, "failures", failures, "retry_in", retry.Round(time.Second),
		"err", brief(err), "failures_not_logged", n.unlogged.Swap(0))
}

// brief shortens a publish error, which joins one error per storing node,
// to its first line and a count of the rest.
func brief(err error) string {
	s := err.Error()
	lines := strings.Count(s, "\n")
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	if lines > 0 {
		s += fmt.Sprintf(" (and %d more)", lines)
	}
	return s
}

// republishLoop, the serial scheduler (Config.SerialRepublish), publishes
// every announced or bridged key when it is due (see settle), one after
// another, and saves the announcements when they changed. It wakes
// every retryBase. Each key is published from its state at the time,
// under its publish lock, so a key withdrawn meanwhile is skipped.
func (n *Node) republishLoop() {
	t := time.NewTicker(n.retryBase())
	defer t.Stop()
	for {
		n.persistAnnounced()
		now := time.Now()
		n.mu.Lock()
		var due []records.Key
		for k, st := range n.sched {
			if !st.expires.IsZero() && !st.lapsed && !now.Before(st.expires) {
				st.lapsed = true
				n.sch.lapsed.Add(1)
			}
			if !st.due.After(now) {
				due = append(due, k)
			}
		}
		n.mu.Unlock()
		for _, k := range due {
			ctx, cancel := context.WithTimeout(n.ctx, n.cfg.RepublishInterval)
			start := time.Now()
			res, published, err := n.republish(ctx, k)
			cancel()
			n.sch.observeSerial(time.Since(start))
			if n.ctx.Err() != nil {
				return // closing: the rest of the round is moot
			}
			if !published {
				continue
			}
			n.stats.republishes.Add(1)
			if err == nil {
				n.log.Debug("republished", "key", k, "stored_on", res.StoredOn)
			}
		}
		select {
		case <-n.ctx.Done():
			n.persistAnnounced()
			return
		case <-t.C:
		}
	}
}

// republish publishes key again from its current state, unless it has been
// withdrawn since the round's snapshot (published is then false).
func (n *Node) republish(ctx context.Context, key records.Key) (res AnnounceResult, published bool, err error) {
	unlock, err := n.publishes.lock(ctx, key)
	if err != nil {
		n.settle(key, AnnounceResult{}, err)
		return AnnounceResult{}, true, err
	}
	defer unlock()
	n.mu.Lock()
	a, own := n.announced[key]
	_, bridged := n.bridged[key]
	if !own && !bridged {
		delete(n.sched, key)
	}
	n.mu.Unlock()
	if !own && !bridged {
		return AnnounceResult{}, false, nil
	}
	// Without an own client a is zero: port 0, no seed, bridged endpoints only.
	res, err = n.publish(ctx, key, a.port, a.seed, false)
	n.settle(key, res, err)
	return res, true, err
}
