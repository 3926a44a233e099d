package records

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

func TestMemory(t *testing.T) {
	runStoreSuite(t, func(t *testing.T, opts Options) Store {
		s := NewMemory(opts)
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestPebble(t *testing.T) {
	runStoreSuite(t, func(t *testing.T, opts Options) Store {
		s, err := OpenPebble(t.TempDir(), opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// runStoreSuite is the conformance suite every Store implementation passes.
// open returns an empty store; the suite closes it when it wants to.
func runStoreSuite(t *testing.T, open func(t *testing.T, opts Options) Store) {
	ctx := context.Background()
	ids := identities(t, 12)
	k1, k2, k3 := testKey(t, 1), testKeyV2(t, 2), testKey(t, 3)

	// setup returns a fresh store on a fake clock.
	setup := func(t *testing.T, l Limits) (Store, *fakeClock) {
		c := newClock()
		return open(t, Options{Limits: l, Now: c.Now, Seed: 1}), c
	}
	put := func(t *testing.T, s Store, e Entry) {
		t.Helper()
		if err := s.Put(ctx, e); err != nil {
			t.Fatalf("Put(%s seq %d): %v", e.Announcer, e.Seq, err)
		}
	}
	get := func(t *testing.T, s Store, k Key, want int) Result {
		t.Helper()
		res, err := s.Get(ctx, k, want)
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		return res
	}
	expire := t0.Add(time.Hour)

	t.Run("PutGet", func(t *testing.T) {
		s, _ := setup(t, Limits{})
		r := rec(k1, 1, expire)
		r.Seed = true
		e := seal(t, ids[0], r, testIP)
		put(t, s, e)
		res := get(t, s, k1, 10)
		if len(res.Entries) != 1 || res.Seeds != 1 || res.Leechers != 0 || res.More {
			t.Fatalf("Get = %+v, want the one seed", res)
		}
		equalEntry(t, res.Entries[0], e)
		if got := res.Entries[0].Endpoint(); got != netip.AddrPortFrom(testIP, 6881) {
			t.Errorf("Endpoint = %v", got)
		}
		if res := get(t, s, k2, 10); len(res.Entries) != 0 || res.Seeds+res.Leechers != 0 || res.More {
			t.Errorf("Get(other key) = %+v, want nothing", res)
		}
		if st := s.Stats(); st != (Stats{Keys: 1, Records: 1}) {
			t.Errorf("Stats = %+v", st)
		}
	})

	t.Run("IPs", func(t *testing.T) {
		s, _ := setup(t, Limits{})
		ips := []netip.Addr{{}, netip.MustParseAddr("10.1.2.3"), netip.MustParseAddr("2001:db8::1"),
			netip.MustParseAddr("::ffff:10.1.2.3"), netip.MustParseAddr("fe80::1%eth0")}
		for i, ip := range ips {
			put(t, s, seal(t, ids[i], rec(k1, 1, expire), ip))
		}
		var got []netip.Addr
		for _, e := range get(t, s, k1, 10).Entries {
			got = append(got, e.IP)
		}
		slices.SortFunc(got, netip.Addr.Compare)
		slices.SortFunc(ips, netip.Addr.Compare)
		if !slices.Equal(got, ips) {
			t.Errorf("IPs = %v, want %v", got, ips)
		}
	})

	t.Run("EnvelopeCopies", func(t *testing.T) {
		s, _ := setup(t, Limits{})
		e := seal(t, ids[0], rec(k1, 1, expire), testIP)
		want := bytes.Clone(e.Envelope)
		put(t, s, e)
		e.Envelope[10] ^= 0xff // the caller's buffer is the caller's
		got := get(t, s, k1, 1).Entries[0].Envelope
		if !bytes.Equal(got, want) {
			t.Fatal("Put kept the caller's envelope buffer")
		}
		got[10] ^= 0xff
		if !bytes.Equal(get(t, s, k1, 1).Entries[0].Envelope, want) {
			t.Fatal("Get handed out the store's envelope buffer")
		}
	})

	t.Run("Seq", func(t *testing.T) {
		s, _ := setup(t, Limits{})
		put(t, s, seal(t, ids[0], rec(k1, 5, expire), testIP))
		for _, seq := range []uint64{4, 0} {
			if err := s.Put(ctx, seal(t, ids[0], rec(k1, seq, expire), testIP)); !errors.Is(err, ErrStale) {
				t.Errorf("Put(seq %d) after seq 5 = %v, want ErrStale", seq, err)
			}
		}
		// Equal seq, different content: stale.
		r := rec(k1, 5, expire)
		r.Port = 7000
		if err := s.Put(ctx, seal(t, ids[0], r, testIP)); !errors.Is(err, ErrStale) {
			t.Errorf("Put(equal seq, other port) = %v, want ErrStale", err)
		}
		r = rec(k1, 6, expire.Add(time.Minute))
		r.Port, r.Seed = 7000, true
		e6 := seal(t, ids[0], r, netip.MustParseAddr("192.0.2.99"))
		put(t, s, e6)
		res := get(t, s, k1, 10)
		if len(res.Entries) != 1 || res.Seeds != 1 {
			t.Fatalf("Get = %+v, want the one replaced record", res)
		}
		equalEntry(t, res.Entries[0], e6)
		if st := s.Stats(); st != (Stats{Keys: 1, Records: 1}) {
			t.Errorf("Stats = %+v", st)
		}
	})

	t.Run("Replay", func(t *testing.T) {
		s, _ := setup(t, Limits{PeersPerKey: 1, Keys: 1, KeysPerAnnouncer: 1})
		e := seal(t, ids[0], rec(k1, 3, expire), testIP)
		put(t, s, e)
		before := snapshot(t, s)
		for range 3 {
			if err := s.Put(ctx, e); err != nil {
				t.Fatalf("identical replay: %v", err)
			}
		}
		// The same envelope from another address is the same record.
		e.IP = netip.MustParseAddr("198.51.100.1")
		if err := s.Put(ctx, e); err != nil {
			t.Fatalf("identical replay from another IP: %v", err)
		}
		if after := snapshot(t, s); after != before {
			t.Errorf("replay changed the store:\n%s\nwant\n%s", after, before)
		}
	})

	t.Run("Withdraw", func(t *testing.T) {
		s, c := setup(t, Limits{})
		put(t, s, seal(t, ids[0], rec(k1, 2, expire), testIP))
		put(t, s, seal(t, ids[1], rec(k1, 1, expire), testIP))
		wd := func(id testIdentity, k Key, seq uint64) Entry {
			return seal(t, id, Record{Key: k, Seq: seq, Expires: expire, Withdrawn: true}, testIP)
		}
		for _, seq := range []uint64{1, 2} {
			if err := s.Put(ctx, wd(ids[0], k1, seq)); !errors.Is(err, ErrStale) {
				t.Errorf("withdraw seq %d over seq 2 = %v, want ErrStale", seq, err)
			}
		}
		put(t, s, wd(ids[0], k1, 3))
		// The tombstone replaces the record, is served, and counts as
		// neither seed nor leecher.
		res := get(t, s, k1, 10)
		live := 0
		for _, e := range res.Entries {
			switch {
			case e.Announcer == ids[0].id && (!e.Withdrawn || e.Seq != 3):
				t.Fatalf("announcer 0 served %+v, want its tombstone of seq 3", e.Record)
			case !e.Withdrawn:
				live++
			}
		}
		if len(res.Entries) != 2 || live != 1 || res.Leechers != 1 || res.Seeds != 0 {
			t.Fatalf("after withdraw: %+v, want announcer 1 and a tombstone, 1 leecher", res)
		}
		// The withdrawn record replayed, or any older one, loses to it.
		if err := s.Put(ctx, seal(t, ids[0], rec(k1, 2, expire), testIP)); !errors.Is(err, ErrStale) {
			t.Errorf("withdrawn record replayed = %v, want ErrStale", err)
		}
		// Withdrawing what is not stored stores the tombstone, so that the
		// record, arriving late, loses to it.
		put(t, s, wd(ids[2], k1, 5))
		put(t, s, wd(ids[2], k2, 1))
		if err := s.Put(ctx, seal(t, ids[2], rec(k1, 4, expire), testIP)); !errors.Is(err, ErrStale) {
			t.Errorf("record older than its tombstone = %v, want ErrStale", err)
		}
		if st := s.Stats(); st != (Stats{Keys: 2, Records: 4}) {
			t.Errorf("Stats = %+v, want 2 keys 4 records (3 tombstones)", st)
		}
		// A newer record replaces the tombstone.
		put(t, s, seal(t, ids[0], rec(k1, 4, expire), testIP))
		if res := get(t, s, k1, 0); res.Leechers != 2 {
			t.Errorf("after re-announce: %d leechers, want 2", res.Leechers)
		}
		// Tombstones expire like records.
		c.Advance(2 * time.Hour)
		if n, err := s.Expire(ctx); err != nil || n != 4 {
			t.Errorf("Expire = %d, %v; want 4", n, err)
		}
	})

	t.Run("Expiry", func(t *testing.T) {
		s, c := setup(t, Limits{})
		put(t, s, seal(t, ids[0], rec(k1, 1, t0.Add(time.Minute)), testIP))
		put(t, s, seal(t, ids[1], rec(k1, 1, t0.Add(2*time.Minute)), testIP))
		put(t, s, seal(t, ids[2], rec(k2, 1, t0.Add(time.Minute)), testIP))
		if err := s.Put(ctx, seal(t, ids[3], rec(k1, 1, t0), testIP)); !errors.Is(err, ErrExpired) {
			t.Errorf("Put(expires now) = %v, want ErrExpired", err)
		}
		if err := s.Put(ctx, seal(t, ids[3], rec(k1, 1, t0.Add(-time.Hour)), testIP)); !errors.Is(err, ErrExpired) {
			t.Errorf("Put(expired) = %v, want ErrExpired", err)
		}
		c.Advance(time.Minute) // exactly at the first expiry: gone
		res := get(t, s, k1, 10)
		if len(res.Entries) != 1 || res.Leechers != 1 || res.Entries[0].Announcer != ids[1].id {
			t.Errorf("Get at expiry = %+v, want only announcer 1", res)
		}
		if res := get(t, s, k2, 10); len(res.Entries) != 0 || res.Leechers != 0 {
			t.Errorf("Get(expired key) = %+v, want nothing", res)
		}
		if got := listAll(t, s); len(got) != 1 {
			t.Errorf("List = %d entries, want 1", len(got))
		}
		if st := s.Stats(); st != (Stats{Keys: 2, Records: 3}) {
			t.Errorf("Stats before Expire = %+v, want expired ones counted", st)
		}
		// An expired record is replaced whatever the seq.
		put(t, s, seal(t, ids[2], rec(k2, 0, t0.Add(time.Hour)), testIP))
		n, err := s.Expire(ctx)
		if err != nil || n != 1 {
			t.Fatalf("Expire = %d, %v; want 1", n, err)
		}
		if st := s.Stats(); st != (Stats{Keys: 2, Records: 2}) {
			t.Errorf("Stats after Expire = %+v", st)
		}
		c.Advance(time.Hour)
		if n, err := s.Expire(ctx); err != nil || n != 2 {
			t.Fatalf("Expire = %d, %v; want 2", n, err)
		}
		if n, err := s.Expire(ctx); err != nil || n != 0 {
			t.Fatalf("Expire again = %d, %v; want 0", n, err)
		}
		if st := s.Stats(); st != (Stats{}) {
			t.Errorf("Stats = %+v, want empty", st)
		}
	})

	t.Run("MaxTTL", func(t *testing.T) {
		c := newClock()
		s := open(t, Options{Now: c.Now, MaxTTL: time.Hour})
		put(t, s, seal(t, ids[0], rec(k1, 1, t0.Add(time.Hour+MaxClockSkew)), testIP))
		err := s.Put(ctx, seal(t, ids[1], rec(k1, 1, t0.Add(time.Hour+MaxClockSkew+time.Millisecond)), testIP))
		if !errors.Is(err, ErrTooFarAhead) {
			t.Errorf("Put beyond MaxTTL = %v, want ErrTooFarAhead", err)
		}
	})

	t.Run("Caps", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			limits Limits
			fill   [][2]int // (identity, key) pairs that fit
			over   [2]int   // the one that does not
			want   error
			fits   [][2]int // still accepted at the cap
		}{
			{"PeersPerKey", Limits{PeersPerKey: 2, NoKeyEviction: true}, [][2]int{{0, 1}, {1, 1}}, [2]int{2, 1}, ErrKeyFull, [][2]int{{0, 1}, {2, 2}}},
			{"KeysPerAnnouncer", Limits{KeysPerAnnouncer: 2}, [][2]int{{0, 1}, {0, 2}}, [2]int{0, 3}, ErrAnnouncerFull, [][2]int{{1, 3}, {0, 1}}},
			{"RecordsPerIP", Limits{RecordsPerIP: 2}, [][2]int{{0, 1}, {1, 2}}, [2]int{2, 3}, ErrIPFull, [][2]int{{0, 1}, {1, 2}}},
			{"PeersPerKeyPerIP", Limits{PeersPerKeyPerIP: 2}, [][2]int{{0, 1}, {1, 1}}, [2]int{2, 1}, ErrKeyIPFull, [][2]int{{0, 1}, {2, 2}}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				s, _ := setup(t, tc.limits)
				keys := []Key{{}, k1, k2, k3}
				seq := uint64(1)
				entry := func(p [2]int) Entry {
					seq++ // a replacement by the same announcer needs a higher seq
					return seal(t, ids[p[0]], rec(keys[p[1]], seq, expire), testIP)
				}
				for _, p := range tc.fill {
					put(t, s, entry(p))
				}
				before := snapshot(t, s)
				if err := s.Put(ctx, entry(tc.over)); !errors.Is(err, tc.want) {
					t.Fatalf("Put over the cap = %v, want %v", err, tc.want)
				}
				if after := snapshot(t, s); after != before {
					t.Fatalf("failed Put changed the store:\n%s\nwant\n%s", after, before)
				}
				for _, p := range tc.fits {
					put(t, s, entry(p))
				}
				// Freeing a place lets the rejected one in.
				for _, p := range tc.fill {
					if err := s.Remove(ctx, keys[p[1]], ids[p[0]].id); err != nil {
						t.Fatal(err)
					}
				}
				put(t, s, entry(tc.over))
			})
		}
	})

	// KeyFill: Sybils at many addresses (or one IPv6 /56), each within
	// PeersPerKeyPerIP, fill an infohash; a new address still gets in, by
	// evicting from the heaviest group. The control, NoKeyEviction, shows
	// the fill censoring the swarm. The cap is scaled down from the
	// default 2,000 (250 IPv4 addresses of 8) to 200 (25 of 8).
	t.Run("KeyFill", func(t *testing.T) {
		const perKey, perIP, sybils = 200, 8, 25
		many := identities(t, perKey+8)
		honestIP := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{198, 51, 100, byte(i + 1)}) }
		v4 := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{203, 0, 113, byte(i)}) }
		v6 := func(i int) netip.Addr { // 25 /64s of one /56
			return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0xab, byte(i), 15: 1})
		}
		for _, tc := range []struct {
			name    string
			sybil   func(int) netip.Addr
			control bool
		}{
			{"IPv4", v4, false},
			{"IPv6/56", v6, false},
			{"IPv4/NoKeyEviction", v4, true},
		} {
			t.Run(tc.name, func(t *testing.T) {
				l := Limits{PeersPerKey: perKey, PeersPerKeyPerIP: perIP, NoKeyEviction: tc.control}
				s, _ := setup(t, l)
				// Two honest peers first, expiring sooner than the Sybils.
				for i := range 2 {
					put(t, s, seal(t, many[i], rec(k1, 1, t0.Add(10*time.Minute)), honestIP(i)))
				}
				for i := 2; i < perKey; i++ {
					put(t, s, seal(t, many[i], rec(k1, 1, expire), tc.sybil(i%sybils)))
				}
				if n := get(t, s, k1, 0); n.Leechers != perKey {
					t.Fatalf("filled to %d, want %d", n.Leechers, perKey)
				}
				newcomer := seal(t, many[perKey], rec(k1, 1, expire), honestIP(7))
				err := s.Put(ctx, newcomer)
				if tc.control {
					if !errors.Is(err, ErrKeyFull) {
						t.Fatalf("control: a new address into a full key = %v, want ErrKeyFull (the censorship)", err)
					}
					return
				}
				if err != nil {
					t.Fatalf("a new address into a full key = %v, want it stored", err)
				}
				// A Sybil's next record, from a fresh address, evicts a
				// Sybil's, never an honest one.
				put(t, s, seal(t, many[perKey+1], rec(k1, 1, expire), tc.sybil(sybils)))
				res := get(t, s, k1, perKey)
				honest := 0
				for _, e := range res.Entries {
					if e.IP.Is4() && e.IP.As4()[0] == 198 {
						honest++
					}
				}
				if honest != 3 || len(res.Entries) != perKey {
					t.Errorf("after the fill: %d honest of %d stored, want 3 of %d", honest, len(res.Entries), perKey)
				}
				if st := s.Stats(); st.Evicted != 2 {
					t.Errorf("Evicted = %d, want 2", st.Evicted)
				}
				checkInvariants(t, s, l)
			})
		}
	})

	t.Run("ExemptAddresses", func(t *testing.T) {
		l := Limits{RecordsPerIP: 1, PeersPerKeyPerIP: 1, Exempt: []netip.Prefix{netip.PrefixFrom(testIP, 32)}}
		s, _ := setup(t, l)
		for i, k := range []Key{k1, k1, k2, k3} {
			put(t, s, seal(t, ids[i], rec(k, 1, expire), testIP))
		}
		other := netip.MustParseAddr("198.51.100.1")
		put(t, s, seal(t, ids[5], rec(k1, 1, expire), other))
		if err := s.Put(ctx, seal(t, ids[6], rec(k2, 1, expire), other)); !errors.Is(err, ErrIPFull) {
			t.Errorf("second record from a capped address = %v, want ErrIPFull", err)
		}
		// IPv6 addresses count by /64.
		a1, a2 := netip.MustParseAddr("2001:db8:1:2::1"), netip.MustParseAddr("2001:db8:1:2:ffff::9")
		put(t, s, seal(t, ids[7], rec(k1, 1, expire), a1))
		if err := s.Put(ctx, seal(t, ids[8], rec(k2, 1, expire), a2)); !errors.Is(err, ErrIPFull) {
			t.Errorf("record from the same /64 = %v, want ErrIPFull", err)
		}
	})

	t.Run("Evict", func(t *testing.T) {
		a := netip.MustParseAddr("192.0.2.1")
		b := netip.MustParseAddr("198.51.100.1")
		s, _ := setup(t, Limits{Records: 4})
		// a holds three records expiring at +1h, +2h, +3h; b one.
		for i := range 3 {
			put(t, s, seal(t, ids[i], rec(testKey(t, 10+i), 1, t0.Add(time.Duration(i+1)*time.Hour)), a))
		}
		put(t, s, seal(t, ids[3], rec(k1, 1, expire), b))
		// Full: b's next record evicts a's soonest-expiring one, not b's.
		put(t, s, seal(t, ids[4], rec(k2, 1, expire), b))
		if st := s.Stats(); st.Records != 4 || st.Evicted != 1 {
			t.Fatalf("Stats = %+v, want 4 records, 1 evicted", st)
		}
		if res := get(t, s, testKey(t, 10), 1); len(res.Entries) != 0 {
			t.Errorf("a's soonest-expiring record survived")
		}
		// a is now as heavy as b with its next record counted: it evicts
		// its own.
		put(t, s, seal(t, ids[5], rec(k3, 1, expire), a))
		if res := get(t, s, testKey(t, 11), 1); len(res.Entries) != 0 {
			t.Errorf("a's next soonest-expiring record survived")
		}
		for _, k := range []Key{k1, k2} {
			if res := get(t, s, k, 1); len(res.Entries) != 1 {
				t.Errorf("b's record for %s was evicted", k)
			}
		}
		if st := s.Stats(); st.Records != 4 || st.Evicted != 2 {
			t.Fatalf("Stats = %+v, want 4 records, 2 evicted", st)
		}
		checkInvariants(t, s, Limits{Records: 4})
	})

	t.Run("EvictNeverOwn", func(t *testing.T) {
		a := netip.MustParseAddr("192.0.2.1")
		s, _ := setup(t, Limits{Records: 2})
		own := seal(t, ids[0], rec(k1, 1, t0.Add(time.Minute)), netip.Addr{})
		put(t, s, own)
		put(t, s, seal(t, ids[1], rec(k2, 1, expire), a))
		put(t, s, seal(t, ids[0], rec(k2, 1, expire), netip.Addr{})) // evicts a's
		if err := s.Put(ctx, seal(t, ids[0], rec(k3, 1, expire), netip.Addr{})); !errors.Is(err, ErrStoreFull) {
			t.Errorf("Put with only our own records stored = %v, want ErrStoreFull", err)
		}
		if st := s.Stats(); st.Records != 2 || st.Evicted != 1 {
			t.Errorf("Stats = %+v", st)
		}
	})

	t.Run("EvictKeys", func(t *testing.T) {
		a := netip.MustParseAddr("192.0.2.1")
		b := netip.MustParseAddr("198.51.100.1")
		s, _ := setup(t, Limits{Keys: 2})
		put(t, s, seal(t, ids[0], rec(k1, 1, expire), a))
		put(t, s, seal(t, ids[1], rec(k1, 1, expire), b))
		put(t, s, seal(t, ids[1], rec(k2, 1, expire), b))
		// a's only record shares its key: evicting it frees no key.
		if err := s.Put(ctx, seal(t, ids[0], rec(k3, 1, expire), a)); !errors.Is(err, ErrStoreFull) {
			t.Fatalf("Put of a new key = %v, want ErrStoreFull", err)
		}
		// b's record for k2 is its key's last: b's new key replaces it.
		put(t, s, seal(t, ids[1], rec(k3, 1, expire), b))
		if res := get(t, s, k2, 1); len(res.Entries) != 0 {
			t.Error("k2 survived")
		}
		if st := s.Stats(); st.Keys != 2 || st.Records != 3 || st.Evicted != 1 {
			t.Errorf("Stats = %+v", st)
		}
	})

	t.Run("Want", func(t *testing.T) {
		s, _ := setup(t, Limits{})
		const n = 10
		for i := range n {
			r := rec(k1, 1, expire)
			r.Seed = i < 3
			put(t, s, seal(t, ids[i], r, testIP))
		}
		for _, tc := range []struct {
			want, n int
			more    bool
		}{{-1, 0, true}, {0, 0, true}, {1, 1, true}, {3, 3, true}, {9, 9, true}, {10, 10, false}, {1000, 10, false}} {
			res := get(t, s, k1, tc.want)
			if len(res.Entries) != tc.n || res.More != tc.more || res.Seeds != 3 || res.Leechers != 7 {
				t.Errorf("Get(want %d) = %d entries, more %v, %d seeds, %d leechers; want %d, %v, 3, 7",
					tc.want, len(res.Entries), res.More, res.Seeds, res.Leechers, tc.n, tc.more)
			}
			seen := map[peer.ID]bool{}
			for _, e := range res.Entries {
				if seen[e.Announcer] {
					t.Errorf("Get(want %d) returned %s twice", tc.want, e.Announcer)
				}
				seen[e.Announcer] = true
			}
		}
		// The choice is uniform: each of 10 records is in a want-3 answer
		// 30% of the time.
		count := map[peer.ID]int{}
		const gets = 6000
		for range gets {
			for _, e := range get(t, s, k1, 3).Entries {
				count[e.Announcer]++
			}
		}
		for i := range n {
			if c := count[ids[i].id]; c < gets*3/n*85/100 || c > gets*3/n*115/100 {
				t.Errorf("record %d chosen %d times in %d gets, want about %d", i, c, gets, gets*3/n)
			}
		}
	})

	t.Run("ListRemove", func(t *testing.T) {
		s, c := setup(t, Limits{})
		var all []Entry
		for i := range 6 {
			e := seal(t, ids[i], rec([]Key{k1, k2, k3}[i%3], 1, expire), testIP)
			put(t, s, e)
			all = append(all, e)
		}
		put(t, s, seal(t, ids[6], rec(k1, 1, t0.Add(time.Minute)), testIP))
		c.Advance(time.Minute)
		got := listAll(t, s)
		if len(got) != len(all) {
			t.Fatalf("List = %d entries, want %d", len(got), len(all))
		}
		for _, e := range all {
			i := slices.IndexFunc(got, func(g Entry) bool { return g.Key == e.Key && g.Announcer == e.Announcer })
			if i < 0 {
				t.Fatalf("List misses %s/%s", e.Key, e.Announcer)
			}
			equalEntry(t, got[i], e)
		}
		calls := 0
		if err := s.List(ctx, func(Entry) bool { calls++; return calls < 2 }); err != nil || calls != 2 {
			t.Errorf("List stopping at 2: %d calls, %v", calls, err)
		}
		// fn may call back into the store.
		if err := s.List(ctx, func(e Entry) bool { return s.Remove(ctx, e.Key, e.Announcer) == nil }); err != nil {
			t.Fatal(err)
		}
		if got := listAll(t, s); len(got) != 0 {
			t.Errorf("List after removing everything = %d entries", len(got))
		}
		if err := s.Remove(ctx, k1, ids[9].id); err != nil {
			t.Errorf("Remove(absent) = %v", err)
		}
		if st := s.Stats(); st != (Stats{Keys: 1, Records: 1}) {
			t.Errorf("Stats = %+v, want the expired record only", st)
		}
	})

	t.Run("Concurrent", func(t *testing.T) {
		s, c := setup(t, Limits{PeersPerKey: 4, Keys: 6, KeysPerAnnouncer: 5})
		const workers, rounds = 6, 4
		keys := []Key{k1, k2, k3, testKey(t, 4), testKey(t, 5), testKey(t, 6), testKey(t, 7)}
		entries := make([][]Entry, workers) // pre-sealed: signing is slow under -race
		for w := range workers {
			for r := range rounds {
				for ki, k := range keys {
					entries[w] = append(entries[w], seal(t, ids[w], rec(k, uint64(r*len(keys)+ki+1), t0.Add(time.Duration(r+1)*time.Minute)), testIP))
				}
			}
		}
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				for i, e := range entries[w] {
					err := s.Put(ctx, e)
					if err != nil && !errors.Is(err, ErrKeyFull) && !errors.Is(err, ErrStoreFull) &&
						!errors.Is(err, ErrAnnouncerFull) && !errors.Is(err, ErrStale) && !errors.Is(err, ErrExpired) {
						t.Errorf("Put: %v", err)
					}
					if _, err := s.Get(ctx, e.Key, 2); err != nil {
						t.Errorf("Get: %v", err)
					}
					if i%5 == 0 {
						if err := s.Remove(ctx, e.Key, e.Announcer); err != nil {
							t.Errorf("Remove: %v", err)
						}
					}
					if i%7 == 0 {
						if _, err := s.Expire(ctx); err != nil {
							t.Errorf("Expire: %v", err)
						}
						if err := s.List(ctx, func(Entry) bool { return true }); err != nil {
							t.Errorf("List: %v", err)
						}
						s.Stats()
					}
				}
			})
		}
		wg.Go(func() {
			for range 20 {
				c.Advance(5 * time.Second)
				time.Sleep(time.Millisecond)
			}
		})
		wg.Wait()
		checkInvariants(t, s, Limits{PeersPerKey: 4, Keys: 6, KeysPerAnnouncer: 5})
	})

	t.Run("Closed", func(t *testing.T) {
		s, _ := setup(t, Limits{})
		e := seal(t, ids[0], rec(k1, 1, expire), testIP)
		put(t, s, e)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Errorf("second Close = %v", err)
		}
		if err := s.Put(ctx, e); !errors.Is(err, ErrClosed) {
			t.Errorf("Put = %v", err)
		}
		if _, err := s.Get(ctx, k1, 1); !errors.Is(err, ErrClosed) {
			t.Errorf("Get = %v", err)
		}
		if err := s.Remove(ctx, k1, ids[0].id); !errors.Is(err, ErrClosed) {
			t.Errorf("Remove = %v", err)
		}
		if err := s.List(ctx, func(Entry) bool { return true }); !errors.Is(err, ErrClosed) {
			t.Errorf("List = %v", err)
		}
		if _, err := s.Expire(ctx); !errors.Is(err, ErrClosed) {
			t.Errorf("Expire = %v", err)
		}
		if st := s.Stats(); st != (Stats{}) {
			t.Errorf("Stats = %+v", st)
		}
	})

	t.Run("Canceled", func(t *testing.T) {
		s, _ := setup(t, Limits{})
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if err := s.Put(cctx, seal(t, ids[0], rec(k1, 1, expire), testIP)); !errors.Is(err, context.Canceled) {
			t.Errorf("Put = %v", err)
		}
		if st := s.Stats(); st != (Stats{}) {
			t.Errorf("canceled Put stored something: %+v", st)
		}
	})

	t.Run("BadEntry", func(t *testing.T) {
		s, _ := setup(t, Limits{})
		good := seal(t, ids[0], rec(k1, 1, expire), testIP)
		for name, mod := range map[string]func(*Entry){
			"zero key":     func(e *Entry) { e.Key = Key{} },
			"no announcer": func(e *Entry) { e.Announcer = "" },
			"port 0":       func(e *Entry) { e.Port = 0 },
			"no envelope":  func(e *Entry) { e.Envelope = nil },
		} {
			e := good
			mod(&e)
			if err := s.Put(ctx, e); !errors.Is(err, ErrMalformed) {
				t.Errorf("Put(%s) = %v, want ErrMalformed", name, err)
			}
		}
	})
}

