package main

import (
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/kadtracker/kadtracker/node"
	"github.com/kadtracker/kadtracker/node/localapi"
	"github.com/kadtracker/kadtracker/node/tracker"
	"github.com/kadtracker/kadtracker/node/tsup"
	"github.com/kadtracker/kadtracker/records"
	"github.com/libp2p/go-libp2p/core/peer"
)

// tsupFlags configure the TSUP overlay: trackers linked statically over UDP
// that unify the swarms they share.
type tsupFlags struct {
	links                     string
	hello, update, disconnect time.Duration
	advertise                 string
	publish                   bool
}

func (f *tsupFlags) register(fs *flag.FlagSet) {
	def := tsup.DefaultConfig()
	fs.StringVar(&f.links, "tsup-links", "", "`FILE` of TSUP links, one per line: host:port internal|external [key=HEX]; empty: no TSUP overlay")
	fs.DurationVar(&f.hello, "tsup-hello", def.HelloInterval, "TSUP keep-alive interval")
	fs.DurationVar(&f.update, "tsup-update", def.UpdateInterval, "TSUP update round interval")
	fs.DurationVar(&f.disconnect, "tsup-disconnect", def.DisconnectInterval, "drop a TSUP link silent this long")
	fs.BoolVar(&f.publish, "tsup-publish", false, "publish the peers learned over TSUP into the DHT as bridged records")
	fs.StringVar(&f.advertise, "tsup-advertise-ip", "", "`IP` other trackers' clients reach this host's clients at (default: the UDP tracker's address when it is not a wildcard)")
}

