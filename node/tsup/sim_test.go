package tsup

import (
	"container/heap"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/kadtracker/kadtracker/node/tsup/wire"
)

// simNet is a simulated network of Cores on simulated time: packets are
// copied, delayed 1-5 ms, and dropped with probability loss, all from one
// seeded source, so a run is reproducible from its seed.
type simNet struct {
	tb    testing.TB
	now   time.Time
	rng   *rand.Rand
	loss  float64
	nodes []*simNode
	by    map[netip.AddrPort]*simNode
	q     packetQueue
	seq   uint64
	// Counters of packets handed to the network (before loss).
	sent      map[string]int // by kind, see packetKind
	bytes     int
	dataBySrc map[netip.AddrPort]int
	// observe, if set, sees every packet sent.
	observe func(from netip.AddrPort, d Datagram)
}

// simTracker is what the network drives: a Core, or a model of another
// implementation (xbtModel).
type simTracker interface {
	Step(now time.Time, from netip.AddrPort, b []byte) error
	Tick(now time.Time)
	NextDeadline() time.Time
	Ready() []Datagram
}

type simNode struct {
	addr     netip.AddrPort
	core     *Core      // nil for a modelled tracker
	t        simTracker // core, or the model
	alive    bool
	deadline time.Time // core.NextDeadline() after the last call into it
}

type inflight struct {
	at       time.Time
	seq      uint64
	from, to netip.AddrPort
	data     []byte
}

type packetQueue []*inflight

func (q packetQueue) Len() int { return len(q) }
func (q packetQueue) Less(i, j int) bool {
	if !q[i].at.Equal(q[j].at) {
		return q[i].at.Before(q[j].at)
	}
	return q[i].seq < q[j].seq
}
func (q packetQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *packetQueue) Push(x any)   { *q = append(*q, x.(*inflight)) }
func (q *packetQueue) Pop() any {
	old := *q
	x := old[len(old)-1]
	*q = old[:len(old)-1]
	return x
}

var simEpoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func newSimNet(tb testing.TB, seed uint64, loss float64) *simNet {
	return &simNet{
		tb: tb, now: simEpoch, rng: rand.New(rand.NewPCG(seed, seed^0x5eed)), loss: loss,
		by: make(map[netip.AddrPort]*simNode), sent: make(map[string]int), dataBySrc: make(map[netip.AddrPort]int),
	}
}

// simConfig is DefaultConfig with a seeded source.
func simConfig(seed uint64) Config {
	cfg := DefaultConfig()
	cfg.Rand = rand.NewPCG(seed, 0xc0ffee)
	return cfg
}

// add starts a tracker at addr with cfg (Port taken from addr).
func (n *simNet) add(addr netip.AddrPort, cfg Config) *simNode {
	n.tb.Helper()
	cfg.Port = addr.Port()
	c, err := NewCore(cfg, n.now)
	if err != nil {
		n.tb.Fatal(err)
	}
	return n.addTracker(addr, c, c)
}

// addTracker adds any tracker; core is nil unless t is a Core.
func (n *simNet) addTracker(addr netip.AddrPort, t simTracker, core *Core) *simNode {
	nd := &simNode{addr: addr, core: core, t: t, alive: true}
	n.nodes = append(n.nodes, nd)
	n.by[addr] = nd
	n.collect(nd)
	return nd
}

// packetKind names a packet for the counters: the action, with UPDATE
// split into data, ack, S and SA.
func packetKind(b []byte) string {
	a, _, err := wire.PeekHeader(b)
	if err != nil {
		return "bad"
	}
	if a != wire.ActionUpdate || len(b) < wire.FlagsHeaderLen {
		return a.String()
	}
	switch f := b[18] & (wire.UpdateAck | wire.UpdateSummary); f {
	case 0:
		return "UPDATE"
	case wire.UpdateAck:
		return "UPDATE-ACK"
	case wire.UpdateSummary:
		return "UPDATE-S"
	default:
		return "UPDATE-SA"
	}
}

// collect takes nd's output after any call into its core.
func (n *simNet) collect(nd *simNode) {
	nd.deadline = nd.t.NextDeadline()
	for _, d := range nd.t.Ready() {
		if len(d.Data) > wire.MaxPacket {
			n.tb.Fatalf("%v sent a %d-byte packet", nd.addr, len(d.Data))
		}
		if n.observe != nil {
			n.observe(nd.addr, d)
		}
		k := packetKind(d.Data)
		n.sent[k]++
		n.bytes += len(d.Data)
		if k == "UPDATE" {
			n.dataBySrc[nd.addr]++
		}
		if !nd.alive || n.rng.Float64() < n.loss {
			continue
		}
		n.seq++
		delay := time.Millisecond + time.Duration(n.rng.Int64N(int64(4*time.Millisecond)))
		heap.Push(&n.q, &inflight{at: n.now.Add(delay), seq: n.seq, from: nd.addr, to: d.To, data: append([]byte(nil), d.Data...)})
	}
}

