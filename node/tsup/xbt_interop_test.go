package tsup

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/kadtracker/kadtracker/node/tsup/wire"
)

// xbtWorld is one kadtracker (node 0) linked to n modelled XBTs, which are
// linked to each other too; everyone has two clients in testIH.
type xbtWorld struct {
	net  *simNet
	kad  *simNode
	xbts []*xbtModel
	all  []*simNode
	want map[netip.AddrPort]bool
}

func newXBTWorld(t *testing.T, seed uint64, n int, kcfg Config, xcfg xbtConfig) *xbtWorld {
	t.Helper()
	w := &xbtWorld{net: newSimNet(t, seed, 0)}
	addrs := make([]netip.AddrPort, n+1)
	for i := range addrs {
		addrs[i] = trackerAddr(i)
	}
	kcfg.Rand = simConfig(seed).Rand
	kcfg.Links = nil
	for _, a := range addrs[1:] {
		kcfg.Links = append(kcfg.Links, Link{Addr: a})
	}
	w.kad = w.net.add(addrs[0], kcfg)
	w.all = append(w.all, w.kad)
	var peers [][]Peer
	ps := clientPeers(0, 2)
	peers = append(peers, ps)
	if err := w.kad.core.SetOwn(w.net.now, testIH, ps); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= n; i++ {
		var links []netip.AddrPort
		for j, a := range addrs {
			if j != i {
				links = append(links, a)
			}
		}
		x := newXBT(addrs[i], xcfg, links, seed*100+uint64(i), w.net.now)
		ps := clientPeers(i, 2)
		peers = append(peers, ps)
		x.setOwn(testIH, ps)
		w.xbts = append(w.xbts, x)
		w.all = append(w.all, w.net.addTracker(addrs[i], x, nil))
	}
	w.want = peerSet(peers...)
	return w
}

func (w *xbtWorld) answers(nd *simNode) []Peer {
	if nd.core != nil {
		return nd.core.Peers(testIH)
	}
	return nd.t.(*xbtModel).Peers(testIH)
}

// missing lists the expected peers absent from nd's answers.
func (w *xbtWorld) missing(nd *simNode) []netip.AddrPort {
	got := make(map[netip.AddrPort]bool)
	for _, p := range w.answers(nd) {
		got[p.Addr] = true
	}
	var out []netip.AddrPort
	for a := range w.want {
		if !got[a] {
			out = append(out, a)
		}
	}
	return out
}

func (w *xbtWorld) complete() bool {
	for _, nd := range w.all {
		if len(w.missing(nd)) > 0 {
			return false
		}
	}
	return true
}

// gap is the longest time a peer was missing from a tracker's answers.
type gap struct {
	d       time.Duration
	tracker netip.AddrPort
	peer    netip.AddrPort
	at      time.Time
}

// watch runs for d in steps of one second and returns the longest absence
// of any expected peer from any tracker's answers, and from each tracker's.
func (w *xbtWorld) watch(d time.Duration) (worst gap, by map[netip.AddrPort]gap) {
	by = make(map[netip.AddrPort]gap)
	since := make(map[[2]netip.AddrPort]time.Time)
	end := w.net.now.Add(d)
	for w.net.now.Before(end) {
		w.net.runFor(time.Second)
		gone := make(map[[2]netip.AddrPort]bool)
		for _, nd := range w.all {
			for _, a := range w.missing(nd) {
				k := [2]netip.AddrPort{nd.addr, a}
				gone[k] = true
				if _, ok := since[k]; !ok {
					since[k] = w.net.now
				}
				g := gap{w.net.now.Sub(since[k]), nd.addr, a, since[k]}
				if g.d > worst.d {
					worst = g
				}
				if g.d > by[nd.addr].d {
					by[nd.addr] = g
				}
			}
		}
		for k := range since {
			if !gone[k] {
				delete(since, k)
			}
		}
	}
	return worst, by
}

func (w *xbtWorld) campaigns() (kad int, xbt []int) {
	for _, x := range w.xbts {
		xbt = append(xbt, x.campaigns)
	}
	return int(w.kad.core.Stats().Elections), xbt
}

