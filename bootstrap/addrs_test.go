package bootstrap

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

func TestSplitList(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"", nil},
		{" , ,\t", nil},
		{"a", []string{"a"}},
		{" a, b,,c ", []string{"a", "b", "c"}},
		{"/ip4/1.2.3.4/tcp/1/p2p/" + idA + ",\n/ip6/::1/udp/2/quic-v1/p2p/" + idB,
			[]string{"/ip4/1.2.3.4/tcp/1/p2p/" + idA, "/ip6/::1/udp/2/quic-v1/p2p/" + idB}},
	} {
		if got := SplitList(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("SplitList(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestParseAddrs(t *testing.T) {
	a1 := "/ip4/1.2.3.4/tcp/4001/p2p/" + idA
	a2 := "/ip4/1.2.3.4/udp/4001/quic-v1/p2p/" + idA
	b1 := "/dns4/boot.example.org/tcp/4001/p2p/" + idB
	got, err := ParseAddrs([]string{"", "  ", " " + a1 + "\n", b1, a2, a1, "/p2p/" + idB})
	if err != nil {
		t.Fatalf("ParseAddrs: %v", err)
	}
	want := []peer.AddrInfo{
		{ID: mustID(t, idA), Addrs: []ma.Multiaddr{mustAddr(t, "/ip4/1.2.3.4/tcp/4001"), mustAddr(t, "/ip4/1.2.3.4/udp/4001/quic-v1")}},
		{ID: mustID(t, idB), Addrs: []ma.Multiaddr{mustAddr(t, "/dns4/boot.example.org/tcp/4001")}},
	}
	if !equalInfos(got, want) {
		t.Errorf("ParseAddrs = %v, want %v", got, want)
	}

	got, err = ParseAddrs(nil)
	if err != nil || len(got) != 0 {
		t.Errorf("ParseAddrs(nil) = %v, %v; want none, nil", got, err)
	}
}

func TestParseAddrsErrors(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    error
		message string
	}{
		{"/ip4/1.2.3.4/tcp/4001", ErrNoPeerID, `bootstrap: "/ip4/1.2.3.4/tcp/4001": no /p2p/ peer ID`},
		{"/", ErrBadMultiaddr, `bootstrap: "/": invalid multiaddr`},
		{"/p2p/" + idA + "/tcp/1", ErrNoPeerID, `no /p2p/ peer ID`},
		{"1.2.3.4:4001", ErrBadMultiaddr, `bootstrap: "1.2.3.4:4001": invalid multiaddr: `},
		{"/ip4/1.2.3.4/tcp/4001/p2p/notapeerid", ErrBadMultiaddr, `bootstrap: "/ip4/1.2.3.4/tcp/4001/p2p/notapeerid": invalid multiaddr`},
		{"/ip4/300.2.3.4/tcp/1/p2p/" + idA, ErrBadMultiaddr, "invalid multiaddr"},
	} {
		got, err := ParseAddrs([]string{"/ip4/1.2.3.4/tcp/1/p2p/" + idA, tc.in})
		if err == nil {
			t.Errorf("ParseAddrs(%q) = %v, want error", tc.in, got)
			continue
		}
		if got != nil {
			t.Errorf("ParseAddrs(%q) returned peers %v with an error", tc.in, got)
		}
		if !errors.Is(err, tc.want) {
			t.Errorf("ParseAddrs(%q) error %q is not %q", tc.in, err, tc.want)
		}
		var ae *AddrError
		if !errors.As(err, &ae) || ae.Addr != strings.TrimSpace(tc.in) {
			t.Errorf("ParseAddrs(%q) error %q: want an *AddrError for the entry", tc.in, err)
		}
		if !strings.Contains(err.Error(), tc.message) {
			t.Errorf("ParseAddrs(%q) error %q, want it to contain %q", tc.in, err, tc.message)
		}
	}
}

func TestParseAddrsReportsEveryBadEntry(t *testing.T) {
	_, err := ParseAddrs([]string{"bad1", "/ip4/1.2.3.4/tcp/1/p2p/" + idA, "/ip4/5.6.7.8/tcp/2"})
	if err == nil {
		t.Fatal("no error")
	}
	for _, s := range []string{`"bad1"`, `"/ip4/5.6.7.8/tcp/2"`} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not name %s", err, s)
		}
	}
}

// FuzzParseAddrs feeds comma-separated lists through SplitList and
// ParseAddrs: no panics, and what parses round-trips.
func FuzzParseAddrs(f *testing.F) {
	f.Add("/ip4/1.2.3.4/tcp/4001/p2p/" + idA)
	f.Add("/ip4/1.2.3.4/tcp/4001/p2p/" + idA + ",/ip6/::1/udp/1/quic-v1/p2p/" + idA + ", /p2p/" + idB)
	f.Add("/ip4/1.2.3.4/tcp/4001")
	f.Add(" , ,")
	f.Add("/dnsaddr/bootstrap.libp2p.io/p2p/QmNnooDu7bfjPFoTZYxMNLWUQJyrVwtbZg5gBMjTezGAJN")
	f.Fuzz(func(t *testing.T, s string) {
		infos, err := ParseAddrs(SplitList(s))
		if err != nil {
			if infos != nil {
				t.Fatalf("peers %v returned with error %v", infos, err)
			}
			var ae *AddrError
			if !errors.As(err, &ae) {
				t.Fatalf("error %v is not an *AddrError", err)
			}
			return
		}
		seen := make(map[peer.ID]bool)
		var again []string
		for _, info := range infos {
			if info.ID == "" || seen[info.ID] {
				t.Fatalf("bad or repeated peer ID in %v", infos)
			}
			seen[info.ID] = true
			addrs, err := peer.AddrInfoToP2pAddrs(&info)
			if err != nil {
				t.Fatalf("AddrInfoToP2pAddrs(%v): %v", info, err)
			}
			for _, a := range addrs {
				again = append(again, a.String())
			}
		}
		infos2, err := ParseAddrs(again)
		if err != nil {
			t.Fatalf("re-parsing %q: %v", again, err)
		}
		if !equalInfos(infos, infos2) {
			t.Fatalf("round trip: %v != %v", infos, infos2)
		}
	})
}

func mustID(t testing.TB, s string) peer.ID {
	t.Helper()
	id, err := peer.Decode(s)
	if err != nil {
		t.Fatalf("peer.Decode(%q): %v", s, err)
	}
	return id
}

func equalInfos(a, b []peer.AddrInfo) bool {
	return slices.EqualFunc(a, b, func(x, y peer.AddrInfo) bool {
		return x.ID == y.ID && slices.EqualFunc(x.Addrs, y.Addrs, ma.Multiaddr.Equal)
	})
}
