package records

import (
	"context"
	"errors"
	"math"
	"net/netip"
	"reflect"
	"testing"
	"time"
)

var testCoord = Coord{Vec: [CoordDims]float64{0.0125, -0.03, 0.002}, Height: 0.0015, Error: 0.25}

// TestCoordRecord: a record with a coordinate is version 3 and opens with
// the coordinate it was sealed with; a coordinate needs an address, must
// be in range and at wire precision; and an envelope whose payload type
// disagrees with its payload is refused, as for version 2.
func TestCoordRecord(t *testing.T) {
	a := newIdentity(t, 0)
	k := testKey(t, 1)
	exp := t0.Add(time.Hour)
	addr := netip.MustParseAddr("203.0.113.9")
	c := testCoord.Round()
	r := Record{Key: k, Announcer: a.id, Port: 6881, Addr: addr, Seq: 1, Expires: exp, Coord: &c}
	if got := string(r.Codec()); got != string(PayloadTypeV3) {
		t.Fatalf("codec %q", got)
	}
	e := seal(t, a, r, addr)
	if e.Coord == nil || *e.Coord != c || !e.Signed() {
		t.Fatalf("opened %+v, want coordinate %+v", e.Record, c)
	}
	// The same record without a coordinate is version 2 still.
	r2 := r
	r2.Coord = nil
	if got := string(r2.Codec()); got != string(PayloadTypeV2) {
		t.Fatalf("codec without coordinate %q", got)
	}
	p3, err := r.MarshalRecord()
	if err != nil {
		t.Fatal(err)
	}
	p2, err := r2.MarshalRecord()
	if err != nil {
		t.Fatal(err)
	}
	for name, env := range map[string][]byte{
		"coordinate under version 2":    sealRaw(t, a.priv, &rawRecord{EnvelopeDomain, PayloadTypeV2, p3}),
		"no coordinate under version 3": sealRaw(t, a.priv, &rawRecord{EnvelopeDomain, PayloadTypeV3, p2}),
	} {
		if _, err := Open(env); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: Open = %v, want ErrMalformed", name, err)
		}
	}
	bad := map[string]func(*Record){
		"no address":     func(r *Record) { r.Addr = netip.Addr{} },
		"nan":            func(r *Record) { r.Coord = &Coord{Vec: [CoordDims]float64{math.NaN()}} },
		"far out":        func(r *Record) { r.Coord = &Coord{Vec: [CoordDims]float64{0, 0, 11}} },
		"negative error": func(r *Record) { r.Coord = &Coord{Error: -0.5} },
		"huge height":    func(r *Record) { r.Coord = &Coord{Height: 1e6} },
		"unrounded":      func(r *Record) { r.Coord = &Coord{Vec: [CoordDims]float64{0.1}} },
	}
	for name, spoil := range bad {
		rr := r
		spoil(&rr)
		if _, err := Seal(rr, a.priv); !errors.Is(err, ErrMalformed) {
			t.Errorf("Seal with %s = %v, want ErrMalformed", name, err)
		}
	}
	// A signer that writes a bad coordinate anyway (or one of 19 bytes) is
	// refused at Open.
	for name, raw := range map[string][]byte{
		"infinite": appendCoord(nil, Coord{Height: math.Inf(1)}),
		"short":    appendCoord(nil, testCoord)[:coordSize-1],
	} {
		m := r.toPB()
		m.Coord = raw
		env := sealRaw(t, a.priv, &rawRecord{EnvelopeDomain, PayloadTypeV3, mustMarshal(t, m)})
		if _, err := Open(env); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s coordinate: Open = %v, want ErrMalformed", name, err)
		}
	}
}

// TestCoordStored: both stores keep a version 3 record and serve its
// envelope verbatim, which opens with the coordinate (the stores' index
// keeps no copy of it: lookups open the envelopes they get).
func TestCoordStored(t *testing.T) {
	a := newIdentity(t, 0)
	k := testKey(t, 1)
	addr := netip.MustParseAddr("203.0.113.9")
	c := testCoord.Round()
	e := seal(t, a, Record{Key: k, Port: 6881, Addr: addr, Seq: 1, Expires: t0.Add(time.Hour), Coord: &c}, addr)
	for name, s := range map[string]Store{
		"memory": NewMemory(Options{Limits: DefaultLimits(), Now: func() time.Time { return t0 }}),
		"pebble": openPebbleT(t, t.TempDir(), Options{Limits: DefaultLimits(), Now: func() time.Time { return t0 }}),
	} {
		ctx := context.Background()
		if err := s.Put(ctx, e); err != nil {
			t.Fatalf("%s: Put: %v", name, err)
		}
		res, err := s.Get(ctx, k, 10)
		if err != nil || len(res.Entries) != 1 {
			t.Fatalf("%s: Get = %+v, %v", name, res, err)
		}
		got := res.Entries[0]
		opened, err := Open(got.Envelope)
		if err != nil || !reflect.DeepEqual(opened.Coord, e.Coord) || got.Port != e.Port || got.Addr != e.Addr {
			t.Errorf("%s: got %+v, opened %+v, %v", name, got.Record, opened, err)
		}
	}
}
