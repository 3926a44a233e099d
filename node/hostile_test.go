package node

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/kadtracker/kadtracker/node/internal/pb"
	"github.com/kadtracker/kadtracker/records"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	lprecord "github.com/libp2p/go-libp2p/core/record"
)

// rawRecord is a payload of our type with arbitrary bytes, to sign things
// records.Seal would refuse to.
type rawRecord []byte

func (rawRecord) Domain() string                   { return records.EnvelopeDomain }
func (rawRecord) Codec() []byte                    { return records.PayloadType }
func (r rawRecord) MarshalRecord() ([]byte, error) { return r, nil }
func (r *rawRecord) UnmarshalRecord(b []byte) error {
	*r = b
	return nil
}

// rawPut sends one PUT with the given envelope from h to target and returns
// the response, or the stream error.
func rawPut(ctx context.Context, h host.Host, target peer.ID, envelope []byte) (*pb.Response, error) {
	s, err := h.NewStream(ctx, target, ProtocolID)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(10 * time.Second))
	return roundTrip(s, &pb.Request{Body: &pb.Request_Put{Put: &pb.Put{Envelope: envelope}}})
}

// storeSnapshot is every entry a node stores, to compare before and after.
func storeSnapshot(t testing.TB, nd *Node) [][]byte {
	t.Helper()
	entries, err := nd.Records(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, e := range entries {
		out = append(out, e.Envelope)
	}
	return out
}

func sameSnapshot(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// testHostilePuts sends records a storing node must refuse from attacker to
// target, and checks each gets an error and leaves the store as it was.
func testHostilePuts(t *testing.T, attacker, target, victim *Node) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	key, err := records.ParseKey("c39e1f5b2c1e3f4d5a6b7c8d9e0f112233445566")
	if err != nil {
		t.Fatal(err)
	}
	now := target.now()
	good := records.Record{Key: key, Announcer: attacker.ID(), Port: 6881, Seq: 1, Expires: now.Add(10 * time.Minute)}
	seal := func(r records.Record, k crypto.PrivKey) []byte {
		env, err := lprecord.Seal(&r, k)
		if err != nil {
			t.Fatal(err)
		}
		b, err := env.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	otherKey, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	badSig := seal(good, attacker.key)
	badSig[len(badSig)-3] ^= 0xff // inside the signature, the envelope's last field
	expired := good
	expired.Expires = now.Add(-time.Minute)
	tooFar := good
	tooFar.Expires = now.Add(365 * 24 * time.Hour)
	otherPeer := good
	otherPeer.Announcer = victim.ID() // claims the victim's ID, signed by the attacker
	victimRec := good
	victimRec.Announcer = victim.ID()
	garbage, err := lprecord.Seal(ptr(rawRecord("not a record")), attacker.key)
	if err != nil {
		t.Fatal(err)
	}
	garbageEnv, _ := garbage.Marshal()

	cases := []struct {
		name     string
		envelope []byte
		status   pb.Status
	}{
		{"bad signature", badSig, pb.Status_REJECTED},
		{"oversized", bytes.Repeat([]byte{0x0a}, 3*records.MaxEnvelopeSize), pb.Status_BAD_REQUEST},
		{"expired", seal(expired, attacker.key), pb.Status_REJECTED},
		{"expiry too far ahead", seal(tooFar, attacker.key), pb.Status_REJECTED},
		{"signed by a key that is not the announcer's", seal(good, otherKey), pb.Status_REJECTED},
		{"claims another peer's ID", seal(otherPeer, attacker.key), pb.Status_REJECTED},
		{"another peer's genuine record replayed", seal(victimRec, victim.key), pb.Status_REJECTED},
		{"garbage payload under a valid signature", garbageEnv, pb.Status_REJECTED},
		{"not an envelope", []byte("hello"), pb.Status_REJECTED},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := storeSnapshot(t, target)
			resp, err := rawPut(ctx, attacker.Host(), target.ID(), tc.envelope)
			switch {
			case err != nil:
				t.Fatalf("no response, only a stream error: %v", err)
			case resp.Status != tc.status:
				t.Fatalf("status %s (%q), want %s", resp.Status, resp.Error, tc.status)
			case resp.Error == "":
				t.Fatal("refusal without a reason")
			}
			t.Logf("refused: %s", resp.Error)
			if after := storeSnapshot(t, target); !sameSnapshot(before, after) {
				t.Fatalf("store changed: %d entries before, %d after", len(before), len(after))
			}
		})
	}
	// The node must still serve after all that.
	if _, err := attacker.request(ctx, target.ID(), &pb.Request{Body: &pb.Request_Ping{Ping: &pb.Ping{Nonce: 1}}}); err != nil {
		t.Fatalf("target stopped answering: %v", err)
	}
	// And a genuine PUT from the attacker's own identity is accepted.
	if _, err := attacker.request(ctx, target.ID(), &pb.Request{Body: &pb.Request_Put{Put: &pb.Put{Envelope: seal(good, attacker.key)}}}); err != nil {
		t.Fatalf("honest PUT refused: %v", err)
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatal("timed out")
	}
}

func ptr[T any](v T) *T { return &v }
