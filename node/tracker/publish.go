package tracker

import (
	"context"
	"time"

	"github.com/kadtracker/kadtracker/records"
)

// reconcile brings the listeners and the node in line with what the
// swarm's clients call for: the listeners are told of every change at once,
// the node is called when its publication differs (after the backoff of a
// failed call, when a node-call slot is free). One apply per swarm runs at a
// time; its end reconciles again. t.mu is held.
func (t *Tracker) reconcile(s *swarm, now time.Time) {
	s.want = s.desired()
	if s.busy || t.closed {
		return
	}
	notify := s.want != s.told
	call := s.want != s.have && !now.Before(s.retryAt) && t.acquire()
	if !notify && !call {
		return
	}
	s.busy = true
	s.told = s.want
	op := s.want
	t.wg.Go(func() {
		if call {
			defer t.release()
		}
		t.apply(s, op, notify, call)
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

// apply tells the listeners of op (when notify), then the node (when
// call), and records the outcome.
func (t *Tracker) apply(s *swarm, op pub, notify, call bool) {
	if notify {
		t.notify(s.key, op)
	}
	var err error
	if call {
		ctx, cancel := context.WithTimeout(t.ctx, t.cfg.NodeTimeout)
		if op.on {
			err = t.node.Announce(ctx, s.key, op.port, op.seed)
		} else {
			err = t.node.Withdraw(ctx, s.key)
		}
		cancel()
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.cfg.Clock()
	s.busy = false
	switch {
	case !call:
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
	t.forgetLeft(s)
}

// notify tells every listener of op. A listener's error is counted and
// logged (at most one Warn per listenerWarnEvery, so a failing listener
// cannot flood the log) and changes nothing else: the node is called all
// the same, and the listener is not asked again until the next change.
func (t *Tracker) notify(key records.Key, op pub) {
	for _, l := range t.cfg.Listeners {
		if !op.on {
			l.Withdraw(key)
			continue
		}
		if err := l.Announce(key, op.port, op.seed); err != nil {
			t.stats.listenerErrors.Add(1)
			t.warnListener(key, err)
		}
	}
}

// warnListener logs a listener's error unless one was logged less than
// listenerWarnEvery ago; the Warn carries how many were not logged.
func (t *Tracker) warnListener(key records.Key, err error) {
	now := t.cfg.Clock()
	t.warnMu.Lock()
	if !t.lastWarn.IsZero() && now.Sub(t.lastWarn) < listenerWarnEvery {
		t.unwarned++
		t.warnMu.Unlock()
		return
	}
	t.lastWarn = now
	unlogged := t.unwarned
	t.unwarned = 0
	t.warnMu.Unlock()
	t.log.Warn("listener refused an announce; the DHT publishes it all the same", "infohash", key, "err", err, "unlogged_since_last", unlogged)
}
