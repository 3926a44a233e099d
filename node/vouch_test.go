package node

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kadtracker/kadtracker/node/internal/pb"
	"github.com/kadtracker/kadtracker/records"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-msgio/pbio"
)

// Addresses the attacker points clients at: a third party.
var (
	forgedAddr   = netip.MustParseAddr("192.0.2.66")
	forgedV1Addr = netip.MustParseAddr("192.0.2.67")
)

// identity is a Sybil's key and ID.
type identity struct {
	priv crypto.PrivKey
	id   peer.ID
}

func newIdentities(t testing.TB, n int, seed uint64) []identity {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 99))
	out := make([]identity, n)
	for i := range out {
		priv, _, err := crypto.GenerateEd25519Key(rngReader{rng})
		if err != nil {
			t.Fatal(err)
		}
		id, err := peer.IDFromPrivateKey(priv)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = identity{priv, id}
	}
	return out
}

type rngReader struct{ r *rand.Rand }

func (r rngReader) Read(b []byte) (int, error) {
	for i := range b {
		b[i] = byte(r.r.Uint32())
	}
	return len(b), nil
}

// sealAs signs r as id.
func sealAs(t testing.TB, id identity, r records.Record) []byte {
	t.Helper()
	r.Announcer = id.id
	env, err := records.Seal(r, id.priv)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// sybils are n records of Sybil announcers for key, signed by them: seeds
// at addr (ports from 6881 up) when addr is valid, else of version 1.
func sybils(t testing.TB, key records.Key, n int, addr netip.Addr, expires time.Time, seed uint64) [][]byte {
	t.Helper()
	var out [][]byte
	for i, id := range newIdentities(t, n, seed) {
		out = append(out, sealAs(t, id, records.Record{Key: key, Port: uint16(6881 + i), Seed: true, Addr: addr, Seq: 1, Expires: expires}))
	}
	return out
}

// hostile is a storing node, or several colluding, that lies in every
// GET answer: it keeps the records PUT to it but ignores withdrawals, adds
// Sybil records at forged addresses, reports every record at a forged
// address, and claims 2^32-1 seeds and leechers. extra pads answers with
// copies, past what was asked for.
type hostile struct {
	mu     sync.Mutex
	held   map[peer.ID][]byte
	forged [][]byte
	extra  int
}

func (h *hostile) handle(s network.Stream) {
	defer s.Close()
	r := pbio.NewDelimitedReader(s, MaxRequestSize)
	w := pbio.NewDelimitedWriter(s)
	for {
		var req pb.Request
		if err := r.ReadMsg(&req); err != nil {
			return
		}
		resp := &pb.Response{}
		switch b := req.Body.(type) {
		case *pb.Request_Put:
			if rec, err := records.Open(b.Put.GetEnvelope()); err == nil && !rec.Withdrawn {
				h.mu.Lock()
				h.held[rec.Announcer] = b.Put.GetEnvelope()
				h.mu.Unlock()
			}
		case *pb.Request_Get:
			resp.Seeds, resp.Leechers = math.MaxUint32, math.MaxUint32
			h.mu.Lock()
			for _, env := range h.held {
				resp.Entries = append(resp.Entries, &pb.Entry{Envelope: env, Ip: forgedV1Addr.AsSlice()})
			}
			h.mu.Unlock()
			for _, env := range h.forged {
				resp.Entries = append(resp.Entries, &pb.Entry{Envelope: env, Ip: forgedV1Addr.AsSlice()})
			}
			for i := range h.extra * min(1, len(resp.Entries)) {
				resp.Entries = append(resp.Entries, resp.Entries[i%len(resp.Entries)])
			}
		}
		if err := w.WriteMsg(resp); err != nil {
			return
		}
	}
}

// turnHostile makes the nodes serve the record protocol with h.
func turnHostile(h *hostile, nodes ...*Node) {
	for _, nd := range nodes {
		nd.Host().SetStreamHandler(ProtocolID, h.handle)
	}
}

// TestHostileStoringNodes: k of the m=8 storing nodes of a key lie (see
// hostile). An honest client announces; another announces and withdraws.
// A lookup finds the honest client at its signed address, counts it alone,
// and finds neither the withdrawn client nor any forged address beyond the
// documented share. Each protection turned off lets its part of the attack
// through (the controls).
func TestHostileStoringNodes(t *testing.T) {
	const m, want = 8, 50
	for _, k := range []int{1, 3} {
		t.Run(fmt.Sprintf("%d of %d", k, m), func(t *testing.T) {
			tn := newTestNet(t, 12, time.Millisecond, func(c *Config) { c.Replication = m })
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			key := randomKey(t, rand.New(rand.NewPCG(uint64(k), 13)), false)
			closest := tn.trueClosest(key, m)
			byID := make(map[peer.ID]*Node)
			for _, nd := range tn.nodes {
				byID[nd.ID()] = nd
			}
			var bad []*Node
			for _, id := range closest[:k] {
				bad = append(bad, byID[id])
			}
			var others []*Node // not storing nodes of key
			for _, nd := range tn.nodes {
				if !slices.Contains(closest, nd.ID()) {
					others = append(others, nd)
				}
			}
			asker, a, b := others[0], others[1], others[2]
			h := &hostile{held: make(map[peer.ID][]byte)}
			exp := time.Now().Add(20 * time.Minute)
			h.forged = append(sybils(t, key, 30, forgedAddr, exp, 1), sybils(t, key, 10, netip.Addr{}, exp, 2)...)
			turnHostile(h, bad...)

			if _, err := a.Announce(ctx, key, 6881, true); err != nil {
				t.Fatal(err)
			}
			if _, err := b.Announce(ctx, key, 6882, false); err != nil {
				t.Fatal(err)
			}
			if err := b.Withdraw(ctx, key); err != nil {
				t.Fatal(err)
			}
			aEndpoint := netip.AddrPortFrom(connIP(t, a), 6881)

			lookup := func(pol lookupPolicy) (LookupResult, int, bool) {
				t.Helper()
				asker.policy = pol
				defer func() { asker.policy = lookupPolicy{} }()
				lr, err := asker.Lookup(ctx, key, want)
				if err != nil {
					t.Fatal(err)
				}
				forged, withdrawn := 0, false
				for _, p := range lr.Peers {
					switch {
					case p.Announcer == b.ID():
						withdrawn = true
					case p.Endpoint.Addr() == forgedAddr || p.Endpoint.Addr() == forgedV1Addr:
						forged++
					}
				}
				return lr, forged, withdrawn
			}

			lr, forged, withdrawn := lookup(lookupPolicy{})
			vouchers := m - k
			if lr.Stats.Early {
				vouchers = m/2 + 1 // the first majority that agreed (lookup_early.go)
			}
			if len(lr.Peers) == 0 || lr.Peers[0].Endpoint != aEndpoint || lr.Peers[0].Vouchers < vouchers {
				t.Fatalf("first peer %+v, want %s vouched for by %d honest storing nodes", lr.Peers, aEndpoint, vouchers)
			}
			if withdrawn {
				t.Error("the withdrawn client was served")
			}
			maxForged := 1 // one honest record vouched for by a majority: a minority share of one
			if forged > maxForged {
				t.Errorf("%d forged endpoints served, at most %d allowed", forged, maxForged)
			}
			if lr.Seeds != 1+forged || lr.Leechers != 0 {
				t.Errorf("counts seeds=%d leechers=%d, want %d and 0: the records served", lr.Seeds, lr.Leechers, 1+forged)
			}
			t.Logf("protected: %d peers, %d forged (%.0f%% of the answer, %.0f%% of want), unvouched %d, unsigned %d",
				len(lr.Peers), forged, 100*float64(forged)/float64(len(lr.Peers)), 100*float64(forged)/want, lr.Stats.Unvouched, lr.Stats.Unsigned)

			// Controls: each protection off lets its part through. They run
			// the full lookup, which reads the hostile node's answer: an
			// early answer may be done before it arrives.
			asker.cfg.FullLookup = true
			if _, forged, _ := lookup(lookupPolicy{takeOneWord: true, noWeakShare: true}); forged < 30 {
				t.Errorf("control: taking storing nodes at their word served %d forged endpoints, want the 30 Sybils", forged)
			}
			if lr, _, _ := lookup(lookupPolicy{trustCounts: true}); lr.Seeds != math.MaxUint32 {
				t.Errorf("control: trusting counts gave %d seeds, want the hostile node's %d", lr.Seeds, uint32(math.MaxUint32))
			}
			lr, _, _ = lookup(lookupPolicy{takeOneWord: true, noWeakShare: true, acceptUnsigned: true})
			v1 := 0
			for _, p := range lr.Peers {
				if p.Endpoint.Addr() == forgedV1Addr {
					v1++
				}
			}
			if v1 == 0 {
				t.Error("control: serving unsigned records at the storing node's word served no forged address")
			}
			if _, _, withdrawn := lookup(lookupPolicy{skipTombstones: true, noWeakShare: true}); !withdrawn {
				t.Error("control: without tombstones the withdrawn client was not served")
			}
			if _, forged, _ := lookup(lookupPolicy{noWeakShare: true}); forged <= maxForged {
				t.Errorf("control: without the minority share %d forged endpoints, want more than %d", forged, maxForged)
			}
		})
	}
}

// TestLongAnswer: a GET answer with more entries than asked for is refused
// whole and counted; the lookup still finds the client from the others.
func TestLongAnswer(t *testing.T) {
	// The full lookup reads every answer; an early one may be done before
	// the long answer arrives, and never read it (get refuses it either way).
	tn := newTestNet(t, 6, time.Millisecond, func(c *Config) { c.Replication, c.FullLookup = 4, true })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	key := randomKey(t, rand.New(rand.NewPCG(5, 5)), false)
	closest := tn.trueClosest(key, 4)
	var bad, asker, a *Node
	for _, nd := range tn.nodes {
		switch {
		case nd.ID() == closest[0]:
			bad = nd
		case slices.Contains(closest, nd.ID()):
		case asker == nil:
			asker = nd
		case a == nil:
			a = nd
		}
	}
	// Past the 32 asked for (minAsk), within MaxResponseSize.
	h := &hostile{held: make(map[peer.ID][]byte), extra: 300}
	turnHostile(h, bad)
	if _, err := a.Announce(ctx, key, 6881, true); err != nil {
		t.Fatal(err)
	}
	lr, err := asker.Lookup(ctx, key, 10)
	if err != nil || len(lr.Peers) != 1 || lr.Peers[0].Announcer != a.ID() {
		t.Fatalf("lookup: %+v, %v", lr.Peers, err)
	}
	if got := asker.Stats().Refused[RefusedLongAnswer]; got != 1 {
		t.Errorf("%s counted %d, want 1", RefusedLongAnswer, got)
	}
	if lr.Stats.Answered != 3 {
		t.Errorf("%d storing nodes answered, want the 3 honest ones", lr.Stats.Answered)
	}
	// Control: an answer within what was asked is taken.
	h.extra = 0
	if _, err := asker.Lookup(ctx, key, 10); err != nil {
		t.Fatal(err)
	}
	if got := asker.Stats().Refused[RefusedLongAnswer]; got != 1 {
		t.Errorf("an answer of the asked size was refused: %s = %d", RefusedLongAnswer, got)
	}
}

// TestSignedAddrChecked: a storing node refuses a record whose signed
// address is not the connection's source, counts it, and takes the same
// record signed with the right address (the control).
func TestSignedAddrChecked(t *testing.T) {
	tn := newTestNet(t, 2, 0, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	from, to := tn.nodes[0], tn.nodes[1]
	key := randomKey(t, rand.New(rand.NewPCG(6, 6)), false)
	id := identity{from.key, from.ID()}
	rec := records.Record{Key: key, Port: 6881, Seq: 1, Expires: time.Now().Add(10 * time.Minute)}
	for _, addr := range []netip.Addr{forgedAddr, netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("100::1")} {
		rec.Addr = addr
		resp, err := rawPut(ctx, from.Host(), to.ID(), sealAs(t, id, rec))
		if err != nil || resp.Status != pb.Status_REJECTED {
			t.Fatalf("signed %s: %v %v, want REJECTED", addr, resp, err)
		}
	}
	if got := to.Stats().PutsRejectedBy[RejectWrongAddr]; got != 3 {
		t.Errorf("%s = %d, want 3", RejectWrongAddr, got)
	}
	rec.Addr, rec.Seq = connIP(t, from), 2
	if resp, err := rawPut(ctx, from.Host(), to.ID(), sealAs(t, id, rec)); err != nil || resp.Status != pb.Status_OK {
		t.Fatalf("the right address: %v %v", resp, err)
	}
}

// forbiddenEndpoints are bridged endpoints no stranger may be sent to, one
// per refused range. Multicast and unspecified addresses are not here: the
// record format itself refuses them (records.CheckEndpoint).
var forbiddenEndpoints = []string{
	"127.0.0.1:22", "127.0.0.1:6379", "10.0.0.1:80", "172.16.0.1:80", "192.168.1.1:445",
	"169.254.169.254:80", "100.64.0.1:80", "192.0.2.1:80", "198.51.100.1:80", "203.0.113.1:80",
	"240.0.0.1:80", "0.1.2.3:80", "[::1]:22", "[fe80::1]:22", "[fd00::1]:22",
	"[2001:db8::1]:80", "[64:ff9b::a00:1]:80", "[2002:a00:1::1]:80", "[100::1]:80", "[::ffff:0:a00:1]:80",
}

// TestBridgedRanges: a storing node refuses a bridged record naming any
// non-global endpoint, one range at a time, and counts it; with
// LocalBridgedEndpoints (the control, what netsim runs with) it takes them.
func TestBridgedRanges(t *testing.T) {
	for _, local := range []bool{false, true} {
		t.Run(fmt.Sprintf("LocalBridgedEndpoints=%v", local), func(t *testing.T) {
			tn := newTestNet(t, 2, 0, func(c *Config) { c.LocalBridgedEndpoints = local })
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			from, to := tn.nodes[0], tn.nodes[1]
			id := identity{from.key, from.ID()}
			rng := rand.New(rand.NewPCG(7, 7))
			for _, s := range forbiddenEndpoints {
				ep := netip.MustParseAddrPort(s)
				key := randomKey(t, rng, false)
				env := sealAs(t, id, records.Record{Key: key, Addr: connIP(t, from), Seq: 1, Expires: time.Now().Add(10 * time.Minute),
					Bridged: true, Endpoints: []netip.AddrPort{netip.MustParseAddrPort("8.8.8.8:6881"), ep}})
				resp, err := rawPut(ctx, from.Host(), to.ID(), env)
				if err != nil {
					t.Fatal(err)
				}
				if refused := resp.Status == pb.Status_REJECTED; refused == local {
					t.Errorf("%s: status %s %q", ep, resp.Status, resp.Error)
				}
			}
			want := int64(len(forbiddenEndpoints))
			if local {
				want = 0
			}
			if got := to.Stats().PutsRejectedBy[RejectLocalEndpoint]; got != want {
				t.Errorf("%s = %d, want %d", RejectLocalEndpoint, got, want)
			}
		})
	}
}

// mergeNode is a node with only what merge needs.
func mergeNode(tweak func(*Config)) *Node {
	cfg := DefaultConfig()
	if tweak != nil {
		tweak(&cfg)
	}
	return &Node{cfg: cfg, log: slog.New(slog.DiscardHandler)}
}

// answersOf builds storing nodes' answers: each of honest answers with
// the honest envelopes, each of hostile with those and forged ones.
func answersOf(honest, hostile int, honestEnvs, forged [][]byte) []answer {
	var out []answer
	for i := range honest + hostile {
		a := answer{from: peer.ID(fmt.Sprintf("storing-%d", i)), target: true}
		for _, env := range honestEnvs {
			a.entries = append(a.entries, answerEntry{env, forgedV1Addr})
		}
		if i >= honest {
			for _, env := range forged {
				a.entries = append(a.entries, answerEntry{env, forgedV1Addr})
			}
		}
		out = append(out, a)
	}
	return out
}

// TestVouchShare measures the share of an answer k colluding storing nodes
// of m=8 control: each returns 40 Sybil records at forged addresses
// besides a swarm of 5 honest clients, all 8 answer, want 50.
func TestVouchShare(t *testing.T) {
	const m, want = 8, 50
	key := randomKey(t, rand.New(rand.NewPCG(9, 9)), false)
	exp := time.Now().Add(20 * time.Minute)
	var honest [][]byte
	for i, id := range newIdentities(t, 5, 3) {
		honest = append(honest, sealAs(t, id, records.Record{Key: key, Port: 7000, Addr: netip.AddrFrom4([4]byte{8, 8, 4, byte(i)}), Seq: 1, Expires: exp}))
	}
	forged := sybils(t, key, 40, forgedAddr, exp, 4)
	for k := 1; k <= 5; k++ {
		for _, pol := range []lookupPolicy{{}, {takeOneWord: true, noWeakShare: true}} {
			n := mergeNode(nil)
			n.policy = pol
			res := n.merge(key, answersOf(m-k, k, honest, forged), want, time.Now())
			bad, firstBad := 0, -1
			for i, p := range res.Peers {
				if p.Endpoint.Addr() == forgedAddr {
					bad++
					if firstBad < 0 {
						firstBad = i
					}
				}
			}
			found := len(res.Peers) - bad
			t.Logf("%d of %d hostile, %-9s: %2d of %2d peers forged (%3.0f%% of the answer, %3.0f%% of want), first at %2d; %d of 5 honest found; counts %d+%d",
				k, m, map[bool]string{true: "protected", false: "control"}[pol == lookupPolicy{}], bad, len(res.Peers),
				100*float64(bad)/float64(max(1, len(res.Peers))), 100*float64(bad)/want, firstBad, found, res.Seeds, res.Leechers)
			if found != 5 {
				t.Errorf("k=%d: %d of 5 honest clients found", k, found)
			}
			if pol != (lookupPolicy{}) {
				if bad != 40 {
					t.Errorf("control k=%d: %d forged served, want all 40", k, bad)
				}
				continue
			}
			switch {
			case k < m/2+1 && bad > 2: // 5 honest records vouched for by a majority
				t.Errorf("k=%d: %d forged served, more than the minority share", k, bad)
			case bad > 0 && firstBad < 5:
				t.Errorf("k=%d: a forged endpoint ranked at %d, before an honest one", k, firstBad)
			}
		}
	}
}

// TestVouchChurn measures what the vouching rule costs honest lookups:
// records are stored on the m=8 closest of 400 nodes; then a share of the
// nodes leaves and as many new ones join before the next republish; a
// lookup asks today's 8 closest. A record below a majority of vouchers
// (one alone included) is served only within the minority share. Seeded Monte Carlo of the XOR metric over uniform keyspace points,
// which is what kad-dht's SHA-256 keyspace gives peer IDs.
func TestVouchChurn(t *testing.T) {
	const nodes, m, trials = 400, 8, 4000
	rng := rand.New(rand.NewPCG(10, 10))
	closest := func(ids []uint64, target uint64) []uint64 {
		sorted := slices.Clone(ids)
		slices.SortFunc(sorted, func(a, b uint64) int { return cmp.Compare(a^target, b^target) })
		return sorted[:m]
	}
	for _, churn := range []float64{0.05, 0.10, 0.25, 0.50} {
		lost, weak := 0, 0
		for range trials {
			ids := make([]uint64, nodes)
			for i := range ids {
				ids[i] = rng.Uint64()
			}
			target := rng.Uint64()
			holders := closest(ids, target)
			for i := range ids {
				if rng.Float64() < churn {
					ids[i] = rng.Uint64()
				}
			}
			support := 0
			for _, p := range closest(ids, target) {
				if slices.Contains(holders, p) {
					support++
				}
			}
			switch {
			case support < 2:
				lost++
			case support < m/2+1:
				weak++
			}
		}
		t.Logf("churn %2.0f%% between republishes: record not served %.2f%%, served within the minority share %.2f%%",
			100*churn, 100*float64(lost)/trials, 100*float64(weak)/trials)
		if churn <= 0.10 && lost > trials/100 {
			t.Errorf("churn %.0f%%: %d of %d records lost, want under 1%%", 100*churn, lost, trials)
		}
	}
}

// TestBridgeQuorum measures what a hostile bridge can make clients dial.
// Bridged records are vouched for by honest storing nodes (they are
// genuine records); the attacker's bridges name 40 third parties each.
func TestBridgeQuorum(t *testing.T) {
	const want = 50
	key := randomKey(t, rand.New(rand.NewPCG(11, 11)), false)
	exp := time.Now().Add(20 * time.Minute)
	var victims []netip.AddrPort
	for i := range records.MaxEndpoints {
		victims = append(victims, netip.AddrPortFrom(netip.AddrFrom4([4]byte{8, 8, 8, byte(i)}), 80))
	}
	bridge := func(id identity, addr string, eps []netip.AddrPort) []byte {
		return sealAs(t, id, records.Record{Key: key, Addr: netip.MustParseAddr(addr), Seq: 1, Expires: exp, Bridged: true, Endpoints: eps})
	}
	ids := newIdentities(t, 4, 12)
	honestClient := sealAs(t, ids[3], records.Record{Key: key, Port: 7000, Addr: netip.MustParseAddr("9.9.9.9"), Seq: 1, Expires: exp})
	cases := []struct {
		name    string
		bridges [][]byte
		quorum  int
		local   bool
		served  int
	}{
		{"one bridge, quorum 1 (control)", [][]byte{bridge(ids[0], "1.2.3.4", victims)}, 1, false, 25},
		{"one bridge", [][]byte{bridge(ids[0], "1.2.3.4", victims)}, 2, false, 0},
		{"two bridges, one IPv6 /64", [][]byte{bridge(ids[0], "2a00:1::1", victims), bridge(ids[1], "2a00:1::2", victims)}, 2, false, 0},
		{"two bridges, two addresses", [][]byte{bridge(ids[0], "1.2.3.4", victims), bridge(ids[1], "5.6.7.8", victims)}, 2, false, 25},
		{"two bridges, local endpoints", [][]byte{
			bridge(ids[0], "1.2.3.4", mustAddrPorts(forbiddenEndpoints)),
			bridge(ids[1], "5.6.7.8", mustAddrPorts(forbiddenEndpoints))}, 2, false, 0},
		{"two bridges, local endpoints allowed (control)", [][]byte{
			bridge(ids[0], "1.2.3.4", mustAddrPorts(forbiddenEndpoints)),
			bridge(ids[1], "5.6.7.8", mustAddrPorts(forbiddenEndpoints))}, 2, true, len(forbiddenEndpoints)},
	}
	// One hostile storing node of 8 makes up a quorum of bridges: two
	// bridges' records at two made-up addresses, which no honest storing
	// node holds.
	made := [][]byte{bridge(ids[0], "1.2.3.4", victims), bridge(ids[1], "5.6.7.8", victims)}
	for _, lone := range []bool{true, false} {
		n := mergeNode(nil)
		if !lone {
			n.policy = lookupPolicy{takeOneWord: true} // control: one storing node's word
		}
		res := n.merge(key, answersOf(7, 1, [][]byte{honestClient}, made), want, time.Now())
		served := 0
		for _, p := range res.Peers {
			if p.Bridged {
				served++
			}
		}
		switch {
		case lone && served != 0:
			t.Errorf("one hostile storing node's made-up bridges got %d endpoints served", served)
		case !lone && served == 0:
			t.Error("control: taking one storing node's word served none of its made-up bridges' endpoints")
		}
	}
	for _, tc := range cases {
		n := mergeNode(func(c *Config) { c.BridgeQuorum, c.LocalBridgedEndpoints = tc.quorum, tc.local })
		res := n.merge(key, answersOf(8, 0, append([][]byte{honestClient}, tc.bridges...), nil), want, time.Now())
		served := 0
		for i, p := range res.Peers {
			if p.Bridged {
				served++
				if i == 0 {
					t.Errorf("%s: a bridged endpoint ranked before the direct client", tc.name)
				}
			}
		}
		t.Logf("%-45s: %2d bridged endpoints served of %d peers (want %d)", tc.name, served, len(res.Peers), want)
		if served != tc.served {
			t.Errorf("%s: %d bridged endpoints served, want %d", tc.name, served, tc.served)
		}
	}
}

func mustAddrPorts(ss []string) []netip.AddrPort {
	var out []netip.AddrPort
	for _, s := range ss {
		out = append(out, netip.MustParseAddrPort(s))
	}
	return out
}

// BenchmarkMerge: a lookup's merge of 8 answers of 50 records each, the
// same 50 in all (what salted GETs give), every envelope verified once.
func BenchmarkMerge(b *testing.B) {
	key := randomKey(b, rand.New(rand.NewPCG(12, 12)), false)
	exp := time.Now().Add(time.Hour)
	var envs [][]byte
	for i, id := range newIdentities(b, 50, 13) {
		envs = append(envs, sealAs(b, id, records.Record{Key: key, Port: 7000, Addr: netip.AddrFrom4([4]byte{8, 8, 4, byte(i)}), Seq: 1, Expires: exp}))
	}
	answers := answersOf(8, 0, envs, nil)
	n := mergeNode(nil)
	b.ReportAllocs()
	for b.Loop() {
		if res := n.merge(key, answers, 50, time.Now()); len(res.Peers) != 50 {
			b.Fatalf("%d peers", len(res.Peers))
		}
	}
}

// TestBridgeQuorumMocknet: on real nodes, the endpoints one bridge
// publishes are not served to others; once a second bridge at another
// address names them they are, after the direct client. The control is
// the same lookup with quorum 1.
func TestBridgeQuorumMocknet(t *testing.T) {
	tn := newTestNet(t, 10, time.Millisecond, func(c *Config) { c.Replication = 3 })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	key := randomKey(t, rand.New(rand.NewPCG(14, 14)), false)
	first, second, client, asker := tn.nodes[0], tn.nodes[1], tn.nodes[2], tn.nodes[9]
	eps := []netip.AddrPort{netip.MustParseAddrPort("8.8.8.1:6881"), netip.MustParseAddrPort("8.8.8.2:6881")}
	if _, err := client.Announce(ctx, key, 7000, true); err != nil {
		t.Fatal(err)
	}
	// Non-global endpoints are not published: storing nodes would refuse
	// the whole record.
	local := mustAddrPorts(forbiddenEndpoints[:5])
	if res, err := first.PublishBridged(ctx, key, append(slices.Clone(local), eps...)); err != nil || res.StoredOn != 3 {
		t.Fatalf("PublishBridged: %+v, %v", res, err)
	}
	if got := first.Bridged()[key]; !slices.Equal(got, eps) {
		t.Errorf("published %v, want only the global %v", got, eps)
	}
	bridged := func(quorum int) int {
		t.Helper()
		asker.cfg.BridgeQuorum = quorum
		lr, err := asker.Lookup(ctx, key, 50)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for i, p := range lr.Peers {
			if p.Bridged {
				n++
				if i == 0 {
					t.Errorf("bridged %s ranked before the direct client", p.Endpoint)
				}
			}
		}
		return n
	}
	if n := bridged(2); n != 0 {
		t.Errorf("one bridge: %d endpoints served, want 0", n)
	}
	if n := bridged(1); n != 2 {
		t.Errorf("control, quorum 1: %d endpoints served, want 2", n)
	}
	if _, err := second.PublishBridged(ctx, key, eps[:1]); err != nil {
		t.Fatal(err)
	}
	if n := bridged(2); n != 1 {
		t.Errorf("two bridges agree on one endpoint: %d served, want 1", n)
	}
}
