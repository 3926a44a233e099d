package tsup

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/kadtracker/kadtracker/node/tsup/wire"
)

func TestDefaultConfigValid(t *testing.T) {
	cfg := DefaultConfig()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.HelloInterval != 10*time.Second || cfg.UpdateInterval != 30*time.Second {
		t.Fatalf("defaults are not the paper's typical 10 s and 30 s: %v %v", cfg.HelloInterval, cfg.UpdateInterval)
	}
	bad := cfg
	bad.UpdateInterval = 0
	bad.DisconnectInterval = time.Second
	bad.PeerTTL = -time.Second
	bad.Logger = nil
	bad.Links = []Link{
		{Addr: netip.MustParseAddrPort("10.0.0.1:6969"), Key: []byte("short")},
		{Addr: netip.MustParseAddrPort("[::ffff:10.0.0.1]:6969")},
		{Addr: netip.MustParseAddrPort("0.0.0.0:6969")},
		{},
	}
	err := bad.Validate()
	for _, want := range []string{"UpdateInterval", "DisconnectInterval", "PeerTTL", "Logger", "key of 5 bytes", "listed twice", "not a tracker address", "no address"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate misses %q: %v", want, err)
		}
	}
	if _, err := NewCore(cfg, simEpoch); err == nil {
		t.Error("NewCore accepted Port 0")
	}
}

// pair links two trackers a and b (b at index 1) and returns the network.
func pair(t *testing.T, seed uint64, loss float64, tweak func(i int, c *Config)) (*simNet, *simNode, *simNode) {
	net := newSimNet(t, seed, loss)
	nodes := mesh(net, 2, DefaultConfig(), tweak)
	return net, nodes[0], nodes[1]
}

func stateOf(nd *simNode) string { return nd.core.Links()[0].State }

// deliver hands every pending packet of from to to, returning how many.
func deliver(now time.Time, from, to *simNode) int {
	out := from.core.Ready()
	for _, d := range out {
		to.core.Step(now, from.addr, d.Data)
	}
	return len(out)
}

// Both trackers send their first SYN before hearing the other's. XBT
// deadlocks here until the disconnect interval; with the extensions the
// larger connection id wins at once, and toward an XBT-like tracker we
// yield.
func TestSimultaneousOpen(t *testing.T) {
	for _, tc := range []struct {
		name   string
		plainA bool
		plainB bool
		ok     bool
	}{
		{"kadtracker both", false, false, true},
		{"XBT-like a", true, false, true},
		{"XBT-like b", false, true, true},
		{"XBT-like both (XBT's deadlock)", true, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfgA, cfgB := simConfig(1), simConfig(2)
			cfgA.Port, cfgB.Port = 1111, 2222
			cfgA.NoExtensions, cfgB.NoExtensions = tc.plainA, tc.plainB
			aAddr, bAddr := netip.MustParseAddrPort("10.0.0.1:1111"), netip.MustParseAddrPort("10.0.0.2:2222")
			cfgA.Links = []Link{{Addr: bAddr}}
			cfgB.Links = []Link{{Addr: aAddr}}
			ca, _ := NewCore(cfgA, simEpoch)
			cb, _ := NewCore(cfgB, simEpoch)
			a, b := &simNode{addr: aAddr, core: ca}, &simNode{addr: bAddr, core: cb}
			now := simEpoch.Add(cfgA.HelloInterval)
			ca.Tick(now) // both SYNs are out before either arrives
			cb.Tick(now)
			synA, synB := ca.Ready(), cb.Ready()
			for _, d := range synA {
				cb.Step(now, aAddr, d.Data)
			}
			for _, d := range synB {
				ca.Step(now, bAddr, d.Data)
			}
			// Exchange until quiet: SYN+ACKs, then SUMMARY, UPDATE+S, +S+A.
			for range 10 {
				if deliver(now, a, b)+deliver(now, b, a) == 0 {
					break
				}
			}
			up := stateOf(a) == "connected" && stateOf(b) == "connected"
			if up != tc.ok {
				t.Fatalf("a %s, b %s", stateOf(a), stateOf(b))
			}
		})
	}
}

