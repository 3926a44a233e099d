package node

import (
	"context"
	"math/rand/v2"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// fakeClock is a settable clock shared by the nodes of a test.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Now()} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func loopbackConfig(dataDir string) Config {
	cfg := offlineConfig()
	cfg.DataDir = dataDir
	cfg.ListenAddrs = []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/0")}
	cfg.DHTMode = ModeServer
	return cfg
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("default config: %v", err)
	}
	bad := DefaultConfig()
	bad.Replication = 0
	bad.RepublishInterval = bad.RecordTTL
	bad.ListenAddrs = nil
	bad.BootstrapPeers = []peer.AddrInfo{{}}
	err := bad.Validate()
	if err == nil {
		t.Fatal("bad config accepted")
	}
	for _, want := range []string{"replication", "republish", "listen", "bootstrap"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
	for _, s := range []string{"auto", "server", "client"} {
		m, err := ParseDHTMode(s)
		if err != nil || m.String() != s {
			t.Errorf("ParseDHTMode(%q) = %v, %v", s, m, err)
		}
	}
	if _, err := ParseDHTMode("bogus"); err == nil {
		t.Error("ParseDHTMode accepted bogus")
	}
}

// A node with no peers at all is a one-node tracker: it stores its own
// record and finds it.
func TestLoneNode(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// The default auto mode serves the DHT on loopback: AutoNAT has nobody
	// to ask, and kad-dht's ModeAutoServer serves until told otherwise.
	cfg := loopbackConfig("")
	cfg.DHTMode = ModeAuto
	nd, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer nd.Close()
	key := randomKey(t, rand.New(rand.NewPCG(3, 3)), false)
	res, err := nd.Announce(ctx, key, 51413, false)
	if err != nil {
		t.Fatal(err)
	}
	if res.StoredOn != 1 || res.Targets != 1 {
		t.Fatalf("lone announce: %+v, want stored on itself", res)
	}
	lr, err := nd.Lookup(ctx, key, 10)
	if err != nil {
		t.Fatal(err)
	}
	want := netip.MustParseAddrPort("127.0.0.1:51413")
	if len(lr.Peers) != 1 || lr.Peers[0].Endpoint != want || lr.Peers[0].Seed {
		t.Fatalf("lone lookup: %+v, want one leecher at %s", lr.Peers, want)
	}
	if st := nd.Stats(); st.Announced != 1 || st.RecordsStored != 1 || st.DHTMode != "server" || len(st.Addrs) == 0 {
		t.Fatalf("stats %+v", st)
	}
	if err := nd.Withdraw(ctx, key); err != nil {
		t.Fatal(err)
	}
	if lr, _ := nd.Lookup(ctx, key, 10); len(lr.Peers) != 0 {
		t.Fatalf("after withdraw: %+v", lr.Peers)
	}
	if err := nd.Close(); err != nil {
		t.Fatal(err)
	}
	if err := nd.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := nd.Announce(ctx, key, 1, false); err == nil {
		t.Fatal("announce after Close succeeded")
	}
}

