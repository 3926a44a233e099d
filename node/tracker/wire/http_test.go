package wire

import (
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseAnnounceRealClients(t *testing.T) {
	want := map[string]AnnounceRequest{
		"aria2": {
			PeerID: [20]byte([]byte("A2-1-36-0-\x5c\x2b\xff\x00\x91\x7e\x2a\x41\xb3\xc4")),
			Port:   26293, Event: EventStarted, Compact: true, NumWant: 50,
			Key: "\x3e\xc6Q\x3c\x11k\x9c.", NoPeerID: true,
		},
		"transmission": {
			PeerID: [20]byte([]byte("-TR3000-1w50ns7956m6")),
			Port:   38128, Event: EventStarted, Compact: true, NumWant: 80, Key: "478325eb",
		},
		"qbittorrent": {
			PeerID: [20]byte([]byte("-qB4520-RhrIZgXfJNOy")),
			Port:   44542, Event: EventStarted, Compact: true, NumWant: 200, Key: "D38068A0", NoPeerID: true,
		},
		"rtorrent": {
			PeerID: [20]byte([]byte("-lt0D80-\x1f\x8a\x22\xe3\xb4\xc5\xd6\xe7\xf8\x09\x1a\x2b")),
			Port:   23206, Event: EventStarted, Compact: true, NumWant: -1, Key: "69c3d22b",
		},
	}
	for name, q := range realAnnounces {
		t.Run(name, func(t *testing.T) {
			got, err := ParseAnnounce(q)
			if err != nil {
				t.Fatal(err)
			}
			w := want[name]
			w.InfoHash = ih(realInfohashes[name])
			if got != w {
				t.Fatalf("got  %+v\nwant %+v", got, w)
			}
			// The client-side encoder writes what the parser reads.
			again, err := ParseAnnounce(string(AppendAnnounceQuery(nil, &got)))
			if err != nil || again != got {
				t.Fatalf("round trip: %+v, %v", again, err)
			}
		})
	}
}

const (
	okHash = "info_hash=%C3%9EZ%0F%1B.%7DL%8Ao%3E-%1C%0B%9A%8F~m%5CK"
	okRest = "&peer_id=-TR3000-1w50ns7956m6&port=6881&uploaded=0&downloaded=0&left=10"
	okQ    = okHash + okRest
)

func TestParseAnnounceFields(t *testing.T) {
	for _, tc := range []struct {
		q     string
		check func(AnnounceRequest) bool
	}{
		{okQ, func(r AnnounceRequest) bool {
			return r.Event == EventNone && r.Compact && r.NumWant == -1 && r.Left == 10 && !r.IP.IsValid()
		}},
		// '+' is a literal plus, not a space.
		{"info_hash=++++++++++++++++++++" + okRest, func(r AnnounceRequest) bool { return r.InfoHash == [20]byte([]byte(strings.Repeat("+", 20))) }},
		{okQ + "&event=completed", func(r AnnounceRequest) bool { return r.Event == EventCompleted }},
		{okQ + "&event=stopped&numwant=0", func(r AnnounceRequest) bool { return r.Event == EventStopped && r.NumWant == 0 }},
		{okQ + "&event=paused", func(r AnnounceRequest) bool { return r.Event == EventPaused }},
		{okQ + "&event=empty", func(r AnnounceRequest) bool { return r.Event == EventNone }},
		{okQ + "&event=", func(r AnnounceRequest) bool { return r.Event == EventNone }},
		{okQ + "&compact=0&no_peer_id=1", func(r AnnounceRequest) bool { return r.PeerForm() == FormDictNoPeerID }},
		{okQ + "&compact=0", func(r AnnounceRequest) bool { return r.PeerForm() == FormDict }},
		{okQ + "&numwant=-1", func(r AnnounceRequest) bool { return r.NumWant == -1 }},
		{okQ + "&numwant=-7", func(r AnnounceRequest) bool { return r.NumWant == -1 }},
		{okQ + "&numwant=2147483647", func(r AnnounceRequest) bool { return r.NumWant == 1<<31-1 }},
		{okQ + "&ip=10.0.0.7", func(r AnnounceRequest) bool { return r.IP == netip.MustParseAddr("10.0.0.7") }},
		{okQ + "&ip=2001%3Adb8%3A%3A1", func(r AnnounceRequest) bool { return r.IP == netip.MustParseAddr("2001:db8::1") }},
		{okQ + "&ip=tracker.example.org", func(r AnnounceRequest) bool { return !r.IP.IsValid() }},
		{strings.Replace(okQ, "left=10", "left=9223372036854775807", 1), func(r AnnounceRequest) bool { return r.Left == 1<<63-1 }},
		{okQ + "&port2=1&ipv6=2001%3Adb8%3A%3A1&ipv4=1.2.3.4&trackerid=x&requirecrypto=1&cryptoport=1&corrupt=0&redundant=0&supportcrypto=1&ext=%ZZ", func(r AnnounceRequest) bool { return r.Port == 6881 }},
		{"&&" + okQ + "&", func(r AnnounceRequest) bool { return r.Port == 6881 }},
		{"info%5Fhash=%C3%9EZ%0F%1B.%7DL%8Ao%3E-%1C%0B%9A%8F~m%5CK" + okRest, func(r AnnounceRequest) bool { return r.InfoHash[0] == 0xc3 }},
	} {
		r, err := ParseAnnounce(tc.q)
		if err != nil {
			t.Errorf("%s: %v", tc.q, err)
			continue
		}
		if !tc.check(r) {
			t.Errorf("%s: wrong result %+v", tc.q, r)
		}
	}
}

func TestParseAnnounceErrors(t *testing.T) {
	for _, tc := range []struct{ q, reason string }{
		{"", "missing info_hash"},
		{okHash, "missing peer_id"},
		{okHash + "&peer_id=-TR3000-1w50ns7956m6", "missing port"},
		{okHash + "&peer_id=-TR3000-1w50ns7956m6&port=1", "missing uploaded"},
		{okHash + "&peer_id=-TR3000-1w50ns7956m6&port=1&uploaded=0", "missing downloaded"},
		{okHash + "&peer_id=-TR3000-1w50ns7956m6&port=1&uploaded=0&downloaded=0", "missing left"},
		{"info_hash=%C3%9EZ%0F%1B.%7DL%8Ao%3E-%1C%0B%9A%8F~m%5C" + okRest, "info_hash must be 20 bytes, got 19"},
		{"info_hash=" + strings.Repeat("a", 21) + okRest, "info_hash must be 20 bytes, got 21"},
		{"info_hash=" + okRest, "info_hash must be 20 bytes, got 0"},
		{"info_hash=%C3%9EZ%0F%1B.%7DL%8Ao%3E-%1C%0B%9A%8F~m%5CK%" + okRest, "malformed percent-escape in info_hash"},
		{"info_hash=%C3%9EZ%0F%1B.%7DL%8Ao%3E-%1C%0B%9A%8F~m%5C%4G" + okRest, "malformed percent-escape in info_hash"},
		{okHash + "&peer_id=short&port=6881&uploaded=0&downloaded=0&left=10", "peer_id must be 20 bytes, got 5"},
		{okQ + "&" + okHash, "info_hash given more than once"},
		{okQ + "&port=1", "port given more than once"},
		{strings.Replace(okQ, "port=6881", "port=65536", 1), `port must be at most 65535, got "65536"`},
		{strings.Replace(okQ, "port=6881", "port=", 1), "port is empty"},
		{strings.Replace(okQ, "port=6881", "port=-1", 1), `port must be a decimal number, got "-1"`},
		{strings.Replace(okQ, "port=6881", "port=0x10", 1), `port must be a decimal number, got "0x10"`},
		{strings.Replace(okQ, "left=10", "left=9223372036854775808", 1), `left out of range: "9223372036854775808"`},
		{strings.Replace(okQ, "left=10", "left=99999999999999999999", 1), `left out of range: "99999999999999999999"`},
		{strings.Replace(okQ, "uploaded=0", "uploaded=1.5", 1), `uploaded must be a decimal number, got "1.5"`},
		{okQ + "&event=start", `unknown event "start"`},
		{okQ + "&compact=yes", `compact must be 0 or 1, got "yes"`},
		{okQ + "&no_peer_id=2", `no_peer_id must be 0 or 1, got "2"`},
		{okQ + "&numwant=2147483648", `numwant must be at most 2147483647, got "2147483648"`},
		{okQ + "&numwant=lots", `numwant must be a decimal number, got "lots"`},
		{okQ + "&key=" + strings.Repeat("k", 65), "key must be at most 64 bytes, got 65"},
		{okQ + "&key=%zz", "malformed percent-escape in key"},
		{okQ + "&ip=%zz", "malformed percent-escape in ip"},
		{okQ + "&%zz=1", `malformed percent-escape in parameter name "%zz"`},
		{okQ + strings.Repeat("&x=1", MaxQueryParams), "more than 128 query parameters"},
		{okQ + "&pad=" + strings.Repeat("x", MaxQueryLen), "query of 8322 bytes exceeds 8192"},
	} {
		_, err := ParseAnnounce(tc.q)
		var we *Error
		if !errors.As(err, &we) || !errors.Is(err, ErrBadQuery) {
			t.Errorf("%.60s: error %v is not a query *Error", tc.q, err)
			continue
		}
		if err.Error() != tc.reason {
			t.Errorf("%.60s:\n got %q\nwant %q", tc.q, err.Error(), tc.reason)
		}
	}
}

func TestAppendAnnounceQuery(t *testing.T) {
	r := AnnounceRequest{
		InfoHash: ih("c39e5a0f1b2e7d4c8a6f3e2d1c0b9a8f7e6d5c4b"),
		PeerID:   [20]byte([]byte("-KT0001-+ /~abcdefgh")),
		Port:     6881, Uploaded: 1, Downloaded: 2, Left: 3, Event: EventStarted,
		Compact: true, NumWant: 50, Key: "k y", NoPeerID: true, IP: netip.MustParseAddr("::1"),
	}
	const golden = "info_hash=%C3%9EZ%0F%1B.%7DL%8Ao%3E-%1C%0B%9A%8F~m%5CK&peer_id=-KT0001-%2B%20%2F~abcdefgh" +
		"&port=6881&uploaded=1&downloaded=2&left=3&event=started&compact=1&numwant=50&key=k%20y&no_peer_id=1&ip=%3A%3A1"
	if got := string(AppendAnnounceQuery(nil, &r)); got != golden {
		t.Fatalf("got  %s\nwant %s", got, golden)
	}
	back, err := ParseAnnounce(golden)
	if err != nil || back != r {
		t.Fatalf("parse back: %+v %v", back, err)
	}
}

func TestAnnounceResponseGolden(t *testing.T) {
	r := AnnounceResponse{
		Interval: 120 * time.Second, MinInterval: 30 * time.Second, Complete: 2, Incomplete: 1,
		Peers: []Peer{
			{Addr: netip.MustParseAddrPort("10.0.0.1:6881"), ID: "-TR3000-1w50ns7956m6"},
			{Addr: netip.MustParseAddrPort("[2001:db8::1]:51413")},
			{Addr: netip.MustParseAddrPort("[::ffff:127.0.0.1]:256")},
			{}, // invalid: skipped
		},
		Warning: "w",
	}
	for _, tc := range []struct {
		form   PeerForm
		golden string
	}{
		{FormCompact, "d8:completei2e10:incompletei1e8:intervali120e12:min intervali30e" +
			"5:peers12:\x0a\x00\x00\x01\x1a\xe1\x7f\x00\x00\x01\x01\x00" +
			"6:peers618:\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\xc8\xd5" +
			"15:warning message1:we"},
		{FormDict, "d8:completei2e10:incompletei1e8:intervali120e12:min intervali30e5:peersl" +
			"d2:ip8:10.0.0.17:peer id20:-TR3000-1w50ns7956m64:porti6881ee" +
			"d2:ip11:2001:db8::14:porti51413ee" +
			"d2:ip16:::ffff:127.0.0.14:porti256ee" +
			"e15:warning message1:we"},
		{FormDictNoPeerID, "d8:completei2e10:incompletei1e8:intervali120e12:min intervali30e5:peersl" +
			"d2:ip8:10.0.0.14:porti6881ee" +
			"d2:ip11:2001:db8::14:porti51413ee" +
			"d2:ip16:::ffff:127.0.0.14:porti256ee" +
			"e15:warning message1:we"},
	} {
		got := string(AppendAnnounceResponse(nil, &r, tc.form))
		if got != tc.golden {
			t.Errorf("form %d:\n got %q\nwant %q", tc.form, got, tc.golden)
			continue
		}
		// Canonical bencode: the strict decoder takes it.
		back, err := ParseAnnounceResponse([]byte(got))
		if err != nil {
			t.Fatalf("form %d: %v", tc.form, err)
		}
		if back.Interval != r.Interval || back.MinInterval != r.MinInterval || back.Complete != 2 || back.Incomplete != 1 || len(back.Peers) != 3 || back.Warning != "w" {
			t.Errorf("form %d: parsed back %+v", tc.form, back)
		}
	}
	// No peers, no peers6 key, no min interval.
	empty := AnnounceResponse{Interval: 15 * time.Second}
	if got, want := string(AppendAnnounceResponse(nil, &empty, FormCompact)), "d8:completei0e10:incompletei0e8:intervali15e5:peers0:e"; got != want {
		t.Errorf("empty: got %q want %q", got, want)
	}
	if got, want := string(AppendFailure(nil, "info_hash must be 20 bytes, got 19")), "d14:failure reason34:info_hash must be 20 bytes, got 19e"; got != want {
		t.Errorf("failure: got %q want %q", got, want)
	}
}

func TestParseAnnounceResponse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want AnnounceResponse
		err  string
	}{
		{in: "d8:intervali1800e5:peers6:\x01\x02\x03\x04\x00\x50e", want: AnnounceResponse{Interval: 1800 * time.Second, Peers: []Peer{{Addr: netip.MustParseAddrPort("1.2.3.4:80")}}}},
		{in: "d8:intervali60ee", want: AnnounceResponse{Interval: time.Minute}},
		{in: "d8:intervali60e5:peerslee", want: AnnounceResponse{Interval: time.Minute}},
		// opentracker-style extra keys are ignored.
		{in: "d8:completei1e10:downloadedi5e10:incompletei0e8:intervali1800e12:min intervali900e5:peers0:6:peers60:e", want: AnnounceResponse{Interval: 1800 * time.Second, MinInterval: 900 * time.Second, Complete: 1}},
		{in: "d14:failure reason7:go awaye", err: "tracker failure: go away"},
		{in: "d14:failure reasoni1ee", err: "failure reason is not a string"},
		{in: "d5:peers0:e", err: "response without interval"},
		{in: "d8:intervali-1ee", err: "interval is not a number of seconds from 0 to 2147483647"},
		{in: "d8:interval1:xe", err: "interval is not a number of seconds from 0 to 2147483647"},
		{in: "d8:intervali1e5:peers5:12345e", err: "peers is 5 bytes, not a multiple of 6"},
		{in: "d8:intervali1e6:peers67:1234567e", err: "peers6 is 7 bytes, not a multiple of 18"},
		{in: "d8:intervali1e6:peers6i1ee", err: "peers6 is not a string"},
		{in: "d8:intervali1e5:peersi1ee", err: "peers is neither a string nor a list"},
		{in: "d8:intervali1e5:peersli1eee", err: "peer entry is not a dictionary"},
		{in: "d8:intervali1e5:peersld4:porti1eeee", err: "peer entry without ip string"},
		{in: "d8:intervali1e5:peersld2:ip7:a.b.c.d4:porti1eeee", err: `peer ip "a.b.c.d" is not an IP address`},
		{in: "d8:intervali1e5:peersld2:ip7:1.2.3.44:porti65536eeee", err: "peer entry without a port from 0 to 65535"},
		{in: "d8:intervali1e5:peersld2:ip7:1.2.3.47:peer id1:x4:porti1eeee", err: "peer id is not 20 bytes"},
		{in: "d8:completei-1e8:intervali1ee", err: "complete is not a count"},
		{in: "d8:intervali1e15:warning messagei1ee", err: "warning message is not a string"},
		{in: "li1ee", err: "response is not a dictionary"},
		{in: "d8:intervali1e8:completei1ee", err: `bad bencode at offset 14: dictionary key "complete" out of order`},
	} {
		got, err := ParseAnnounceResponse([]byte(tc.in))
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("%q: error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q: got %+v, %v", tc.in, got, err)
		}
	}
}

