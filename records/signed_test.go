package records

import (
	"errors"
	"net/netip"
	"testing"
	"time"
)

// TestSignedAddr: a record with an address is version 2, one without is
// version 1, and an envelope whose payload type disagrees with its payload
// is refused either way: a signer's type says which fields it meant.
func TestSignedAddr(t *testing.T) {
	a := newIdentity(t, 0)
	k := testKey(t, 1)
	exp := t0.Add(time.Hour)
	for _, addr := range []string{"203.0.113.9", "2001:db8::9"} {
		e := seal(t, a, Record{Key: k, Port: 6881, Addr: netip.MustParseAddr(addr), Seq: 1, Expires: exp}, testIP)
		if !e.Signed() || e.Addr.String() != addr {
			t.Fatalf("opened %+v, want signed address %s", e.Record, addr)
		}
		if got := e.Endpoint().String(); got != netip.AddrPortFrom(netip.MustParseAddr(addr), 6881).String() {
			t.Errorf("Endpoint = %s, want the signed address, not the storing node's %s", got, testIP)
		}
	}
	v1 := seal(t, a, rec(k, 1, exp), testIP)
	if v1.Signed() || v1.Endpoint() != netip.AddrPortFrom(testIP, v1.Port) {
		t.Errorf("version 1 record: signed %v, endpoint %s", v1.Signed(), v1.Endpoint())
	}
	withAddr := Record{Key: k, Announcer: a.id, Port: 6881, Addr: netip.MustParseAddr("203.0.113.9"), Seq: 1, Expires: exp}
	p2, err := withAddr.MarshalRecord()
	if err != nil {
		t.Fatal(err)
	}
	p1, err := rec(k, 1, exp).withAnnouncer(a).MarshalRecord()
	if err != nil {
		t.Fatal(err)
	}
	for name, env := range map[string][]byte{
		"address under version 1":    sealRaw(t, a.priv, &rawRecord{EnvelopeDomain, PayloadType, p2}),
		"no address under version 2": sealRaw(t, a.priv, &rawRecord{EnvelopeDomain, PayloadTypeV2, p1}),
	} {
		if _, err := Open(env); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: Open = %v, want ErrMalformed", name, err)
		}
	}
	for _, bad := range []string{"::ffff:1.2.3.4", "fe80::1%eth0", "0.0.0.0", "224.0.0.1"} {
		r := withAddr
		r.Addr = netip.MustParseAddr(bad)
		if _, err := Seal(r, a.priv); !errors.Is(err, ErrMalformed) {
			t.Errorf("Seal with address %s = %v, want ErrMalformed", bad, err)
		}
	}
}

func (r Record) withAnnouncer(id testIdentity) Record {
	r.Announcer = id.id
	return r
}

// TestIsGlobal covers each refused range and a few global addresses.
func TestIsGlobal(t *testing.T) {
	refused := []string{
		"127.0.0.1", "127.255.0.9", "10.0.0.1", "172.16.5.4", "172.31.255.255", "192.168.1.1",
		"169.254.169.254", "100.64.0.1", "100.127.255.254", "0.0.0.0", "0.1.2.3", "224.0.0.1",
		"239.255.255.250", "255.255.255.255", "240.0.0.1", "192.0.2.66", "198.51.100.7",
		"203.0.113.1", "198.18.0.1", "192.0.0.8", "192.88.99.1",
		"::", "::1", "fe80::1", "fc00::1", "fd12:3456::1", "ff02::1", "2001:db8::1",
		"3fff::1", "100::1", "64:ff9b::a00:1", "2002:a00:1::1", "2001::1", "::ffff:8.8.8.8", "::ffff:0:808:808", "::808:808",
	}
	for _, s := range refused {
		if a := netip.MustParseAddr(s); IsGlobal(a) {
			t.Errorf("IsGlobal(%s) = true", s)
		}
		ep := netip.AddrPortFrom(netip.MustParseAddr(s), 6881)
		if err := CheckGlobalEndpoint(ep); err == nil {
			t.Errorf("CheckGlobalEndpoint(%s) = nil", ep)
		}
	}
	for _, s := range []string{"8.8.8.8", "1.1.1.1", "100.63.255.255", "100.128.0.1", "172.32.0.1", "2606:4700::1111", "2a00:1450::1"} {
		if !IsGlobal(netip.MustParseAddr(s)) {
			t.Errorf("IsGlobal(%s) = false", s)
		}
		if err := CheckGlobalEndpoint(netip.AddrPortFrom(netip.MustParseAddr(s), 6881)); err != nil {
			t.Errorf("CheckGlobalEndpoint(%s): %v", s, err)
		}
	}
	if IsGlobal(netip.MustParseAddr("fe80::1%eth0")) || IsGlobal(netip.Addr{}) {
		t.Error("zoned or invalid address is global")
	}
}

