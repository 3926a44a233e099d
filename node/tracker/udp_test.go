package tracker

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/kadtracker/kadtracker/node/tracker/wire"
	"github.com/kadtracker/kadtracker/records"
)

// serveUDP runs tr.ServeUDP on network ("udp4" on 127.0.0.1 or "udp6" on
// ::1) and returns its address.
func serveUDP(t *testing.T, tr *Tracker, network string) netip.AddrPort {
	t.Helper()
	host := "127.0.0.1:0"
	if network == "udp6" {
		host = "[::1]:0"
	}
	pc, err := net.ListenPacket(network, host)
	if err != nil {
		t.Skipf("no %s loopback: %v", network, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tr.ServeUDP(ctx, pc) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ServeUDP: %v", err)
		}
	})
	return pc.LocalAddr().(*net.UDPAddr).AddrPort()
}

type udpClient struct {
	t    *testing.T
	conn *net.UDPConn
	tx   uint32
}

func dialUDP(t *testing.T, to netip.AddrPort) *udpClient {
	t.Helper()
	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(to))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &udpClient{t: t, conn: conn, tx: 100}
}

func (c *udpClient) port() uint16 { return uint16(c.conn.LocalAddr().(*net.UDPAddr).Port) }

func (c *udpClient) roundTrip(pkt []byte) []byte {
	c.t.Helper()
	if _, err := c.conn.Write(pkt); err != nil {
		c.t.Fatal(err)
	}
	c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4096)
	n, err := c.conn.Read(buf)
	if err != nil {
		c.t.Fatalf("no answer: %v", err)
	}
	return buf[:n]
}

func (c *udpClient) silent(pkt []byte) {
	c.t.Helper()
	c.conn.Write(pkt)
	c.conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	buf := make([]byte, 4096)
	if n, err := c.conn.Read(buf); err == nil {
		c.t.Fatalf("answer %x to a packet that deserves none", buf[:n])
	}
}

func (c *udpClient) connect() uint64 {
	c.t.Helper()
	c.tx++
	resp, err := wire.ParseConnectResponse(c.roundTrip(wire.AppendConnectRequest(nil, wire.ConnectRequest{TransactionID: c.tx})))
	if err != nil || resp.TransactionID != c.tx {
		c.t.Fatalf("connect: %+v %v", resp, err)
	}
	return resp.ConnectionID
}

func (c *udpClient) announce(r wire.UDPAnnounceRequest, ipv6 bool) wire.UDPAnnounceResponse {
	c.t.Helper()
	c.tx++
	r.TransactionID = c.tx
	b := c.roundTrip(wire.AppendUDPAnnounceRequest(nil, &r))
	resp, err := wire.ParseUDPAnnounceResponse(b, ipv6)
	if err != nil || resp.TransactionID != c.tx {
		c.t.Fatalf("announce answer %x: %v", b, err)
	}
	return resp
}

// expectError sends pkt and wants an error packet carrying msg and the
// packet's transaction ID.
func (c *udpClient) expectError(pkt []byte, msg string) {
	c.t.Helper()
	b := c.roundTrip(pkt)
	e, err := wire.ParseUDPError(b)
	if err != nil {
		c.t.Fatalf("answer %x is not an error: %v", b, err)
	}
	if want := binary.BigEndian.Uint32(pkt[12:]); e.TransactionID != want || e.Message != msg {
		c.t.Fatalf("error %+v, want tx %d %q", e, want, msg)
	}
}

func uareq(conn uint64, ih [20]byte, port uint16, left int64) wire.UDPAnnounceRequest {
	return wire.UDPAnnounceRequest{ConnectionID: conn, InfoHash: ih, PeerID: [20]byte([]byte("-qB4520-RhrIZgXfJNOy")), Left: left, Event: wire.EventStarted, NumWant: -1, Port: port}
}

