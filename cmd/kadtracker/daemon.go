package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/kadtracker/kadtracker/bootstrap"
	"github.com/kadtracker/kadtracker/node"
	"github.com/kadtracker/kadtracker/node/localapi"
	"github.com/kadtracker/kadtracker/node/tracker"
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

// defaultTrackerAddr is where BitTorrent clients on this host announce.
const defaultTrackerAddr = "127.0.0.1:6969"

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
	fs.Var((*logLevel)(&d.logLevel), "log-level", "log `LEVEL`: debug, info, warn or error")
	fs.Var(oneOf{&d.logFormat, []string{"text", "json"}}, "log-format", "log `FORMAT`: text or json")
	d.trackerHTTP, d.trackerUDP = defaultTrackerAddr, defaultTrackerAddr
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
			if err := checkTrackerAddr(f.addr, d.trackerRemote); err != nil {
				return nil, fmt.Errorf("--%s: %w", f.name, err)
			}
		}
		if d.tsup.publish && !d.dht {
			return nil, errors.New("--tsup-publish publishes into the DHT; it cannot go with --dht=false")
		}
		return d, nil
	}
}

// face is one of the node's fronts: the local API now; the BitTorrent
// tracker and TSUP later. serve runs until ctx is done and then cleans up.
type face struct {
	name  string
	serve func(ctx context.Context) error
}

func (d *daemonCmd) run(ctx context.Context, _, stderr io.Writer) (err error) {
	logger := newLogger(stderr, d.logFormat, d.logLevel)
	cfg := d.node
	cfg.Logger = logger
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("invalid configuration:\n  %s", strings.ReplaceAll(err.Error(), "\n", "\n  "))
	}
	// Everything acquired is released in reverse order, whatever happens.
	var release []func() error
	defer func() {
		for i := len(release) - 1; i >= 0; i-- {
			if cerr := release[i](); !errors.Is(cerr, net.ErrClosed) {
				err = errors.Join(err, cerr)
			}
		}
	}()

	// Take the socket and the tracker ports first: a second daemon on this
	// data dir, or a port in use, stops here before the store is opened.
	ln, err := localapi.Listen(d.rpcSocket)
	if err != nil {
		return err
	}
	release = append(release, ln.Close)
	httpLn, udpConn, err := d.listenTracker(ctx)
	if err != nil {
		return err
	}
	if httpLn != nil {
		release = append(release, httpLn.Close)
	}
	if udpConn != nil {
		release = append(release, udpConn.Close)
	}
	publicLn, publicConn, err := d.public.listen(ctx)
	if err != nil {
		return err
	}
	if publicLn != nil {
		release = append(release, publicLn.Close, publicConn.Close)
	}
	dm, err := d.metrics.open(ctx)
	if err != nil {
		return err
	}
	release = append(release, dm.Close)
	release = append(release, func() error { logger.Info("stopped"); return nil })
	var n nodeAPI = offlineNode{started: time.Now()}
	var dhtNode *node.Node
	if d.dht {
		dn, err := node.New(ctx, cfg)
		if err != nil {
			return fmt.Errorf("starting the node: %w", err)
		}
		release = append(release, dn.Close)
		n, dhtNode = dn, dn
	}
	st := n.Stats()
	logger.Info("kadtracker started", "peer_id", st.PeerID.String(), "data_dir", cfg.DataDir, "dht_mode", st.DHTMode, "replication", st.Replication)
	for _, a := range st.Addrs {
		logger.Info("listening", "addr", a.String())
	}
	logger.Info("local API", "socket", d.rpcSocket)

	dm.setNode(n)
	backend := apiBackend{n: dm.observe(n, "api")}
	var frontNode tracker.Node = trackerBackend{dm.observe(n, "tracker")}
	if backend.overlay, err = d.tsup.open(ctx, udpConn, logger); err != nil {
		return err
	}
	if backend.overlay != nil {
		release = append(release, backend.overlay.t.Close)
		frontNode = overlayNode{Node: frontNode, o: backend.overlay}
		logger.Info("TSUP overlay", "links", d.tsup.links, "advertise_ip", backend.overlay.ip)
	}

	var faces []face
	tsupPublish := backend.overlay != nil && d.tsup.publish
	if dhtNode != nil && (d.bridge.publish && len(d.bridge.trackers) > 0 || publicLn != nil || tsupPublish) {
		backend.published = newBridgedPublisher(dhtNode, logger)
		faces = append(faces, face{"bridged records", backend.published.run})
	}
	if tsupPublish && backend.published != nil {
		faces = append(faces, face{"TSUP publisher", func(ctx context.Context) error {
			return publishOverlay(ctx, backend.overlay, backend.published, d.tsup.update)
		}})
	}
	if backend.bridge, err = d.bridge.open(logger, backend.onTrackerPeers); err != nil {
		return err
	}
	if backend.bridge != nil {
		release = append(release, backend.bridge.Close)
		frontNode = bridgeNode{Node: frontNode, a: backend.bridge, pub: backend.published, log: logger}
		logger.Info("bridge to classic trackers", "trackers", strings.Join(d.bridge.trackers, ","), "publish", backend.published != nil)
	}
	if httpLn != nil || udpConn != nil {
		tcfg := tracker.DefaultConfig()
		tcfg.Logger = logger.With("component", "tracker")
		front, err := tracker.New(frontNode, tcfg)
		if err != nil {
			return err
		}
		release = append(release, front.Close)
		dm.setFront(front)
		for _, a := range []string{d.trackerHTTP, d.trackerUDP} {
			if checkTrackerAddr(a, false) != nil {
				logger.Warn("tracker front open beyond this host: anyone who reaches it can announce through this daemon", "addr", a)
			}
		}
		if httpLn != nil {
			backend.trackerHTTP = "http://" + httpLn.Addr().String() + "/announce"
			logger.Info("HTTP tracker", "announce", backend.trackerHTTP)
			faces = append(faces, face{"HTTP tracker", func(ctx context.Context) error { return front.Serve(ctx, httpLn) }})
		}
		if udpConn != nil {
			backend.trackerUDP = "udp://" + udpConn.LocalAddr().String() + "/announce"
			logger.Info("UDP tracker", "announce", backend.trackerUDP)
			conn := udpConn
			if backend.overlay != nil {
				conn = backend.overlay.t.Demux() // TSUP packets to the overlay, BEP 15 to the front
			}
			faces = append(faces, face{"UDP tracker", func(ctx context.Context) error { return front.ServeUDP(ctx, conn) }})
		}
	}
	if publicLn != nil {
		pcfg := tracker.DefaultConfig()
		pcfg.Logger = logger.With("component", "public-tracker")
		pcfg.ExternalIP = true
		var allow *allowlist
		if d.public.allowlist != "" {
			if allow, err = loadAllowlist(d.public.allowlist, logger); err != nil {
				return err
			}
			pcfg.Allow = allow.Allow
		}
		public, err := tracker.New(publicNode{trackerBackend{n}}, pcfg)
		if err != nil {
			return err
		}
		release = append(release, public.Close)
		logger.Info("public tracker", "announce", "http://"+publicLn.Addr().String()+"/announce", "udp", "udp://"+publicConn.LocalAddr().String()+"/announce", "allowlist", d.public.allowlist, "publish", backend.published != nil)
		faces = append(faces,
			face{"public HTTP tracker", func(ctx context.Context) error { return public.Serve(ctx, publicLn) }},
			face{"public UDP tracker", func(ctx context.Context) error { return public.ServeUDP(ctx, publicConn) }},
			face{"public tracker sync", func(ctx context.Context) error {
				return syncPublic(ctx, public, backend.published, allow, logger)
			}})
	}
	api := localapi.NewServer(backend, logger.With("component", "localapi"))
	faces = append(faces, face{"local API", func(ctx context.Context) error { return api.Serve(ctx, ln) }})
	if f, ok := dm.face(logger); ok {
		faces = append(faces, f)
	}
	err = serveFaces(ctx, faces)
	if ctx.Err() != nil {
		logger.Info("stopping", "cause", context.Cause(ctx))
	}
	return err
}

