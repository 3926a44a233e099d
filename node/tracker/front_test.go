package tracker

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/kadtracker/kadtracker/node/tracker/wire"
)

// The raw first announces of real clients (REAL-CLIENTS.md, completed to
// full length) go through net/http and the front unharmed.
func TestHTTPRealClientQueries(t *testing.T) {
	n := newFakeNode()
	tr := newTracker(t, n, testConfig())
	base := serveHTTP(t, tr)
	for name, q := range map[string]string{
		"aria2":        "info_hash=%C3%9EZ%0F%1B.%7DL%8Ao%3E-%1C%0B%9A%8F~m%5CK&peer_id=A2-1-36-0-%5C%2B%FF%00%91~*A%B3%C4&uploaded=0&downloaded=0&left=0&compact=1&key=%3E%C6Q%3C%11k%9C.&numwant=50&no_peer_id=1&port=26293&event=started&supportcrypto=1",
		"transmission": "info_hash=%02K%da%1cU%e3%a8oM%2b%91%c0~_%3ak%8c%9d%0e%1f&peer_id=-TR3000-1w50ns7956m6&port=38128&uploaded=0&downloaded=0&left=0&numwant=80&key=478325eb&compact=1&supportcrypto=1&event=started",
		"qbittorrent":  "info_hash=%82Ik%3F%0A%2CNm%8F%1B%3DZ%7C%9E%0F*Kl%8D%0E&peer_id=-qB4520-RhrIZgXfJNOy&port=44542&uploaded=0&downloaded=0&left=0&corrupt=0&key=D38068A0&event=started&numwant=200&compact=1&no_peer_id=1&supportcrypto=1&redundant=0",
		"rtorrent":     "info_hash=%88%B0-Oj%8C%0E%1F%3B%5Dz%9C.Ok%8D%0A%1C%3E_&peer_id=-lt0D80-%1F%8A%22%E3%B4%C5%D6%E7%F8%09%1A%2B&key=69c3d22b&compact=1&port=23206&uploaded=0&downloaded=0&left=0&event=started",
	} {
		_, _, body := get(t, base+"/announce?"+q)
		if _, err := wire.ParseAnnounceResponse(body); err != nil {
			t.Errorf("%s: %q: %v", name, body, err)
		}
	}
	eventually(t, "four node announces", func() bool { return len(n.ops("announce")) == 4 })
	for _, c := range n.ops("announce") {
		if !c.seed {
			t.Errorf("left=0 announced as leecher: %+v", c)
		}
	}
	// A query within the HTTP header limit but over the query cap.
	_, _, body := get(t, base+"/announce?pad="+string(bytes.Repeat([]byte("x"), wire.MaxQueryLen)))
	var fe *wire.FailureError
	if _, err := wire.ParseAnnounceResponse(body); !errors.As(err, &fe) || fe.Reason != "query of 8196 bytes exceeds 8192" {
		t.Errorf("long query: %v", err)
	}
}

// Everything the HTTP handler writes is a valid announce/scrape response or
// a failure, whatever the query.
func FuzzHTTPFront(f *testing.F) {
	f.Add("/announce", "info_hash=%82Ik%3F%0A%2CNm%8F%1B%3DZ%7C%9E%0F*Kl%8D%0E&peer_id=-qB4520-RhrIZgXfJNOy&port=44542&uploaded=0&downloaded=0&left=0&event=started&numwant=200&compact=1")
	f.Add("/announce", "info_hash=aaaaaaaaaaaaaaaaaaaa&peer_id=bbbbbbbbbbbbbbbbbbbb&port=1&uploaded=0&downloaded=0&left=5&compact=0&event=stopped")
	f.Add("/scrape", "info_hash=aaaaaaaaaaaaaaaaaaaa&info_hash=%zz")
	f.Add("/x", "")
	n := newFakeNode()
	n.set([20]byte([]byte("aaaaaaaaaaaaaaaaaaaa")), Swarm{Peers: []Peer{{Endpoint: ap("192.0.2.1:1")}, {Endpoint: ap("[2001:db8::1]:2"), Seed: true}}})
	cfg := testConfig()
	cfg.FirstLookupWait = 0
	tr, err := New(n, cfg)
	if err != nil {
		f.Fatal(err)
	}
	defer tr.Close()
	h := &httpFront{t: tr}
	f.Fuzz(func(t *testing.T, path, rawQuery string) {
		req := &http.Request{Method: http.MethodGet, URL: &url.URL{Path: path, RawQuery: rawQuery}, RemoteAddr: "127.0.0.1:4000"}
		w := &recorder{h: http.Header{}}
		h.ServeHTTP(w, req.WithContext(context.Background()))
		if len(w.body) == 0 {
			t.Fatal("empty response")
		}
		var fe *wire.FailureError
		switch _, err := wire.ParseAnnounceResponse(w.body); {
		case err == nil, errors.As(err, &fe):
		default:
			if _, err2 := wire.ParseScrapeResponse(w.body); err2 != nil {
				t.Fatalf("response %q is neither: %v / %v", w.body, err, err2)
			}
		}
	})
}

type recorder struct {
	h    http.Header
	code int
	body []byte
}

func (w *recorder) Header() http.Header         { return w.h }
func (w *recorder) WriteHeader(c int)           { w.code = c }
func (w *recorder) Write(p []byte) (int, error) { w.body = append(w.body, p...); return len(p), nil }

