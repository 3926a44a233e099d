package records

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io/fs"
	mrand "math/rand/v2"
	"net/netip"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// benchPool is a realistic population of sealed records: 100k records on
// 20k keys, 5 announcers per key, 2000 announcers with 50 keys each.
const (
	poolRecords    = 100_000
	poolPerKey     = 5
	poolAnnouncers = 2000
)

var (
	benchPoolOnce sync.Once
	benchPoolAll  []Entry
)

// benchPool seals the pool once per test binary; it takes a few seconds.
func benchPool(tb testing.TB) []Entry {
	benchPoolOnce.Do(func() { benchPoolAll = makeBenchPool(tb) })
	return benchPoolAll
}

func makeBenchPool(tb testing.TB) []Entry {
	ids := identities(tb, poolAnnouncers)
	exp := time.Now().Add(24 * time.Hour) // real clock: the pebble store loads on a real clock
	pool := make([]Entry, poolRecords)
	for i := range pool {
		j := i / poolPerKey
		id := ids[(j*poolPerKey+i%poolPerKey)%poolAnnouncers]
		r := Record{Key: testKey(tb, j), Announcer: id.id, Port: uint16(1024 + i%60000), Seed: i%3 == 0, Seq: 1, Expires: exp}
		env, err := Seal(r, id.priv)
		if err != nil {
			tb.Fatal(err)
		}
		// As Open would return it: the announcer in its own allocation.
		r.Announcer = peer.ID(string([]byte(r.Announcer)))
		// Each announcer from an address of its own, as on the internet.
		a := (j*poolPerKey + i%poolPerKey) % poolAnnouncers
		pool[i] = Entry{Record: r, IP: netip.AddrFrom4([4]byte{100, 64, byte(a >> 8), byte(a)}), Envelope: env}
	}
	return pool
}

// benchStore opens an empty store for a benchmark; dir is where a
// persistent store keeps its files, "" for memory. fast skips fsyncs.
type benchStore func(b *testing.B, opts Options, fast bool) (s Store, dir string)

func BenchmarkStore(b *testing.B) {
	b.Run("memory", func(b *testing.B) {
		runStoreBench(b, func(b *testing.B, opts Options, _ bool) (Store, string) {
			s := NewMemory(opts)
			b.Cleanup(func() { s.Close() })
			return s, ""
		})
	})
	b.Run("pebble", func(b *testing.B) {
		runStoreBench(b, func(b *testing.B, opts Options, fast bool) (Store, string) {
			dir := b.TempDir()
			wo := pebble.Sync
			if fast {
				wo = pebble.NoSync
			}
			s, err := openPebble(dir, opts, wo)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { s.Close() })
			return s, dir
		})
	})
}

// runStoreBench is the benchmark suite every Store implementation runs.
func runStoreBench(b *testing.B, open benchStore) {
	ctx := context.Background()
	pool := benchPool(b)

	// Put: a republish, the common write. The envelope is the stored one;
	// Put does not look inside it, only at the higher seq.
	b.Run("Put", func(b *testing.B) {
		s, _ := open(b, Options{Limits: DefaultLimits()}, false)
		const n = 10_000
		for _, e := range pool[:n] {
			if err := s.Put(ctx, e); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportAllocs()
		seq := uint64(1)
		for b.Loop() {
			seq++
			e := pool[seq%n]
			e.Seq = seq
			if err := s.Put(ctx, e); err != nil {
				b.Fatal(err)
			}
		}
	})

	// Get: 50 of a popular key's 200 peers, a random choice every time.
	b.Run("Get", func(b *testing.B) {
		s, _ := open(b, Options{Limits: DefaultLimits()}, true)
		k := testKey(b, -1)
		ids := identities(b, 200)
		for i, id := range ids {
			r := rec(k, 1, time.Now().Add(time.Hour))
			r.Seed = i%4 == 0
			if err := s.Put(ctx, seal(b, id, r, netip.AddrFrom4([4]byte{100, 64, 0, byte(i)}))); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportAllocs()
		for b.Loop() {
			res, err := s.Get(ctx, k, 50)
			if err != nil || len(res.Entries) != 50 {
				b.Fatal(len(res.Entries), err)
			}
		}
	})

	// Size: what 100k records cost, in heap and (persistent stores) on disk.
	b.Run("Size", func(b *testing.B) {
		var heap, disk float64
		for b.Loop() {
			s, dir := open(b, Options{Limits: DefaultLimits()}, true)
			before := heapInUse()
			for _, e := range pool {
				if err := s.Put(ctx, e); err != nil {
					b.Fatal(err)
				}
			}
			heap = float64(heapInUse()-before) / poolRecords
			if st := s.Stats(); st.Records != poolRecords {
				b.Fatalf("stored %d records", st.Records)
			}
			s.Close()
			if dir != "" {
				disk = float64(dirSize(b, dir)) / poolRecords
			}
		}
		b.ReportMetric(heap, "heap-B/record")
		if disk > 0 {
			b.ReportMetric(disk, "disk-B/record")
		}
		b.ReportMetric(float64(len(pool[0].Envelope)), "envelope-B")
	})
}

func heapInUse() int64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse)
}

