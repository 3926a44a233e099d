package node

import (
	"context"
	"sync"

	"github.com/kadtracker/kadtracker/records"
)

// keyLocks serializes the publishes of one key. A node's records for a key
// are ordered by sequence number and storing nodes refuse an older one, so
// two publishes of the same key must not overlap: an Announce racing a
// republish would otherwise see its PUTs refused as stale by nodes the
// republish reached first, and a republish working from a snapshot taken
// before a Withdraw could store the record again after the withdrawal.
// Publishes of different keys still run in parallel.
type keyLocks struct {
	mu    sync.Mutex
	locks map[records.Key]*keyLock
}

type keyLock struct {
	sem   chan struct{} // a one-slot semaphore, so waiting honours ctx
	users int           // holders and waiters; the entry goes with the last
}

// lock waits for key's publish lock or for ctx to end. On success the
// returned function releases the lock.
func (l *keyLocks) lock(ctx context.Context, key records.Key) (unlock func(), err error) {
	l.mu.Lock()
	if l.locks == nil {
		l.locks = make(map[records.Key]*keyLock)
	}
	kl := l.locks[key]
	if kl == nil {
		kl = &keyLock{sem: make(chan struct{}, 1)}
		l.locks[key] = kl
	}
	kl.users++
	l.mu.Unlock()

	release := func() {
		l.mu.Lock()
		kl.users--
		if kl.users == 0 {
			delete(l.locks, key)
		}
		l.mu.Unlock()
	}
	select {
	case kl.sem <- struct{}{}:
		return func() { <-kl.sem; release() }, nil
	case <-ctx.Done():
		release()
		return nil, ctx.Err()
	}
}
