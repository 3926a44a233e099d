package wire

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// Every parser has a fuzzer: it must never panic, every error must be an
// *Error of the parser's kind (a FailureError for a tracker's failure), and
// whatever parses must survive a round trip through the matching encoder.
// Seeds live in testdata/fuzz/<FuzzName>/ and are written by
// TestWriteFuzzSeeds from fuzzSeeds below (WIRE_WRITE_SEEDS=1).

func checkErr(t *testing.T, err error, kind error) {
	t.Helper()
	var we *Error
	var fe *FailureError
	switch {
	case errors.As(err, &fe):
	case !errors.As(err, &we) || !errors.Is(err, kind):
		t.Fatalf("error %v (%T) is not an *Error of kind %v", err, err, kind)
	case we.Error() == "":
		t.Fatal("empty error text")
	}
}

func FuzzParseAnnounce(f *testing.F) {
	f.Fuzz(func(t *testing.T, q string) {
		r, err := ParseAnnounce(q)
		if err != nil {
			checkErr(t, err, ErrBadQuery)
			return
		}
		enc := AppendAnnounceQuery(nil, &r)
		r2, err := ParseAnnounce(string(enc))
		if err != nil || r2 != r {
			t.Fatalf("round trip of %q: %+v %v", enc, r2, err)
		}
	})
}

func FuzzParseScrape(f *testing.F) {
	f.Fuzz(func(t *testing.T, q string) {
		hs, err := ParseScrape(q)
		if err != nil {
			checkErr(t, err, ErrBadQuery)
			return
		}
		if len(hs) == 0 || len(hs) > MaxScrapeHashes {
			t.Fatalf("%d hashes", len(hs))
		}
		hs2, err := ParseScrape(string(AppendScrapeQuery(nil, hs)))
		if err != nil || !reflect.DeepEqual(hs, hs2) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

func FuzzDecodeBencode(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := DecodeBencode(b)
		if err != nil {
			checkErr(t, err, ErrBadBencode)
			return
		}
		enc, err := AppendBencode(nil, v)
		if err != nil || !bytes.Equal(enc, b) {
			t.Fatalf("canonical input %q re-encoded as %q (%v)", b, enc, err)
		}
	})
}

func FuzzParseAnnounceResponse(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseAnnounceResponse(b)
		if err != nil {
			if !errors.Is(err, ErrBadBencode) {
				checkErr(t, err, ErrBadResponse)
			}
			return
		}
		// The dictionary form carries everything the decoder returns.
		enc := AppendAnnounceResponse(nil, &r, FormDict)
		r2, err := ParseAnnounceResponse(enc)
		if err != nil || !reflect.DeepEqual(r, r2) {
			t.Fatalf("dict round trip of %q:\n%+v\n%+v %v", enc, r, r2, err)
		}
		// The compact form keeps every peer (IDs aside).
		r3, err := ParseAnnounceResponse(AppendAnnounceResponse(nil, &r, FormCompact))
		if err != nil || len(r3.Peers) != len(r.Peers) {
			t.Fatalf("compact round trip: %d peers of %d, %v", len(r3.Peers), len(r.Peers), err)
		}
	})
}

func FuzzParseScrapeResponse(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		files, err := ParseScrapeResponse(b)
		if err != nil {
			if !errors.Is(err, ErrBadBencode) {
				checkErr(t, err, ErrBadResponse)
			}
			return
		}
		enc := AppendScrapeResponse(nil, files)
		if !bytes.Equal(enc, b) {
			// Only unknown keys may differ: parse again and compare.
			files2, err := ParseScrapeResponse(enc)
			if err != nil || !reflect.DeepEqual(files, files2) {
				t.Fatalf("round trip: %v", err)
			}
		}
	})
}

func FuzzParseConnectRequest(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseConnectRequest(b)
		if err != nil {
			checkErr(t, err, ErrBadPacket)
			return
		}
		if enc := AppendConnectRequest(nil, r); !bytes.Equal(enc, b[:UDPConnectLen]) {
			t.Fatalf("%x re-encoded as %x", b, enc)
		}
	})
}

func FuzzParseConnectResponse(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseConnectResponse(b)
		if err != nil {
			checkErr(t, err, ErrBadPacket)
			return
		}
		if enc := AppendConnectResponse(nil, r); !bytes.Equal(enc, b) {
			t.Fatalf("%x re-encoded as %x", b, enc)
		}
	})
}