// equalEntry compares what a store must preserve.
func equalEntry(t *testing.T, got, want Entry) {
	t.Helper()
	if got.Key != want.Key || got.Announcer != want.Announcer || got.Port != want.Port ||
		got.Seed != want.Seed || got.Seq != want.Seq || !got.Expires.Equal(want.Expires) ||
		got.Withdrawn != want.Withdrawn || got.IP != want.IP || !bytes.Equal(got.Envelope, want.Envelope) {
		t.Errorf("entry\n got %+v\nwant %+v", got, want)
	}
}

func listAll(t *testing.T, s Store) []Entry {
	t.Helper()
	var es []Entry
	if err := s.List(context.Background(), func(e Entry) bool { es = append(es, e); return true }); err != nil {
		t.Fatalf("List: %v", err)
	}
	return es
}

// snapshot renders everything a store holds, for before/after comparisons.
func snapshot(t *testing.T, s Store) string {
	t.Helper()
	var lines []string
	for _, e := range listAll(t, s) {
		lines = append(lines, fmt.Sprintf("%s %s %d %v %d %d %s %x", e.Key, e.Announcer, e.Port, e.Seed, e.Seq, e.Expires.UnixMilli(), e.IP, e.Envelope))
	}
	slices.Sort(lines)
	return fmt.Sprintf("%+v\n%s", s.Stats(), lines)
}

