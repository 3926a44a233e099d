package node

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kadtracker/kadtracker/node/internal/pb"
	"github.com/kadtracker/kadtracker/records"
	kadpb "github.com/libp2p/go-libp2p-kad-dht/pb"
	kb "github.com/libp2p/go-libp2p-kbucket"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	lprecord "github.com/libp2p/go-libp2p/core/record"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	"github.com/libp2p/go-msgio/pbio"
	ma "github.com/multiformats/go-multiaddr"
)

// advNet is a mocknet whose hosts have addresses chosen by the test: honest
// nodes each on an internet address of its own, attackers sharing one.
type advNet struct {
	t     *testing.T
	mn    mocknet.Mocknet
	nodes []*Node
	rng   *rand.Rand
}

func newAdvNet(t *testing.T, seed uint64) *advNet {
	an := &advNet{t: t, mn: mocknet.New(), rng: rand.New(rand.NewPCG(seed, 99))}
	t.Cleanup(func() {
		var wg sync.WaitGroup
		for _, nd := range an.nodes {
			wg.Go(func() { _ = nd.Close() })
		}
		wg.Wait()
		_ = an.mn.Close()
	})
	return an
}

// honestAddr is honest node i's address: one per /16, none exempt.
func honestAddr(i int) ma.Multiaddr {
	return ma.StringCast(fmt.Sprintf("/ip4/45.%d.0.1/tcp/4001", i))
}

// host adds a host with key (a fresh one when nil) at addr, linked to all.
func (an *advNet) host(key crypto.PrivKey, addr ma.Multiaddr) host.Host {
	an.t.Helper()
	if key == nil {
		var err error
		key, _, err = crypto.GenerateEd25519Key(rand.NewChaCha8(an.seedBytes()))
		if err != nil {
			an.t.Fatal(err)
		}
	}
	h, err := an.mn.AddPeer(key, addr)
	if err != nil {
		an.t.Fatal(err)
	}
	// One link to every other host, both ways (LinkAll would add a
	// second link to every pair already linked).
	for _, o := range an.mn.Peers() {
		if o != h.ID() {
			if _, err := an.mn.LinkPeers(h.ID(), o); err != nil {
				an.t.Fatal(err)
			}
		}
	}
	return h
}

func (an *advNet) seedBytes() [32]byte {
	var s [32]byte
	for i := range s {
		s[i] = byte(an.rng.Uint32())
	}
	return s
}

// start runs a node on h, bootstrapped from up to three earlier nodes.
func (an *advNet) start(ctx context.Context, h host.Host, tweak func(*Config)) *Node {
	an.t.Helper()
	nd, err := New(ctx, an.config(h, tweak))
	if err != nil {
		an.t.Fatal(err)
	}
	an.nodes = append(an.nodes, nd)
	return nd
}

// config is the configuration start uses for a node on h.
func (an *advNet) config(h host.Host, tweak func(*Config)) Config {
	cfg := offlineConfig()
	cfg.Host = h
	cfg.DHTMode = ModeServer
	cfg.RequestTimeout = 5 * time.Second
	perm := an.rng.Perm(len(an.nodes))
	for _, j := range perm[:min(3, len(perm))] {
		prev := an.nodes[j].Host()
		cfg.BootstrapPeers = append(cfg.BootstrapPeers, peer.AddrInfo{ID: prev.ID(), Addrs: prev.Addrs()})
	}
	if tweak != nil {
		tweak(&cfg)
	}
	return cfg
}

func (an *advNet) refresh(nodes []*Node) {
	for range 2 {
		var wg sync.WaitGroup
		for _, nd := range nodes {
			wg.Go(func() { <-nd.DHT().RefreshRoutingTable() })
		}
		wg.Wait()
	}
}