// A tracker speaking XBT's wire (NoExtensions) and a kadtracker unify; the
// kadtracker sends it only what XBT can read.
func TestPlainLinkToXBTLike(t *testing.T) {
	net, a, b := pair(t, 7, 0, func(i int, c *Config) { c.NoExtensions = i == 0 })
	// Every packet b sends a must parse in XBT's plain mode, carry at most
	// 50 peers per swarm and no IPv6.
	checked := 0
	net.observe = func(from netip.AddrPort, d Datagram) {
		if from != b.addr {
			return
		}
		checked++
		m, err := wire.Parse(d.Data, wire.Plain)
		if err != nil {
			t.Fatalf("b sent a packet XBT cannot parse: %v", err)
		}
		if c, ok := m.(wire.Candidature); ok && !c.Ack && c.HasRank {
			t.Fatal("ranked CANDIDATURE to a plain link")
		}
		if s, ok := m.(wire.Syn); ok && !s.Ext() {
			t.Fatal("kadtracker SYN without the EXT bit")
		}
		if u, ok := m.(wire.Update); ok {
			n := 0
			for _, blk := range u.Blocks {
				n += len(blk.Peers)
			}
			if n > wire.SendBlockPeers {
				t.Fatalf("%d peers in one UPDATE to a plain link", n)
			}
		}
	}
	a.core.SetOwn(net.now, testIH, clientPeers(0, 3))
	v6 := Peer{Addr: netip.MustParseAddrPort("[2001:db8::7]:6881"), Seed: true}
	b.core.SetOwn(net.now, testIH, append(clientPeers(1, 60), v6))
	net.collect(a)
	net.collect(b)
	net.runFor(10 * time.Minute)
	if checked == 0 {
		t.Fatal("nothing sent")
	}
	if l := a.core.Links()[0]; l.State != "connected" || l.Extended {
		t.Fatalf("a's link: %+v", l)
	}
	got := a.core.Peers(testIH)
	for _, p := range got {
		if p.Addr.Addr().Is6() {
			t.Fatal("IPv6 peer crossed a plain link")
		}
		if p.Origin != Own && p.Seed {
			t.Fatal("seed bit crossed a plain link")
		}
	}
	// 60 IPv4 peers, 50 sampled per round: after 20 rounds a knows most.
	if len(got) < 3+50 {
		t.Fatalf("a knows %d peers", len(got))
	}
	_, _, agree := leaders([]*simNode{a, b}, testIH)
	if !agree {
		ls, _, _ := leaders([]*simNode{a, b}, testIH)
		t.Fatalf("no agreed leader: %v", ls)
	}
}

func TestMAC(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	net, a, b := pair(t, 8, 0, func(i int, c *Config) { c.Links[0].Key = key })
	a.core.SetOwn(net.now, testIH, clientPeers(0, 2))
	b.core.SetOwn(net.now, testIH, clientPeers(1, 2))
	net.collect(a)
	net.collect(b)
	want := peerSet(clientPeers(0, 2), clientPeers(1, 2))
	if _, ok := net.runUntil(time.Minute, 100*time.Millisecond, func() bool { return knowsAll([]*simNode{a, b}, testIH, want) }); !ok {
		t.Fatal("keyed link did not converge")
	}
	if l := a.core.Links()[0]; !l.MAC || !l.Extended {
		t.Fatalf("link %+v", l)
	}

	// Capture one sealed packet from b to a.
	net.runFor(b.core.NextDeadline().Sub(net.now))
	b.core.Tick(net.now.Add(time.Minute))
	out := b.core.Ready()
	if len(out) == 0 {
		t.Fatal("b sent nothing")
	}
	pkt := out[0].Data
	now := net.now.Add(time.Minute)
	if err := a.core.Step(now, b.addr, pkt); err != nil {
		t.Fatalf("genuine packet: %v", err)
	}
	if err := a.core.Step(now, b.addr, pkt); !errors.Is(err, ErrReplay) {
		t.Fatalf("replay: %v", err)
	}
	if err := a.core.Step(now, b.addr, pkt[:len(pkt)-wire.TrailerLen]); !errors.Is(err, wire.ErrMAC) {
		t.Fatalf("unsealed: %v", err)
	}
	forged := wire.NewMAC([]byte("another key, just as long as it..")).Seal(append([]byte(nil), pkt[:len(pkt)-wire.TrailerLen]...), 1, now.UnixNano()+1)
	if err := a.core.Step(now, b.addr, forged); !errors.Is(err, wire.ErrMAC) {
		t.Fatalf("wrong key: %v", err)
	}
	// a's own packet sent back to it as if from b (same ports): reflected.
	a.core.Tick(now.Add(time.Minute))
	own := a.core.Ready()
	if len(own) == 0 {
		t.Fatal("a sent nothing")
	}
	if err := a.core.Step(now.Add(time.Minute), b.addr, own[0].Data); !errors.Is(err, ErrReflected) {
		t.Fatalf("reflected: %v", err)
	}
	if a.core.Stats().BadMAC != 4 {
		t.Fatalf("BadMAC %d", a.core.Stats().BadMAC)
	}
}

