package records

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	lprecord "github.com/libp2p/go-libp2p/core/record"
	"google.golang.org/protobuf/proto"

	"github.com/kadtracker/kadtracker/records/internal/pb"
)

// Wire identity of the signed peer record (libp2p core/record envelope).
const (
	// EnvelopeDomain separates our signatures from every other use of a libp2p key.
	EnvelopeDomain = "kadtracker-peer-record"
	// MaxEnvelopeSize bounds a signed record on the wire (RSA-2048 keys fit).
	MaxEnvelopeSize = 2048
)

// Envelope payload types of a peer record. Version 2 adds the signed
// address (Record.Addr) and is used exactly when a record has one; version
// 1 is the format before it, still read: tombstones and bridged records
// without a client of their own need no address, and a direct record of
// version 1 (an older announcer) is stored but no lookup serves its
// endpoint, which only the storing node vouched for.
var (
	PayloadType   = []byte("/kadtracker/peer-record/1")
	PayloadTypeV2 = []byte("/kadtracker/peer-record/2")
)

// Errors a record can fail with. Open and Validate wrap them with details.
var (
	ErrMalformed      = errors.New("records: malformed record")
	ErrTooLarge       = errors.New("records: record too large")
	ErrBadSignature   = errors.New("records: bad signature")
	ErrWrongAnnouncer = errors.New("records: announcer is not the signer")
	ErrExpired        = errors.New("records: record expired")
	ErrTooFarAhead    = errors.New("records: expiry too far in the future")
)

// Bridged records. A bridged record names, besides the announcer's own
// client (when Port is not 0), peers by explicit endpoints: peers the
// announcing node learned from classic trackers, or the clients of its
// public tracker. Only bridged records carry endpoints, at most
// MaxEndpoints, and they live at most MaxBridgedTTL: whoever signs one
// vouches for addresses the storing node cannot check, so they are few,
// short-lived and marked as such to whoever reads them, must be global
// (CheckGlobalEndpoint), and are served only when several bridges agree
// (see the package doc).
const (
	MaxEndpoints  = 40
	MaxBridgedTTL = 30 * time.Minute
)

// Record is what an announcing node signs: "peer Announcer has a BitTorrent
// client at Addr:Port for swarm Key until Expires". Addr is the address
// the storing nodes see the announcer connect from (the announcer learns
// it from its connections and identify's observed addresses); a storing
// node refuses a record whose Addr is not the connection's source, so a
// storing node cannot point a lookup at a third party, nor can an
// announcer (see Entry.Endpoint).
type Record struct {
	Key       Key
	Announcer peer.ID
	Port      uint16
	Seed      bool
	// Addr is the announcer's own address, signed (payload type 2); the
	// zero Addr in records of version 1 and in most tombstones. A bridged
	// record carries it too: lookups count bridges by their address.
	Addr netip.Addr
	// Seq orders an announcer's records for a key; the highest wins.
	Seq     uint64
	Expires time.Time // carried with millisecond precision
	// Withdrawn makes the record a tombstone: it replaces the announcer's
	// record for Key, outranks every lower Seq, and is stored and served
	// until it expires (the announcer gives it the TTL its last record
	// had), so a storing node that still has the older record loses to
	// those that have the tombstone.
	Withdrawn bool
	// Bridged marks a record carrying Endpoints; Port may then be 0 (no
	// client of the announcer's own). See MaxEndpoints.
	Bridged bool
	// Endpoints are the explicit peers of a bridged record: valid unicast
	// addresses (IPv4 unmapped), no zone, nonzero ports, no duplicates.
	Endpoints []netip.AddrPort
	// Coord is the announcer's network coordinate (payload type 3), nil in
	// records without one: a lookup ranks those as of unknown distance.
	// Only with a signed Addr, and carried at float32 precision. The
	// stores keep it in the envelope alone: an Entry they return has it
	// nil, and whoever needs it opens the envelope, as lookups do.
	Coord *Coord
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

// Endpoint is the BitTorrent client's address: the announcer's own client
// (invalid for a bridged record with Port 0). It is the signed Addr when
// the record has one, else the address the storing node saw (version 1),
// which only the storing node vouches for.
func (e Entry) Endpoint() netip.AddrPort {
	if e.Addr.IsValid() {
		return netip.AddrPortFrom(e.Addr, e.Port)
	}
	return netip.AddrPortFrom(e.IP, e.Port)
}

// Signed reports whether the record's endpoint is signed by its announcer
// (version 2).
func (r Record) Signed() bool { return r.Addr.IsValid() }

// MaxClockSkew is how far past now+maxTTL Validate still accepts an expiry.
const MaxClockSkew = time.Minute

// Record implements libp2p's core/record.Record, so it can be sealed in and
// consumed from an envelope without the global payload type registry.
var _ lprecord.Record = (*Record)(nil)

// Seal signs r with the announcer's key and returns the envelope bytes. The
// key must belong to r.Announcer.
func Seal(r Record, key crypto.PrivKey) ([]byte, error) {
	if key == nil {
		return nil, errors.New("records: seal: nil private key")
	}
	signer, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("records: seal: peer ID of key: %w", err)
	}
	if signer != r.Announcer {
		return nil, fmt.Errorf("%w: seal: key belongs to %s, record names %s", ErrWrongAnnouncer, signer, r.Announcer)
	}
	if err := r.check(); err != nil {
		return nil, fmt.Errorf("%w: seal: %w", ErrMalformed, err)
	}
	env, err := lprecord.Seal(&r, key)
	if err != nil {
		return nil, fmt.Errorf("records: seal: %w", err)
	}
	b, err := env.Marshal()
	if err != nil {
		return nil, fmt.Errorf("records: seal: %w", err)
	}
	if len(b) > MaxEnvelopeSize {
		return nil, fmt.Errorf("%w: sealed envelope is %d bytes, max %d", ErrTooLarge, len(b), MaxEnvelopeSize)
	}
	return b, nil
}

