package tsup

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"time"
)

// Link is one statically configured neighbour tracker.
type Link struct {
	// Addr is the neighbour's IP and TSUP port (its UDP tracker port). It
	// identifies the neighbour: a packet belongs to the link whose IP is
	// the packet's source and whose port is the packet's header port.
	Addr netip.AddrPort
	// Name is the host as configured (a DNS name or the IP); shown only.
	Name string
	// External puts the neighbour in another tracker network. A tracker
	// with internal and external links is a border tracker.
	External bool
	// Key, when set, is the link's shared MAC key (MinKeyLen to
	// MaxKeyLen bytes): every packet in both directions carries a trailer
	// sealed with it, and unsealed packets are dropped. Both ends must
	// configure the same key; XBT has no MAC, so a link to XBT has none.
	Key []byte
}

// Key length bounds.
const (
	MinKeyLen = 16
	MaxKeyLen = 64
)

// Config tunes an overlay. Start from DefaultConfig.
type Config struct {
	// Port is this tracker's TSUP port, sent in every packet header; the
	// neighbours' links name it. It is the UDP tracker port TSUP shares.
	// New fills it from the socket when it is 0; NewCore requires it.
	Port uint16
	// Links are the neighbours.
	Links []Link

	// HelloInterval is the per-link keep-alive and retransmission period:
	// a link that sent nothing for half of it gets a HELLO, and SYNs,
	// SUMMARY, UPDATE+S, unacknowledged UPDATEs, CANDIDATURE and LEADER
	// are resent on it. The paper's typical value is 10 s.
	HelloInterval time.Duration
	// UpdateInterval is the period of update rounds: every neighbour that
	// shares a swarm gets an UPDATE with its peers. Typically 30 s.
	UpdateInterval time.Duration
	// DisconnectInterval drops a virtual connection that received nothing
	// for this long; the link then reconnects with SYNs. At least two
	// HelloIntervals.
	DisconnectInterval time.Duration
	// PlainDisconnectInterval replaces DisconnectInterval on links without
	// the extensions, which may be XBT: its default hello interval is 60 s
	// on one timer for all links, so it can be silent for over a minute.
	// Zero (the default) follows DisconnectInterval with a floor of
	// MinPlainDisconnect, XBT's own disconnect interval; see PlainDisconnect.
	PlainDisconnectInterval time.Duration
	// RetryTimes is the number of SYNs, one per HelloInterval, a dropped
	// or new link sends before it falls back to one SYN per
	// ReconnectInterval.
	RetryTimes        int
	ReconnectInterval time.Duration
	// MandateInterval is the period of leader elections. Elections also
	// run when a shared swarm has no leader (a new swarm, a leader lost).
	MandateInterval time.Duration
	// FullMesh turns swarm leaders off: every tracker sends its updates to
	// every neighbour sharing the swarm, n(n-1) UPDATEs a round instead of
	// 2(n-1). For comparison and for networks too small to need leaders.
	FullMesh bool

	// PeerTTL is how long a peer learned over TSUP lives after the last
	// UPDATE that mentioned it. Dead peers are advertised as such (NEG)
	// for three UpdateIntervals before they are forgotten.
	PeerTTL time.Duration
	// ExtendedPeers caps the peers per swarm sent to a neighbour in one
	// round when the link speaks the extensions (split into blocks of 50);
	// toward XBT the cap is XBT's 50, sampled at random as XBT does.
	ExtendedPeers int
	// MaxSwarms caps the swarms this tracker keeps; a border tracker
	// creates one for every swarm it hears of.
	MaxSwarms int
	// MaxPeersPerSwarm caps the remote peers kept per swarm.
	MaxPeersPerSwarm int
	// MACWindow is how far a keyed packet's timestamp may be from our
	// clock; older (replayed) or future packets are dropped.
	MACWindow time.Duration
	// NoExtensions makes this tracker look like XBT on the wire: no SYN
	// EXT bit, so no IPv6 peers, seed bits, ranked elections. For tests
	// of XBT compatibility.
	NoExtensions bool

	// Rand is the source of transaction ids, jitter, sampling, the
	// connection-id secret and the election rank. Nil means a source
	// seeded from crypto/rand; tests pass a seeded one for determinism.
	Rand rand.Source
	// Clock is the time source of the Transport (the Core is handed the
	// time on every call).
	Clock func() time.Time
	// Logger receives the overlay's logs: link state changes at Info,
	// per-packet trouble at Debug.
	Logger *slog.Logger
}

// MinPlainDisconnect is the least silence after which a link without the
// extensions drops when PlainDisconnectInterval is zero: XBT's own
// disconnect interval (240 s), as XBT's keep-alives can be that far apart.
const MinPlainDisconnect = 4 * time.Minute

