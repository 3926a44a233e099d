package records

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	ds "github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"
	pebbleds "github.com/ipfs/go-ds-pebble"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/kadtracker/kadtracker/records/internal/pb"
)

// Pebble is a Store that writes every change through to a pebble database
// before it changes the in-memory index that serves reads, and loads the
// database back on open.
//
// Durability: the datastore commits every write with pebble.Sync, which
// fsyncs pebble's write-ahead log before the write returns, so a record Put
// returned nil for survives the process being killed (and the machine
// losing power) right after. Writers are serialized, each through its own
// fsync; readers never wait for the disk.
type Pebble struct {
	now func() time.Time
	ds  *pebbleds.Datastore
	dir string

	kept, dropped, lost int
	// floor is the count checkpoint on disk: at least floor records are
	// stored. Writers keep it at or below the record count (wmu).
	floor   int
	corrupt damageSeen // what damage pebble reported

	// wmu serializes writers (Put, Remove, Expire, Close) across their disk
	// write, so a plan made under mu.RLock is still valid when applied.
	wmu sync.Mutex
	mu  sync.RWMutex
	x   *index // nil once closed
}

var _ Store = (*Pebble)(nil)

// dsPrefix is the datastore namespace of records: /r/<key>/<announcer>,
// both in unpadded base64url of their bytes.
const dsPrefix = "/r"

// OpenPebble opens (creating if needed) the store in dir and loads every
// record back, verifying each envelope again. Expired, undecodable or
// unverifiable records, and records over the limits, are deleted and
// counted in Loaded rather than failing the open.
//
// A damaged store (a block failing its checksum, a MANIFEST or WAL that
// does not parse) fails with an error wrapping ErrDamaged that names dir.
// Records missing against the count checkpoint (written at Close and
// kept up while the store runs) are reported by Lost: a damaged WAL or
// MANIFEST can make pebble open with fewer records and no error.
//
// The directory is made 0700 and its files 0600.
func OpenPebble(dir string, opts Options) (*Pebble, error) {
	return openPebble(dir, opts, pebble.Sync)
}

// openPebble is OpenPebble with a choice of durability, so a benchmark can
// fill a store without an fsync per record.
func openPebble(dir string, opts Options, wo *pebble.WriteOptions) (_ *Pebble, err error) {
	s := &Pebble{now: opts.clock(), dir: dir, x: newIndex(opts)}
	if _, err := tighten(dir); err != nil {
		return nil, fmt.Errorf("records: %s: %w", dir, err)
	}
	defer func() {
		// pebble's Fatalf panics (see quietLogger) on damage it cannot
		// return as an error.
		if r := recover(); r != nil {
			perr, ok := r.(error)
			if !ok || !errors.Is(perr, ErrDamaged) {
				panic(r)
			}
			why, _ := s.corrupt.get()
			err = s.damage(errors.New(why))
		}
	}()
	d, err := pebbleds.NewDatastore(dir, pebbleds.WithPebbleOpts(pebbleOptions(&s.corrupt)), pebbleds.WithPebbleWriteOptions(wo))
	if err != nil {
		if damaged(err, &s.corrupt) {
			return nil, s.damage(err)
		}
		return nil, fmt.Errorf("records: open %s: %w", dir, err)
	}
	s.ds = d
	if err := s.load(context.Background()); err != nil {
		cerr := d.Close()
		if damaged(err, &s.corrupt) {
			return nil, s.damage(err)
		}
		return nil, errors.Join(fmt.Errorf("records: load %s: %w", dir, err), cerr)
	}
	return s, nil
}

// damage is the one error a damaged store opens with.
func (s *Pebble) damage(err error) error {
	return fmt.Errorf("%w: the record store in %s cannot be read (%v); move the directory aside (the node does so with store recovery on) and the DHT refills it", ErrDamaged, s.dir, err)
}

// Loaded reports how many records OpenPebble kept and how many it dropped.
func (s *Pebble) Loaded() (kept, dropped int) { return s.kept, s.dropped }

// Lost reports how many records OpenPebble found missing against the
// count checkpoint: lost to damage, since nothing deletes records without
// lowering the checkpoint first. Zero when there was no checkpoint.
func (s *Pebble) Lost() int { return s.lost }

