package bridge

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kadtracker/kadtracker/node/tracker/wire"
)

var testIH = [20]byte{0xc3, 0x9e, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18}

func testRequest(port uint16) AnnounceRequest {
	r := AnnounceRequest{InfoHash: testIH, Port: port, Left: 1, Event: wire.EventStarted, NumWant: 50, Key: 0xdeadbeef}
	copy(r.PeerID[:], "-KT0100-abcdefghijkl")
	return r
}

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		url    string
		ok     bool
		scrape string // "" when BEP 48 gives none
	}{
		{"http://t.example:6969/announce", true, "http://t.example:6969/scrape"},
		{"https://t.example/x/announce.php?passkey=ab", true, "https://t.example/x/scrape.php?passkey=ab"},
		{"http://t.example/a", true, ""},
		{"http://t.example/announce/x", true, ""},
		{"udp://t.example:80/announce", true, "udp://t.example:80/scrape"},
		{"udp://t.example", false, ""},
		{"ftp://t.example/announce", false, ""},
		{"http:///announce", false, ""},
		{"http://user:pw@t.example/announce", false, ""},
		{"http://t.example/announce#frag", false, ""},
		{"::", false, ""},
	} {
		u, err := ParseURL(tc.url)
		if (err == nil) != tc.ok {
			t.Errorf("ParseURL(%q): err %v, want ok=%v", tc.url, err, tc.ok)
			continue
		}
		if err != nil {
			if !errors.Is(err, ErrBadURL) {
				t.Errorf("ParseURL(%q): %v is not ErrBadURL", tc.url, err)
			}
			continue
		}
		su, err := ScrapeURL(u)
		switch {
		case tc.scrape == "" && !errors.Is(err, ErrNoScrape):
			t.Errorf("ScrapeURL(%q) = %v, %v; want ErrNoScrape", tc.url, su, err)
		case tc.scrape != "" && (err != nil || su.String() != tc.scrape):
			t.Errorf("ScrapeURL(%q) = %v, %v; want %s", tc.url, su, err, tc.scrape)
		}
	}
}

