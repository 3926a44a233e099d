package tracker

import (
	"cmp"
	"context"
	"math"
	"math/rand/v2"
	"net/netip"
	"slices"
	"time"

	"github.com/kadtracker/kadtracker/node/tracker/wire"
	"github.com/kadtracker/kadtracker/records"
)

// fresh reports whether the cached lookup of s may answer as it is: it
// ended less than FreshFor ago.
func (t *Tracker) fresh(s *swarm, now time.Time) bool {
	return !s.fetched.IsZero() && now.Sub(s.fetched) < t.cfg.FreshFor
}

// lookup starts a lookup of s unless one runs or ran moments ago. release,
// when non-nil, runs when it ends. t.mu is held.
func (t *Tracker) lookup(s *swarm, now time.Time, release func()) bool {
	if s.lookupDone != nil || t.closed || (!s.lastLookup.IsZero() && now.Sub(s.lastLookup) < minLookupSpacing) || !t.acquire() {
		return false
	}
	done := make(chan struct{})
	s.lookupDone, s.lastLookup = done, now
	t.stats.lookups.Add(1)
	t.wg.Go(func() {
		defer t.release()
		if release != nil {
			defer release()
		}
		ctx, cancel := context.WithTimeout(t.ctx, t.cfg.NodeTimeout)
		sw, err := t.node.Lookup(ctx, s.key, t.cfg.MaxNumwant+lookupSlack)
		cancel()
		var peers []Peer
		if err == nil {
			peers = make([]Peer, 0, len(sw.Peers))
			for _, p := range sw.Peers {
				a := p.Endpoint.Addr().Unmap().WithZone("")
				if a.IsValid() && !a.IsUnspecified() && p.Endpoint.Port() != 0 {
					p.Endpoint = netip.AddrPortFrom(a, p.Endpoint.Port())
					peers = append(peers, p)
				}
			}
		}
		t.mu.Lock()
		defer t.mu.Unlock()
		if err != nil {
			t.stats.lookupErrors.Add(1)
			t.log.Debug("lookup failed", "infohash", s.key, "err", err)
		} else {
			s.peers, s.seeds, s.leechers = peers, max(sw.Seeds, 0), max(sw.Leechers, 0)
			s.fetched = t.cfg.Clock()
		}
		s.lookupErr = err != nil
		s.lookupDone = nil
		close(done)
	})
	return true
}

// finish builds the answer from the cache, peers appended to dst.
func (t *Tracker) finish(s *swarm, req *request, dst []netip.AddrPort) answer {
	a := answer{interval: t.cfg.Interval, minInterval: t.cfg.MinInterval, peers: dst[:0]}
	if s == nil {
		return a
	}
	var live []Peer
	for _, src := range t.cfg.Live { // s.key never changes: read outside t.mu
		live = append(live, src.LivePeers(s.key)...)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	a.complete, a.incomplete = s.counts()
	for _, p := range live {
		if p.Seed {
			a.complete++
		} else {
			a.incomplete++
		}
	}
	if req.event == wire.EventStopped {
		return a
	}
	want := req.numwant
	if want < 0 {
		want = t.cfg.DefaultNumwant
	}
	want = min(want, t.cfg.MaxNumwant)
	if want > 0 {
		s.candidates(req, func(ep netip.AddrPort) bool {
			a.peers = append(a.peers, ep)
			return true
		})
		for i := range live {
			if s.offerable(req, &live[i]) {
				a.peers = append(a.peers, live[i].Endpoint)
			}
		}
		if len(a.peers) > want { // the nearest share, then a uniform sample
			head := 0
			if t.cfg.Locality > 0 {
				head = s.nearestFirst(a.peers, int(math.Ceil(t.cfg.Locality*float64(want))))
			}
			for i := head; i < want; i++ {
				j := i + rand.IntN(len(a.peers)-i)
				a.peers[i], a.peers[j] = a.peers[j], a.peers[i]
			}
			a.peers = a.peers[:want]
		}
	}
	switch {
	case s.fetched.IsZero():
		a.interval, a.minInterval = t.cfg.ShortInterval, t.cfg.ShortInterval
		if s.lookupErr {
			a.warning = "DHT lookup failed; retrying"
		} else {
			a.warning = "DHT lookup in progress; announce again shortly"
		}
	case !req.seed && len(a.peers) == 0:
		a.interval, a.minInterval = t.cfg.ShortInterval, t.cfg.ShortInterval
	}
	return a
}

// Clients returns the endpoints of the clients announcing each swarm (their
// source address and announced port), for a daemon that publishes them.
func (t *Tracker) Clients() map[records.Key][]netip.AddrPort {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[records.Key][]netip.AddrPort)
	for _, s := range t.swarms {
		for _, c := range s.clients {
			out[s.key] = append(out[s.key], c.ep)
		}
	}
	return out
}

