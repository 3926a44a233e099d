package node

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/kadtracker/kadtracker/node/internal/pb"
	"github.com/kadtracker/kadtracker/records"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"
)

// FuzzServe feeds arbitrary bytes to the record protocol's request decoder
// and handler, as a remote peer could. Nothing may panic, every answer must
// be a well-formed response, and nothing but a valid PUT from the sender's
// own identity may change the store.
func FuzzServe(f *testing.F) {
	sk, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		f.Fatal(err)
	}
	sender, _ := peer.IDFromPrivateKey(sk)
	key, _ := records.ParseKey("0123456789abcdef0123456789abcdef01234567")
	env, err := records.Seal(records.Record{Key: key, Announcer: sender, Port: 6881, Seq: 1, Expires: time.Now().Add(time.Hour)}, sk)
	if err != nil {
		f.Fatal(err)
	}
	seal := func(r records.Record) []byte {
		r.Key, r.Announcer, r.Expires = key, sender, time.Now().Add(time.Hour)
		b, err := records.Seal(r, sk)
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	for _, req := range []*pb.Request{
		{Body: &pb.Request_Put{Put: &pb.Put{Envelope: env}}},
		// The signed address, right (the fuzzed remote is 192.0.2.7) and wrong;
		// a bridged record naming a local endpoint; a tombstone.
		{Body: &pb.Request_Put{Put: &pb.Put{Envelope: seal(records.Record{Port: 6881, Addr: netip.MustParseAddr("192.0.2.7"), Seq: 2})}}},
		{Body: &pb.Request_Put{Put: &pb.Put{Envelope: seal(records.Record{Port: 6881, Addr: netip.MustParseAddr("192.0.2.66"), Seq: 3})}}},
		{Body: &pb.Request_Put{Put: &pb.Put{Envelope: seal(records.Record{Addr: netip.MustParseAddr("192.0.2.7"), Seq: 4, Bridged: true,
			Endpoints: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:22")}})}}},
		{Body: &pb.Request_Put{Put: &pb.Put{Envelope: seal(records.Record{Seq: 5, Withdrawn: true})}}},
		// Version 3: a signed coordinate.
		{Body: &pb.Request_Put{Put: &pb.Put{Envelope: seal(records.Record{Port: 6881, Addr: netip.MustParseAddr("192.0.2.7"), Seq: 6,
			Coord: &records.Coord{Vec: [records.CoordDims]float64{0.5, -0.25}, Height: 0.5, Error: 0.25}})}}},
		{Body: &pb.Request_Get{Get: &pb.Get{Key: key.Multihash(), Want: 10, Salt: 7}}},
		{Body: &pb.Request_Get{Get: &pb.Get{Key: key.Multihash(), Want: 10}}},
		{Body: &pb.Request_Get{Get: &pb.Get{Key: []byte{0x11, 0x14}, Want: 1 << 31}}},
		{Body: &pb.Request_Ping{Ping: &pb.Ping{Nonce: 42}}},
		{},
	} {
		b, err := proto.Marshal(req)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}

	ctx := context.Background()
	cfg := loopbackConfig("")
	cfg.Limits = records.Limits{PeersPerKey: 4, Keys: 16, KeysPerAnnouncer: 8}
	nd, err := New(ctx, cfg)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = nd.Close() })
	remoteIP := netip.MustParseAddr("192.0.2.7")
	localIP := netip.MustParseAddr("127.0.0.1")

	f.Fuzz(func(t *testing.T, data []byte) {
		var req pb.Request
		if err := proto.Unmarshal(data, &req); err != nil {
			return // the stream handler answers BAD_REQUEST before serve
		}
		before := nd.store.Stats()
		resp := nd.serve(ctx, sender, remoteIP, localIP, &req)
		if resp == nil {
			t.Fatal("nil response")
		}
		if _, err := proto.Marshal(resp); err != nil {
			t.Fatalf("response does not marshal: %v", err)
		}
		if resp.Status != pb.Status_OK && resp.Error == "" {
			t.Fatalf("refusal %s without a reason", resp.Status)
		}
		if _, isPut := req.Body.(*pb.Request_Put); !isPut && nd.store.Stats() != before {
			t.Fatal("a request other than PUT changed the store")
		}
		if len(resp.Entries) > MaxWant {
			t.Fatalf("%d entries, cap %d", len(resp.Entries), MaxWant)
		}
		for _, e := range resp.Entries {
			rec, err := records.Open(e.Envelope)
			if err != nil || rec.Announcer != sender {
				t.Fatalf("served an entry that was not a valid PUT from the sender: %v", err)
			}
		}
	})
}
