package node

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/kadtracker/kadtracker/records"
	"github.com/libp2p/go-libp2p/core/peer"
)

// A limiter set stays within its bound however many keys come, and a key
// that has waited long enough gets a full burst again.
func TestLimiterSetBounded(t *testing.T) {
	s := newLimiterSet[netip.Addr](RateLimit{Rate: 1, Burst: 2}, 100)
	now := time.Unix(1000, 0)
	a := netip.MustParseAddr("192.0.2.1")
	if !s.allow(a, now) || !s.allow(a, now) || s.allow(a, now) {
		t.Fatal("burst of 2 not enforced")
	}
	for i := range 10_000 {
		s.allow(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), now)
		if n := s.size(); n > 100 {
			t.Fatalf("%d limiters kept, bound 100", n)
		}
	}
	later := now.Add(3 * time.Second)
	if !s.allow(a, later) || !s.allow(a, later) {
		t.Fatal("a rested key did not get its burst back")
	}
	var none *limiterSet[peer.ID]
	if !none.allow("x", now) {
		t.Fatal("a nil set refused")
	}
}

func TestStreamGate(t *testing.T) {
	g := newStreamGate(3, 2)
	if g.enter("a", false) != "" || g.enter("a", false) != "" {
		t.Fatal("refused under the caps")
	}
	if why := g.enter("a", false); why != RefusedPeerStreams {
		t.Fatalf("third stream of a: %q", why)
	}
	if g.enter("b", false) != "" {
		t.Fatal("b refused")
	}
	if why := g.enter("c", true); why != RefusedStreams {
		t.Fatalf("fourth stream: %q", why)
	}
	g.leave("a")
	if g.enter("a", true) != "" {
		t.Fatal("an exempt peer was held to the per-peer cap")
	}
	g.leave("a")
	g.leave("a")
	g.leave("b")
	if len(g.peers) != 0 || g.total != 0 {
		t.Fatalf("gate not empty: %v, %d", g.peers, g.total)
	}
}

func TestProtectionValidate(t *testing.T) {
	if err := DefaultProtection().validate(); err != nil {
		t.Fatal(err)
	}
	p := DefaultProtection()
	p.PeerRate.Burst = 0
	p.MaxStreamsPerPeer = p.MaxStreams + 1
	p.DiversityPerCpl = 0
	p.ConnsLow = p.ConnsHigh + 1
	err := p.validate()
	for _, want := range []string{"peer rate", "stream caps", "diversity", "connections"} {
		if err == nil || !contains(err.Error(), want) {
			t.Errorf("validate() = %v, want it to mention %q", err, want)
		}
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

func TestParseExemptRanges(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		fail string
	}{
		{"default", len(records.DefaultExempt()), ""},
		{"none", 0, ""},
		{"", 0, ""},
		{"default, 192.0.2.0/24", len(records.DefaultExempt()) + 1, ""},
		{"10.0.0.0/8,fd00::/8", 2, ""},
		{"0.0.0.0/0", 0, "too wide"},
		{"::/0", 0, "too wide"},
		{"2000::/3", 0, "too wide"},
		{"10.1.2.3/8", 0, "host bits"},
		{"::ffff:10.0.0.0/104", 0, "as IPv4"},
		{"10.0.0.0", 0, "exempt range"},
	} {
		ps, err := ParseExemptRanges(tc.in)
		switch {
		case tc.fail != "" && (err == nil || !contains(err.Error(), tc.fail)):
			t.Errorf("ParseExemptRanges(%q) = %v, %v; want an error saying %q", tc.in, ps, err, tc.fail)
		case tc.fail == "" && (err != nil || len(ps) != tc.n):
			t.Errorf("ParseExemptRanges(%q) = %d ranges, %v; want %d", tc.in, len(ps), err, tc.n)
		}
	}
	cfg := DefaultConfig()
	cfg.Limits.Exempt = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/1")}
	if err := cfg.Validate(); err == nil || !contains(err.Error(), "too wide") {
		t.Errorf("Validate with 0.0.0.0/1 exempt = %v", err)
	}
}

// With the default ranges a loopback peer is exempt from the rates; with
// none exempt (the configurable part) the same peer meets them.
func TestExemptRangesApply(t *testing.T) {
	p := DefaultProtection()
	p.PeerRate = RateLimit{Rate: 1, Burst: 3}
	now := func() time.Time { return time.Unix(1000, 0) }
	ip := netip.MustParseAddr("127.0.0.1")
	for _, exempt := range []bool{true, false} {
		l := records.DefaultLimits()
		if !exempt {
			l.Exempt = nil
		}
		g := newGuard(p, l, now)
		refused := 0
		for range 10 {
			if g.allow("peer", ip) != "" {
				refused++
			}
		}
		if exempt && refused != 0 || !exempt && refused != 7 {
			t.Errorf("exempt=%v: %d of 10 refused", exempt, refused)
		}
	}
}
