package tracker

import (
	"container/list"
	"net/netip"
	"time"

	"github.com/kadtracker/kadtracker/records"
)

// swarm is one infohash: the local clients announcing it, what the node
// publishes for it, and the cached lookup.
type swarm struct {
	infohash [20]byte
	key      records.Key
	elem     *list.Element
	lastUsed time.Time

	clients []client       // few: a swarm rarely has more than one local client
	primary netip.AddrPort // the client whose port the node publishes
	want    pub            // what the node should publish
	have    pub            // what it publishes (last call that succeeded)
	told    pub            // what the listeners were last told
	busy    bool           // an Announce or Withdraw is running
	retryAt time.Time
	fails   int

	peers      []Peer
	seeds      int
	leechers   int
	fetched    time.Time     // end of the last successful lookup; zero: none yet
	lastLookup time.Time     // start of the last lookup
	lookupErr  bool          // the last lookup failed
	lookupDone chan struct{} // closed when the running lookup ends; nil: none
}

type client struct {
	ep       netip.AddrPort // source IP and announced port
	lastSeen time.Time
	seed     bool
}

// maxClientsPerSwarm caps the local clients of one swarm: a daemon serves
// the clients of one host, and every answer scans them.
const maxClientsPerSwarm = 64

var (
	errTooManyClients = clientError("too many clients announce this torrent through this daemon")
	errAddrClients    = clientError("too many clients from your address announce this torrent")
)

func (s *swarm) find(ep netip.AddrPort) int {
	for i := range s.clients {
		if s.clients[i].ep == ep {
			return i
		}
	}
	return -1
}

func (s *swarm) drop(i int) {
	last := len(s.clients) - 1
	s.clients[i] = s.clients[last]
	s.clients = s.clients[:last]
}

// pub is a publication state: on with (port, seed), or withdrawn.
type pub struct {
	on   bool
	port uint16
	seed bool
}

func (s *swarm) idle() bool {
	return len(s.clients) == 0 && !s.busy && !s.have.on && !s.told.on
}

// self reports whether ep is the requester itself: its endpoint as seen or
// claimed; on loopback any loopback address with its port (a client bound
// to 127.0.0.1 may announce from ::1 and the other way round); and any
// record this daemon published with its port.
func (req *request) self(ep netip.AddrPort, local bool) bool {
	if ep.Port() != req.client.Port() {
		return false
	}
	a := ep.Addr()
	return local || a == req.client.Addr() || a == req.claimed ||
		(a.IsLoopback() && req.client.Addr().IsLoopback())
}

func (req *request) fits(a netip.Addr) bool {
	return !(req.only4 && !a.Is4()) && !(req.only6 && !a.Is6())
}

// candidates calls f for every peer the requester may be given: other local
// clients, then the cached DHT peers, never itself, a seed never to a seed.
// It stops when f returns false. t.mu is held.
func (s *swarm) candidates(req *request, f func(ep netip.AddrPort) bool) {
	for i := range s.clients {
		c := &s.clients[i]
		if req.self(c.ep, false) || (req.seed && c.seed) || !req.fits(c.ep.Addr()) {
			continue
		}
		if !f(c.ep) {
			return
		}
	}
	for i := range s.peers {
		p := &s.peers[i]
		if !s.offerable(req, p) {
			continue
		}
		if !f(p.Endpoint) {
			return
		}
	}
}

// offerable reports whether the peer p, found by the node, may be handed to
// the client behind req.
func (s *swarm) offerable(req *request, p *Peer) bool {
	return !s.isClient(p) && !req.self(p.Endpoint, p.Local) && !(req.seed && p.Seed) && req.fits(p.Endpoint.Addr())
}

// isClient reports whether the DHT peer p is one of the swarm's local
// clients, which are offered and counted as such: a record this daemon
// published on a client's port, or the client's own endpoint (any loopback
// address for a client on loopback).
func (s *swarm) isClient(p *Peer) bool {
	for i := range s.clients {
		ep := s.clients[i].ep
		if ep.Port() != p.Endpoint.Port() {
			continue
		}
		a := p.Endpoint.Addr()
		if p.Local || a == ep.Addr() || (a.IsLoopback() && ep.Addr().IsLoopback()) {
			return true
		}
	}
	return false
}

// counts are the swarm's seeds and leechers: the larger of what the storing
// nodes report and what this daemon sees (its clients and the peers found).
func (s *swarm) counts() (seeds, leechers int) {
	for i := range s.clients {
		if s.clients[i].seed {
			seeds++
		} else {
			leechers++
		}
	}
	for i := range s.peers {
		p := &s.peers[i]
		if s.isClient(p) {
			continue
		}
		if p.Seed {
			seeds++
		} else {
			leechers++
		}
	}
	return max(seeds, s.seeds), max(leechers, s.leechers)
}
