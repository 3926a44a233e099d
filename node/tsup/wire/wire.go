// Package wire encodes and decodes TSUP packets (Tracker Swarm Unification
// Protocol), byte-compatible with XBT Unified Tracker for IPv4 peers, plus
// the extensions kadtracker negotiates with its own kind.
//
// Every packet starts with the header of a BEP 15 *request*, extended by the
// sender's TSUP port:
//
//	offset size field
//	0      8    connection_id  (opaque; 0xFFFFFFFFFFFFFFFF in a first SYN)
//	8      4    action         (128 SYN ... 133 LEADER: bit 0x80 marks TSUP)
//	12     4    transaction_id
//	16     2    port           (the sender's TSUP port, not part of BEP 15)
//	18     1    flags          (SYN, UPDATE, CANDIDATURE, LEADER only)
//
// All integers are big-endian. The bodies:
//
//	SYN          flags: 0x01 ACK, 0x80 EXT (kadtracker; XBT ignores the bit)
//	HELLO        nothing
//	SUMMARY      n × [flag 1 B: 0 have, 1 removed][info_hash 20 B], or the
//	             single byte 0x04 (the sender is a border tracker)
//	UPDATE       flags (0x01 ACK, 0x02 SUMMARY, 0x04 BOR), then blocks of
//	             [info_hash 20 B][n 1 B][n × peer]; a peer is
//	             [flags 1 B][IPv4 4 B][port 2 B], flag 0x01 NEG (dead)
//	CANDIDATURE  flags (0x01 ACK), then mandates int32 (not in the ACK);
//	             kadtracker appends its election rank, uint64, and campaign
//	             epoch, uint32 (XBT reads the first four bytes only)
//	LEADER       flags (0x01 ACK), then one or more info_hashes (not in the
//	             ACK); in Extended mode the sender's rank, uint64, first
//
// Extended mode (both ends set SYN EXT): an UPDATE peer may carry flag 0x02
// (the address is IPv6, 16 bytes) and 0x04 (the peer is a seed). Plain mode
// rejects those bits, as XBT would misread them.
//
// A link configured with a key adds a Trailer to every packet (see MAC).
//
// The parsers are strict: lengths are checked before every slice, unknown
// actions and flag bits, malformed payloads and trailing bytes are errors,
// and nothing panics on input. Every error wraps ErrMalformed.
package wire

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
)

var be = binary.BigEndian

// Sizes and caps.
const (
	// HeaderLen is the common header: connection_id, action,
	// transaction_id, port.
	HeaderLen = 18
	// FlagsHeaderLen is the header plus the flags byte of SYN, UPDATE,
	// CANDIDATURE and LEADER.
	FlagsHeaderLen = 19
	// MaxPacket is XBT's receive buffer: it cuts longer datagrams. No
	// packet kadtracker sends is longer, trailer included.
	MaxPacket = 2048
	// SummaryEntryLen is one SUMMARY entry: flag and info_hash.
	SummaryEntryLen = 21
	// BlockHeaderLen is an UPDATE block's info_hash and peer count.
	BlockHeaderLen = 21
	// MaxBlockPeers is the most peers one UPDATE block may list: XBT
	// keeps the low six bits of the count.
	MaxBlockPeers = 63
	// SendBlockPeers is the most peers kadtracker (and XBT) put in one
	// block.
	SendBlockPeers = 50
	// PeerLen4 and PeerLen6 are the sizes of an IPv4 and IPv6 peer entry.
	PeerLen4 = 7
	PeerLen6 = 19
	// CandidatureLen is a CANDIDATURE with mandates; CandidatureRankLen
	// adds kadtracker's rank and campaign epoch.
	CandidatureLen     = 23
	CandidatureRankLen = 35
	// NoConnID is the connection_id of a first SYN.
	NoConnID = ^uint64(0)
)

// Action is the 32-bit action field. TSUP actions have bit 0x80 set; BEP 15
// actions (0 connect ... 3 error) never do.
type Action uint32

const (
	ActionSyn         Action = 128
	ActionHello       Action = 129
	ActionSummary     Action = 130
	ActionUpdate      Action = 131
	ActionCandidature Action = 132
	ActionLeader      Action = 133
)