// Every UDP packet of 16 bytes or more gets exactly one answer: a response
// of its action with its transaction ID, or an error packet; shorter ones
// get none. withID stamps a valid connection ID so the fuzzer gets past it.
func FuzzUDPFront(f *testing.F) {
	ann := wire.AppendUDPAnnounceRequest(nil, &wire.UDPAnnounceRequest{TransactionID: 3, InfoHash: [20]byte([]byte("aaaaaaaaaaaaaaaaaaaa")), Left: 1, Port: 6881, NumWant: -1})
	f.Add(ann, true)
	f.Add(append(bytes.Clone(ann), 2, 9, '/', 'a', 'n', 'n', 'o', 'u', 'n', 'c', 'e'), true)
	f.Add(append(bytes.Clone(ann), 0, 0), false)
	f.Add(wire.AppendConnectRequest(nil, wire.ConnectRequest{TransactionID: 1}), false)
	f.Add(wire.AppendUDPScrapeRequest(nil, &wire.UDPScrapeRequest{TransactionID: 4, InfoHashes: [][20]byte{{1}, {2}}}), true)
	f.Add([]byte{1, 2, 3}, false)
	n := newFakeNode()
	n.set([20]byte([]byte("aaaaaaaaaaaaaaaaaaaa")), Swarm{Peers: []Peer{{Endpoint: ap("192.0.2.1:1")}, {Endpoint: ap("[2001:db8::1]:2"), Seed: true}}})
	cfg := testConfig()
	cfg.FirstLookupWait = 0
	tr, err := New(n, cfg)
	if err != nil {
		f.Fatal(err)
	}
	defer tr.Close()
	f.Fuzz(func(t *testing.T, pkt []byte, withID bool) {
		w := &capturePC{}
		u := &udpFront{t: tr, pc: w, apw: w, ids: newConnIDs([]byte("fuzz"))}
		from := ap("127.0.0.1:5000")
		if withID && len(pkt) >= 8 {
			pkt = bytes.Clone(pkt)
			binary.BigEndian.PutUint64(pkt, u.ids.issue(from.Addr(), time.Now()))
		}
		u.handle(context.Background(), pkt, from, nil)
		u.wg.Wait()
		if len(pkt) < wire.UDPHeaderLen {
			if len(w.got) != 0 {
				t.Fatalf("answer to a %d-byte packet", len(pkt))
			}
			return
		}
		if len(w.got) != 1 {
			t.Fatalf("%d answers", len(w.got))
		}
		b := w.got[0]
		act, tx, ok := wire.PeekUDPResponse(b)
		if !ok || tx != binary.BigEndian.Uint32(pkt[12:]) {
			t.Fatalf("answer %x to %x", b, pkt)
		}
		var perr error
		switch act {
		case wire.ActionError:
			var e wire.UDPError
			e, perr = wire.ParseUDPError(b)
			if perr == nil && e.Message == "" {
				t.Fatal("empty error message")
			}
		case wire.ActionConnect:
			_, perr = wire.ParseConnectResponse(b)
		case wire.ActionAnnounce:
			_, perr = wire.ParseUDPAnnounceResponse(b, false)
		case wire.ActionScrape:
			_, perr = wire.ParseUDPScrapeResponse(b)
		}
		if perr != nil || act != wire.ActionError && act != wire.Action(binary.BigEndian.Uint32(pkt[8:])) {
			t.Fatalf("answer %x (%v) to %x", b, perr, pkt)
		}
	})
}

type capturePC struct {
	net.PacketConn
	mu  sync.Mutex
	got [][]byte
}

func (c *capturePC) WriteToUDPAddrPort(p []byte, _ netip.AddrPort) (int, error) {
	c.mu.Lock()
	c.got = append(c.got, bytes.Clone(p))
	c.mu.Unlock()
	return len(p), nil
}

// Servers and the Tracker leave no goroutine behind, even with announces
// waiting on slow lookups and node calls running.
func TestNoLeaks(t *testing.T) {
	before := runtime.NumGoroutine()
	n := newFakeNode()
	n.lookupDelay = time.Minute
	tr, err := New(n, testConfig())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	pc, _ := net.ListenPacket("udp4", "127.0.0.1:0")
	errs := make(chan error, 2)
	go func() { errs <- tr.Serve(ctx, ln) }()
	go func() { errs <- tr.ServeUDP(ctx, pc) }()

	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	got := make(chan struct{})
	go func() {
		defer close(got)
		if resp, err := client.Get("http://" + ln.Addr().String() + "/announce?" + string(wire.AppendAnnounceQuery(nil, &wire.AnnounceRequest{InfoHash: ihash(1), Port: 1, Compact: true, NumWant: -1}))); err == nil {
			resp.Body.Close()
		}
	}()
	c := dialUDP(t, pc.LocalAddr().(*net.UDPAddr).AddrPort())
	r := uareq(c.connect(), ihash(2), 2, 1)
	c.conn.Write(wire.AppendUDPAnnounceRequest(nil, &r)) // waits on the lookup
	eventually(t, "lookups running", func() bool { return len(n.ops("lookup")) == 2 })

	cancel()
	for range 2 {
		if err := <-errs; err != nil {
			t.Errorf("serve: %v", err)
		}
	}
	tr.Close()
	<-got
	c.conn.Close()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<20)
		t.Fatalf("%d goroutines, %d before:\n%s", n, before, buf[:runtime.Stack(buf, true)])
	}
}
