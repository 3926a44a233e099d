package node

import (
	"context"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// Announces of one key racing each other and the republish loop all land on
// m nodes: no PUT is refused as stale because a later record of the same key
// overtook it. A Withdraw racing republishes stays withdrawn.
func TestConcurrentPublishesOfAKey(t *testing.T) {
	const m = 4
	tn := newTestNet(t, 10, time.Millisecond, func(c *Config) {
		c.Replication = m
		c.RecordTTL = 5 * time.Second
		c.RepublishInterval = 20 * time.Millisecond
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	nd := tn.nodes[0]
	key := randomKey(t, rand.New(rand.NewPCG(9, 9)), false)

	var wg sync.WaitGroup
	results := make(chan AnnounceResult, 40)
	errs := make(chan error, 40)
	// Each announce re-arms the key's republish schedule, so the loop
	// rarely finds the key due while announces run; republishes race them
	// here as the loop makes them, through the same republish call.
	stop := make(chan struct{})
	var raced sync.WaitGroup
	republished := 0
	raced.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, published, err := nd.republish(ctx, key); published && err == nil {
				republished++
			}
		}
	})
	for g := range 8 {
		wg.Go(func() {
			for i := range 5 {
				res, err := nd.Announce(ctx, key, uint16(7000+g*10+i), false)
				if err != nil {
					errs <- err
					continue
				}
				results <- res
			}
		})
	}
	wg.Wait()
	close(stop)
	raced.Wait()
	close(results)
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for res := range results {
		if res.StoredOn != m {
			t.Errorf("announce racing others stored on %d of %d targets; want %d", res.StoredOn, res.Targets, m)
		}
	}
	if republished == 0 {
		t.Error("no republish ran while announcing: the test raced nothing")
	}

	if err := nd.Withdraw(ctx, key); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * nd.cfg.RepublishInterval) // republish rounds that saw the key before the Withdraw
	if got := tn.holders(t, key, nd.ID()); len(got) != 0 {
		t.Fatalf("withdrawn record held again by %v after republish rounds", got)
	}
	if n := nd.publishes.held(); n != 0 {
		t.Fatalf("%d publish locks left after every publish ended", n)
	}
}

// held reports how many keys have a holder or a waiter.
func (l *keyLocks) held() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.locks)
}
