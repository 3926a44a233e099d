package tracker

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kadtracker/kadtracker/node/tracker/wire"
	"github.com/kadtracker/kadtracker/records"
)

// serveHTTP runs tr.Serve on 127.0.0.1:0 and returns the base URL.
func serveHTTP(t *testing.T, tr *Tracker) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tr.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return "http://" + ln.Addr().String()
}

func get(t *testing.T, url string) (int, string, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), body
}

func announceURL(base string, r wire.AnnounceRequest) string {
	return base + "/announce?" + string(wire.AppendAnnounceQuery(nil, &r))
}

func areq(ih [20]byte, port uint16, left int64) wire.AnnounceRequest {
	return wire.AnnounceRequest{InfoHash: ih, PeerID: [20]byte([]byte("-TR3000-1w50ns7956m6")), Port: port, Left: left, Compact: true, NumWant: -1, Event: wire.EventStarted}
}

func httpAnnounce(t *testing.T, base string, r wire.AnnounceRequest) wire.AnnounceResponse {
	t.Helper()
	code, ct, body := get(t, announceURL(base, r))
	if code != 200 || ct != "text/plain" {
		t.Fatalf("status %d, content type %q", code, ct)
	}
	resp, err := wire.ParseAnnounceResponse(body)
	if err != nil {
		t.Fatalf("response %q: %v", body, err)
	}
	return resp
}

func addrs(ps []wire.Peer) []netip.AddrPort {
	var out []netip.AddrPort
	for _, p := range ps {
		out = append(out, p.Addr)
	}
	slices.SortFunc(out, netip.AddrPort.Compare)
	return out
}

func TestHTTPAnnouncePublishesOnce(t *testing.T) {
	n := newFakeNode()
	tr := newTracker(t, n, testConfig())
	base := serveHTTP(t, tr)
	ih := ihash(1)

	r := areq(ih, 6881, 100)
	httpAnnounce(t, base, r)
	eventually(t, "node Announce", func() bool { return len(n.ops("announce")) == 1 })
	c := n.ops("announce")[0]
	if c.key != records.SwarmKey(ih) || c.port != 6881 || c.seed {
		t.Fatalf("announce call %+v", c)
	}
	// Regular re-announces do not reach the DHT again.
	r.Event = wire.EventNone
	for range 5 {
		httpAnnounce(t, base, r)
	}
	// Completing flips the record to seed: one more Announce.
	r.Event, r.Left = wire.EventCompleted, 0
	httpAnnounce(t, base, r)
	eventually(t, "seed Announce", func() bool { return len(n.ops("announce")) == 2 })
	if c := n.ops("announce")[1]; !c.seed || c.port != 6881 {
		t.Fatalf("second announce %+v", c)
	}
	httpAnnounce(t, base, r)
	time.Sleep(20 * time.Millisecond)
	if got := len(n.ops("announce")); got != 2 {
		t.Fatalf("%d node Announces, want 2", got)
	}
	// Stopped withdraws.
	r.Event, r.NumWant = wire.EventStopped, 0
	resp := httpAnnounce(t, base, r)
	if len(resp.Peers) != 0 {
		t.Fatalf("stopped got peers %v", resp.Peers)
	}
	eventually(t, "Withdraw", func() bool { return len(n.ops("withdraw")) == 1 })
	if w := n.ops("withdraw")[0]; w.key != records.SwarmKey(ih) {
		t.Fatalf("withdraw %+v", w)
	}
	if st := tr.Stats(); st.Clients != 0 || st.Published != 0 {
		t.Fatalf("stats after stop %+v", st)
	}
}

