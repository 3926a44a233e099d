package wire

import (
	"net/netip"
	"strconv"
)

// Event is an announce event. The values are BEP 15's (0 none, 1 completed,
// 2 started, 3 stopped) plus 4 for BEP 21's paused, as libtorrent sends it.
type Event uint8

const (
	EventNone Event = iota
	EventCompleted
	EventStarted
	EventStopped
	EventPaused
)

// String returns the HTTP spelling ("" for EventNone).
func (e Event) String() string {
	switch e {
	case EventNone:
		return ""
	case EventCompleted:
		return "completed"
	case EventStarted:
		return "started"
	case EventStopped:
		return "stopped"
	case EventPaused:
		return "paused"
	}
	return "event(" + strconv.Itoa(int(e)) + ")"
}

// MaxKeyLen caps the opaque HTTP "key" parameter (clients send 8 hex digits
// or 8 binary bytes).
const MaxKeyLen = 64

// AnnounceRequest is an HTTP announce (BEP 3, 7, 21, 23).
type AnnounceRequest struct {
	InfoHash   [20]byte
	PeerID     [20]byte
	Port       uint16
	Uploaded   int64
	Downloaded int64
	Left       int64
	Event      Event
	// Compact is true unless the client sent compact=0 (every real client
	// sends compact=1; BEP 23 lets a tracker prefer compact anyway).
	Compact bool
	// NumWant is the number of peers wanted, -1 when absent or negative
	// (the tracker's default).
	NumWant int
	// IP is the "ip" parameter when it is an IP literal; zero when absent
	// or a DNS name (BEP 3 allows one; nothing here resolves names).
	IP       netip.Addr
	Key      string // opaque, at most MaxKeyLen bytes
	NoPeerID bool
}

// PeerForm says how an HTTP announce response lists peers.
type PeerForm uint8

const (
	FormCompact      PeerForm = iota // BEP 23 "peers" and BEP 7 "peers6" strings
	FormDict                         // list of {ip, peer id, port} dictionaries
	FormDictNoPeerID                 // list of {ip, port} dictionaries
)

// PeerForm is the response form the request asks for.
func (r *AnnounceRequest) PeerForm() PeerForm {
	switch {
	case r.Compact:
		return FormCompact
	case r.NoPeerID:
		return FormDictNoPeerID
	}
	return FormDict
}

// ParseAnnounce parses the raw (still escaped) query of GET /announce.
//
// Required: info_hash and peer_id (exactly 20 bytes each after unescaping),
// port, uploaded, downloaded, left. Optional: event (started, completed,
// stopped, paused, empty), compact (0/1), numwant, ip, key, no_peer_id (0/1).
// Any other parameter is tolerated and ignored (supportcrypto, corrupt,
// redundant, ipv4, ipv6, trackerid, requirecrypto, cryptoport, ...). A
// parameter this function reads may appear only once. Escapes may be upper
// or lower case; '+' is a literal plus. Every error is an *Error whose text
// is a fit "failure reason".
func ParseAnnounce(rawQuery string) (AnnounceRequest, error) {
	r := AnnounceRequest{Compact: true, NumWant: -1}
	if len(rawQuery) > MaxQueryLen {
		return r, errf(ErrBadQuery, "query of %d bytes exceeds %d", len(rawQuery), MaxQueryLen)
	}
	const (
		hInfoHash = 1 << iota
		hPeerID
		hPort
		hUploaded
		hDownloaded
		hLeft
		hEvent
		hCompact
		hNumWant
		hIP
		hKey
		hNoPeerID
		required = hInfoHash | hPeerID | hPort | hUploaded | hDownloaded | hLeft
	)
	var have uint
	q := rawQuery
	for n := 0; q != ""; n++ {
		if n >= MaxQueryParams {
			return r, errf(ErrBadQuery, "more than %d query parameters", MaxQueryParams)
		}
		var p param
		p, q = nextParam(q)
		if p.key == "" {
			continue
		}
		key, ok := unescape(p.key)
		if !ok {
			return r, errf(ErrBadQuery, "malformed percent-escape in parameter name %s", quote(p.key))
		}
		var bit uint
		switch key {
		case "info_hash":
			bit = hInfoHash
		case "peer_id":
			bit = hPeerID
		case "port":
			bit = hPort
		case "uploaded":
			bit = hUploaded
		case "downloaded":
			bit = hDownloaded
		case "left":
			bit = hLeft
		case "event":
			bit = hEvent
		case "compact":
			bit = hCompact
		case "numwant":
			bit = hNumWant
		case "ip":
			bit = hIP
		case "key":
			bit = hKey
		case "no_peer_id":
			bit = hNoPeerID
		default:
			continue // tolerated extra
		}
		if have&bit != 0 {
			return r, errf(ErrBadQuery, "%s given more than once", key)
		}
		have |= bit
		var err error
		switch bit {
		case hInfoHash:
			err = parseHash20(&r.InfoHash, key, p.val)
		case hPeerID:
			err = parseHash20(&r.PeerID, key, p.val)
		case hPort:
			var v int64
			v, err = parseUint(key, p.val, 65535)
			r.Port = uint16(v)
		case hUploaded:
			r.Uploaded, err = parseUint(key, p.val, 1<<63-1)
		case hDownloaded:
			r.Downloaded, err = parseUint(key, p.val, 1<<63-1)
		case hLeft:
			r.Left, err = parseUint(key, p.val, 1<<63-1)
		case hEvent:
			r.Event, err = parseEvent(p.val)
		case hCompact:
			r.Compact, err = parseBool(key, p.val)
		case hNoPeerID:
			r.NoPeerID, err = parseBool(key, p.val)
		case hNumWant:
			r.NumWant, err = parseNumWant(p.val)
		case hIP:
			s, ok := unescape(p.val)
			if !ok {
				return r, errf(ErrBadQuery, "malformed percent-escape in ip")
			}
			if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
				r.IP = a
			}
		case hKey:
			s, ok := unescape(p.val)
			switch {
			case !ok:
				err = errf(ErrBadQuery, "malformed percent-escape in key")
			case len(s) > MaxKeyLen:
				err = errf(ErrBadQuery, "key must be at most %d bytes, got %d", MaxKeyLen, len(s))
			}
			r.Key = s
		}
		if err != nil {
			return r, err
		}
	}
	if missing := required &^ have; missing != 0 {
		for _, m := range []struct {
			bit  uint
			name string
		}{{hInfoHash, "info_hash"}, {hPeerID, "peer_id"}, {hPort, "port"}, {hUploaded, "uploaded"}, {hDownloaded, "downloaded"}, {hLeft, "left"}} {
			if missing&m.bit != 0 {
				return r, errf(ErrBadQuery, "missing %s", m.name)
			}
		}
	}
	return r, nil
}