// TestGetSalted: two stores holding the same records answer one salt with
// the same entries, another salt with others; without a salt the choice
// is random.
func TestGetSalted(t *testing.T) {
	ctx := t.Context()
	k := testKey(t, 1)
	exp := t0.Add(time.Hour)
	a := NewMemory(Options{Now: newClock().Now, Seed: 1})
	b := NewMemory(Options{Now: newClock().Now, Seed: 2})
	for i := range 60 {
		e := seal(t, newIdentity(t, 100+i), rec(k, 1, exp), netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}))
		for _, s := range []Store{a, b} {
			if err := s.Put(ctx, e); err != nil {
				t.Fatal(err)
			}
		}
	}
	names := func(s SaltedGetter, salt uint64) map[string]bool {
		res, err := s.GetSalted(ctx, k, 10, salt)
		if err != nil || len(res.Entries) != 10 || !res.More || res.Leechers != 60 {
			t.Fatalf("GetSalted: %d entries, more %v, %d leechers, %v", len(res.Entries), res.More, res.Leechers, err)
		}
		out := make(map[string]bool)
		for _, e := range res.Entries {
			out[string(e.Announcer)] = true
		}
		return out
	}
	overlap := func(x, y map[string]bool) int {
		n := 0
		for k := range x {
			if y[k] {
				n++
			}
		}
		return n
	}
	if n := overlap(names(a, 7), names(b, 7)); n != 10 {
		t.Errorf("same salt: %d of 10 entries in common, want all", n)
	}
	if n := overlap(names(a, 7), names(a, 8)); n == 10 {
		t.Error("another salt chose the same entries")
	}
	if n := overlap(names(a, 0), names(b, 0)); n == 10 {
		t.Error("unsalted Gets of two stores chose the same entries")
	}
}

// TestPebbleTombstone: a tombstone and a signed record survive a restart
// of the persistent store, and the withdrawn record, replayed after it,
// still loses.
func TestPebbleTombstone(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	c := newClock()
	a, b := newIdentity(t, 0), newIdentity(t, 1)
	k := testKey(t, 1)
	exp := t0.Add(time.Hour)
	old := seal(t, a, rec(k, 1, exp), testIP)
	tomb := seal(t, a, Record{Key: k, Seq: 2, Expires: exp, Withdrawn: true}, testIP)
	signed := seal(t, b, Record{Key: k, Port: 7000, Addr: testIP, Seq: 1, Expires: exp}, testIP)
	s, err := OpenPebble(dir, Options{Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range []Entry{old, tomb, signed} {
		if err := s.Put(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openPebbleT(t, dir, Options{Now: c.Now})
	if err := s.Put(ctx, old); !errors.Is(err, ErrStale) {
		t.Errorf("withdrawn record replayed after a restart: %v, want ErrStale", err)
	}
	res, err := s.Get(ctx, k, 10)
	if err != nil || len(res.Entries) != 2 || res.Leechers != 1 {
		t.Fatalf("after restart: %+v, %v; want the tombstone and one leecher", res, err)
	}
	for _, e := range res.Entries {
		if e.Announcer == b.id && (!e.Signed() || e.Addr != testIP) {
			t.Errorf("signed record lost its address: %+v", e.Record)
		}
	}
}

// BenchmarkGetSalted: a storing node's salted choice of 50 of 2000 records.
func BenchmarkGetSalted(b *testing.B) {
	k := testKey(b, 1)
	s := NewMemory(Options{Now: newClock().Now})
	for i := range 2000 {
		e := seal(b, newIdentity(b, 1000+i), rec(k, 1, t0.Add(time.Hour)), netip.AddrFrom4([4]byte{198, 51, byte(i >> 8), byte(i)}))
		if err := s.Put(b.Context(), e); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	var salt uint64
	for b.Loop() {
		salt++
		if res, err := s.GetSalted(b.Context(), k, 50, salt); err != nil || len(res.Entries) != 50 {
			b.Fatal(len(res.Entries), err)
		}
	}
}