func TestHTTPPeersAndSelfExclusion(t *testing.T) {
	n := newFakeNode()
	tr := newTracker(t, n, testConfig())
	base := serveHTTP(t, tr)
	ih := ihash(2)
	n.set(ih, Swarm{Seeds: 3, Leechers: 1, Peers: []Peer{
		{Endpoint: ap("127.0.0.1:6881"), Seed: true},                 // the requester itself, over loopback
		{Endpoint: ap("[::1]:6881"), Seed: true},                     // itself again
		{Endpoint: ap("198.51.100.7:6881"), Seed: true, Local: true}, // its record, published by this daemon
		{Endpoint: ap("203.0.113.5:6881"), Seed: true},               // someone else on the same port
		{Endpoint: ap("[::ffff:192.0.2.1]:51413"), Seed: true},       // mapped: answered as IPv4
		{Endpoint: ap("[2001:db8::2]:6889")},                         // a leecher over IPv6
	}})

	resp := httpAnnounce(t, base, areq(ih, 6881, 10))
	want := []netip.AddrPort{ap("192.0.2.1:51413"), ap("203.0.113.5:6881"), ap("[2001:db8::2]:6889")}
	if got := addrs(resp.Peers); !slices.Equal(got, want) {
		t.Fatalf("peers %v, want %v", got, want)
	}
	if resp.Complete != 3 || resp.Incomplete != 2 {
		t.Fatalf("complete %d incomplete %d", resp.Complete, resp.Incomplete)
	}
	if resp.Interval != 120*time.Second || resp.MinInterval != 30*time.Second || resp.Warning != "" {
		t.Fatalf("intervals %v %v warning %q", resp.Interval, resp.MinInterval, resp.Warning)
	}

	// The dictionary forms.
	r := areq(ih, 6881, 10)
	r.Compact = false
	if resp := httpAnnounce(t, base, r); !slices.Equal(addrs(resp.Peers), want) {
		t.Fatalf("dict peers %v", resp.Peers)
	}
	r.NoPeerID = true
	if resp := httpAnnounce(t, base, r); !slices.Equal(addrs(resp.Peers), want) {
		t.Fatalf("dict peers without id %v", resp.Peers)
	}
	_, _, body := get(t, announceURL(base, r))
	if strings.Contains(string(body), "peer id") {
		t.Fatalf("peer id sent: %q", body)
	}

	// numwant is honoured and capped.
	r = areq(ih, 6881, 10)
	r.NumWant = 2
	if resp := httpAnnounce(t, base, r); len(resp.Peers) != 2 {
		t.Fatalf("numwant 2: %d peers", len(resp.Peers))
	}
	r.NumWant = 0
	if resp := httpAnnounce(t, base, r); len(resp.Peers) != 0 {
		t.Fatalf("numwant 0: %d peers", len(resp.Peers))
	}

	// A second local client of the swarm gets the first directly; a seed
	// is not handed seeds.
	seed := areq(ih, 7000, 0)
	resp = httpAnnounce(t, base, seed)
	want = []netip.AddrPort{ap("127.0.0.1:6881"), ap("[2001:db8::2]:6889")}
	if got := addrs(resp.Peers); !slices.Equal(got, want) {
		t.Fatalf("seed got %v, want %v", got, want)
	}
}

func TestHTTPNumwantCap(t *testing.T) {
	n := newFakeNode()
	cfg := testConfig()
	cfg.MaxNumwant, cfg.DefaultNumwant = 5, 3
	cfg.Clock = (&fakeClock{now: time.Unix(1_700_000_000, 0)}).Now // one lookup, however slow the test
	tr := newTracker(t, n, cfg)
	base := serveHTTP(t, tr)
	ih := ihash(3)
	var peers []Peer
	for i := range 20 {
		peers = append(peers, Peer{Endpoint: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}), 6881)})
	}
	n.set(ih, Swarm{Peers: peers})
	r := areq(ih, 6881, 10)
	r.NumWant = 1000
	if resp := httpAnnounce(t, base, r); len(resp.Peers) != 5 {
		t.Fatalf("numwant 1000 capped to %d, want 5", len(resp.Peers))
	}
	r.NumWant = -1
	if resp := httpAnnounce(t, base, r); len(resp.Peers) != 3 {
		t.Fatalf("default numwant gave %d, want 3", len(resp.Peers))
	}
	if c := n.ops("lookup"); len(c) != 1 || c[0].want != 5+lookupSlack {
		t.Fatalf("lookups %+v", c)
	}
}

func TestHTTPFirstAnnounceWaitsForLookup(t *testing.T) {
	n := newFakeNode()
	n.lookupDelay = 200 * time.Millisecond
	tr := newTracker(t, n, testConfig())
	base := serveHTTP(t, tr)
	ih := ihash(4)
	n.set(ih, Swarm{Seeds: 1, Peers: []Peer{{Endpoint: ap("192.0.2.9:6881"), Seed: true}}})
	start := time.Now()
	resp := httpAnnounce(t, base, areq(ih, 6881, 10))
	if d := time.Since(start); d < 150*time.Millisecond || d > 1400*time.Millisecond {
		t.Fatalf("answered after %v", d)
	}
	if len(resp.Peers) != 1 || resp.Interval != 120*time.Second {
		t.Fatalf("first answer %+v", resp)
	}
}

