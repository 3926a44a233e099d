package wire

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestBencodeValid(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want any
	}{
		{"i0e", int64(0)},
		{"i-42e", int64(-42)},
		{"i9223372036854775807e", int64(1<<63 - 1)},
		{"i-9223372036854775808e", int64(-1 << 63)},
		{"0:", ""},
		{"4:spam", "spam"},
		{"3:\x00\xff:", "\x00\xff:"},
		{"le", []any{}},
		{"l4:spami3ee", []any{"spam", int64(3)}},
		{"de", map[string]any{}},
		{"d0:i1e1:ai2e2:aai3e1:bi4ee", map[string]any{"": int64(1), "a": int64(2), "aa": int64(3), "b": int64(4)}},
		{"d4:spaml1:a1:bee", map[string]any{"spam": []any{"a", "b"}}},
		{strings.Repeat("l", MaxBencodeDepth) + strings.Repeat("e", MaxBencodeDepth), nest(MaxBencodeDepth)},
	} {
		got, err := DecodeBencode([]byte(tc.in))
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q: got %#v", tc.in, got)
		}
		// Canonical input: encoding reproduces it.
		enc, err := AppendBencode(nil, got)
		if err != nil || string(enc) != tc.in {
			t.Errorf("%q: re-encoded %q %v", tc.in, enc, err)
		}
	}
}

func nest(n int) any {
	var v any = []any{}
	for range n - 1 {
		v = []any{v}
	}
	return v
}

func TestBencodeInvalid(t *testing.T) {
	for _, tc := range []struct{ in, err string }{
		{"", "bad bencode at offset 0: unexpected end"},
		{"x", `bad bencode at offset 0: unexpected byte 'x'`},
		{"ie", "bad bencode at offset 1: integer without digits"},
		{"i-e", "bad bencode at offset 2: integer without digits"},
		{"i-0e", "bad bencode at offset 2: non-canonical integer"},
		{"i03e", "bad bencode at offset 1: non-canonical integer"},
		{"i1", "bad bencode at offset 2: unterminated integer"},
		{"i1x", "bad bencode at offset 2: unterminated integer"},
		{"i9223372036854775808e", "bad bencode at offset 20: integer out of range"},
		{"01:a", "bad bencode at offset 0: string length with leading zero"},
		{"123456789:a", "bad bencode at offset 0: string length too large"},
		{"4:spa", "bad bencode at offset 2: string of 4 bytes runs past the end"},
		{"4spam", "bad bencode at offset 1: string length not followed by ':'"},
		{"l", "bad bencode at offset 1: unterminated list"},
		{"li1e", "bad bencode at offset 4: unterminated list"},
		{"d", "bad bencode at offset 1: unterminated dictionary"},
		{"di1ei2ee", "bad bencode at offset 1: dictionary key is not a string"},
		{"d1:ai1e1:ai2ee", `bad bencode at offset 7: duplicate dictionary key "a"`},
		{"d1:bi1e1:ai2ee", `bad bencode at offset 7: dictionary key "a" out of order`},
		{"d1:a", "bad bencode at offset 4: unexpected end"},
		{"i1ei2e", "bad bencode at offset 3: 3 bytes after the value"},
		{"i1e\x00", "bad bencode at offset 3: 1 bytes after the value"},
		{strings.Repeat("l", MaxBencodeDepth+1), "bad bencode at offset 32: nested deeper than 32"},
		{strings.Repeat("d1:a", MaxBencodeDepth+1), "bad bencode at offset 128: nested deeper than 32"},
	} {
		_, err := DecodeBencode([]byte(tc.in))
		if err == nil || err.Error() != tc.err || !errors.Is(err, ErrBadBencode) {
			t.Errorf("%.40q:\n got %v\nwant %s", tc.in, err, tc.err)
		}
	}
	if _, err := DecodeBencode(make([]byte, MaxBencodeLen+1)); err == nil || !errors.Is(err, ErrBadBencode) {
		t.Errorf("oversized input: %v", err)
	}
}

func TestAppendBencode(t *testing.T) {
	got, err := AppendBencode(nil, map[string]any{"b": []byte("x"), "a": []any{1, int64(-2), "s"}})
	if err != nil || string(got) != "d1:ali1ei-2e1:se1:b1:xe" {
		t.Fatalf("%q %v", got, err)
	}
	if _, err := AppendBencode(nil, 1.5); !errors.Is(err, ErrBadBencode) {
		t.Fatalf("float: %v", err)
	}
	if _, err := AppendBencode(nil, nest(MaxBencodeDepth+2)); !errors.Is(err, ErrBadBencode) {
		t.Fatalf("deep: %v", err)
	}
}
