package main

import (
	"context"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kadtracker/kadtracker/bootstrap"
	"github.com/kadtracker/kadtracker/node"
	"github.com/kadtracker/kadtracker/node/localapi"
	"github.com/kadtracker/kadtracker/node/tracker"
	"github.com/kadtracker/kadtracker/node/tracker/bridge"
	"github.com/kadtracker/kadtracker/records"
)

// bridgeFlags configure the bridge to classic trackers.
type bridgeFlags struct {
	trackers []string
	// publish puts the trackers' peers into the DHT as bridged records.
	publish bool
}

func (f *bridgeFlags) register(fs *flag.FlagSet) {
	fs.Var((*urlList)(&f.trackers), "bridge-trackers", "comma-separated announce `URLS` of classic trackers (http://, https://, udp://) to announce this host's clients to as well; their peers join the answers")
	fs.BoolVar(&f.publish, "bridge-publish", true, "publish the peers learned from --bridge-trackers into the DHT as bridged records, so DHT-only users meet the classic swarms")
}

// urlList is a comma-separated list of tracker URLs; a repeated flag adds.
type urlList []string

func (l *urlList) String() string { return strings.Join(*l, ",") }

func (l *urlList) Set(v string) error {
	for _, s := range bootstrap.SplitList(v) {
		if _, err := bridge.ParseURL(s); err != nil {
			return err
		}
		*l = append(*l, s)
	}
	return nil
}

// bridgeSettle is how long the first lookup of a swarm waits for the
// classic trackers' first answers. The front waits for that lookup only up
// to its FirstLookupWait, so a slow tracker cannot delay an answer longer.
const bridgeSettle = time.Second

// open starts the Announcer, or returns nil without trackers. onPeers
// receives the merged peers of a swarm after each answer (may be nil).
func (f *bridgeFlags) open(logger *slog.Logger, onPeers func([20]byte, []netip.AddrPort)) (*bridge.Announcer, error) {
	if len(f.trackers) == 0 {
		return nil, nil
	}
	cfg := bridge.DefaultConfig()
	cfg.Trackers = f.trackers
	cfg.Logger = logger
	cfg.OnPeers = onPeers
	a, err := bridge.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("--bridge-trackers: %w", err)
	}
	return a, nil
}

// onTrackerPeers hands a swarm's peers from the classic trackers to the
// publisher, when bridged records are published.
func (b *apiBackend) onTrackerPeers(ih [20]byte, peers []netip.AddrPort) {
	if b.published != nil {
		b.published.Set("tracker", records.SwarmKey(ih), peers)
	}
}

// bridgeNode announces this host's clients to the classic trackers too and
// puts the trackers' peers into the front's answers, around the DHT node.
type bridgeNode struct {
	tracker.Node
	a   *bridge.Announcer
	pub *bridgedPublisher // nil: the trackers' peers are not published
	log *slog.Logger
}

func (n bridgeNode) Announce(ctx context.Context, key records.Key, port uint16, seed bool) error {
	if ih, ok := key.TrackerInfohash(); ok {
		if err := n.a.Announce(ih, port, seed); err != nil {
			n.log.Warn("not bridged", "infohash", key, "err", err)
		}
	}
	return n.Node.Announce(ctx, key, port, seed)
}

func (n bridgeNode) Withdraw(ctx context.Context, key records.Key) error {
	if ih, ok := key.TrackerInfohash(); ok {
		n.a.Withdraw(ih)
	}
	if n.pub != nil {
		n.pub.Set("tracker", key, nil)
	}
	return n.Node.Withdraw(ctx, key)
}

// Lookup is the DHT's answer; for a swarm the bridge has just started, it
// also gives the trackers up to bridgeSettle to answer, so that the
// client's first answer (the only one qBittorrent and rtorrent use for
// minutes) has their peers. The peers themselves come through LivePeers.
func (n bridgeNode) Lookup(ctx context.Context, key records.Key, want int) (tracker.Swarm, error) {
	start := time.Now()
	sw, err := n.Node.Lookup(ctx, key, want)
	if ih, ok := key.TrackerInfohash(); ok {
		n.a.Settle(ctx, ih, bridgeSettle-time.Since(start))
	}
	return sw, err
}

// LivePeers are the trackers' latest peers, and those of whatever the
// bridge wraps (the TSUP overlay).
func (n bridgeNode) LivePeers(key records.Key) []tracker.Peer {
	var out []tracker.Peer
	if src, ok := n.Node.(tracker.LiveSource); ok {
		out = src.LivePeers(key)
	}
	if ih, ok := key.TrackerInfohash(); ok {
		for _, p := range n.a.Peers(ih) {
			// A tracker hands this host's client back to it (most send no
			// BEP 24 external ip): an address of this host is marked
			// Local, so the front never gives a client its own endpoint.
			out = append(out, tracker.Peer{Endpoint: p.Addr, Local: hostAddrs.has(p.Addr.Addr())})
		}
	}
	return out
}

