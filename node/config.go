package node

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"github.com/kadtracker/kadtracker/node/vivaldi"
	"github.com/kadtracker/kadtracker/records"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// DHTMode chooses whether the node serves the DHT.
type DHTMode int

const (
	// ModeAuto serves the DHT unless AutoNAT finds the node unreachable
	// (kad-dht's ModeAutoServer), so loopback and LAN networks just work.
	ModeAuto DHTMode = iota
	ModeServer
	ModeClient
)

func (m DHTMode) String() string {
	switch m {
	case ModeAuto:
		return "auto"
	case ModeServer:
		return "server"
	case ModeClient:
		return "client"
	}
	return fmt.Sprintf("DHTMode(%d)", int(m))
}

// ParseDHTMode reads auto, server or client.
func ParseDHTMode(s string) (DHTMode, error) {
	switch s {
	case "auto", "":
		return ModeAuto, nil
	case "server":
		return ModeServer, nil
	case "client":
		return ModeClient, nil
	}
	return 0, fmt.Errorf("node: dht mode %q: want auto, server or client", s)
}

// Config configures a Node. Start from DefaultConfig.
type Config struct {
	// DataDir holds the identity key, the record store and remembered peers.
	// Empty means an ephemeral node: fresh key, in-memory store.
	DataDir string
	// ListenAddrs for the libp2p host (ignored when Host is set).
	ListenAddrs []ma.Multiaddr
	// BootstrapPeers are dialed at start, with the peers remembered from the
	// last run in DataDir.
	BootstrapPeers []peer.AddrInfo
	// MDNS finds peers on the LAN.
	MDNS bool
	// Replication is m: how many of the closest DHT nodes store each record.
	Replication int
	DHTMode     DHTMode
	// RecordTTL is how long a published record lives on storing nodes.
	RecordTTL time.Duration
	// RepublishInterval is how often announced records are published again;
	// it must be shorter than RecordTTL.
	RepublishInterval time.Duration
	// SerialRepublish republishes one key after another, each with a walk
	// of its own, instead of the scheduler's regions (schedule.go): the
	// old scheduler, kept for netsim's comparison.
	SerialRepublish bool
	// MaxRecordTTL is the longest TTL this node accepts from others.
	MaxRecordTTL time.Duration
	// BridgedRecordTTL is the TTL of a record carrying bridged endpoints
	// (PublishBridged), when shorter than RecordTTL: such peers come from
	// classic trackers and go stale sooner. It must exceed
	// RepublishInterval and be at most records.MaxBridgedTTL.
	BridgedRecordTTL time.Duration
	// RequestTimeout bounds one record-protocol request to one peer.
	RequestTimeout time.Duration
	// FullLookup makes Lookup wait for the whole DHT walk before it asks
	// the storing nodes. Off (the default), storing nodes are asked while
	// the walk runs and the lookup answers once a majority of the m
	// closest agree (see lookup_early.go): about two round trips instead
	// of five to eight.
	FullLookup bool
	// FullAnnounce makes Announce wait for the whole DHT walk before it
	// PUTs the record. Off (the default), the nodes near enough to be among
	// the m closest get it while the walk runs, the announce returns once
	// most of them took it, and the walk goes on to give it to the m
	// closest it finds (see announce_early.go).
	FullAnnounce bool
	// LocalBridgedEndpoints lets bridged endpoints be any unicast address.
	// Off (the default), a storing node refuses, and a lookup drops, a
	// bridged endpoint that is not global unicast (records.IsGlobal:
	// loopback, private, link-local, unique-local, CGNAT, documentation,
	// ... are not), so nobody can point users' clients at their own
	// host's or LAN's services. Only tests and netsim, whose every client
	// lives on loopback, turn it on.
	LocalBridgedEndpoints bool
	// BridgeQuorum is how many bridges, at distinct addresses (an IPv4
	// address, an IPv6 /64), must name a bridged endpoint before a lookup
	// serves it: one bridge alone could send every user of a swarm to
	// any 40 third parties. 2 by default; 1 trusts every bridge.
	BridgeQuorum int
	// Limits cap the record store. Limits.Exempt (default
	// records.DefaultExempt: loopback, private, link-local) also exempts
	// addresses from every per-address limit below (rates, stream caps per
	// peer, routing-table diversity, storing-node diversity), and from
	// libp2p's per-subnet connection limits on a host New builds. An empty
	// list exempts nothing; ParseExemptRanges reads one from a flag.
	// Validate refuses a range wider than an IPv4 /8 or IPv6 /7, which
	// would lift the limits for a large part of the internet.
	Limits records.Limits
	// Protect holds the limits against floods and Sybils.
	Protect Protection

	// Locality is the share of a lookup's answer given to the peers
	// nearest to this node by network coordinate, the rest drawn at random
	// (see locality.go); 0 turns ranking off, 1 is all nearest. Only peers
	// a majority of storing nodes vouch for are ranked.
	Locality float64
	// SignCoordinates puts this node's coordinate in the records it signs
	// (payload type 3). Off, records stay version 2, which daemons before
	// coordinates read too.
	SignCoordinates bool
	// CoordProbeInterval is how often a node whose coordinate has not
	// settled pings a routing-table peer for a sample (8 times less often
	// once settled); 0: only the round trips of real traffic.
	CoordProbeInterval time.Duration
	// Vivaldi holds the coordinate's constants (vivaldi.DefaultConfig).
	Vivaldi vivaldi.Config

	// Network names the kadtracker network to join: it sets the DHT's
	// protocol prefix and the rendezvous namespace, so separate networks
	// never mix. DefaultNetwork is the public one.
	Network string
	// NATPortMap asks the home router for a port mapping (UPnP IGD,
	// NAT-PMP) so that a node behind NAT can serve the DHT. Ignored when
	// Host is set.
	NATPortMap bool
	// Rendezvous finds other kadtracker nodes through a second DHT they
	// all know (by default the public libp2p Amino DHT) whenever the
	// routing table holds fewer than RendezvousHealthy peers.
	Rendezvous bool
	// RendezvousBootstrap are the peers the rendezvous DHT joins through;
	// DefaultConfig has the public Amino bootstrap peers.
	RendezvousBootstrap []peer.AddrInfo
	// RendezvousServe runs the rendezvous DHT as a server, for private
	// networks and tests that have no Amino DHT to lean on.
	RendezvousServe bool
	// RendezvousHealthy is the routing-table size at which rendezvous rests.
	RendezvousHealthy int
	// RendezvousRetry is the wait between rendezvous rounds; it doubles
	// while rounds fail, up to 16 times.
	RendezvousRetry time.Duration
	// StoreRecovery, when the record store in DataDir is damaged (see
	// records.ErrDamaged), moves it aside to records.damaged-<UTC time>
	// (never deleting it) and starts with an empty store, logging at
	// Error: the DHT and the announcers' republishing refill it. Without
	// it New fails with a message saying so.
	StoreRecovery bool

	// Host, when set, is used instead of building one (netsim, mocknet tests).
	// The node does not close it.
	Host host.Host
	// Store, when set, is used instead of opening one in DataDir. The node
	// closes it.
	Store records.Store
	// Clock is the node's time source; nil means time.Now.
	Clock  func() time.Time
	Logger *slog.Logger
}