// scrape appends the counts of each infohash (zeros for one the daemon
// does not track). Like an announce, it refreshes the swarms whose cache is
// not fresh and waits up to FirstLookupWait for those lookups.
func (t *Tracker) scrape(ctx context.Context, hashes [][20]byte, dst []wire.ScrapeFile) []wire.ScrapeFile {
	t.await(ctx, t.beginScrape(hashes)...)
	return t.finishScrape(hashes, dst)
}

// beginScrape counts a scrape and starts the lookups it calls for; it
// returns those to wait for.
func (t *Tracker) beginScrape(hashes [][20]byte) (wait []<-chan struct{}) {
	t.stats.scrapes.Add(1)
	now := t.cfg.Clock()
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, h := range hashes {
		s := t.swarms[h]
		if s == nil || (t.cfg.Allow != nil && !t.cfg.Allow(h)) || t.fresh(s, now) {
			continue
		}
		t.lookup(s, now, nil)
		if s.lookupDone != nil {
			wait = append(wait, s.lookupDone)
		}
	}
	return wait
}

// finishScrape appends the counts of each infohash from the cache.
func (t *Tracker) finishScrape(hashes [][20]byte, dst []wire.ScrapeFile) []wire.ScrapeFile {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, h := range hashes {
		f := wire.ScrapeFile{InfoHash: h}
		if s := t.swarms[h]; s != nil && (t.cfg.Allow == nil || t.cfg.Allow(h)) {
			f.Complete, f.Incomplete = s.counts()
		}
		dst = append(dst, f)
	}
	return dst
}

// nearestFirst moves to the front of eps the k DHT peers of s with the
// shortest predicted round trip, at most one per source address
// (records.SourceAddr: Sybils at one address claiming to be near take one
// place), and returns how many it moved. Peers of unknown round trip, the
// local clients and live sources' peers among them, stay in the rest.
func (s *swarm) nearestFirst(eps []netip.AddrPort, k int) int {
	rtt := make(map[netip.AddrPort]time.Duration)
	for _, p := range s.peers {
		if p.RTT > 0 {
			rtt[p.Endpoint] = p.RTT
		}
	}
	var known []int
	for i, ep := range eps {
		if rtt[ep] > 0 {
			known = append(known, i)
		}
	}
	slices.SortStableFunc(known, func(a, b int) int { return cmp.Compare(rtt[eps[a]], rtt[eps[b]]) })
	groups := make(map[netip.Addr]bool)
	var near []netip.AddrPort
	taken := make(map[int]bool)
	for _, i := range known {
		if len(near) == k {
			break
		}
		if g := records.SourceAddr(eps[i].Addr()); !groups[g] {
			groups[g], taken[i] = true, true
			near = append(near, eps[i])
		}
	}
	rest := make([]netip.AddrPort, 0, len(eps))
	for i, ep := range eps {
		if !taken[i] {
			rest = append(rest, ep)
		}
	}
	copy(eps, near)
	copy(eps[len(near):], rest)
	return len(near)
}
