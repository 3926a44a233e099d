package records

import (
	"crypto/ed25519"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// t0 is the tests' epoch: a fixed, millisecond-aligned instant.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// fakeClock is an injected clock the tests move by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: t0} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// testIdentity is a deterministic ed25519 libp2p identity.
type testIdentity struct {
	priv crypto.PrivKey
	id   peer.ID
}

func newIdentity(tb testing.TB, i int) testIdentity {
	tb.Helper()
	seed := sha256.Sum256(fmt.Appendf(nil, "kadtracker test identity %d", i))
	priv, err := crypto.UnmarshalEd25519PrivateKey(ed25519.NewKeyFromSeed(seed[:]))
	if err != nil {
		tb.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(priv)
	if err != nil {
		tb.Fatal(err)
	}
	return testIdentity{priv, id}
}

func identities(tb testing.TB, n int) []testIdentity {
	ids := make([]testIdentity, n)
	for i := range ids {
		ids[i] = newIdentity(tb, i)
	}
	return ids
}

// testKey returns the v1 key of made-up torrent i.
func testKey(tb testing.TB, i int) Key {
	tb.Helper()
	h := sha1.Sum(binary.BigEndian.AppendUint64([]byte("torrent"), uint64(i)))
	k, err := KeyFromInfohash(h[:])
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// testKeyV2 returns the v2 key of made-up torrent i.
func testKeyV2(tb testing.TB, i int) Key {
	tb.Helper()
	h := sha256.Sum256(binary.BigEndian.AppendUint64([]byte("torrent"), uint64(i)))
	k, err := KeyFromInfohash(h[:])
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// seal signs r as id (filling in the announcer) and returns the Entry a
// storing node would make of it on arrival from ip.
func seal(tb testing.TB, id testIdentity, r Record, ip netip.Addr) Entry {
	tb.Helper()
	r.Announcer = id.id
	env, err := Seal(r, id.priv)
	if err != nil {
		tb.Fatalf("Seal: %v", err)
	}
	opened, err := Open(env)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	return Entry{Record: opened, IP: ip, Envelope: env}
}

// rec is a record with the usual test values.
func rec(k Key, seq uint64, expires time.Time) Record {
	return Record{Key: k, Port: 6881, Seq: seq, Expires: expires}
}

var testIP = netip.MustParseAddr("192.0.2.7")