func FuzzParseUDPAnnounceRequest(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseUDPAnnounceRequest(b)
		if err != nil {
			checkErr(t, err, ErrBadPacket)
			return
		}
		enc := AppendUDPAnnounceRequest(nil, &r)
		if !bytes.Equal(enc[:UDPAnnounceLen], b[:UDPAnnounceLen]) {
			t.Fatalf("fixed part %x re-encoded as %x", b[:UDPAnnounceLen], enc[:UDPAnnounceLen])
		}
		r2, err := ParseUDPAnnounceRequest(enc)
		if err != nil || r2 != r {
			t.Fatalf("round trip: %+v %v", r2, err)
		}
	})
}

func FuzzParseUDPAnnounceResponse(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte, ipv6 bool) {
		r, err := ParseUDPAnnounceResponse(b, ipv6)
		if err != nil {
			checkErr(t, err, ErrBadPacket)
			return
		}
		if enc := AppendUDPAnnounceResponse(nil, &r, ipv6); !bytes.Equal(enc, b) {
			t.Fatalf("%x re-encoded as %x", b, enc)
		}
	})
}

func FuzzParseUDPScrapeRequest(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseUDPScrapeRequest(b)
		if err != nil {
			checkErr(t, err, ErrBadPacket)
			return
		}
		if enc := AppendUDPScrapeRequest(nil, &r); !bytes.Equal(enc, b) {
			t.Fatalf("%x re-encoded as %x", b, enc)
		}
	})
}

func FuzzParseUDPScrapeResponse(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseUDPScrapeResponse(b)
		if err != nil {
			checkErr(t, err, ErrBadPacket)
			return
		}
		if enc := AppendUDPScrapeResponse(nil, &r); !bytes.Equal(enc, b) {
			t.Fatalf("%x re-encoded as %x", b, enc)
		}
	})
}

func FuzzParseUDPError(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseUDPError(b)
		if err != nil {
			checkErr(t, err, ErrBadPacket)
			return
		}
		if enc := AppendUDPError(nil, r); !bytes.Equal(enc, b) {
			t.Fatalf("%x re-encoded as %x", b, enc)
		}
	})
}