func TestScrape(t *testing.T) {
	a, b := ih("c39e5a0f1b2e7d4c8a6f3e2d1c0b9a8f7e6d5c4b"), ih("024bda1c55e3a86f4d2b91c07e5f3a6b8c9d0e1f")
	q := AppendScrapeQuery(nil, [][20]byte{a, b})
	if want := "info_hash=%C3%9EZ%0F%1B.%7DL%8Ao%3E-%1C%0B%9A%8F~m%5CK&info_hash=%02K%DA%1CU%E3%A8oM%2B%91%C0~_%3Ak%8C%9D%0E%1F"; string(q) != want {
		t.Fatalf("query %s", q)
	}
	got, err := ParseScrape(string(q) + "&peer_id=x&info_hash")
	if err == nil || err.Error() != "info_hash must be 20 bytes, got 0" {
		t.Fatalf("empty info_hash: %v", err)
	}
	got, err = ParseScrape(string(q) + "&peer_id=x")
	if err != nil || !reflect.DeepEqual(got, [][20]byte{a, b}) {
		t.Fatalf("parse: %x %v", got, err)
	}
	for _, tc := range []struct{ q, err string }{
		{"", "scrape needs at least one info_hash (full scrape is not supported)"},
		{"peer_id=x", "scrape needs at least one info_hash (full scrape is not supported)"},
		{"info_hash=%zz", "malformed percent-escape in info_hash"},
		{strings.Repeat("info_hash=aaaaaaaaaaaaaaaaaaaa&", MaxScrapeHashes+1), "scrape of more than 74 info_hash"},
	} {
		if _, err := ParseScrape(tc.q); err == nil || err.Error() != tc.err || !errors.Is(err, ErrBadQuery) {
			t.Errorf("%.40q: %v, want %q", tc.q, err, tc.err)
		}
	}
	if _, err := ParseScrape(strings.Repeat("info_hash=aaaaaaaaaaaaaaaaaaaa&", MaxScrapeHashes)); err != nil {
		t.Errorf("74 hashes: %v", err)
	}

	// Response: sorted, deduplicated.
	files := []ScrapeFile{{InfoHash: a, Complete: 1, Downloaded: 2, Incomplete: 3}, {InfoHash: b, Complete: 4}, {InfoHash: a, Complete: 9}}
	resp := AppendScrapeResponse(nil, files)
	golden := "d5:filesd20:" + string(b[:]) + "d8:completei4e10:downloadedi0e10:incompletei0ee20:" + string(a[:]) + "d8:completei1e10:downloadedi2e10:incompletei3eeee"
	if string(resp) != golden {
		t.Fatalf("scrape response\n got %q\nwant %q", resp, golden)
	}
	back, err := ParseScrapeResponse(resp)
	if err != nil || !reflect.DeepEqual(back, []ScrapeFile{files[1], files[0]}) {
		t.Fatalf("parse back %+v %v", back, err)
	}
	for _, tc := range []struct{ in, err string }{
		{"d14:failure reason4:nopee", "tracker failure: nope"},
		{"de", "scrape response without a files dictionary"},
		{"d5:filesd1:xdeee", "scrape entry key of 1 bytes, want 20"},
		{"d5:filesd20:aaaaaaaaaaaaaaaaaaaai1eee", "scrape entry is not a dictionary"},
		{"d5:filesd20:aaaaaaaaaaaaaaaaaaaad8:complete1:xeee", "complete is not a count"},
	} {
		if _, err := ParseScrapeResponse([]byte(tc.in)); err == nil || err.Error() != tc.err {
			t.Errorf("%q: %v, want %q", tc.in, err, tc.err)
		}
	}
}
