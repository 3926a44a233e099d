package node

import (
	"net/netip"
	"strings"
	"testing"
	"time"

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
