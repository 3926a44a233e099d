package localapi

import (
	"context"
	"time"

	"github.com/kadtracker/kadtracker/records"
)

// Backend is what the local API needs from the node. The node package does not
// implement it directly: node/daemon adapts a *node.Node, and tests use a
// small fake. Client has the same method set, so it is a Backend too.
type Backend interface {
	Status(ctx context.Context) (Status, error)
	Announce(ctx context.Context, key records.Key, port uint16, seed bool) (AnnounceResult, error)
	Withdraw(ctx context.Context, key records.Key) error
	Peers(ctx context.Context, key records.Key, want int) (PeersResult, error)
	Records(ctx context.Context) ([]Record, error)
	Routing(ctx context.Context) ([]RoutingPeer, error)
}

// The JSON field names below are a contract (docs/design.md, "The local API"):
// fields may be added, never renamed. Slices are encoded as [] when empty.

// Status is the answer to GET /v1/status.
type Status struct {
	PeerID           string    `json:"peer_id"`
	Addrs            []string  `json:"addrs"` // full multiaddrs, ending in /p2p/<peer ID>
	RoutingTableSize int       `json:"routing_table_size"`
	RecordsStored    int       `json:"records_stored"`
	KeysStored       int       `json:"keys_stored"`
	Announced        int       `json:"announced"` // infohashes this node keeps republishing
	Replication      int       `json:"replication"`
	DHTMode          string    `json:"dht_mode"`
	Started          time.Time `json:"started"` // RFC 3339
	// Tracker URLs for local BitTorrent clients; empty when that front is off.
	TrackerHTTP string `json:"tracker_http,omitempty"`
	TrackerUDP  string `json:"tracker_udp,omitempty"`
	// The fields below are absent when the daemon runs no DHT node
	// (--dht=false), and public_addrs also while it knows none.
	//
	// Network is the kadtracker network the node joined.
	Network string `json:"network,omitempty"`
	// Reachability is AutoNAT's verdict: public, private or unknown.
	// Public nodes serve the DHT; private ones are DHT clients.
	Reachability string `json:"reachability,omitempty"`
	// PublicAddrs are the addresses others on the Internet may dial.
	PublicAddrs []string    `json:"public_addrs,omitempty"`
	PortMapping PortMapping `json:"port_mapping,omitzero"`
	Rendezvous  Rendezvous  `json:"rendezvous,omitzero"`
	// RecordsLost counts the records the store's checkpoint expected at
	// open but did not find (a damaged store); StoreMovedAside is where a
	// damaged store was moved by --store-recovery. Omitted when zero.
	RecordsLost     int    `json:"records_lost,omitempty"`
	StoreMovedAside string `json:"store_moved_aside,omitempty"`
	// Publish is the republish scheduler; absent without a DHT node.
	Publish *Publish `json:"publish,omitempty"`
}

// Publish is the republish scheduler's state.
type Publish struct {
	Keys int `json:"keys"` // kept published: announced and bridged
	// CapacityKeys is about how many keys it can keep alive at the
	// republish interval, from its measured costs; 0 until measured.
	CapacityKeys int `json:"capacity_keys"`
	// LapsedTotal counts records that expired on the storing nodes before
	// they were republished, since start.
	LapsedTotal int64 `json:"lapsed_total"`
}

// PortMapping is the state of the UPnP / NAT-PMP port mapping.
type PortMapping struct {
	Enabled bool     `json:"enabled"`
	Gateway bool     `json:"gateway"` // a gateway answered
	Mapped  []string `json:"mapped"`  // external addresses mapped to our listeners
}

// Rendezvous is the state of the search for other nodes through the
// rendezvous DHT.
type Rendezvous struct {
	Enabled   bool   `json:"enabled"`
	Serving   bool   `json:"serving"` // this node serves the rendezvous DHT
	State     string `json:"state"`   // off, starting, searching, resting
	Namespace string `json:"namespace,omitempty"`
	DHTPeers  int    `json:"dht_peers"` // rendezvous DHT routing table size
	Rounds    int64  `json:"rounds"`
	// PeersFound counts the providers rounds returned, PeersConnected those
	// dialled successfully.
	PeersFound     int64     `json:"peers_found"`
	PeersConnected int64     `json:"peers_connected"`
	LastSuccess    time.Time `json:"last_success,omitzero"`
	LastAdvertised time.Time `json:"last_advertised,omitzero"`
	LastError      string    `json:"last_error,omitempty"`
}

// AnnounceRequest is the body of POST /v1/announce.
type AnnounceRequest struct {
	Infohash string `json:"infohash"` // 40 or 64 hex characters, or a torrent-info CID
	Port     int    `json:"port"`     // 1..65535
	Seed     bool   `json:"seed"`
}

// AnnounceResult is the answer to POST /v1/announce.
type AnnounceResult struct {
	StoredOn int `json:"stored_on"` // nodes that accepted the record
	Targets  int `json:"targets"`   // nodes it was offered to
}

// WithdrawRequest is the body of POST /v1/withdraw.
type WithdrawRequest struct {
	Infohash string `json:"infohash"`
}

// WithdrawResult is the answer to POST /v1/withdraw.
type WithdrawResult struct {
	Infohash records.Key `json:"infohash"` // hex, also when the request gave a CID
}

// Peer is a BitTorrent client found for a swarm.
type Peer struct {
	IP        string `json:"ip"`
	Port      uint16 `json:"port"`
	Seed      bool   `json:"seed"`
	Announcer string `json:"announcer"` // peer ID of the daemon that announced it
	// Source is where the peer came from: "dht" (a record its own daemon
	// published), "bridged" (a record a daemon published for peers it
	// learned from a classic tracker or serves as one), "tracker" (this
	// daemon's bridge to classic trackers) or "tsup" (the TSUP overlay).
	Source string `json:"source,omitempty"`
	// Tracker is the classic tracker's announce URL, for source "tracker".
	Tracker string `json:"tracker,omitempty"`
}