func (w *xbtWorld) leaders() string {
	s := fmt.Sprintf("kad=%q", func() string {
		for _, st := range w.kad.core.Swarms() {
			if st.Infohash == testIH {
				return st.InternalLeader
			}
		}
		return "?"
	}())
	for _, x := range w.xbts {
		s += fmt.Sprintf(" %v=%q", x.addr, x.leaderOf(testIH))
	}
	return s
}

// restartXBT replaces XBT i (1-based) with a fresh one: no links, no
// remote peers, new connection ids.
func (w *xbtWorld) restartXBT(i int, seed uint64) {
	old := w.xbts[i-1]
	var links []netip.AddrPort
	for _, l := range old.links {
		links = append(links, l.addr)
	}
	x := newXBT(old.addr, old.cfg, links, seed, w.net.now)
	x.setOwn(testIH, clientPeers(i, 2))
	x.campaigns = old.campaigns
	w.xbts[i-1] = x
	nd := w.all[i]
	nd.t = x
	w.net.collect(nd)
}

// xbtAnnounces, xbtHellos: the XBT settings the tests cover, XBT's
// defaults (1,800 s, 60 s) included. A modelled XBT's update interval is
// min(300 s, announce/2): its default, or short enough that two XBTs keep
// each other's peers (XBT forgets them after 1.5 announce intervals).
var (
	xbtAnnounces = []time.Duration{time.Minute, 5 * time.Minute, 30 * time.Minute}
	xbtHellos    = []time.Duration{5 * time.Second, 10 * time.Second, 15 * time.Second, 30 * time.Second, time.Minute}
)

func xbtUpdate(announce time.Duration) time.Duration { return min(5*time.Minute, announce/2) }

// One kadtracker beside one or two XBTs: once every tracker answers every
// peer, none goes missing from any tracker's answers for longer than one
// update interval over two hours, elections included. Failed before: an XBT
// that led the swarm forwarded the other XBT's peer to us and we then kept
// it from that XBT for PeerTTL, longer than XBT kept it (issue 17); we
// expired an XBT's peers between its 300 s updates (PeerTTL is 300 s too)
// and told it they were dead, which XBT applies to its own clients until
// they announce again.
func TestXBTPeersNeverMissing(t *testing.T) {
	for _, n := range []int{1, 2} {
		for _, announce := range xbtAnnounces {
			for _, hello := range xbtHellos {
				t.Run(fmt.Sprintf("xbts=%d/announce=%v/hello=%v", n, announce, hello), func(t *testing.T) {
					kc := DefaultConfig()
					w := newXBTWorld(t, 1, n, kc, defaultXBT(announce, hello, xbtUpdate(announce)))
					if _, ok := w.net.runUntil(10*time.Minute, time.Second, w.complete); !ok {
						t.Fatalf("no tracker answers every peer after 10 min; %s", w.leaders())
					}
					g, by := w.watch(2 * time.Hour)
					if g.d > kc.UpdateInterval {
						t.Errorf("%v answered without %v for %v from %v, longer than an update interval (%v); %s",
							g.tracker, g.peer, g.d, g.at.Sub(simEpoch), kc.UpdateInterval, w.leaders())
					}
					// The kadtracker hears every XBT at least every 300 s
					// and never loses a peer.
					if k := by[w.kad.addr]; k.d > 0 {
						t.Errorf("the kadtracker answered without %v for %v from %v; %s", k.peer, k.d, k.at.Sub(simEpoch), w.leaders())
					}
					for _, x := range w.xbts {
						if x.unknownPeer > 0 {
							t.Errorf("%v got %d peers for a swarm it lacks", x.addr, x.unknownPeer)
						}
					}
				})
			}
		}
	}
}