// TSUPBit marks a TSUP action.
const TSUPBit = 0x80

func (a Action) String() string {
	switch a {
	case ActionSyn:
		return "SYN"
	case ActionHello:
		return "HELLO"
	case ActionSummary:
		return "SUMMARY"
	case ActionUpdate:
		return "UPDATE"
	case ActionCandidature:
		return "CANDIDATURE"
	case ActionLeader:
		return "LEADER"
	}
	return fmt.Sprintf("action(%d)", uint32(a))
}

// IsPacket reports whether b carries a TSUP action (bit 0x80 of the 32-bit
// action at offset 8), which is how a UDP tracker sharing its port with
// TSUP tells the two apart. It does not validate anything else.
func IsPacket(b []byte) bool {
	return len(b) >= 12 && be.Uint32(b[8:])&TSUPBit != 0
}

// Mode selects the peer encoding of UPDATE.
type Mode uint8

const (
	// Plain is XBT's encoding: IPv4 peers, NEG flag only.
	Plain Mode = iota
	// Extended adds IPv6 peers and the seed flag; both ends must have
	// negotiated it (SYN EXT).
	Extended
)

// Infohash is a swarm's 20-byte info_hash.
type Infohash [20]byte

func (h Infohash) String() string { return hex.EncodeToString(h[:]) }

// ErrMalformed is what every parse error wraps.
var ErrMalformed = errors.New("tsup/wire: malformed packet")

// More specific kinds, each of which also matches ErrMalformed.
var (
	ErrShort   = kind("packet too short")
	ErrLength  = kind("wrong packet length")
	ErrAction  = kind("not a TSUP action")
	ErrFlags   = kind("unknown flag bits")
	ErrPayload = kind("malformed payload")
	ErrPort    = kind("port 0 names no tracker")
	ErrMAC     = kind("bad or missing MAC")
)

type kindError struct{ msg string }

func kind(msg string) error { return &kindError{msg} }

func (e *kindError) Error() string        { return "tsup/wire: " + e.msg }
func (e *kindError) Is(target error) bool { return target == ErrMalformed }

func errf(k error, format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{k}, args...)...)
}

// Header is the common header. The action is implied by the message type.
type Header struct {
	ConnID uint64
	TxID   uint32
	Port   uint16
}

// PeekHeader reads the action and header of b without validating the body.
// It fails when b is shorter than the header, the action is not TSUP, or the
// port is 0.
func PeekHeader(b []byte) (Action, Header, error) {
	if len(b) < HeaderLen {
		return 0, Header{}, errf(ErrShort, "%d bytes, header needs %d", len(b), HeaderLen)
	}
	a := Action(be.Uint32(b[8:]))
	if a < ActionSyn || a > ActionLeader {
		return a, Header{}, errf(ErrAction, "%d", uint32(a))
	}
	h := Header{ConnID: be.Uint64(b), TxID: be.Uint32(b[12:]), Port: be.Uint16(b[16:])}
	if h.Port == 0 {
		return a, h, ErrPort
	}
	return a, h, nil
}

func appendHeader(b []byte, a Action, h Header) []byte {
	b = be.AppendUint64(b, h.ConnID)
	b = be.AppendUint32(b, uint32(a))
	b = be.AppendUint32(b, h.TxID)
	return be.AppendUint16(b, h.Port)
}

// header checks that b is a message of action want and returns its header.
func header(b []byte, want Action) (Header, error) {
	a, h, err := PeekHeader(b)
	if err != nil {
		return h, err
	}
	if a != want {
		return h, errf(ErrAction, "%v where %v was expected", a, want)
	}
	return h, nil
}

// flagsHeader is header plus the flags byte, checked against allowed.
func flagsHeader(b []byte, want Action, allowed uint8) (Header, uint8, error) {
	h, err := header(b, want)
	if err != nil {
		return h, 0, err
	}
	if len(b) < FlagsHeaderLen {
		return h, 0, errf(ErrShort, "%v of %d bytes has no flags", want, len(b))
	}
	f := b[18]
	if f&^allowed != 0 {
		return h, f, errf(ErrFlags, "%v flags %#02x", want, f)
	}
	return h, f, nil
}

