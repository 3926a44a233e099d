package records

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multibase"
	"github.com/multiformats/go-multicodec"
	mh "github.com/multiformats/go-multihash"
)

const (
	hexV1 = "c12fe1c06bba254a9dc9f519b335aa7c1367a88a"
	hexV2 = "2f3e1aa8b3d0c5b7a6e8f1d2c3b4a5968778695a4b3c2d1e0f1a2b3c4d5e6f70"
)

func TestParseKey(t *testing.T) {
	v1, _ := hex.DecodeString(hexV1)
	v2, _ := hex.DecodeString(hexV2)
	for _, tc := range []struct {
		in       string
		infohash []byte
		v2       bool
	}{
		{hexV1, v1, false},
		{strings.ToUpper(hexV1), v1, false},
		{" " + hexV1 + "\n", v1, false},
		{hexV2, v2, true},
		{strings.ToUpper(hexV2), v2, true},
		// CIDv1 torrent-info, in base32 (40 characters, like v1 hex) and base58.
		{cid.NewCidV1(uint64(multicodec.TorrentInfo), mustMH(t, v1, mh.SHA1)).String(), v1, false},
		{mustCIDString(t, v2, mh.SHA2_256, "z"), v2, true},
	} {
		k, err := ParseKey(tc.in)
		if err != nil {
			t.Errorf("ParseKey(%q): %v", tc.in, err)
			continue
		}
		if !bytes.Equal(k.Infohash(), tc.infohash) || k.V2() != tc.v2 || k.IsZero() {
			t.Errorf("ParseKey(%q) = %x v2=%v, want %x v2=%v", tc.in, k.Infohash(), k.V2(), tc.infohash, tc.v2)
		}
		if k.Hex() != hex.EncodeToString(tc.infohash) || k.String() != k.Hex() {
			t.Errorf("Hex = %s", k.Hex())
		}
		// Every printed form reads back as the same key.
		for _, s := range []string{k.Hex(), k.CID().String(), k.String()} {
			if k2, err := ParseKey(s); err != nil || k2 != k {
				t.Errorf("ParseKey(%q) = %v, %v; want %v", s, k2, err, k)
			}
		}
		k2, err := KeyFromMultihash(k.Multihash())
		if err != nil || k2 != k || k2.DHTKey() != k.DHTKey() {
			t.Errorf("KeyFromMultihash(Multihash()) = %v, %v", k2, err)
		}
		k3, err := KeyFromCID(k.CID())
		if err != nil || k3 != k {
			t.Errorf("KeyFromCID(CID()) = %v, %v", k3, err)
		}
		if c := k.CID(); c.Version() != 1 || c.Type() != uint64(multicodec.TorrentInfo) {
			t.Errorf("CID = %s, want v1 torrent-info", c)
		}
	}
}

func TestParseKeyErrors(t *testing.T) {
	v1, _ := hex.DecodeString(hexV1)
	v2, _ := hex.DecodeString(hexV2)
	for name, in := range map[string]string{
		"empty":                  "",
		"39 hex":                 hexV1[:39],
		"41 hex":                 hexV1 + "0",
		"38 hex":                 hexV1[:38],
		"63 hex":                 hexV2[:63],
		"65 hex":                 hexV2 + "0",
		"40 non-hex":             "g" + hexV1[1:],
		"inner space":            hexV1[:20] + " " + hexV1[20:],
		"raw CID":                cid.NewCidV1(cid.Raw, mustMH(t, v1, mh.SHA1)).String(),
		"dag-pb CIDv0":           cid.NewCidV0(mustMH(t, v2, mh.SHA2_256)).String(),
		"torrent-info sha2 20 B": cid.NewCidV1(uint64(multicodec.TorrentInfo), mustMH(t, v1, mh.SHA2_256)).String(),
		"torrent-info sha1 32 B": cid.NewCidV1(uint64(multicodec.TorrentInfo), mustMH(t, v2, mh.SHA1)).String(),
		"torrent-info sha3":      cid.NewCidV1(uint64(multicodec.TorrentInfo), mustMH(t, v2, mh.SHA3_256)).String(),
		"torrent-info identity":  cid.NewCidV1(uint64(multicodec.TorrentInfo), mustMH(t, v1, mh.IDENTITY)).String(),
		"garbage":                "not a key",
	} {
		if k, err := ParseKey(in); !errors.Is(err, ErrBadKey) || !k.IsZero() {
			t.Errorf("%s: ParseKey(%q) = %v, %v; want ErrBadKey", name, in, k, err)
		}
	}
}