// hostAddrs are this host's interface addresses, read at most once every
// 30 seconds.
var hostAddrs = &addrCache{}

type addrCache struct {
	mu    sync.Mutex
	read  time.Time
	addrs []netip.Addr
}

func (c *addrCache) has(a netip.Addr) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.read) > 30*time.Second {
		c.read, c.addrs = time.Now(), nil
		if ifas, err := net.InterfaceAddrs(); err == nil {
			for _, ifa := range ifas {
				if p, err := netip.ParsePrefix(ifa.String()); err == nil {
					c.addrs = append(c.addrs, p.Addr().Unmap())
				}
			}
		}
	}
	return slices.Contains(c.addrs, a.Unmap())
}

var _ tracker.LiveSource = bridgeNode{}

// BridgeEnabled and Bridge serve GET /v1/bridge.
func (b apiBackend) BridgeEnabled() bool { return b.bridge != nil }

func (b apiBackend) Bridge(context.Context) (localapi.BridgeState, error) {
	st := localapi.BridgeState{Trackers: b.bridge.Trackers()}
	if b.published != nil {
		st.Published = b.published.Len()
	}
	for _, s := range b.bridge.State() {
		bs := localapi.BridgeSwarm{Infohash: hex.EncodeToString(s.Infohash[:]), Port: s.Port, Seed: s.Seed, Stopping: !s.Active}
		for _, t := range s.Trackers {
			bs.Trackers = append(bs.Trackers, localapi.BridgeAnnounce{
				URL: t.URL, LastAnnounce: utc(t.LastAnnounce), LastSuccess: utc(t.LastSuccess), NextAnnounce: utc(t.NextAnnounce),
				IntervalS: int(t.Interval / time.Second), MinIntervalS: int(t.MinInterval / time.Second),
				Seeders: t.Seeders, Leechers: t.Leechers, Peers: t.Peers, Fails: t.Fails,
				Error: t.Error, Failure: t.Failure, Warning: t.Warning,
			})
		}
		st.Swarms = append(st.Swarms, bs)
	}
	return st, nil
}

var _ localapi.BridgeBackend = apiBackend{}

func utc(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC()
}

// livePeers are the peers of key this daemon knows besides the DHT's: the
// classic trackers' (source "tracker") and the TSUP overlay's ("tsup"),
// for `kadtracker peers`.
func (b apiBackend) livePeers(key records.Key) []localapi.Peer {
	ih, ok := key.Swarm().TrackerInfohash()
	if !ok {
		return nil
	}
	var out []localapi.Peer
	if b.bridge != nil {
		for _, p := range b.bridge.Peers(ih) {
			out = append(out, localapi.Peer{IP: ipString(p.Addr.Addr()), Port: p.Addr.Port(), Source: "tracker", Tracker: p.Tracker})
		}
	}
	if b.overlay != nil {
		for _, p := range (overlayNode{o: b.overlay}).LivePeers(key) {
			out = append(out, localapi.Peer{IP: ipString(p.Endpoint.Addr()), Port: p.Endpoint.Port(), Seed: p.Seed, Source: "tsup"})
		}
	}
	return out
}

// bridgeCmd is `kadtracker bridge`: the bridge's trackers and swarms.
type bridgeCmd struct{ clientOpts }

func setupBridge(fs *flag.FlagSet, getenv func(string) string) func([]string) (runner, error) {
	c := &bridgeCmd{}
	return clientSetup(fs, getenv, &c.clientOpts, nil, func([]string) (runner, error) { return c, nil })
}

func (c *bridgeCmd) run(ctx context.Context, stdout, _ io.Writer) error {
	var st localapi.BridgeState
	if err := c.call(func(cl *localapi.Client) (err error) { st, err = cl.Bridge(ctx); return err }); err != nil {
		return err
	}
	st.Trackers, st.Swarms = nonNilSlice(st.Trackers), nonNilSlice(st.Swarms)
	return c.output(stdout, st, func(w io.Writer) {
		fmt.Fprintf(w, "trackers:\t%s\n", strings.Join(st.Trackers, ", "))
		fmt.Fprintf(w, "published:\t%d swarms as bridged records\n\n", st.Published)
		if len(st.Swarms) == 0 {
			fmt.Fprintln(w, "no swarm bridged: no local client announces")
			return
		}
		fmt.Fprintf(w, "INFOHASH\tPORT\tTRACKER\tLAST ANSWER\tNEXT\tPEERS\tSEEDERS\tLEECHERS\tERROR\n")
		for _, s := range st.Swarms {
			for _, t := range s.Trackers {
				next := "running"
				switch {
				case s.Stopping:
					next = "stopping"
				case !t.NextAnnounce.IsZero():
					next = "in " + time.Until(t.NextAnnounce).Round(time.Second).String()
				}
				errText := t.Error
				if t.Fails > 1 {
					errText = fmt.Sprintf("%s (%d in a row)", errText, t.Fails)
				}
				fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t%d\t%d\t%d\t%s\n", s.Infohash, s.Port, t.URL, ago(t.LastSuccess), next, t.Peers, t.Seeders, t.Leechers, orDash(errText))
			}
		}
	})
}

