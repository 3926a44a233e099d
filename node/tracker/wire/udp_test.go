package wire

import (
	"bytes"
	"encoding/hex"
	"errors"
	"net/netip"
	"reflect"
	"testing"
	"time"
)

func TestUDPConnect(t *testing.T) {
	req := mustHex("0000041727101980 00000000 cafebabe")
	r, err := ParseConnectRequest(req)
	if err != nil || r.TransactionID != 0xcafebabe {
		t.Fatalf("%+v %v", r, err)
	}
	if got := AppendConnectRequest(nil, r); !bytes.Equal(got, req) {
		t.Fatalf("append: %x", got)
	}
	if _, err := ParseConnectRequest(append(req, 0, 0)); err != nil {
		t.Fatalf("trailing zeros: %v", err)
	}
	id, act, tx, ok := PeekUDPRequest(req)
	if !ok || id != ProtocolID || act != ActionConnect || tx != 0xcafebabe {
		t.Fatalf("peek %x %v %x %v", id, act, tx, ok)
	}
	if _, _, _, ok := PeekUDPRequest(req[:15]); ok {
		t.Fatal("peek of 15 bytes")
	}

	resp := mustHex("00000000 cafebabe 0102030405060708")
	cr, err := ParseConnectResponse(resp)
	if err != nil || cr != (ConnectResponse{0xcafebabe, 0x0102030405060708}) {
		t.Fatalf("%+v %v", cr, err)
	}
	if got := AppendConnectResponse(nil, cr); !bytes.Equal(got, resp) {
		t.Fatalf("append: %x", got)
	}
}

func TestUDPAnnounceRequest(t *testing.T) {
	want := UDPAnnounceRequest{
		ConnectionID: 0x0123456789abcdef, TransactionID: 0xdeadbeef,
		InfoHash:   ih("82496b3f0a2c4e6d8f1b3d5a7c9e0f2a4b6c8d0e"),
		PeerID:     [20]byte([]byte("-qB4520-RhrIZgXfJNOy")),
		Downloaded: 1024, Left: 1 << 20, Uploaded: 512, Event: EventStarted,
		Key: 0xd38068a0, NumWant: -1, Port: 44542,
	}
	for _, tc := range []struct {
		name string
		pkt  []byte
		url  string
	}{
		{"plain 98 bytes", udpAnnounce98, ""},
		{"aria2 100 bytes", udpAnnounce100, ""},
		{"qBittorrent 109 bytes", udpAnnounce109, "/announce"},
		{"NOP, two URLData, unknown option, end, garbage", append(bytes.Clone(udpAnnounce98), mustHex("01 0203 2f6131 0202 3f62 7702 ffff 00 ffff")...), "/a1?b"},
	} {
		got, err := ParseUDPAnnounceRequest(tc.pkt)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		w := want
		w.URLData = tc.url
		if got != w {
			t.Errorf("%s:\n got %+v\nwant %+v", tc.name, got, w)
		}
	}
	r := want
	r.URLData = "/announce"
	if got := AppendUDPAnnounceRequest(nil, &r); !bytes.Equal(got, udpAnnounce109) {
		t.Errorf("append:\n got %x\nwant %x", got, udpAnnounce109)
	}
	// URLData longer than one option is split into options of 255 bytes.
	r.URLData = string(bytes.Repeat([]byte("x"), 300))
	long := AppendUDPAnnounceRequest(nil, &r)
	if len(long) != UDPAnnounceLen+2+255+2+45 {
		t.Errorf("long URLData: %d bytes", len(long))
	}
	if back, err := ParseUDPAnnounceRequest(long); err != nil || back != r {
		t.Errorf("long URLData back: %v", err)
	}
	r.URLData, r.IP = "", netip.MustParseAddr("192.0.2.1")
	if back, err := ParseUDPAnnounceRequest(AppendUDPAnnounceRequest(nil, &r)); err != nil || back != r {
		t.Errorf("ip back: %+v %v", back, err)
	}

	bad := func(mod func([]byte) []byte) []byte { return mod(bytes.Clone(udpAnnounce98)) }
	for _, tc := range []struct {
		name string
		pkt  []byte
		err  string
	}{
		{"short", udpAnnounce98[:97], "announce request of 97 bytes, want at least 98"},
		{"wrong action", bad(func(b []byte) []byte { b[11] = 2; return b }), "scrape where announce expected"},
		{"event 5", bad(func(b []byte) []byte { b[83] = 5; return b }), "unknown event 5"},
		{"option without length", append(bad(func(b []byte) []byte { return b }), 2), "BEP 41 option 2 without a length byte"},
		{"option past end", append(bad(func(b []byte) []byte { return b }), 2, 9, '/'), "BEP 41 option 2 of 9 bytes runs past the end"},
	} {
		_, err := ParseUDPAnnounceRequest(tc.pkt)
		if err == nil || err.Error() != tc.err || !errors.Is(err, ErrBadPacket) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.err)
		}
	}
}

