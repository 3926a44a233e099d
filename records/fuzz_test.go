package records

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/kadtracker/kadtracker/records/internal/pb"
)

// The seed corpora live in testdata/fuzz/<FuzzName>/. Rewrite them with
//
//	go test -run=TestWriteFuzzCorpus -write-fuzz-corpus ./records
var writeFuzzCorpus = flag.Bool("write-fuzz-corpus", false, "rewrite the fuzz seed corpora in testdata/fuzz")

func FuzzOpen(f *testing.F) {
	f.Fuzz(func(t *testing.T, env []byte) {
		r, err := Open(env)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLarge) &&
				!errors.Is(err, ErrBadSignature) && !errors.Is(err, ErrWrongAnnouncer) {
				t.Fatalf("Open error %v wraps none of the record errors", err)
			}
			if !reflect.DeepEqual(r, Record{}) {
				t.Fatalf("failed Open returned %+v", r)
			}
			return
		}
		if len(env) > MaxEnvelopeSize {
			t.Fatalf("opened %d bytes", len(env))
		}
		checkRecord(t, r)
	})
}

func FuzzUnmarshalRecord(f *testing.F) {
	f.Fuzz(func(t *testing.T, payload []byte) {
		var r Record
		if err := r.UnmarshalRecord(payload); err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("UnmarshalRecord error %v does not wrap ErrMalformed", err)
			}
			if !reflect.DeepEqual(r, Record{}) {
				t.Fatalf("failed UnmarshalRecord changed the record to %+v", r)
			}
			return
		}
		checkRecord(t, r)
	})
}

// checkRecord checks what every accepted record satisfies, and that it
// survives a marshal round trip unchanged.
func checkRecord(t *testing.T, r Record) {
	t.Helper()
	if r.Key.IsZero() || r.Announcer == "" || (r.Port == 0 && !r.Withdrawn && !r.Bridged) || r.Expires.UnixMilli() <= 0 {
		t.Fatalf("accepted an unfit record %+v", r)
	}
	if _, err := KeyFromMultihash(r.Key.Multihash()); err != nil {
		t.Fatalf("accepted key %x: %v", r.Key.Multihash(), err)
	}
	if a := r.Addr; a.IsValid() && (a.Is4In6() || a.Zone() != "" || a.IsUnspecified() || a.IsMulticast()) {
		t.Fatalf("accepted address %s", a)
	}
	p, err := r.MarshalRecord()
	if err != nil {
		t.Fatalf("MarshalRecord(accepted): %v", err)
	}
	var back Record
	if err := back.UnmarshalRecord(p); err != nil {
		t.Fatalf("UnmarshalRecord(MarshalRecord(r)): %v", err)
	}
	if !reflect.DeepEqual(back, r) {
		t.Fatalf("round trip: %+v, want %+v", back, r)
	}
}

func FuzzParseKey(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		k, err := ParseKey(s)
		if err != nil {
			if !errors.Is(err, ErrBadKey) || !k.IsZero() {
				t.Fatalf("ParseKey(%q) = %v, %v", s, k, err)
			}
			return
		}
		checkKey(t, k)
	})
}

func FuzzKeyFromMultihash(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := KeyFromMultihash(b)
		if err != nil {
			if !errors.Is(err, ErrBadKey) || !k.IsZero() {
				t.Fatalf("KeyFromMultihash(%x) = %v, %v", b, k, err)
			}
			return
		}
		if !bytes.Equal(k.Multihash(), b) {
			t.Fatalf("Multihash() = %x, want %x", k.Multihash(), b)
		}
		checkKey(t, k)
	})
}

// checkKey checks an accepted key is one of the two infohash forms, and
// that every printed form reads back as the same key.
func checkKey(t *testing.T, k Key) {
	t.Helper()
	if n := len(k.Infohash()); n != InfohashV1Len && n != InfohashV2Len || k.V2() != (n == InfohashV2Len) {
		t.Fatalf("key %x: infohash of %d bytes, V2 %v", k.Multihash(), n, k.V2())
	}
	k2, err := KeyFromInfohash(k.Infohash())
	if err != nil || k2 != k {
		t.Fatalf("KeyFromInfohash(Infohash()) = %v, %v; want %v", k2, err, k)
	}
	for _, s := range []string{k.Hex(), k.CID().String()} {
		if k2, err := ParseKey(s); err != nil || k2 != k {
			t.Fatalf("ParseKey(%q) = %v, %v; want %v", s, k2, err, k)
		}
	}
}

func FuzzDecodeValue(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		env, ip, err := decodeValue(b)
		if err != nil {
			if !errors.Is(err, errBadValue) {
				t.Fatalf("decodeValue error %v does not wrap errBadValue", err)
			}
			return
		}
		if len(env) == 0 || len(env) > MaxEnvelopeSize {
			t.Fatalf("accepted an envelope of %d bytes", len(env))
		}
		env2, ip2, err := decodeValue(encodeValue(env, ip))
		if err != nil || !bytes.Equal(env2, env) || ip2 != ip {
			t.Fatalf("round trip: %x %v %v, want %x %v", env2, ip2, err, env, ip)
		}
		// What the loader does next must not panic either.
		if e, err := decodeStored(dsKey(testKey(t, 1), newIdentity(t, 0).id).String(), b); err == nil {
			checkRecord(t, e.Record)
		}
	})
}

