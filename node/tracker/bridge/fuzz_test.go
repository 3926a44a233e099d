package bridge

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/kadtracker/kadtracker/node/tracker/wire"
)

// The client-side decoders on top of package wire's (which has its own fuzz
// targets): tracker URLs and their scrape form, the sorting of UDP replies,
// and the reading of an HTTP answer with its status. None may panic.

func FuzzParseURL(f *testing.F) {
	for _, s := range []string{
		"http://t.example:6969/announce", "https://t/x/announce.php?k=v", "udp://t:80/announce",
		"udp://t", "http:///announce", "http://[::1]:1/announce", "http://t/announce%2F", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseURL(s)
		if err != nil {
			if !errors.Is(err, ErrBadURL) {
				t.Fatalf("error %v is not ErrBadURL", err)
			}
			return
		}
		su, err := ScrapeURL(u)
		if err != nil {
			if !errors.Is(err, ErrNoScrape) {
				t.Fatalf("ScrapeURL: %v", err)
			}
			return
		}
		last := su.Path[strings.LastIndexByte(su.Path, '/')+1:]
		if !strings.HasPrefix(last, "scrape") || su.Host != u.Host || su.RawQuery != u.RawQuery {
			t.Fatalf("ScrapeURL(%s) = %s", u, su)
		}
		if _, err := url.Parse(su.String()); err != nil {
			t.Fatalf("scrape URL %q does not parse: %v", su, err)
		}
	})
}

func FuzzUDPReply(f *testing.F) {
	f.Add(wire.AppendConnectResponse(nil, wire.ConnectResponse{TransactionID: 7, ConnectionID: 9}), uint32(7), uint8(0), false)
	f.Add(wire.AppendUDPError(nil, wire.UDPError{TransactionID: 7, Message: "no"}), uint32(7), uint8(1), false)
	f.Add(wire.AppendUDPAnnounceResponse(nil, &wire.UDPAnnounceResponse{TransactionID: 7, Interval: time.Minute}, true), uint32(7), uint8(1), true)
	f.Add([]byte{0, 0, 0, 1, 0, 0, 0, 7, 1}, uint32(7), uint8(1), false)
	f.Fuzz(func(t *testing.T, b []byte, tx uint32, action uint8, ipv6 bool) {
		want := wire.Action(action % 4)
		got, err := udpReply(b, tx, want)
		var fe *wire.FailureError
		switch {
		case err == nil:
			if a, id, ok := wire.PeekUDPResponse(got); !ok || a != want || id != tx {
				t.Fatalf("accepted %x as an answer of %s to %d", b, want, tx)
			}
			if want == wire.ActionAnnounce {
				parseUDPAnnounce(got, ipv6)
			}
		case errors.As(err, &fe), errors.Is(err, errOtherTx), errors.Is(err, ErrBadResponse):
		default:
			t.Fatalf("unexpected error %v", err)
		}
	})
}

func FuzzParseHTTPAnnounce(f *testing.F) {
	f.Add(200, []byte("d8:intervali60e5:peers6:\x01\x02\x03\x04\x00\x01e"))
	f.Add(403, wire.AppendFailure(nil, "not whitelisted"))
	f.Add(200, []byte("d11:external ip4:abcd8:intervali60e5:peersle6:peers618:0123456789abcdef\x00\x01e"))
	f.Add(500, []byte("oops"))
	f.Fuzz(func(t *testing.T, status int, b []byte) {
		r, err := parseHTTPAnnounce(status, b)
		var fe *wire.FailureError
		switch {
		case err == nil:
			if status != http.StatusOK || r.Interval < 0 {
				t.Fatalf("accepted status %d, interval %v", status, r.Interval)
			}
		case errors.As(err, &fe), errors.Is(err, ErrHTTPStatus), errors.Is(err, ErrBadResponse):
		default:
			t.Fatalf("unexpected error %v", err)
		}
	})
}
