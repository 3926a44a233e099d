package daemon

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/kadtracker/kadtracker/node"
	"github.com/kadtracker/kadtracker/node/localapi"
	"github.com/kadtracker/kadtracker/node/tracker/wire"
	"github.com/kadtracker/kadtracker/node/tsup"
	"github.com/kadtracker/kadtracker/records"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// shortDir is a temporary directory whose path fits a unix socket's.
func shortDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "ktd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// startDaemon starts cfg in this process and stops it at the end of the
// test, failing the test if it stopped with an error.
func startDaemon(t *testing.T, name string, cfg Config) *Daemon {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	log := slog.New(slog.NewTextHandler(testWriter{t, name}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	d, err := Start(ctx, cfg, log)
	if err != nil {
		cancel()
		t.Fatalf("%s: %v", name, err)
	}
	t.Cleanup(func() {
		cancel()
		if err := d.Wait(); err != nil {
			t.Errorf("%s stopped with %v", name, err)
		}
	})
	return d
}

type testWriter struct {
	t    *testing.T
	name string
}

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s: %s", w.name, p)
	return len(p), nil
}

// freeUDPPort is a UDP port on 127.0.0.1 that was free a moment ago: TSUP
// links name their neighbours' ports before the neighbours start.
func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// httpAnnounce sends one announce to an HTTP tracker URL and returns the
// peers it answered with.
func httpAnnounce(t *testing.T, url string, ih [20]byte, port uint16, left int64) []netip.AddrPort {
	t.Helper()
	req := wire.AnnounceRequest{InfoHash: ih, Port: port, Left: left, Compact: true, NumWant: 50}
	copy(req.PeerID[:], fmt.Sprintf("-KT0001-%012d", port))
	resp, err := http.Get(url + "?" + string(wire.AppendAnnounceQuery(nil, &req)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	ar, err := wire.ParseAnnounceResponse(body)
	if err != nil {
		t.Fatalf("announce to %s: %v (%q)", url, err, body)
	}
	var out []netip.AddrPort
	for _, p := range ar.Peers {
		out = append(out, p.Addr)
	}
	return out
}

func loopbackNode(dir string) node.Config {
	cfg := node.DefaultConfig()
	cfg.DataDir = dir
	cfg.ListenAddrs = []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/0")}
	cfg.DHTMode = node.ModeServer
	cfg.Rendezvous, cfg.NATPortMap = false, false // tests stay on loopback
	return cfg
}

// TestDaemonComposesItsParts runs a daemon through Start with the tracker
// front, the DHT node, the bridge and TSUP on, and checks that each of the
// three sources feeds the front's answers to a local client:
//   - the DHT: a record another node announced;
//   - the bridge: a client of a classic tracker (another daemon in
//     tracker mode, without a DHT);
//   - TSUP: a client of a linked tracker (another daemon, without a DHT).
//
// Each source's peer has a port of its own, so the answer says which
// source is missing.
func TestDaemonComposesItsParts(t *testing.T) {
	dir := shortDir(t)
	ih := [20]byte{0xda, 0xe7, 0x01}
	key := records.SwarmKey(ih)
	const (
		clientPort  = 7000
		trackerPort = 7001 // a classic tracker's client
		tsupPort    = 7002 // a TSUP neighbour's client
		dhtPort     = 7003 // another daemon's client, in the DHT
	)
	want := map[netip.AddrPort]string{
		netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), trackerPort): "bridge",
		netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), tsupPort):    "TSUP",
		netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), dhtPort):     "DHT",
	}

	// The classic tracker, and a client of it.
	classic := startDaemon(t, "classic", Config{
		RPCSocket: filepath.Join(dir, "classic.sock"),
		Public:    &PublicConfig{Addr: "127.0.0.1:0"},
	})
	httpAnnounce(t, classic.Info().PublicHTTP, ih, trackerPort, 0)

	// The TSUP neighbour, linked to the daemon under test, and its client.
	portA, portN := freeUDPPort(t), freeUDPPort(t)
	timers := tsup.DefaultConfig()
	timers.HelloInterval, timers.UpdateInterval, timers.DisconnectInterval = 200*time.Millisecond, 500*time.Millisecond, 2*time.Second
	linksFile := func(name string, port int) string {
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, fmt.Appendf(nil, "127.0.0.1:%d internal\n", port), 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	neighbour := startDaemon(t, "neighbour", Config{
		RPCSocket: filepath.Join(dir, "neighbour.sock"),
		Front:     &FrontConfig{HTTP: "127.0.0.1:0", UDP: fmt.Sprintf("127.0.0.1:%d", portN)},
		TSUP:      &TSUPConfig{LinksFile: linksFile("links-n", portA), Overlay: timers},
	})
	httpAnnounce(t, neighbour.Info().TrackerHTTP, ih, tsupPort, 0)

	// Another DHT node with a client.
	other, err := node.New(t.Context(), loopbackNode(""))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })

	ncfg := loopbackNode(filepath.Join(dir, "a"))
	ncfg.BootstrapPeers = []peer.AddrInfo{{ID: other.ID(), Addrs: other.Host().Addrs()}}
	a := startDaemon(t, "a", Config{
		Node:      &ncfg,
		RPCSocket: filepath.Join(dir, "a.sock"),
		Front:     &FrontConfig{HTTP: "127.0.0.1:0", UDP: fmt.Sprintf("127.0.0.1:%d", portA)},
		TSUP:      &TSUPConfig{LinksFile: linksFile("links-a", portN), Overlay: timers},
		Bridge:    &BridgeConfig{Trackers: []string{classic.Info().PublicHTTP}, Publish: true},
	})
	if a.Node() == nil || a.Info().PeerID != a.Node().ID() {
		t.Fatalf("daemon a: node %v, info %+v", a.Node(), a.Info())
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := other.Announce(ctx, key, dhtPort, true); err != nil {
		t.Fatal(err)
	}

	deadline := time.Now().Add(30 * time.Second)
	for {
		got := httpAnnounce(t, a.Info().TrackerHTTP, ih, clientPort, 1000)
		var missing []string
		for ep, source := range want {
			if !slices.Contains(got, ep) {
				missing = append(missing, source)
			}
		}
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the front's answer %v lacks the peers of %v", got, missing)
		}
		time.Sleep(250 * time.Millisecond)
	}

	// The local API names each peer's source.
	pr, err := localapi.NewClient(a.Info().RPCSocket).Peers(t.Context(), key, 50)
	if err != nil {
		t.Fatal(err)
	}
	sources := map[string]string{}
	for _, p := range pr.Peers {
		sources[fmt.Sprintf("%s:%d", p.IP, p.Port)] = p.Source
	}
	for ep, source := range map[string]string{
		fmt.Sprintf("127.0.0.1:%d", trackerPort): "tracker",
		fmt.Sprintf("127.0.0.1:%d", tsupPort):    "tsup",
		fmt.Sprintf("127.0.0.1:%d", dhtPort):     "dht",
	} {
		if sources[ep] != source {
			t.Errorf("peer %s: source %q, want %q (all: %v)", ep, sources[ep], source, sources)
		}
	}
}
