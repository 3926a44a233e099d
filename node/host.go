package node

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/protocol"
	bhost "github.com/libp2p/go-libp2p/p2p/host/basic"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
)

// identityFile holds the node's libp2p private key in DataDir.
const identityFile = "identity.key"

// loadIdentity reads the node key from dir, creating it on first run. An
// empty dir gives a fresh key that lives only as long as the process.
func loadIdentity(dir string) (crypto.PrivKey, error) {
	if dir == "" {
		k, _, err := crypto.GenerateEd25519Key(nil)
		return k, err
	}
	path := filepath.Join(dir, identityFile)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		k, err := crypto.UnmarshalPrivateKey(b)
		if err != nil {
			return nil, fmt.Errorf("node: identity %s: %w", path, err)
		}
		return k, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("node: identity: %w", err)
	}
	k, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		return nil, err
	}
	b, err = crypto.MarshalPrivateKey(k)
	if err != nil {
		return nil, err
	}
	// Write then rename, so a crash never leaves a half-written key.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return nil, fmt.Errorf("node: identity: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return nil, fmt.Errorf("node: identity: %w", err)
	}
	return k, nil
}

// AutoNAT v1 service limits: the dial-backs this node makes for others, in
// all and per peer, each autonatThrottle. (AutoNAT v2's server keeps
// go-libp2p's own rate limits.)
const (
	autonatGlobal   = 30
	autonatPerPeer  = 3
	autonatThrottle = time.Minute
)

// newHost builds the libp2p host: TCP and QUIC (libp2p's defaults), the
// given identity; UPnP/NAT-PMP port mapping when cfg.NATPortMap (onNAT gets
// the NAT manager, for status); AutoNAT v1 and v2, whose verdict switches
// kad-dht between server and client in ModeAuto, and the AutoNAT service
// for others, rate-limited (libp2p runs it only while we are public); no
// relay service, so nothing is relayed that the user did not ask for; a
// resource manager with explicit limits and a connection manager with
// watermarks (Config.Protect).
func newHost(cfg Config, key crypto.PrivKey, onNAT func(bhost.NATManager)) (host.Host, error) {
	p := cfg.Protect
	cm, err := connmgr.NewConnManager(p.ConnsLow, p.ConnsHigh, connmgr.WithGracePeriod(time.Minute))
	if err != nil {
		return nil, fmt.Errorf("node: connection manager: %w", err)
	}
	rm, err := newResourceManager(cfg)
	if err != nil {
		return nil, err
	}
	opts := []libp2p.Option{
		libp2p.Identity(key),
		libp2p.ListenAddrs(cfg.ListenAddrs...),
		libp2p.DisableRelay(),
		libp2p.UserAgent("kadtracker"),
		libp2p.ConnectionManager(cm),
		libp2p.ResourceManager(rm),
		libp2p.EnableAutoNATv2(),
		libp2p.EnableNATService(),
		libp2p.AutoNATServiceRateLimit(autonatGlobal, autonatPerPeer, autonatThrottle),
	}
	if cfg.NATPortMap {
		opts = append(opts, libp2p.NATManager(func(nw network.Network) bhost.NATManager {
			m := bhost.NewNATManager(nw)
			onNAT(m)
			return m
		}))
	}
	h, err := libp2p.New(opts...)
	if err != nil {
		_ = rm.Close()
		return nil, fmt.Errorf("node: libp2p host: %w", err)
	}
	return h, nil
}

// recordShare: the record protocol may hold at most 1/recordShare of the
// host's inbound streams.
const recordShare = 4

// recordInbound is the resource manager's cap on inbound record-protocol
// streams for a node cap of n: a quarter more, for BUSY answers.
func recordInbound(n int) int { return n + n/4 }

// newResourceManager limits what libp2p may use: Protect.Memory and FDs
// scale libp2p's defaults, then explicit caps on connections and on our
// record protocol's streams (a backstop to the node's own stream gate,
// which also guards hosts it did not build). Exempt addresses get no
// per-subnet connection limit, as loopback has by default.
func newResourceManager(cfg Config) (network.ResourceManager, error) {
	p := cfg.Protect
	scaling := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&scaling)
	base := scaling.Scale(p.Memory, p.FDs)
	limits := rcmgr.PartialLimitConfig{
		System: rcmgr.ResourceLimits{
			Conns:         rcmgr.LimitVal(p.MaxConns),
			ConnsInbound:  rcmgr.LimitVal(p.MaxConns / 2),
			ConnsOutbound: rcmgr.LimitVal(p.MaxConns),
			Memory:        rcmgr.LimitVal64(p.Memory),
			FD:            rcmgr.LimitVal(p.FDs),
		},
		// A quarter over the node's own stream caps: the node answers a
		// stream over its caps with BUSY, which a reset here would pre-empt.
		Protocol: map[protocol.ID]rcmgr.ResourceLimits{
			ProtocolID: {StreamsInbound: rcmgr.LimitVal(recordInbound(p.MaxStreams)), Streams: rcmgr.LimitVal(4 * p.MaxStreams)},
		},
		ProtocolPeer: map[protocol.ID]rcmgr.ResourceLimits{
			ProtocolID: {StreamsInbound: rcmgr.LimitVal(recordInbound(p.MaxStreamsPerPeer)), Streams: rcmgr.LimitVal(4 * p.MaxStreamsPerPeer)},
		},
	}.Build(base)
	// Streams held open on the record protocol must leave the DHT and
	// identify most of the host's inbound streams.
	if in, budget := recordInbound(p.MaxStreams), limits.ToPartialLimitConfig().System.StreamsInbound; budget != rcmgr.Unlimited && in > int(budget)/recordShare {
		return nil, fmt.Errorf("node: MaxStreams %d lets the record protocol hold %d inbound streams, more than 1/%d of the host's %d: lower MaxStreams or raise Memory and FDs",
			p.MaxStreams, in, recordShare, budget)
	}
	var v4, v6 []rcmgr.NetworkPrefixLimit
	for _, pfx := range cfg.Limits.Exempt {
		l := rcmgr.NetworkPrefixLimit{Network: pfx.Masked(), ConnCount: math.MaxInt}
		if pfx.Addr().Is4() {
			v4 = append(v4, l)
		} else {
			v6 = append(v6, l)
		}
	}
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(limits), rcmgr.WithNetworkPrefixLimit(v4, v6))
	if err != nil {
		return nil, fmt.Errorf("node: resource manager: %w", err)
	}
	return rm, nil
}
