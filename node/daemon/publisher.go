package daemon

import (
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/kadtracker/kadtracker/records"
)

// bridgedNode is what the publisher needs of the DHT node: its republish
// scheduler, which publishes a changed key with the other keys of its
// keyspace region, retries refusals with its own backoff, and never
// blocks the caller.
type bridgedNode interface {
	SetBridged(key records.Key, endpoints []netip.AddrPort)
}

// bridgedPublisher keeps peers this daemon knows of but that do not
// announce through a daemon of their own (the classic trackers' peers, the
// public tracker's clients) published in the DHT as bridged records, so
// DHT-only users meet them. Each source (bridge, public tracker) sets a
// key's endpoints; the node's scheduler publishes their union, once per
// change, and republishes it on its own until it is withdrawn.
type bridgedPublisher struct {
	n   bridgedNode
	log *slog.Logger

	mu        sync.Mutex
	sources   map[records.Key]map[string][]netip.AddrPort
	dirty     map[records.Key]bool
	published map[records.Key][]netip.AddrPort
	kick      chan struct{}
}

func newBridgedPublisher(n bridgedNode, logger *slog.Logger) *bridgedPublisher {
	return &bridgedPublisher{
		n: n, log: logger.With("component", "bridged-records"),
		sources:   make(map[records.Key]map[string][]netip.AddrPort),
		dirty:     make(map[records.Key]bool),
		published: make(map[records.Key][]netip.AddrPort),
		kick:      make(chan struct{}, 1),
	}
}

// Set replaces what source knows of key; nil withdraws it. It never blocks.
func (p *bridgedPublisher) Set(source string, key records.Key, eps []netip.AddrPort) {
	p.mu.Lock()
	m := p.sources[key]
	switch {
	case len(eps) > 0 && m == nil:
		m = make(map[string][]netip.AddrPort)
		p.sources[key] = m
		fallthrough
	case len(eps) > 0:
		m[source] = slices.Clone(eps)
	case m != nil:
		delete(m, source)
		if len(m) == 0 {
			delete(p.sources, key)
		}
	default:
		p.mu.Unlock()
		return
	}
	p.dirty[key] = true
	p.mu.Unlock()
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// Len is the number of keys published.
func (p *bridgedPublisher) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.published)
}

// publishSpacing: a key's bridged record is published at most this often,
// whatever its sources say; the last change is published after it.
const publishSpacing = 5 * time.Second

// run publishes the changes until ctx ends.
func (p *bridgedPublisher) run(ctx context.Context) error {
	t := time.NewTicker(publishSpacing)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-p.kick:
		case <-t.C:
		}
		p.flush(ctx)
	}
}

// flush hands every key whose endpoints changed to the node.
func (p *bridgedPublisher) flush(context.Context) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k := range p.dirty {
		var union []netip.AddrPort
		for _, eps := range p.sources[k] {
			for _, ep := range eps {
				if !slices.Contains(union, ep) {
					union = append(union, ep)
				}
			}
		}
		slices.SortFunc(union, netip.AddrPort.Compare)
		if len(union) > records.MaxEndpoints {
			union = union[:records.MaxEndpoints]
		}
		delete(p.dirty, k)
		if slices.Equal(union, p.published[k]) {
			continue
		}
		p.n.SetBridged(k, union)
		p.log.Debug("handed to the scheduler", "infohash", k, "endpoints", len(union))
		if len(union) == 0 {
			delete(p.published, k)
		} else {
			p.published[k] = union
		}
	}
}
