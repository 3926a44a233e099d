package wire

import (
	"encoding/hex"
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var (
	ihA = Infohash(unhexMust(strings.Repeat("aa", 20)))
	ihB = Infohash(unhexMust(strings.Repeat("bb", 20)))
	hdr = Header{ConnID: 0x0102030405060708, TxID: 0x0a0b0c0d, Port: 6789}
)

func unhexMust(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

const (
	aa = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	bb = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	// h prefixes: connection_id, action, transaction_id, port.
	hSyn   = "0102030405060708 00000080 0a0b0c0d 1a85"
	hHello = "0102030405060708 00000081 0a0b0c0d 1a85"
	hSum   = "0102030405060708 00000082 0a0b0c0d 1a85"
	hUpd   = "0102030405060708 00000083 0a0b0c0d 1a85"
	hCand  = "0102030405060708 00000084 0a0b0c0d 1a85"
	hLead  = "0102030405060708 00000085 0a0b0c0d 1a85"
)

var golden = []struct {
	name string
	hex  string
	mode Mode
	msg  Message
}{
	{"first SYN", "ffffffffffffffff 00000080 11223344 1a85 00", Plain,
		Syn{Header: Header{ConnID: NoConnID, TxID: 0x11223344, Port: 6789}}},
	{"SYN+ACK ext", hSyn + "81", Plain, Syn{Header: hdr, Flags: SynAck | SynExt}},
	{"HELLO", "0102030405060708 00000081 00000000 1a85", Plain,
		Hello{Header{ConnID: hdr.ConnID, Port: 6789}}},
	{"SUMMARY two", hSum + "00" + aa + "01" + bb, Plain,
		Summary{Header: hdr, Entries: []SummaryEntry{{Infohash: ihA}, {Infohash: ihB, Removed: true}}}},
	{"SUMMARY empty", hSum, Plain, Summary{Header: hdr}},
	{"SUMMARY border", hSum + "04", Plain, Summary{Header: hdr, Border: true}},
	{"UPDATE data", hUpd + "00" + aa + "02" + "00 c0a80001 1ae1" + "01 0a000002 c8d5" + bb + "00", Plain,
		Update{Header: hdr, Blocks: []Block{
			{Infohash: ihA, Peers: []Peer{
				{Addr: netip.MustParseAddrPort("192.168.0.1:6881")},
				{Addr: netip.MustParseAddrPort("10.0.0.2:51413"), Dead: true},
			}},
			{Infohash: ihB},
		}}},
	{"UPDATE ACK", hUpd + "01", Plain, Update{Header: hdr, Flags: UpdateAck}},
	{"UPDATE+S+BOR", hUpd + "06" + aa + "00", Plain,
		Update{Header: hdr, Flags: UpdateSummary | UpdateBorder, Blocks: []Block{{Infohash: ihA}}}},
	{"UPDATE+S+A empty", hUpd + "03", Plain, Update{Header: hdr, Flags: UpdateSummary | UpdateAck}},
	{"UPDATE extended", hUpd + "00" + aa + "02" + "06 20010db8000000000000000000000001 1ae1" + "04 7f000001 1ae2", Extended,
		Update{Header: hdr, Blocks: []Block{{Infohash: ihA, Peers: []Peer{
			{Addr: netip.MustParseAddrPort("[2001:db8::1]:6881"), Seed: true},
			{Addr: netip.MustParseAddrPort("127.0.0.1:6882"), Seed: true},
		}}}}},
	{"CANDIDATURE", hCand + "00 00000003", Plain, Candidature{Header: hdr, Mandates: 3}},
	{"CANDIDATURE rank", hCand + "00 00000000 0123456789abcdef 00000007", Plain,
		Candidature{Header: hdr, HasRank: true, Rank: 0x0123456789abcdef, Epoch: 7}},
	{"CANDIDATURE ACK", hCand + "01", Plain, Candidature{Header: hdr, Ack: true}},
	{"LEADER", hLead + "00" + aa + bb, Plain, Leader{Header: hdr, Infohashes: []Infohash{ihA, ihB}}},
	{"LEADER ACK", hLead + "01", Plain, Leader{Header: hdr, Ack: true}},
	{"LEADER extended", hLead + "00 0123456789abcdef" + aa, Extended,
		Leader{Header: hdr, HasRank: true, Rank: 0x0123456789abcdef, Infohashes: []Infohash{ihA}}},
	{"LEADER ACK extended", hLead + "01", Extended, Leader{Header: hdr, Ack: true}},
}

func TestGolden(t *testing.T) {
	for _, tc := range golden {
		t.Run(tc.name, func(t *testing.T) {
			b := unhex(t, tc.hex)
			got, err := Parse(b, tc.mode)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !reflect.DeepEqual(got, tc.msg) {
				t.Fatalf("Parse:\n got %#v\nwant %#v", got, tc.msg)
			}
			if enc := tc.msg.AppendTo(nil, tc.mode); string(enc) != string(b) {
				t.Fatalf("Append:\n got %x\nwant %x", enc, b)
			}
			if !IsPacket(b) {
				t.Fatal("IsPacket false")
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		hex  string
		mode Mode
		want error
	}{
		{"empty", "", Plain, ErrShort},
		{"short", "0102030405060708 00000080 0a0b", Plain, ErrShort},
		{"BEP 15 announce", "0102030405060708 00000001 0a0b0c0d 1a85", Plain, ErrAction},
		{"action 134", "0102030405060708 00000086 0a0b0c0d 1a85", Plain, ErrAction},
		{"port 0", "0102030405060708 00000081 0a0b0c0d 0000", Plain, ErrPort},
		{"SYN without flags", hSyn, Plain, ErrShort},
		{"SYN trailing", hSyn + "0000", Plain, ErrLength},
		{"SYN flag 2", hSyn + "02", Plain, ErrFlags},
		{"HELLO trailing", hHello + "00", Plain, ErrLength},
		{"SUMMARY 2 bytes", hSum + "0000", Plain, ErrLength},
		{"SUMMARY 22 bytes", hSum + "00" + aa + "00", Plain, ErrLength},
		{"SUMMARY 1 byte not border", hSum + "01", Plain, ErrPayload},
		{"SUMMARY entry flag 4", hSum + "04" + aa, Plain, ErrFlags},
		{"UPDATE flag 8", hUpd + "08", Plain, ErrFlags},
		{"UPDATE ACK with payload", hUpd + "01" + aa + "00", Plain, ErrLength},
		{"UPDATE block cut", hUpd + "00" + aa, Plain, ErrShort},
		{"UPDATE 64 peers", hUpd + "00" + aa + "40", Plain, ErrPayload},
		{"UPDATE peer cut", hUpd + "00" + aa + "01" + "00 c0a80001 1a", Plain, ErrShort},
		{"UPDATE missing peer", hUpd + "00" + aa + "02" + "00 c0a80001 1ae1", Plain, ErrShort},
		{"UPDATE plain IPv6", hUpd + "00" + aa + "01" + "02 20010db8000000000000000000000001 1ae1", Plain, ErrFlags},
		{"UPDATE plain seed", hUpd + "00" + aa + "01" + "04 c0a80001 1ae1", Plain, ErrFlags},
		{"UPDATE mapped IPv6", hUpd + "00" + aa + "01" + "02 00000000000000000000ffffc0a80001 1ae1", Extended, ErrPayload},
		{"UPDATE peer flag 8", hUpd + "00" + aa + "01" + "08 c0a80001 1ae1", Extended, ErrFlags},
		{"CANDIDATURE short", hCand + "00 0000", Plain, ErrLength},
		{"CANDIDATURE 27", hCand + "00 00000000 00000000", Plain, ErrLength},
		{"CANDIDATURE 31", hCand + "00 00000000 0123456789abcdef", Plain, ErrLength},
		{"CANDIDATURE ACK with body", hCand + "01 00000003", Plain, ErrLength},
		{"CANDIDATURE flag 2", hCand + "02", Plain, ErrFlags},
		{"LEADER empty", hLead + "00", Plain, ErrLength},
		{"LEADER 30 bytes", hLead + "00" + aa + "0000000000000000000000", Plain, ErrLength},
		{"LEADER ACK with hash", hLead + "01" + aa, Plain, ErrLength},
		{"LEADER extended no rank", hLead + "00 0123", Extended, ErrShort},
		{"LEADER extended rank only", hLead + "00 0123456789abcdef", Extended, ErrLength},
		{"LEADER extended 28", hLead + "00 0123456789abcdef" + "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" + "00", Extended, ErrLength},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Parse(unhex(t, tc.hex), tc.mode)
			if err == nil {
				t.Fatalf("parsed %#v", m)
			}
			if !errors.Is(err, tc.want) || !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
		})
	}
}

func TestIsPacket(t *testing.T) {
	for _, tc := range []struct {
		hex  string
		want bool
	}{
		{"0000041727101980 00000000 0a0b0c0d", false}, // BEP 15 connect
		{"0102030405060708 00000001 0a0b0c0d", false}, // announce
		{"0102030405060708 00000003", false},
		{"0102030405060708 00000083", true},
		{"0102030405060708 000000", false},
	} {
		if got := IsPacket(unhex(t, tc.hex)); got != tc.want {
			t.Errorf("IsPacket(%s) = %v", tc.hex, got)
		}
	}
}

func TestMAC(t *testing.T) {
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(i)
	}
	m := NewMAC(key)
	pkt := AppendHello(nil, Hello{Header{ConnID: hdr.ConnID, Port: 6789}})
	sealed := m.Seal(append([]byte(nil), pkt...), 0x1122334455667788, 1700000000123456789)
	// Cross-checked with Python's hmac module.
	want := unhex(t, "010203040506070800000081000000001a85 1122334455667788 17979cfe3d85cd15 ed02db8feb2beb6f07b5373a67422a84")
	if string(sealed) != string(want) {
		t.Fatalf("Seal:\n got %x\nwant %x", sealed, want)
	}
	body, nonce, ts, err := NewMAC(key).Open(sealed)
	if err != nil || string(body) != string(pkt) || nonce != 0x1122334455667788 || ts != 1700000000123456789 {
		t.Fatalf("Open: %x %x %d %v", body, nonce, ts, err)
	}
	for i := range sealed {
		bad := append([]byte(nil), sealed...)
		bad[i] ^= 1
		if _, _, _, err := m.Open(bad); !errors.Is(err, ErrMAC) {
			t.Fatalf("flipped byte %d: %v", i, err)
		}
	}
	if _, _, _, err := NewMAC([]byte("other key")).Open(sealed); !errors.Is(err, ErrMAC) {
		t.Fatalf("wrong key: %v", err)
	}
	if _, _, _, err := m.Open(sealed[:10]); !errors.Is(err, ErrMAC) {
		t.Fatalf("short: %v", err)
	}
}

func BenchmarkParseUpdate(b *testing.B) {
	u := Update{Header: hdr}
	for i := range 5 {
		blk := Block{Infohash: Infohash{byte(i)}}
		for j := range SendBlockPeers {
			blk.Peers = append(blk.Peers, Peer{Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte(i), byte(j)}), 6881)})
		}
		u.Blocks = append(u.Blocks, blk)
	}
	pkt := AppendUpdate(nil, u, Plain)
	b.SetBytes(int64(len(pkt)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseUpdate(pkt, Plain); err != nil {
			b.Fatal(err)
		}
	}
}