func TestUDPAnnounceResponse(t *testing.T) {
	r := UDPAnnounceResponse{
		TransactionID: 7, Interval: 120 * time.Second, Leechers: 1, Seeders: 2,
		Peers: []netip.AddrPort{
			netip.MustParseAddrPort("10.0.0.1:6881"),
			netip.MustParseAddrPort("[2001:db8::1]:51413"),
			netip.MustParseAddrPort("[::ffff:127.0.0.1]:256"),
		},
	}
	v4 := AppendUDPAnnounceResponse(nil, &r, false)
	if want := mustHex("00000001 00000007 00000078 00000001 00000002 0a000001 1ae1 7f000001 0100"); !bytes.Equal(v4, want) {
		t.Errorf("v4:\n got %x\nwant %x", v4, want)
	}
	v6 := AppendUDPAnnounceResponse(nil, &r, true)
	if want := mustHex("00000001 00000007 00000078 00000001 00000002 20010db8000000000000000000000001 c8d5 00000000000000000000ffff7f000001 0100"); !bytes.Equal(v6, want) {
		t.Errorf("v6:\n got %x\nwant %x", v6, want)
	}
	back, err := ParseUDPAnnounceResponse(v4, false)
	if err != nil || !reflect.DeepEqual(back.Peers, []netip.AddrPort{r.Peers[0], netip.MustParseAddrPort("127.0.0.1:256")}) || back.Interval != r.Interval {
		t.Errorf("v4 back %+v %v", back, err)
	}
	back, err = ParseUDPAnnounceResponse(v6, true)
	if err != nil || !reflect.DeepEqual(back.Peers, r.Peers[1:]) || back.Seeders != 2 || back.Leechers != 1 {
		t.Errorf("v6 back %+v %v", back, err)
	}
	// Every 18-byte layout also splits into 6-byte peers; the reverse fails.
	if _, err := ParseUDPAnnounceResponse(v4, true); err == nil || err.Error() != "announce response peers of 12 bytes, not a multiple of 18" {
		t.Errorf("v4 as v6: %v", err)
	}
	if _, err := ParseUDPAnnounceResponse(mustHex("00000001 00000007 80000000 00000000 00000000"), false); err == nil || err.Error() != "negative interval" {
		t.Errorf("negative interval: %v", err)
	}
	if _, err := ParseUDPAnnounceResponse(v4[:19], false); err == nil || err.Error() != "announce response of 19 bytes, want at least 20" {
		t.Errorf("short: %v", err)
	}
}

