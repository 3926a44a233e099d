package wire

import (
	"net/netip"
	"time"
)

// Peer is one peer of an announce response.
type Peer struct {
	Addr netip.AddrPort
	// ID is the 20-byte peer id, "" when unknown. Only the dictionary
	// form carries it.
	ID string
}

// AnnounceResponse is a successful HTTP announce response. Intervals travel
// as whole seconds.
type AnnounceResponse struct {
	Interval    time.Duration
	MinInterval time.Duration // 0: not sent
	Complete    int           // seeders
	Incomplete  int           // leechers
	Peers       []Peer
	Warning     string // "warning message", "" when none
	// ExternalIP is BEP 24's "external ip": the requester's address as the
	// tracker sees it, 4 or 16 bytes on the wire; the zero Addr when not sent.
	ExternalIP netip.Addr
}

// MaxIntervalSeconds bounds decoded intervals (BEP 15 carries them as int32).
const MaxIntervalSeconds = 1<<31 - 1

// AppendAnnounceResponse appends the bencoded response, keys in sorted order.
//
// FormCompact writes IPv4 peers (and IPv4-mapped IPv6 ones, unmapped) into
// "peers", 6 bytes each (BEP 23), and the other IPv6 peers into "peers6", 18
// bytes each (BEP 7); "peers6" is left out when empty. The dictionary forms
// write one list of {ip, port} dictionaries with "peer id" when the peer has a
// 20-byte ID and the form allows it. Invalid addresses are skipped.
func AppendAnnounceResponse(dst []byte, r *AnnounceResponse, form PeerForm) []byte {
	dst = append(dst, 'd')
	dst = appendStr(dst, "complete")
	dst = appendInt(dst, int64(max(r.Complete, 0)))
	if a := r.ExternalIP.Unmap().WithZone(""); a.IsValid() {
		dst = appendStr(dst, "external ip")
		dst = appendStr(dst, string(a.AsSlice()))
	}
	dst = appendStr(dst, "incomplete")
	dst = appendInt(dst, int64(max(r.Incomplete, 0)))
	dst = appendStr(dst, "interval")
	dst = appendInt(dst, int64(r.Interval/time.Second))
	if r.MinInterval > 0 {
		dst = appendStr(dst, "min interval")
		dst = appendInt(dst, int64(r.MinInterval/time.Second))
	}
	if form == FormCompact {
		var n4, n6 int
		for i := range r.Peers {
			switch a := r.Peers[i].Addr.Addr(); {
			case a.Is4() || a.Is4In6():
				n4++
			case a.Is6():
				n6++
			}
		}
		dst = appendStr(dst, "peers")
		dst = appendStrHeader(dst, 6*n4)
		for i := range r.Peers {
			if a := r.Peers[i].Addr.Addr(); a.Is4() || a.Is4In6() {
				b := a.Unmap().As4()
				p := r.Peers[i].Addr.Port()
				dst = append(dst, b[0], b[1], b[2], b[3], byte(p>>8), byte(p))
			}
		}
		if n6 > 0 {
			dst = appendStr(dst, "peers6")
			dst = appendStrHeader(dst, 18*n6)
			for i := range r.Peers {
				if a := r.Peers[i].Addr.Addr(); a.Is6() && !a.Is4In6() {
					b := a.As16()
					p := r.Peers[i].Addr.Port()
					dst = append(dst, b[:]...)
					dst = append(dst, byte(p>>8), byte(p))
				}
			}
		}
	} else {
		dst = appendStr(dst, "peers")
		dst = append(dst, 'l')
		var ipbuf [64]byte
		for i := range r.Peers {
			p := &r.Peers[i]
			if !p.Addr.Addr().IsValid() {
				continue
			}
			dst = append(dst, 'd')
			dst = appendStr(dst, "ip")
			ip := p.Addr.Addr().WithZone("").AppendTo(ipbuf[:0])
			dst = appendStr(dst, string(ip))
			if form == FormDict && len(p.ID) == 20 {
				dst = appendStr(dst, "peer id")
				dst = appendStr(dst, p.ID)
			}
			dst = appendStr(dst, "port")
			dst = appendInt(dst, int64(p.Addr.Port()))
			dst = append(dst, 'e')
		}
		dst = append(dst, 'e')
	}
	if r.Warning != "" {
		dst = appendStr(dst, "warning message")
		dst = appendStr(dst, r.Warning)
	}
	return append(dst, 'e')
}

// AppendFailure appends a response carrying only "failure reason".
func AppendFailure(dst []byte, reason string) []byte {
	dst = append(dst, 'd')
	dst = appendStr(dst, "failure reason")
	dst = appendStr(dst, reason)
	return append(dst, 'e')
}

