package tracker

import (
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Config tunes the tracker front. Start from DefaultConfig.
type Config struct {
	// Interval is the re-announce interval sent to clients. Client
	// announces are deduplicated before they reach the DHT as publishes;
	// each one refreshes the swarm's lookup (at most once per FreshFor), so
	// a shorter interval costs lookups and gets fresher peer lists to the
	// clients that honour it (transmission; aria2 follows MinInterval).
	// libtorrent clamps to at least 300 s and rtorrent to 600 s whatever
	// we send.
	Interval time.Duration
	// MinInterval is the "min interval" sent with Interval.
	MinInterval time.Duration
	// ShortInterval replaces both while the answer is incomplete: the first
	// lookup of the swarm has not finished, or a leecher got no peers.
	ShortInterval time.Duration
	// DefaultNumwant is the number of peers for a client that sends no
	// numwant (BEP 3 says 50); MaxNumwant caps what a client may ask for.
	DefaultNumwant int
	MaxNumwant     int
	// Locality is the share of an answer given to the DHT peers the node
	// predicts nearest (Peer.RTT), at most one per source address, the
	// rest a uniform sample of the others (biased neighbour selection,
	// issue 16); 0: a uniform sample of all.
	Locality float64
	// FirstLookupWait bounds how long an announce or scrape waits for the
	// lookup that refreshes a cache entry that is not fresh (see FreshFor),
	// and the first announce of a swarm for its first lookup. Clients that
	// re-announce only every 5-10 minutes depend on this answer. A lookup
	// costs about six RPC round trips (~120 ms on 10 ms links, 100-600 ms
	// on the Internet), so the default leaves room for a slow one.
	FirstLookupWait time.Duration
	// CacheSize bounds the swarms (infohashes) the front keeps: lookup
	// cache entries and swarms its clients announce. A new infohash beyond
	// it evicts the least recently used entry no client announces; swarms
	// whose clients have all left do not count while their withdraw runs
	// (the cache holds at most twice CacheSize); then an address under
	// MinSwarmsPerAddr takes a swarm of the address holding the most; only
	// then is it refused with a failure reason.
	CacheSize int
	// FreshFor is how long a lookup's result answers as it is. An announce
	// or scrape that finds it older (any client, seed or leecher) starts a
	// lookup and waits for it up to FirstLookupWait, so every answer holds
	// what the DHT held moments before: a seed hears of a leecher that
	// announced through another daemon at its next re-announce. It costs
	// one lookup per client announce (clients announce every Interval or
	// so), shared by the clients of a swarm that announce within FreshFor;
	// the default, 1 s, is several lookups' time on a LAN-like DHT and one
	// or two on the Internet, and no swarm is looked up more than once a
	// second whatever FreshFor says.
	FreshFor time.Duration
	// CacheTTL is the age after which the sweep refreshes the lookup of
	// every swarm with local clients, seeding or leeching, in the
	// background (at most LookupConcurrency at once). It bounds how old an
	// answer is when the refresh an announce starts takes longer than
	// FirstLookupWait, and keeps scrapes cheap. At 60 s and ~6 round trips
	// per lookup, a daemon with a thousand swarms spends ~17 lookups a
	// second; eight at once of 120-600 ms each cover 13-66 a second.
	CacheTTL time.Duration
	// ClientTimeout is how long a client may stay silent before it lapses
	// (and the node withdraws the swarm when no other client announces it).
	// It must be at least two Intervals; the default is two of rtorrent's
	// 600 s, the slowest re-announce period a real client imposes.
	ClientTimeout time.Duration
	// NodeTimeout bounds every call into the Node.
	NodeTimeout time.Duration
	// LookupConcurrency bounds background refresh lookups running at once.
	LookupConcurrency int
	// NodeConcurrency bounds every call into the Node running at once
	// (announces, withdraws, lookups), so a flood of new infohashes cannot
	// start a DHT walk each. A call that finds no slot waits for the next
	// sweep (announces, withdraws) or the next announce (lookups).
	NodeConcurrency int
	// ExternalIP sends BEP 24's "external ip" (the requester's address as
	// seen) in HTTP answers: for a tracker serving clients on other hosts.
	ExternalIP bool
	// Per-address shares, so that one address (an IPv4 address or an IPv6
	// /64) cannot lock the others out of a front serving many hosts (the
	// public tracker). The defaults are far beyond what one host's clients
	// use, so a front for one host never meets them. 0 turns one off.
	//
	// SwarmClientsPerAddr is the most of a swarm's 64 client slots one
	// address may hold: eight addresses, not one, are needed to fill them.
	SwarmClientsPerAddr int
	// MinSwarmsPerAddr is the share of the cache every address is sure of:
	// when the cache is full, a new swarm from an address that holds fewer
	// swarms takes the least recently used swarm held only by the address
	// holding the most, if that one holds more. (Idle swarms, and swarms
	// whose clients have all left, go first, before anyone is refused.)
	MinSwarmsPerAddr int
	// NewSwarmsPerAddr is how many new swarms one address may add at once;
	// they come back evenly over NewSwarmInterval. It bounds the lookups,
	// announces and withdraws a single address makes the DHT run; a host
	// whose client starts with more torrents is served over a few minutes
	// (clients announce again after a failure).
	NewSwarmsPerAddr int
	NewSwarmInterval time.Duration
	// HTTPConnsPerAddr is the most HTTP connections one address may hold
	// open, of the front's 1024 (one more is closed at once, after its
	// address's oldest idle one if it has one); HTTPIdleConnsPerAddr the
	// most idle keep-alive ones (its oldest idle one is closed). When the
	// front is full, a new connection closes the oldest idle one.
	HTTPConnsPerAddr     int
	HTTPIdleConnsPerAddr int
	// Allow, if set, is asked about every announced infohash; an announce
	// of one it refuses fails with a reason, and a scrape reports zeros.
	Allow func(infohash [20]byte) bool
	// Live are sources of peers known locally and cheaply (the TSUP
	// overlay, the bridge to classic trackers); every one is read on every
	// answer, not cached.
	Live []LiveSource
	// Listeners hear of every change of what the front publishes for its
	// local clients, before the Node does. A listener's error is logged and
	// counted (Stats.ListenerErrors) and never stops the Node call.
	// Listeners must not block: the Node call of the swarm waits for them.
	Listeners []Listener
	// Clock is the time source.
	Clock func() time.Time
	// Logger receives the front's logs (per-request trouble at Debug).
	Logger *slog.Logger
}

// DefaultConfig returns the settings the daemon uses.
func DefaultConfig() Config {
	return Config{
		Interval:          120 * time.Second,
		MinInterval:       30 * time.Second,
		ShortInterval:     15 * time.Second,
		DefaultNumwant:    50,
		MaxNumwant:        200,
		FirstLookupWait:   1500 * time.Millisecond,
		CacheSize:         10000,
		FreshFor:          time.Second,
		CacheTTL:          60 * time.Second,
		ClientTimeout:     20 * time.Minute,
		NodeTimeout:       30 * time.Second,
		LookupConcurrency: 8,
		NodeConcurrency:   64,

		SwarmClientsPerAddr:  8,
		MinSwarmsPerAddr:     100,
		NewSwarmsPerAddr:     1000,
		NewSwarmInterval:     time.Minute,
		HTTPConnsPerAddr:     128,
		HTTPIdleConnsPerAddr: 8,

		Clock:  time.Now,
		Logger: slog.New(slog.DiscardHandler),
	}
}

// Validate reports every setting that is out of range.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf("tracker: "+format, args...)) }
	if c.Interval < time.Second {
		bad("Interval %v is below 1s", c.Interval)
	}
	if c.MinInterval < time.Second || c.MinInterval > c.Interval {
		bad("MinInterval %v is not within [1s, Interval %v]", c.MinInterval, c.Interval)
	}
	if c.ShortInterval < time.Second || c.ShortInterval > c.Interval {
		bad("ShortInterval %v is not within [1s, Interval %v]", c.ShortInterval, c.Interval)
	}
	if c.MaxNumwant < 1 || c.MaxNumwant > 10000 {
		bad("MaxNumwant %d is not within [1, 10000]", c.MaxNumwant)
	}
	if !(c.Locality >= 0 && c.Locality <= 1) {
		bad("Locality %v is not within [0, 1]", c.Locality)
	}
	if c.DefaultNumwant < 0 || c.DefaultNumwant > c.MaxNumwant {
		bad("DefaultNumwant %d is not within [0, MaxNumwant %d]", c.DefaultNumwant, c.MaxNumwant)
	}
	if c.FirstLookupWait < 0 || c.FirstLookupWait > 30*time.Second {
		bad("FirstLookupWait %v is not within [0, 30s]", c.FirstLookupWait)
	}
	if c.CacheSize < 1 {
		bad("CacheSize %d is below 1", c.CacheSize)
	}
	if c.CacheTTL < time.Second {
		bad("CacheTTL %v is below 1s", c.CacheTTL)
	}
	if c.FreshFor < minLookupSpacing || c.FreshFor > c.CacheTTL {
		bad("FreshFor %v is not within [%v, CacheTTL %v]", c.FreshFor, minLookupSpacing, c.CacheTTL)
	}
	if c.ClientTimeout < 2*c.Interval {
		bad("ClientTimeout %v is below two Intervals (%v)", c.ClientTimeout, 2*c.Interval)
	}
	if c.NodeTimeout <= 0 {
		bad("NodeTimeout %v is not positive", c.NodeTimeout)
	}
	if c.LookupConcurrency < 1 {
		bad("LookupConcurrency %d is below 1", c.LookupConcurrency)
	}
	if c.NodeConcurrency < c.LookupConcurrency {
		bad("NodeConcurrency %d is below LookupConcurrency %d", c.NodeConcurrency, c.LookupConcurrency)
	}
	if c.SwarmClientsPerAddr < 0 || c.SwarmClientsPerAddr > maxClientsPerSwarm {
		bad("SwarmClientsPerAddr %d is not within [0, %d]", c.SwarmClientsPerAddr, maxClientsPerSwarm)
	}
	if c.MinSwarmsPerAddr < 0 {
		bad("MinSwarmsPerAddr %d is negative", c.MinSwarmsPerAddr)
	}
	if c.NewSwarmsPerAddr < 0 {
		bad("NewSwarmsPerAddr %d is negative", c.NewSwarmsPerAddr)
	}
	if c.NewSwarmsPerAddr > 0 && c.NewSwarmInterval < time.Duration(c.NewSwarmsPerAddr) {
		bad("NewSwarmInterval %v is too short for NewSwarmsPerAddr %d", c.NewSwarmInterval, c.NewSwarmsPerAddr)
	}
	if c.HTTPConnsPerAddr < 0 || c.HTTPConnsPerAddr > maxHTTPConns {
		bad("HTTPConnsPerAddr %d is not within [0, %d]", c.HTTPConnsPerAddr, maxHTTPConns)
	}
	if c.HTTPIdleConnsPerAddr < 0 {
		bad("HTTPIdleConnsPerAddr %d is negative", c.HTTPIdleConnsPerAddr)
	}
	for i, src := range c.Live {
		if src == nil {
			bad("Live[%d] is nil", i)
		}
	}
	for i, l := range c.Listeners {
		if l == nil {
			bad("Listeners[%d] is nil", i)
		}
	}
	if c.Clock == nil {
		bad("Clock is nil")
	}
	if c.Logger == nil {
		bad("Logger is nil")
	}
	return errors.Join(errs...)
}
