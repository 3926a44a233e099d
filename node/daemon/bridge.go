package daemon

import (
	"context"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/kadtracker/kadtracker/node/localapi"
	"github.com/kadtracker/kadtracker/node/tracker"
	trackerbridge "github.com/kadtracker/kadtracker/node/tracker/bridge"
	"github.com/kadtracker/kadtracker/records"
)

// BridgeConfig announces the local clients to classic trackers too and
// merges their peers into the answers.
type BridgeConfig struct {
	// Trackers are announce URLs (http://, https://, udp://).
	Trackers []string
	// Publish puts the trackers' peers into the DHT as bridged records, so
	// DHT-only users meet the classic swarms.
	Publish bool
}

// open starts the bridge, or returns nil without trackers. pub, when set,
// receives the trackers' peers of each swarm for publishing.
func (c *BridgeConfig) open(log *slog.Logger, pub *bridgedPublisher) (*bridge, error) {
	if c == nil || len(c.Trackers) == 0 {
		return nil, nil
	}
	cfg := trackerbridge.DefaultConfig()
	cfg.Trackers = c.Trackers
	cfg.Logger = log
	if pub != nil {
		cfg.OnPeers = func(ih [20]byte, peers []netip.AddrPort) {
			pub.Set("tracker", records.SwarmKey(ih), peers)
		}
	}
	a, err := trackerbridge.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("--bridge-trackers: %w", err)
	}
	return &bridge{a: a, pub: pub, host: &addrCache{}}, nil
}

// bridge is the running bridge to classic trackers. To the tracker front
// it is a listener (this host's clients are announced to the trackers) and
// a live source (the trackers' peers join every answer).
type bridge struct {
	a    *trackerbridge.Announcer
	pub  *bridgedPublisher // nil: the trackers' peers are not published
	host *addrCache
}

var (
	_ tracker.Listener   = (*bridge)(nil)
	_ tracker.LiveSource = (*bridge)(nil)
)

func (b *bridge) Announce(key records.Key, port uint16, seed bool) error {
	ih, ok := key.TrackerInfohash()
	if !ok {
		return nil
	}
	return b.a.Announce(ih, port, seed)
}

func (b *bridge) Withdraw(key records.Key) {
	if ih, ok := key.TrackerInfohash(); ok {
		b.a.Withdraw(ih)
	}
	if b.pub != nil {
		b.pub.Set("tracker", key, nil)
	}
}

// LivePeers are the trackers' latest peers of key.
func (b *bridge) LivePeers(key records.Key) []tracker.Peer {
	ih, ok := key.TrackerInfohash()
	if !ok {
		return nil
	}
	var out []tracker.Peer
	for _, p := range b.a.Peers(ih) {
		// A tracker hands this host's client back to it (most send no BEP
		// 24 external ip): an address of this host is marked Local, so the
		// front never gives a client its own endpoint.
		out = append(out, tracker.Peer{Endpoint: p.Addr, Local: b.host.has(p.Addr.Addr())})
	}
	return out
}

// apiPeers are the trackers' peers as `kadtracker peers` shows them
// (source "tracker").
func (b *bridge) apiPeers(key records.Key) []localapi.Peer {
	ih, ok := key.TrackerInfohash()
	if !ok {
		return nil
	}
	var out []localapi.Peer
	for _, p := range b.a.Peers(ih) {
		out = append(out, localapi.Peer{IP: ipString(p.Addr.Addr()), Port: p.Addr.Port(), Source: "tracker", Tracker: p.Tracker})
	}
	return out
}

// bridgeView serves GET /v1/bridge.
type bridgeView struct {
	b         *bridge
	published *bridgedPublisher // nil: nothing published
}

var _ localapi.BridgeBackend = (*bridgeView)(nil)

func (v *bridgeView) Bridge(context.Context) (localapi.BridgeState, error) {
	st := localapi.BridgeState{Trackers: v.b.a.Trackers()}
	if v.published != nil {
		st.Published = v.published.Len()
	}
	for _, s := range v.b.a.State() {
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

func utc(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC()
}

// addrCache holds this host's interface addresses, read at most once every
// 30 seconds.
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