// IPv6 trackers and peers over extended links; none of it reaches a plain
// (XBT-like) neighbour.
func TestIPv6(t *testing.T) {
	net := newSimNet(t, 9, 0)
	addrs := []netip.AddrPort{netip.MustParseAddrPort("[fd00::1]:6969"), netip.MustParseAddrPort("[fd00::2]:6969"), netip.MustParseAddrPort("10.0.0.3:6969")}
	var nodes []*simNode
	for i, ad := range addrs {
		cfg := simConfig(uint64(i))
		cfg.NoExtensions = i == 2
		for j, o := range addrs {
			if j != i && !(i == 2 && j == 0) && !(i == 0 && j == 2) {
				cfg.Links = append(cfg.Links, Link{Addr: o})
			}
		}
		nodes = append(nodes, net.add(ad, cfg))
	}
	p6 := Peer{Addr: netip.MustParseAddrPort("[2001:db8::1]:6881"), Seed: true}
	p4 := Peer{Addr: netip.MustParseAddrPort("192.0.2.1:6881")}
	nodes[0].core.SetOwn(net.now, testIH, []Peer{p6, p4})
	nodes[1].core.SetOwn(net.now, testIH, clientPeers(1, 1))
	nodes[2].core.SetOwn(net.now, testIH, clientPeers(2, 1))
	for _, nd := range nodes {
		net.collect(nd)
	}
	net.runFor(3 * time.Minute)
	got := nodes[1].core.Peers(testIH)
	found := false
	for _, p := range got {
		if p.Addr == p6.Addr {
			found = true
			if !p.Seed || p.Origin != Internal {
				t.Fatalf("IPv6 peer arrived as %+v", p)
			}
		}
	}
	if !found {
		t.Fatalf("IPv6 peer not learned over an IPv6 link: %v", got)
	}
	// Node 1 leads or forwards; node 2 is plain and must not get p6.
	for _, p := range nodes[2].core.Peers(testIH) {
		if p.Addr.Addr().Is6() {
			t.Fatal("IPv6 peer reached a plain link")
		}
	}
}

// More than 96 swarms (one SUMMARY's worth for XBT) and more than 50
// peers in a swarm: split into several packets, none over 2048 bytes (the
// simulator checks every packet).
func TestSplitting(t *testing.T) {
	for _, plain := range []bool{false, true} {
		t.Run(fmt.Sprintf("plain=%v", plain), func(t *testing.T) {
			net, a, b := pair(t, 10, 0, func(i int, c *Config) { c.NoExtensions = plain })
			const nSwarms = 300
			for i := range nSwarms {
				ih := Infohash{byte(i >> 8), byte(i), 0xaa}
				a.core.SetOwn(net.now, ih, clientPeers(i, 1))
				b.core.SetOwn(net.now, ih, clientPeers(1000+i, 1))
			}
			big := clientPeers(5000, 150)
			a.core.SetOwn(net.now, testIH, big)
			b.core.SetOwn(net.now, testIH, clientPeers(5001, 1))
			net.collect(a)
			net.collect(b)
			net.runFor(2 * time.Minute)
			for i := range nSwarms {
				ih := Infohash{byte(i >> 8), byte(i), 0xaa}
				if n := len(b.core.Peers(ih)); n != 2 {
					t.Fatalf("swarm %d: b knows %d peers", i, n)
				}
			}
			if l := b.core.Links()[0]; l.Swarms != nSwarms+1 {
				t.Fatalf("b shares %d swarms with a", l.Swarms)
			}
			n := len(b.core.Peers(testIH))
			if !plain && n != 151 {
				t.Fatalf("extended link: b knows %d of 151 peers", n)
			}
			if plain && (n < 51 || n > 151) {
				t.Fatalf("plain link: b knows %d peers", n)
			}
			t.Logf("b knows %d of 151 peers of the big swarm after 4 rounds", n)
		})
	}
}

