package records

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	cryptopb "github.com/libp2p/go-libp2p/core/crypto/pb"
	"github.com/libp2p/go-libp2p/core/peer"
	lprecord "github.com/libp2p/go-libp2p/core/record"
	envpb "github.com/libp2p/go-libp2p/core/record/pb"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/kadtracker/kadtracker/records/internal/pb"
)

// rawRecord signs arbitrary payload bytes under any domain and payload
// type, to build envelopes Seal refuses to.
type rawRecord struct {
	domain  string
	codec   []byte
	payload []byte
}

func (r *rawRecord) Domain() string                 { return r.domain }
func (r *rawRecord) Codec() []byte                  { return r.codec }
func (r *rawRecord) MarshalRecord() ([]byte, error) { return r.payload, nil }
func (r *rawRecord) UnmarshalRecord(b []byte) error { r.payload = b; return nil }
func sealRaw(t testing.TB, priv crypto.PrivKey, r *rawRecord) []byte {
	t.Helper()
	env, err := lprecord.Seal(r, priv)
	if err != nil {
		t.Fatal(err)
	}
	b, err := env.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// editEnvelope decodes env, lets edit change it, and encodes it again.
func editEnvelope(t testing.TB, env []byte, edit func(*envpb.Envelope)) []byte {
	t.Helper()
	var m envpb.Envelope
	if err := proto.Unmarshal(env, &m); err != nil {
		t.Fatal(err)
	}
	edit(&m)
	b, err := proto.Marshal(&m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustMarshal(t testing.TB, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSealOpen(t *testing.T) {
	a, b := newIdentity(t, 0), newIdentity(t, 1)
	k := testKey(t, 1)
	good := Record{Key: k, Announcer: a.id, Port: 6881, Seed: true, Seq: 7, Expires: t0.Add(time.Hour)}
	sealA := func(r Record) []byte {
		t.Helper()
		env, err := Seal(r, a.priv)
		if err != nil {
			t.Fatal(err)
		}
		return env
	}
	// payload signs a.priv's PeerRecord after edit, under our domain and type.
	payload := func(edit func(*pb.PeerRecord)) []byte {
		m := good.toPB()
		edit(m)
		return sealRaw(t, a.priv, &rawRecord{EnvelopeDomain, PayloadType, mustMarshal(t, m)})
	}
	goodEnv := sealA(good)

	for _, tc := range []struct {
		name string
		env  []byte
		want []error // nil: Open succeeds
	}{
		{"good", goodEnv, nil},
		{"good v2", sealA(Record{Key: testKeyV2(t, 2), Announcer: a.id, Port: 1, Expires: t0}), nil},
		{"withdrawn port 0", sealA(Record{Key: k, Announcer: a.id, Seq: 8, Expires: t0, Withdrawn: true}), nil},
		{"empty", nil, []error{ErrMalformed}},
		{"garbage", []byte("this is not an envelope at all"), []error{ErrMalformed}},
		{"truncated", goodEnv[:len(goodEnv)-5], []error{ErrMalformed}},
		{"oversized", bytes.Repeat([]byte{0}, MaxEnvelopeSize+1), []error{ErrTooLarge}},
		{"oversized valid prefix", append(bytes.Clone(goodEnv), make([]byte, MaxEnvelopeSize)...), []error{ErrTooLarge}},
		{"tampered payload byte", editEnvelope(t, goodEnv, func(m *envpb.Envelope) {
			m.Payload[len(m.Payload)-3] ^= 0x01
		}), []error{ErrBadSignature}},
		{"tampered signature", editEnvelope(t, goodEnv, func(m *envpb.Envelope) { m.Signature[0] ^= 0x80 }), []error{ErrBadSignature}},
		{"tampered payload type", editEnvelope(t, goodEnv, func(m *envpb.Envelope) { m.PayloadType = []byte("/other") }), []error{ErrBadSignature}},
		{"wrong signer", editEnvelope(t, goodEnv, func(m *envpb.Envelope) {
			pk, err := crypto.PublicKeyToProto(b.priv.GetPublic())
			if err != nil {
				t.Fatal(err)
			}
			m.PublicKey = pk
		}), []error{ErrBadSignature}},
		{"unknown key type", editEnvelope(t, goodEnv, func(m *envpb.Envelope) {
			m.PublicKey.Type = cryptopb.KeyType(99).Enum()
		}), []error{ErrMalformed}},
		{"other domain", sealRaw(t, a.priv, &rawRecord{"libp2p-peer-record", PayloadType, mustMarshal(t, good.toPB())}), []error{ErrBadSignature}},
		{"another peer's announcer ID", sealRaw(t, b.priv, &rawRecord{EnvelopeDomain, PayloadType, mustMarshal(t, good.toPB())}), []error{ErrWrongAnnouncer}},
		{"unknown payload type", sealRaw(t, a.priv, &rawRecord{EnvelopeDomain, []byte("/kadtracker/peer-record/2"), mustMarshal(t, good.toPB())}), []error{ErrMalformed}},
		{"payload not protobuf", sealRaw(t, a.priv, &rawRecord{EnvelopeDomain, PayloadType, []byte{0xff, 0xff, 0xff}}), []error{ErrMalformed}},
		{"empty payload", sealRaw(t, a.priv, &rawRecord{EnvelopeDomain, PayloadType, nil}), []error{ErrMalformed, ErrBadKey}},
		{"unknown payload field", sealRaw(t, a.priv, &rawRecord{EnvelopeDomain, PayloadType,
			protowire.AppendVarint(protowire.AppendTag(mustMarshal(t, good.toPB()), 99, protowire.VarintType), 1)}), []error{ErrMalformed}},
		{"bad key", payload(func(m *pb.PeerRecord) { m.Key = m.Key[:len(m.Key)-1] }), []error{ErrMalformed, ErrBadKey}},
		{"no key", payload(func(m *pb.PeerRecord) { m.Key = nil }), []error{ErrMalformed, ErrBadKey}},
		{"sha2-256 key of 20 bytes", payload(func(m *pb.PeerRecord) { m.Key = append([]byte{0x12, 20}, m.Key[2:]...) }), []error{ErrMalformed, ErrBadKey}},
		{"port 0", payload(func(m *pb.PeerRecord) { m.Port = 0 }), []error{ErrMalformed}},
		{"port 65536", payload(func(m *pb.PeerRecord) { m.Port = 65536 }), []error{ErrMalformed}},
		{"bad announcer", payload(func(m *pb.PeerRecord) { m.Announcer = []byte{1, 2, 3} }), []error{ErrMalformed}},
		{"no announcer", payload(func(m *pb.PeerRecord) { m.Announcer = nil }), []error{ErrMalformed}},
		{"expiry 0", payload(func(m *pb.PeerRecord) { m.ExpiresUnixMs = 0 }), []error{ErrMalformed}},
		{"expiry negative", payload(func(m *pb.PeerRecord) { m.ExpiresUnixMs = -5 }), []error{ErrMalformed}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Open(tc.env)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				env2, err := Seal(r, a.priv)
				if err != nil {
					t.Fatalf("Seal(Open(env)): %v", err)
				}
				if !bytes.Equal(env2, tc.env) {
					t.Errorf("Seal(Open(env)) differs from env")
				}
				return
			}
			for _, w := range tc.want {
				if !errors.Is(err, w) {
					t.Errorf("Open = %v, want %v", err, w)
				}
			}
			if !reflect.DeepEqual(r, Record{}) {
				t.Errorf("failed Open returned %+v", r)
			}
		})
	}

	r, err := Open(goodEnv)
	if err != nil {
		t.Fatal(err)
	}
	if r.Key != good.Key || r.Announcer != good.Announcer || r.Port != good.Port || r.Seed != good.Seed ||
		r.Seq != good.Seq || !r.Expires.Equal(good.Expires) || r.Withdrawn {
		t.Errorf("Open = %+v, want %+v", r, good)
	}
}

func TestSealOpenKeyTypes(t *testing.T) {
	for _, tc := range []struct {
		name string
		gen  func() (crypto.PrivKey, crypto.PubKey, error)
	}{
		{"ed25519", func() (crypto.PrivKey, crypto.PubKey, error) { return crypto.GenerateEd25519Key(rand.Reader) }},
		{"secp256k1", func() (crypto.PrivKey, crypto.PubKey, error) { return crypto.GenerateSecp256k1Key(rand.Reader) }},
		{"ecdsa", func() (crypto.PrivKey, crypto.PubKey, error) { return crypto.GenerateECDSAKeyPair(rand.Reader) }},
		{"rsa2048", func() (crypto.PrivKey, crypto.PubKey, error) { return crypto.GenerateRSAKeyPair(2048, rand.Reader) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			priv, _, err := tc.gen()
			if err != nil {
				t.Fatal(err)
			}
			id, err := peer.IDFromPrivateKey(priv)
			if err != nil {
				t.Fatal(err)
			}
			// The largest record: v2 key, all fields at their widest.
			r := Record{Key: testKeyV2(t, 1), Announcer: id, Port: 65535, Seed: true, Seq: ^uint64(0),
				Expires: time.UnixMilli(1<<62 - 1)}
			env, err := Seal(r, priv)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s envelope: %d bytes", tc.name, len(env))
			got, err := Open(env)
			if err != nil {
				t.Fatal(err)
			}
			if got.Announcer != id || got.Seq != r.Seq || !got.Expires.Equal(r.Expires) {
				t.Errorf("Open = %+v, want %+v", got, r)
			}
		})
	}
}

func TestSealErrors(t *testing.T) {
	a, b := newIdentity(t, 0), newIdentity(t, 1)
	good := Record{Key: testKey(t, 1), Announcer: a.id, Port: 6881, Expires: t0}
	for _, tc := range []struct {
		name string
		edit func(*Record)
		key  crypto.PrivKey
		want error
	}{
		{"another's key", func(*Record) {}, b.priv, ErrWrongAnnouncer},
		{"no announcer", func(r *Record) { r.Announcer = "" }, a.priv, ErrWrongAnnouncer},
		{"zero key", func(r *Record) { r.Key = Key{} }, a.priv, ErrMalformed},
		{"port 0", func(r *Record) { r.Port = 0 }, a.priv, ErrMalformed},
		{"zero expiry", func(r *Record) { r.Expires = time.Time{} }, a.priv, ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := good
			tc.edit(&r)
			if _, err := Seal(r, tc.key); !errors.Is(err, tc.want) {
				t.Errorf("Seal = %v, want %v", err, tc.want)
			}
		})
	}
	if _, err := Seal(good, nil); err == nil {
		t.Error("Seal with a nil key succeeded")
	}
}

// TestGolden pins the wire form: the payload is deterministic protobuf and
// ed25519 signatures are deterministic, so the whole envelope is.
func TestGolden(t *testing.T) {
	a := newIdentity(t, 0)
	k, err := ParseKey("c12fe1c06bba254a9dc9f519b335aa7c1367a88a")
	if err != nil {
		t.Fatal(err)
	}
	r := Record{Key: k, Announcer: a.id, Port: 6881, Seed: true, Seq: 3, Expires: time.UnixMilli(1772366400123)}
	const (
		wantPayload = "0a161114c12fe1c06bba254a9dc9f519b335aa7c1367a88a" + // 1: key, sha1 multihash
			"12260024080112205ddc25f25b1f38033e456637338418a844e048428e60d0b9c8094541eff868d8" + // 2: announcer
			"18e135" + // 3: port 6881
			"2001" + // 4: seed
			"2803" + // 5: seq 3
			"30fb9494caca33" // 6: expires 1772366400123 ms
		wantEnvelope = "0a24080112205ddc25f25b1f38033e456637338418a844e048428e60d0b9c8094541eff868d8" + // 1: public key
			"12192f6b6164747261636b65722f706565722d7265636f72642f31" + // 2: payload type
			"1a4e" + wantPayload + // 3: payload
			"2a4062a25fb288a9dd34767679e13ee7c5538d719fc33e3d7a69585ff630bf0087150b650dd332ac6933cdd40a5d14cc9e49a58bba571920f1eef5addd0f9667350c" // 5: signature
	)
	p, err := r.MarshalRecord()
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(p); got != wantPayload {
		t.Errorf("payload\n got %s\nwant %s", got, wantPayload)
	}
	env, err := Seal(r, a.priv)
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(env); got != wantEnvelope {
		t.Errorf("envelope\n got %s\nwant %s", got, wantEnvelope)
	}
	golden, _ := hex.DecodeString(wantEnvelope)
	got, err := Open(golden)
	if err != nil {
		t.Fatalf("Open(golden): %v", err)
	}
	if got.Key != r.Key || got.Announcer != r.Announcer || got.Port != r.Port || !got.Seed ||
		got.Seq != r.Seq || !got.Expires.Equal(r.Expires) {
		t.Errorf("Open(golden) = %+v, want %+v", got, r)
	}
}

func TestValidate(t *testing.T) {
	const ttl = time.Hour
	for _, tc := range []struct {
		name    string
		expires time.Time
		want    error
	}{
		{"fresh", t0.Add(time.Minute), nil},
		{"max TTL", t0.Add(ttl), nil},
		{"max TTL plus skew", t0.Add(ttl + MaxClockSkew), nil},
		{"beyond skew", t0.Add(ttl + MaxClockSkew + time.Millisecond), ErrTooFarAhead},
		{"far future", t0.AddDate(10, 0, 0), ErrTooFarAhead},
		{"expires now", t0, ErrExpired},
		{"expired", t0.Add(-time.Millisecond), ErrExpired},
		{"zero", time.Time{}, ErrExpired},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Record{Expires: tc.expires}.Validate(t0, ttl)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Errorf("Validate = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestRecordInterface(t *testing.T) {
	var r Record
	if r.Domain() != EnvelopeDomain || !bytes.Equal(r.Codec(), PayloadType) {
		t.Errorf("Domain, Codec = %q, %q", r.Domain(), r.Codec())
	}
	r.Codec()[0] = 'X' // a caller scribbling on it does not change ours
	if PayloadType[0] != '/' {
		t.Error("Codec returned PayloadType itself")
	}
	if _, err := r.MarshalRecord(); !errors.Is(err, ErrMalformed) {
		t.Errorf("MarshalRecord(zero) = %v, want ErrMalformed", err)
	}
}