// checkInvariants sweeps s, then checks the limits hold and Stats agrees
// with List.
func checkInvariants(t *testing.T, s Store, l Limits) {
	t.Helper()
	ctx := context.Background()
	if _, err := s.Expire(ctx); err != nil {
		t.Fatal(err)
	}
	perKey := map[Key]int{}
	perAnn := map[peer.ID]int{}
	n := 0
	for _, e := range listAll(t, s) {
		perKey[e.Key]++
		perAnn[e.Announcer]++
		n++
	}
	st := s.Stats()
	if st.Keys != len(perKey) || st.Records != n {
		t.Errorf("Stats %+v, List has %d keys %d records", st, len(perKey), n)
	}
	if l.Keys > 0 && len(perKey) > l.Keys {
		t.Errorf("%d keys over the cap %d", len(perKey), l.Keys)
	}
	for k, c := range perKey {
		if l.PeersPerKey > 0 && c > l.PeersPerKey {
			t.Errorf("key %s has %d peers, cap %d", k, c, l.PeersPerKey)
		}
	}
	for a, c := range perAnn {
		if l.KeysPerAnnouncer > 0 && c > l.KeysPerAnnouncer {
			t.Errorf("announcer %s has %d keys, cap %d", a, c, l.KeysPerAnnouncer)
		}
	}
}