// One kadtracker beside one or two XBTs, one of which restarts after 30
// minutes: every campaign settles, the kadtracker starting one and each XBT
// at most one (in answer to ours, or on its own hourly timer) in any ten
// minutes, and at the end every XBT routes the swarm through the
// kadtracker. Before, a CANDIDATURE from XBT's hello tick after our
// campaign had ended started a new one, ours started a new one at XBT, and
// so on for as long as the link lived (issue 17).
func TestXBTElectionSettles(t *testing.T) {
	for _, n := range []int{1, 2} {
		// With our update interval below XBT's hello interval XBT's hello
		// ticks (its only time to send CANDIDATURE) never come: every ACK
		// of our UPDATEs resets its one hello timer.
		for _, kupd := range []time.Duration{30 * time.Second, 90 * time.Second} {
			for _, hello := range xbtHellos {
				t.Run(fmt.Sprintf("xbts=%d/update=%v/hello=%v", n, kupd, hello), func(t *testing.T) {
					kc := DefaultConfig()
					kc.UpdateInterval = kupd
					w := newXBTWorld(t, 2, n, kc, defaultXBT(5*time.Minute, hello, 5*time.Minute))
					prevK, prevX := 0, make([]int, n)
					for m := range 18 {
						if m == 3 {
							w.restartXBT(1, 77)
						}
						w.net.runFor(10 * time.Minute)
						k, xs := w.campaigns()
						if k-prevK > 1 {
							t.Errorf("minutes %d-%d: the kadtracker started %d campaigns", 10*m, 10*m+10, k-prevK)
						}
						for i, x := range xs {
							if x-prevX[i] > 1 {
								t.Errorf("minutes %d-%d: XBT %d started %d campaigns", 10*m, 10*m+10, i+1, x-prevX[i])
							}
						}
						prevK = k
						copy(prevX, xs)
					}
					self := trackerAddr(0).String()
					for _, x := range w.xbts {
						if l := x.leaderOf(testIH); l != self {
							t.Errorf("XBT %v routes through %q, not the kadtracker; %s", x.addr, l, w.leaders())
						}
					}
				})
			}
		}
	}
}

// After the only neighbour's link drops, the swarms page shows no leader
// for a swarm nobody shares (it showed "self" with 0 trackers).
func TestSwarmsNoLeaderWithoutMembers(t *testing.T) {
	kc := DefaultConfig()
	w := newXBTWorld(t, 3, 1, kc, defaultXBT(5*time.Minute, 10*time.Second, 5*time.Minute))
	w.net.runFor(5 * time.Minute)
	st := w.kad.core.Swarms()
	if len(st) != 1 || st[0].Trackers != 1 || st[0].InternalLeader != "self" {
		t.Fatalf("with the XBT linked: %+v", st)
	}
	w.all[1].alive = false
	w.net.runFor(kc.PlainDisconnect() + time.Minute)
	if l := w.kad.core.Links()[0].State; l == "connected" {
		t.Fatalf("link still %s", l)
	}
	st = w.kad.core.Swarms()
	if len(st) != 1 || st[0].Trackers != 0 || st[0].InternalLeader != "" {
		t.Fatalf("after the link dropped: %+v", st)
	}
}

// An XBT that updates us less often than we keep peers even for a slow
// link (maxPlainTTL; here every 61 min, a setting no one would choose, or
// a neighbour that keeps quiet on purpose): its peers expire here between
// its updates, but we never tell it they are dead, so its own clients stay
// in its answers. Before, the NEG made XBT drop them until their next
// announce. The control: they do expire here (the lifetime a slow link
// earns is capped).
func TestXBTNoNEGForItsOwnPeers(t *testing.T) {
	kc := DefaultConfig()
	w := newXBTWorld(t, 4, 1, kc, defaultXBT(30*time.Minute, 10*time.Second, 61*time.Minute))
	if _, ok := w.net.runUntil(10*time.Minute, time.Second, w.complete); !ok {
		t.Fatal("no convergence")
	}
	_, by := w.watch(4 * time.Hour)
	k, x := by[w.kad.addr], by[w.xbts[0].addr]
	if k.d == 0 {
		t.Errorf("the XBT's peers never expired here: a slow link's lifetime is not capped at %v", maxPlainTTL)
	}
	if x.d > 0 {
		t.Errorf("the XBT answered without %v for %v from %v", x.peer, x.d, x.at.Sub(simEpoch))
	}
	t.Logf("the kadtracker lacked the XBT's %v for %v from %v (its updates come every 61 min, lifetime cap %v)", k.peer, k.d, k.at.Sub(simEpoch), maxPlainTTL)
}