// Open parses and verifies an envelope: size, signature, payload type and
// domain, a well-formed key, a nonzero port (unless withdrawn), and that the
// signer is the announcer. It does not check expiry: see Validate.
func Open(envelope []byte) (Record, error) {
	if len(envelope) > MaxEnvelopeSize {
		return Record{}, fmt.Errorf("%w: %d bytes, max %d", ErrTooLarge, len(envelope), MaxEnvelopeSize)
	}
	var r Record
	env, err := lprecord.ConsumeTypedEnvelope(envelope, &r)
	switch {
	case env == nil && err != nil:
		// The envelope itself (or its public key) did not decode.
		return Record{}, fmt.Errorf("%w: envelope: %w", ErrMalformed, err)
	case err != nil && !errors.Is(err, ErrMalformed):
		// Decoded, but the signature does not verify for our domain.
		return Record{}, fmt.Errorf("%w: %w", ErrBadSignature, err)
	}
	// The signature verified, so the payload type is what the signer meant.
	// ConsumeTypedEnvelope does not look at it: check it before the payload.
	if !bytes.Equal(env.PayloadType, PayloadType) && !bytes.Equal(env.PayloadType, PayloadTypeV2) && !bytes.Equal(env.PayloadType, PayloadTypeV3) {
		return Record{}, fmt.Errorf("%w: unknown payload type %q", ErrMalformed, env.PayloadType)
	}
	if err != nil {
		return Record{}, err // a payload error from UnmarshalRecord, already ErrMalformed
	}
	if !bytes.Equal(env.PayloadType, r.Codec()) {
		// Version 1 has no address; version 2 always has one, version 3
		// a coordinate too.
		return Record{}, fmt.Errorf("%w: payload type %q for a record of type %q", ErrMalformed, env.PayloadType, r.Codec())
	}
	signer, err := peer.IDFromPublicKey(env.PublicKey)
	if err != nil {
		return Record{}, fmt.Errorf("%w: peer ID of signing key: %w", ErrMalformed, err)
	}
	if signer != r.Announcer {
		return Record{}, fmt.Errorf("%w: signed by %s, announcer %s", ErrWrongAnnouncer, signer, r.Announcer)
	}
	return r, nil
}