// load reads the datastore into the index. Verifying signatures is the slow
// part, so it runs on every CPU.
func (s *Pebble) load(ctx context.Context) error {
	floor, checked, err := readCount(s.dir)
	if err != nil {
		return err
	}
	res, err := s.ds.Query(ctx, query.Query{Prefix: dsPrefix})
	if err != nil {
		return err
	}
	var raw []query.Entry
	for {
		r, ok := res.NextSync()
		if !ok {
			break
		}
		if r.Error != nil {
			res.Close()
			return r.Error
		}
		raw = append(raw, r.Entry)
	}
	if err := res.Close(); err != nil {
		return err
	}
	if why, ok := s.corrupt.get(); ok {
		return errors.New(why)
	}
	if checked && len(raw) < floor {
		s.lost = floor - len(raw)
	}

	decoded := make([]Entry, len(raw))
	bad := make([]bool, len(raw))
	var wg sync.WaitGroup
	workers := runtime.GOMAXPROCS(0)
	for w := range workers {
		wg.Go(func() {
			for i := w; i < len(raw); i += workers {
				e, err := decodeStored(raw[i].Key, raw[i].Value)
				decoded[i], bad[i] = e, err != nil
			}
		})
	}
	wg.Wait()

	now := s.now()
	var drop []string
	for i, e := range decoded {
		if !bad[i] {
			// Expired, over a limit or too far ahead: not kept.
			if p, err := s.x.planPut(e, now, false); err == nil && p.op == opInsert {
				s.x.apply(p)
				s.kept++
				continue
			}
		}
		drop = append(drop, raw[i].Key)
	}
	s.dropped = len(drop)
	// The checkpoint goes down before the drops do.
	s.floor = max(0, s.kept-countSlack(s.kept))
	if err := writeCount(s.dir, s.floor); err != nil {
		return fmt.Errorf("records: count checkpoint: %w", err)
	}
	if len(drop) == 0 {
		return nil
	}
	b, err := s.ds.Batch(ctx)
	if err != nil {
		return err
	}
	for _, k := range drop {
		if err := b.Delete(ctx, ds.RawKey(k)); err != nil {
			return err
		}
	}
	return b.Commit(ctx)
}

// lowerFloor lowers the count checkpoint before a deletion leaves after
// records on disk, when that is below it. The caller holds wmu.
func (s *Pebble) lowerFloor(after int) error {
	if after >= s.floor {
		return nil
	}
	floor := max(0, after-countSlack(after))
	if err := writeCount(s.dir, floor); err != nil {
		return fmt.Errorf("records: count checkpoint: %w", err)
	}
	s.floor = floor
	return nil
}

// raiseFloor moves the count checkpoint up to within the slack of the
// record count, so a loss of the records stored since is detected too.
// The caller holds wmu.
func (s *Pebble) raiseFloor() error {
	s.mu.RLock()
	n := s.x.records
	s.mu.RUnlock()
	floor := max(0, n-countSlack(n))
	if floor <= s.floor {
		return nil
	}
	if err := writeCount(s.dir, floor); err != nil {
		return fmt.Errorf("records: count checkpoint: %w", err)
	}
	s.floor = floor
	return nil
}

// Put implements Store. The record is on disk when Put returns nil.
func (s *Pebble) Put(ctx context.Context, e Entry) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	now := s.now()
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.RLock()
	if s.x == nil {
		s.mu.RUnlock()
		return ErrClosed
	}
	p, err := s.x.planPut(e, now, true)
	s.mu.RUnlock()
	if err != nil {
		return err
	}
	return s.write(ctx, p, e.Announcer)
}

// write persists p, then applies it to the index. The caller holds wmu.
func (s *Pebble) write(ctx context.Context, p plan, a peer.ID) error {
	var err error
	switch p.op {
	case opNone:
		return nil
	case opInsert, opReplace:
		if p.evicting {
			err = s.putEvicting(ctx, p, a)
			break
		}
		err = s.ds.Put(ctx, dsKey(p.key, a), encodeValue([]byte(p.s.envelope), p.s.ip))
	case opDelete:
		s.mu.RLock()
		after := s.x.records - 1
		s.mu.RUnlock()
		if err = s.lowerFloor(after); err == nil {
			err = s.ds.Delete(ctx, dsKey(p.key, a))
		}
	}
	if err != nil {
		return fmt.Errorf("records: persist: %w", err)
	}
	s.mu.Lock()
	s.x.apply(p)
	s.mu.Unlock()
	return nil
}

// putEvicting writes p's record and deletes the record it evicts in one
// batch. The caller holds wmu, so the victim is still there.
func (s *Pebble) putEvicting(ctx context.Context, p plan, a peer.ID) error {
	b, err := s.ds.Batch(ctx)
	if err != nil {
		return err
	}
	if err := b.Delete(ctx, dsKey(p.evict.ks.key, p.evict.announcer)); err != nil {
		return err
	}
	if err := b.Put(ctx, dsKey(p.key, a), encodeValue([]byte(p.s.envelope), p.s.ip)); err != nil {
		return err
	}
	return b.Commit(ctx)
}

// Get implements Store; it is served from memory.
func (s *Pebble) Get(ctx context.Context, k Key, want int) (Result, error) {
	return s.GetSalted(ctx, k, want, 0)
}

// GetSalted implements SaltedGetter.
func (s *Pebble) GetSalted(ctx context.Context, k Key, want int, salt uint64) (Result, error) {
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	now := s.now()
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.x == nil {
		return Result{}, ErrClosed
	}
	return s.x.get(k, want, now, salt), nil
}

// Remove implements Store.
func (s *Pebble) Remove(ctx context.Context, k Key, announcer peer.ID) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.RLock()
	if s.x == nil {
		s.mu.RUnlock()
		return ErrClosed
	}
	p := s.x.planRemove(k, announcer)
	s.mu.RUnlock()
	return s.write(ctx, p, announcer)
}

