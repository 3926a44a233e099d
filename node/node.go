// Package node is the kadtracker DHT node: a libp2p host with kad-dht for
// routing and the /kadtracker/records/1.0.0 protocol that stores signed peer
// records on the m nodes closest to an infohash.
package node

import (
	"context"

	"github.com/kadtracker/kadtracker/records"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Node is a running kadtracker DHT node. Its methods are safe for concurrent use.
type Node struct {
	cfg  Config
	host host.Host
}

// New starts a node: host (unless cfg.Host), store (unless cfg.Store),
// kad-dht, the record protocol, bootstrap and background loops. Close stops it.
func New(ctx context.Context, cfg Config) (*Node, error) { panic("not implemented") }

// ID is the node's peer ID.
func (n *Node) ID() peer.ID { return n.host.ID() }

// Host is the node's libp2p host.
func (n *Node) Host() host.Host { return n.host }

// Announce publishes this node's client (port, seed) for key on the m closest
// DHT nodes and keeps republishing it until Withdraw or Close.
func (n *Node) Announce(ctx context.Context, key records.Key, port uint16, seed bool) (AnnounceResult, error) {
	panic("not implemented")
}

// Withdraw stops republishing key and asks the storing nodes to drop the record.
func (n *Node) Withdraw(ctx context.Context, key records.Key) error { panic("not implemented") }

// Lookup finds up to want peers for key.
func (n *Node) Lookup(ctx context.Context, key records.Key, want int) (LookupResult, error) {
	panic("not implemented")
}

// Records lists the unexpired records this node stores.
func (n *Node) Records(ctx context.Context) ([]records.Entry, error) { panic("not implemented") }

// Routing lists the routing table.
func (n *Node) Routing() []RoutingPeer { panic("not implemented") }

// Stats is a snapshot for the local API.
func (n *Node) Stats() Stats { panic("not implemented") }

// Close stops the node. It is idempotent.
func (n *Node) Close() error { panic("not implemented") }
