package records

import (
	"context"
	"errors"
	"net/netip"
	"reflect"
	"slices"
	"testing"
	"time"
)

func eps(ss ...string) []netip.AddrPort {
	out := make([]netip.AddrPort, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddrPort(s)
	}
	return out
}

func bridgedRec(k Key, seq uint64, expires time.Time, endpoints ...string) Record {
	return Record{Key: k, Seq: seq, Expires: expires, Bridged: true, Endpoints: eps(endpoints...)}
}

func TestBridgedRecord(t *testing.T) {
	id := newIdentity(t, 1)
	k := testKey(t, 1)
	exp := t0.Add(10 * time.Minute)

	// A bridged record round-trips, with and without a client of its own.
	for _, r := range []Record{
		bridgedRec(k, 1, exp, "10.0.0.1:1", "[2001:db8::1]:65535"),
		{Key: k, Port: 6881, Seq: 2, Expires: exp, Seed: true, Bridged: true, Endpoints: eps("198.51.100.1:6881")},
	} {
		r.Announcer = id.id
		env, err := Seal(r, id.priv)
		if err != nil {
			t.Fatalf("Seal(%+v): %v", r, err)
		}
		back, err := Open(env)
		if err == nil && back.Expires.Equal(r.Expires) {
			back.Expires = r.Expires
		}
		if err != nil || !reflect.DeepEqual(back, r) {
			t.Fatalf("Open = %+v, %v; want %+v", back, err, r)
		}
	}
	// The most endpoints still seal within MaxEnvelopeSize, all IPv6.
	var many []string
	for i := range MaxEndpoints {
		many = append(many, netip.AddrPortFrom(netip.AddrFrom16([16]byte{0x20, 1, 0xd, 0xb8, 15: byte(i)}), 60000).String())
	}
	big := bridgedRec(k, 1, exp, many...)
	big.Announcer = id.id
	if _, err := Seal(big, id.priv); err != nil {
		t.Fatalf("Seal with %d IPv6 endpoints: %v", MaxEndpoints, err)
	}

	for name, r := range map[string]Record{
		"endpoints without bridged": {Key: k, Port: 1, Seq: 1, Expires: exp, Endpoints: eps("10.0.0.1:1")},
		"bridged without endpoints": {Key: k, Port: 1, Seq: 1, Expires: exp, Bridged: true},
		"too many endpoints":        bridgedRec(k, 1, exp, append(many, "10.0.0.1:1")...),
		"duplicate endpoint":        bridgedRec(k, 1, exp, "10.0.0.1:1", "10.0.0.1:1"),
		"endpoint port 0":           bridgedRec(k, 1, exp, "10.0.0.1:0"),
		"unspecified endpoint":      bridgedRec(k, 1, exp, "0.0.0.0:1"),
		"multicast endpoint":        bridgedRec(k, 1, exp, "224.0.0.1:1"),
		"mapped endpoint":           bridgedRec(k, 1, exp, "[::ffff:10.0.0.1]:1"),
	} {
		r.Announcer = id.id
		if _, err := Seal(r, id.priv); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: Seal = %v, want ErrMalformed", name, err)
		}
	}

	// Bridged records live at most MaxBridgedTTL, whatever the caller's
	// maximum; plain records keep theirs.
	long := bridgedRec(k, 1, t0.Add(MaxBridgedTTL+MaxClockSkew+time.Second), "10.0.0.1:1")
	if err := long.Validate(t0, 2*time.Hour); !errors.Is(err, ErrTooFarAhead) {
		t.Errorf("bridged record beyond MaxBridgedTTL: %v", err)
	}
	if err := rec(k, 1, long.Expires).Validate(t0, 2*time.Hour); err != nil {
		t.Errorf("plain record: %v", err)
	}
}

// An endpoint's wire form is strict: 6 or 18 bytes, canonical.
func TestDecodeEndpoint(t *testing.T) {
	for _, b := range [][]byte{nil, {1, 2, 3, 4, 5}, {10, 0, 0, 1, 0, 0}, append(netip.MustParseAddr("::ffff:10.0.0.1").AsSlice(), 0, 1)} {
		if _, err := decodeEndpoint(b); err == nil {
			t.Errorf("decodeEndpoint(%x) accepted", b)
		}
	}
	ep, err := decodeEndpoint([]byte{10, 0, 0, 1, 0x1a, 0xe1})
	if err != nil || ep != netip.MustParseAddrPort("10.0.0.1:6881") {
		t.Errorf("decodeEndpoint = %v, %v", ep, err)
	}
}

func TestMemoryBridged(t *testing.T) {
	runBridgedSuite(t, func(t *testing.T, opts Options) Store {
		s := NewMemory(opts)
		t.Cleanup(func() { s.Close() })
		return s
	}, nil)
}

func TestPebbleBridged(t *testing.T) {
	dir := t.TempDir()
	runBridgedSuite(t, func(t *testing.T, opts Options) Store {
		s, err := OpenPebble(dir, opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}, func(t *testing.T, s Store, opts Options) Store {
		s.Close()
		s2, err := OpenPebble(dir, opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s2.Close() })
		return s2
	})
}