// Message is a parsed TSUP packet: one of Syn, Hello, Summary, Update,
// Candidature, Leader.
type Message interface {
	Action() Action
	Hdr() Header
	// AppendTo appends the encoding in mode m (only UPDATE depends on it).
	AppendTo(b []byte, m Mode) []byte
}

// Parse decodes any TSUP packet; m is the peer encoding the link uses.
func Parse(b []byte, m Mode) (Message, error) {
	a, _, err := PeekHeader(b)
	if err != nil {
		return nil, err
	}
	switch a {
	case ActionSyn:
		return ParseSyn(b)
	case ActionHello:
		return ParseHello(b)
	case ActionSummary:
		return ParseSummary(b)
	case ActionUpdate:
		return ParseUpdate(b, m)
	case ActionCandidature:
		return ParseCandidature(b)
	case ActionLeader:
		return ParseLeader(b, m)
	default:
		return nil, errf(ErrAction, "%d", uint32(a)) // unreachable: PeekHeader checks
	}
}

// SYN flags.
const (
	SynAck = 0x01
	// SynExt: the sender is kadtracker and speaks Extended mode, the
	// ranked CANDIDATURE and the simultaneous-open tie-break. XBT ignores
	// the bit (it tests bit 0x01 only) and never sets it.
	SynExt = 0x80
)

// Syn is a SYN or SYN+ACK.
type Syn struct {
	Header
	Flags uint8
}

func (Syn) Action() Action                     { return ActionSyn }
func (m Syn) Hdr() Header                      { return m.Header }
func (m Syn) AppendTo(b []byte, _ Mode) []byte { return AppendSyn(b, m) }

// Ack reports a SYN+ACK.
func (m Syn) Ack() bool { return m.Flags&SynAck != 0 }

// Ext reports the kadtracker bit.
func (m Syn) Ext() bool { return m.Flags&SynExt != 0 }

// ParseSyn decodes a SYN (19 bytes).
func ParseSyn(b []byte) (Syn, error) {
	h, f, err := flagsHeader(b, ActionSyn, SynAck|SynExt)
	if err != nil {
		return Syn{}, err
	}
	if len(b) != FlagsHeaderLen {
		return Syn{}, errf(ErrLength, "SYN of %d bytes", len(b))
	}
	return Syn{Header: h, Flags: f}, nil
}

// AppendSyn appends a SYN.
func AppendSyn(b []byte, m Syn) []byte {
	return append(appendHeader(b, ActionSyn, m.Header), m.Flags)
}

// Hello is a keep-alive.
type Hello struct{ Header }

func (Hello) Action() Action                     { return ActionHello }
func (m Hello) Hdr() Header                      { return m.Header }
func (m Hello) AppendTo(b []byte, _ Mode) []byte { return AppendHello(b, m) }

// ParseHello decodes a HELLO (18 bytes). XBT always sends transaction 0;
// the field is not checked.
func ParseHello(b []byte) (Hello, error) {
	h, err := header(b, ActionHello)
	if err != nil {
		return Hello{}, err
	}
	if len(b) != HeaderLen {
		return Hello{}, errf(ErrLength, "HELLO of %d bytes", len(b))
	}
	return Hello{h}, nil
}

// AppendHello appends a HELLO.
func AppendHello(b []byte, m Hello) []byte { return appendHeader(b, ActionHello, m.Header) }

// SUMMARY entry flags and the border payload.
const (
	SummaryRemoved = 0x01
	SummaryBorder  = 0x04
)

// SummaryEntry says the sender has (or no longer has) a swarm.
type SummaryEntry struct {
	Infohash Infohash
	Removed  bool
}

// Summary lists the sender's swarms, or says it is a border tracker, in
// which case it lists none.
type Summary struct {
	Header
	Border  bool
	Entries []SummaryEntry
}

func (Summary) Action() Action                     { return ActionSummary }
func (m Summary) Hdr() Header                      { return m.Header }
func (m Summary) AppendTo(b []byte, _ Mode) []byte { return AppendSummary(b, m) }

