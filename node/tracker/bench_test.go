package tracker

import (
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"testing"
	"time"

	"github.com/kadtracker/kadtracker/node/tracker/wire"
)

// benchTracker returns a tracker whose cache holds a swarm of 60 peers, and
// the swarm's infohash.
func benchTracker(b *testing.B) (*Tracker, [20]byte) {
	n := newFakeNode()
	ih := ihash(42)
	var peers []Peer
	for i := range 60 {
		peers = append(peers, Peer{Endpoint: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), 6881), Seed: i%2 == 0})
	}
	n.set(ih, Swarm{Peers: peers, Seeds: 30, Leechers: 30})
	cfg := DefaultConfig()
	tr, err := New(n, cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { tr.Close() })
	// Warm: the first announce fills the cache.
	if _, err := tr.announce(b.Context(), &request{infohash: ih, client: ap("127.0.0.1:6881"), numwant: -1}, nil); err != nil {
		b.Fatal(err)
	}
	return tr, ih
}

func announcesPerSecond(b *testing.B, n int) {
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "announces/s")
}

// BenchmarkHTTPAnnounce: one client, keep-alive, over loopback.
func BenchmarkHTTPAnnounce(b *testing.B) {
	tr, ih := benchTracker(b)
	base := serveHTTPBench(b, tr)
	r := wire.AnnounceRequest{InfoHash: ih, PeerID: [20]byte([]byte("-qB4520-RhrIZgXfJNOy")), Port: 6881, Left: 1, Compact: true, NumWant: 50}
	u := base + "/announce?" + string(wire.AppendAnnounceQuery(nil, &r))
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		resp, err := client.Get(u)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		n++
	}
	announcesPerSecond(b, n)
}

func serveHTTPBench(b *testing.B, tr *Tracker) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- tr.Serve(b.Context(), ln) }()
	b.Cleanup(func() { tr.Close(); <-done })
	return "http://" + ln.Addr().String()
}

// BenchmarkHTTPHandlerAnnounce measures the server side alone: parse,
// answer from the cache, encode (net/http's own request parsing excluded).
func BenchmarkHTTPHandlerAnnounce(b *testing.B) {
	tr, ih := benchTracker(b)
	h := &httpFront{t: tr}
	r := wire.AnnounceRequest{InfoHash: ih, PeerID: [20]byte([]byte("-qB4520-RhrIZgXfJNOy")), Port: 6881, Left: 1, Compact: true, NumWant: 50}
	req := &http.Request{
		Method:     http.MethodGet,
		URL:        &url.URL{Path: "/announce", RawQuery: string(wire.AppendAnnounceQuery(nil, &r))},
		RemoteAddr: "127.0.0.1:40000",
	}
	req = req.WithContext(b.Context())
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		h.ServeHTTP(w, req)
		n++
	}
	if w.n < 300 {
		b.Fatalf("response of %d bytes", w.n)
	}
	announcesPerSecond(b, n)
}

type discardWriter struct {
	h http.Header
	n int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) WriteHeader(int)             {}
func (w *discardWriter) Write(p []byte) (int, error) { w.n = len(p); return len(p), nil }

// BenchmarkUDPAnnounce: one client, connect once, announce per iteration,
// over loopback.
func BenchmarkUDPAnnounce(b *testing.B) {
	tr, ih := benchTracker(b)
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- tr.ServeUDP(b.Context(), pc) }()
	b.Cleanup(func() { tr.Close(); <-done })
	conn, err := net.DialUDP("udp", nil, pc.LocalAddr().(*net.UDPAddr))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	buf := make([]byte, 2048)
	conn.SetDeadline(time.Now().Add(time.Minute))
	conn.Write(wire.AppendConnectRequest(nil, wire.ConnectRequest{TransactionID: 1}))
	nr, err := conn.Read(buf)
	if err != nil {
		b.Fatal(err)
	}
	cr, err := wire.ParseConnectResponse(buf[:nr])
	if err != nil {
		b.Fatal(err)
	}
	r := wire.UDPAnnounceRequest{ConnectionID: cr.ConnectionID, TransactionID: 2, InfoHash: ih, Left: 1, NumWant: 50, Port: 6881}
	pkt := wire.AppendUDPAnnounceRequest(nil, &r)
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := conn.Write(pkt); err != nil {
			b.Fatal(err)
		}
		nr, err := conn.Read(buf)
		if err != nil {
			b.Fatal(err)
		}
		if nr != 20+6*50 {
			b.Fatalf("answer of %d bytes", nr)
		}
		n++
	}
	announcesPerSecond(b, n)
}

// BenchmarkUDPHandleAnnounce measures the server side alone: connection ID
// check, parse, answer from the cache, encode (socket I/O excluded).
func BenchmarkUDPHandleAnnounce(b *testing.B) {
	tr, ih := benchTracker(b)
	u := &udpFront{t: tr, pc: discardPC{}, apw: discardPC{}, ids: newConnIDs([]byte("bench key"))}
	from := ap("127.0.0.1:40000")
	r := wire.UDPAnnounceRequest{ConnectionID: u.ids.issue(from.Addr(), time.Now()), TransactionID: 2, InfoHash: ih, Left: 1, NumWant: 50, Port: 6881}
	pkt := wire.AppendUDPAnnounceRequest(nil, &r)
	out := make([]byte, 0, 2048)
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		out = u.handle(b.Context(), pkt, from, out[:0])
		n++
	}
	if len(out) != 20+6*50 {
		b.Fatalf("answer of %d bytes", len(out))
	}
	announcesPerSecond(b, n)
}

type discardPC struct{ net.PacketConn }

func (discardPC) WriteTo(p []byte, _ net.Addr) (int, error) { return len(p), nil }

func (discardPC) WriteToUDPAddrPort(p []byte, _ netip.AddrPort) (int, error) { return len(p), nil }
