package wire

import (
	"crypto/hmac"
	"crypto/sha256"
	"hash"
)

// Trailer layout on a keyed link: every packet ends with
//
//	[nonce 8 B][time 8 B][tag 16 B]
//
// nonce identifies the sending process (random per start), so a tracker
// can drop its own packets reflected back at it; time is the sender's clock
// in Unix nanoseconds, strictly increasing per sender, for replay checks;
// tag is HMAC-SHA256(key, packet ‖ nonce ‖ time) truncated to 16 bytes.
// The packet before the trailer is an ordinary TSUP packet.
const (
	TrailerLen = 32
	tagLen     = 16
)

// MAC seals and opens packets of one link. It is not safe for concurrent
// use.
type MAC struct {
	h   hash.Hash
	sum []byte
}

// NewMAC returns a MAC for the link's shared key.
func NewMAC(key []byte) *MAC {
	return &MAC{h: hmac.New(sha256.New, key), sum: make([]byte, 0, sha256.Size)}
}

func (m *MAC) tag(b []byte) []byte {
	m.h.Reset()
	m.h.Write(b)
	m.sum = m.h.Sum(m.sum[:0])
	return m.sum[:tagLen]
}

// Seal appends the trailer to the packet b.
func (m *MAC) Seal(b []byte, nonce uint64, unixNano int64) []byte {
	b = be.AppendUint64(b, nonce)
	b = be.AppendUint64(b, uint64(unixNano))
	return append(b, m.tag(b)...)
}

// Open checks b's trailer and returns the packet without it, with the
// trailer's nonce and time. A missing or wrong tag is ErrMAC.
func (m *MAC) Open(b []byte) (pkt []byte, nonce uint64, unixNano int64, err error) {
	if len(b) < TrailerLen {
		return nil, 0, 0, errf(ErrMAC, "%d bytes cannot carry a trailer", len(b))
	}
	signed := b[:len(b)-tagLen]
	if !hmac.Equal(m.tag(signed), b[len(b)-tagLen:]) {
		return nil, 0, 0, errf(ErrMAC, "tag mismatch")
	}
	t := b[len(b)-TrailerLen:]
	return b[:len(b)-TrailerLen], be.Uint64(t), int64(be.Uint64(t[8:])), nil
}