func TestUDPAnnounce(t *testing.T) {
	n := newFakeNode()
	tr := newTracker(t, n, testConfig())
	addr := serveUDP(t, tr, "udp4")
	ih := ihash(5)
	n.set(ih, Swarm{Seeds: 2, Leechers: 0, Peers: []Peer{
		{Endpoint: ap("127.0.0.1:44542"), Seed: true}, // the requester
		{Endpoint: ap("192.0.2.1:6881"), Seed: true},
		{Endpoint: ap("[2001:db8::1]:6881"), Seed: true}, // not in an IPv4 answer
	}})
	c := dialUDP(t, addr)
	id := c.connect()
	resp := c.announce(uareq(id, ih, 44542, 1000), false)
	if !slices.Equal(resp.Peers, []netip.AddrPort{ap("192.0.2.1:6881")}) || resp.Seeders != 2 || resp.Leechers != 1 || resp.Interval != 120*time.Second {
		t.Fatalf("answer %+v", resp)
	}
	eventually(t, "node Announce", func() bool { return len(n.ops("announce")) == 1 })
	if a := n.ops("announce")[0]; a.port != 44542 || a.seed || a.key != records.SwarmKey(ih) {
		t.Fatalf("announce %+v", a)
	}

	// The packets real clients send: aria2 pads with two zeros, qBittorrent
	// adds BEP 41 URLData.
	for _, tail := range [][]byte{{0, 0}, append([]byte{2, 9}, "/announce"...)} {
		r := uareq(id, ih, 44542, 1000)
		c.tx++
		r.TransactionID = c.tx
		pkt := append(wire.AppendUDPAnnounceRequest(nil, &r), tail...)
		if resp, err := wire.ParseUDPAnnounceResponse(c.roundTrip(pkt), false); err != nil || len(resp.Peers) != 1 {
			t.Fatalf("%d-byte announce: %+v %v", len(pkt), resp, err)
		}
	}

	// Scrape, several hashes, in request order.
	c.tx++
	b := c.roundTrip(wire.AppendUDPScrapeRequest(nil, &wire.UDPScrapeRequest{ConnectionID: id, TransactionID: c.tx, InfoHashes: [][20]byte{ihash(99), ih}}))
	sr, err := wire.ParseUDPScrapeResponse(b)
	if err != nil || sr.TransactionID != c.tx || !slices.Equal(sr.Stats, []wire.UDPScrapeStats{{}, {Seeders: 2, Leechers: 1}}) {
		t.Fatalf("scrape %+v %v", sr, err)
	}

	// Stopped withdraws.
	r := uareq(id, ih, 44542, 1000)
	r.Event, r.NumWant = wire.EventStopped, 0
	if resp := c.announce(r, false); len(resp.Peers) != 0 {
		t.Fatalf("stopped got peers %v", resp.Peers)
	}
	eventually(t, "Withdraw", func() bool { return len(n.ops("withdraw")) == 1 })
}

func TestUDPAnnounceIPv6(t *testing.T) {
	n := newFakeNode()
	tr := newTracker(t, n, testConfig())
	addr := serveUDP(t, tr, "udp6")
	ih := ihash(6)
	n.set(ih, Swarm{Peers: []Peer{
		{Endpoint: ap("[::1]:51413"), Seed: true}, // the requester
		{Endpoint: ap("192.0.2.1:6881"), Seed: true},
		{Endpoint: ap("[2001:db8::1]:6881"), Seed: true},
	}})
	c := dialUDP(t, addr)
	resp := c.announce(uareq(c.connect(), ih, 51413, 1), true)
	if !slices.Equal(resp.Peers, []netip.AddrPort{ap("[2001:db8::1]:6881")}) {
		t.Fatalf("IPv6 answer %+v", resp)
	}
}

func TestUDPFirstAnnounceWaits(t *testing.T) {
	n := newFakeNode()
	n.lookupDelay = 10 * time.Second // longer than FirstLookupWait
	cfg := testConfig()
	cfg.FirstLookupWait = 300 * time.Millisecond
	tr := newTracker(t, n, cfg)
	addr := serveUDP(t, tr, "udp4")
	c := dialUDP(t, addr)
	id := c.connect()
	start := time.Now()
	resp := c.announce(uareq(id, ihash(7), 6881, 1), false)
	if d := time.Since(start); d < 250*time.Millisecond || d > 3*time.Second {
		t.Fatalf("answered after %v", d)
	}
	if resp.Interval != cfg.ShortInterval || len(resp.Peers) != 0 {
		t.Fatalf("answer %+v", resp)
	}
	// While one announce waits, the loop still answers others.
	if c.connect() == 0 {
		t.Fatal("zero connection ID")
	}
}

