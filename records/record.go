package records

import (
	"errors"
	"net/netip"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Wire identity of the signed peer record (libp2p core/record envelope).
const (
	// EnvelopeDomain separates our signatures from every other use of a libp2p key.
	EnvelopeDomain = "kadtracker-peer-record"
	// MaxEnvelopeSize bounds a signed record on the wire (RSA-2048 keys fit).
	MaxEnvelopeSize = 2048
)

// PayloadType is the envelope payload type of a peer record.
var PayloadType = []byte("/kadtracker/peer-record/1")

// Errors a record can fail with. Open and Validate wrap them with details.
var (
	ErrMalformed      = errors.New("records: malformed record")
	ErrTooLarge       = errors.New("records: record too large")
	ErrBadSignature   = errors.New("records: bad signature")
	ErrWrongAnnouncer = errors.New("records: announcer is not the signer")
	ErrExpired        = errors.New("records: record expired")
	ErrTooFarAhead    = errors.New("records: expiry too far in the future")
)

// Record is what an announcing node signs: "peer Announcer has a BitTorrent
// client on Port for swarm Key until Expires". The endpoint IP is not in it:
// the storing node takes it from the connection the record arrived on.
type Record struct {
	Key       Key
	Announcer peer.ID
	Port      uint16
	Seed      bool
	// Seq orders an announcer's records for a key; the highest wins.
	Seq     uint64
	Expires time.Time // carried with millisecond precision
	// Withdrawn asks storing nodes to delete the announcer's record for Key.
	Withdrawn bool
}

// Entry is a record as a storing node holds and serves it.
type Entry struct {
	Record
	// IP is the address the record arrived from. The zero Addr marks a record
	// this node announced itself; it is filled in when served.
	IP netip.Addr
	// Envelope is the signed wire form, served verbatim to GET.
	Envelope []byte
}

// Endpoint is the BitTorrent client's address.
func (e Entry) Endpoint() netip.AddrPort { return netip.AddrPortFrom(e.IP, e.Port) }

// Seal signs r with the announcer's key and returns the envelope bytes. The
// key must belong to r.Announcer.
func Seal(r Record, key crypto.PrivKey) ([]byte, error) {
	panic("not implemented")
}

// Open parses and verifies an envelope: size, signature, payload type and
// domain, a well-formed key, a nonzero port (unless withdrawn), and that the
// signer is the announcer. It does not check expiry: see Validate.
func Open(envelope []byte) (Record, error) {
	panic("not implemented")
}

// Validate checks r's expiry against now: not yet expired, and not more than
// maxTTL ahead (plus one minute of clock skew).
func (r Record) Validate(now time.Time, maxTTL time.Duration) error {
	panic("not implemented")
}