// LookupStats describe one lookup.
type LookupStats struct {
	Hops       int     `json:"hops"`
	Queried    int     `json:"queried"`  // DHT nodes queried by the walk
	Asked      int     `json:"asked"`    // storing nodes asked for records
	Answered   int     `json:"answered"` // storing nodes that answered
	DurationMS float64 `json:"duration_ms"`
}

// PeersResult is the answer to GET /v1/peers.
type PeersResult struct {
	Peers    []Peer      `json:"peers"`
	Seeds    int         `json:"seeds"`
	Leechers int         `json:"leechers"`
	Stats    LookupStats `json:"stats"`
}

// Record is a peer record this node stores for others.
type Record struct {
	Infohash  records.Key `json:"infohash"` // hex
	IP        string      `json:"ip"`
	Port      uint16      `json:"port"`
	Seed      bool        `json:"seed"`
	Announcer string      `json:"announcer"`
	Expires   time.Time   `json:"expires"` // RFC 3339
}

// RecordsResult is the answer to GET /v1/records: one page of the
// records, ordered by infohash and announcer. Next, when set, is the
// after= cursor of the following page.
type RecordsResult struct {
	Records []Record `json:"records"`
	Next    string   `json:"next,omitempty"`
}

// RoutingPeer is one routing table entry.
type RoutingPeer struct {
	PeerID    string   `json:"peer_id"`
	Addrs     []string `json:"addrs"`
	CPL       int      `json:"cpl"` // common prefix length with this node's ID
	Connected bool     `json:"connected"`
}

// RoutingResult is the answer to GET /v1/routing.
type RoutingResult struct {
	Peers []RoutingPeer `json:"peers"`
}

// TSUPBackend is the view of the TSUP overlay (trackers unifying their
// swarms), when the daemon runs one.
type TSUPBackend interface {
	TSUPLinks(ctx context.Context) ([]TSUPLink, error)
	TSUPSwarms(ctx context.Context) ([]TSUPSwarm, error)
}

// TSUPLink is one TSUP link, as the paper's trackers page shows it.
type TSUPLink struct {
	Addr     string    `json:"addr"`
	Name     string    `json:"name,omitempty"`
	External bool      `json:"external"`
	State    string    `json:"state"` // connected, unifying, syn-received, pending, disconnected
	Extended bool      `json:"extended"`
	MAC      bool      `json:"mac"`
	Border   bool      `json:"border"`
	LastRecv time.Time `json:"last_recv"`
	LastSent time.Time `json:"last_sent"`
	Mandates int       `json:"mandates"` // -1: none advertised
	Swarms   int       `json:"swarms"`
	Down     string    `json:"down,omitempty"`
}

// TSUPSwarm is one swarm of the overlay, as the paper's swarms page shows it.
type TSUPSwarm struct {
	Infohash       string `json:"infohash"` // the 20-byte tracker infohash, hex
	Local          bool   `json:"local"`
	Trackers       int    `json:"trackers"`
	InternalLeader string `json:"internal_leader,omitempty"`
	ExternalLeader string `json:"external_leader,omitempty"`
	Own            int    `json:"own"`
	Internal       int    `json:"internal"`
	External       int    `json:"external"`
}

// TSUPLinksResult is the answer to GET /v1/tsup/links.
type TSUPLinksResult struct {
	Links []TSUPLink `json:"links"`
}

// TSUPSwarmsResult is the answer to GET /v1/tsup/swarms.
type TSUPSwarmsResult struct {
	Swarms []TSUPSwarm `json:"swarms"`
}

// BridgeBackend is the view of the bridge to classic trackers, when the
// daemon runs one.
type BridgeBackend interface {
	Bridge(ctx context.Context) (BridgeState, error)
}

// BridgeState is the answer to GET /v1/bridge.
type BridgeState struct {
	Trackers []string      `json:"trackers"` // announce URLs
	Swarms   []BridgeSwarm `json:"swarms"`
	// Published counts the swarms whose tracker peers this daemon keeps
	// published in the DHT as bridged records.
	Published int `json:"published"`
}

// BridgeSwarm is one infohash a local client announces, as bridged.
type BridgeSwarm struct {
	Infohash string           `json:"infohash"` // the 20-byte tracker infohash, hex
	Port     uint16           `json:"port"`     // the client's port, announced for it
	Seed     bool             `json:"seed"`
	Stopping bool             `json:"stopping,omitempty"` // the client stopped; stopped is going out
	Trackers []BridgeAnnounce `json:"trackers"`
}

// BridgeAnnounce is one swarm on one classic tracker.
type BridgeAnnounce struct {
	URL          string    `json:"url"`
	LastAnnounce time.Time `json:"last_announce,omitzero"`
	LastSuccess  time.Time `json:"last_success,omitzero"`
	NextAnnounce time.Time `json:"next_announce,omitzero"` // absent while one runs
	IntervalS    int       `json:"interval_s"`             // the tracker's interval
	MinIntervalS int       `json:"min_interval_s,omitempty"`
	Seeders      int       `json:"seeders"`
	Leechers     int       `json:"leechers"`
	Peers        int       `json:"peers"` // peers kept from its last answer
	Fails        int       `json:"fails"` // failures in a row
	Error        string    `json:"error,omitempty"`
	Failure      bool      `json:"failure,omitempty"` // error is the tracker's own failure reason
	Warning      string    `json:"warning,omitempty"`
}

// errorBody is every non-200 answer.
type errorBody struct {
	Error string `json:"error"`
}

// nonNil makes JSON encode an empty slice as [] rather than null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
