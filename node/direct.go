package node

import (
	"context"
	"errors"

	"github.com/kadtracker/kadtracker/node/internal/pb"
	"github.com/kadtracker/kadtracker/records"
	"github.com/libp2p/go-libp2p/core/peer"
)

// PutTo seals a record of this node's client (port, seed) for key and
// stores it on p alone, outside the DHT walk and without keeping it
// announced: one record-protocol PUT, for load tools and tests. A refusal
// is an error wrapping ErrRemote.
func (n *Node) PutTo(ctx context.Context, p peer.ID, key records.Key, port uint16, seed bool) error {
	if key.IsZero() || port == 0 {
		return errors.New("node: PutTo needs a key and a port")
	}
	env, err := records.Seal(records.Record{
		Key:       key,
		Announcer: n.host.ID(),
		Port:      port,
		Seed:      seed,
		Seq:       n.nextSeq(),
		Expires:   n.now().Add(n.cfg.RecordTTL),
	}, n.key)
	if err != nil {
		return err
	}
	_, err = n.request(ctx, p, &pb.Request{Body: &pb.Request_Put{Put: &pb.Put{Envelope: env}}})
	return err
}

// GetFrom asks p alone for up to want records of key: one record-protocol
// GET, every record verified, for load tools and tests.
func (n *Node) GetFrom(ctx context.Context, p peer.ID, key records.Key, want int) (records.Result, error) {
	return n.get(ctx, p, key, max(0, min(want, MaxWant)))
}