func dirSize(b *testing.B, dir string) int64 {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		n += fi.Size()
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	return n
}

// BenchmarkPebbleLoad is the startup cost of a store of 100k records: every
// envelope's signature is verified again.
func BenchmarkPebbleLoad(b *testing.B) {
	dir := b.TempDir()
	s, err := openPebble(dir, Options{}, pebble.NoSync)
	if err != nil {
		b.Fatal(err)
	}
	for _, e := range benchPool(b) {
		if err := s.Put(context.Background(), e); err != nil {
			b.Fatal(err)
		}
	}
	s.Close()
	for b.Loop() {
		s, err := OpenPebble(dir, Options{})
		if err != nil {
			b.Fatal(err)
		}
		if kept, dropped := s.Loaded(); kept != poolRecords || dropped != 0 {
			b.Fatalf("Loaded = %d, %d", kept, dropped)
		}
		s.Close()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/poolRecords, "ns/record")
}

// BenchmarkOpen is the cost of verifying a record, by key type.
func BenchmarkOpen(b *testing.B) {
	for _, tc := range []struct {
		name string
		gen  func() (crypto.PrivKey, crypto.PubKey, error)
	}{
		{"ed25519", func() (crypto.PrivKey, crypto.PubKey, error) { return crypto.GenerateEd25519Key(rand.Reader) }},
		{"secp256k1", func() (crypto.PrivKey, crypto.PubKey, error) { return crypto.GenerateSecp256k1Key(rand.Reader) }},
		{"ecdsa", func() (crypto.PrivKey, crypto.PubKey, error) { return crypto.GenerateECDSAKeyPair(rand.Reader) }},
		{"rsa2048", func() (crypto.PrivKey, crypto.PubKey, error) { return crypto.GenerateRSAKeyPair(2048, rand.Reader) }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			priv, _, err := tc.gen()
			if err != nil {
				b.Fatal(err)
			}
			id, err := peer.IDFromPrivateKey(priv)
			if err != nil {
				b.Fatal(err)
			}
			env, err := Seal(Record{Key: testKey(b, 1), Announcer: id, Port: 6881, Seq: 1, Expires: time.Now().Add(time.Hour)}, priv)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(env)))
			for b.Loop() {
				if _, err := Open(env); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkBytesPerRecord is what a stored record costs in heap (and, for
// pebble, on disk) at 100k and 1M records, in a realistic shape: 5 records
// per key, each announcer on 50 keys from an address of its own. Put does
// not look inside envelopes, so each record gets random bytes of a real
// envelope's length rather than a signature (signing a million records
// would take the whole run). The pebble store writes without fsync here.
//
//	go test -run '^$' -bench BytesPerRecord -benchtime 1x ./records
func BenchmarkBytesPerRecord(b *testing.B) {
	ctx := context.Background()
	real := benchPool(b)[0]
	envLen := len(real.Envelope)
	stores := []struct {
		name string
		open func(b *testing.B, opts Options) (Store, string)
	}{
		{"memory", func(b *testing.B, opts Options) (Store, string) { return NewMemory(opts), "" }},
		{"pebble", func(b *testing.B, opts Options) (Store, string) {
			dir := b.TempDir()
			s, err := openPebble(dir, opts, pebble.NoSync)
			if err != nil {
				b.Fatal(err)
			}
			return s, dir
		}},
	}
	for _, st := range stores {
		for _, n := range []int{100_000, 1_000_000} {
			b.Run(fmt.Sprintf("%s/%d", st.name, n), func(b *testing.B) {
				announcers := n / 50
				ids := make([]peer.ID, announcers)
				for i := range ids {
					// Real IDs are 38-byte identity multihashes of ed25519 keys.
					id := make([]byte, len(real.Announcer))
					copy(id, real.Announcer)
					binary.BigEndian.PutUint64(id[len(id)-8:], uint64(i))
					ids[i] = peer.ID(id)
				}
				rng := mrand.New(mrand.NewPCG(1, uint64(n)))
				exp := time.Now().Add(24 * time.Hour)
				var heap, disk float64
				for b.Loop() {
					before := heapInUse()
					s, dir := st.open(b, Options{Limits: Limits{Records: 2 * n}})
					env := make([]byte, envLen)
					for i := range n {
						j := i / poolPerKey
						a := (j*poolPerKey + i%poolPerKey) % announcers
						for k := range env {
							env[k] = byte(rng.Uint32())
						}
						e := Entry{
							Record: Record{Key: testKey(b, j), Announcer: ids[a], Port: uint16(1024 + i%60000), Seed: i%3 == 0, Seq: 1, Expires: exp},
							IP:     netip.AddrFrom4([4]byte{100, byte(a >> 16), byte(a >> 8), byte(a)}),
							// Put copies it.
							Envelope: env,
						}
						if err := s.Put(ctx, e); err != nil {
							b.Fatal(err)
						}
					}
					heap = float64(heapInUse()-before) / float64(n)
					if got := s.Stats(); got.Records != n {
						b.Fatalf("stored %d records", got.Records)
					}
					runtime.KeepAlive(s)
					s.Close()
					if dir != "" {
						disk = float64(dirSize(b, dir)) / float64(n)
					}
				}
				b.ReportMetric(heap, "heap-B/record")
				if disk > 0 {
					b.ReportMetric(disk, "disk-B/record")
				}
				b.ReportMetric(float64(envLen), "envelope-B")
			})
		}
	}
}

// BenchmarkPutFullKey is the cost of deciding a Put into a full infohash
// (the default 2,000 peers from 250 addresses): keyVictim walks the key's
// records once. Only the plan is made, so every iteration is such a Put.
func BenchmarkPutFullKey(b *testing.B) {
	const perKey, perIP = 2000, 8
	ids := identities(b, perKey+1)
	k := testKey(b, 1)
	x := newIndex(Options{Limits: Limits{PeersPerKey: perKey, PeersPerKeyPerIP: perIP}, Seed: 1})
	now := time.Now()
	for i := range perKey {
		e := seal(b, ids[i], rec(k, 1, now.Add(time.Hour)), netip.AddrFrom4([4]byte{203, 0, byte(i / perIP >> 8), byte(i / perIP)}))
		p, err := x.planPut(e, now, true)
		if err != nil {
			b.Fatal(err)
		}
		x.apply(p)
	}
	newcomer := seal(b, ids[perKey], rec(k, 1, now.Add(time.Hour)), netip.MustParseAddr("198.51.100.1"))
	b.ReportAllocs()
	for b.Loop() {
		if p, err := x.planPut(newcomer, now, true); err != nil || !p.evicting {
			b.Fatalf("plan %+v, %v", p, err)
		}
	}
}