// TestWriteFuzzCorpus writes a few valid and invalid seeds for each fuzzer.
func TestWriteFuzzCorpus(t *testing.T) {
	if !*writeFuzzCorpus {
		t.Skip("run with -write-fuzz-corpus to rewrite testdata/fuzz")
	}
	a, b := newIdentity(t, 0), newIdentity(t, 1)
	k1, k2 := testKey(t, 1), testKeyV2(t, 2)
	exp := time.UnixMilli(1772366400123)
	good := seal(t, a, Record{Key: k1, Port: 6881, Seed: true, Seq: 3, Expires: exp}, testIP).Envelope
	goodV2 := seal(t, b, Record{Key: k2, Port: 51413, Seq: 1 << 40, Expires: exp}, testIP).Envelope
	withdrawn := seal(t, a, Record{Key: k2, Seq: 4, Expires: exp, Withdrawn: true}, testIP).Envelope
	payload := func(r Record) []byte { return mustMarshal(t, r.toPB()) }
	goodPayload := payload(Record{Key: k1, Announcer: a.id, Port: 6881, Seed: true, Seq: 3, Expires: exp})
	wrongAnnouncer := sealRaw(t, b.priv, &rawRecord{EnvelopeDomain, PayloadType, goodPayload})
	tampered := bytes.Clone(good)
	tampered[len(tampered)-1] ^= 1
	// Version 2: the signed address, and payload types that disagree with it.
	signed := seal(t, a, Record{Key: k1, Port: 6881, Addr: netip.MustParseAddr("203.0.113.9"), Seq: 5, Expires: exp}, testIP).Envelope
	signedPayload := payload(Record{Key: k1, Announcer: a.id, Port: 6881, Addr: netip.MustParseAddr("2001:db8::9"), Seq: 5, Expires: exp})
	v2InV1 := sealRaw(t, a.priv, &rawRecord{EnvelopeDomain, PayloadType, signedPayload})
	v1InV2 := sealRaw(t, a.priv, &rawRecord{EnvelopeDomain, PayloadTypeV2, goodPayload})
	// Version 3: the coordinate, and payload types that disagree with it.
	coord := testCoord.Round()
	withCoord := seal(t, a, Record{Key: k1, Port: 6881, Addr: netip.MustParseAddr("203.0.113.9"), Seq: 6, Expires: exp, Coord: &coord}, testIP).Envelope
	coordPayload := payload(Record{Key: k1, Announcer: a.id, Port: 6881, Addr: netip.MustParseAddr("203.0.113.9"), Seq: 6, Expires: exp, Coord: &coord})
	v3InV2 := sealRaw(t, a.priv, &rawRecord{EnvelopeDomain, PayloadTypeV2, coordPayload})
	v2InV3 := sealRaw(t, a.priv, &rawRecord{EnvelopeDomain, PayloadTypeV3, signedPayload})
	nanCoord := protowire.AppendBytes(protowire.AppendTag(bytes.Clone(signedPayload), 11, protowire.BytesType), appendCoord(nil, Coord{Error: math.NaN()}))
	shortAddr := protowire.AppendBytes(protowire.AppendTag(bytes.Clone(goodPayload), 10, protowire.BytesType), []byte{1, 2, 3})

	corpora := map[string][][]byte{
		"FuzzOpen": {good, goodV2, withdrawn, tampered, wrongAnnouncer, good[:40], []byte("garbage"), {}, signed, v2InV1, v1InV2, withCoord, v3InV2, v2InV3},
		"FuzzUnmarshalRecord": {
			goodPayload,
			payload(Record{Key: k2, Announcer: b.id, Seq: 9, Expires: exp, Withdrawn: true}),
			protowire.AppendVarint(protowire.AppendTag(bytes.Clone(goodPayload), 15, protowire.VarintType), 1),
			goodPayload[:len(goodPayload)-2],
			{0x18, 0x80, 0x80, 0x04}, // port 65536 only
			{},
			signedPayload,
			shortAddr,
			coordPayload,
			nanCoord,
			coordPayload[:len(coordPayload)-3],
		},
		"FuzzKeyFromMultihash": {
			k1.Multihash(), k2.Multihash(),
			mustMH(t, k2.Infohash(), 0x1b), // keccak-256
			append(k1.Multihash(), 0),
			{0x11},
		},
		"FuzzDecodeValue": {
			encodeValue(good, testIP),
			encodeValue(goodV2, netip.MustParseAddr("2001:db8::1")),
			encodeValue(good, netip.MustParseAddr("fe80::1%eth0")),
			encodeValue(good, netip.Addr{}),
			encodeValue(tampered, testIP),
			mustMarshal(t, &pb.StoredEntry{Envelope: good, Ip: []byte{1, 2, 3}}),
			{0x0a, 0x03, 1, 2, 3},
			{0xff},
		},
	}
	strs := map[string][]string{
		"FuzzParseKey": {
			k1.Hex(), k2.Hex(), k1.CID().String(), k2.CID().String(),
			mustCIDString(t, k2.Infohash(), 0x12, "z"),
			"C12FE1C06BBA254A9DC9F519B335AA7C1367A88A",
			cid.NewCidV1(cid.Raw, k1.Multihash()).String(),
			cid.NewCidV0(k2.Multihash()).String(),
			hexV1[:39], "",
		},
	}
	write := func(name string, i int, line string) {
		dir := filepath.Join("testdata", "fuzz", name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		data := "go test fuzz v1\n" + line + "\n"
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%02d", i)), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for name, seeds := range corpora {
		for i, s := range seeds {
			write(name, i, "[]byte("+strconv.Quote(string(s))+")")
		}
	}
	for name, seeds := range strs {
		for i, s := range seeds {
			write(name, i, "string("+strconv.Quote(s)+")")
		}
	}
}
