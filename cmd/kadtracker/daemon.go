package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"

	"github.com/kadtracker/kadtracker/bootstrap"
	"github.com/kadtracker/kadtracker/node"
	"github.com/kadtracker/kadtracker/node/localapi"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// daemonCmd is `kadtracker run`.
type daemonCmd struct {
	node      node.Config
	rpcSocket string
	logLevel  slog.Level
	logFormat string
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
	fs.DurationVar(&d.node.RecordTTL, "record-ttl", d.node.RecordTTL, "how long a published record lives on storing nodes")
	fs.DurationVar(&d.node.RepublishInterval, "republish", d.node.RepublishInterval, "how often announced records are published again")
	fs.Var((*logLevel)(&d.logLevel), "log-level", "log `LEVEL`: debug, info, warn or error")
	fs.Var(oneOf{&d.logFormat, []string{"text", "json"}}, "log-format", "log `FORMAT`: text or json")
	// The BitTorrent tracker front (--tracker-http, --tracker-udp) and TSUP
	// add their flags here, and their faces in (*daemonCmd).run.

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
		return d, nil
	}
}

// face is one of the node's fronts: the local API now; the BitTorrent
// tracker and TSUP later. serve runs until ctx is done and then cleans up.
type face struct {
	name  string
	serve func(ctx context.Context) error
}

func (d *daemonCmd) run(ctx context.Context, _, stderr io.Writer) error {
	logger := newLogger(stderr, d.logFormat, d.logLevel)
	cfg := d.node
	cfg.Logger = logger
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("invalid configuration:\n  %s", strings.ReplaceAll(err.Error(), "\n", "\n  "))
	}
	// Take the socket first: a second daemon on this data dir stops here,
	// before it opens the store or the ports.
	ln, err := localapi.Listen(d.rpcSocket)
	if err != nil {
		return err
	}
	n, err := node.New(ctx, cfg)
	if err != nil {
		ln.Close()
		return fmt.Errorf("starting the node: %w", err)
	}
	st := n.Stats()
	logger.Info("kadtracker started", "peer_id", st.PeerID.String(), "data_dir", cfg.DataDir, "dht_mode", st.DHTMode, "replication", st.Replication)
	for _, a := range st.Addrs {
		logger.Info("listening", "addr", a.String())
	}
	logger.Info("local API", "socket", d.rpcSocket)

	api := localapi.NewServer(apiBackend{n}, logger.With("component", "localapi"))
	faces := []face{
		{"local API", func(ctx context.Context) error { return api.Serve(ctx, ln) }},
	}
	err = serveFaces(ctx, faces)
	if ctx.Err() != nil {
		logger.Info("stopping", "cause", context.Cause(ctx))
	}
	err = errors.Join(err, n.Close())
	logger.Info("stopped")
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
