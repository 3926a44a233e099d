package tracker

import (
	"context"
	"net/netip"
	"time"

	"github.com/kadtracker/kadtracker/records"
)

// Node is what the front needs from the DHT node. The daemon adapts
// *node.Node to it; tests use an in-memory fake.
type Node interface {
	// Announce publishes this daemon's client, listening on port, for key
	// and keeps republishing it until Withdraw. The front calls it once per
	// change of (port, seed), not on every client announce.
	Announce(ctx context.Context, key records.Key, port uint16, seed bool) error
	// Withdraw stops republishing key and removes the record.
	Withdraw(ctx context.Context, key records.Key) error
	// Lookup finds up to want peers of key.
	Lookup(ctx context.Context, key records.Key, want int) (Swarm, error)
}

// Swarm is the result of a lookup.
type Swarm struct {
	Peers    []Peer
	Seeds    int // seeds the storing nodes know of (node.LookupResult.Seeds)
	Leechers int // leechers the storing nodes know of
}

// Peer is a BitTorrent client found in the DHT.
type Peer struct {
	Endpoint netip.AddrPort
	Seed     bool
	// Local marks a record this daemon announced itself (node.Peer's
	// Announcer is the node's own ID): its endpoint is this host as the
	// storing node saw it, so the front never hands it to the client it
	// came from.
	Local bool
	// RTT is the round trip the node predicts to the peer (node.Peer.RTT,
	// network coordinates); 0 when unknown. See Config.Locality.
	RTT time.Duration
}

// LiveSource is a source of peers known locally and cheaply, such as the
// TSUP overlay's or the classic trackers' the bridge announces to
// (Config.Live). They are read on every answer rather than through the
// lookup cache, so they reach clients as soon as they arrive instead of
// after the cache's TTL. LivePeers must be quick and safe for concurrent
// use; the Node's Lookup need not return these peers.
type LiveSource interface {
	LivePeers(key records.Key) []Peer
}

// Listener hears what the front publishes for its local clients
// (Config.Listeners), such as the TSUP overlay and the bridge, which
// announce this host's clients elsewhere too. Each call is made before the
// matching Node call, from the goroutine that then makes it, so a listener
// must not block; calls for one key come one at a time and in order.
type Listener interface {
	// Announce: the front now publishes key for a local client listening
	// on port; called once per change of (port, seed), as Node.Announce.
	// An error is logged and counted, and the Node is called all the same.
	Announce(key records.Key, port uint16, seed bool) error
	// Withdraw: the front stopped publishing key.
	Withdraw(key records.Key)
}
