package tracker

import (
	"net/netip"
	"slices"
	"testing"
	"time"
)

// TestNearestFirst: the nearest share of an answer goes to the peers of
// shortest predicted round trip, one per source address, so ten Sybils at
// one address claiming to be nearest take one place; peers of unknown
// round trip stay in the rest, none lost.
func TestNearestFirst(t *testing.T) {
	s := &swarm{}
	var eps []netip.AddrPort
	for i := range 40 {
		p := Peer{Endpoint: netip.AddrPortFrom(netip.AddrFrom4([4]byte{8, 1, 0, byte(i)}), 6881)}
		if i < 30 {
			p.RTT = time.Duration(100-i) * time.Millisecond // 71..100 ms
		}
		s.peers = append(s.peers, p)
		eps = append(eps, p.Endpoint)
	}
	sybil := netip.MustParseAddr("192.0.2.66")
	for i := range 10 {
		p := Peer{Endpoint: netip.AddrPortFrom(sybil, uint16(7000+i)), RTT: time.Millisecond}
		s.peers = append(s.peers, p)
		eps = append(eps, p.Endpoint)
	}
	before := slices.Clone(eps)
	n := s.nearestFirst(eps, 5)
	if n != 5 {
		t.Fatalf("moved %d, want 5", n)
	}
	if eps[0].Addr() != sybil {
		t.Fatalf("nearest first: %s", eps[0])
	}
	for i, ep := range eps[1:5] {
		if want := netip.AddrFrom4([4]byte{8, 1, 0, byte(29 - i)}); ep.Addr() != want {
			t.Fatalf("place %d: %s, want %s (the next nearest at another address)", i+1, ep, want)
		}
	}
	slices.SortFunc(before, netip.AddrPort.Compare)
	after := slices.Clone(eps)
	slices.SortFunc(after, netip.AddrPort.Compare)
	if !slices.Equal(before, after) {
		t.Fatal("peers lost or duplicated")
	}
}