// run advances simulated time to until, delivering packets and ticking.
func (n *simNet) run(until time.Time) {
	for {
		next := until
		if len(n.q) > 0 && n.q[0].at.Before(next) {
			next = n.q[0].at
		}
		for _, nd := range n.nodes {
			if nd.alive && nd.deadline.Before(next) {
				next = nd.deadline
			}
		}
		if next.Before(n.now) {
			next = n.now
		}
		n.now = next
		for len(n.q) > 0 && !n.q[0].at.After(n.now) {
			p := heap.Pop(&n.q).(*inflight)
			if nd := n.by[p.to]; nd != nil && nd.alive {
				nd.t.Step(n.now, p.from, p.data)
				n.collect(nd)
			}
		}
		for _, nd := range n.nodes {
			if nd.alive && !nd.deadline.After(n.now) {
				nd.t.Tick(n.now)
				n.collect(nd)
			}
		}
		if !n.now.Before(until) {
			return
		}
	}
}

func (n *simNet) runFor(d time.Duration) { n.run(n.now.Add(d)) }

// runUntil advances in steps of step until cond holds or limit passes; it
// returns the time taken and whether cond held.
func (n *simNet) runUntil(limit, step time.Duration, cond func() bool) (time.Duration, bool) {
	start := n.now
	for n.now.Sub(start) < limit {
		if cond() {
			return n.now.Sub(start), true
		}
		n.runFor(step)
	}
	return n.now.Sub(start), cond()
}

func (n *simNet) resetCounters() {
	clear(n.sent)
	clear(n.dataBySrc)
	n.bytes = 0
}

func trackerAddr(i int) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i + 1)}), 6969)
}

// clientPeers are tracker i's own clients: 1 seed and leechers-1 leechers.
func clientPeers(i, count int) []Peer {
	ps := make([]Peer, count)
	for j := range ps {
		ps[j] = Peer{Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(1 + i/250), byte(i % 250), byte(j + 1)}), uint16(6881+j)), Seed: j == 0}
	}
	return ps
}

// mesh starts n trackers in one internal network, every one linked to all
// others, with cfg adjusted by tweak for tracker i.
func mesh(net *simNet, n int, base Config, tweak func(i int, c *Config)) []*simNode {
	nodes := make([]*simNode, n)
	for i := range n {
		cfg := base
		cfg.Rand = rand.NewPCG(uint64(i), 0xc0ffee)
		cfg.Links = nil
		for j := range n {
			if j != i {
				cfg.Links = append(cfg.Links, Link{Addr: trackerAddr(j)})
			}
		}
		if tweak != nil {
			tweak(i, &cfg)
		}
		nodes[i] = net.add(trackerAddr(i), cfg)
	}
	return nodes
}

// knowsAll reports whether every live node in nodes sees exactly want for ih
// (peers compared by address).
func knowsAll(nodes []*simNode, ih Infohash, want map[netip.AddrPort]bool) bool {
	for _, nd := range nodes {
		if !nd.alive {
			continue
		}
		got := nd.core.Peers(ih)
		if len(got) != len(want) {
			return false
		}
		for _, p := range got {
			if !want[p.Addr] {
				return false
			}
		}
	}
	return true
}

func peerSet(lists ...[]Peer) map[netip.AddrPort]bool {
	m := make(map[netip.AddrPort]bool)
	for _, l := range lists {
		for _, p := range l {
			m[p.Addr] = true
		}
	}
	return m
}

// leaders returns, for each live node, its internal leader of ih as an
// address ("self" resolved), and whether they all agree on one.
func leaders(nodes []*simNode, ih Infohash) (map[netip.AddrPort]string, string, bool) {
	out := make(map[netip.AddrPort]string)
	var one string
	agree := true
	for _, nd := range nodes {
		if !nd.alive {
			continue
		}
		var l string
		for _, s := range nd.core.Swarms() {
			if s.Infohash == ih {
				l = s.InternalLeader
			}
		}
		if l == "self" {
			l = nd.addr.String()
		}
		out[nd.addr] = l
		if one == "" {
			one = l
		}
		if l == "" || l != one {
			agree = false
		}
	}
	return out, one, agree
}

func describe(nodes []*simNode) string {
	s := ""
	for _, nd := range nodes {
		s += fmt.Sprintf("%v alive=%v mandates=%d links=", nd.addr, nd.alive, nd.core.Mandates())
		for _, l := range nd.core.Links() {
			s += l.State[:1]
		}
		s += "\n"
	}
	return s
}
