package daemon

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/kadtracker/kadtracker/node/localapi"
	"github.com/kadtracker/kadtracker/node/tracker"
	"github.com/kadtracker/kadtracker/node/tsup"
	"github.com/kadtracker/kadtracker/records"
)

// TSUPConfig links the daemon into a TSUP overlay: trackers linked
// statically over UDP that unify the swarms they share.
type TSUPConfig struct {
	// LinksFile lists the links, one per line (tsup.ParseLinks).
	LinksFile string
	// Overlay holds the timers; its Links and Logger are set from the file
	// and the daemon's logger.
	Overlay tsup.Config
	// AdvertiseIP is where other trackers' clients reach this host's
	// clients; the zero Addr means the UDP tracker's address, which must
	// then not be a wildcard.
	AdvertiseIP netip.Addr
	// Publish puts the peers learned over TSUP into the DHT as bridged
	// records, so DHT-only users meet the overlay's swarms.
	Publish bool
}

// open starts the overlay on the UDP tracker's socket, or returns nil when
// TSUP is off.
func (c *TSUPConfig) open(ctx context.Context, udpConn net.PacketConn, log *slog.Logger) (*overlay, error) {
	if c == nil {
		return nil, nil
	}
	if udpConn == nil {
		return nil, errors.New("--tsup-links: TSUP shares the UDP tracker's port; --tracker-udp must not be empty")
	}
	ip, err := c.advertiseIP(udpConn)
	if err != nil {
		return nil, err
	}
	file, err := os.Open(c.LinksFile)
	if err != nil {
		return nil, fmt.Errorf("--tsup-links: %w", err)
	}
	links, err := tsup.ParseLinks(file)
	file.Close()
	if err != nil {
		return nil, fmt.Errorf("--tsup-links %s: %w", c.LinksFile, err)
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := tsup.ResolveLinks(rctx, links, nil); err != nil {
		return nil, fmt.Errorf("--tsup-links %s: %w", c.LinksFile, err)
	}
	cfg := c.Overlay
	cfg.Links = links
	cfg.Logger = log
	t, err := tsup.New(cfg, udpConn)
	if err != nil {
		return nil, fmt.Errorf("TSUP: %w", err)
	}
	return &overlay{t: t, ip: ip}, nil
}

func (c *TSUPConfig) advertiseIP(udpConn net.PacketConn) (netip.Addr, error) {
	if c.AdvertiseIP.IsValid() {
		return c.AdvertiseIP.Unmap(), nil
	}
	ap, err := netip.ParseAddrPort(udpConn.LocalAddr().String())
	if err != nil || ap.Addr().IsUnspecified() {
		return netip.Addr{}, fmt.Errorf("--tsup-links: the UDP tracker listens on %s; say which address other trackers' clients reach this host at with --tsup-advertise-ip", udpConn.LocalAddr())
	}
	return ap.Addr().Unmap(), nil
}

// overlay is a running TSUP overlay and the address this host's clients are
// advertised at. To the tracker front it is a listener (this host's clients
// go into the overlay) and a live source (the overlay's peers come out); to
// the local API it is the TSUP view.
type overlay struct {
	t  *tsup.Transport
	ip netip.Addr
}

var (
	_ tracker.Listener     = (*overlay)(nil)
	_ tracker.LiveSource   = (*overlay)(nil)
	_ localapi.TSUPBackend = (*overlay)(nil)
)

func (o *overlay) Announce(key records.Key, port uint16, seed bool) error {
	ih, ok := key.TrackerInfohash()
	if !ok {
		return nil
	}
	return o.t.SetOwn(ih, []tsup.Peer{{Addr: netip.AddrPortFrom(o.ip, port), Seed: seed}})
}

func (o *overlay) Withdraw(key records.Key) {
	if ih, ok := key.TrackerInfohash(); ok {
		_ = o.t.SetOwn(ih, nil)
	}
}

// LivePeers are the peers the overlay learned from other trackers. The
// front reads them on every answer, so they reach clients within an update
// round rather than after the lookup cache's TTL.
func (o *overlay) LivePeers(key records.Key) []tracker.Peer {
	ih, ok := key.TrackerInfohash()
	if !ok {
		return nil
	}
	var out []tracker.Peer
	for _, p := range o.t.Peers(ih) {
		if p.Origin != tsup.Own {
			out = append(out, tracker.Peer{Endpoint: p.Addr, Seed: p.Seed})
		}
	}
	return out
}

// apiPeers are LivePeers as `kadtracker peers` shows them (source "tsup").
func (o *overlay) apiPeers(key records.Key) []localapi.Peer {
	var out []localapi.Peer
	for _, p := range o.LivePeers(key) {
		out = append(out, localapi.Peer{IP: ipString(p.Endpoint.Addr()), Port: p.Endpoint.Port(), Seed: p.Seed, Source: "tsup"})
	}
	return out
}

// TSUPLinks and TSUPSwarms serve the paper's trackers and swarms pages on
// the local API.
func (o *overlay) TSUPLinks(context.Context) ([]localapi.TSUPLink, error) {
	var out []localapi.TSUPLink
	for _, l := range o.t.Links() {
		out = append(out, localapi.TSUPLink{
			Addr: l.Addr.String(), Name: l.Name, External: l.External, State: l.State,
			Extended: l.Extended, MAC: l.MAC, Border: l.Border,
			LastRecv: l.LastRecv.UTC(), LastSent: l.LastSent.UTC(),
			Mandates: l.Mandates, Swarms: l.Swarms, Down: l.Down,
		})
	}
	return out, nil
}

func (o *overlay) TSUPSwarms(context.Context) ([]localapi.TSUPSwarm, error) {
	var out []localapi.TSUPSwarm
	for _, s := range o.t.Swarms() {
		out = append(out, localapi.TSUPSwarm{
			Infohash: hex.EncodeToString(s.Infohash[:]), Local: s.Local, Trackers: s.Trackers,
			InternalLeader: s.InternalLeader, ExternalLeader: s.ExternalLeader,
			Own: s.Own, Internal: s.Internal, External: s.External,
		})
	}
	return out, nil
}

// publishOverlay keeps the peers the overlay learned from other trackers
// published in the DHT as bridged records (TSUPConfig.Publish), so DHT-only
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
