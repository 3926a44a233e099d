package tracker

import (
	"sync/atomic"
)

type counters struct {
	announces, scrapes, badRequests, refused   atomic.Uint64
	lookups, lookupErrors, nodeErrors, lapsed  atomic.Uint64
	published, withdrawn                       atomic.Uint64
	udpConnects, udpBadConnIDs, udpIgnored     atomic.Uint64
	deferred, listenerErrors                   atomic.Uint64
	refusedClients, refusedNewSwarms           atomic.Uint64
	sharesTaken, httpConnsRefused, httpIdleCut atomic.Uint64
	// Announces answered, by front and outcome.
	httpOK, httpFailed, udpOK, udpFailed atomic.Uint64
}

// Stats is a snapshot of the front.
type Stats struct {
	Swarms    int // infohashes kept (cache entries and announced swarms)
	Clients   int // local clients announcing, all swarms
	Published int // swarms the node publishes for them
	Leaving   int // swarms out of the cache whose withdraw is still to do

	Announces     uint64 // announces handled, HTTP and UDP
	Scrapes       uint64
	BadRequests   uint64 // requests answered with a failure or error packet
	Refused       uint64 // new infohashes refused because the cache was full
	Lookups       uint64
	LookupErrors  uint64
	NodeErrors    uint64 // failed Announce and Withdraw calls
	Lapsed        uint64 // clients dropped after ClientTimeout of silence
	UDPConnects   uint64
	UDPBadConnIDs uint64 // announces and scrapes with a forged or expired connection ID
	UDPIgnored    uint64 // packets too short to answer
	Deferred      uint64 // node calls put off because NodeConcurrency were running
	// ListenerErrors counts errors Config.Listeners returned from Announce.
	ListenerErrors uint64
	// Per-address shares (Config.SwarmClientsPerAddr and the rest):
	// RefusedClients are announces refused because the swarm's client
	// slots, or the requester's address's share of them, were taken;
	// RefusedNewSwarms, new swarms refused because the address used its
	// NewSwarmsPerAddr; SharesTaken, swarms taken from the address holding
	// the most for one under MinSwarmsPerAddr; HTTPConnsRefused,
	// connections closed at once because their address held
	// HTTPConnsPerAddr; HTTPIdleCut, idle keep-alive connections closed to
	// make room or beyond HTTPIdleConnsPerAddr.
	RefusedClients, RefusedNewSwarms, SharesTaken uint64
	HTTPConnsRefused, HTTPIdleCut                 uint64
	// Announces answered with peers, and with a failure (malformed,
	// refused, shutting down), by front.
	HTTPAnnounces, HTTPAnnounceFailures uint64
	UDPAnnounces, UDPAnnounceFailures   uint64
}

// Stats returns a snapshot.
func (t *Tracker) Stats() Stats {
	t.mu.Lock()
	st := Stats{Swarms: len(t.swarms), Leaving: len(t.leaving)}
	for _, s := range t.swarms {
		st.Clients += len(s.clients)
		if s.have.on {
			st.Published++
		}
	}
	for _, s := range t.leaving {
		if s.have.on {
			st.Published++
		}
	}
	t.mu.Unlock()
	c := &t.stats
	st.Announces, st.Scrapes, st.BadRequests, st.Refused = c.announces.Load(), c.scrapes.Load(), c.badRequests.Load(), c.refused.Load()
	st.Lookups, st.LookupErrors, st.NodeErrors, st.Lapsed = c.lookups.Load(), c.lookupErrors.Load(), c.nodeErrors.Load(), c.lapsed.Load()
	st.UDPConnects, st.UDPBadConnIDs, st.UDPIgnored = c.udpConnects.Load(), c.udpBadConnIDs.Load(), c.udpIgnored.Load()
	st.Deferred, st.ListenerErrors = c.deferred.Load(), c.listenerErrors.Load()
	st.RefusedClients, st.RefusedNewSwarms, st.SharesTaken = c.refusedClients.Load(), c.refusedNewSwarms.Load(), c.sharesTaken.Load()
	st.HTTPConnsRefused, st.HTTPIdleCut = c.httpConnsRefused.Load(), c.httpIdleCut.Load()
	st.HTTPAnnounces, st.HTTPAnnounceFailures = c.httpOK.Load(), c.httpFailed.Load()
	st.UDPAnnounces, st.UDPAnnounceFailures = c.udpOK.Load(), c.udpFailed.Load()
	return st
}