// A partition longer than the retries, then a restart: links come back and
// the swarm converges again.
func TestReconnect(t *testing.T) {
	net, a, b := pair(t, 11, 0, nil)
	a.core.SetOwn(net.now, testIH, clientPeers(0, 2))
	b.core.SetOwn(net.now, testIH, clientPeers(1, 2))
	net.collect(a)
	net.collect(b)
	want := peerSet(clientPeers(0, 2), clientPeers(1, 2))
	both := []*simNode{a, b}
	if _, ok := net.runUntil(time.Minute, time.Second, func() bool { return knowsAll(both, testIH, want) }); !ok {
		t.Fatal("no convergence")
	}
	// Partition: b's packets vanish and a's to b too (b not alive).
	b.alive = false
	net.runFor(3 * time.Minute)
	if s := stateOf(a); s != "disconnected" {
		t.Fatalf("after the retries a's link is %s", s)
	}
	b.alive = true
	// b, from its side, also timed out; whoever's SYN goes first reconnects.
	if _, ok := net.runUntil(5*time.Minute, time.Second, func() bool {
		return stateOf(a) == "connected" && stateOf(b) == "connected" && knowsAll(both, testIH, want)
	}); !ok {
		t.Fatalf("no reconnection: a %s, b %s", stateOf(a), stateOf(b))
	}
	// b restarts with a fresh state: its SYN carries no connection id, a
	// resets and re-unifies.
	cfg := DefaultConfig()
	cfg.Rand = rand.NewPCG(99, 99)
	cfg.Port = b.addr.Port()
	cfg.Links = []Link{{Addr: a.addr}}
	b.core, _ = NewCore(cfg, net.now)
	b.t = b.core
	b.core.SetOwn(net.now, testIH, clientPeers(1, 2))
	net.collect(b)
	if _, ok := net.runUntil(2*time.Minute, time.Second, func() bool {
		return stateOf(a) == "connected" && knowsAll(both, testIH, want)
	}); !ok {
		t.Fatalf("no convergence after a restart: a %s, b %s", stateOf(a), stateOf(b))
	}
}

// Many swarms shared by four trackers: every swarm gets one leader all
// agree on, and the mandates are spread evenly (fewest mandates first).
func TestElectionBalance(t *testing.T) {
	net := newSimNet(t, 12, 0)
	base := DefaultConfig()
	base.MandateInterval = 5 * time.Minute
	nodes := mesh(net, 4, base, nil)
	const nSwarms = 40
	for i := range nSwarms {
		for j, nd := range nodes {
			nd.core.SetOwn(net.now, Infohash{byte(i), 0xbb}, clientPeers(100*j+i, 1))
		}
	}
	for _, nd := range nodes {
		net.collect(nd)
	}
	net.runFor(30 * time.Minute)
	total := 0
	for _, nd := range nodes {
		m := nd.core.Mandates()
		total += m
		t.Logf("%v leads %d swarms", nd.addr, m)
		if m < nSwarms/4-4 || m > nSwarms/4+4 {
			t.Errorf("%v leads %d of %d swarms", nd.addr, m, nSwarms)
		}
	}
	if total != nSwarms {
		t.Errorf("%d leaderships for %d swarms", total, nSwarms)
	}
	for i := range nSwarms {
		ih := Infohash{byte(i), 0xbb}
		if ls, _, agree := leadersOf(nodes, ih); !agree {
			t.Errorf("swarm %d: %v", i, ls)
		}
	}
}

