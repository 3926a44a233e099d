package tsup

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// Caps of a links file.
const (
	MaxLinks        = 1024
	maxLinkLineLen  = 1024
	maxLinkHostName = 253
)

// ErrLinks is what every links-file error wraps.
var ErrLinks = errors.New("tsup: bad links file")

// ParseLinks reads a links file (the --tsup-links FILE): one link per line,
//
//	host:port internal|external [key=HEX]
//
// where host is an IPv4 address, a bracketed IPv6 address or a DNS name
// (then Addr holds only the port until ResolveLinks), key is the link's
// shared MAC key in hex (16 to 64 bytes), and # starts a comment. Errors
// name the line.
func ParseLinks(r io.Reader) ([]Link, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 256), maxLinkLineLen+1)
	var links []Link
	seen := make(map[string]int)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		l, err := parseLinkLine(f)
		if err != nil {
			return nil, fmt.Errorf("%w: line %d: %v", ErrLinks, n, err)
		}
		key := strings.ToLower(l.Name) + ":" + strconv.Itoa(int(l.Addr.Port()))
		if l.Addr.Addr().IsValid() {
			key = l.Addr.String()
		}
		if prev, dup := seen[key]; dup {
			return nil, fmt.Errorf("%w: line %d: %s is already linked on line %d", ErrLinks, n, f[0], prev)
		}
		seen[key] = n
		if len(links) == MaxLinks {
			return nil, fmt.Errorf("%w: line %d: more than %d links", ErrLinks, n, MaxLinks)
		}
		links = append(links, l)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("%w: line %d: longer than %d bytes", ErrLinks, n+1, maxLinkLineLen)
		}
		return nil, fmt.Errorf("%w: %v", ErrLinks, err)
	}
	return links, nil
}

func parseLinkLine(f []string) (Link, error) {
	if len(f) < 2 {
		return Link{}, fmt.Errorf("want \"host:port internal|external [key=HEX]\", got %d field", len(f))
	}
	host, ps, err := net.SplitHostPort(f[0])
	if err != nil {
		return Link{}, fmt.Errorf("%q is not host:port", f[0])
	}
	port, err := strconv.ParseUint(ps, 10, 16)
	if err != nil || port == 0 {
		return Link{}, fmt.Errorf("port %q is not within 1-65535", ps)
	}
	l := Link{Name: host}
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.Zone() != "" {
			return Link{}, fmt.Errorf("address %q has a zone", host)
		}
		ip = ip.Unmap()
		if ip.IsUnspecified() || ip.IsMulticast() {
			return Link{}, fmt.Errorf("%v is not a tracker address", ip)
		}
		l.Addr = netip.AddrPortFrom(ip, uint16(port))
	} else {
		if !validHostName(host) {
			return Link{}, fmt.Errorf("%q is neither an IP address nor a host name", host)
		}
		l.Addr = netip.AddrPortFrom(netip.Addr{}, uint16(port))
	}
	switch f[1] {
	case "internal":
	case "external":
		l.External = true
	default:
		return Link{}, fmt.Errorf("%q is neither internal nor external", f[1])
	}
	for _, opt := range f[2:] {
		k, v, _ := strings.Cut(opt, "=")
		switch k {
		case "key":
			if l.Key != nil {
				return Link{}, errors.New("key given twice")
			}
			b, err := hex.DecodeString(v)
			if err != nil {
				return Link{}, errors.New("key is not hex")
			}
			if len(b) < MinKeyLen || len(b) > MaxKeyLen {
				return Link{}, fmt.Errorf("key of %d bytes is not within %d-%d bytes (%d-%d hex digits)", len(b), MinKeyLen, MaxKeyLen, 2*MinKeyLen, 2*MaxKeyLen)
			}
			l.Key = b
		default:
			return Link{}, fmt.Errorf("unknown option %q (want key=HEX)", k)
		}
	}
	return l, nil
}

// validHostName accepts DNS names made of letters, digits, hyphens and
// dots (RFC 1123 labels of up to 63 characters).
func validHostName(h string) bool {
	if h == "" || len(h) > maxLinkHostName {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}

// LookupFunc resolves a host name, as net.Resolver.LookupNetIP with
// network "ip" does.
type LookupFunc func(ctx context.Context, host string) ([]netip.Addr, error)

// ResolveLinks gives every link named by a host name (Addr without an IP)
// the name's first IPv4 address, else its first address. lookup nil means
// net.DefaultResolver. Links are resolved once: TSUP links are static.
func ResolveLinks(ctx context.Context, links []Link, lookup LookupFunc) error {
	if lookup == nil {
		lookup = func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		}
	}
	var errs []error
	for i := range links {
		l := &links[i]
		if l.Addr.Addr().IsValid() {
			continue
		}
		ips, err := lookup(ctx, l.Name)
		if err != nil || len(ips) == 0 {
			errs = append(errs, fmt.Errorf("tsup: link %s: %v", l.Name, errors.Join(err, errNoAddress(len(ips)))))
			continue
		}
		ip := ips[0]
		for _, a := range ips {
			if a.Unmap().Is4() {
				ip = a
				break
			}
		}
		l.Addr = netip.AddrPortFrom(ip.Unmap(), l.Addr.Port())
	}
	return errors.Join(errs...)
}

func errNoAddress(n int) error {
	if n == 0 {
		return errors.New("no address")
	}
	return nil
}