// List implements Store; it is served from memory.
func (s *Pebble) List(ctx context.Context, fn func(Entry) bool) error {
	return list(ctx, &s.mu, func() *index { return s.x }, s.now, fn)
}

// Expire implements Store. It deletes from disk in one synced batch.
func (s *Pebble) Expire(ctx context.Context) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	now := s.now()
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.RLock()
	if s.x == nil {
		s.mu.RUnlock()
		return 0, ErrClosed
	}
	refs := s.x.expired(now)
	s.mu.RUnlock()
	if len(refs) == 0 {
		// Expire runs every minute or so: the checkpoint follows.
		return 0, s.raiseFloor()
	}
	s.mu.RLock()
	after := s.x.records - len(refs)
	s.mu.RUnlock()
	if err := s.lowerFloor(after); err != nil {
		return 0, err
	}
	b, err := s.ds.Batch(ctx)
	if err != nil {
		return 0, fmt.Errorf("records: persist: %w", err)
	}
	for _, r := range refs {
		if err := b.Delete(ctx, dsKey(r.key, r.announcer)); err != nil {
			return 0, fmt.Errorf("records: persist: %w", err)
		}
	}
	if err := b.Commit(ctx); err != nil {
		return 0, fmt.Errorf("records: persist: %w", err)
	}
	s.mu.Lock()
	for _, r := range refs {
		s.x.apply(s.x.planRemove(r.key, r.announcer))
	}
	s.mu.Unlock()
	return len(refs), s.raiseFloor()
}

// Stats implements Store. A closed store holds nothing.
func (s *Pebble) Stats() Stats {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.x == nil {
		return Stats{}
	}
	return s.x.stats()
}

// Close waits for a write in progress, then closes the database. Later
// calls return ErrClosed; Close again returns nil.
func (s *Pebble) Close() error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.Lock()
	if s.x == nil {
		s.mu.Unlock()
		return nil
	}
	n := s.x.records
	s.x = nil
	s.mu.Unlock()
	if err := s.ds.Close(); err != nil {
		return fmt.Errorf("records: close: %w", err)
	}
	// Every record is on disk: the checkpoint is exact.
	if err := writeCount(s.dir, n); err != nil {
		return fmt.Errorf("records: count checkpoint: %w", err)
	}
	return nil
}

var b64 = base64.RawURLEncoding

func dsKey(k Key, a peer.ID) ds.Key {
	var sb strings.Builder
	sb.Grow(len(dsPrefix) + 2 + b64.EncodedLen(len(k.mh)) + b64.EncodedLen(len(a)))
	sb.WriteString(dsPrefix)
	sb.WriteByte('/')
	sb.WriteString(b64.EncodeToString([]byte(k.mh)))
	sb.WriteByte('/')
	sb.WriteString(b64.EncodeToString([]byte(a)))
	return ds.RawKey(sb.String())
}

// encodeValue is the datastore value of a record.
func encodeValue(envelope []byte, ip netip.Addr) []byte {
	ipb, _ := ip.MarshalBinary() // never fails
	b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(&pb.StoredEntry{Envelope: envelope, Ip: ipb})
	return b
}

// errBadValue is wrapped by every decodeValue error.
var errBadValue = errors.New("records: bad stored value")

// decodeValue parses a datastore value strictly. It does not open the
// envelope.
func decodeValue(b []byte) (envelope []byte, ip netip.Addr, err error) {
	var m pb.StoredEntry
	if err := proto.Unmarshal(b, &m); err != nil {
		return nil, netip.Addr{}, fmt.Errorf("%w: %w", errBadValue, err)
	}
	if len(m.ProtoReflect().GetUnknown()) > 0 {
		return nil, netip.Addr{}, fmt.Errorf("%w: unknown fields", errBadValue)
	}
	if len(m.Envelope) == 0 || len(m.Envelope) > MaxEnvelopeSize {
		return nil, netip.Addr{}, fmt.Errorf("%w: envelope of %d bytes", errBadValue, len(m.Envelope))
	}
	if err := ip.UnmarshalBinary(m.Ip); err != nil {
		return nil, netip.Addr{}, fmt.Errorf("%w: ip: %w", errBadValue, err)
	}
	return m.Envelope, ip, nil
}

// decodeStored turns a datastore entry back into the Entry it was written
// from: the value decodes, the envelope opens, and the datastore key is the
// record's.
func decodeStored(key string, value []byte) (Entry, error) {
	env, ip, err := decodeValue(value)
	if err != nil {
		return Entry{}, err
	}
	r, err := Open(env)
	if err != nil {
		return Entry{}, err
	}
	if want := dsKey(r.Key, r.Announcer).String(); key != want {
		return Entry{}, fmt.Errorf("%w: stored under %q, record is %q", errBadValue, key, want)
	}
	return Entry{Record: r, IP: ip, Envelope: env}, nil
}

// Busiest returns the n infohashes with the most unexpired records, most
// first, from memory. It is not part of Store: a status page uses it.
func (s *Pebble) Busiest(n int) []KeyCount {
	now := s.now()
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.x == nil {
		return nil
	}
	return s.x.busiest(n, now)
}
