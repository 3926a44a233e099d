package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"

	"github.com/kadtracker/kadtracker/bootstrap"
	"github.com/kadtracker/kadtracker/node"
	"github.com/kadtracker/kadtracker/node/daemon"
	"github.com/kadtracker/kadtracker/records"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// daemonCmd is `kadtracker run`.
type daemonCmd struct {
	node      node.Config
	rpcSocket string
	logLevel  slog.Level
	logFormat string
	// The BitTorrent tracker front: empty addresses disable a transport.
	trackerHTTP, trackerUDP string
	trackerRemote           bool
	// dht false runs no DHT node: a plain tracker (with TSUP, if linked).
	dht     bool
	tsup    tsupFlags
	metrics metricsFlags
	bridge  bridgeFlags
	public  publicFlags
}

func setupDaemon(fs *flag.FlagSet, getenv func(string) string) func([]string) (runner, error) {
	d := &daemonCmd{node: node.DefaultConfig(), logLevel: slog.LevelInfo, logFormat: "text"}
	d.node.DataDir = defaultDataDir(getenv)
	fs.StringVar(&d.node.DataDir, "data-dir", d.node.DataDir, "`DIR` for the identity key, the record store and remembered peers")
	fs.Var(&multiaddrList{list: &d.node.ListenAddrs}, "listen", "comma-separated `MULTIADDRS` to listen on")
	fs.Var(&bootstrapList{peers: &d.node.BootstrapPeers}, "bootstrap", "comma-separated `MULTIADDRS` of peers to join through, each ending in /p2p/<peer ID>")
	fs.StringVar(&d.rpcSocket, "rpc-socket", "", "`PATH` of the local API socket")
	fs.Lookup("rpc-socket").DefValue = "DATA-DIR/" + socketName
	fs.IntVar(&d.node.Replication, "replication", d.node.Replication, "store each record on the `M` closest DHT nodes")
	fs.Var((*dhtMode)(&d.node.DHTMode), "dht-mode", "serve the DHT as `MODE`: auto, server or client")
	fs.BoolVar(&d.node.MDNS, "mdns", d.node.MDNS, "find peers on the local network with mDNS")
	fs.StringVar(&d.node.Network, "network", d.node.Network, "join the kadtracker network `NAME` (separate networks never mix)")
	fs.BoolVar(&d.node.NATPortMap, "nat-portmap", d.node.NATPortMap, "ask the router for a port mapping (UPnP, NAT-PMP) so that others can reach this node")
	fs.BoolVar(&d.node.Rendezvous, "rendezvous", d.node.Rendezvous, "find other kadtracker nodes through the rendezvous DHT while the routing table is thin")
	fs.Var(&bootstrapList{peers: &d.node.RendezvousBootstrap}, "rendezvous-bootstrap", "comma-separated `MULTIADDRS` the rendezvous DHT joins through, each ending in /p2p/<peer ID>; empty for none, on the first node of a private rendezvous DHT (default: the public libp2p bootstrap peers)")
	fs.BoolVar(&d.node.RendezvousServe, "rendezvous-serve", d.node.RendezvousServe, "serve the rendezvous DHT (private networks)")
	fs.DurationVar(&d.node.RecordTTL, "record-ttl", d.node.RecordTTL, "how long a published record lives on storing nodes")
	fs.DurationVar(&d.node.RepublishInterval, "republish", d.node.RepublishInterval, "how often announced records are published again")
	fs.BoolVar(&d.node.StoreRecovery, "store-recovery", d.node.StoreRecovery, "when the record store is damaged, move it aside (DATA-DIR/records.damaged-TIME, never deleted) and start with an empty one; the DHT and announcers refill it")
	fs.Var((*exemptRanges)(&d.node.Limits.Exempt), "exempt-ranges", "`CIDRS` exempt from the per-address limits: default (loopback, private and link-local ranges), none, or a comma-separated list; default,CIDR adds to the default")
	fs.IntVar(&d.node.BridgeQuorum, "bridged-quorum", d.node.BridgeQuorum, "serve a bridged endpoint (a peer another daemon learned from a classic tracker or TSUP) only when `N` bridges at distinct addresses name it")
	fs.BoolVar(&d.node.LocalBridgedEndpoints, "bridged-local", d.node.LocalBridgedEndpoints, "accept and serve bridged endpoints on loopback and private addresses: for private networks and tests, never on the Internet (a bridge could point every client at their own LAN)")
	fs.Float64Var(&d.node.Locality, "locality", d.node.Locality, "give share `F` of each peer list to the peers nearest this daemon by network coordinate (Vivaldi), the rest at random; 0 returns a uniform sample")
	fs.Var((*logLevel)(&d.logLevel), "log-level", "log `LEVEL`: debug, info, warn or error")
	fs.Var(oneOf{&d.logFormat, []string{"text", "json"}}, "log-format", "log `FORMAT`: text or json")
	d.trackerHTTP, d.trackerUDP = daemon.DefaultFrontAddr, daemon.DefaultFrontAddr
	fs.StringVar(&d.trackerHTTP, "tracker-http", d.trackerHTTP, "`ADDR` of the HTTP tracker for local BitTorrent clients (http://ADDR/announce); empty disables it")
	fs.StringVar(&d.trackerUDP, "tracker-udp", d.trackerUDP, "`ADDR` of the UDP tracker for local BitTorrent clients (udp://ADDR/announce); empty disables it")
	fs.BoolVar(&d.trackerRemote, "tracker-allow-remote", false, "allow --tracker-http/--tracker-udp on a non-loopback address (anyone who reaches it can announce through this daemon)")
	d.dht = true
	fs.BoolVar(&d.dht, "dht", d.dht, "join the DHT; false runs a plain tracker for local clients (and the TSUP overlay)")
	d.tsup.register(fs)
	d.metrics.register(fs)
	d.bridge.register(fs)
	d.public.register(fs)

	return func(pos []string) (runner, error) {
		if err := wantArgs(pos); err != nil {
			return nil, err
		}
		if d.node.DataDir == "" {
			return nil, errors.New("no data directory: set --data-dir (neither HOME nor XDG_DATA_HOME is set)")
		}
		if d.rpcSocket == "" {
			d.rpcSocket = filepath.Join(d.node.DataDir, socketName)
		}
		if err := d.public.check(); err != nil {
			return nil, err
		}
		for _, f := range []struct{ name, addr string }{{"tracker-http", d.trackerHTTP}, {"tracker-udp", d.trackerUDP}} {
			if err := daemon.CheckFrontAddr(f.addr, d.trackerRemote); err != nil {
				return nil, fmt.Errorf("--%s: %w", f.name, err)
			}
		}
		if d.tsup.publish && !d.dht {
			return nil, errors.New("--tsup-publish publishes into the DHT; it cannot go with --dht=false")
		}
		if _, err := d.tsup.config(); err != nil {
			return nil, err
		}
		return d, nil
	}
}