// DefaultLocality is Config.Locality's default, from netsim's geographic
// runs (docs/netsim.md, "Locality").
const DefaultLocality = 0.75

// DefaultConfig returns the defaults the daemon runs with.
func DefaultConfig() Config {
	return Config{
		ListenAddrs: []ma.Multiaddr{
			ma.StringCast("/ip4/0.0.0.0/tcp/4001"),
			ma.StringCast("/ip4/0.0.0.0/udp/4001/quic-v1"),
		},
		Replication:       8,
		DHTMode:           ModeAuto,
		RecordTTL:         30 * time.Minute,
		RepublishInterval: 10 * time.Minute,
		MaxRecordTTL:      2 * time.Hour,
		BridgedRecordTTL:  15 * time.Minute,
		RequestTimeout:    10 * time.Second,
		BridgeQuorum:      2,
		Limits:            records.DefaultLimits(),
		Protect:           DefaultProtection(),

		Locality:           DefaultLocality,
		SignCoordinates:    true,
		CoordProbeInterval: 30 * time.Second,
		Vivaldi:            vivaldi.DefaultConfig(),

		Network:             DefaultNetwork,
		NATPortMap:          true,
		Rendezvous:          true,
		RendezvousBootstrap: dht.GetDefaultBootstrapPeerAddrInfos(),
		RendezvousHealthy:   4,
		RendezvousRetry:     30 * time.Second,
	}
}

