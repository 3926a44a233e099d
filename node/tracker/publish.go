package tracker

import (
	"context"
	"time"
)

// reconcile starts a node call when what should be published differs from
// what is. One call per swarm runs at a time; its end reconciles again.
// t.mu is held.
func (t *Tracker) reconcile(s *swarm, now time.Time) {
	s.want = s.desired()
	if s.busy || s.want == s.have || now.Before(s.retryAt) || t.closed || !t.acquire() {
		return
	}
	s.busy = true
	op := s.want
	t.wg.Go(func() {
		defer t.release()
		t.apply(s, op)
	})
}

// acquire takes a node-call slot if one is free; a call that gets none is
// tried again later (the sweep reconciles every swarm).
func (t *Tracker) acquire() bool {
	select {
	case t.calls <- struct{}{}:
		return true
	default:
		t.stats.deferred.Add(1)
		return false
	}
}

func (t *Tracker) release() { <-t.calls }

// desired is the publication the swarm's clients call for: the port of one
// client (the primary, kept while it announces) and its seed flag.
func (s *swarm) desired() pub {
	if len(s.clients) == 0 {
		return pub{}
	}
	i := s.find(s.primary)
	if i < 0 {
		i = 0
		for j := range s.clients {
			if s.clients[j].ep.Compare(s.clients[i].ep) < 0 {
				i = j
			}
		}
		s.primary = s.clients[i].ep
	}
	return pub{on: true, port: s.primary.Port(), seed: s.clients[i].seed}
}

func (t *Tracker) apply(s *swarm, op pub) {
	ctx, cancel := context.WithTimeout(t.ctx, t.cfg.NodeTimeout)
	var err error
	if op.on {
		err = t.node.Announce(ctx, s.key, op.port, op.seed)
	} else {
		err = t.node.Withdraw(ctx, s.key)
	}
	cancel()
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.cfg.Clock()
	s.busy = false
	switch {
	case err == nil:
		s.have, s.fails, s.retryAt = op, 0, time.Time{}
		if op.on {
			t.stats.published.Add(1)
		} else {
			t.stats.withdrawn.Add(1)
		}
	case !op.on && s.fails+1 >= withdrawTries:
		t.stats.nodeErrors.Add(1)
		t.log.Warn("withdraw failed; the record will expire", "infohash", s.key, "err", err)
		s.have, s.fails, s.retryAt = op, 0, time.Time{}
	default:
		t.stats.nodeErrors.Add(1)
		s.fails++
		backoff := min(retryFirst<<(s.fails-1), retryMax)
		s.retryAt = now.Add(backoff)
		if !t.closed {
			t.log.Info("node call failed; will retry", "announce", op.on, "infohash", s.key, "retry_in", backoff, "err", err)
		}
	}
	t.reconcile(s, now)
}