// bridgedNode is what the publisher needs of the DHT node.
type bridgedNode interface {
	PublishBridged(ctx context.Context, key records.Key, endpoints []netip.AddrPort) (node.AnnounceResult, error)
	WithdrawBridged(ctx context.Context, key records.Key) error
}

// bridgedPublisher keeps peers this daemon knows of but that do not
// announce through a daemon of their own (the classic trackers' peers, the
// public tracker's clients) published in the DHT as bridged records, so
// DHT-only users meet them. Each source (bridge, public tracker) sets a
// key's endpoints; the node publishes their union, once per change, and
// republishes it on its own until it is withdrawn.
type bridgedPublisher struct {
	n   bridgedNode
	log *slog.Logger

	mu        sync.Mutex
	sources   map[records.Key]map[string][]netip.AddrPort
	dirty     map[records.Key]bool
	published map[records.Key][]netip.AddrPort
	kick      chan struct{}
}

func newBridgedPublisher(n bridgedNode, logger *slog.Logger) *bridgedPublisher {
	return &bridgedPublisher{
		n: n, log: logger.With("component", "bridged-records"),
		sources:   make(map[records.Key]map[string][]netip.AddrPort),
		dirty:     make(map[records.Key]bool),
		published: make(map[records.Key][]netip.AddrPort),
		kick:      make(chan struct{}, 1),
	}
}

// Set replaces what source knows of key; nil withdraws it. It never blocks.
func (p *bridgedPublisher) Set(source string, key records.Key, eps []netip.AddrPort) {
	p.mu.Lock()
	m := p.sources[key]
	switch {
	case len(eps) > 0 && m == nil:
		m = make(map[string][]netip.AddrPort)
		p.sources[key] = m
		fallthrough
	case len(eps) > 0:
		m[source] = slices.Clone(eps)
	case m != nil:
		delete(m, source)
		if len(m) == 0 {
			delete(p.sources, key)
		}
	default:
		p.mu.Unlock()
		return
	}
	p.dirty[key] = true
	p.mu.Unlock()
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// Len is the number of keys published.
func (p *bridgedPublisher) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.published)
}

// publishSpacing: a key's bridged record is published at most this often,
// whatever its sources say; the last change is published after it.
const publishSpacing = 5 * time.Second

// run publishes the changes until ctx ends.
func (p *bridgedPublisher) run(ctx context.Context) error {
	t := time.NewTicker(publishSpacing)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-p.kick:
		case <-t.C:
		}
		p.flush(ctx)
	}
}

// flush publishes every key whose endpoints changed.
func (p *bridgedPublisher) flush(ctx context.Context) {
	type job struct {
		key records.Key
		eps []netip.AddrPort
	}
	var jobs []job
	p.mu.Lock()
	for k := range p.dirty {
		var union []netip.AddrPort
		for _, eps := range p.sources[k] {
			for _, ep := range eps {
				if !slices.Contains(union, ep) {
					union = append(union, ep)
				}
			}
		}
		slices.SortFunc(union, netip.AddrPort.Compare)
		if len(union) > records.MaxEndpoints {
			union = union[:records.MaxEndpoints]
		}
		if !slices.Equal(union, p.published[k]) {
			jobs = append(jobs, job{k, union})
		}
		delete(p.dirty, k)
	}
	p.mu.Unlock()
	for _, j := range jobs {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		var err error
		if len(j.eps) == 0 {
			err = p.n.WithdrawBridged(cctx, j.key)
		} else {
			var res node.AnnounceResult
			res, err = p.n.PublishBridged(cctx, j.key, j.eps)
			if err == nil {
				p.log.Debug("published", "infohash", j.key, "endpoints", len(j.eps), "stored_on", res.StoredOn)
			}
		}
		cancel()
		p.mu.Lock()
		switch {
		case err != nil && ctx.Err() == nil:
			p.log.Info("bridged record not published; will retry", "infohash", j.key, "err", err)
			p.dirty[j.key] = true
		case len(j.eps) == 0:
			delete(p.published, j.key)
		default:
			p.published[j.key] = j.eps
		}
		p.mu.Unlock()
	}
}