// httpTracker serves announces with handle, after checking that each is a
// valid announce query.
func httpTracker(t *testing.T, handle func(w http.ResponseWriter, r *http.Request, ar wire.AnnounceRequest)) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/scrape" {
			hs, err := wire.ParseScrape(r.URL.RawQuery)
			if err != nil {
				t.Errorf("scrape query %q: %v", r.URL.RawQuery, err)
			}
			var files []wire.ScrapeFile
			for _, h := range hs {
				files = append(files, wire.ScrapeFile{InfoHash: h, Complete: 3, Downloaded: 7, Incomplete: 4})
			}
			w.Write(wire.AppendScrapeResponse(nil, files[:len(files)-1])) // leaves the last out
			return
		}
		ar, err := wire.ParseAnnounce(r.URL.RawQuery)
		if err != nil {
			t.Errorf("announce query %q: %v", r.URL.RawQuery, err)
		}
		handle(w, r, ar)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func newTestClient(t *testing.T, url string) *Client {
	t.Helper()
	c, err := NewClient(url, ClientConfig{UDPRetransmit: 50 * time.Millisecond, UDPTries: 3})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestHTTPAnnounce(t *testing.T) {
	srv := httpTracker(t, func(w http.ResponseWriter, r *http.Request, ar wire.AnnounceRequest) {
		if ar.InfoHash != testIH || ar.Port != 6881 || ar.Event != wire.EventStarted || ar.Left != 1 || !ar.Compact || ar.NumWant != 50 || ar.Key != "DEADBEEF" {
			t.Errorf("tracker got %+v", ar)
		}
		if r.URL.Query().Get("passkey") != "x y" {
			t.Errorf("the URL's own query was lost: %q", r.URL.RawQuery)
		}
		w.Write(wire.AppendAnnounceResponse(nil, &wire.AnnounceResponse{
			Interval: 1800 * time.Second, MinInterval: 900 * time.Second, Complete: 2, Incomplete: 5,
			Peers:      []wire.Peer{{Addr: netip.MustParseAddrPort("10.0.0.1:1")}, {Addr: netip.MustParseAddrPort("[2001:db8::1]:2")}},
			ExternalIP: netip.MustParseAddr("192.0.2.7"), Warning: "hello",
		}, wire.FormCompact))
	})
	c := newTestClient(t, srv.URL+"/announce?passkey=x+y")
	resp, err := c.Announce(t.Context(), testRequest(6881))
	if err != nil {
		t.Fatal(err)
	}
	want := AnnounceResponse{
		Interval: 1800 * time.Second, MinInterval: 900 * time.Second, Seeders: 2, Leechers: 5,
		Peers:      []netip.AddrPort{netip.MustParseAddrPort("10.0.0.1:1"), netip.MustParseAddrPort("[2001:db8::1]:2")},
		ExternalIP: netip.MustParseAddr("192.0.2.7"), Warning: "hello",
	}
	if resp.Interval != want.Interval || resp.MinInterval != want.MinInterval || resp.Seeders != 2 || resp.Leechers != 5 ||
		len(resp.Peers) != 2 || resp.Peers[0] != want.Peers[0] || resp.Peers[1] != want.Peers[1] || resp.ExternalIP != want.ExternalIP || resp.Warning != "hello" {
		t.Errorf("got %+v\nwant %+v", resp, want)
	}
}

func TestHTTPScrape(t *testing.T) {
	srv := httpTracker(t, nil)
	c := newTestClient(t, srv.URL+"/announce")
	other := [20]byte{9}
	files, err := c.Scrape(t.Context(), [][20]byte{testIH, other})
	if err != nil {
		t.Fatal(err)
	}
	// The answer's entries come back in the order asked; the one the
	// tracker left out counts zero.
	if len(files) != 2 || files[0].InfoHash != testIH || files[1].InfoHash != other {
		t.Fatalf("got %+v", files)
	}
	if f := files[0]; f.Complete != 3 || f.Downloaded != 7 || f.Incomplete != 4 {
		t.Errorf("counts %+v", f)
	}
	if f := files[1]; f.Complete != 0 || f.Downloaded != 0 || f.Incomplete != 0 {
		t.Errorf("counts of the infohash left out: %+v", f)
	}
	if _, err := newTestClient(t, srv.URL+"/a").Scrape(t.Context(), [][20]byte{testIH}); !errors.Is(err, ErrNoScrape) {
		t.Errorf("scrape without a scrape URL: %v", err)
	}
}

// A tracker that answers garbage, an error status, a failure reason or
// nothing at all gives an error, within the caller's deadline.
func TestHTTPAnnounceFailures(t *testing.T) {
	for _, tc := range []struct {
		name    string
		handle  func(w http.ResponseWriter, r *http.Request)
		check   func(err error) bool
		timeout time.Duration
	}{
		{"failure reason", func(w http.ResponseWriter, r *http.Request) {
			w.Write(wire.AppendFailure(nil, "torrent not registered"))
		}, func(err error) bool {
			var fe *wire.FailureError
			return errors.As(err, &fe) && fe.Reason == "torrent not registered"
		}, time.Second},
		{"failure reason with 403", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusForbidden)
			w.Write(wire.AppendFailure(nil, "not whitelisted"))
		}, func(err error) bool {
			var fe *wire.FailureError
			return errors.As(err, &fe) && fe.Reason == "not whitelisted"
		}, time.Second},
		{"status 500", func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "oops", http.StatusInternalServerError)
		}, func(err error) bool { return errors.Is(err, ErrHTTPStatus) }, time.Second},
		{"garbage", func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte("<html>hello</html>"))
		}, func(err error) bool { return errors.Is(err, ErrBadResponse) }, time.Second},
		{"no interval", func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte("d5:peers0:e"))
		}, func(err error) bool { return errors.Is(err, ErrBadResponse) }, time.Second},
		{"too large", func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte(strings.Repeat("x", wire.MaxBencodeLen+10)))
		}, func(err error) bool { return errors.Is(err, ErrTooLarge) }, 5 * time.Second},
		{"silent", func(w http.ResponseWriter, r *http.Request) {
			<-r.Context().Done()
		}, func(err error) bool { return errors.Is(err, context.DeadlineExceeded) }, 300 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(tc.handle))
			defer srv.Close()
			c := newTestClient(t, srv.URL+"/announce")
			ctx, cancel := context.WithTimeout(t.Context(), tc.timeout)
			defer cancel()
			start := time.Now()
			_, err := c.Announce(ctx, testRequest(1))
			if err == nil || !tc.check(err) {
				t.Fatalf("got %v", err)
			}
			if d := time.Since(start); d > tc.timeout+time.Second {
				t.Errorf("took %v, deadline %v", d, tc.timeout)
			}
		})
	}
}

