package wire

import (
	"errors"
	"net/netip"
	"testing"
	"time"
)

// BEP 24: "external ip" is the requester's address as 4 or 16 raw bytes,
// between "complete" and "incomplete" in key order.
func TestExternalIP(t *testing.T) {
	for _, tc := range []struct {
		ip   string
		want string
	}{
		{"10.1.2.3", "d8:completei1e11:external ip4:\x0a\x01\x02\x0310:incompletei2e8:intervali60e5:peers0:e"},
		{"::ffff:10.1.2.3", "d8:completei1e11:external ip4:\x0a\x01\x02\x0310:incompletei2e8:intervali60e5:peers0:e"},
		{"2001:db8::1", "d8:completei1e11:external ip16:\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x0110:incompletei2e8:intervali60e5:peers0:e"},
	} {
		r := AnnounceResponse{Interval: time.Minute, Complete: 1, Incomplete: 2, ExternalIP: netip.MustParseAddr(tc.ip)}
		got := string(AppendAnnounceResponse(nil, &r, FormCompact))
		if got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.ip, got, tc.want)
		}
		back, err := ParseAnnounceResponse([]byte(got))
		if err != nil {
			t.Fatalf("%s: %v", tc.ip, err)
		}
		if want := netip.MustParseAddr(tc.ip).Unmap(); back.ExternalIP != want {
			t.Errorf("%s: parsed %v", tc.ip, back.ExternalIP)
		}
	}
	if _, err := ParseAnnounceResponse([]byte("d11:external ip3:abc8:intervali60ee")); !errors.Is(err, ErrBadResponse) {
		t.Errorf("3-byte external ip: %v", err)
	}
	if _, err := ParseAnnounceResponse([]byte("d11:external ipi1e8:intervali60ee")); !errors.Is(err, ErrBadResponse) {
		t.Errorf("integer external ip: %v", err)
	}
}
