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
	_, env, err := n.sealFor(ctx, p, records.Record{
		Key:       key,
		Announcer: n.host.ID(),
		Port:      port,
		Seed:      seed,
		Seq:       n.nextSeq(),
		Expires:   n.now().Add(n.cfg.RecordTTL),
	})
	if err != nil {
		return err
	}
	_, err = n.request(ctx, p, &pb.Request{Body: &pb.Request_Put{Put: &pb.Put{Envelope: env}}})
	return err
}

// GetFrom asks p alone for up to want records of key: one record-protocol
// GET, for load tools and tests. Every record is verified; the counts are
// p's word.
func (n *Node) GetFrom(ctx context.Context, p peer.ID, key records.Key, want int) (records.Result, error) {
	a := n.get(ctx, p, key, max(0, min(want, MaxWant)), 0)
	if a.err != nil {
		return records.Result{}, a.err
	}
	out := records.Result{Seeds: a.seeds, Leechers: a.leech}
	for _, ae := range a.entries {
		rec, err := records.Open(ae.envelope)
		if err != nil || rec.Key != key {
			continue
		}
		out.Entries = append(out.Entries, records.Entry{Record: rec, IP: ae.ip, Envelope: ae.envelope})
	}
	return out, nil
}