// open starts the overlay on the UDP tracker's socket, or returns nil when
// no links file is given.
func (f *tsupFlags) open(ctx context.Context, udpConn net.PacketConn, logger *slog.Logger) (*overlay, error) {
	if f.links == "" {
		return nil, nil
	}
	if udpConn == nil {
		return nil, errors.New("--tsup-links: TSUP shares the UDP tracker's port; --tracker-udp must not be empty")
	}
	ip, err := f.advertiseIP(udpConn)
	if err != nil {
		return nil, err
	}
	file, err := os.Open(f.links)
	if err != nil {
		return nil, fmt.Errorf("--tsup-links: %w", err)
	}
	links, err := tsup.ParseLinks(file)
	file.Close()
	if err != nil {
		return nil, fmt.Errorf("--tsup-links %s: %w", f.links, err)
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := tsup.ResolveLinks(rctx, links, nil); err != nil {
		return nil, fmt.Errorf("--tsup-links %s: %w", f.links, err)
	}
	cfg := tsup.DefaultConfig()
	cfg.HelloInterval, cfg.UpdateInterval, cfg.DisconnectInterval = f.hello, f.update, f.disconnect
	cfg.Links = links
	cfg.Logger = logger
	t, err := tsup.New(cfg, udpConn)
	if err != nil {
		return nil, fmt.Errorf("TSUP: %w", err)
	}
	return &overlay{t: t, ip: ip}, nil
}

func (f *tsupFlags) advertiseIP(udpConn net.PacketConn) (netip.Addr, error) {
	if f.advertise != "" {
		ip, err := netip.ParseAddr(f.advertise)
		if err != nil {
			return netip.Addr{}, fmt.Errorf("--tsup-advertise-ip: %w", err)
		}
		return ip.Unmap(), nil
	}
	ap, err := netip.ParseAddrPort(udpConn.LocalAddr().String())
	if err != nil || ap.Addr().IsUnspecified() {
		return netip.Addr{}, fmt.Errorf("--tsup-links: the UDP tracker listens on %s; say which address other trackers' clients reach this host at with --tsup-advertise-ip", udpConn.LocalAddr())
	}
	return ap.Addr().Unmap(), nil
}

// overlay is a running TSUP overlay and the address this host's clients are
// advertised at.
type overlay struct {
	t  *tsup.Transport
	ip netip.Addr
}

// overlayNode puts this daemon's clients into the overlay and the overlay's
// peers into the front's answers, around the DHT node.
type overlayNode struct {
	tracker.Node
	o *overlay
}

func (n overlayNode) Announce(ctx context.Context, key records.Key, port uint16, seed bool) error {
	if ih, ok := key.TrackerInfohash(); ok {
		if err := n.o.t.SetOwn(ih, []tsup.Peer{{Addr: netip.AddrPortFrom(n.o.ip, port), Seed: seed}}); err != nil {
			return err
		}
	}
	return n.Node.Announce(ctx, key, port, seed)
}

func (n overlayNode) Withdraw(ctx context.Context, key records.Key) error {
	if ih, ok := key.TrackerInfohash(); ok {
		_ = n.o.t.SetOwn(ih, nil)
	}
	return n.Node.Withdraw(ctx, key)
}

// LivePeers are the peers the overlay learned from other trackers. The
// front reads them on every answer, so they reach clients within an update
// round rather than after the lookup cache's TTL.
func (n overlayNode) LivePeers(key records.Key) []tracker.Peer {
	ih, ok := key.TrackerInfohash()
	if !ok {
		return nil
	}
	var out []tracker.Peer
	for _, p := range n.o.t.Peers(ih) {
		if p.Origin != tsup.Own {
			out = append(out, tracker.Peer{Endpoint: p.Addr, Seed: p.Seed})
		}
	}
	return out
}

var _ tracker.LiveSource = overlayNode{}

// TSUPEnabled, TSUPLinks and TSUPSwarms serve the paper's trackers and
// swarms pages on the local API.
func (b apiBackend) TSUPEnabled() bool { return b.overlay != nil }

func (b apiBackend) TSUPLinks(context.Context) ([]localapi.TSUPLink, error) {
	var out []localapi.TSUPLink
	for _, l := range b.overlay.t.Links() {
		out = append(out, localapi.TSUPLink{
			Addr: l.Addr.String(), Name: l.Name, External: l.External, State: l.State,
			Extended: l.Extended, MAC: l.MAC, Border: l.Border,
			LastRecv: l.LastRecv.UTC(), LastSent: l.LastSent.UTC(),
			Mandates: l.Mandates, Swarms: l.Swarms, Down: l.Down,
		})
	}
	return out, nil
}

func (b apiBackend) TSUPSwarms(context.Context) ([]localapi.TSUPSwarm, error) {
	var out []localapi.TSUPSwarm
	for _, s := range b.overlay.t.Swarms() {
		out = append(out, localapi.TSUPSwarm{
			Infohash: hex.EncodeToString(s.Infohash[:]), Local: s.Local, Trackers: s.Trackers,
			InternalLeader: s.InternalLeader, ExternalLeader: s.ExternalLeader,
			Own: s.Own, Internal: s.Internal, External: s.External,
		})
	}
	return out, nil
}

var _ localapi.TSUPBackend = apiBackend{}

// offlineNode stands in for the DHT node under --dht=false: the daemon is a
// plain tracker for its clients (and the TSUP overlay), publishing nothing.
type offlineNode struct{ started time.Time }

func (offlineNode) Announce(context.Context, records.Key, uint16, bool) (node.AnnounceResult, error) {
	return node.AnnounceResult{}, nil
}
func (offlineNode) Withdraw(context.Context, records.Key) error { return nil }
func (offlineNode) Lookup(context.Context, records.Key, int) (node.LookupResult, error) {
	return node.LookupResult{}, nil
}
func (offlineNode) Records(context.Context) ([]records.Entry, error) { return nil, nil }
func (offlineNode) Routing() []node.RoutingPeer                      { return nil }
func (o offlineNode) Stats() node.Stats                              { return node.Stats{DHTMode: "off", Started: o.started} }
func (offlineNode) ID() peer.ID                                      { return "" }

// tsupCmd is `kadtracker tsup links|swarms`: the paper's trackers and swarms
// pages, from the daemon's local API.
type tsupCmd struct {
	clientOpts
	page string
}

func setupTSUP(fs *flag.FlagSet, getenv func(string) string) func([]string) (runner, error) {
	c := &tsupCmd{}
	return clientSetup(fs, getenv, &c.clientOpts, []string{"links|swarms"}, func(pos []string) (runner, error) {
		if pos[0] != "links" && pos[0] != "swarms" {
			return nil, fmt.Errorf("unknown page %q: want links or swarms", pos[0])
		}
		c.page = pos[0]
		return c, nil
	})
}

func (c *tsupCmd) run(ctx context.Context, stdout, _ io.Writer) error {
	if c.page == "links" {
		var links []localapi.TSUPLink
		if err := c.call(func(cl *localapi.Client) (err error) { links, err = cl.TSUPLinks(ctx); return err }); err != nil {
			return err
		}
		links = nonNilSlice(links)
		return c.output(stdout, localapi.TSUPLinksResult{Links: links}, func(w io.Writer) {
			fmt.Fprintf(w, "LINK\tNETWORK\tSTATE\tSWARMS\tMANDATES\tLAST PACKET\n")
			for _, l := range links {
				network := "internal"
				if l.External {
					network = "external"
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%d\t%s\n", l.Addr, network, l.State, l.Swarms, l.Mandates, ago(l.LastRecv))
			}
		})
	}
	var swarms []localapi.TSUPSwarm
	if err := c.call(func(cl *localapi.Client) (err error) { swarms, err = cl.TSUPSwarms(ctx); return err }); err != nil {
		return err
	}
	swarms = nonNilSlice(swarms)
	return c.output(stdout, localapi.TSUPSwarmsResult{Swarms: swarms}, func(w io.Writer) {
		fmt.Fprintf(w, "INFOHASH\tTRACKERS\tLEADER\tOWN\tINTERNAL\tEXTERNAL\n")
		for _, s := range swarms {
			fmt.Fprintf(w, "%s\t%d\t%s\t%d\t%d\t%d\n", s.Infohash, s.Trackers, orDash(s.InternalLeader), s.Own, s.Internal, s.External)
		}
	})
}

func nonNilSlice[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// ago is how long before now t was, "-" for never.
func ago(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return time.Since(t).Round(time.Second).String() + " ago"
}

// publishOverlay keeps the peers the overlay learned from other trackers
// published in the DHT as bridged records (--tsup-publish), so DHT-only
// users meet the overlay's swarms. It reads the overlay once per update
// round: TSUP peers change no faster.
func publishOverlay(ctx context.Context, o *overlay, pub *bridgedPublisher, every time.Duration) error {
	t := time.NewTicker(every)
	defer t.Stop()
	published := make(map[records.Key]bool)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		current := make(map[records.Key]bool)
		for _, s := range o.t.Swarms() {
			var eps []netip.AddrPort
			for _, p := range o.t.Peers(s.Infohash) {
				if p.Origin != tsup.Own {
					eps = append(eps, p.Addr)
				}
			}
			if len(eps) == 0 {
				continue
			}
			key := records.SwarmKey(s.Infohash)
			pub.Set("tsup", key, eps)
			current[key] = true
		}
		for key := range published {
			if !current[key] {
				pub.Set("tsup", key, nil)
			}
		}
		published = current
	}
}