// ParseSummary decodes a SUMMARY: a payload of n × 21 bytes (n may be 0) or
// the single byte 0x04.
func ParseSummary(b []byte) (Summary, error) {
	h, err := header(b, ActionSummary)
	if err != nil {
		return Summary{}, err
	}
	p := b[HeaderLen:]
	if len(p) == 1 {
		if p[0] != SummaryBorder {
			return Summary{}, errf(ErrPayload, "1-byte SUMMARY payload %#02x", p[0])
		}
		return Summary{Header: h, Border: true}, nil
	}
	if len(p)%SummaryEntryLen != 0 {
		return Summary{}, errf(ErrLength, "SUMMARY payload of %d bytes", len(p))
	}
	m := Summary{Header: h}
	if len(p) > 0 {
		m.Entries = make([]SummaryEntry, 0, len(p)/SummaryEntryLen)
	}
	for ; len(p) >= SummaryEntryLen; p = p[SummaryEntryLen:] {
		switch p[0] {
		case 0, SummaryRemoved:
		default:
			return Summary{}, errf(ErrFlags, "SUMMARY entry flag %#02x", p[0])
		}
		m.Entries = append(m.Entries, SummaryEntry{Infohash: Infohash(p[1:21]), Removed: p[0] == SummaryRemoved})
	}
	return m, nil
}

// AppendSummary appends a SUMMARY; a border Summary carries no entries.
func AppendSummary(b []byte, m Summary) []byte {
	b = appendHeader(b, ActionSummary, m.Header)
	if m.Border {
		return append(b, SummaryBorder)
	}
	for _, e := range m.Entries {
		var f byte
		if e.Removed {
			f = SummaryRemoved
		}
		b = append(append(b, f), e.Infohash[:]...)
	}
	return b
}

// UPDATE flags.
const (
	UpdateAck     = 0x01
	UpdateSummary = 0x02
	UpdateBorder  = 0x04
)

// UPDATE peer flags.
const (
	PeerDead = 0x01 // NEG: remove the peer
	PeerIPv6 = 0x02 // Extended: 16-byte address
	PeerSeed = 0x04 // Extended: the peer is a seed
)

// Peer is one UPDATE peer entry.
type Peer struct {
	Addr netip.AddrPort
	Dead bool
	Seed bool // Extended mode only
}

// Block is the peers of one swarm in an UPDATE.
type Block struct {
	Infohash Infohash
	Peers    []Peer
}

// Update carries peers (a data UPDATE, UPDATE+S or UPDATE+S+A) or
// acknowledges a data UPDATE (flags ACK, no blocks).
type Update struct {
	Header
	Flags  uint8
	Blocks []Block
}

func (Update) Action() Action                      { return ActionUpdate }
func (m Update) Hdr() Header                       { return m.Header }
func (m Update) AppendTo(b []byte, md Mode) []byte { return AppendUpdate(b, m, md) }

// IsAck reports a plain acknowledgement (ACK without SUMMARY).
func (m Update) IsAck() bool { return m.Flags&(UpdateAck|UpdateSummary) == UpdateAck }

// ParseUpdate decodes an UPDATE in mode md. A plain ACK must be empty.
func ParseUpdate(b []byte, md Mode) (Update, error) {
	h, f, err := flagsHeader(b, ActionUpdate, UpdateAck|UpdateSummary|UpdateBorder)
	if err != nil {
		return Update{}, err
	}
	m := Update{Header: h, Flags: f}
	p := b[FlagsHeaderLen:]
	if m.IsAck() && len(p) != 0 {
		return Update{}, errf(ErrLength, "UPDATE ACK with %d payload bytes", len(p))
	}
	for len(p) > 0 {
		if len(p) < BlockHeaderLen {
			return Update{}, errf(ErrShort, "UPDATE block header cut at %d bytes", len(p))
		}
		blk := Block{Infohash: Infohash(p[:20])}
		n := int(p[20])
		if n > MaxBlockPeers {
			return Update{}, errf(ErrPayload, "UPDATE block of %d peers", n)
		}
		p = p[BlockHeaderLen:]
		if n > 0 {
			blk.Peers = make([]Peer, 0, n)
		}
		for range n {
			var pe Peer
			if pe, p, err = parsePeer(p, md); err != nil {
				return Update{}, err
			}
			blk.Peers = append(blk.Peers, pe)
		}
		m.Blocks = append(m.Blocks, blk)
	}
	return m, nil
}

