package records

import (
	"context"
	"errors"
	"testing"
	"time"
)

// A storing node holds about K*m/N of an announcer's K keys, all of them
// when the network has m nodes or fewer. The default per-announcer and
// per-address caps take a 20,000-torrent seedbox even then (docs/design.md,
// "Per-announcer caps"), and still bound it: the next key is refused. The
// caps before issue 15 (5,000 keys per announcer, 10,000 records per
// address) refused an ordinary seedbox by design in a small network.
func TestDefaultLimitsHoldASeedbox(t *testing.T) {
	if testing.Short() {
		t.Skip("signs 20,000 records")
	}
	ctx := context.Background()
	id := newIdentity(t, 1)
	const seedbox = 20_000
	entries := make([]Entry, seedbox+1)
	for i := range entries {
		entries[i] = seal(t, id, rec(testKey(t, i), 1, t0.Add(time.Hour)), testIP)
	}
	fill := func(l Limits) (accepted int, err error) {
		c := newClock()
		s := NewMemory(Options{Limits: l, Now: c.Now, Seed: 1})
		defer s.Close()
		for _, e := range entries {
			if err := s.Put(ctx, e); err != nil {
				return accepted, err
			}
			accepted++
		}
		return accepted, nil
	}
	n, err := fill(DefaultLimits())
	if n != seedbox || !errors.Is(err, ErrAnnouncerFull) {
		t.Fatalf("default limits took %d of a %d-key seedbox, then %v; want all, then ErrAnnouncerFull", n, seedbox, err)
	}
	old := DefaultLimits()
	old.KeysPerAnnouncer, old.RecordsPerIP = 5000, 10_000
	if n, err := fill(old); n != 5000 || !errors.Is(err, ErrAnnouncerFull) {
		t.Fatalf("control: the old caps took %d, then %v", n, err)
	}
}
