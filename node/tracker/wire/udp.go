package wire

import (
	"encoding/binary"
	"net/netip"
	"strconv"
	"time"
)

// ProtocolID is the magic constant of a BEP 15 connect request.
const ProtocolID uint64 = 0x41727101980

// Action is a BEP 15 action.
type Action uint32

const (
	ActionConnect  Action = 0
	ActionAnnounce Action = 1
	ActionScrape   Action = 2
	ActionError    Action = 3
)

func (a Action) String() string {
	switch a {
	case ActionConnect:
		return "connect"
	case ActionAnnounce:
		return "announce"
	case ActionScrape:
		return "scrape"
	case ActionError:
		return "error"
	}
	return "action(" + strconv.FormatUint(uint64(a), 10) + ")"
}

// BEP 15 sizes.
const (
	UDPHeaderLen          = 16 // requests: connection ID (or magic), action, transaction ID
	UDPConnectLen         = 16 // connect request and response
	UDPAnnounceLen        = 98 // announce request without BEP 41 options
	UDPAnnounceRespLen    = 20 // announce response without peers
	UDPResponseHeaderLen  = 8  // responses: action, transaction ID
	udpScrapeEntryLen     = 12
	MaxUDPErrorMessageLen = 1024
)

// BEP 41 option types.
const (
	optEndOfOptions = 0x0
	optNOP          = 0x1
	optURLData      = 0x2
)

var be = binary.BigEndian

// PeekUDPRequest reads the header every request starts with: connection ID
// (the magic ProtocolID in a connect), action, transaction ID. ok is false
// when b is too short to carry a transaction ID; such a packet gets no answer.
func PeekUDPRequest(b []byte) (connID uint64, action Action, txID uint32, ok bool) {
	if len(b) < UDPHeaderLen {
		return 0, 0, 0, false
	}
	return be.Uint64(b), Action(be.Uint32(b[8:])), be.Uint32(b[12:]), true
}

// PeekUDPResponse reads the action and transaction ID a response starts with.
func PeekUDPResponse(b []byte) (action Action, txID uint32, ok bool) {
	if len(b) < UDPResponseHeaderLen {
		return 0, 0, false
	}
	return Action(be.Uint32(b)), be.Uint32(b[4:]), true
}