func parsePeer(p []byte, md Mode) (Peer, []byte, error) {
	if len(p) < 1 {
		return Peer{}, nil, errf(ErrShort, "UPDATE peer cut")
	}
	f := p[0]
	allowed := uint8(PeerDead)
	if md == Extended {
		allowed |= PeerIPv6 | PeerSeed
	}
	if f&^allowed != 0 {
		return Peer{}, nil, errf(ErrFlags, "UPDATE peer flags %#02x", f)
	}
	alen := 4
	if f&PeerIPv6 != 0 {
		alen = 16
	}
	if len(p) < 1+alen+2 {
		return Peer{}, nil, errf(ErrShort, "UPDATE peer cut")
	}
	var a netip.Addr
	if alen == 4 {
		a = netip.AddrFrom4([4]byte(p[1:5]))
	} else {
		a = netip.AddrFrom16([16]byte(p[1:17]))
		if a.Is4In6() {
			return Peer{}, nil, errf(ErrPayload, "IPv4-mapped address in an IPv6 peer entry")
		}
	}
	port := be.Uint16(p[1+alen:])
	return Peer{Addr: netip.AddrPortFrom(a, port), Dead: f&PeerDead != 0, Seed: f&PeerSeed != 0}, p[1+alen+2:], nil
}

// Encodable reports whether p can be sent in mode md: an IPv4 address (an
// IPv4-mapped one counts) in any mode, IPv6 in Extended mode only.
func Encodable(p Peer, md Mode) bool {
	a := p.Addr.Addr()
	return a.Is4() || a.Is4In6() || (md == Extended && a.Is6())
}

// AppendUpdate appends an UPDATE in mode md. Blocks must hold at most
// MaxBlockPeers peers, each Encodable in md; an IPv4-mapped address is sent
// as IPv4 and the seed bit only in Extended mode.
func AppendUpdate(b []byte, m Update, md Mode) []byte {
	b = append(appendHeader(b, ActionUpdate, m.Header), m.Flags)
	for _, blk := range m.Blocks {
		b = append(b, blk.Infohash[:]...)
		b = append(b, byte(len(blk.Peers)))
		for _, p := range blk.Peers {
			b = appendPeer(b, p, md)
		}
	}
	return b
}

func appendPeer(b []byte, p Peer, md Mode) []byte {
	var f byte
	if p.Dead {
		f |= PeerDead
	}
	if p.Seed && md == Extended {
		f |= PeerSeed
	}
	a := p.Addr.Addr().Unmap()
	if a.Is4() {
		b = append(b, f)
		a4 := a.As4()
		b = append(b, a4[:]...)
	} else {
		b = append(b, f|PeerIPv6)
		a16 := a.As16()
		b = append(b, a16[:]...)
	}
	return be.AppendUint16(b, p.Addr.Port())
}

// BlockLen is the encoded size of a block with peers ps (mode-independent
// for IPv4; IPv6 peers count PeerLen6).
func BlockLen(ps []Peer) int {
	n := BlockHeaderLen
	for _, p := range ps {
		if p.Addr.Addr().Unmap().Is4() {
			n += PeerLen4
		} else {
			n += PeerLen6
		}
	}
	return n
}

// CANDIDATURE and LEADER flag.
const FlagAck = 0x01

// Candidature announces the sender's mandate count for an election, or
// acknowledges one (Ack: no body).
type Candidature struct {
	Header
	Ack      bool
	Mandates int32
	// HasRank: kadtracker's election rank and campaign epoch follow the
	// mandates. XBT reads only the mandates and ignores the rest.
	HasRank bool
	Rank    uint64
	Epoch   uint32
}