// fuzzSeeds are the seed corpora, one list of argument tuples per fuzzer.
func fuzzSeeds() map[string][][]any {
	s := map[string][][]any{}
	one := func(name string, args ...any) { s[name] = append(s[name], args) }
	for _, c := range []string{"aria2", "transmission", "qbittorrent", "rtorrent"} {
		one("FuzzParseAnnounce", realAnnounces[c])
	}
	one("FuzzParseAnnounce", okQ+"&event=stopped&numwant=0&compact=0&no_peer_id=1&ip=2001%3Adb8%3A%3A1")
	one("FuzzParseAnnounce", "info_hash=++++++++++++++++++++"+okRest+"&numwant=-1")
	one("FuzzParseAnnounce", okQ+"&info_hash=x")
	one("FuzzParseAnnounce", "info_hash=%zz")

	a, b := ih(realInfohashes["aria2"]), ih(realInfohashes["transmission"])
	one("FuzzParseScrape", string(AppendScrapeQuery(nil, [][20]byte{a, b})))
	one("FuzzParseScrape", "info_hash=%02K%da%1cU%e3%a8oM%2b%91%c0~_%3ak%8c%9d%0e%1f&peer_id=-TR3000-1w50ns7956m6")
	one("FuzzParseScrape", "")

	resp := AnnounceResponse{
		Interval: 120 * time.Second, MinInterval: 30 * time.Second, Complete: 1, Incomplete: 2, Warning: "w",
		Peers: []Peer{{Addr: netip.MustParseAddrPort("127.0.0.1:6881"), ID: "-TR3000-1w50ns7956m6"}, {Addr: netip.MustParseAddrPort("[::1]:6882")}},
	}
	for _, form := range []PeerForm{FormCompact, FormDict, FormDictNoPeerID} {
		enc := AppendAnnounceResponse(nil, &resp, form)
		one("FuzzParseAnnounceResponse", enc)
		one("FuzzDecodeBencode", enc)
	}
	one("FuzzParseAnnounceResponse", AppendFailure(nil, "info_hash must be 20 bytes, got 19"))
	one("FuzzParseAnnounceResponse", []byte("d8:completei1e10:downloadedi5e10:incompletei0e8:intervali1800e12:min intervali900e5:peers0:6:peers60:e"))
	one("FuzzDecodeBencode", []byte("d4:spaml1:a1:bei-3ee"))
	one("FuzzDecodeBencode", []byte("i-0e"))

	scr := AppendScrapeResponse(nil, []ScrapeFile{{InfoHash: a, Complete: 1, Downloaded: 2, Incomplete: 3}, {InfoHash: b}})
	one("FuzzParseScrapeResponse", scr)
	one("FuzzDecodeBencode", scr)
	one("FuzzParseScrapeResponse", AppendFailure(nil, "no"))

	one("FuzzParseConnectRequest", AppendConnectRequest(nil, ConnectRequest{TransactionID: 0xcafebabe}))
	one("FuzzParseConnectRequest", append(AppendConnectRequest(nil, ConnectRequest{TransactionID: 1}), 0, 0))
	one("FuzzParseConnectResponse", AppendConnectResponse(nil, ConnectResponse{TransactionID: 1, ConnectionID: 0x0102030405060708}))
	one("FuzzParseUDPAnnounceRequest", udpAnnounce98)
	one("FuzzParseUDPAnnounceRequest", udpAnnounce100)
	one("FuzzParseUDPAnnounceRequest", udpAnnounce109)
	one("FuzzParseUDPAnnounceRequest", append(bytes.Clone(udpAnnounce98), mustHex("01 0203 2f6131 0202 3f62 7702 ffff 00 ffff")...))
	ar := UDPAnnounceResponse{TransactionID: 7, Interval: 120 * time.Second, Leechers: 1, Seeders: 2,
		Peers: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:6881"), netip.MustParseAddrPort("[::1]:6882")}}
	one("FuzzParseUDPAnnounceResponse", AppendUDPAnnounceResponse(nil, &ar, false), false)
	one("FuzzParseUDPAnnounceResponse", AppendUDPAnnounceResponse(nil, &ar, true), true)
	one("FuzzParseUDPScrapeRequest", AppendUDPScrapeRequest(nil, &UDPScrapeRequest{ConnectionID: 1, TransactionID: 2, InfoHashes: [][20]byte{a, b}}))
	one("FuzzParseUDPScrapeResponse", AppendUDPScrapeResponse(nil, &UDPScrapeResponse{TransactionID: 2, Stats: []UDPScrapeStats{{1, 2, 3}}}))
	one("FuzzParseUDPError", AppendUDPError(nil, UDPError{TransactionID: 9, Message: "connection ID expired"}))
	return s
}

// TestWriteFuzzSeeds regenerates testdata/fuzz from fuzzSeeds when
// WIRE_WRITE_SEEDS=1, and otherwise checks that every fuzzer has seeds.
func TestWriteFuzzSeeds(t *testing.T) {
	seeds := fuzzSeeds()
	write := os.Getenv("WIRE_WRITE_SEEDS") == "1"
	for name, tuples := range seeds {
		dir := filepath.Join("testdata", "fuzz", name)
		if !write {
			ents, err := os.ReadDir(dir)
			if err != nil || len(ents) < len(tuples) {
				t.Errorf("%s: %d seed files for %d seeds (%v); run with WIRE_WRITE_SEEDS=1", dir, len(ents), len(tuples), err)
			}
			continue
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for i, args := range tuples {
			var sb strings.Builder
			sb.WriteString("go test fuzz v1\n")
			for _, a := range args {
				switch a := a.(type) {
				case string:
					fmt.Fprintf(&sb, "string(%q)\n", a)
				case []byte:
					fmt.Fprintf(&sb, "[]byte(%q)\n", a)
				case bool:
					fmt.Fprintf(&sb, "bool(%v)\n", a)
				default:
					t.Fatalf("seed type %T", a)
				}
			}
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%02d", i)), []byte(sb.String()), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, name := range []string{"FuzzParseAnnounce", "FuzzParseScrape", "FuzzDecodeBencode", "FuzzParseAnnounceResponse",
		"FuzzParseScrapeResponse", "FuzzParseConnectRequest", "FuzzParseConnectResponse", "FuzzParseUDPAnnounceRequest",
		"FuzzParseUDPAnnounceResponse", "FuzzParseUDPScrapeRequest", "FuzzParseUDPScrapeResponse", "FuzzParseUDPError"} {
		if len(seeds[name]) == 0 {
			t.Errorf("no seeds for %s", name)
		}
	}
}
