package tsup

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kadtracker/kadtracker/node/tsup/wire"
)

// connectedPair returns two trackers sharing testIH, unified and with a
// leader, deterministically.
func connectedPair(tb testing.TB) (*simNet, *simNode, *simNode) {
	net := newSimNet(tb, 42, 0)
	nodes := mesh(net, 2, DefaultConfig(), nil)
	for i, nd := range nodes {
		nd.core.SetOwn(net.now, testIH, clientPeers(i, 2))
		net.collect(nd)
	}
	net.runFor(time.Minute)
	return net, nodes[0], nodes[1]
}

// FuzzStep feeds an established Core arbitrary packets from its neighbour
// (with the right connection id when fixCID is set, so they get past the
// first check): nothing panics, and everything it sends in return parses.
func FuzzStep(f *testing.F) {
	f.Fuzz(func(t *testing.T, pkt []byte, fixCID bool) {
		net, a, b := connectedPair(t)
		if fixCID && len(pkt) >= 8 {
			binary.BigEndian.PutUint64(pkt, a.core.links[0].cid)
		}
		a.core.Step(net.now, b.addr, pkt)
		a.core.Step(net.now, netip.MustParseAddrPort("192.0.2.1:6969"), pkt)
		a.core.Tick(net.now.Add(time.Hour))
		for _, d := range a.core.Ready() {
			if _, err := wire.Parse(d.Data, a.core.links[0].mode()); err != nil {
				t.Fatalf("sent an unparsable packet: %v", err)
			}
		}
		a.core.Peers(testIH)
		a.core.Swarms()
		a.core.Links()
	})
}

func TestWriteStepSeeds(t *testing.T) {
	if os.Getenv("TSUP_WRITE_SEEDS") == "" {
		t.Skip("set TSUP_WRITE_SEEDS=1 to rewrite testdata/fuzz")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzStep")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	h := wire.Header{ConnID: 1, TxID: 7, Port: 6969}
	peers := []wire.Peer{{Addr: netip.MustParseAddrPort("192.0.2.7:6881")}, {Addr: netip.MustParseAddrPort("[2001:db8::9]:6881"), Seed: true}, {Addr: netip.MustParseAddrPort("192.0.2.8:6881"), Dead: true}}
	seeds := [][]byte{
		wire.AppendSyn(nil, wire.Syn{Header: wire.Header{ConnID: wire.NoConnID, TxID: 7, Port: 6969}, Flags: wire.SynExt}),
		wire.AppendSyn(nil, wire.Syn{Header: h, Flags: wire.SynAck | wire.SynExt}),
		wire.AppendHello(nil, wire.Hello{Header: h}),
		wire.AppendSummary(nil, wire.Summary{Header: h, Entries: []wire.SummaryEntry{{Infohash: testIH}, {Infohash: Infohash{9}, Removed: true}}}),
		wire.AppendSummary(nil, wire.Summary{Header: h, Border: true}),
		wire.AppendUpdate(nil, wire.Update{Header: h, Blocks: []wire.Block{{Infohash: testIH, Peers: peers}}}, wire.Extended),
		wire.AppendUpdate(nil, wire.Update{Header: h, Flags: wire.UpdateSummary | wire.UpdateBorder, Blocks: []wire.Block{{Infohash: Infohash{3}, Peers: peers[:1]}}}, wire.Extended),
		wire.AppendUpdate(nil, wire.Update{Header: h, Flags: wire.UpdateAck}, wire.Extended),
		wire.AppendCandidature(nil, wire.Candidature{Header: h, Mandates: 3, HasRank: true, Rank: 1, Epoch: 9}),
		wire.AppendCandidature(nil, wire.Candidature{Header: h, Mandates: -1}),
		wire.AppendLeader(nil, wire.Leader{Header: h, Rank: 0, Infohashes: []Infohash{testIH}}, wire.Extended),
		wire.AppendLeader(nil, wire.Leader{Header: h, Ack: true}, wire.Extended),
	}
	for i, s := range seeds {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\nbool(%v)\n", s, i != 0)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%02d", i)), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
