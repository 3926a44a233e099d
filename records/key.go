package records

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multicodec"
	mh "github.com/multiformats/go-multihash"
)

// Infohash sizes: BEP 3 (SHA-1) and BEP 52 (SHA2-256).
const (
	InfohashV1Len = 20
	InfohashV2Len = 32
)

// ErrBadKey is wrapped by every key parsing error.
var ErrBadKey = errors.New("records: bad infohash")

// Key names a swarm. It wraps the multihash of the infohash (SHA-1 for v1,
// SHA2-256 for v2); those bytes are also the DHT key. The zero Key is invalid.
// Key is comparable and can be used as a map key.
type Key struct {
	mh string // multihash bytes
}

// KeyFromInfohash makes a key from a raw 20-byte (v1) or 32-byte (v2) infohash.
func KeyFromInfohash(infohash []byte) (Key, error) {
	var code uint64
	switch len(infohash) {
	case InfohashV1Len:
		code = mh.SHA1
	case InfohashV2Len:
		code = mh.SHA2_256
	default:
		return Key{}, fmt.Errorf("%w: %d bytes, want %d (v1) or %d (v2)", ErrBadKey, len(infohash), InfohashV1Len, InfohashV2Len)
	}
	m, err := mh.Encode(infohash, code)
	if err != nil {
		return Key{}, fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	return Key{mh: string(m)}, nil
}

// KeyFromMultihash makes a key from its DHT form, the multihash bytes. Only
// SHA-1 with 20 bytes and SHA2-256 with 32 bytes are keys.
func KeyFromMultihash(b []byte) (Key, error) {
	dec, err := mh.Decode(b)
	if err != nil {
		return Key{}, fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	switch {
	case dec.Code == mh.SHA1 && dec.Length == InfohashV1Len:
	case dec.Code == mh.SHA2_256 && dec.Length == InfohashV2Len:
	default:
		return Key{}, fmt.Errorf("%w: multihash %s of %d bytes is not an infohash", ErrBadKey, mh.Codes[dec.Code], dec.Length)
	}
	return Key{mh: string(b)}, nil
}

// ParseKey reads an infohash as 40 or 64 hex characters, or as a CIDv1
// string with multicodec torrent-info.
func ParseKey(s string) (Key, error) {
	s = strings.TrimSpace(s)
	if len(s) == 2*InfohashV1Len || len(s) == 2*InfohashV2Len {
		if b, err := hex.DecodeString(s); err == nil {
			return KeyFromInfohash(b)
		}
	}
	c, err := cid.Decode(s)
	if err != nil {
		return Key{}, fmt.Errorf("%w: %q is neither 40/64 hex characters nor a CID", ErrBadKey, s)
	}
	return KeyFromCID(c)
}

// KeyFromCID accepts a CIDv1 with multicodec torrent-info.
func KeyFromCID(c cid.Cid) (Key, error) {
	if c.Version() != 1 || multicodec.Code(c.Type()) != multicodec.TorrentInfo {
		return Key{}, fmt.Errorf("%w: CID %s is not a v1 torrent-info CID", ErrBadKey, c)
	}
	return KeyFromMultihash(c.Hash())
}

// IsZero reports whether k is the invalid zero key.
func (k Key) IsZero() bool { return k.mh == "" }

// Multihash returns the DHT key bytes.
func (k Key) Multihash() []byte { return []byte(k.mh) }

// DHTKey returns the multihash as a string, the form kad-dht takes.
func (k Key) DHTKey() string { return k.mh }

// Infohash returns the raw 20- or 32-byte infohash.
func (k Key) Infohash() []byte {
	if k.mh == "" {
		return nil
	}
	dec, err := mh.Decode([]byte(k.mh))
	if err != nil {
		return nil // unreachable: constructors validate
	}
	return dec.Digest
}

// V2 reports whether k is a BEP 52 (SHA2-256) infohash.
func (k Key) V2() bool { return len(k.mh) == 2+InfohashV2Len }

// CID returns the CIDv1 torrent-info form.
func (k Key) CID() cid.Cid {
	return cid.NewCidV1(uint64(multicodec.TorrentInfo), mh.Multihash(k.mh))
}

// Hex returns the infohash as lower-case hex, the form the CLI and API print.
func (k Key) Hex() string { return hex.EncodeToString(k.Infohash()) }

// String returns the hex form.
func (k Key) String() string { return k.Hex() }

// MarshalText encodes the key as hex, so JSON shows the familiar form.
func (k Key) MarshalText() ([]byte, error) { return []byte(k.Hex()), nil }

// UnmarshalText accepts what ParseKey accepts.
func (k *Key) UnmarshalText(b []byte) error {
	p, err := ParseKey(string(b))
	if err != nil {
		return err
	}
	*k = p
	return nil
}

// Swarm keys: the rules that map what BitTorrent clients say to a DHT key.
//
// BEP 52's tracker section keeps the tracker protocol unchanged: info_hash is
// "the 20byte truncated infohash", the first 20 bytes of the SHA2-256
// infohash. A tracker cannot tell such a value from a v1 SHA-1 infohash, and
// need not: a v2-only torrent is announced under its truncated hash, and a
// hybrid torrent is announced twice, once under each hash, as two swarms of
// the same peers. So the 20 bytes are an opaque swarm name, and the DHT key is
// KeyFromInfohash of those 20 bytes (SwarmKey). Every daemon does the same, so
// clients behind different daemons meet under the same key; the key's
// multihash says SHA-1 even for a truncated v2 hash, which only labels it.
// The full 32-byte key is never reachable from a tracker announce: when one
// is known (typed on the CLI, or from a v2 magnet link), Swarm gives the key
// those tracker announces live under, and TrackerInfohash the 20 bytes a
// tracker client sends for a key. The tracker front, the bridge, TSUP and the
// local API all use these three, so they live here, beside Key.

// SwarmKey is the DHT key of the swarm a 20-byte tracker info_hash names,
// whether it is a v1 SHA-1 infohash or a BEP 52 v2 infohash truncated to 20
// bytes.
func SwarmKey(infohash [20]byte) Key {
	m, err := mh.Encode(infohash[:], mh.SHA1)
	if err != nil {
		return Key{} // unreachable: 20 bytes always encode
	}
	return Key{mh: string(m)}
}

// Swarm returns the key under which tracker announces of k's swarm are
// found: k itself for a v1 key, and for a v2 key the key of its first 20
// bytes, which is what BEP 52 clients send as info_hash.
func (k Key) Swarm() Key {
	if !k.V2() {
		return k
	}
	return SwarmKey([20]byte(k.Infohash()[:20]))
}

// TrackerInfohash is the 20-byte info_hash to announce k under to a classic
// tracker: the v1 infohash, or a v2 infohash truncated as BEP 52 says. It is
// false for the zero key.
func (k Key) TrackerInfohash() ([20]byte, bool) {
	ih := k.Infohash()
	if len(ih) < 20 {
		return [20]byte{}, false
	}
	return [20]byte(ih[:20]), true
}
