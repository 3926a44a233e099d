package daemon

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/kadtracker/kadtracker/node"
	"github.com/kadtracker/kadtracker/node/localapi"
	"github.com/kadtracker/kadtracker/records"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

const (
	hexV1  = "0123456789abcdef0123456789abcdef01234567"
	peerID = "12D3KooWQZop8AVYKEzemxNDqMiais6sFen8rUXEXNPs2vMPreF6"
)

var started = time.Date(2026, 11, 22, 1, 2, 3, 0, time.UTC)

func mustKey(t testing.TB, s string) records.Key {
	t.Helper()
	k, err := records.ParseKey(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func addrs(t testing.TB, ss ...string) []ma.Multiaddr {
	t.Helper()
	out := make([]ma.Multiaddr, len(ss))
	for i, s := range ss {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = a
	}
	return out
}

// fakeNode stands in for *node.Node behind the local API adapter.
type fakeNode struct {
	stats   node.Stats
	lookup  node.LookupResult
	entries []records.Entry
	routing []node.RoutingPeer
}

func (f *fakeNode) Announce(_ context.Context, _ records.Key, port uint16, _ bool) (node.AnnounceResult, error) {
	return node.AnnounceResult{StoredOn: int(port) % 10, Targets: 8}, nil
}
func (f *fakeNode) AnnounceTransient(ctx context.Context, key records.Key, port uint16, seed bool) (node.AnnounceResult, error) {
	return f.Announce(ctx, key, port, seed)
}
func (f *fakeNode) Withdraw(context.Context, records.Key) error { return nil }
func (f *fakeNode) Lookup(context.Context, records.Key, int) (node.LookupResult, error) {
	return f.lookup, nil
}
func (f *fakeNode) Records(context.Context) ([]records.Entry, error) { return f.entries, nil }
func (f *fakeNode) Routing() []node.RoutingPeer                      { return f.routing }
func (f *fakeNode) Stats() node.Stats                                { return f.stats }
func (f *fakeNode) ID() peer.ID                                      { return f.stats.PeerID }

func TestAPIBackend(t *testing.T) {
	id, err := peer.Decode(peerID)
	if err != nil {
		t.Fatal(err)
	}
	key := mustKey(t, hexV1)
	est := time.FixedZone("EST", -5*3600)
	n := &fakeNode{
		stats: node.Stats{
			PeerID: id, Addrs: addrs(t, "/ip4/127.0.0.1/tcp/4001/p2p/"+peerID),
			RoutingTableSize: 3, RecordsStored: 4, KeysStored: 2, Announced: 1, Replication: 8,
			DHTMode: "server", Started: started.In(est),
			Network: "lab", Reachability: "private",
			PublicAddrs: addrs(t, "/ip4/203.0.113.7/tcp/4001"),
			PortMapping: node.PortMappingStats{Enabled: true},
			Rendezvous:  node.RendezvousStats{Enabled: true, State: "searching", Rounds: 3, Found: 2, LastSuccess: started.In(est)},
			Publish:     node.PublishStats{Keys: 5000, CapacityKeys: 19000, LapsedTotal: 2, Walks: 9},
		},
		lookup: node.LookupResult{
			Peers: []node.Peer{
				{Endpoint: netip.MustParseAddrPort("[::ffff:192.0.2.1]:6881"), Seed: true, Announcer: id},
				{Endpoint: netip.MustParseAddrPort("[2001:db8::1]:51413")},
			},
			Seeds: 1, Leechers: 1,
			Stats: node.LookupStats{Hops: 2, Queried: 5, Asked: 3, Answered: 2, Duration: 1500 * time.Microsecond},
		},
		entries: []records.Entry{
			{Record: records.Record{Key: key, Announcer: id, Port: 6881, Seed: true, Expires: started.In(est)}, IP: netip.MustParseAddr("::ffff:10.0.0.1")},
			{Record: records.Record{Key: key, Announcer: id, Port: 6882, Expires: started}}, // our own: no IP
		},
		routing: []node.RoutingPeer{{ID: id, Addrs: addrs(t, "/ip4/10.0.0.2/tcp/4001"), CPL: 4, Connected: true}},
	}
	b := &apiBackend{n: n}
	ctx := t.Context()

	st, _ := b.Status(ctx)
	wantSt := localapi.Status{
		PeerID: peerID, Addrs: []string{"/ip4/127.0.0.1/tcp/4001/p2p/" + peerID},
		RoutingTableSize: 3, RecordsStored: 4, KeysStored: 2, Announced: 1, Replication: 8,
		DHTMode: "server", Started: started,
		Network: "lab", Reachability: "private",
		PublicAddrs: []string{"/ip4/203.0.113.7/tcp/4001"},
		PortMapping: localapi.PortMapping{Enabled: true, Mapped: []string{}},
		Rendezvous:  localapi.Rendezvous{Enabled: true, State: "searching", Rounds: 3, PeersFound: 2, LastSuccess: started},
		Publish:     &localapi.Publish{Keys: 5000, CapacityKeys: 19000, LapsedTotal: 2},
	}
	if !reflect.DeepEqual(st, wantSt) {
		t.Errorf("Status\n got %+v\nwant %+v", st, wantSt)
	}
	if ar, _ := b.Announce(ctx, key, 6883, false); ar != (localapi.AnnounceResult{StoredOn: 3, Targets: 8}) {
		t.Errorf("Announce = %+v", ar)
	}
	pr, _ := b.Peers(ctx, key, 50)
	wantPr := localapi.PeersResult{
		Peers: []localapi.Peer{
			{IP: "192.0.2.1", Port: 6881, Seed: true, Announcer: peerID, Source: "dht"},
			{IP: "2001:db8::1", Port: 51413, Source: "dht"},
		},
		Seeds: 1, Leechers: 1,
		Stats: localapi.LookupStats{Hops: 2, Queried: 5, Asked: 3, Answered: 2, DurationMS: 1.5},
	}
	if !reflect.DeepEqual(pr, wantPr) {
		t.Errorf("Peers\n got %+v\nwant %+v", pr, wantPr)
	}
	recs, _ := b.Records(ctx)
	wantRecs := []localapi.Record{
		{Infohash: key, IP: "10.0.0.1", Port: 6881, Seed: true, Announcer: peerID, Expires: started},
		{Infohash: key, IP: "", Port: 6882, Announcer: peerID, Expires: started},
	}
	if !reflect.DeepEqual(recs, wantRecs) {
		t.Errorf("Records\n got %+v\nwant %+v", recs, wantRecs)
	}
	rt, _ := b.Routing(ctx)
	wantRt := []localapi.RoutingPeer{{PeerID: peerID, Addrs: []string{"/ip4/10.0.0.2/tcp/4001"}, CPL: 4, Connected: true}}
	if !reflect.DeepEqual(rt, wantRt) {
		t.Errorf("Routing\n got %+v\nwant %+v", rt, wantRt)
	}

	// Empty answers are empty lists, not null.
	empty := &apiBackend{n: &fakeNode{}}
	if pr, _ := empty.Peers(ctx, key, 1); pr.Peers == nil {
		t.Error("Peers: nil list")
	}
	if recs, _ := empty.Records(ctx); recs == nil {
		t.Error("Records: nil list")
	}
	if st, _ := empty.Status(ctx); st.Addrs == nil {
		t.Error("Status: nil addrs")
	}
}

func TestServeFacesStopsAllWhenOneFails(t *testing.T) {
	var mu sync.Mutex
	var stopped []string
	waiter := func(name string) face {
		return face{name, func(ctx context.Context) error {
			<-ctx.Done()
			mu.Lock()
			stopped = append(stopped, name)
			mu.Unlock()
			return nil
		}}
	}
	boom := face{"tracker", func(context.Context) error { return errors.New("address in use") }}
	err := serveFaces(t.Context(), []face{waiter("local API"), boom, waiter("tsup")})
	if err == nil || err.Error() != "tracker: address in use" {
		t.Errorf("err = %v", err)
	}
	if len(stopped) != 2 {
		t.Errorf("stopped %v, want the other two faces", stopped)
	}

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := serveFaces(ctx, []face{waiter("local API")}); err != nil {
		t.Errorf("after cancel: %v", err)
	}
}

// keyNode records the keys it is asked about.
type keyNode struct {
	fakeNode
	keys []records.Key
}

func (k *keyNode) Announce(_ context.Context, key records.Key, _ uint16, _ bool) (node.AnnounceResult, error) {
	k.keys = append(k.keys, key)
	return node.AnnounceResult{}, nil
}

func (k *keyNode) Lookup(_ context.Context, key records.Key, _ int) (node.LookupResult, error) {
	k.keys = append(k.keys, key)
	return node.LookupResult{}, nil
}

func (k *keyNode) Withdraw(_ context.Context, key records.Key) error {
	k.keys = append(k.keys, key)
	return nil
}

// A v2 infohash typed on the CLI reaches the swarm BitTorrent clients
// announce to trackers: BEP 52's 20-byte truncation. v1 keys pass unchanged.
func TestAPIBackendTruncatesV2(t *testing.T) {
	v2 := "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90"
	key, err := records.ParseKey(v2)
	if err != nil {
		t.Fatal(err)
	}
	truncated, _ := records.ParseKey(v2[:40])
	n := &keyNode{}
	b := &apiBackend{n: n}
	ctx := context.Background()
	b.Announce(ctx, key, 6881, true)
	b.Peers(ctx, key, 10)
	b.Withdraw(ctx, key)
	b.Peers(ctx, truncated, 10)
	for i, k := range n.keys {
		if k != truncated {
			t.Errorf("call %d reached %s, want the truncated %s", i, k, truncated)
		}
	}
	if len(n.keys) != 4 {
		t.Fatalf("%d calls", len(n.keys))
	}
}

// A front on a wildcard address is announced to at loopback: status must
// not tell a client to announce to http://[::]:6969.
func TestDialable(t *testing.T) {
	for in, want := range map[string]string{
		"0.0.0.0:6969":   "127.0.0.1:6969",
		"[::]:6969":      "[::1]:6969",
		"127.0.0.2:6969": "127.0.0.2:6969",
		"[::1]:7000":     "[::1]:7000",
	} {
		ap := netip.MustParseAddrPort(in)
		if got := dialable(net.TCPAddrFromAddrPort(ap)); got != want {
			t.Errorf("dialable(%s) = %s, want %s", in, got, want)
		}
	}
}