func TestUDPScrape(t *testing.T) {
	a, b := ih("c39e5a0f1b2e7d4c8a6f3e2d1c0b9a8f7e6d5c4b"), ih("024bda1c55e3a86f4d2b91c07e5f3a6b8c9d0e1f")
	req := UDPScrapeRequest{ConnectionID: 1, TransactionID: 2, InfoHashes: [][20]byte{a, b}}
	pkt := AppendUDPScrapeRequest(nil, &req)
	if want := "0000000000000001" + "00000002" + "00000002" + hex.EncodeToString(a[:]) + hex.EncodeToString(b[:]); hex.EncodeToString(pkt) != want {
		t.Fatalf("scrape request %x", pkt)
	}
	back, err := ParseUDPScrapeRequest(pkt)
	if err != nil || !reflect.DeepEqual(back, req) {
		t.Fatalf("back %+v %v", back, err)
	}
	for _, tc := range []struct {
		pkt []byte
		err string
	}{
		{pkt[:16], "scrape request of 16 bytes, want at least 36"},
		{pkt[:40], "scrape body of 24 bytes, not a multiple of 20"},
		{append(pkt, make([]byte, 20*73)...), "scrape of 75 infohashes, at most 74"},
	} {
		if _, err := ParseUDPScrapeRequest(tc.pkt); err == nil || err.Error() != tc.err {
			t.Errorf("%d bytes: %v, want %q", len(tc.pkt), err, tc.err)
		}
	}

	resp := UDPScrapeResponse{TransactionID: 2, Stats: []UDPScrapeStats{{1, 2, 3}, {4, 5, 6}}}
	rp := AppendUDPScrapeResponse(nil, &resp)
	if want := mustHex("00000002 00000002 00000001 00000002 00000003 00000004 00000005 00000006"); !bytes.Equal(rp, want) {
		t.Fatalf("scrape response %x", rp)
	}
	rb, err := ParseUDPScrapeResponse(rp)
	if err != nil || !reflect.DeepEqual(rb, resp) {
		t.Fatalf("back %+v %v", rb, err)
	}
	if _, err := ParseUDPScrapeResponse(rp[:13]); err == nil || err.Error() != "scrape response body of 5 bytes, not a multiple of 12" {
		t.Fatalf("short: %v", err)
	}
}

func TestUDPError(t *testing.T) {
	e := UDPError{TransactionID: 9, Message: "connection ID expired"}
	pkt := AppendUDPError(nil, e)
	if want := append(mustHex("00000003 00000009"), "connection ID expired"...); !bytes.Equal(pkt, want) {
		t.Fatalf("%x", pkt)
	}
	if back, err := ParseUDPError(pkt); err != nil || back != e {
		t.Fatalf("%+v %v", back, err)
	}
	if act, tx, ok := PeekUDPResponse(pkt); !ok || act != ActionError || tx != 9 {
		t.Fatalf("peek %v %v %v", act, tx, ok)
	}
	long := AppendUDPError(nil, UDPError{Message: string(make([]byte, 2000))})
	if len(long) != 8+MaxUDPErrorMessageLen {
		t.Fatalf("long message %d", len(long))
	}
	if _, err := ParseUDPError(append(long, 'x')); err == nil {
		t.Fatal("oversized message accepted")
	}
	if _, err := ParseUDPError(mustHex("00000001 00000009")); err == nil || err.Error() != "announce where error expected" {
		t.Fatalf("wrong action: %v", err)
	}
}

func TestConnectRequestErrors(t *testing.T) {
	for _, tc := range []struct {
		pkt, err string
	}{
		{"0000041727101981 00000000 00000001", "connect without the protocol ID 0x41727101980 (got 0x41727101981)"},
		{"0000041727101980 00000000 00000001 01", "1 bytes after the connect request"},
		{"0000041727101980 00000001 00000001", "announce where connect expected"},
		{"0000041727101980 00000000 000000", "connect request of 15 bytes, want at least 16"},
	} {
		if _, err := ParseConnectRequest(mustHex(tc.pkt)); err == nil || err.Error() != tc.err {
			t.Errorf("%s: %v, want %q", tc.pkt, err, tc.err)
		}
	}
	if _, err := ParseConnectResponse(mustHex("00000000 00000001 0000000000000001 00")); err == nil {
		t.Error("17-byte connect response accepted")
	}
}