func TestUDPConnectionIDs(t *testing.T) {
	n := newFakeNode()
	clk := &fakeClock{now: time.Unix(60*28_000_000, 0)} // the start of an ID window
	cfg := testConfig()
	cfg.Clock = clk.Now
	tr := newTracker(t, n, cfg)
	addr := serveUDP(t, tr, "udp4")
	c := dialUDP(t, addr)
	const msg = "connection ID expired or invalid: connect again"

	r := uareq(0x0123456789abcdef, ihash(8), 6881, 1)
	r.TransactionID = 42
	c.expectError(wire.AppendUDPAnnounceRequest(nil, &r), msg)
	c.expectError(wire.AppendUDPScrapeRequest(nil, &wire.UDPScrapeRequest{ConnectionID: 1, TransactionID: 43, InfoHashes: [][20]byte{ihash(8)}}), msg)

	id := c.connect()
	if c.connect() != id {
		t.Fatal("IDs differ within a window")
	}
	r.ConnectionID = id ^ 1 // one bit off
	c.expectError(wire.AppendUDPAnnounceRequest(nil, &r), msg)

	clk.Advance(119 * time.Second) // the next window: still good
	c.announce(uareq(id, ihash(8), 6881, 1), false)
	clk.Advance(time.Second) // two windows on: expired
	r.ConnectionID = id
	c.expectError(wire.AppendUDPAnnounceRequest(nil, &r), msg)
	c.announce(uareq(c.connect(), ihash(8), 6881, 1), false)
	if st := tr.Stats(); st.UDPBadConnIDs != 4 {
		t.Fatalf("bad connection IDs counted %d", st.UDPBadConnIDs)
	}
}

func TestConnIDsUnit(t *testing.T) {
	ids := newConnIDs([]byte("key one"))
	other := newConnIDs([]byte("key two"))
	now := time.Unix(60*28_000_000+30, 0)
	a, b := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2")
	id := ids.issue(a, now)
	switch {
	case !ids.valid(id, a, now):
		t.Fatal("fresh ID refused")
	case !ids.valid(id, netip.MustParseAddr("::ffff:127.0.0.1"), now):
		t.Fatal("IPv4-mapped source refused")
	case ids.valid(id, b, now):
		t.Fatal("ID accepted from another address")
	case other.valid(id, a, now):
		t.Fatal("ID accepted under another key")
	case !ids.valid(id, a, now.Add(89*time.Second)):
		t.Fatal("ID refused in the next window")
	case ids.valid(id, a, now.Add(90*time.Second)):
		t.Fatal("ID accepted two windows on")
	case ids.valid(id, a, now.Add(-time.Minute)):
		t.Fatal("ID accepted before it was issued")
	}
}

func TestUDPMalformed(t *testing.T) {
	n := newFakeNode()
	tr := newTracker(t, n, testConfig())
	addr := serveUDP(t, tr, "udp4")
	c := dialUDP(t, addr)
	id := c.connect()
	good := wire.AppendUDPAnnounceRequest(nil, &wire.UDPAnnounceRequest{ConnectionID: id, TransactionID: 7, InfoHash: ihash(9), Port: 1, NumWant: -1})
	with := func(mod func([]byte) []byte) []byte { return mod(bytes.Clone(good)) }

	c.silent(nil)
	c.silent([]byte{1, 2, 3})
	c.silent(good[:15])
	c.expectError(good[:16], "announce request of 16 bytes, want at least 98")
	c.expectError(good[:97], "announce request of 97 bytes, want at least 98")
	c.expectError(with(func(b []byte) []byte { b[83] = 9; return b }), "unknown event 9")
	c.expectError(append(bytes.Clone(good), 2, 200, 'x'), "BEP 41 option 2 of 200 bytes runs past the end")
	c.expectError(with(func(b []byte) []byte { b[11] = 7; return b }), "unknown action 7")
	c.expectError(with(func(b []byte) []byte { b[11] = 3; return b }), "unknown action 3")
	connect := wire.AppendConnectRequest(nil, wire.ConnectRequest{TransactionID: 5})
	c.expectError(append(bytes.Clone(connect), 'x'), "1 bytes after the connect request")
	bad := bytes.Clone(connect)
	bad[7] = 0x81
	c.expectError(bad, "connect without the protocol ID 0x41727101980 (got 0x41727101981)")
	scrape := wire.AppendUDPScrapeRequest(nil, &wire.UDPScrapeRequest{ConnectionID: id, TransactionID: 8, InfoHashes: [][20]byte{ihash(1)}})
	c.expectError(scrape[:30], "scrape request of 30 bytes, want at least 36")
	c.expectError(append(scrape, 1), "scrape body of 21 bytes, not a multiple of 20")
	c.expectError(append(scrape, make([]byte, 20*74)...), "scrape of 75 infohashes, at most 74")

	// Still serving.
	if resp := c.announce(uareq(id, ihash(9), 1, 1), false); resp.Interval == 0 {
		t.Fatalf("answer %+v", resp)
	}
	if st := tr.Stats(); st.UDPIgnored != 3 || st.BadRequests != 11 {
		t.Fatalf("stats %+v", st)
	}
}

func TestServeUDPAfterClose(t *testing.T) {
	tr, err := New(newFakeNode(), testConfig())
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- tr.ServeUDP(context.Background(), pc) }()
	time.Sleep(10 * time.Millisecond)
	tr.Close()
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Fatalf("ServeUDP after Close: %v", err)
	}
}