func leadersOf(nodes []*simNode, ih Infohash) (map[netip.AddrPort]string, string, bool) {
	save := testIH
	defer func() { testIH = save }()
	testIH = ih
	return leaders(nodes, ih)
}

// Two border trackers over a plain link (as toward an XBT border tracker):
// neither lists its swarms, so each first sends the other an empty block
// for a swarm it has not named (XBT misreads peers in a block for a swarm
// it lacks), and peers follow once the other names it back.
func TestPlainBorderPair(t *testing.T) {
	net := newSimNet(t, 13, 0)
	x, y := trackerAddr(0), trackerAddr(1)
	far := func(i int) Link { return Link{Addr: trackerAddr(10 + i), External: true} }
	cx, cy := simConfig(0), simConfig(1)
	cx.NoExtensions = true
	cx.Links = []Link{{Addr: y}, far(0)}
	cy.Links = []Link{{Addr: x}, far(1)}
	nx, ny := net.add(x, cx), net.add(y, cy)
	S, T := Infohash{'S'}, Infohash{'T'}
	first := map[Infohash]int{}
	net.observe = func(from netip.AddrPort, d Datagram) {
		if from != y || d.To != x {
			return
		}
		m, err := wire.Parse(d.Data, wire.Plain)
		if err != nil {
			t.Fatalf("y sent x an unparsable packet: %v", err)
		}
		if u, ok := m.(wire.Update); ok {
			for _, b := range u.Blocks {
				if _, seen := first[b.Infohash]; !seen {
					first[b.Infohash] = len(b.Peers)
				}
			}
		}
	}
	ny.core.SetOwn(net.now, S, clientPeers(0, 2))
	nx.core.SetOwn(net.now, T, clientPeers(1, 2))
	net.collect(nx)
	net.collect(ny)
	net.runFor(3 * time.Minute)
	if got := len(nx.core.Peers(S)); got != 2 {
		t.Fatalf("x knows %d peers of S", got)
	}
	if got := len(ny.core.Peers(T)); got != 2 {
		t.Fatalf("y knows %d peers of T", got)
	}
	if n, ok := first[S]; !ok || n != 0 {
		t.Fatalf("y's first block of S to x had %d peers (sent %v)", n, ok)
	}
}

// A swarm that goes is announced: its peers turn dead at once (NEG), and
// after the linger a one-entry SUMMARY removes it; a new one is announced
// at once.
func TestSwarmComesAndGoes(t *testing.T) {
	net, a, b := pair(t, 14, 0, nil)
	a.core.SetOwn(net.now, testIH, clientPeers(0, 2))
	b.core.SetOwn(net.now, testIH, clientPeers(1, 2))
	net.collect(a)
	net.collect(b)
	net.runFor(time.Minute)
	trackers := func(nd *simNode, ih Infohash) int {
		for _, s := range nd.core.Swarms() {
			if s.Infohash == ih {
				return s.Trackers
			}
		}
		return -1
	}
	if len(b.core.Peers(testIH)) != 4 || trackers(b, testIH) != 1 {
		t.Fatal("no convergence")
	}
	net.resetCounters()
	a.core.SetOwn(net.now, testIH, nil)
	net.collect(a)
	if _, ok := net.runUntil(2*time.Minute, time.Second, func() bool { return len(b.core.Peers(testIH)) == 2 }); !ok {
		t.Fatalf("a's stopped peers still live at b: %v", b.core.Peers(testIH))
	}
	if _, ok := net.runUntil(3*time.Minute, time.Second, func() bool { return trackers(b, testIH) == 0 }); !ok {
		t.Fatal("a's swarm never went at b")
	}
	if a.core.Peers(testIH) != nil || net.sent["SUMMARY"] != 1 {
		t.Fatalf("a still has the swarm, or sent %d SUMMARYs", net.sent["SUMMARY"])
	}
	other := Infohash{0x77}
	a.core.SetOwn(net.now, other, clientPeers(2, 1))
	b.core.SetOwn(net.now, other, clientPeers(3, 1))
	net.collect(a)
	net.collect(b)
	net.runFor(time.Second)
	if trackers(a, other) != 1 || trackers(b, other) != 1 || len(b.core.Peers(other)) != 2 {
		t.Fatal("a new swarm was not unified within a second")
	}
}