// PlainDisconnect is the disconnect interval of links without the
// extensions: PlainDisconnectInterval if set, else DisconnectInterval but
// at least MinPlainDisconnect.
func (c *Config) PlainDisconnect() time.Duration {
	if c.PlainDisconnectInterval != 0 {
		return c.PlainDisconnectInterval
	}
	return max(c.DisconnectInterval, MinPlainDisconnect)
}

// DefaultConfig returns the settings the daemon uses: the paper's typical
// 10 s hello and 30 s update intervals.
func DefaultConfig() Config {
	return Config{
		HelloInterval:      10 * time.Second,
		UpdateInterval:     30 * time.Second,
		DisconnectInterval: 30 * time.Second,
		RetryTimes:         5,
		ReconnectInterval:  2 * time.Minute,
		MandateInterval:    time.Hour,
		PeerTTL:            5 * time.Minute,
		ExtendedPeers:      200,
		MaxSwarms:          10000,
		MaxPeersPerSwarm:   1000,
		MACWindow:          2 * time.Minute,
		Clock:              time.Now,
		Logger:             slog.New(slog.DiscardHandler),
	}
}

// Validate reports every setting that is out of range. The settings the
// daemon has flags for are named by their flags, so that a user can act on
// the error: hello (--tsup-hello), update (--tsup-update), disconnect
// (--tsup-disconnect) and plain-link disconnect (--tsup-plain-disconnect)
// intervals.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf("tsup: "+format, args...)) }
	if c.HelloInterval <= 0 {
		bad("hello interval (--tsup-hello, HelloInterval) %v is not positive", c.HelloInterval)
	}
	if c.UpdateInterval <= 0 {
		bad("update interval (--tsup-update, UpdateInterval) %v is not positive", c.UpdateInterval)
	}
	if c.DisconnectInterval < 2*c.HelloInterval {
		bad("disconnect interval (--tsup-disconnect, DisconnectInterval) %v is below two hello intervals (--tsup-hello): at least %v", c.DisconnectInterval, 2*c.HelloInterval)
	}
	if c.PlainDisconnectInterval < 0 || c.PlainDisconnectInterval != 0 && c.PlainDisconnectInterval < 2*c.HelloInterval {
		bad("plain-link disconnect interval (--tsup-plain-disconnect, PlainDisconnectInterval) %v is below two hello intervals (--tsup-hello): at least %v, or 0 to follow --tsup-disconnect", c.PlainDisconnectInterval, 2*c.HelloInterval)
	}
	if c.RetryTimes < 1 {
		bad("RetryTimes %d is below 1", c.RetryTimes)
	}
	if c.ReconnectInterval < c.HelloInterval {
		bad("hello interval (--tsup-hello) %v is above the reconnect interval (ReconnectInterval) %v", c.HelloInterval, c.ReconnectInterval)
	}
	if c.MandateInterval < c.DisconnectInterval+2*c.HelloInterval {
		bad("an election lasts up to the disconnect interval (--tsup-disconnect) plus two hello intervals (--tsup-hello), %v, longer than the election period (MandateInterval) %v", c.DisconnectInterval+2*c.HelloInterval, c.MandateInterval)
	}
	if c.PeerTTL <= 0 || c.PeerTTL < 3*c.UpdateInterval {
		bad("update interval (--tsup-update) %v is above a third of the peer lifetime (PeerTTL) %v: at most %v", c.UpdateInterval, c.PeerTTL, c.PeerTTL/3)
	}
	if c.ExtendedPeers < 1 || c.ExtendedPeers > 10000 {
		bad("ExtendedPeers %d is not within [1, 10000]", c.ExtendedPeers)
	}
	if c.MaxSwarms < 1 {
		bad("MaxSwarms %d is below 1", c.MaxSwarms)
	}
	if c.MaxPeersPerSwarm < 1 {
		bad("MaxPeersPerSwarm %d is below 1", c.MaxPeersPerSwarm)
	}
	if c.MACWindow < time.Second {
		bad("MACWindow %v is below 1s", c.MACWindow)
	}
	if c.Clock == nil {
		bad("Clock is nil")
	}
	if c.Logger == nil {
		bad("Logger is nil")
	}
	seen := make(map[netip.AddrPort]bool, len(c.Links))
	for i, l := range c.Links {
		a := netip.AddrPortFrom(l.Addr.Addr().Unmap(), l.Addr.Port())
		switch {
		case !a.Addr().IsValid() || a.Port() == 0:
			bad("link %d (%q): no address and port", i, l.Name)
		case a.Addr().IsUnspecified() || a.Addr().IsMulticast():
			bad("link %d: %v is not a tracker address", i, a)
		case seen[a]:
			bad("link %d: %v is listed twice", i, a)
		}
		seen[a] = true
		if l.Key != nil && (len(l.Key) < MinKeyLen || len(l.Key) > MaxKeyLen) {
			bad("link %d (%v): key of %d bytes is not within [%d, %d]", i, a, len(l.Key), MinKeyLen, MaxKeyLen)
		}
	}
	return errors.Join(errs...)
}
