package wire

import (
	"net/netip"
	"strconv"
	"testing"
	"time"
)

func BenchmarkParseAnnounce(b *testing.B) {
	q := realAnnounces["qbittorrent"]
	b.ReportAllocs()
	b.SetBytes(int64(len(q)))
	for b.Loop() {
		if _, err := ParseAnnounce(q); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseUDPAnnounceRequest(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseUDPAnnounceRequest(udpAnnounce109); err != nil {
			b.Fatal(err)
		}
	}
}

func benchResponse(n int) AnnounceResponse {
	r := AnnounceResponse{Interval: 120 * time.Second, MinInterval: 30 * time.Second, Complete: n / 2, Incomplete: n - n/2}
	for i := range n {
		var a netip.Addr
		if i%4 == 3 {
			a = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(i)})
		} else {
			a = netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})
		}
		r.Peers = append(r.Peers, Peer{Addr: netip.AddrPortFrom(a, uint16(6881+i))})
	}
	return r
}

func BenchmarkAppendAnnounceResponseCompact(b *testing.B) {
	for _, n := range []int{50, 200} {
		r := benchResponse(n)
		buf := make([]byte, 0, 4096)
		b.Run(strconv.Itoa(n)+"peers", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				buf = AppendAnnounceResponse(buf[:0], &r, FormCompact)
			}
			b.SetBytes(int64(len(buf)))
		})
	}
}

func BenchmarkAppendUDPAnnounceResponse(b *testing.B) {
	r := UDPAnnounceResponse{Interval: 120 * time.Second}
	for _, p := range benchResponse(200).Peers {
		r.Peers = append(r.Peers, p.Addr)
	}
	buf := make([]byte, 0, 2048)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendUDPAnnounceResponse(buf[:0], &r, false)
	}
}