// Validate checks r's expiry against now: not yet expired, and not more than
// maxTTL ahead (plus one minute of clock skew); for a bridged record not
// more than MaxBridgedTTL either.
func (r Record) Validate(now time.Time, maxTTL time.Duration) error {
	if r.Bridged {
		maxTTL = min(maxTTL, MaxBridgedTTL)
	}
	if !r.Expires.After(now) {
		return fmt.Errorf("%w: at %s, now %s", ErrExpired, r.Expires.UTC().Format(time.RFC3339Nano), now.UTC().Format(time.RFC3339Nano))
	}
	if limit := now.Add(maxTTL + MaxClockSkew); r.Expires.After(limit) {
		return fmt.Errorf("%w: expires %s, %s after now, max TTL %s", ErrTooFarAhead, r.Expires.UTC().Format(time.RFC3339Nano), r.Expires.Sub(now), maxTTL)
	}
	return nil
}

// Domain is the envelope signature domain, EnvelopeDomain (libp2p record.Record).
func (Record) Domain() string { return EnvelopeDomain }

// Codec is the envelope payload type (libp2p record.Record): PayloadTypeV3
// for a record with a coordinate, PayloadTypeV2 for one with an address,
// PayloadType otherwise.
func (r Record) Codec() []byte {
	if r.Coord != nil {
		return bytes.Clone(PayloadTypeV3)
	}
	if r.Signed() {
		return bytes.Clone(PayloadTypeV2)
	}
	return bytes.Clone(PayloadType)
}

// MarshalRecord returns the protobuf payload (libp2p record.Record). Expires
// is truncated to milliseconds.
func (r Record) MarshalRecord() ([]byte, error) {
	if err := r.check(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return proto.MarshalOptions{Deterministic: true}.Marshal(r.toPB())
}

// UnmarshalRecord parses a payload strictly (libp2p record.Record): unknown
// fields, a bad key or announcer, an out-of-range port or a nonpositive expiry
// are errors. Every error wraps ErrMalformed. It does not verify anything:
// use Open for bytes from the network.
func (r *Record) UnmarshalRecord(b []byte) error {
	var m pb.PeerRecord
	if err := proto.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("%w: payload: %w", ErrMalformed, err)
	}
	if len(m.ProtoReflect().GetUnknown()) > 0 {
		return fmt.Errorf("%w: payload has unknown fields", ErrMalformed)
	}
	k, err := KeyFromMultihash(m.Key)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	a, err := peer.IDFromBytes(m.Announcer)
	if err != nil {
		return fmt.Errorf("%w: announcer: %w", ErrMalformed, err)
	}
	if m.Port > math.MaxUint16 {
		return fmt.Errorf("%w: port %d", ErrMalformed, m.Port)
	}
	out := Record{
		Key:       k,
		Announcer: a,
		Port:      uint16(m.Port),
		Seed:      m.Seed,
		Seq:       m.Seq,
		Expires:   time.UnixMilli(m.ExpiresUnixMs),
		Withdrawn: m.Withdrawn,
		Bridged:   m.Bridged,
	}
	if len(m.Endpoints) > MaxEndpoints {
		return fmt.Errorf("%w: %d endpoints, max %d", ErrMalformed, len(m.Endpoints), MaxEndpoints)
	}
	if len(m.Addr) > 0 {
		a, ok := netip.AddrFromSlice(m.Addr)
		if !ok || (len(m.Addr) != 4 && len(m.Addr) != 16) {
			return fmt.Errorf("%w: address of %d bytes, want 4 or 16", ErrMalformed, len(m.Addr))
		}
		out.Addr = a
	}
	if len(m.Coord) > 0 {
		c, err := decodeCoord(m.Coord)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		out.Coord = &c
	}
	for _, b := range m.Endpoints {
		ep, err := decodeEndpoint(b)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		out.Endpoints = append(out.Endpoints, ep)
	}
	if m.ExpiresUnixMs <= 0 {
		return fmt.Errorf("%w: expiry %d ms is not after 1970", ErrMalformed, m.ExpiresUnixMs)
	}
	if err := out.check(); err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	*r = out
	return nil
}

