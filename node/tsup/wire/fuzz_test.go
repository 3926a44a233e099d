package wire

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse: no input panics, every error wraps ErrMalformed, and whatever
// parses encodes back to exactly the same bytes (the encoding is
// canonical). Seeds in testdata/fuzz/FuzzParse are the golden packets and
// their MAC-sealed forms; TSUP_WRITE_SEEDS=1 go test -run TestWriteFuzzSeeds
// rewrites them.
func FuzzParse(f *testing.F) {
	mac := NewMAC([]byte("fuzz key"))
	f.Fuzz(func(t *testing.T, b []byte, extended bool) {
		md := Plain
		if extended {
			md = Extended
		}
		m, err := Parse(b, md)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
		} else if enc := m.AppendTo(nil, md); string(enc) != string(b) {
			t.Fatalf("round trip of %x gave %x (%#v)", b, enc, m)
		}
		// The trailer check never panics either, and a sealed packet opens.
		if _, _, _, err := mac.Open(b); err != nil && !errors.Is(err, ErrMAC) {
			t.Fatalf("Open: %v", err)
		}
		body, _, _, err := mac.Open(mac.Seal(append([]byte(nil), b...), 1, 2))
		if err != nil || string(body) != string(b) {
			t.Fatalf("Seal/Open: %v", err)
		}
	})
}

func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("TSUP_WRITE_SEEDS") == "" {
		t.Skip("set TSUP_WRITE_SEEDS=1 to rewrite testdata/fuzz")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzParse")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	mac := NewMAC([]byte("fuzz key"))
	write := func(name string, b []byte, ext bool) {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\nbool(%v)\n", b, ext)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for i, tc := range golden {
		b := unhex(t, tc.hex)
		write(fmt.Sprintf("golden-%02d", i), b, tc.mode == Extended)
		write(fmt.Sprintf("sealed-%02d", i), mac.Seal(b, 7, 8), tc.mode == Extended)
	}
	write("bep15-connect", unhex(t, "0000041727101980 00000000 0a0b0c0d"), false)
}
