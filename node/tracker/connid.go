package tracker

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"hash"
	"net/netip"
	"time"
)

// connIDWindow is the time step of BEP 15 connection IDs. An ID is accepted
// in the window it was issued in and the next one: between one and two
// minutes, as BEP 15 asks (clients use an ID for up to a minute).
const connIDWindow = time.Minute

// connIDs issues and checks connection IDs: the first 8 bytes of
// HMAC-SHA256(key, window || client IP), under a random key of the process.
// Nobody without the key can make an ID that passes for an address, so a
// spoofed source cannot announce or draw scrape answers (BEP 15's reason for
// connection IDs); the source port is left out because clients may announce
// from another socket than they connected from. Not safe for concurrent use.
type connIDs struct {
	mac hash.Hash
	in  [8 + 16]byte
	sum [sha256.Size]byte
}

func newConnIDs(key []byte) *connIDs {
	return &connIDs{mac: hmac.New(sha256.New, key)}
}

func window(now time.Time) int64 { return now.Unix() / int64(connIDWindow/time.Second) }

func (c *connIDs) id(ip netip.Addr, w int64) [8]byte {
	binary.BigEndian.PutUint64(c.in[:8], uint64(w))
	a := ip.Unmap().As16()
	copy(c.in[8:], a[:])
	c.mac.Reset()
	c.mac.Write(c.in[:])
	return [8]byte(c.mac.Sum(c.sum[:0]))
}

// issue returns the ID for ip at now.
func (c *connIDs) issue(ip netip.Addr, now time.Time) uint64 {
	id := c.id(ip, window(now))
	return binary.BigEndian.Uint64(id[:])
}

// valid reports whether id was issued to ip in this window or the last.
func (c *connIDs) valid(id uint64, ip netip.Addr, now time.Time) bool {
	var got [8]byte
	binary.BigEndian.PutUint64(got[:], id)
	w := window(now)
	cur, prev := c.id(ip, w), c.id(ip, w-1)
	return subtle.ConstantTimeCompare(got[:], cur[:])|subtle.ConstantTimeCompare(got[:], prev[:]) == 1
}
