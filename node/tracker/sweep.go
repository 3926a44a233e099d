package tracker

// sweep lapses silent clients, retries failed node calls, refreshes the
// swarms of local clients, seeding or leeching, and forgets idle swarms.
func (t *Tracker) sweep() {
	now := t.cfg.Clock()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return
	}
	for _, s := range t.swarms {
		for i := len(s.clients) - 1; i >= 0; i-- {
			if c := s.clients[i]; now.Sub(c.lastSeen) > t.cfg.ClientTimeout {
				t.dropClient(s, i)
				t.stats.lapsed.Add(1)
				t.log.Debug("client lapsed", "infohash", s.key, "client", c.ep)
			}
		}
		t.reconcile(s, now)
		if s.lookupDone == nil && len(s.clients) > 0 && now.Sub(s.fetched) >= t.cfg.CacheTTL {
			select {
			case t.refresh <- struct{}{}:
				if !t.lookup(s, now, func() { <-t.refresh }) {
					<-t.refresh
				}
			default:
			}
		}
		if s.idle() && now.Sub(s.lastUsed) > t.cfg.ClientTimeout {
			t.remove(s)
		}
	}
	for _, s := range t.leaving {
		t.reconcile(s, now)
		t.forgetLeft(s)
	}
	t.forgetRates(now)
}
