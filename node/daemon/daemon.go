package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/kadtracker/kadtracker/node"
	"github.com/kadtracker/kadtracker/node/localapi"
	"github.com/kadtracker/kadtracker/node/tracker"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Config is a whole daemon: the settings of each part, nil when that part
// is off. The zero Config is not valid: RPCSocket is required.
type Config struct {
	// Node is the DHT node's configuration; nil runs no DHT node (a plain
	// tracker for the local clients, and the TSUP overlay).
	Node *node.Config
	// RPCSocket is the local API's unix socket.
	RPCSocket string
	// Front is the tracker for the BitTorrent clients on this host.
	Front *FrontConfig
	// TSUP links this daemon into an overlay of trackers; it shares the
	// front's UDP socket, so it needs Front.UDP.
	TSUP *TSUPConfig
	// Bridge announces the local clients to classic trackers too.
	Bridge *BridgeConfig
	// Public serves clients on other hosts, like a classic tracker.
	Public *PublicConfig
	// Metrics serves Prometheus metrics and a status page.
	Metrics *MetricsConfig
}

// FrontConfig is the tracker front for the clients on this host.
type FrontConfig struct {
	// HTTP and UDP are host:port to listen on; "" leaves that transport off.
	HTTP, UDP string
}

// DefaultFrontAddr is where BitTorrent clients on this host announce.
const DefaultFrontAddr = "127.0.0.1:6969"

// Validate reports every combination of parts that cannot run together.
// Each part's own settings are checked when it starts.
func (c *Config) Validate() error {
	var errs []error
	if c.RPCSocket == "" {
		errs = append(errs, errors.New("no local API socket (RPCSocket)"))
	}
	if c.Node != nil {
		if err := c.Node.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if c.TSUP != nil {
		if c.Front == nil || c.Front.UDP == "" {
			errs = append(errs, errors.New("--tsup-links: TSUP shares the UDP tracker's port; --tracker-udp must not be empty"))
		}
		if c.TSUP.Publish && c.Node == nil {
			errs = append(errs, errors.New("--tsup-publish publishes into the DHT; it cannot go with --dht=false"))
		}
	}
	return errors.Join(errs...)
}

// CheckFrontAddr accepts host:port on loopback, or anywhere with
// allowRemote. The tracker front is for the clients on this host; serving
// it further is a choice the user makes explicitly.
func CheckFrontAddr(addr string, allowRemote bool) error {
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
		return fmt.Errorf("%q: want an IP address and port, such as %s", addr, DefaultFrontAddr)
	}
	if !ip.IsLoopback() && !allowRemote {
		return fmt.Errorf("%s is not a loopback address; add --tracker-allow-remote to serve clients on other hosts", addr)
	}
	return nil
}

// Info is where a started daemon can be reached.
type Info struct {
	PeerID peer.ID // empty without a DHT node
	// TrackerHTTP and TrackerUDP are the front's announce URLs; "" when off.
	TrackerHTTP, TrackerUDP string
	// PublicHTTP and PublicUDP are the public tracker's; "" when off.
	PublicHTTP, PublicUDP string
	// Metrics is the status page's URL; "" when off.
	Metrics   string
	RPCSocket string
}

// Daemon is a running daemon. Start makes one; Wait ends it.
type Daemon struct {
	log   *slog.Logger
	node  *node.Node // nil without a DHT node
	info  Info
	done  chan struct{}
	err   error // the faces' error, set before done closes
	close []func() error
}

// Run starts a daemon and serves until ctx is done or a part fails, then
// stops every part in the reverse order of their start.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	d, err := Start(ctx, cfg, log)
	if err != nil {
		return err
	}
	return d.Wait()
}

// Node is the daemon's DHT node, nil under a Config without one.
func (d *Daemon) Node() *node.Node { return d.node }

// Info is where the daemon can be reached.
func (d *Daemon) Info() Info { return d.info }

// Wait returns when the daemon has stopped (ctx done, or a part failed)
// and released everything, with the error that stopped it.
func (d *Daemon) Wait() error {
	<-d.done
	return d.err
}

// face is one part that serves until ctx is done and then cleans up.
type face struct {
	name  string
	serve func(ctx context.Context) error
}

// Start acquires every part of cfg and starts serving. What it acquires is
// released in reverse order when serving ends, or at once if a later part
// fails to start. The local socket and the ports are taken first: a second
// daemon on this socket, or a port in use, stops here before the store is
// opened.
func Start(ctx context.Context, cfg Config, log *slog.Logger) (_ *Daemon, err error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid configuration:\n  %s", strings.ReplaceAll(err.Error(), "\n", "\n  "))
	}
	d := &Daemon{log: log, done: make(chan struct{})}
	defer func() {
		if err != nil {
			err = errors.Join(err, d.release())
		}
	}()
	b := &parts{cfg: cfg, log: log, d: d}
	faces, err := b.start(ctx)
	if err != nil {
		return nil, err
	}
	go func() {
		defer close(d.done)
		err := serveFaces(ctx, faces)
		if ctx.Err() != nil {
			log.Info("stopping", "cause", context.Cause(ctx))
		}
		d.err = errors.Join(err, d.release())
	}()
	return d, nil
}