// udpTracker is a scripted BEP 15 tracker on 127.0.0.1.
type udpTracker struct {
	t    *testing.T
	conn *net.UDPConn
	// behaviour; read by the server goroutine
	drop     atomic.Int32 // drop this many requests first
	silent   atomic.Bool
	errorMsg atomic.Value // string: answer announces with this error
	noise    atomic.Bool  // send an answer with another transaction ID first
	garbage  atomic.Bool  // answer announces with a malformed packet
	connects atomic.Int32
	reissue  atomic.Bool // forget connection IDs: every announce needs a new connect
	announce chan wire.UDPAnnounceRequest

	mu  sync.Mutex
	ids map[uint64]bool
}

func newUDPTracker(t *testing.T) *udpTracker {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	u := &udpTracker{t: t, conn: conn, ids: map[uint64]bool{}, announce: make(chan wire.UDPAnnounceRequest, 16)}
	u.errorMsg.Store("")
	done := make(chan struct{})
	go func() { defer close(done); u.serve() }()
	t.Cleanup(func() { conn.Close(); <-done })
	return u
}

func (u *udpTracker) URL() string { return "udp://" + u.conn.LocalAddr().String() + "/announce" }

func (u *udpTracker) serve() {
	buf := make([]byte, 2048)
	var nextID uint64 = 1000
	for {
		n, from, err := u.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		b := buf[:n]
		if u.drop.Load() > 0 {
			u.drop.Add(-1)
			continue
		}
		if u.silent.Load() {
			continue
		}
		id, action, tx, ok := wire.PeekUDPRequest(b)
		if !ok {
			continue
		}
		reply := func(p []byte) { u.conn.WriteToUDPAddrPort(p, from) }
		switch action {
		case wire.ActionConnect:
			if _, err := wire.ParseConnectRequest(b); err != nil {
				u.t.Errorf("connect: %v", err)
				continue
			}
			u.connects.Add(1)
			nextID++
			u.mu.Lock()
			u.ids[nextID] = true
			u.mu.Unlock()
			reply(wire.AppendConnectResponse(nil, wire.ConnectResponse{TransactionID: tx, ConnectionID: nextID}))
		case wire.ActionAnnounce, wire.ActionScrape:
			u.mu.Lock()
			valid := u.ids[id]
			if u.reissue.Load() {
				delete(u.ids, id)
			}
			u.mu.Unlock()
			if !valid {
				reply(wire.AppendUDPError(nil, wire.UDPError{TransactionID: tx, Message: "connection ID expired"}))
				continue
			}
			if msg := u.errorMsg.Load().(string); msg != "" {
				reply(wire.AppendUDPError(nil, wire.UDPError{TransactionID: tx, Message: msg}))
				continue
			}
			if u.noise.Load() {
				reply(wire.AppendUDPAnnounceResponse(nil, &wire.UDPAnnounceResponse{TransactionID: tx + 1, Interval: time.Second}, false))
			}
			if action == wire.ActionScrape {
				sr, err := wire.ParseUDPScrapeRequest(b)
				if err != nil {
					u.t.Errorf("scrape: %v", err)
					continue
				}
				resp := wire.UDPScrapeResponse{TransactionID: tx}
				for range sr.InfoHashes {
					resp.Stats = append(resp.Stats, wire.UDPScrapeStats{Seeders: 1, Completed: 2, Leechers: 3})
				}
				reply(wire.AppendUDPScrapeResponse(nil, &resp))
				continue
			}
			ar, err := wire.ParseUDPAnnounceRequest(b)
			if err != nil {
				u.t.Errorf("announce: %v", err)
				continue
			}
			select {
			case u.announce <- ar:
			default:
			}
			if u.garbage.Load() {
				reply(append(wire.AppendUDPAnnounceResponse(nil, &wire.UDPAnnounceResponse{TransactionID: tx}, false), 1, 2, 3))
				continue
			}
			reply(wire.AppendUDPAnnounceResponse(nil, &wire.UDPAnnounceResponse{
				TransactionID: tx, Interval: 600 * time.Second, Leechers: 4, Seeders: 1,
				Peers: []netip.AddrPort{netip.MustParseAddrPort("10.0.0.9:6881")},
			}, false))
		}
	}
}

