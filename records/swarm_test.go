package records

import (
	"bytes"
	"encoding/hex"
	"testing"
)

func TestV2Keys(t *testing.T) {
	v1 := ih("c39e5a0f1b2e7d4c8a6f3e2d1c0b9a8f7e6d5c4b")
	k1 := SwarmKey(v1)
	if k1.V2() || !bytes.Equal(k1.Infohash(), v1[:]) || k1.Swarm() != k1 {
		t.Fatalf("v1 key %v", k1)
	}
	full := bytes.Repeat([]byte{0xab}, 32)
	full[0] = 0x01
	k2, err := KeyFromInfohash(full)
	if err != nil {
		t.Fatal(err)
	}
	// A BEP 52 client announces the first 20 bytes; the front maps them with
	// SwarmKey, and Swarm reaches the same key from the full one.
	announced := [20]byte(full[:20])
	if got := k2.Swarm(); got != SwarmKey(announced) {
		t.Fatalf("Swarm %v, want %v", got, SwarmKey(announced))
	}
	if ihash, ok := k2.TrackerInfohash(); !ok || ihash != announced {
		t.Fatalf("TrackerInfohash %x", ihash)
	}
	if ihash, ok := k1.TrackerInfohash(); !ok || ihash != v1 {
		t.Fatalf("TrackerInfohash v1 %x", ihash)
	}
	if _, ok := (Key{}).TrackerInfohash(); ok {
		t.Fatal("zero key")
	}
}

func ih(s string) [20]byte {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 20 {
		panic("bad test infohash " + s)
	}
	return [20]byte(b)
}
