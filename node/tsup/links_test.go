package tsup

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const linksFile = `# TSUP links of tracker A
10.0.0.2:6969 internal
[fd00::3]:6969   internal   key=000102030405060708090a0b0c0d0e0f  # keyed
tracker.example.org:2710 external

  192.0.2.9:6969 external key=` + "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff" + `
`

func TestParseLinks(t *testing.T) {
	got, err := ParseLinks(strings.NewReader(linksFile))
	if err != nil {
		t.Fatal(err)
	}
	k1, _ := hex.DecodeString("000102030405060708090a0b0c0d0e0f")
	k2, _ := hex.DecodeString("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff")
	want := []Link{
		{Addr: netip.MustParseAddrPort("10.0.0.2:6969"), Name: "10.0.0.2"},
		{Addr: netip.MustParseAddrPort("[fd00::3]:6969"), Name: "fd00::3", Key: k1},
		{Addr: netip.AddrPortFrom(netip.Addr{}, 2710), Name: "tracker.example.org", External: true},
		{Addr: netip.MustParseAddrPort("192.0.2.9:6969"), Name: "192.0.2.9", External: true, Key: k2},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
	lookup := func(_ context.Context, host string) ([]netip.Addr, error) {
		if host != "tracker.example.org" {
			return nil, errors.New("no such host")
		}
		return []netip.Addr{netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("198.51.100.7")}, nil
	}
	if err := ResolveLinks(context.Background(), got, lookup); err != nil {
		t.Fatal(err)
	}
	if got[2].Addr != netip.MustParseAddrPort("198.51.100.7:2710") {
		t.Fatalf("resolved to %v, want the IPv4 address", got[2].Addr)
	}
	cfg := DefaultConfig()
	cfg.Links = got
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := []Link{{Addr: netip.AddrPortFrom(netip.Addr{}, 1), Name: "nowhere"}}
	if err := ResolveLinks(context.Background(), bad, lookup); err == nil || !strings.Contains(err.Error(), "nowhere") {
		t.Fatalf("unresolvable name: %v", err)
	}
}

func TestParseLinksErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"10.0.0.1 internal", "line 1: \"10.0.0.1\" is not host:port"},
		{"# c\n\n10.0.0.1:0 internal", "line 3: port \"0\""},
		{"10.0.0.1:70000 internal", "port \"70000\""},
		{"10.0.0.1:6969", "got 1 field"},
		{"10.0.0.1:6969 both", "\"both\" is neither internal nor external"},
		{"10.0.0.1:6969 internal key=zz", "key is not hex"},
		{"10.0.0.1:6969 internal key=0011", "key of 2 bytes"},
		{"10.0.0.1:6969 internal key=" + strings.Repeat("00", 16) + " key=" + strings.Repeat("00", 16), "key given twice"},
		{"10.0.0.1:6969 internal nat=1", "unknown option \"nat\""},
		{"10.0.0.1:6969 internal\n10.0.0.1:6969 external", "line 2: 10.0.0.1:6969 is already linked on line 1"},
		{"Host.Example:1 internal\nhost.example:1 internal", "line 2"},
		{"0.0.0.0:6969 internal", "not a tracker address"},
		{"[fe80::1%eth0]:6969 internal", "has a zone"},
		{"bad_name:6969 internal", "neither an IP address nor a host name"},
		{"-x.org:6969 internal", "neither an IP address"},
		{strings.Repeat("a", 2000), "line 1: longer than"},
	} {
		_, err := ParseLinks(strings.NewReader(tc.in))
		if err == nil || !errors.Is(err, ErrLinks) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.in, err, tc.want)
		}
	}
	var many strings.Builder
	for i := range MaxLinks + 1 {
		fmt.Fprintf(&many, "10.%d.%d.1:6969 internal\n", i/256, i%256)
	}
	if _, err := ParseLinks(strings.NewReader(many.String())); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Errorf("too many links: %v", err)
	}
}

// formatLinks writes links back in the file syntax.
func formatLinks(ls []Link) string {
	var b strings.Builder
	for _, l := range ls {
		host := l.Name
		if l.Addr.Addr().IsValid() {
			host = l.Addr.Addr().String()
		}
		if strings.Contains(host, ":") {
			host = "[" + host + "]"
		}
		kind := "internal"
		if l.External {
			kind = "external"
		}
		fmt.Fprintf(&b, "%s:%d %s", host, l.Addr.Port(), kind)
		if l.Key != nil {
			fmt.Fprintf(&b, " key=%x", l.Key)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// FuzzParseLinks: no input panics, errors wrap ErrLinks, and what parses
// is well-formed and survives a round trip through the file syntax.
func FuzzParseLinks(f *testing.F) {
	f.Fuzz(func(t *testing.T, in string) {
		ls, err := ParseLinks(strings.NewReader(in))
		if err != nil {
			if !errors.Is(err, ErrLinks) {
				t.Fatalf("error %v does not wrap ErrLinks", err)
			}
			return
		}
		for _, l := range ls {
			if l.Addr.Port() == 0 || (l.Key != nil && (len(l.Key) < MinKeyLen || len(l.Key) > MaxKeyLen)) {
				t.Fatalf("bad link %+v", l)
			}
		}
		again, err := ParseLinks(strings.NewReader(formatLinks(ls)))
		if err != nil || len(again) != len(ls) {
			t.Fatalf("round trip of %q: %v", formatLinks(ls), err)
		}
		for i := range ls {
			if ls[i].Addr != again[i].Addr || ls[i].External != again[i].External || string(ls[i].Key) != string(again[i].Key) {
				t.Fatalf("round trip changed %+v into %+v", ls[i], again[i])
			}
		}
	})
}

func TestWriteLinksSeeds(t *testing.T) {
	if os.Getenv("TSUP_WRITE_SEEDS") == "" {
		t.Skip("set TSUP_WRITE_SEEDS=1 to rewrite testdata/fuzz")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzParseLinks")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	seeds := []string{linksFile, "", "# only a comment\n", "10.0.0.1:6969 internal\n10.0.0.1:6969 internal\n",
		"[::1]:1 external key=" + strings.Repeat("ab", 64), "a.b:1 internal key=00", "host:65535 external # x"}
	for i, s := range seeds {
		body := fmt.Sprintf("go test fuzz v1\nstring(%q)\n", s)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%02d", i)), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