func TestUDPAnnounce(t *testing.T) {
	u := newUDPTracker(t)
	c := newTestClient(t, u.URL())
	for i := range 3 {
		resp, err := c.Announce(t.Context(), testRequest(6881))
		if err != nil {
			t.Fatal(err)
		}
		if resp.Interval != 600*time.Second || resp.Seeders != 1 || resp.Leechers != 4 || len(resp.Peers) != 1 || resp.Peers[0] != netip.MustParseAddrPort("10.0.0.9:6881") {
			t.Errorf("announce %d: %+v", i, resp)
		}
		ar := <-u.announce
		if ar.InfoHash != testIH || ar.Port != 6881 || ar.Event != wire.EventStarted || ar.NumWant != 50 || ar.Key != 0xdeadbeef || ar.URLData != "/announce" {
			t.Errorf("tracker got %+v", ar)
		}
	}
	// The connection ID is cached: one connect for three announces.
	if n := u.connects.Load(); n != 1 {
		t.Errorf("%d connects for 3 announces", n)
	}
	files, err := c.Scrape(t.Context(), [][20]byte{testIH, {1}})
	if err != nil || len(files) != 2 || files[1].InfoHash != [20]byte{1} || files[1].Complete != 1 || files[1].Downloaded != 2 || files[1].Incomplete != 3 {
		t.Errorf("scrape: %+v, %v", files, err)
	}
}

// A tracker that forgot the connection ID answers with an error; the
// client connects again and retries once.
func TestUDPConnectionIDRenewed(t *testing.T) {
	u := newUDPTracker(t)
	u.reissue.Store(true)
	c := newTestClient(t, u.URL())
	for i := range 2 {
		if _, err := c.Announce(t.Context(), testRequest(6881)); err != nil {
			t.Fatalf("announce %d: %v", i, err)
		}
	}
	if n := u.connects.Load(); n != 2 {
		t.Errorf("%d connects, want 2", n)
	}
	// Connection IDs expire on the client's clock too.
	now := time.Now()
	c.cfg.Clock = func() time.Time { return now.Add(2 * connIDLifetime) }
	u.reissue.Store(false)
	if _, err := c.Announce(t.Context(), testRequest(6881)); err != nil {
		t.Fatal(err)
	}
	if n := u.connects.Load(); n != 3 {
		t.Errorf("%d connects after the ID expired, want 3", n)
	}
}

// Lost packets are sent again after the retransmission timeout.
func TestUDPRetransmit(t *testing.T) {
	u := newUDPTracker(t)
	u.drop.Store(2) // the first connect and its first retransmission
	c := newTestClient(t, u.URL())
	if _, err := c.Announce(t.Context(), testRequest(6881)); err != nil {
		t.Fatal(err)
	}
	u.noise.Store(true) // an answer to another transaction is ignored
	if _, err := c.Announce(t.Context(), testRequest(6881)); err != nil {
		t.Fatal(err)
	}
}

func TestUDPFailures(t *testing.T) {
	t.Run("failure reason", func(t *testing.T) {
		u := newUDPTracker(t)
		u.errorMsg.Store("info_hash not whitelisted")
		_, err := newTestClient(t, u.URL()).Announce(t.Context(), testRequest(1))
		var fe *wire.FailureError
		if !errors.As(err, &fe) || fe.Reason != "info_hash not whitelisted" {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("garbage", func(t *testing.T) {
		u := newUDPTracker(t)
		u.garbage.Store(true)
		_, err := newTestClient(t, u.URL()).Announce(t.Context(), testRequest(1))
		if !errors.Is(err, ErrBadResponse) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("silent", func(t *testing.T) {
		u := newUDPTracker(t)
		u.silent.Store(true)
		c := newTestClient(t, u.URL())
		start := time.Now()
		_, err := c.Announce(t.Context(), testRequest(1))
		// 50 + 100 + 200 ms of retransmission timeouts.
		if !errors.Is(err, ErrNoAnswer) {
			t.Fatalf("got %v", err)
		}
		if d := time.Since(start); d < 300*time.Millisecond || d > 2*time.Second {
			t.Errorf("gave up after %v, want about 350ms", d)
		}
		// The caller's deadline cuts the retransmissions short.
		c.cfg.UDPRetransmit = time.Hour
		ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
		defer cancel()
		start = time.Now()
		if _, err := c.Announce(ctx, testRequest(1)); !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, ErrNoAnswer) {
			t.Fatalf("got %v", err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("took %v past a 200ms deadline", d)
		}
	})
	t.Run("nothing listens", func(t *testing.T) {
		pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		url := "udp://" + pc.LocalAddr().String() + "/announce"
		pc.Close()
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		if _, err := newTestClient(t, url).Announce(ctx, testRequest(1)); err == nil {
			t.Fatal("announce to a closed port succeeded")
		}
	})
}