// An XBT updating less often than PeerTTL (every 10 min; XBT's default
// 300 s equals our PeerTTL) keeps its peers here once we have seen its
// period: a report from a slow link lives twice that period.
func TestXBTSlowUpdatesKeepPeers(t *testing.T) {
	kc := DefaultConfig()
	w := newXBTWorld(t, 5, 1, kc, defaultXBT(30*time.Minute, 10*time.Second, 10*time.Minute))
	w.net.runFor(25 * time.Minute) // two of its updates: its period is known
	if !w.complete() {
		t.Fatal("no convergence")
	}
	if g, _ := w.watch(3 * time.Hour); g.d > 0 {
		t.Errorf("%v answered without %v for %v from %v", g.tracker, g.peer, g.d, g.at.Sub(simEpoch))
	}
}

// A neighbour without the extensions that sends a CANDIDATURE every 15 s
// (XBT's echo, or an attacker), acknowledging ours, starts no campaign here
// and draws at most one CANDIDATURE of ours for each of its own. The
// control: the same over a link with the extensions, each with a new
// epoch, starts a campaign each time, as a ranked neighbour may.
func TestCandidatureFlood(t *testing.T) {
	for _, plain := range []bool{true, false} {
		t.Run(fmt.Sprintf("plain=%v", plain), func(t *testing.T) {
			net, a, b := pair(t, 31, 0, func(i int, c *Config) { c.NoExtensions = plain && i == 1 })
			a.core.SetOwn(net.now, testIH, clientPeers(0, 2))
			b.core.SetOwn(net.now, testIH, clientPeers(1, 2))
			net.collect(a)
			net.collect(b)
			net.runFor(time.Minute)
			if l := a.core.Links()[0]; l.State != "connected" || l.Extended == plain {
				t.Fatalf("link %+v", l)
			}
			b.alive = false // we play b
			before := a.core.Stats().Elections
			md := wire.Extended
			if plain {
				md = wire.Plain
			}
			cid := a.core.links[0].cid
			hdr := func(tx uint32) wire.Header { return wire.Header{ConnID: cid, TxID: tx, Port: b.addr.Port()} }
			cands := 0
			for i := range 100 {
				m := wire.Candidature{Header: hdr(uint32(1000 + i)), Mandates: 5}
				if !plain {
					m.HasRank, m.Rank, m.Epoch = true, 42, uint32(1000+i)
				}
				if err := a.core.Step(net.now, b.addr, wire.AppendCandidature(nil, m)); err != nil {
					t.Fatal(err)
				}
				for _, d := range a.core.Ready() {
					if m, err := wire.Parse(d.Data, md); err == nil {
						if c, ok := m.(wire.Candidature); ok && !c.Ack {
							cands++
							a.core.Step(net.now, b.addr, wire.AppendCandidature(nil, wire.Candidature{Header: hdr(c.TxID), Ack: true}))
						}
					}
				}
				// XBT's next CANDIDATURE comes a hello tick later: past
				// the straggler window of our hello interval.
				net.now = net.now.Add(15 * time.Second)
				a.core.Tick(net.now)
				a.core.Ready()
			}
			started := a.core.Stats().Elections - before
			switch {
			case plain && (started != 0 || cands > 100):
				t.Errorf("100 plain CANDIDATUREs started %d campaigns and drew %d of ours", started, cands)
			case !plain && started != 100:
				t.Errorf("control: 100 ranked CANDIDATUREs with new epochs started %d campaigns", started)
			}
			t.Logf("plain=%v: 100 CANDIDATUREs started %d campaigns, drew %d CANDIDATUREs", plain, started, cands)
		})
	}
}