func (Candidature) Action() Action                     { return ActionCandidature }
func (m Candidature) Hdr() Header                      { return m.Header }
func (m Candidature) AppendTo(b []byte, _ Mode) []byte { return AppendCandidature(b, m) }

// ParseCandidature decodes a CANDIDATURE: 19 bytes for an ACK, else 23, or
// 35 with rank and epoch.
func ParseCandidature(b []byte) (Candidature, error) {
	h, f, err := flagsHeader(b, ActionCandidature, FlagAck)
	if err != nil {
		return Candidature{}, err
	}
	m := Candidature{Header: h, Ack: f&FlagAck != 0}
	switch {
	case m.Ack && len(b) == FlagsHeaderLen:
	case !m.Ack && len(b) == CandidatureLen:
		m.Mandates = int32(be.Uint32(b[19:]))
	case !m.Ack && len(b) == CandidatureRankLen:
		m.Mandates = int32(be.Uint32(b[19:]))
		m.HasRank, m.Rank, m.Epoch = true, be.Uint64(b[23:]), be.Uint32(b[31:])
	default:
		return Candidature{}, errf(ErrLength, "CANDIDATURE (ack %v) of %d bytes", m.Ack, len(b))
	}
	return m, nil
}

// AppendCandidature appends a CANDIDATURE.
func AppendCandidature(b []byte, m Candidature) []byte {
	b = appendHeader(b, ActionCandidature, m.Header)
	if m.Ack {
		return append(b, FlagAck)
	}
	b = be.AppendUint32(append(b, 0), uint32(m.Mandates))
	if m.HasRank {
		b = be.AppendUint32(be.AppendUint64(b, m.Rank), m.Epoch)
	}
	return b
}

// Leader says the sender leads the listed swarms (for the kind of the link
// it arrives on), or acknowledges such a notice (Ack: no body). In Extended
// mode a notice starts with the sender's election rank, so the receiver
// can settle a conflict between two claimants the same way both of them do.
type Leader struct {
	Header
	Ack        bool
	HasRank    bool
	Rank       uint64
	Infohashes []Infohash
}

func (Leader) Action() Action                      { return ActionLeader }
func (m Leader) Hdr() Header                       { return m.Header }
func (m Leader) AppendTo(b []byte, md Mode) []byte { return AppendLeader(b, m, md) }

// ParseLeader decodes a LEADER in mode md: 19 bytes for an ACK, else
// 19 + 20·n with n ≥ 1 (Plain; XBT sends one info_hash and accepts any
// number), or 19 + 8 + 20·n (Extended: the rank first).
func ParseLeader(b []byte, md Mode) (Leader, error) {
	h, f, err := flagsHeader(b, ActionLeader, FlagAck)
	if err != nil {
		return Leader{}, err
	}
	m := Leader{Header: h, Ack: f&FlagAck != 0}
	p := b[FlagsHeaderLen:]
	if m.Ack {
		if len(p) != 0 {
			return Leader{}, errf(ErrLength, "LEADER ACK with %d payload bytes", len(p))
		}
		return m, nil
	}
	if md == Extended {
		if len(p) < 8 {
			return Leader{}, errf(ErrShort, "extended LEADER without a rank")
		}
		m.HasRank, m.Rank = true, be.Uint64(p)
		p = p[8:]
	}
	if len(p) == 0 || len(p)%20 != 0 {
		return Leader{}, errf(ErrLength, "LEADER payload of %d info_hash bytes", len(p))
	}
	m.Infohashes = make([]Infohash, 0, len(p)/20)
	for ; len(p) >= 20; p = p[20:] {
		m.Infohashes = append(m.Infohashes, Infohash(p[:20]))
	}
	return m, nil
}

// AppendLeader appends a LEADER in mode md; the rank goes out in Extended
// mode only.
func AppendLeader(b []byte, m Leader, md Mode) []byte {
	b = appendHeader(b, ActionLeader, m.Header)
	if m.Ack {
		return append(b, FlagAck)
	}
	b = append(b, 0)
	if md == Extended {
		b = be.AppendUint64(b, m.Rank)
	}
	for _, h := range m.Infohashes {
		b = append(b, h[:]...)
	}
	return b
}