func (d *daemonCmd) run(ctx context.Context, _, stderr io.Writer) error {
	cfg, err := d.config()
	if err != nil {
		return err
	}
	return daemon.Run(ctx, cfg, newLogger(stderr, d.logFormat, d.logLevel))
}

// config is the daemon the flags describe: a part whose flags are unset is
// off (nil).
func (d *daemonCmd) config() (daemon.Config, error) {
	cfg := daemon.Config{RPCSocket: d.rpcSocket}
	if d.dht {
		n := d.node
		cfg.Node = &n
	}
	if d.trackerHTTP != "" || d.trackerUDP != "" {
		cfg.Front = &daemon.FrontConfig{HTTP: d.trackerHTTP, UDP: d.trackerUDP}
	}
	var err error
	if cfg.TSUP, err = d.tsup.config(); err != nil {
		return daemon.Config{}, err
	}
	if len(d.bridge.trackers) > 0 {
		cfg.Bridge = &daemon.BridgeConfig{Trackers: d.bridge.trackers, Publish: d.bridge.publish}
	}
	if d.public.addr != "" {
		cfg.Public = &daemon.PublicConfig{Addr: d.public.addr, AllowlistFile: d.public.allowlist}
	}
	if d.metrics.addr != "" {
		cfg.Metrics = &daemon.MetricsConfig{Addr: d.metrics.addr}
	}
	return cfg, nil
}