// check reports what makes r unfit to sign or store, whatever the clock says.
func (r Record) check() error {
	switch {
	case r.Key.IsZero():
		return errors.New("zero key")
	case r.Announcer == "":
		return errors.New("no announcer")
	case r.Port == 0 && !r.Withdrawn && !r.Bridged:
		return errors.New("port 0")
	case r.Expires.UnixMilli() <= 0:
		return fmt.Errorf("expiry %s is not after 1970", r.Expires)
	case len(r.Endpoints) > 0 && !r.Bridged:
		return errors.New("endpoints in a record that is not bridged")
	case r.Bridged && !r.Withdrawn && len(r.Endpoints) == 0:
		return errors.New("bridged record without endpoints")
	case len(r.Endpoints) > MaxEndpoints:
		return fmt.Errorf("%d endpoints, max %d", len(r.Endpoints), MaxEndpoints)
	}
	if r.Addr.IsValid() {
		if err := checkEndpoint(netip.AddrPortFrom(r.Addr, 1)); err != nil {
			return fmt.Errorf("address: %w", err)
		}
	}
	if r.Coord != nil {
		if !r.Addr.IsValid() {
			return errors.New("coordinate without an address")
		}
		if err := r.Coord.Check(); err != nil {
			return err
		}
		if r.Coord.Round() != *r.Coord {
			// What is signed must read back the same: round before sealing.
			return errors.New("coordinate beyond float32 precision")
		}
	}
	for i, ep := range r.Endpoints {
		if err := checkEndpoint(ep); err != nil {
			return err
		}
		for _, prev := range r.Endpoints[:i] {
			if prev == ep {
				return fmt.Errorf("endpoint %s given twice", ep)
			}
		}
	}
	return nil
}

// CheckEndpoint reports whether ep may stand in a bridged record: a
// unicast address (IPv4 unmapped), no zone, a nonzero port.
func CheckEndpoint(ep netip.AddrPort) error { return checkEndpoint(ep) }

// checkEndpoint accepts what a BitTorrent client can dial: a unicast
// address (IPv4 unmapped), no zone, a nonzero port.
func checkEndpoint(ep netip.AddrPort) error {
	a := ep.Addr()
	switch {
	case !a.IsValid() || a.Is4In6() || a.Zone() != "":
		return fmt.Errorf("endpoint %s: want an IPv4 or IPv6 address without zone", ep)
	case a.IsUnspecified() || a.IsMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return fmt.Errorf("endpoint %s is not a unicast address", ep)
	case ep.Port() == 0:
		return fmt.Errorf("endpoint %s: port 0", ep)
	}
	return nil
}

// appendEndpoint is the wire form of an endpoint: 4 or 16 address bytes,
// then the port, big endian.
func appendEndpoint(dst []byte, ep netip.AddrPort) []byte {
	dst = append(dst, ep.Addr().AsSlice()...)
	return append(dst, byte(ep.Port()>>8), byte(ep.Port()))
}

func decodeEndpoint(b []byte) (netip.AddrPort, error) {
	if len(b) != 6 && len(b) != 18 {
		return netip.AddrPort{}, fmt.Errorf("endpoint of %d bytes, want 6 or 18", len(b))
	}
	a, _ := netip.AddrFromSlice(b[:len(b)-2])
	ep := netip.AddrPortFrom(a, uint16(b[len(b)-2])<<8|uint16(b[len(b)-1]))
	return ep, checkEndpoint(ep)
}

func (r Record) toPB() *pb.PeerRecord {
	return &pb.PeerRecord{
		Key:           []byte(r.Key.DHTKey()),
		Announcer:     []byte(r.Announcer),
		Port:          uint32(r.Port),
		Seed:          r.Seed,
		Seq:           r.Seq,
		ExpiresUnixMs: r.Expires.UnixMilli(),
		Withdrawn:     r.Withdrawn,
		Bridged:       r.Bridged,
		Endpoints:     r.endpointsPB(),
		Addr:          addrPB(r.Addr),
		Coord:         coordPB(r.Coord),
	}
}

func coordPB(c *Coord) []byte {
	if c == nil {
		return nil
	}
	return appendCoord(make([]byte, 0, coordSize), *c)
}

func addrPB(a netip.Addr) []byte {
	if !a.IsValid() {
		return nil
	}
	return a.AsSlice()
}

func (r Record) endpointsPB() [][]byte {
	if len(r.Endpoints) == 0 {
		return nil
	}
	out := make([][]byte, len(r.Endpoints))
	for i, ep := range r.Endpoints {
		out[i] = appendEndpoint(make([]byte, 0, 18), ep)
	}
	return out
}