func TestKeyFromInfohash(t *testing.T) {
	for _, n := range []int{0, 1, 19, 21, 31, 33, 64} {
		if _, err := KeyFromInfohash(make([]byte, n)); !errors.Is(err, ErrBadKey) {
			t.Errorf("KeyFromInfohash(%d bytes) = %v, want ErrBadKey", n, err)
		}
	}
	for _, n := range []int{InfohashV1Len, InfohashV2Len} {
		k, err := KeyFromInfohash(bytes.Repeat([]byte{0xab}, n))
		if err != nil || len(k.Infohash()) != n || k.V2() != (n == InfohashV2Len) {
			t.Errorf("KeyFromInfohash(%d bytes) = %v, %v", n, k, err)
		}
	}
}

func TestKeyFromMultihash(t *testing.T) {
	v1, _ := hex.DecodeString(hexV1)
	v2, _ := hex.DecodeString(hexV2)
	good := mustMH(t, v1, mh.SHA1)
	for name, b := range map[string][]byte{
		"empty":          nil,
		"one byte":       {0x11},
		"truncated":      good[:len(good)-1],
		"trailing byte":  append(bytes.Clone(good), 0),
		"sha1 32 B":      mustMH(t, v2, mh.SHA1),
		"sha2-256 20 B":  mustMH(t, v1, mh.SHA2_256),
		"sha2-512":       mustMH(t, append(v2, v2...), mh.SHA2_512),
		"md5":            mustMH(t, v1[:16], mh.MD5),
		"identity":       mustMH(t, v1, mh.IDENTITY),
		"non-minimal":    append([]byte{0x91, 0x00, 20}, v1...), // code 0x11 as two varint bytes
		"length too big": append([]byte{0x11, 21}, v1...),
	} {
		if k, err := KeyFromMultihash(b); !errors.Is(err, ErrBadKey) || !k.IsZero() {
			t.Errorf("%s: KeyFromMultihash(%x) = %v, %v; want ErrBadKey", name, b, k, err)
		}
	}
}

func TestKeyZeroAndText(t *testing.T) {
	var z Key
	if !z.IsZero() || z.Infohash() != nil || z.Hex() != "" || z.V2() {
		t.Errorf("zero Key: IsZero %v Infohash %x Hex %q", z.IsZero(), z.Infohash(), z.Hex())
	}
	k, err := ParseKey(hexV1)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(map[string]Key{"infohash": k})
	if err != nil || string(b) != `{"infohash":"`+hexV1+`"}` {
		t.Fatalf("json = %s, %v", b, err)
	}
	var back map[string]Key
	if err := json.Unmarshal(b, &back); err != nil || back["infohash"] != k {
		t.Fatalf("json round trip = %v, %v", back, err)
	}
	var bad Key
	if err := json.Unmarshal([]byte(`"nope"`), &bad); !errors.Is(err, ErrBadKey) || !bad.IsZero() {
		t.Errorf("UnmarshalText(bad) = %v, key %v", err, bad)
	}
	// Map key use: equal infohashes are equal keys.
	k2, _ := ParseKey(strings.ToUpper(hexV1))
	if m := map[Key]int{k: 1}; m[k2] != 1 {
		t.Error("keys from hex and upper-case hex differ")
	}
}

func mustMH(t testing.TB, digest []byte, code uint64) mh.Multihash {
	t.Helper()
	m, err := mh.Encode(digest, code)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func mustCIDString(t testing.TB, digest []byte, code uint64, base string) string {
	t.Helper()
	c := cid.NewCidV1(uint64(multicodec.TorrentInfo), mustMH(t, digest, code))
	s, err := c.StringOfBase(multibase.Encoding(base[0]))
	if err != nil {
		t.Fatal(err)
	}
	return s
}
