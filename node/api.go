package node

import (
	"net/netip"
	"time"

	"github.com/kadtracker/kadtracker/records"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// AnnounceResult says where an announce went.
type AnnounceResult struct {
	StoredOn int // nodes that accepted the record (this node included when it is among the closest)
	Targets  int // nodes it was offered to: min(m, known DHT servers)
	// Early: the announce returned before its walk ended, the rest of the
	// m closest still to get the record (announce_early.go).
	Early bool
}

// Peer is a BitTorrent client found for a swarm.
type Peer struct {
	Endpoint  netip.AddrPort
	Seed      bool
	Announcer peer.ID
	Expires   time.Time
	// Bridged marks an endpoint a bridged record names explicitly (a peer
	// the announcer learned from a classic tracker or serves as one),
	// rather than the announcer's own client.
	Bridged bool
	// Vouchers is how many storing nodes returned the announcer's record
	// (this node's own store among them), or for a bridged endpoint how
	// many bridges at distinct addresses named it.
	Vouchers int
	// RTT is the round trip this node predicts to the peer from the
	// coordinate its record carries; 0 when unknown (see locality.go), and
	// for every peer outside the majority-vouched set, which locality never
	// ranks.
	RTT time.Duration
}

// LookupStats describe one lookup.
type LookupStats struct {
	Hops     int           // referral depth of the Kademlia walk
	Queried  int           // DHT nodes queried by the walk
	Asked    int           // storing nodes asked with GET
	Answered int           // storing nodes that answered
	Duration time.Duration // whole lookup, walk and GETs
	// Early: the lookup answered before the walk ended (lookup_early.go).
	Early bool

	// Unvouched counts records only one storing node returned (served, if
	// at all, in the minority share, ranked last); Unsigned, records of
	// version 1 (no signed address) not served. See vouch.go.
	Unvouched, Unsigned int
}

// LookupResult is what Lookup found.
type LookupResult struct {
	Peers []Peer
	// Seeds and Leechers count the announcers' records the lookup verified
	// and would serve (not only the want it returns): a lower bound of the
	// swarm when storing nodes hold more than they were asked for.
	Seeds, Leechers int
	Stats           LookupStats
}

// Stats is a snapshot of the node for the local API.
type Stats struct {
	PeerID           peer.ID
	Addrs            []ma.Multiaddr // full, with /p2p/ID
	RoutingTableSize int
	RecordsStored    int // entries in the store (expired not yet swept included)
	KeysStored       int
	Announced        int // keys this node keeps republishing
	Replication      int
	DHTMode          string
	Started          time.Time
	Connections      int   // open libp2p connections
	Evicted          int64 // records the store evicted since start
	// RecordsLost counts the records found missing at open against the
	// store's count checkpoint (damage pebble did not report).
	RecordsLost int
	// StoreMovedAside is where StoreRecovery moved a damaged store at
	// start; empty when it did not.
	StoreMovedAside string
	// Counters since start.
	PutsReceived, PutsRejected, GetsReceived int64
	Announces, Lookups, Republishes          int64
	// PutsRejectedBy counts rejected PUTs by reason (the Reject* names);
	// Refused counts requests and routing-table entries turned away by the
	// limits (the Refused* names). Every name is present.
	PutsRejectedBy map[string]int64
	Refused        map[string]int64

	Network string
	// Reachability is AutoNAT's verdict: public, private or unknown.
	Reachability string
	// PublicAddrs are the addresses others on the Internet may dial,
	// without /p2p/.
	PublicAddrs []ma.Multiaddr
	PortMapping PortMappingStats
	Rendezvous  RendezvousStats
	Publish     PublishStats
}

// PublishStats describe the republish scheduler.
type PublishStats struct {
	// Keys this node keeps published: announced, bridged, or both.
	Keys int
	// CapacityKeys is about how many keys the scheduler can keep alive at
	// the republish interval, from its measured costs; 0 until measured.
	CapacityKeys int
	// LapsedTotal counts records that expired on the storing nodes before
	// this node published them again, since start.
	LapsedTotal int64
	// What publishing sent since start: DHT walks and the queries they
	// made, PUT requests and the bytes of their envelopes.
	Walks, WalkQueries, PutsSent, PutBytes int64
}

// RoutingPeer is one routing table entry.
type RoutingPeer struct {
	ID    peer.ID
	Addrs []ma.Multiaddr
	// CPL is the common prefix length with this node's ID: the bucket.
	CPL       int
	Connected bool
}

// Announcement is a key this node keeps published for a local client.
type Announcement struct {
	Key  records.Key
	Port uint16
	Seed bool
}
