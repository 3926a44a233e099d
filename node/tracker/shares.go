package tracker

import (
	"net/netip"
	"time"
)

// Per-address shares keep one address from locking others out of a front
// that serves many hosts: of a swarm's client slots (SwarmClientsPerAddr),
// of the swarms kept (MinSwarmsPerAddr) and of new swarms per interval
// (NewSwarmsPerAddr). An address is an IPv4 address or an IPv6 /64, the
// least a host on IPv6 gets.

// addrOf is the address a client's IP counts against.
func addrOf(ip netip.Addr) netip.Prefix {
	ip = ip.Unmap().WithZone("")
	if ip.Is4() {
		return netip.PrefixFrom(ip, 32)
	}
	p, _ := ip.Prefix(64)
	return p
}

// maxRateAddrs bounds the new-swarm rate table; addresses beyond it share
// one entry (overflowAddr), so an IPv6 attacker cycling through /64s gets
// one share between all of them, not one each.
const maxRateAddrs = 1 << 16

var overflowAddr = netip.Prefix{}

// allowNewSwarm takes one of addr's new-swarm shares if it has one left: a
// GCRA with a burst of NewSwarmsPerAddr, refilled evenly over
// NewSwarmInterval. t.mu is held.
func (t *Tracker) allowNewSwarm(addr netip.Prefix, now time.Time) bool {
	n := t.cfg.NewSwarmsPerAddr
	if n <= 0 {
		return true
	}
	if _, ok := t.newSwarms[addr]; !ok && len(t.newSwarms) >= maxRateAddrs {
		addr = overflowAddr
	}
	every := t.cfg.NewSwarmInterval / time.Duration(n)
	tat := t.newSwarms[addr] // theoretical arrival time of the next one
	if tat.Before(now) {
		tat = now
	}
	if tat.Sub(now) > t.cfg.NewSwarmInterval-every {
		return false
	}
	t.newSwarms[addr] = tat.Add(every)
	return true
}

// forgetRates drops the rate entries of addresses whose share is whole
// again: they hold nothing an absent entry does not. t.mu is held.
func (t *Tracker) forgetRates(now time.Time) {
	for a, tat := range t.newSwarms {
		if !tat.After(now) {
			delete(t.newSwarms, a)
		}
	}
}

// addrClients counts the clients of s from addr.
func (s *swarm) addrClients(addr netip.Prefix) int {
	n := 0
	for i := range s.clients {
		if addrOf(s.clients[i].ep.Addr()) == addr {
			n++
		}
	}
	return n
}

// addClient adds a client to s and counts the swarm as held by its address
// when it is the address's first client there. t.mu is held.
func (t *Tracker) addClient(s *swarm, c client) {
	addr := addrOf(c.ep.Addr())
	if s.addrClients(addr) == 0 {
		t.held[addr]++
	}
	s.clients = append(s.clients, c)
}

// dropClient removes the i-th client of s, and the swarm from its
// address's holdings when it was the address's last client there. t.mu is
// held.
func (t *Tracker) dropClient(s *swarm, i int) {
	addr := addrOf(s.clients[i].ep.Addr())
	s.drop(i)
	if s.addrClients(addr) == 0 {
		if t.held[addr]--; t.held[addr] <= 0 {
			delete(t.held, addr)
		}
	}
}

// takeShare makes room for a new swarm of addr in a full cache, when addr
// holds fewer than MinSwarmsPerAddr swarms: it takes the least recently
// used swarm whose clients are all of the address holding the most, if
// that address holds more than MinSwarmsPerAddr. The victim's clients are
// dropped and it is retired: a client of that address announcing it again
// is a new swarm, admitted by the same rules. t.mu is held.
func (t *Tracker) takeShare(addr netip.Prefix, now time.Time) bool {
	floor := t.cfg.MinSwarmsPerAddr
	if floor <= 0 || t.held[addr] >= floor {
		return false
	}
	var top netip.Prefix
	most := 0
	for a, n := range t.held {
		if n > most {
			top, most = a, n
		}
	}
	if most <= floor || top == addr {
		return false
	}
	for e := t.lru.Back(); e != nil; e = e.Prev() {
		s := e.Value.(*swarm)
		if len(s.clients) == 0 || s.addrClients(top) != len(s.clients) {
			continue
		}
		for i := len(s.clients) - 1; i >= 0; i-- {
			t.dropClient(s, i)
		}
		t.stats.sharesTaken.Add(1)
		t.log.Debug("swarm taken for an address under its share", "infohash", s.key, "from", top, "for", addr)
		t.retire(s, now)
		return true
	}
	return false
}