// trailingZeros reports whether b is all zero bytes (clients pad: aria2
// sends two zero bytes after a 98-byte announce).
func trailingZeros(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

func packetErr(format string, args ...any) *Error { return errf(ErrBadPacket, format, args...) }

func checkRequest(b []byte, want Action, min int) error {
	if len(b) < min {
		return packetErr("%s request of %d bytes, want at least %d", want, len(b), min)
	}
	if a := Action(be.Uint32(b[8:])); a != want {
		return packetErr("%s where %s expected", a, want)
	}
	return nil
}

func checkResponse(b []byte, want Action, min int) error {
	if len(b) < min {
		return packetErr("%s response of %d bytes, want at least %d", want, len(b), min)
	}
	if a := Action(be.Uint32(b)); a != want {
		return packetErr("%s where %s expected", a, want)
	}
	return nil
}

// ConnectRequest is a BEP 15 connect request.
type ConnectRequest struct {
	TransactionID uint32
}

// ParseConnectRequest parses a connect request: magic, action 0, transaction
// ID; trailing zero bytes are tolerated.
func ParseConnectRequest(b []byte) (ConnectRequest, error) {
	if err := checkRequest(b, ActionConnect, UDPConnectLen); err != nil {
		return ConnectRequest{}, err
	}
	if m := be.Uint64(b); m != ProtocolID {
		return ConnectRequest{}, packetErr("connect without the protocol ID 0x41727101980 (got %#x)", m)
	}
	if !trailingZeros(b[UDPConnectLen:]) {
		return ConnectRequest{}, packetErr("%d bytes after the connect request", len(b)-UDPConnectLen)
	}
	return ConnectRequest{TransactionID: be.Uint32(b[12:])}, nil
}

// AppendConnectRequest appends the 16-byte request.
func AppendConnectRequest(dst []byte, r ConnectRequest) []byte {
	dst = be.AppendUint64(dst, ProtocolID)
	dst = be.AppendUint32(dst, uint32(ActionConnect))
	return be.AppendUint32(dst, r.TransactionID)
}

// ConnectResponse is a BEP 15 connect response.
type ConnectResponse struct {
	TransactionID uint32
	ConnectionID  uint64
}

// ParseConnectResponse parses exactly 16 bytes.
func ParseConnectResponse(b []byte) (ConnectResponse, error) {
	if err := checkResponse(b, ActionConnect, UDPConnectLen); err != nil {
		return ConnectResponse{}, err
	}
	if len(b) != UDPConnectLen {
		return ConnectResponse{}, packetErr("connect response of %d bytes, want %d", len(b), UDPConnectLen)
	}
	return ConnectResponse{TransactionID: be.Uint32(b[4:]), ConnectionID: be.Uint64(b[8:])}, nil
}

// AppendConnectResponse appends the 16-byte response.
func AppendConnectResponse(dst []byte, r ConnectResponse) []byte {
	dst = be.AppendUint32(dst, uint32(ActionConnect))
	dst = be.AppendUint32(dst, r.TransactionID)
	return be.AppendUint64(dst, r.ConnectionID)
}

// UDPAnnounceRequest is a BEP 15 announce with its BEP 41 options.
type UDPAnnounceRequest struct {
	ConnectionID  uint64
	TransactionID uint32
	InfoHash      [20]byte
	PeerID        [20]byte
	Downloaded    int64
	Left          int64
	Uploaded      int64
	Event         Event
	// IP is the IPv4 "IP address" field; zero when the field is 0 (the
	// default: use the sender's address).
	IP      netip.Addr
	Key     uint32
	NumWant int32 // -1: the tracker's default
	Port    uint16
	// URLData is the concatenated BEP 41 URLData options: the path and
	// query of the udp:// tracker URL ("/announce" from qBittorrent).
	URLData string
}

// ParseUDPAnnounceRequest parses an announce: 98 fixed bytes, then BEP 41
// options. EndOfOptions (a zero byte) ends the options and whatever follows is
// ignored, so trailing zero padding is harmless; NOP is skipped; URLData
// options are concatenated; any other option type is skipped by its length
// byte, as BEP 41 asks. An option running past the end is an error, as is an
// event other than 0-4.
func ParseUDPAnnounceRequest(b []byte) (UDPAnnounceRequest, error) {
	var r UDPAnnounceRequest
	if err := checkRequest(b, ActionAnnounce, UDPAnnounceLen); err != nil {
		return r, err
	}
	r.ConnectionID = be.Uint64(b)
	r.TransactionID = be.Uint32(b[12:])
	copy(r.InfoHash[:], b[16:36])
	copy(r.PeerID[:], b[36:56])
	r.Downloaded = int64(be.Uint64(b[56:]))
	r.Left = int64(be.Uint64(b[64:]))
	r.Uploaded = int64(be.Uint64(b[72:]))
	ev := be.Uint32(b[80:])
	if ev > uint32(EventPaused) {
		return r, packetErr("unknown event %d", ev)
	}
	r.Event = Event(ev)
	if ip := [4]byte(b[84:88]); ip != [4]byte{} {
		r.IP = netip.AddrFrom4(ip)
	}
	r.Key = be.Uint32(b[88:])
	r.NumWant = int32(be.Uint32(b[92:]))
	r.Port = be.Uint16(b[96:])
	opts := b[UDPAnnounceLen:]
	for i := 0; i < len(opts); {
		switch opts[i] {
		case optEndOfOptions:
			i = len(opts)
		case optNOP:
			i++
		default:
			if i+1 >= len(opts) {
				return r, packetErr("BEP 41 option %d without a length byte", opts[i])
			}
			n := int(opts[i+1])
			if i+2+n > len(opts) {
				return r, packetErr("BEP 41 option %d of %d bytes runs past the end", opts[i], n)
			}
			if opts[i] == optURLData {
				r.URLData += string(opts[i+2 : i+2+n])
			}
			i += 2 + n
		}
	}
	return r, nil
}

// AppendUDPAnnounceRequest appends the 98-byte announce, then URLData as
// BEP 41 options of at most 255 bytes each (no EndOfOptions, as qBittorrent).
func AppendUDPAnnounceRequest(dst []byte, r *UDPAnnounceRequest) []byte {
	dst = be.AppendUint64(dst, r.ConnectionID)
	dst = be.AppendUint32(dst, uint32(ActionAnnounce))
	dst = be.AppendUint32(dst, r.TransactionID)
	dst = append(dst, r.InfoHash[:]...)
	dst = append(dst, r.PeerID[:]...)
	dst = be.AppendUint64(dst, uint64(r.Downloaded))
	dst = be.AppendUint64(dst, uint64(r.Left))
	dst = be.AppendUint64(dst, uint64(r.Uploaded))
	dst = be.AppendUint32(dst, uint32(r.Event))
	var ip [4]byte
	if r.IP.Unmap().Is4() {
		ip = r.IP.Unmap().As4()
	}
	dst = append(dst, ip[:]...)
	dst = be.AppendUint32(dst, r.Key)
	dst = be.AppendUint32(dst, uint32(r.NumWant))
	dst = be.AppendUint16(dst, r.Port)
	for u := r.URLData; u != ""; {
		n := min(len(u), 255)
		dst = append(dst, optURLData, byte(n))
		dst = append(dst, u[:n]...)
		u = u[n:]
	}
	return dst
}

// UDPAnnounceResponse is a BEP 15 announce response. Its peer layout is 6
// bytes per peer when the request came over IPv4 and 18 bytes over IPv6:
// the address family of the request's source picks it, the packet does not
// say, so both directions take an ipv6 flag.
type UDPAnnounceResponse struct {
	TransactionID uint32
	Interval      time.Duration // whole seconds, at most MaxIntervalSeconds
	Leechers      int32
	Seeders       int32
	Peers         []netip.AddrPort
}

// AppendUDPAnnounceResponse appends the response in the IPv4 layout (peers
// that are IPv4 or IPv4-mapped) or the IPv6 layout (IPv6 peers, IPv4-mapped
// ones included). Peers that do not fit the layout are skipped.
func AppendUDPAnnounceResponse(dst []byte, r *UDPAnnounceResponse, ipv6 bool) []byte {
	dst = be.AppendUint32(dst, uint32(ActionAnnounce))
	dst = be.AppendUint32(dst, r.TransactionID)
	dst = be.AppendUint32(dst, uint32(min(max(r.Interval/time.Second, 0), MaxIntervalSeconds)))
	dst = be.AppendUint32(dst, uint32(r.Leechers))
	dst = be.AppendUint32(dst, uint32(r.Seeders))
	for _, p := range r.Peers {
		a := p.Addr()
		switch {
		case !ipv6 && (a.Is4() || a.Is4In6()):
			b := a.Unmap().As4()
			dst = append(dst, b[:]...)
		case ipv6 && a.Is6():
			b := a.As16()
			dst = append(dst, b[:]...)
		default:
			continue
		}
		dst = be.AppendUint16(dst, p.Port())
	}
	return dst
}

// ParseUDPAnnounceResponse parses a response in the layout of the family the
// request went out on.
func ParseUDPAnnounceResponse(b []byte, ipv6 bool) (UDPAnnounceResponse, error) {
	var r UDPAnnounceResponse
	if err := checkResponse(b, ActionAnnounce, UDPAnnounceRespLen); err != nil {
		return r, err
	}
	r.TransactionID = be.Uint32(b[4:])
	iv := be.Uint32(b[8:])
	if iv > MaxIntervalSeconds {
		return r, packetErr("negative interval")
	}
	r.Interval = time.Duration(iv) * time.Second
	r.Leechers = int32(be.Uint32(b[12:]))
	r.Seeders = int32(be.Uint32(b[16:]))
	ipLen := 4
	if ipv6 {
		ipLen = 16
	}
	peers := b[UDPAnnounceRespLen:]
	if len(peers)%(ipLen+2) != 0 {
		return r, packetErr("announce response peers of %d bytes, not a multiple of %d", len(peers), ipLen+2)
	}
	if len(peers) > 0 {
		r.Peers = make([]netip.AddrPort, 0, len(peers)/(ipLen+2))
	}
	for i := 0; i < len(peers); i += ipLen + 2 {
		var a netip.Addr
		if ipv6 {
			a = netip.AddrFrom16([16]byte(peers[i : i+16]))
		} else {
			a = netip.AddrFrom4([4]byte(peers[i : i+4]))
		}
		r.Peers = append(r.Peers, netip.AddrPortFrom(a, be.Uint16(peers[i+ipLen:])))
	}
	return r, nil
}

// UDPScrapeRequest is a BEP 15 scrape request.
type UDPScrapeRequest struct {
	ConnectionID  uint64
	TransactionID uint32
	InfoHashes    [][20]byte // 1 to MaxScrapeHashes
}

// ParseUDPScrapeRequest parses a scrape of 1 to MaxScrapeHashes infohashes;
// the length must be exact (padding would be read as a hash).
func ParseUDPScrapeRequest(b []byte) (UDPScrapeRequest, error) {
	var r UDPScrapeRequest
	if err := checkRequest(b, ActionScrape, UDPHeaderLen+20); err != nil {
		return r, err
	}
	body := b[UDPHeaderLen:]
	if len(body)%20 != 0 {
		return r, packetErr("scrape body of %d bytes, not a multiple of 20", len(body))
	}
	if n := len(body) / 20; n > MaxScrapeHashes {
		return r, packetErr("scrape of %d infohashes, at most %d", n, MaxScrapeHashes)
	}
	r.ConnectionID = be.Uint64(b)
	r.TransactionID = be.Uint32(b[12:])
	r.InfoHashes = make([][20]byte, len(body)/20)
	for i := range r.InfoHashes {
		copy(r.InfoHashes[i][:], body[20*i:])
	}
	return r, nil
}

// AppendUDPScrapeRequest appends the request.
func AppendUDPScrapeRequest(dst []byte, r *UDPScrapeRequest) []byte {
	dst = be.AppendUint64(dst, r.ConnectionID)
	dst = be.AppendUint32(dst, uint32(ActionScrape))
	dst = be.AppendUint32(dst, r.TransactionID)
	for i := range r.InfoHashes {
		dst = append(dst, r.InfoHashes[i][:]...)
	}
	return dst
}

// UDPScrapeStats is one entry of a scrape response, in request order.
type UDPScrapeStats struct {
	Seeders   int32
	Completed int32
	Leechers  int32
}

// UDPScrapeResponse is a BEP 15 scrape response.
type UDPScrapeResponse struct {
	TransactionID uint32
	Stats         []UDPScrapeStats
}

// ParseUDPScrapeResponse parses a response of 0 or more 12-byte entries.
func ParseUDPScrapeResponse(b []byte) (UDPScrapeResponse, error) {
	var r UDPScrapeResponse
	if err := checkResponse(b, ActionScrape, UDPResponseHeaderLen); err != nil {
		return r, err
	}
	body := b[UDPResponseHeaderLen:]
	if len(body)%udpScrapeEntryLen != 0 {
		return r, packetErr("scrape response body of %d bytes, not a multiple of 12", len(body))
	}
	r.TransactionID = be.Uint32(b[4:])
	if len(body) > 0 {
		r.Stats = make([]UDPScrapeStats, len(body)/udpScrapeEntryLen)
	}
	for i := range r.Stats {
		e := body[i*udpScrapeEntryLen:]
		r.Stats[i] = UDPScrapeStats{int32(be.Uint32(e)), int32(be.Uint32(e[4:])), int32(be.Uint32(e[8:]))}
	}
	return r, nil
}

// AppendUDPScrapeResponse appends the response.
func AppendUDPScrapeResponse(dst []byte, r *UDPScrapeResponse) []byte {
	dst = be.AppendUint32(dst, uint32(ActionScrape))
	dst = be.AppendUint32(dst, r.TransactionID)
	for _, s := range r.Stats {
		dst = be.AppendUint32(dst, uint32(s.Seeders))
		dst = be.AppendUint32(dst, uint32(s.Completed))
		dst = be.AppendUint32(dst, uint32(s.Leechers))
	}
	return dst
}

// UDPError is a BEP 15 error response.
type UDPError struct {
	TransactionID uint32
	Message       string
}

// ParseUDPError parses an error response; the message is the rest of the
// packet, at most MaxUDPErrorMessageLen bytes.
func ParseUDPError(b []byte) (UDPError, error) {
	if err := checkResponse(b, ActionError, UDPResponseHeaderLen); err != nil {
		return UDPError{}, err
	}
	msg := b[UDPResponseHeaderLen:]
	if len(msg) > MaxUDPErrorMessageLen {
		return UDPError{}, packetErr("error message of %d bytes, at most %d", len(msg), MaxUDPErrorMessageLen)
	}
	return UDPError{TransactionID: be.Uint32(b[4:]), Message: string(msg)}, nil
}

// AppendUDPError appends an error response; the message is cut to
// MaxUDPErrorMessageLen bytes.
func AppendUDPError(dst []byte, r UDPError) []byte {
	dst = be.AppendUint32(dst, uint32(ActionError))
	dst = be.AppendUint32(dst, r.TransactionID)
	msg := r.Message
	if len(msg) > MaxUDPErrorMessageLen {
		msg = msg[:MaxUDPErrorMessageLen]
	}
	return append(dst, msg...)
}