// onClose adds f to what release undoes.
func (d *Daemon) onClose(f func() error) { d.close = append(d.close, f) }

// release closes what Start acquired, last first.
func (d *Daemon) release() error {
	var err error
	for i := len(d.close) - 1; i >= 0; i-- {
		if cerr := d.close[i](); !errors.Is(cerr, net.ErrClosed) {
			err = errors.Join(err, cerr)
		}
	}
	d.close = nil
	return err
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

// parts is the daemon being assembled: Start's state, kept out of Daemon.
type parts struct {
	cfg Config
	log *slog.Logger
	d   *Daemon

	dht       dhtNode // the DHT node, or offline under --dht=false
	metrics   *daemonMetrics
	overlay   *overlay          // nil without TSUP
	bridge    *bridge           // nil without the bridge
	published *bridgedPublisher // nil unless bridged records are published
}

func (p *parts) start(ctx context.Context) ([]face, error) {
	cfg, log, d := p.cfg, p.log, p.d
	ln, err := localapi.Listen(cfg.RPCSocket)
	if err != nil {
		return nil, err
	}
	d.onClose(ln.Close)
	d.info.RPCSocket = cfg.RPCSocket
	httpLn, udpConn, err := listenFront(ctx, cfg.Front)
	if err != nil {
		return nil, err
	}
	if httpLn != nil {
		d.onClose(httpLn.Close)
	}
	if udpConn != nil {
		d.onClose(udpConn.Close)
	}
	publicLn, publicConn, err := cfg.Public.listen(ctx)
	if err != nil {
		return nil, err
	}
	if publicLn != nil {
		d.onClose(publicLn.Close)
		d.onClose(publicConn.Close)
	}
	if p.metrics, err = cfg.Metrics.open(ctx); err != nil {
		return nil, err
	}
	if p.metrics != nil {
		d.onClose(p.metrics.Close)
	}
	d.onClose(func() error { log.Info("stopped"); return nil })

	p.dht = offlineNode{started: time.Now()}
	if cfg.Node != nil {
		ncfg := *cfg.Node
		ncfg.Logger = log
		n, err := node.New(ctx, ncfg)
		if err != nil {
			return nil, fmt.Errorf("starting the node: %w", err)
		}
		d.onClose(n.Close)
		p.dht, d.node = n, n
		d.info.PeerID = n.ID()
	}
	st := p.dht.Stats()
	dataDir := ""
	if cfg.Node != nil {
		dataDir = cfg.Node.DataDir
	}
	log.Info("kadtracker started", "peer_id", st.PeerID.String(), "data_dir", dataDir, "dht_mode", st.DHTMode, "replication", st.Replication)
	for _, a := range st.Addrs {
		log.Info("listening", "addr", a.String())
	}
	log.Info("local API", "socket", cfg.RPCSocket)
	p.metrics.setNode(p.dht, d.node)

	if p.overlay, err = cfg.TSUP.open(ctx, udpConn, log); err != nil {
		return nil, err
	}
	if p.overlay != nil {
		d.onClose(p.overlay.t.Close)
		log.Info("TSUP overlay", "links", cfg.TSUP.LinksFile, "advertise_ip", p.overlay.ip)
	}

	var faces []face
	tsupPublish := p.overlay != nil && cfg.TSUP.Publish
	bridgePublish := cfg.Bridge != nil && cfg.Bridge.Publish && len(cfg.Bridge.Trackers) > 0
	if d.node != nil && (bridgePublish || publicLn != nil || tsupPublish) {
		p.published = newBridgedPublisher(d.node, log)
		faces = append(faces, face{"bridged records", p.published.run})
	}
	if tsupPublish {
		faces = append(faces, face{"TSUP publisher", func(ctx context.Context) error {
			return publishOverlay(ctx, p.overlay, p.published, cfg.TSUP.Overlay.UpdateInterval)
		}})
	}
	if p.bridge, err = cfg.Bridge.open(log, p.published); err != nil {
		return nil, err
	}
	if p.bridge != nil {
		d.onClose(p.bridge.a.Close)
		log.Info("bridge to classic trackers", "trackers", strings.Join(cfg.Bridge.Trackers, ","), "publish", p.published != nil)
	}

	if httpLn != nil || udpConn != nil {
		front, err := p.newFront()
		if err != nil {
			return nil, err
		}
		d.onClose(front.Close)
		p.metrics.setFront(front)
		for _, a := range []string{cfg.Front.HTTP, cfg.Front.UDP} {
			if CheckFrontAddr(a, false) != nil {
				log.Warn("tracker front open beyond this host: anyone who reaches it can announce through this daemon", "addr", a)
			}
		}
		if httpLn != nil {
			d.info.TrackerHTTP = "http://" + dialable(httpLn.Addr()) + "/announce"
			log.Info("HTTP tracker", "announce", d.info.TrackerHTTP)
			faces = append(faces, face{"HTTP tracker", func(ctx context.Context) error { return front.Serve(ctx, httpLn) }})
		}
		if udpConn != nil {
			d.info.TrackerUDP = "udp://" + dialable(udpConn.LocalAddr()) + "/announce"
			log.Info("UDP tracker", "announce", d.info.TrackerUDP)
			conn := udpConn
			if p.overlay != nil {
				conn = p.overlay.t.Demux() // TSUP packets to the overlay, BEP 15 to the front
			}
			faces = append(faces, face{"UDP tracker", func(ctx context.Context) error { return front.ServeUDP(ctx, conn) }})
		}
	}
	if publicLn != nil {
		pf, err := p.startPublic(publicLn, publicConn)
		if err != nil {
			return nil, err
		}
		faces = append(faces, pf...)
	}
	if d.node != nil {
		d.node.LogNextSteps(d.info.TrackerHTTP)
	}
	api := localapi.NewServer(&apiBackend{n: p.dht, m: p.metrics.sink(), info: &d.info, overlay: p.overlay, bridge: p.bridge}, p.apiOptions())
	faces = append(faces, face{"local API", func(ctx context.Context) error { return api.Serve(ctx, ln) }})
	if f, ok := p.metrics.face(log); ok {
		d.info.Metrics = "http://" + p.metrics.ln.Addr().String() + "/"
		faces = append(faces, f)
	}
	return faces, nil
}

// newFront builds the tracker front for the local clients: the DHT node
// publishes and finds them; TSUP and the bridge hear of every publication
// change and add their peers to every answer.
func (p *parts) newFront() (*tracker.Tracker, error) {
	tcfg := tracker.DefaultConfig()
	tcfg.Logger = p.log.With("component", "tracker")
	// The front serves the clients of one host, all from one address:
	// per-address shares of swarms and client slots, made against one
	// address flooding a public tracker, would only cap a seedbox here.
	tcfg.SwarmClientsPerAddr, tcfg.MinSwarmsPerAddr, tcfg.NewSwarmsPerAddr = 0, 0, 0
	// The node ranks the peers it returns; the front keeps that share of
	// each client's answer for the nearest (issue 16).
	if p.cfg.Node != nil { // nil: a plain tracker without the DHT
		tcfg.Locality = p.cfg.Node.Locality
	}
	if p.overlay != nil {
		tcfg.Live = append(tcfg.Live, p.overlay)
		tcfg.Listeners = append(tcfg.Listeners, p.overlay)
	}
	if p.bridge != nil {
		tcfg.Live = append(tcfg.Live, p.bridge)
		tcfg.Listeners = append(tcfg.Listeners, p.bridge)
	}
	return tracker.New(&frontNode{n: p.dht, m: p.metrics.sink(), front: "tracker", publish: true, bridge: p.bridge}, tcfg)
}

// apiOptions are the local API's views of the parts that run.
func (p *parts) apiOptions() localapi.Options {
	opts := localapi.Options{Logger: p.log.With("component", "localapi")}
	if p.overlay != nil {
		opts.TSUP = p.overlay
	}
	if p.bridge != nil {
		opts.Bridge = &bridgeView{b: p.bridge, published: p.published}
	}
	return opts
}

// listenFront opens the tracker front's sockets; an empty address leaves
// that transport off.
func listenFront(ctx context.Context, cfg *FrontConfig) (net.Listener, net.PacketConn, error) {
	if cfg == nil {
		return nil, nil, nil
	}
	var lc net.ListenConfig
	var httpLn net.Listener
	var udpConn net.PacketConn
	var err error
	if cfg.HTTP != "" {
		if httpLn, err = lc.Listen(ctx, "tcp", cfg.HTTP); err != nil {
			return nil, nil, fmt.Errorf("HTTP tracker: %w", err)
		}
	}
	if cfg.UDP != "" {
		if udpConn, err = lc.ListenPacket(ctx, "udp", cfg.UDP); err != nil {
			if httpLn != nil {
				httpLn.Close()
			}
			return nil, nil, fmt.Errorf("UDP tracker: %w", err)
		}
	}
	return httpLn, udpConn, nil
}

// dialable is where a client on this host reaches a socket bound to a:
// a wildcard address (0.0.0.0, [::]), which no client can announce to, is
// named by the loopback address of its family.
func dialable(a net.Addr) string {
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil || !ap.Addr().IsUnspecified() {
		return a.String()
	}
	lo := netip.IPv6Loopback()
	if ap.Addr().Is4() {
		lo = netip.AddrFrom4([4]byte{127, 0, 0, 1})
	}
	return netip.AddrPortFrom(lo, ap.Port()).String()
}
