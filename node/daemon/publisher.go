package daemon

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/kadtracker/kadtracker/node"
	"github.com/kadtracker/kadtracker/records"
)

// bridgedNode is what the publisher needs of the DHT node.
type bridgedNode interface {
	PublishBridged(ctx context.Context, key records.Key, endpoints []netip.AddrPort) (node.AnnounceResult, error)
	WithdrawBridged(ctx context.Context, key records.Key) error
}

// bridgedPublisher keeps peers this daemon knows of but that do not
// announce through a daemon of their own (the classic trackers' peers, the
// public tracker's clients) published in the DHT as bridged records, so
// DHT-only users meet them. Each source (bridge, public tracker) sets a
// key's endpoints; the node publishes their union, once per change, and
// republishes it on its own until it is withdrawn.
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

// flush publishes every key whose endpoints changed.
func (p *bridgedPublisher) flush(ctx context.Context) {
	type job struct {
		key records.Key
		eps []netip.AddrPort
	}
	var jobs []job
	p.mu.Lock()
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
		if !slices.Equal(union, p.published[k]) {
			jobs = append(jobs, job{k, union})
		}
		delete(p.dirty, k)
	}
	p.mu.Unlock()
	for _, j := range jobs {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		var err error
		if len(j.eps) == 0 {
			err = p.n.WithdrawBridged(cctx, j.key)
		} else {
			var res node.AnnounceResult
			res, err = p.n.PublishBridged(cctx, j.key, j.eps)
			if err == nil {
				p.log.Debug("published", "infohash", j.key, "endpoints", len(j.eps), "stored_on", res.StoredOn)
			}
		}
		cancel()
		p.mu.Lock()
		if err != nil && ctx.Err() == nil {
			// Unless handOver, the node holds the key now and retries it
			// with its own per-key backoff, logging rate-limited: publishing
			// it again every round from here would flood the log and the
			// storing nodes that refuse it.
			p.log.Debug("bridged record not stored yet", "infohash", j.key, "err", err, "node_retries", handOver(err))
		}
		switch {
		case err != nil && ctx.Err() == nil && !handOver(err):
			p.dirty[j.key] = true
		case len(j.eps) == 0:
			delete(p.published, j.key)
		default:
			p.published[j.key] = j.eps
		}
		p.mu.Unlock()
	}
}

// handOver reports whether a failed PublishBridged or WithdrawBridged left
// the key with the node, which then retries it itself: every failure but
// one of timing (the key's publish lock not had in time) or of a closed
// node.
func handOver(err error) bool {
	return !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) && !errors.Is(err, node.ErrClosed)
}
