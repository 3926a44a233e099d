package node

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/kadtracker/kadtracker/node/internal/pb"
	"github.com/kadtracker/kadtracker/records"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Lookup finds up to want peers for key: a DHT walk to the m closest nodes,
// a GET to each in parallel, every record verified, merged by announcer
// (the newest wins, a tombstone too) and served only as far as the storing
// nodes vouch for it (see merge and the rules in vouch.go).
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
	if !n.cfg.FullLookup {
		return n.lookupEarly(ctx, key, want, start)
	}
	candidates, walk, err := n.closest(ctx, key)
	if err != nil {
		return LookupResult{}, err
	}
	targets := candidates[:min(n.cfg.Replication, len(candidates))]
	res := LookupResult{Stats: LookupStats{Hops: walk.hops, Queried: walk.queried, Asked: len(targets)}}

	// This node's own store is read too, even when it is not among the
	// closest: it may hold the key from before the network changed, and a
	// DHT client's only copy may be one it stored while it served.
	asked := targets
	if !slices.Contains(targets, n.host.ID()) {
		asked = append(slices.Clip(targets), n.host.ID())
	}
	// Storing nodes are asked for at least minAsk records, so the counts
	// and the vouching have something to go on when few are wanted. One
	// salt for all: storing nodes holding the same records choose the
	// same ones, so the answers can vouch for each other (see merge).
	salt := newSalt()
	answers := make([]answer, len(asked))
	var wg sync.WaitGroup
	for i, p := range asked {
		wg.Go(func() {
			a := n.get(ctx, p, key, n.askFor(want), salt)
			a.target = slices.Contains(targets, p)
			answers[i] = a
		})
	}
	wg.Wait()
	for _, a := range answers {
		switch {
		case a.err != nil:
			n.log.Debug("GET failed", "peer", a.from, "key", key, "err", a.err)
		case a.target:
			res.Stats.Answered++
		}
	}
	merged := n.merge(key, answers, want, n.now())
	res.Peers, res.Seeds, res.Leechers = merged.Peers, merged.Seeds, merged.Leechers
	res.Stats.Unvouched, res.Stats.Unsigned = merged.Stats.Unvouched, merged.Stats.Unsigned
	res.Stats.Duration = time.Since(start)
	return res, nil
}

// get asks one storing node for up to want of key's records, chosen by
// salt; this node answers from its own store, trusted. Nothing in an
// answer is believed yet: merge verifies it.
func (n *Node) get(ctx context.Context, p peer.ID, key records.Key, want int, salt uint64) answer {
	a := answer{from: p, trusted: p == n.host.ID()}
	if a.trusted {
		var r records.Result
		if sg, ok := n.store.(records.SaltedGetter); ok {
			r, a.err = sg.GetSalted(ctx, key, want, salt)
		} else {
			r, a.err = n.store.Get(ctx, key, want)
		}
		for _, e := range r.Entries {
			ip := e.IP
			if !ip.IsValid() {
				// Our own client: it runs on this host.
				ip = netip.AddrFrom4([4]byte{127, 0, 0, 1})
			}
			a.entries = append(a.entries, answerEntry{e.Envelope, ip})
		}
		return a
	}
	resp, err := n.request(ctx, p, &pb.Request{Body: &pb.Request_Get{Get: &pb.Get{Key: key.Multihash(), Want: uint32(want), Salt: salt}}})
	if err != nil {
		a.err = err
		return a
	}
	if len(resp.GetEntries()) > min(want, MaxWant) {
		// More than asked for: a storing node that would have us check
		// thousands of signatures. Nothing of it is believed.
		n.refuse(RefusedLongAnswer, p, netip.Addr{}, "entries", len(resp.GetEntries()), "want", want)
		a.err = fmt.Errorf("node: GET answer of %d entries, asked for %d", len(resp.GetEntries()), want)
		return a
	}
	a.seeds, a.leech = int(resp.GetSeeds()), int(resp.GetLeechers())
	for _, pe := range resp.GetEntries() {
		ip, _ := netip.AddrFromSlice(pe.GetIp())
		a.entries = append(a.entries, answerEntry{pe.GetEnvelope(), ip.Unmap()})
	}
	return a
}
