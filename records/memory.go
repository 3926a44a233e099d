package records

import (
	"context"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Memory is a Store that keeps everything in memory and forgets it on exit.
type Memory struct {
	now func() time.Time

	mu sync.RWMutex
	x  *index // nil once closed
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty in-memory store.
func NewMemory(opts Options) *Memory {
	return &Memory{now: opts.clock(), x: newIndex(opts)}
}

// Put implements Store.
func (m *Memory) Put(ctx context.Context, e Entry) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.x == nil {
		return ErrClosed
	}
	p, err := m.x.planPut(e, now, true)
	if err != nil {
		return err
	}
	m.x.apply(p)
	return nil
}

// Get implements Store.
func (m *Memory) Get(ctx context.Context, k Key, want int) (Result, error) {
	return m.GetSalted(ctx, k, want, 0)
}

// GetSalted implements SaltedGetter.
func (m *Memory) GetSalted(ctx context.Context, k Key, want int, salt uint64) (Result, error) {
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	now := m.now()
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.x == nil {
		return Result{}, ErrClosed
	}
	return m.x.get(k, want, now, salt), nil
}

// Remove implements Store.
func (m *Memory) Remove(ctx context.Context, k Key, announcer peer.ID) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.x == nil {
		return ErrClosed
	}
	m.x.apply(m.x.planRemove(k, announcer))
	return nil
}

// List implements Store.
func (m *Memory) List(ctx context.Context, fn func(Entry) bool) error {
	return list(ctx, &m.mu, func() *index { return m.x }, m.now, fn)
}

// Expire implements Store.
func (m *Memory) Expire(ctx context.Context) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.x == nil {
		return 0, ErrClosed
	}
	return m.x.sweep(now), nil
}

// Stats implements Store. A closed store holds nothing.
func (m *Memory) Stats() Stats {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.x == nil {
		return Stats{}
	}
	return m.x.stats()
}

// Close drops everything; later calls return ErrClosed. It is idempotent.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.x = nil
	return nil
}

// list walks the index one key at a time, calling fn without holding mu so
// fn may use the store. idx returns the index, nil once the store is closed.
// Records put while List runs may or may not be seen.
func list(ctx context.Context, mu *sync.RWMutex, idx func() *index, clock func() time.Time, fn func(Entry) bool) error {
	mu.RLock()
	x := idx()
	if x == nil {
		mu.RUnlock()
		return ErrClosed
	}
	keys := x.keyList()
	mu.RUnlock()
	for _, k := range keys {
		if err := ctx.Err(); err != nil {
			return err
		}
		now := clock()
		mu.RLock()
		x := idx()
		if x == nil {
			mu.RUnlock()
			return ErrClosed
		}
		es := x.liveEntries(k, now)
		mu.RUnlock()
		for _, e := range es {
			if !fn(e) {
				return nil
			}
		}
	}
	return nil
}

// Busiest returns the n infohashes with the most unexpired records, most
// first. It is not part of Store: a status page uses it.
func (m *Memory) Busiest(n int) []KeyCount {
	now := m.now()
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.x == nil {
		return nil
	}
	return m.x.busiest(n, now)
}