// Validate reports every problem with c.
func (c Config) Validate() error {
	var errs []error
	if c.Host == nil && len(c.ListenAddrs) == 0 {
		errs = append(errs, errors.New("node: no listen addresses"))
	}
	if c.Replication < 1 || c.Replication > 64 {
		errs = append(errs, fmt.Errorf("node: replication %d out of range 1..64", c.Replication))
	}
	if c.DHTMode < ModeAuto || c.DHTMode > ModeClient {
		errs = append(errs, fmt.Errorf("node: unknown dht mode %d", int(c.DHTMode)))
	}
	if c.RecordTTL <= 0 {
		errs = append(errs, errors.New("node: record TTL must be positive"))
	}
	if c.RepublishInterval <= 0 || c.RepublishInterval >= c.RecordTTL {
		errs = append(errs, fmt.Errorf("node: republish interval %s must be positive and shorter than the record TTL %s", c.RepublishInterval, c.RecordTTL))
	}
	if c.MaxRecordTTL < c.RecordTTL {
		errs = append(errs, fmt.Errorf("node: max record TTL %s is shorter than our own TTL %s", c.MaxRecordTTL, c.RecordTTL))
	}
	if c.BridgedRecordTTL <= c.RepublishInterval || c.BridgedRecordTTL > records.MaxBridgedTTL {
		errs = append(errs, fmt.Errorf("node: bridged record TTL %s must exceed the republish interval %s and be at most %s", c.BridgedRecordTTL, c.RepublishInterval, records.MaxBridgedTTL))
	}
	if c.BridgeQuorum < 1 {
		errs = append(errs, fmt.Errorf("node: bridge quorum %d must be at least 1", c.BridgeQuorum))
	}
	if c.RequestTimeout <= 0 {
		errs = append(errs, errors.New("node: request timeout must be positive"))
	}
	if c.Protect.RequestStartTimeout > c.RequestTimeout {
		errs = append(errs, fmt.Errorf("node: request start timeout %s exceeds the request timeout %s", c.Protect.RequestStartTimeout, c.RequestTimeout))
	}
	if !(c.Locality >= 0 && c.Locality <= 1) {
		errs = append(errs, fmt.Errorf("node: locality %v out of range 0..1", c.Locality))
	}
	if c.CoordProbeInterval < 0 {
		errs = append(errs, errors.New("node: negative coordinate probe interval"))
	}
	if err := c.Vivaldi.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := validateExempt(c.Limits.Exempt); err != nil {
		errs = append(errs, err)
	}
	if err := c.Protect.validate(); err != nil {
		errs = append(errs, err)
	}
	for _, p := range c.BootstrapPeers {
		if p.ID == "" {
			errs = append(errs, errors.New("node: bootstrap peer without a peer ID"))
		}
	}
	if !validNetwork(c.Network) {
		errs = append(errs, fmt.Errorf("node: network name %q: want 1 to %d of a-z, 0-9 and -", c.Network, maxNetworkName))
	}
	if c.RendezvousServe && !c.Rendezvous {
		errs = append(errs, errors.New("node: serving the rendezvous DHT needs rendezvous on"))
	}
	if c.Rendezvous {
		if len(c.RendezvousBootstrap) == 0 && !c.RendezvousServe {
			errs = append(errs, errors.New("node: rendezvous needs bootstrap peers, or to serve the rendezvous DHT itself"))
		}
		for _, p := range c.RendezvousBootstrap {
			if p.ID == "" {
				errs = append(errs, errors.New("node: rendezvous bootstrap peer without a peer ID"))
			}
		}
		if c.RendezvousHealthy < 1 {
			errs = append(errs, fmt.Errorf("node: rendezvous healthy size %d must be positive", c.RendezvousHealthy))
		}
		if c.RendezvousRetry <= 0 {
			errs = append(errs, errors.New("node: rendezvous retry must be positive"))
		}
	}
	return errors.Join(errs...)
}

// Widest exempt ranges Validate accepts.
const (
	minExemptBits4 = 8
	minExemptBits6 = 7 // fc00::/7, the unique local range
)

// validateExempt checks the exempt ranges: valid, without host bits, IPv4
// written as IPv4 (Exempts unmaps addresses, so an IPv4-mapped range never
// matches), and none wide enough to exempt much of the internet.
func validateExempt(ps []netip.Prefix) error {
	var errs []error
	for _, p := range ps {
		switch {
		case !p.IsValid():
			errs = append(errs, fmt.Errorf("node: exempt range %v is not a valid prefix", p))
		case p.Addr().Is4In6():
			errs = append(errs, fmt.Errorf("node: exempt range %s: write IPv4 ranges as IPv4", p))
		case p != p.Masked():
			errs = append(errs, fmt.Errorf("node: exempt range %s has host bits set (did you mean %s?)", p, p.Masked()))
		case p.Addr().Is4() && p.Bits() < minExemptBits4, p.Addr().Is6() && p.Bits() < minExemptBits6:
			errs = append(errs, fmt.Errorf("node: exempt range %s is too wide: it would lift the per-address limits for much of the internet", p))
		}
	}
	return errors.Join(errs...)
}

// ParseExemptRanges reads a comma-separated list of CIDR prefixes for
// Limits.Exempt (a flag's value): "default" is records.DefaultExempt,
// "none" or "" is no exemption, "default,192.0.2.0/24" adds to the
// default. It checks what Validate checks.
func ParseExemptRanges(s string) ([]netip.Prefix, error) {
	out := []netip.Prefix{}
	for f := range strings.SplitSeq(s, ",") {
		switch f = strings.TrimSpace(f); f {
		case "", "none":
		case "default":
			out = append(out, records.DefaultExempt()...)
		default:
			p, err := netip.ParsePrefix(f)
			if err != nil {
				return nil, fmt.Errorf("node: exempt range %q: %w", f, err)
			}
			out = append(out, p)
		}
	}
	if err := validateExempt(out); err != nil {
		return nil, err
	}
	return out, nil
}