// runBridgedSuite checks what a store does with bridged records; reopen,
// when not nil, closes the store and opens it again from disk.
func runBridgedSuite(t *testing.T, open func(t *testing.T, opts Options) Store, reopen func(t *testing.T, s Store, opts Options) Store) {
	ctx := context.Background()
	ids := identities(t, 6)
	k, k2, k3, k4 := testKey(t, 1), testKey(t, 2), testKey(t, 3), testKey(t, 4)
	clock := newClock()
	limits := Limits{BridgedPerKey: 2, BridgedKeysPerAnnouncer: 2, PeersPerKey: 10}
	opts := Options{Limits: limits, Now: clock.Now, Seed: 1}
	s := open(t, opts)
	exp := t0.Add(10 * time.Minute)

	put := func(e Entry) error { return s.Put(ctx, e) }
	mustPut := func(e Entry) {
		t.Helper()
		if err := put(e); err != nil {
			t.Fatalf("Put(%s seq %d): %v", e.Announcer, e.Seq, err)
		}
	}
	// A plain record, a bridged one with a client of its own, one without.
	mustPut(seal(t, ids[0], rec(k, 1, exp), testIP))
	own := Record{Key: k, Port: 7000, Seq: 1, Expires: exp, Seed: true, Bridged: true, Endpoints: eps("10.0.0.1:1", "10.0.0.2:2")}
	mustPut(seal(t, ids[1], own, testIP))
	mustPut(seal(t, ids[2], bridgedRec(k, 1, exp, "10.0.0.3:3"), testIP))

	check := func(when string) {
		t.Helper()
		res, err := s.Get(ctx, k, 10)
		if err != nil {
			t.Fatal(err)
		}
		// The bridged record without a client counts neither way.
		if len(res.Entries) != 3 || res.Seeds != 1 || res.Leechers != 1 {
			t.Fatalf("%s: Get = %+v", when, res)
		}
		byAnn := map[string]Entry{}
		for _, e := range res.Entries {
			byAnn[string(e.Announcer)] = e
		}
		if e := byAnn[string(ids[0].id)]; e.Bridged || e.Endpoints != nil {
			t.Errorf("%s: plain entry %+v", when, e)
		}
		if e := byAnn[string(ids[1].id)]; !e.Bridged || !slices.Equal(e.Endpoints, own.Endpoints) || e.Endpoint() != netip.AddrPortFrom(testIP, 7000) {
			t.Errorf("%s: bridged entry %+v", when, e)
		}
		if e := byAnn[string(ids[2].id)]; !e.Bridged || !slices.Equal(e.Endpoints, eps("10.0.0.3:3")) || e.Port != 0 {
			t.Errorf("%s: bridged entry without client %+v", when, e)
		}
		var listed int
		for _, e := range listAll(t, s) {
			if e.Bridged {
				listed += len(e.Endpoints)
			}
		}
		if listed != 3 {
			t.Errorf("%s: List shows %d endpoints", when, listed)
		}
	}
	check("after Put")
	if reopen != nil {
		s = reopen(t, s, opts)
		check("after reopening")
	}

	// Per key: a third bridged record is refused, a plain one is not.
	if err := put(seal(t, ids[3], bridgedRec(k, 1, exp, "10.0.0.4:4"), testIP)); !errors.Is(err, ErrKeyFull) {
		t.Errorf("third bridged record for a key: %v", err)
	}
	mustPut(seal(t, ids[3], rec(k, 1, exp), testIP))
	// ... nor may a plain record turn bridged past the cap.
	if err := put(seal(t, ids[3], bridgedRec(k, 2, exp, "10.0.0.4:4"), testIP)); !errors.Is(err, ErrKeyFull) {
		t.Errorf("plain record turning bridged past the cap: %v", err)
	}
	// A bridged record turning plain frees its place.
	mustPut(seal(t, ids[2], rec(k, 2, exp), testIP))
	mustPut(seal(t, ids[3], bridgedRec(k, 3, exp, "10.0.0.4:4"), testIP))

	// Per announcer: ids[4] bridges two keys, not three; a withdrawal
	// frees one.
	mustPut(seal(t, ids[4], bridgedRec(k2, 1, exp, "10.0.0.5:5"), testIP))
	mustPut(seal(t, ids[4], bridgedRec(k3, 1, exp, "10.0.0.5:5"), testIP))
	if err := put(seal(t, ids[4], bridgedRec(k4, 1, exp, "10.0.0.5:5"), testIP)); !errors.Is(err, ErrAnnouncerFull) {
		t.Errorf("third bridged key of an announcer: %v", err)
	}
	mustPut(seal(t, ids[4], Record{Key: k2, Seq: 2, Expires: exp, Withdrawn: true}, testIP))
	if err := s.Remove(ctx, k3, ids[4].id); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Second)
	mustPut(seal(t, ids[4], bridgedRec(k2, 3, exp, "10.0.0.5:5"), testIP))
	mustPut(seal(t, ids[4], bridgedRec(k3, 3, exp, "10.0.0.5:5"), testIP))

	// Expiry frees the places too.
	clock.Advance(11 * time.Minute)
	if _, err := s.Expire(ctx); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Records != 0 {
		t.Errorf("after expiry: %+v", st)
	}
	exp = clock.Now().Add(10 * time.Minute)
	mustPut(seal(t, ids[5], bridgedRec(k, 1, exp, "10.0.0.6:6"), testIP))
	mustPut(seal(t, ids[4], bridgedRec(k, 4, exp, "10.0.0.6:6"), testIP))
}