func newLogger(w io.Writer, format string, level slog.Level) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// multiaddrList is a comma-separated list of multiaddrs. The first Set
// replaces the default; a repeated flag adds to the list.
type multiaddrList struct {
	list *[]ma.Multiaddr
	set  bool
}

func (l *multiaddrList) String() string {
	if l.list == nil {
		return ""
	}
	s := make([]string, len(*l.list))
	for i, a := range *l.list {
		s[i] = a.String()
	}
	return strings.Join(s, ",")
}

func (l *multiaddrList) Set(v string) error {
	var addrs []ma.Multiaddr
	for _, s := range bootstrap.SplitList(v) {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return fmt.Errorf("%q: %v", s, err)
		}
		addrs = append(addrs, a)
	}
	if !l.set {
		*l.list = nil
		l.set = true
	}
	*l.list = append(*l.list, addrs...)
	return nil
}

// bootstrapList is a comma-separated list of /p2p/ multiaddrs; a repeated
// flag adds to the list.
type bootstrapList struct {
	peers *[]peer.AddrInfo
	raw   []string
}

func (l *bootstrapList) String() string { return strings.Join(l.raw, ",") }

func (l *bootstrapList) Set(v string) error {
	raw := append(l.raw, bootstrap.SplitList(v)...)
	peers, err := bootstrap.ParseAddrs(raw)
	if err != nil {
		return err
	}
	l.raw, *l.peers = raw, peers
	return nil
}

type dhtMode node.DHTMode

func (m *dhtMode) String() string { return node.DHTMode(*m).String() }

func (m *dhtMode) Set(v string) error {
	p, err := node.ParseDHTMode(v)
	if err != nil {
		return errors.New("want auto, server or client")
	}
	*m = dhtMode(p)
	return nil
}

type logLevel slog.Level

func (l *logLevel) String() string { return strings.ToLower(slog.Level(*l).String()) }

func (l *logLevel) Set(v string) error {
	switch strings.ToLower(v) {
	case "debug":
		*l = logLevel(slog.LevelDebug)
	case "info":
		*l = logLevel(slog.LevelInfo)
	case "warn":
		*l = logLevel(slog.LevelWarn)
	case "error":
		*l = logLevel(slog.LevelError)
	default:
		return errors.New("want debug, info, warn or error")
	}
	return nil
}

// oneOf is a string flag with a fixed set of values.
type oneOf struct {
	p      *string
	values []string
}

func (o oneOf) String() string {
	if o.p == nil {
		return ""
	}
	return *o.p
}

func (o oneOf) Set(v string) error {
	for _, ok := range o.values {
		if v == ok {
			*o.p = v
			return nil
		}
	}
	return fmt.Errorf("want %s", strings.Join(o.values, " or "))
}

// exemptRanges is --exempt-ranges (node.ParseExemptRanges).
type exemptRanges []netip.Prefix

func (e *exemptRanges) String() string {
	if e == nil || *e == nil {
		return ""
	}
	if slices.Equal(*e, records.DefaultExempt()) {
		return "default"
	}
	s := make([]string, len(*e))
	for i, p := range *e {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}

func (e *exemptRanges) Set(v string) error {
	ranges, err := node.ParseExemptRanges(v)
	if err != nil {
		return err
	}
	*e = ranges
	return nil
}