func TestHTTPScrape(t *testing.T) {
	n := newFakeNode()
	tr := newTracker(t, n, testConfig())
	base := serveHTTP(t, tr)
	a, b, c := ihash(10), ihash(20), ihash(30)
	n.set(a, Swarm{Seeds: 4, Leechers: 2})
	httpAnnounce(t, base, areq(a, 6881, 0))
	httpAnnounce(t, base, areq(b, 6881, 5))
	code, _, body := get(t, base+"/scrape?"+string(wire.AppendScrapeQuery(nil, [][20]byte{a, b, c})))
	if code != 200 {
		t.Fatalf("status %d", code)
	}
	files, err := wire.ParseScrapeResponse(body)
	if err != nil {
		t.Fatal(err)
	}
	got := map[[20]byte]wire.ScrapeFile{}
	for _, f := range files {
		got[f.InfoHash] = f
	}
	if len(files) != 3 || got[a].Complete != 4 || got[a].Incomplete != 2 || got[b].Incomplete != 1 || got[b].Complete != 0 || got[c] != (wire.ScrapeFile{InfoHash: c}) {
		t.Fatalf("scrape %+v", files)
	}
}

func TestHTTPFailures(t *testing.T) {
	n := newFakeNode()
	tr := newTracker(t, n, testConfig())
	base := serveHTTP(t, tr)
	okq := string(wire.AppendAnnounceQuery(nil, &wire.AnnounceRequest{InfoHash: ihash(1), Port: 1, Compact: true, NumWant: -1}))
	for _, tc := range []struct {
		path   string
		status int
		reason string
	}{
		{"/announce", 200, "missing info_hash"},
		{"/announce?info_hash=abc", 200, "info_hash must be 20 bytes, got 3"},
		{"/announce?" + strings.Replace(okq, "port=1", "port=99999", 1), 200, `port must be at most 65535, got "99999"`},
		{"/announce?" + okq + "&event=bogus", 200, `unknown event "bogus"`},
		{"/announce?" + okq + "&info_hash=x", 200, "info_hash given more than once"},
		{"/scrape", 200, "scrape needs at least one info_hash (full scrape is not supported)"},
		{"/scrape?info_hash=%4", 200, "malformed percent-escape in info_hash"},
		{"/", 404, "not found: this tracker answers /announce and /scrape"},
		{"/announce/", 404, "not found: this tracker answers /announce and /scrape"},
		{"/announce.php?" + okq, 404, "not found: this tracker answers /announce and /scrape"},
	} {
		code, ct, body := get(t, base+tc.path)
		_, err := wire.ParseAnnounceResponse(body)
		var fe *wire.FailureError
		if code != tc.status || ct != "text/plain" || !errors.As(err, &fe) || fe.Reason != tc.reason {
			t.Errorf("%s: status %d %q body %q (%v), want %d %q", tc.path, code, ct, body, err, tc.status, tc.reason)
		}
	}
	resp, err := http.Post(base+"/announce?"+okq, "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d", resp.StatusCode)
	}
	// Oversized request line: refused before the handler.
	code, _, _ := get(t, base+"/announce?"+strings.Repeat("x", httpMaxHeaderBytes+8192))
	if code != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("huge query: %d", code)
	}
	if st := tr.Stats(); st.BadRequests < 10 || st.Swarms != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestHTTPFull(t *testing.T) {
	n := newFakeNode()
	cfg := testConfig()
	cfg.CacheSize = 2
	tr := newTracker(t, n, cfg)
	base := serveHTTP(t, tr)
	httpAnnounce(t, base, areq(ihash(1), 6881, 0))
	httpAnnounce(t, base, areq(ihash(2), 6881, 0))
	_, _, body := get(t, announceURL(base, areq(ihash(3), 6881, 0)))
	if _, err := wire.ParseAnnounceResponse(body); err == nil || !strings.Contains(err.Error(), "too many torrents") {
		t.Fatalf("third swarm: %v", err)
	}
	// Once a client stops, its swarm can be evicted for a new one.
	r := areq(ihash(1), 6881, 0)
	r.Event = wire.EventStopped
	httpAnnounce(t, base, r)
	eventually(t, "withdraw", func() bool { return len(n.ops("withdraw")) == 1 })
	eventually(t, "idle", func() bool {
		_, _, body := get(t, announceURL(base, areq(ihash(3), 6881, 0)))
		_, err := wire.ParseAnnounceResponse(body)
		return err == nil
	})
	// The stopped swarm, let in over CacheSize while its withdraw ran, is
	// forgotten once it is done.
	eventually(t, "two swarms", func() bool { return tr.Stats().Swarms == 2 })
	if st := tr.Stats(); st.Refused == 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestServeAfterClose(t *testing.T) {
	tr, err := New(newFakeNode(), testConfig())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- tr.Serve(context.Background(), ln) }()
	tr.Close()
	tr.Close() // idempotent
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Fatalf("Serve after Close: %v", err)
	}
}