// A node's identity and stored records survive a restart on its data dir.
func TestRestartKeepsIdentityAndRecords(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	nd, err := New(ctx, loopbackConfig(dir))
	if err != nil {
		t.Fatal(err)
	}
	id := nd.ID()
	key := randomKey(t, rand.New(rand.NewPCG(4, 4)), true)
	if _, err := nd.Announce(ctx, key, 6881, true); err != nil {
		t.Fatal(err)
	}
	if err := nd.Close(); err != nil {
		t.Fatal(err)
	}
	nd, err = New(ctx, loopbackConfig(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer nd.Close()
	if nd.ID() != id {
		t.Fatalf("peer ID changed across restart: %s then %s", id, nd.ID())
	}
	recs, err := nd.Records(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].Key != key || recs[0].Port != 6881 {
		t.Fatalf("records after restart: %+v", recs)
	}
}

// Withdraw removes the record from every storing node; expiry (on an
// injected clock) hides records whose announcer went away.
func TestWithdrawAndExpiry(t *testing.T) {
	clock := newFakeClock()
	tn := newTestNet(t, 12, time.Millisecond, func(c *Config) {
		c.Replication = 4
		c.Clock = clock.Now
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rng := rand.New(rand.NewPCG(5, 5))
	a, b, asker := tn.nodes[0], tn.nodes[1], tn.nodes[11]

	key := randomKey(t, rng, false)
	for _, nd := range []*Node{a, b} {
		if _, err := nd.Announce(ctx, key, 7000, nd == a); err != nil {
			t.Fatal(err)
		}
	}
	lr, err := asker.Lookup(ctx, key, 50)
	if err != nil || len(lr.Peers) != 2 || lr.Seeds != 1 || lr.Leechers != 1 {
		t.Fatalf("two announcers: %+v, %v", lr, err)
	}
	if err := b.Withdraw(ctx, key); err != nil {
		t.Fatal(err)
	}
	if got := tn.holders(t, key, b.ID()); len(got) != 0 {
		t.Fatalf("withdrawn record still held by %v", got)
	}
	lr, _ = asker.Lookup(ctx, key, 50)
	if len(lr.Peers) != 1 || lr.Peers[0].Announcer != a.ID() {
		t.Fatalf("after withdraw: %+v", lr.Peers)
	}

	clock.Advance(a.cfg.RecordTTL - time.Second)
	if lr, _ = asker.Lookup(ctx, key, 50); len(lr.Peers) != 1 {
		t.Fatalf("record gone before its expiry: %+v", lr.Peers)
	}
	clock.Advance(2 * time.Second)
	if lr, _ = asker.Lookup(ctx, key, 50); len(lr.Peers) != 0 {
		t.Fatalf("expired record still found: %+v", lr.Peers)
	}
}

// The republish loop keeps a record alive past its TTL while announced.
func TestRepublish(t *testing.T) {
	tn := newTestNet(t, 6, time.Millisecond, func(c *Config) {
		c.Replication = 3
		c.RecordTTL = 1500 * time.Millisecond
		c.RepublishInterval = 300 * time.Millisecond
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	key := randomKey(t, rand.New(rand.NewPCG(6, 6)), false)
	if _, err := tn.nodes[0].Announce(ctx, key, 7001, false); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second) // two TTLs
	lr, err := tn.nodes[5].Lookup(ctx, key, 10)
	if err != nil || len(lr.Peers) != 1 {
		t.Fatalf("record not kept alive: %+v, %v", lr.Peers, err)
	}
	if tn.nodes[0].Stats().Republishes == 0 {
		t.Fatal("no republish counted")
	}
}

// A DHT client announces and looks up through servers but stores nothing
// and is never a target.
func TestClientMode(t *testing.T) {
	tn := newTestNet(t, 8, time.Millisecond, func(c *Config) { c.Replication = 3 })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := offlineConfig()
	h, err := tn.mn.GenPeer()
	if err != nil {
		t.Fatal(err)
	}
	if err := tn.mn.LinkAll(); err != nil {
		t.Fatal(err)
	}
	cfg.Host = h
	cfg.DHTMode = ModeClient
	cfg.Replication = 3
	cfg.BootstrapPeers = []peer.AddrInfo{{ID: tn.nodes[0].ID(), Addrs: tn.nodes[0].Host().Addrs()}}
	client, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if client.DHT().Mode() != dht.ModeClient || client.Stats().DHTMode != "client" {
		t.Fatal("not in client mode")
	}
	key := randomKey(t, rand.New(rand.NewPCG(7, 7)), false)
	res, err := client.Announce(ctx, key, 7002, true)
	if err != nil || res.StoredOn != 3 {
		t.Fatalf("client announce: %+v, %v", res, err)
	}
	if client.Stats().RecordsStored != 0 {
		t.Fatal("a DHT client stored a record")
	}
	lr, err := tn.nodes[7].Lookup(ctx, key, 10)
	if err != nil || len(lr.Peers) != 1 {
		t.Fatalf("lookup of a client's record: %+v, %v", lr.Peers, err)
	}
	lr, err = client.Lookup(ctx, key, 10)
	if err != nil || len(lr.Peers) != 1 {
		t.Fatalf("client lookup: %+v, %v", lr.Peers, err)
	}
}

func TestPingRTT(t *testing.T) {
	const latency = 20 * time.Millisecond
	tn := newTestNet(t, 2, latency, nil)
	rtt, err := tn.nodes[0].PingRTT(context.Background(), tn.nodes[1].ID())
	if err != nil {
		t.Fatal(err)
	}
	// One request and one response each cross a link with this latency.
	if rtt < 2*latency {
		t.Fatalf("rtt %s shorter than two link latencies", rtt)
	}
}