// ParseAnnounceResponse decodes an HTTP announce response (the client side).
// A response with "failure reason" yields a *FailureError. Otherwise
// "interval" is required; "peers" may be the compact string or the list of
// dictionaries, "peers6" the compact IPv6 string; peers come in that order.
// "external ip" (BEP 24) must be 4 or 16 bytes. Keys it does not know are
// ignored; the bencode itself must be canonical.
func ParseAnnounceResponse(b []byte) (AnnounceResponse, error) {
	var r AnnounceResponse
	m, err := decodeDict(b)
	if err != nil {
		return r, err
	}
	if v, ok := m["failure reason"]; ok {
		s, ok := v.(string)
		if !ok {
			return r, errf(ErrBadResponse, "failure reason is not a string")
		}
		return r, &FailureError{Reason: s}
	}
	iv, ok := m["interval"]
	if !ok {
		return r, errf(ErrBadResponse, "response without interval")
	}
	if r.Interval, err = seconds("interval", iv); err != nil {
		return r, err
	}
	if v, ok := m["min interval"]; ok {
		if r.MinInterval, err = seconds("min interval", v); err != nil {
			return r, err
		}
	}
	if r.Complete, err = count(m, "complete"); err != nil {
		return r, err
	}
	if r.Incomplete, err = count(m, "incomplete"); err != nil {
		return r, err
	}
	if v, ok := m["warning message"]; ok {
		if r.Warning, ok = v.(string); !ok {
			return r, errf(ErrBadResponse, "warning message is not a string")
		}
	}
	if v, ok := m["external ip"]; ok {
		s, _ := v.(string)
		a, ok := netip.AddrFromSlice([]byte(s))
		if !ok {
			return r, errf(ErrBadResponse, "external ip is not 4 or 16 bytes")
		}
		r.ExternalIP = a.Unmap()
	}
	switch v := m["peers"].(type) {
	case nil:
	case string:
		if r.Peers, err = compactPeers(r.Peers, "peers", v, 4); err != nil {
			return r, err
		}
	case []any:
		for _, e := range v {
			p, err := dictPeer(e)
			if err != nil {
				return r, err
			}
			r.Peers = append(r.Peers, p)
		}
	default:
		return r, errf(ErrBadResponse, "peers is neither a string nor a list")
	}
	switch v := m["peers6"].(type) {
	case nil:
	case string:
		if r.Peers, err = compactPeers(r.Peers, "peers6", v, 16); err != nil {
			return r, err
		}
	default:
		return r, errf(ErrBadResponse, "peers6 is not a string")
	}
	return r, nil
}

func decodeDict(b []byte) (map[string]any, error) {
	v, err := DecodeBencode(b)
	if err != nil {
		return nil, err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, errf(ErrBadResponse, "response is not a dictionary")
	}
	return m, nil
}

func seconds(name string, v any) (time.Duration, error) {
	n, ok := v.(int64)
	if !ok || n < 0 || n > MaxIntervalSeconds {
		return 0, errf(ErrBadResponse, "%s is not a number of seconds from 0 to %d", name, MaxIntervalSeconds)
	}
	return time.Duration(n) * time.Second, nil
}

// count reads an optional non-negative counter.
func count(m map[string]any, name string) (int, error) {
	v, ok := m[name]
	if !ok {
		return 0, nil
	}
	n, ok := v.(int64)
	if !ok || n < 0 || n > 1<<31-1 {
		return 0, errf(ErrBadResponse, "%s is not a count", name)
	}
	return int(n), nil
}

func compactPeers(dst []Peer, name, s string, ipLen int) ([]Peer, error) {
	stride := ipLen + 2
	if len(s)%stride != 0 {
		return dst, errf(ErrBadResponse, "%s is %d bytes, not a multiple of %d", name, len(s), stride)
	}
	for i := 0; i < len(s); i += stride {
		var a netip.Addr
		if ipLen == 4 {
			a = netip.AddrFrom4([4]byte([]byte(s[i : i+4])))
		} else {
			a = netip.AddrFrom16([16]byte([]byte(s[i : i+16])))
		}
		port := uint16(s[i+ipLen])<<8 | uint16(s[i+ipLen+1])
		dst = append(dst, Peer{Addr: netip.AddrPortFrom(a, port)})
	}
	return dst, nil
}

func dictPeer(e any) (Peer, error) {
	d, ok := e.(map[string]any)
	if !ok {
		return Peer{}, errf(ErrBadResponse, "peer entry is not a dictionary")
	}
	ips, ok := d["ip"].(string)
	if !ok {
		return Peer{}, errf(ErrBadResponse, "peer entry without ip string")
	}
	ip, err := netip.ParseAddr(ips)
	if err != nil || ip.Zone() != "" {
		return Peer{}, errf(ErrBadResponse, "peer ip %s is not an IP address", quote(ips))
	}
	port, ok := d["port"].(int64)
	if !ok || port < 0 || port > 65535 {
		return Peer{}, errf(ErrBadResponse, "peer entry without a port from 0 to 65535")
	}
	p := Peer{Addr: netip.AddrPortFrom(ip, uint16(port))}
	if v, ok := d["peer id"]; ok {
		id, ok := v.(string)
		if !ok || len(id) != 20 {
			return Peer{}, errf(ErrBadResponse, "peer id is not 20 bytes")
		}
		p.ID = id
	}
	return p, nil
}