func parseHash20(dst *[20]byte, name, val string) error {
	n, ok := unescapeInto(dst[:], val)
	switch {
	case !ok:
		return errf(ErrBadQuery, "malformed percent-escape in %s", name)
	case n != 20:
		return errf(ErrBadQuery, "%s must be 20 bytes, got %d", name, n)
	}
	return nil
}

// parseUint reads a plain decimal number in [0, max]. Escaped digits are not
// digits: no client escapes them.
func parseUint(name, val string, max int64) (int64, error) {
	if val == "" {
		return 0, errf(ErrBadQuery, "%s is empty", name)
	}
	if len(val) > 19 {
		return 0, errf(ErrBadQuery, "%s out of range: %s", name, quote(val))
	}
	var n int64
	for i := 0; i < len(val); i++ {
		c := val[i]
		if c < '0' || c > '9' {
			return 0, errf(ErrBadQuery, "%s must be a decimal number, got %s", name, quote(val))
		}
		n = n*10 + int64(c-'0')
		if n < 0 { // 19 digits may overflow int64
			return 0, errf(ErrBadQuery, "%s out of range: %s", name, quote(val))
		}
	}
	if n > max {
		return 0, errf(ErrBadQuery, "%s must be at most %d, got %s", name, max, quote(val))
	}
	return n, nil
}

func parseNumWant(val string) (int, error) {
	if len(val) > 0 && val[0] == '-' {
		if _, err := parseUint("numwant", val[1:], 1<<31-1); err != nil {
			return 0, err
		}
		return -1, nil // rtorrent's -1 and any negative: the default
	}
	n, err := parseUint("numwant", val, 1<<31-1)
	return int(n), err
}

func parseBool(name, val string) (bool, error) {
	switch val {
	case "1":
		return true, nil
	case "0":
		return false, nil
	}
	return false, errf(ErrBadQuery, "%s must be 0 or 1, got %s", name, quote(val))
}

func parseEvent(val string) (Event, error) {
	switch val {
	case "", "empty":
		return EventNone, nil
	case "started":
		return EventStarted, nil
	case "completed":
		return EventCompleted, nil
	case "stopped":
		return EventStopped, nil
	case "paused":
		return EventPaused, nil
	}
	return EventNone, errf(ErrBadQuery, "unknown event %s", quote(val))
}

// AppendAnnounceQuery appends the query string of r (without '?'), the
// client side of ParseAnnounce: ParseAnnounce(string(AppendAnnounceQuery(nil,
// r))) returns r for every r that ParseAnnounce can return.
func AppendAnnounceQuery(dst []byte, r *AnnounceRequest) []byte {
	dst = append(dst, "info_hash="...)
	dst = appendEscaped(dst, string(r.InfoHash[:]))
	dst = append(dst, "&peer_id="...)
	dst = appendEscaped(dst, string(r.PeerID[:]))
	dst = append(dst, "&port="...)
	dst = strconv.AppendUint(dst, uint64(r.Port), 10)
	dst = append(dst, "&uploaded="...)
	dst = strconv.AppendInt(dst, max(r.Uploaded, 0), 10)
	dst = append(dst, "&downloaded="...)
	dst = strconv.AppendInt(dst, max(r.Downloaded, 0), 10)
	dst = append(dst, "&left="...)
	dst = strconv.AppendInt(dst, max(r.Left, 0), 10)
	if e := r.Event.String(); e != "" && r.Event <= EventPaused {
		dst = append(dst, "&event="...)
		dst = append(dst, e...)
	}
	if r.Compact {
		dst = append(dst, "&compact=1"...)
	} else {
		dst = append(dst, "&compact=0"...)
	}
	if r.NumWant >= 0 {
		dst = append(dst, "&numwant="...)
		dst = strconv.AppendInt(dst, int64(r.NumWant), 10)
	}
	if r.Key != "" {
		dst = append(dst, "&key="...)
		dst = appendEscaped(dst, r.Key)
	}
	if r.NoPeerID {
		dst = append(dst, "&no_peer_id=1"...)
	}
	if r.IP.IsValid() {
		dst = append(dst, "&ip="...)
		dst = appendEscaped(dst, r.IP.String())
	}
	return dst
}
