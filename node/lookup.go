package node

import (
	"context"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/kadtracker/kadtracker/node/internal/pb"
	"github.com/kadtracker/kadtracker/records"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Lookup finds up to want peers for key: a DHT walk to the m closest nodes,
// a GET to each in parallel, every record verified, merged and deduplicated
// by announcer (the newest wins).
func (n *Node) Lookup(ctx context.Context, key records.Key, want int) (LookupResult, error) {
	if key.IsZero() {
		return LookupResult{}, records.ErrBadKey
	}
	if n.ctx.Err() != nil {
		return LookupResult{}, ErrClosed
	}
	n.stats.lookups.Add(1)
	start := time.Now()
	want = max(0, min(want, MaxWant))
	candidates, walk, err := n.closest(ctx, key)
	if err != nil {
		return LookupResult{}, err
	}
	targets := candidates[:min(n.cfg.Replication, len(candidates))]
	res := LookupResult{Stats: LookupStats{Hops: walk.hops, Queried: walk.queried, Asked: len(targets)}}

	type answer struct {
		from   peer.ID
		result records.Result
		err    error
	}
	// This node's own store is read too, even when it is not among the
	// closest: it may hold the key from before the network changed, and a
	// DHT client's only copy may be one it stored while it served.
	asked := targets
	if !slices.Contains(targets, n.host.ID()) {
		asked = append(slices.Clip(targets), n.host.ID())
	}
	answers := make(chan answer, len(asked))
	var wg sync.WaitGroup
	for _, p := range asked {
		wg.Go(func() {
			r, err := n.get(ctx, p, key, want)
			answers <- answer{p, r, err}
		})
	}
	wg.Wait()
	close(answers)

	best := make(map[peer.ID]records.Entry)
	now := n.now()
	for a := range answers {
		if a.err != nil {
			n.log.Debug("GET failed", "peer", a.from, "key", key, "err", a.err)
			continue
		}
		if slices.Contains(targets, a.from) {
			res.Stats.Answered++
		}
		res.Seeds = max(res.Seeds, a.result.Seeds)
		res.Leechers = max(res.Leechers, a.result.Leechers)
		for _, e := range a.result.Entries {
			if e.Key != key || e.Withdrawn || e.Validate(now, n.cfg.MaxRecordTTL) != nil {
				continue
			}
			if old, ok := best[e.Announcer]; !ok || e.Seq > old.Seq {
				best[e.Announcer] = e
			}
		}
	}
	var (
		seeds, leechers int
		bridged         []Peer
		seen            = make(map[netip.AddrPort]bool)
	)
	for _, e := range best {
		for _, ep := range e.Endpoints {
			bridged = append(bridged, Peer{Endpoint: ep, Announcer: e.Announcer, Expires: e.Expires, Bridged: true})
		}
		if e.Port == 0 {
			continue // bridged endpoints only
		}
		if e.Seed {
			seeds++
		} else {
			leechers++
		}
		if len(res.Peers) < want {
			seen[e.Endpoint()] = true
			res.Peers = append(res.Peers, Peer{Endpoint: e.Endpoint(), Seed: e.Seed, Announcer: e.Announcer, Expires: e.Expires})
		}
	}
	// Bridged endpoints fill what room is left: a peer that announces
	// through a daemon of its own comes first, and once.
	for _, p := range bridged {
		if len(res.Peers) >= want {
			break
		}
		if !seen[p.Endpoint] {
			seen[p.Endpoint] = true
			res.Peers = append(res.Peers, p)
		}
	}
	res.Seeds = max(res.Seeds, seeds)
	res.Leechers = max(res.Leechers, leechers)
	res.Stats.Duration = time.Since(start)
	return res, nil
}

// get asks one storing node for key's records and verifies each one; this
// node answers from its own store. A record that fails verification is
// dropped, not fatal: one bad storing node cannot spoil a lookup.
func (n *Node) get(ctx context.Context, p peer.ID, key records.Key, want int) (records.Result, error) {
	if p == n.host.ID() {
		r, err := n.store.Get(ctx, key, want)
		for i := range r.Entries {
			if !r.Entries[i].IP.IsValid() {
				// Our own client: it runs on this host.
				r.Entries[i].IP = netip.AddrFrom4([4]byte{127, 0, 0, 1})
			}
		}
		return r, err
	}
	resp, err := n.request(ctx, p, &pb.Request{Body: &pb.Request_Get{Get: &pb.Get{Key: key.Multihash(), Want: uint32(want)}}})
	if err != nil {
		return records.Result{}, err
	}
	out := records.Result{Seeds: int(resp.GetSeeds()), Leechers: int(resp.GetLeechers()), More: resp.GetMore()}
	for _, pe := range resp.GetEntries() {
		rec, err := records.Open(pe.GetEnvelope())
		if err != nil {
			n.log.Debug("GET returned a bad record", "peer", p, "err", err)
			continue
		}
		ip, ok := netip.AddrFromSlice(pe.GetIp())
		if !ok || !ip.IsValid() || ip.IsUnspecified() {
			continue
		}
		out.Entries = append(out.Entries, records.Entry{Record: rec, IP: ip.Unmap(), Envelope: pe.GetEnvelope()})
	}
	return out, nil
}
