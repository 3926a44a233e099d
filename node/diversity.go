package node

import (
	"net"
	"net/netip"
	"sync"

	"github.com/libp2p/go-libp2p-kbucket/peerdiversity"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// rtDiversity is the routing table's peer diversity filter: at most perCpl
// peers of one IP group in a bucket and perTable in the table, so identities
// made by the thousand on one address take a few entries, not the table.
// The groups are kad-dht's (peerdiversity.IPGroupKey: an IPv4 /16, an IPv6
// address's AS). Unlike kad-dht's own filter it lets through peers whose
// connection comes from an exempt address (Config.Limits.Exempt), where
// tests, netsim and LANs put many honest nodes in one group.
type rtDiversity struct {
	n                *Node
	perCpl, perTable int

	mu      sync.Mutex
	cpl     map[int]map[peerdiversity.PeerIPGroupKey]int
	table   map[peerdiversity.PeerIPGroupKey]int
	exempts map[peerdiversity.PeerGroupInfo]struct{} // admitted without counting
}

var _ peerdiversity.PeerIPGroupFilter = (*rtDiversity)(nil)

func newRTDiversity(n *Node, perCpl, perTable int) *rtDiversity {
	return &rtDiversity{
		n:        n,
		perCpl:   perCpl,
		perTable: perTable,
		cpl:      make(map[int]map[peerdiversity.PeerIPGroupKey]int),
		table:    make(map[peerdiversity.PeerIPGroupKey]int),
		exempts:  make(map[peerdiversity.PeerGroupInfo]struct{}),
	}
}

// exempt reports whether g's address group comes from a connection of the
// peer on an exempt address.
func (r *rtDiversity) exempt(g peerdiversity.PeerGroupInfo) bool {
	for _, c := range r.n.host.Network().ConnsToPeer(g.Id) {
		ip, err := addrIP(c.RemoteMultiaddr())
		if err == nil && r.n.cfg.Limits.Exempts(ip) && peerdiversity.IPGroupKey(net.IP(ip.AsSlice())) == g.IPGroupKey {
			return true
		}
	}
	return false
}

// Allow implements peerdiversity.PeerIPGroupFilter.
func (r *rtDiversity) Allow(g peerdiversity.PeerGroupInfo) bool {
	if r.exempt(g) {
		return true
	}
	r.mu.Lock()
	ok := r.table[g.IPGroupKey] < r.perTable && r.cpl[g.Cpl][g.IPGroupKey] < r.perCpl
	r.mu.Unlock()
	if !ok {
		r.n.refused.add(RefusedRoutingIP)
		r.n.log.Debug("refused", "reason", RefusedRoutingIP, "peer", g.Id, "group", g.IPGroupKey, "cpl", g.Cpl)
	}
	return ok
}

// Increment implements peerdiversity.PeerIPGroupFilter.
func (r *rtDiversity) Increment(g peerdiversity.PeerGroupInfo) {
	exempt := r.exempt(g)
	r.mu.Lock()
	defer r.mu.Unlock()
	if exempt {
		r.exempts[g] = struct{}{}
		return
	}
	r.table[g.IPGroupKey]++
	if r.cpl[g.Cpl] == nil {
		r.cpl[g.Cpl] = make(map[peerdiversity.PeerIPGroupKey]int)
	}
	r.cpl[g.Cpl][g.IPGroupKey]++
}

// Decrement implements peerdiversity.PeerIPGroupFilter.
func (r *rtDiversity) Decrement(g peerdiversity.PeerGroupInfo) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.exempts[g]; ok {
		delete(r.exempts, g)
		return
	}
	if r.table[g.IPGroupKey]--; r.table[g.IPGroupKey] <= 0 {
		delete(r.table, g.IPGroupKey)
	}
	if c := r.cpl[g.Cpl]; c != nil {
		if c[g.IPGroupKey]--; c[g.IPGroupKey] <= 0 {
			delete(c, g.IPGroupKey)
		}
		if len(c) == 0 {
			delete(r.cpl, g.Cpl)
		}
	}
}

// PeerAddresses implements peerdiversity.PeerIPGroupFilter: the addresses
// the peer is connected from, not the ones it claims.
func (r *rtDiversity) PeerAddresses(p peer.ID) []ma.Multiaddr {
	cs := r.n.host.Network().ConnsToPeer(p)
	out := make([]ma.Multiaddr, 0, len(cs))
	for _, c := range cs {
		out = append(out, c.RemoteMultiaddr())
	}
	return out
}

// peerGroups returns the IP groups of p for the storing-node limit, and
// whether p is exempt: from its connections when there are any, else from
// the addresses it is known by, exempt only when all of them are (anyone
// can claim a private address).
func (n *Node) peerGroups(p peer.ID) (groups []peerdiversity.PeerIPGroupKey, exempt bool) {
	var ips []netip.Addr
	fromConns := false
	for _, c := range n.host.Network().ConnsToPeer(p) {
		if ip, err := addrIP(c.RemoteMultiaddr()); err == nil {
			ips, fromConns = append(ips, ip), true
		}
	}
	if !fromConns {
		for _, a := range n.host.Peerstore().Addrs(p) {
			if ip, err := addrIP(a); err == nil {
				ips = append(ips, ip)
			}
		}
	}
	if len(ips) == 0 {
		return nil, false
	}
	allExempt := true
	for _, ip := range ips {
		e := n.cfg.Limits.Exempts(ip)
		if e && fromConns {
			return nil, true
		}
		allExempt = allExempt && e
		groups = append(groups, peerdiversity.IPGroupKey(net.IP(ip.AsSlice())))
	}
	if allExempt {
		return nil, true
	}
	return groups, false
}

// diverse keeps, of peers sorted by distance, those that do not put more
// than TargetsPerGroup of the first m in one IP group; the rest follow in
// order, as fallbacks. dropped is how many were moved back.
func (n *Node) diverse(peers []peer.ID) (out []peer.ID, dropped int) {
	limit := n.cfg.Protect.TargetsPerGroup
	m := n.cfg.Replication
	if limit <= 0 || len(peers) == 0 {
		return peers, 0
	}
	count := make(map[peerdiversity.PeerIPGroupKey]int)
	out = make([]peer.ID, 0, len(peers))
	var later []peer.ID
	for _, p := range peers {
		if p == n.host.ID() || len(out) >= m {
			out = append(out, p)
			continue
		}
		groups, exempt := n.peerGroups(p)
		full := false
		for _, g := range groups {
			full = full || count[g] >= limit
		}
		if full && !exempt {
			later = append(later, p)
			continue
		}
		for _, g := range groups {
			count[g]++
		}
		out = append(out, p)
	}
	return append(out, later...), len(later)
}