// listenTracker opens the tracker front's sockets; an empty address leaves
// that transport off.
func (d *daemonCmd) listenTracker(ctx context.Context) (net.Listener, net.PacketConn, error) {
	var lc net.ListenConfig
	var httpLn net.Listener
	var udpConn net.PacketConn
	var err error
	if d.trackerHTTP != "" {
		if httpLn, err = lc.Listen(ctx, "tcp", d.trackerHTTP); err != nil {
			return nil, nil, fmt.Errorf("HTTP tracker: %w", err)
		}
	}
	if d.trackerUDP != "" {
		if udpConn, err = lc.ListenPacket(ctx, "udp", d.trackerUDP); err != nil {
			closeAll(httpLn)
			return nil, nil, fmt.Errorf("UDP tracker: %w", err)
		}
	}
	return httpLn, udpConn, nil
}

// checkTrackerAddr accepts host:port on loopback, or anywhere with
// allowRemote. The tracker front is for the clients on this host; serving it
// further is a choice the user makes explicitly.
func checkTrackerAddr(addr string, allowRemote bool) error {
	if addr == "" {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if host == "localhost" {
		return nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Errorf("%q: want an IP address and port, such as %s", addr, defaultTrackerAddr)
	}
	if !ip.IsLoopback() && !allowRemote {
		return fmt.Errorf("%s is not a loopback address; add --tracker-allow-remote to serve clients on other hosts", addr)
	}
	return nil
}

// closeAll closes whichever of cs are open.
func closeAll(cs ...io.Closer) {
	for _, c := range cs {
		if c != nil {
			_ = c.Close()
		}
	}
}

// serveFaces runs every face until ctx is done or one fails, and returns
// when all have stopped.
func serveFaces(ctx context.Context, faces []face) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make([]error, len(faces))
	var wg sync.WaitGroup
	for i, f := range faces {
		wg.Go(func() {
			if err := f.serve(ctx); err != nil {
				errs[i] = fmt.Errorf("%s: %w", f.name, err)
				cancel()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
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
