package wire

import (
	"fmt"
	"slices"
	"strconv"
)

// Bencode limits. A tracker response with 200 peers in dictionary form is
// about 15 KiB; the limits leave room for classic trackers and nothing more.
const (
	MaxBencodeLen   = 1 << 20 // bytes of input DecodeBencode accepts
	MaxBencodeDepth = 32      // nesting of lists and dictionaries
)

// DecodeBencode decodes b, which must hold exactly one bencoded value in
// canonical form (BEP 3): integers without leading zeros or "-0", string
// lengths without leading zeros, dictionary keys in strictly increasing byte
// order, nothing after the value. Because only the canonical form is accepted,
// AppendBencode(nil, v) reproduces b exactly.
//
// Values come back as int64, string, []any and map[string]any. Integers
// outside int64 are rejected.
func DecodeBencode(b []byte) (any, error) {
	if len(b) > MaxBencodeLen {
		return nil, errf(ErrBadBencode, "bencode input of %d bytes exceeds %d", len(b), MaxBencodeLen)
	}
	d := decoder{b: b}
	v, err := d.value(0)
	if err != nil {
		return nil, err
	}
	if d.i != len(b) {
		return nil, d.fail("%d bytes after the value", len(b)-d.i)
	}
	return v, nil
}

type decoder struct {
	b []byte
	i int
}

func (d *decoder) fail(format string, args ...any) *Error {
	return errf(ErrBadBencode, "bad bencode at offset %d: %s", d.i, fmt.Sprintf(format, args...))
}

func (d *decoder) value(depth int) (any, error) {
	if d.i >= len(d.b) {
		return nil, d.fail("unexpected end")
	}
	switch c := d.b[d.i]; {
	case c == 'i':
		return d.integer()
	case c >= '0' && c <= '9':
		return d.str()
	case c == 'l':
		if depth >= MaxBencodeDepth {
			return nil, d.fail("nested deeper than %d", MaxBencodeDepth)
		}
		d.i++
		list := []any{}
		for {
			if d.i >= len(d.b) {
				return nil, d.fail("unterminated list")
			}
			if d.b[d.i] == 'e' {
				d.i++
				return list, nil
			}
			v, err := d.value(depth + 1)
			if err != nil {
				return nil, err
			}
			list = append(list, v)
		}
	case c == 'd':
		if depth >= MaxBencodeDepth {
			return nil, d.fail("nested deeper than %d", MaxBencodeDepth)
		}
		d.i++
		dict := map[string]any{}
		prev, first := "", true
		for {
			if d.i >= len(d.b) {
				return nil, d.fail("unterminated dictionary")
			}
			if d.b[d.i] == 'e' {
				d.i++
				return dict, nil
			}
			if c := d.b[d.i]; c < '0' || c > '9' {
				return nil, d.fail("dictionary key is not a string")
			}
			at := d.i
			k, err := d.str()
			if err != nil {
				return nil, err
			}
			if !first && k <= prev {
				d.i = at
				if k == prev {
					return nil, d.fail("duplicate dictionary key %s", quote(k))
				}
				return nil, d.fail("dictionary key %s out of order", quote(k))
			}
			prev, first = k, false
			v, err := d.value(depth + 1)
			if err != nil {
				return nil, err
			}
			dict[k] = v
		}
	default:
		return nil, d.fail("unexpected byte %q", c)
	}
}

// digits returns the decimal digits at d.i (possibly none).
func (d *decoder) digits() []byte {
	j := d.i
	for j < len(d.b) && d.b[j] >= '0' && d.b[j] <= '9' {
		j++
	}
	return d.b[d.i:j]
}

func (d *decoder) integer() (int64, error) {
	d.i++ // 'i'
	neg := d.i < len(d.b) && d.b[d.i] == '-'
	if neg {
		d.i++
	}
	ds := d.digits()
	switch {
	case len(ds) == 0:
		return 0, d.fail("integer without digits")
	case ds[0] == '0' && (len(ds) > 1 || neg):
		return 0, d.fail("non-canonical integer")
	}
	d.i += len(ds)
	if d.i >= len(d.b) || d.b[d.i] != 'e' {
		return 0, d.fail("unterminated integer")
	}
	s := string(ds)
	if neg {
		s = "-" + s
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, d.fail("integer out of range")
	}
	d.i++
	return n, nil
}

func (d *decoder) str() (string, error) {
	ds := d.digits()
	if len(ds) > 1 && ds[0] == '0' {
		return "", d.fail("string length with leading zero")
	}
	if len(ds) > 8 { // MaxBencodeLen has 7 digits
		return "", d.fail("string length too large")
	}
	n, _ := strconv.Atoi(string(ds))
	d.i += len(ds)
	if d.i >= len(d.b) || d.b[d.i] != ':' {
		return "", d.fail("string length not followed by ':'")
	}
	d.i++
	if n > len(d.b)-d.i {
		return "", d.fail("string of %d bytes runs past the end", n)
	}
	s := string(d.b[d.i : d.i+n])
	d.i += n
	return s, nil
}

// AppendBencode appends the canonical encoding of v: int, int64, string,
// []byte, []any, map[string]any, nested as deep as MaxBencodeDepth.
// Dictionary keys are written in sorted order.
func AppendBencode(dst []byte, v any) ([]byte, error) {
	return appendValue(dst, v, 0)
}

func appendValue(dst []byte, v any, depth int) ([]byte, error) {
	if depth > MaxBencodeDepth {
		return dst, fmt.Errorf("%w: nested deeper than %d", ErrBadBencode, MaxBencodeDepth)
	}
	switch v := v.(type) {
	case int:
		return appendInt(dst, int64(v)), nil
	case int64:
		return appendInt(dst, v), nil
	case string:
		return appendStr(dst, v), nil
	case []byte:
		return appendStr(dst, string(v)), nil
	case []any:
		dst = append(dst, 'l')
		for _, e := range v {
			var err error
			if dst, err = appendValue(dst, e, depth+1); err != nil {
				return dst, err
			}
		}
		return append(dst, 'e'), nil
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		dst = append(dst, 'd')
		for _, k := range keys {
			dst = appendStr(dst, k)
			var err error
			if dst, err = appendValue(dst, v[k], depth+1); err != nil {
				return dst, err
			}
		}
		return append(dst, 'e'), nil
	default:
		return dst, fmt.Errorf("%w: cannot encode %T", ErrBadBencode, v)
	}
}

func appendInt(dst []byte, n int64) []byte {
	dst = append(dst, 'i')
	dst = strconv.AppendInt(dst, n, 10)
	return append(dst, 'e')
}

func appendStr(dst []byte, s string) []byte {
	dst = strconv.AppendInt(dst, int64(len(s)), 10)
	dst = append(dst, ':')
	return append(dst, s...)
}

// appendStrHeader writes the length prefix of a string of n bytes.
func appendStrHeader(dst []byte, n int) []byte {
	dst = strconv.AppendInt(dst, int64(n), 10)
	return append(dst, ':')
}