// sealRecord signs a record for key as nd, expiring in ttl.
func sealRecord(t testing.TB, nd *Node, key records.Key, port uint16, seq uint64, ttl time.Duration) []byte {
	t.Helper()
	env, err := records.Seal(records.Record{Key: key, Announcer: nd.ID(), Port: port, Seq: seq, Expires: nd.now().Add(ttl)}, nd.key)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// fromIP counts the records nd stores that came from ip.
func fromIP(t testing.TB, nd *Node, ip netip.Addr) int {
	t.Helper()
	entries, err := nd.Records(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		if e.IP == ip {
			n++
		}
	}
	return n
}

// TestFloodPuts: hosts flood one storing node with valid PUTs for distinct
// keys. The rate limits answer BUSY, the per-address cap refuses what
// passes beyond it, the full store evicts the flooders' records, not the
// honest ones, and honest lookups still find every honest record.
func TestFloodPuts(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const honest, perIP, storeCap = 6, 150, 400
	an := newAdvNet(t, 1)
	var nodes []*Node
	for i := range honest {
		nodes = append(nodes, an.start(ctx, an.host(nil, honestAddr(i)), func(c *Config) {
			c.Replication = honest // every honest node stores every record
			c.Limits.RecordsPerIP = perIP
			c.Limits.Records = storeCap
			c.Protect.PeerRate = RateLimit{Rate: 100, Burst: 300}
			c.Protect.IPRate = RateLimit{Rate: 400, Burst: 800}
			c.Protect.MaxStreamsPerPeer = 2
			if i == 0 {
				// The flooded node's store takes a moment per write, so
				// a flooder's requests overlap and meet the stream cap.
				c.Store = slowStore{records.NewMemory(records.Options{Limits: c.Limits}), 2 * time.Millisecond}
			}
		}))
	}
	an.refresh(nodes)
	target := nodes[0]

	// Honest records first, one per node.
	rng := rand.New(rand.NewPCG(5, 5))
	honestKeys := make([]records.Key, honest)
	for i, nd := range nodes {
		honestKeys[i] = randomKey(t, rng, false)
		if res, err := nd.Announce(ctx, honestKeys[i], uint16(6000+i), false); err != nil || res.StoredOn != honest {
			t.Fatalf("honest announce %d: %+v, %v", i, res, err)
		}
	}

	// Four flooders on four addresses. The first sends 1500 PUTs one at a
	// time: it meets the rate limit and the per-address cap. Then the
	// others send 3000 each, 16 at once: they meet the stream cap, and
	// together they fill the store, which evicts.
	const flooders, workers = 4, 16
	var statuses [flooders]map[string]int
	// Flooder f's node and its PUTs, made before any flooding starts.
	var flNodes [flooders]*Node
	var flEnvs [flooders][][]byte
	for f := range flooders {
		addr := ma.StringCast(fmt.Sprintf("/ip4/203.0.113.%d/tcp/4001", 10+f))
		flNodes[f] = an.start(ctx, an.host(nil, addr), func(c *Config) { c.DHTMode = ModeClient })
		flEnvs[f] = make([][]byte, min(f, 1)*1500+1500)
		for i := range flEnvs[f] {
			flEnvs[f][i] = sealRecord(t, flNodes[f], randomKey(t, rng, false), 6881, 1, time.Hour)
		}
		statuses[f] = map[string]int{}
	}
	flood := func(f, workers int) {
		fl, envs, puts := flNodes[f], flEnvs[f], len(flEnvs[f])
		var mu sync.Mutex
		var next atomic.Int64
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for i := next.Add(1) - 1; i < int64(puts); i = next.Add(1) - 1 {
					status := "OK"
					resp, err := fl.request(ctx, target.ID(), &pb.Request{Body: &pb.Request_Put{Put: &pb.Put{Envelope: envs[i]}}})
					switch {
					case resp != nil:
						status = resp.Status.String()
					case err != nil:
						status = "error"
					}
					mu.Lock()
					statuses[f][status]++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
	}
	flood(0, 1)
	var wg sync.WaitGroup
	for f := 1; f < flooders; f++ {
		wg.Go(func() { flood(f, workers) })
	}
	wg.Wait()

	st := target.Stats()
	t.Logf("flooders saw %v", statuses)
	t.Logf("target: %d records, %d evicted, refused %v, rejected %v", st.RecordsStored, st.Evicted, st.Refused, st.PutsRejectedBy)
	for f := range flooders {
		if statuses[f]["BUSY"] == 0 {
			t.Errorf("flooder %d was never told BUSY", f)
		}
		ip := netip.AddrFrom4([4]byte{203, 0, 113, byte(10 + f)})
		if n := fromIP(t, target, ip); n > perIP {
			t.Errorf("flooder %d holds %d records, cap %d", f, n, perIP)
		}
	}
	if st.RecordsStored > storeCap {
		t.Errorf("%d records stored, cap %d", st.RecordsStored, storeCap)
	}
	if statuses[0]["FULL"] == 0 {
		t.Error("the first flooder never met the per-address cap")
	}
	if st.Refused[RefusedPeerRate] == 0 || st.Refused[RefusedPeerStreams] == 0 {
		t.Errorf("rate and stream refusals not counted: %v", st.Refused)
	}
	if st.PutsRejectedBy[RejectIPFull] == 0 || st.Evicted == 0 {
		t.Errorf("per-address cap and eviction not exercised: rejected %v, evicted %d", st.PutsRejectedBy, st.Evicted)
	}
	// Honest records survive on the flooded node, and every honest node
	// finds every honest record.
	for i, k := range honestKeys {
		res, err := target.store.Get(ctx, k, 10)
		if err != nil || len(res.Entries) != 1 {
			t.Errorf("honest record %d gone from the flooded node: %+v, %v", i, res, err)
		}
		for _, nd := range nodes {
			lr, err := nd.Lookup(ctx, k, 10)
			if err != nil || len(lr.Peers) != 1 || lr.Peers[0].Endpoint.Port() != uint16(6000+i) {
				t.Errorf("lookup of honest key %d from %s: %+v, %v", i, nd.ID(), lr.Peers, err)
			}
		}
	}
	// The flooded node answers its peers as before.
	if _, err := nodes[1].request(ctx, target.ID(), &pb.Request{Body: &pb.Request_Ping{Ping: &pb.Ping{Nonce: 7}}}); err != nil {
		t.Errorf("flooded node stopped answering: %v", err)
	}
}

// slowStore is a Store whose writes take a while.
type slowStore struct {
	records.Store
	delay time.Duration
}

func (s slowStore) Put(ctx context.Context, e records.Entry) error {
	time.Sleep(s.delay)
	return s.Store.Put(ctx, e)
}

// TestNoThirdPartyAddress: a record cannot carry an address. The payload
// has no field for one, an extra field is refused, and the address stored
// and served is the one the record arrived from, whatever the announcer
// would like.
func TestNoThirdPartyAddress(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	an := newAdvNet(t, 2)
	var nodes []*Node
	for i := range 4 {
		nodes = append(nodes, an.start(ctx, an.host(nil, honestAddr(i)), func(c *Config) { c.Replication = 4 }))
	}
	attackerIP := netip.MustParseAddr("203.0.113.66")
	victimIP := netip.MustParseAddr("198.51.100.80")
	attacker := an.start(ctx, an.host(nil, ma.StringCast("/ip4/203.0.113.66/tcp/4001")), func(c *Config) {
		c.Replication = 4
		c.DHTMode = ModeClient
	})
	an.refresh(append(nodes, attacker))
	key := randomKey(t, rand.New(rand.NewPCG(6, 6)), false)

	// The payload with an address appended as an extra field (number 15,
	// bytes), validly signed: refused as malformed.
	payload, err := records.Record{Key: key, Announcer: attacker.ID(), Port: 80, Seq: 1, Expires: attacker.now().Add(time.Hour)}.MarshalRecord()
	if err != nil {
		t.Fatal(err)
	}
	payload = append(payload, 15<<3|2, 4)
	payload = append(payload, victimIP.AsSlice()...)
	env, err := lprecord.Seal(ptr(rawRecord(payload)), attacker.key)
	if err != nil {
		t.Fatal(err)
	}
	envBytes, err := env.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	resp, err := rawPut(ctx, attacker.Host(), nodes[0].ID(), envBytes)
	if err != nil || resp.Status != pb.Status_REJECTED {
		t.Fatalf("record with an address field: %v, %v; want REJECTED", resp, err)
	}
	if got := nodes[0].Stats().PutsRejectedBy[RejectMalformed]; got != 1 {
		t.Errorf("malformed rejections %d, want 1", got)
	}

	// A genuine announce from the attacker is stored, and found, at the
	// attacker's own address and nowhere else.
	if res, err := attacker.Announce(ctx, key, 80, true); err != nil || res.StoredOn != 4 {
		t.Fatalf("announce: %+v, %v", res, err)
	}
	for _, nd := range nodes {
		res, err := nd.store.Get(ctx, key, 10)
		if err != nil || len(res.Entries) != 1 || res.Entries[0].IP != attackerIP {
			t.Fatalf("%s stores %+v, %v; want the record at %s", nd.ID(), res.Entries, err, attackerIP)
		}
		lr, err := nd.Lookup(ctx, key, 10)
		if err != nil || len(lr.Peers) != 1 || lr.Peers[0].Endpoint != netip.AddrPortFrom(attackerIP, 80) {
			t.Fatalf("lookup from %s: %+v, %v; want %s:80", nd.ID(), lr.Peers, err, attackerIP)
		}
	}
}

// sybilKey grinds an ed25519 key whose peer ID shares at least cpl leading
// bits with target in kad-dht's keyspace.
func rng2(i int) *rand.Rand { return rand.New(rand.NewPCG(uint64(i), 8)) }

func sybilKey(t testing.TB, rng *rand.Rand, target kb.ID, cpl int) crypto.PrivKey {
	t.Helper()
	for {
		var seed [32]byte
		for i := range seed {
			seed[i] = byte(rng.Uint32())
		}
		k, _, err := crypto.GenerateEd25519Key(rand.NewChaCha8(seed))
		if err != nil {
			t.Fatal(err)
		}
		id, err := peer.IDFromPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		if kb.CommonPrefixLen(kb.ConvertPeerID(id), target) >= cpl {
			return k
		}
	}
}

// runSybil makes h a Sybil: it serves the DHT protocol, answering every
// query with the (up to) 20 Sybils closest to the key asked for, and the
// record protocol, taking every PUT (counted in swallowed) and answering
// every GET with nothing.
func runSybil(h host.Host, sybils []peer.AddrInfo, swallowed *atomic.Int64) {
	h.SetStreamHandler(kadProtocol, func(s network.Stream) {
		defer s.Close()
		r := pbio.NewDelimitedReader(s, network.MessageSizeMax)
		w := pbio.NewDelimitedWriter(s)
		for {
			var req kadpb.Message
			if err := r.ReadMsg(&req); err != nil {
				return
			}
			ids := make([]peer.ID, len(sybils))
			for i, ai := range sybils {
				ids[i] = ai.ID
			}
			closest := kb.SortClosestPeers(ids, kb.ConvertKey(string(req.GetKey())))
			var infos []peer.AddrInfo
			for _, id := range closest[:min(20, len(closest))] {
				infos = append(infos, peer.AddrInfo{ID: id, Addrs: h.Addrs()})
			}
			resp := kadpb.NewMessage(req.GetType(), req.GetKey(), 0)
			resp.CloserPeers = kadpb.RawPeerInfosToPBPeers(infos)
			if err := w.WriteMsg(resp); err != nil {
				return
			}
		}
	})
	h.SetStreamHandler(ProtocolID, func(s network.Stream) {
		defer s.Close()
		r := pbio.NewDelimitedReader(s, MaxRequestSize)
		w := pbio.NewDelimitedWriter(s)
		for {
			var req pb.Request
			if err := r.ReadMsg(&req); err != nil {
				return
			}
			resp := &pb.Response{}
			switch b := req.Body.(type) {
			case *pb.Request_Put:
				swallowed.Add(1)
			case *pb.Request_Ping:
				resp.Nonce = b.Ping.GetNonce()
			}
			if err := w.WriteMsg(resp); err != nil {
				return
			}
		}
	})
}

// TestSybilClosest: a hundred identities on one address, ground to be the
// closest nodes to a key, answer every DHT query with each other and try
// to take the key's m storing slots, dropping what they get. The routing tables take at most DiversityPerTable of them, and
// the storing nodes chosen include at most TargetsPerGroup: honest nodes
// keep the record and honest lookups find it. With the protection off the
// same attack takes the key. The announce is the early one
// (announce_early.go): as its walk hears of Sybils ever closer to the key,
// each would take a new slot among the m closest heard of, so the limit
// holds for all of an announce's PUTs; with that limit off (groupLimit
// false) the Sybils get more copies than TargetsPerGroup.
func TestSybilClosest(t *testing.T) {
	if testing.Short() {
		t.Skip("120-node mocknet")
	}
	for _, c := range []struct{ protected, groupLimit bool }{{true, true}, {false, false}, {true, false}} {
		t.Run(fmt.Sprintf("protected=%v,groupLimit=%v", c.protected, c.groupLimit), func(t *testing.T) {
			testSybilClosest(t, c.protected, c.groupLimit)
		})
	}
}

func testSybilClosest(t *testing.T, protected, groupLimit bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const honest, sybils, m = 20, 100, 8
	an := newAdvNet(t, 3)
	rng := rand.New(rand.NewPCG(7, 7))
	key := randomKey(t, rng, false)
	target := kb.ConvertKey(key.DHTKey())
	tweak := func(c *Config) {
		c.Replication = m
		if !protected {
			c.Protect.DiversityPerCpl, c.Protect.DiversityPerTable, c.Protect.TargetsPerGroup = 0, 0, 0
		}
	}
	var honestNodes []*Node
	for i := range honest {
		honestNodes = append(honestNodes, an.start(ctx, an.host(nil, honestAddr(i)), tweak))
	}
	an.refresh(honestNodes)

	// The Sybils: bare hosts that answer every DHT query with the Sybils
	// closest to what is asked, and swallow every record. Each dials three
	// honest nodes, which then see a DHT server and try it for their
	// routing tables.
	sybilIDs := map[peer.ID]bool{}
	var sybilInfos []peer.AddrInfo
	var sybilHosts []host.Host
	for i := range sybils {
		h := an.host(sybilKey(t, rng, target, 8), ma.StringCast(fmt.Sprintf("/ip4/198.51.100.7/tcp/%d", 4001+i)))
		sybilIDs[h.ID()] = true
		sybilInfos = append(sybilInfos, peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()})
		sybilHosts = append(sybilHosts, h)
	}
	var swallowed atomic.Int64
	for _, h := range sybilHosts {
		runSybil(h, sybilInfos, &swallowed)
	}
	var wg sync.WaitGroup
	for i, h := range sybilHosts {
		wg.Go(func() {
			for _, p := range rng2(i).Perm(honest)[:3] {
				_ = h.Connect(ctx, peer.AddrInfo{ID: honestNodes[p].ID(), Addrs: honestNodes[p].Host().Addrs()})
			}
		})
	}
	wg.Wait()
	// Let identify and the routing tables take them in.
	time.Sleep(500 * time.Millisecond)
	an.refresh(honestNodes)

	announcer := honestNodes[0]
	announcer.apolicy.anyGroup = !groupLimit
	res, err := announcer.Announce(ctx, key, 6881, true)
	if err != nil {
		t.Fatal(err)
	}
	announcer.followUps.wait()
	holders := 0
	for _, nd := range honestNodes {
		if r, _ := nd.store.Get(ctx, key, 10); len(r.Entries) > 0 {
			holders++
		}
	}
	sybilPuts := swallowed.Load()
	found := 0
	for _, nd := range honestNodes[1:] {
		lr, err := nd.Lookup(ctx, key, 10)
		if err == nil && len(lr.Peers) == 1 {
			found++
		}
	}
	maxInRT := 0
	var refusedRT, refusedTarget int64
	for _, nd := range honestNodes {
		n := 0
		for _, p := range nd.DHT().RoutingTable().ListPeers() {
			if sybilIDs[p] {
				n++
			}
		}
		maxInRT = max(maxInRT, n)
		st := nd.Stats()
		refusedRT += st.Refused[RefusedRoutingIP]
		refusedTarget += st.Refused[RefusedTargetIP]
	}
	t.Logf("announce %+v: %d honest holders, %d PUTs swallowed by Sybils; %d of %d honest lookups found it; at most %d Sybils in an honest routing table; refused %d routing entries, %d targets",
		res, holders, sybilPuts, found, honest-1, maxInRT, refusedRT, refusedTarget)
	if !protected {
		if holders >= m-DefaultProtection().TargetsPerGroup && found == honest-1 {
			t.Errorf("without protection the Sybils did not take the key: the attack in this test is too weak")
		}
		return
	}
	if !groupLimit {
		if sybilPuts <= int64(DefaultProtection().TargetsPerGroup) {
			t.Errorf("without the limit across the announce the Sybils got %d copies, no more than the limit %d: the attack in this test is too weak",
				sybilPuts, DefaultProtection().TargetsPerGroup)
		}
		return
	}
	if maxInRT > DefaultProtection().DiversityPerTable {
		t.Errorf("an honest routing table holds %d Sybils, limit %d", maxInRT, DefaultProtection().DiversityPerTable)
	}
	if sybilPuts > int64(DefaultProtection().TargetsPerGroup) {
		t.Errorf("Sybils got %d copies, limit %d", sybilPuts, DefaultProtection().TargetsPerGroup)
	}
	if holders < m-DefaultProtection().TargetsPerGroup {
		t.Errorf("%d honest holders, want at least %d", holders, m-DefaultProtection().TargetsPerGroup)
	}
	if found != honest-1 {
		t.Errorf("%d of %d honest lookups found the record", found, honest-1)
	}
	if refusedRT == 0 || refusedTarget == 0 {
		t.Errorf("refusals not counted: routing %d, targets %d", refusedRT, refusedTarget)
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatal("timed out")
	}
}
