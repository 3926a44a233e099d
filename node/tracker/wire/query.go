package wire

import "strings"

// Query limits. A scrape of MaxScrapeHashes hashes, every byte escaped, is
// about 5.2 KB; no real announce comes near 1 KB.
const (
	MaxQueryLen    = 8 << 10
	MaxQueryParams = 128
)

// param is one key=value pair of a raw query, both still escaped.
type param struct{ key, val string }

// nextParam splits the next '&'-separated pair off q. Empty segments yield an
// empty key, which callers skip.
func nextParam(q string) (p param, rest string) {
	seg := q
	if i := strings.IndexByte(q, '&'); i >= 0 {
		seg, rest = q[:i], q[i+1:]
	}
	if i := strings.IndexByte(seg, '='); i >= 0 {
		return param{seg[:i], seg[i+1:]}, rest
	}
	return param{seg, ""}, rest
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// unescapeInto percent-decodes s into out and returns the decoded length,
// which may exceed len(out) (the excess is counted, not written). Escapes may
// be upper or lower case. '+' stays '+': BEP 3 lists it among the bytes a
// client need not escape, so reading it as a space (form encoding) would
// corrupt binary info_hash and peer_id values.
func unescapeInto(out []byte, s string) (int, bool) {
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '%' {
			if i+2 >= len(s) {
				return n, false
			}
			hi, ok1 := unhex(s[i+1])
			lo, ok2 := unhex(s[i+2])
			if !ok1 || !ok2 {
				return n, false
			}
			c = hi<<4 | lo
			i += 2
		}
		if n < len(out) {
			out[n] = c
		}
		n++
	}
	return n, true
}

// unescape decodes s, returning s itself when it holds no escapes.
func unescape(s string) (string, bool) {
	if strings.IndexByte(s, '%') < 0 {
		return s, true
	}
	buf := make([]byte, len(s))
	n, ok := unescapeInto(buf, s)
	if !ok {
		return "", false
	}
	return string(buf[:n]), true
}

// unreserved reports whether c may stand unescaped in a query value
// (RFC 3986 unreserved characters).
func unreserved(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

// appendEscaped percent-encodes s (upper-case hex) onto dst.
func appendEscaped(dst []byte, s string) []byte {
	const hexdig = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		c := s[i]
		if unreserved(c) {
			dst = append(dst, c)
			continue
		}
		dst = append(dst, '%', hexdig[c>>4], hexdig[c&15])
	}
	return dst
}
