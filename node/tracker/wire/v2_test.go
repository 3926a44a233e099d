package wire

import (
	"bytes"
	"testing"

	"github.com/kadtracker/kadtracker/records"
)

func TestV2Keys(t *testing.T) {
	v1 := ih("c39e5a0f1b2e7d4c8a6f3e2d1c0b9a8f7e6d5c4b")
	k1 := SwarmKey(v1)
	if k1.V2() || !bytes.Equal(k1.Infohash(), v1[:]) || TruncateV2(k1) != k1 {
		t.Fatalf("v1 key %v", k1)
	}
	full := bytes.Repeat([]byte{0xab}, 32)
	full[0] = 0x01
	k2, err := records.KeyFromInfohash(full)
	if err != nil {
		t.Fatal(err)
	}
	// A BEP 52 client announces the first 20 bytes; the front maps them with
	// SwarmKey, and TruncateV2 reaches the same key from the full one.
	announced := [20]byte(full[:20])
	if got := TruncateV2(k2); got != SwarmKey(announced) {
		t.Fatalf("TruncateV2 %v, want %v", got, SwarmKey(announced))
	}
	if ihash, ok := TrackerInfohash(k2); !ok || ihash != announced {
		t.Fatalf("TrackerInfohash %x", ihash)
	}
	if ihash, ok := TrackerInfohash(k1); !ok || ihash != v1 {
		t.Fatalf("TrackerInfohash v1 %x", ihash)
	}
	if _, ok := TrackerInfohash(records.Key{}); ok {
		t.Fatal("zero key")
	}
}
