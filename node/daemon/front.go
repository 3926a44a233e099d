package daemon

import (
	"context"
	"net/netip"
	"time"

	"github.com/kadtracker/kadtracker/node/metrics"
	"github.com/kadtracker/kadtracker/node/tracker"
	"github.com/kadtracker/kadtracker/records"
)

// frontNode is a tracker front's view of the DHT node.
type frontNode struct {
	n     dhtNode
	m     *metrics.Metrics // nil: metrics off
	front string           // the front's name in the metrics
	// publish is false for the public tracker: its clients are not this
	// host's, so they are published as bridged records instead.
	publish bool
	// bridge, when set, is given a moment on a swarm's first lookup for
	// the classic trackers' first answers.
	bridge *bridge
}

var _ tracker.Node = (*frontNode)(nil)

// Announce publishes the client. A record that no storing node took yet is
// not an error for the front: the node keeps the key announced and its
// republish loop tries again. The announcement is transient: after a
// restart the front's clients announce again, and one that stopped
// meanwhile must not stay published.
func (f *frontNode) Announce(ctx context.Context, key records.Key, port uint16, seed bool) error {
	if !f.publish {
		return nil
	}
	_, err := f.n.AnnounceTransient(ctx, key, port, seed)
	return err
}

func (f *frontNode) Withdraw(ctx context.Context, key records.Key) error {
	if !f.publish {
		return nil
	}
	return f.n.Withdraw(ctx, key)
}

// bridgeSettle is how long the first lookup of a swarm waits for the
// classic trackers' first answers. The front waits for that lookup only up
// to its FirstLookupWait, so a slow tracker cannot delay an answer longer.
const bridgeSettle = time.Second

// Lookup is the DHT's answer; for a swarm the bridge has just started, it
// also gives the trackers up to bridgeSettle to answer, so that the
// client's first answer (the only one qBittorrent and rtorrent use for
// minutes) has their peers. The peers themselves reach the front through
// its live sources.
func (f *frontNode) Lookup(ctx context.Context, key records.Key, want int) (tracker.Swarm, error) {
	start := time.Now()
	res, err := observedLookup(ctx, f.n, f.m, f.front, key, want)
	if f.bridge != nil {
		if ih, ok := key.TrackerInfohash(); ok {
			f.bridge.a.Settle(ctx, ih, bridgeSettle-time.Since(start))
		}
	}
	if err != nil {
		return tracker.Swarm{}, err
	}
	self := f.n.ID()
	sw := tracker.Swarm{Seeds: res.Seeds, Leechers: res.Leechers, Peers: make([]tracker.Peer, 0, len(res.Peers))}
	for _, p := range res.Peers {
		if p.Bridged && p.Announcer == self {
			continue // this daemon's own bridge: its peers reach the front live
		}
		sw.Peers = append(sw.Peers, tracker.Peer{
			Endpoint: netip.AddrPortFrom(p.Endpoint.Addr().Unmap(), p.Endpoint.Port()),
			Seed:     p.Seed,
			Local:    p.Announcer == self && !p.Bridged,
			RTT:      p.RTT,
		})
	}
	return sw, nil
}
