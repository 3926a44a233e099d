package records

import (
	"context"
	"errors"
	"net/netip"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Store errors. A remote peer may be told these.
var (
	ErrStale         = errors.New("records: an equal or newer record from this announcer is stored")
	ErrKeyFull       = errors.New("records: too many peers for this infohash")
	ErrStoreFull     = errors.New("records: too many infohashes stored")
	ErrAnnouncerFull = errors.New("records: too many infohashes from this announcer")
	ErrIPFull        = errors.New("records: too many records from this address")
	ErrKeyIPFull     = errors.New("records: too many peers for this infohash from this address")
	ErrClosed        = errors.New("records: store closed")
)

// Limits are the store's caps. A zero field means no limit. Expired records
// count until Expire deletes them, except that an announcer's expired record
// is replaced by its next one whatever the seq.
//
// The per-entity caps (KeysPerAnnouncer and the per-address ones) refuse
// a Put; PeersPerKey evicts within the infohash (see its comment). The
// store-wide caps (Records, Keys) evict too, so a full store keeps taking
// fresh records and a flood displaces itself.
//
// Eviction policy. When a new record would exceed Records (or, for a new
// infohash, Keys), the store deletes one record first:
//  1. the victim source is the source address (see SourceAddr) holding the
//     most records, the incoming record counted with its own source, which
//     wins ties: a flooding address evicts its own records before anyone
//     else's. Records this node announced itself (no IP) are never evicted.
//  2. from the victim source, 8 of its records are sampled at random and the
//     one expiring soonest is evicted (an expired one first). Under the Keys
//     cap only a record that is its infohash's last one frees a place, so
//     only those are chosen; up to 4 samples are tried.
//  3. when no record qualifies, the Put is refused with ErrStoreFull.
//
// Evictions are counted in Stats.Evicted.
type Limits struct {
	// PeersPerKey bounds the records per infohash. A new record for a full
	// infohash evicts one from the SwarmGroup holding the most of its
	// records (see keyVictim), so addresses that fill a swarm displace
	// their own records and a new address still gets in.
	PeersPerKey int
	// NoKeyEviction refuses a new record for a full infohash with
	// ErrKeyFull instead of evicting: the behaviour before eviction, which
	// lets 250 addresses censor a swarm. For tests that show the attack.
	NoKeyEviction    bool
	Keys             int // infohashes in the store (evicts)
	KeysPerAnnouncer int // infohashes one announcer may hold records for
	// Records bounds the records stored, all infohashes together: the
	// store's memory bound (evicts).
	Records int
	// PeersPerKeyPerIP bounds one source address's records for one
	// infohash: clients behind one address share a swarm rarely.
	PeersPerKeyPerIP int
	// RecordsPerIP bounds one source address's records across all
	// infohashes (its keys, counting a key once per record it holds there).
	RecordsPerIP int
	// Exempt lists addresses the per-address caps do not apply to (they
	// still count, and may be evicted): loopback, private networks.
	Exempt []netip.Prefix
	// BridgedPerKey bounds the bridged records (those with explicit
	// endpoints, each at most MaxEndpoints) of one infohash; they count
	// towards PeersPerKey too.
	BridgedPerKey int
	// BridgedKeysPerAnnouncer bounds the infohashes one announcer may hold
	// bridged records for.
	BridgedKeysPerAnnouncer int
}

// DefaultLimits suit a daemon on a home machine: at the Records cap the
// store takes about 200 MB of memory: ~400 B a record with its envelope
// (see BenchmarkBytesPerRecord).
func DefaultLimits() Limits {
	return Limits{
		PeersPerKey: 2000,
		Keys:        200_000,
		// A storing node holds about K*m/N of an announcer's K keys (all
		// of them in a network of m nodes or fewer): 20,000 lets a large
		// seedbox publish in any network, and still bounds one announcer
		// or address at 4 % of Records (docs/design.md).
		KeysPerAnnouncer: 20_000,
		Records:          500_000,
		PeersPerKeyPerIP: 8,
		RecordsPerIP:     20_000,
		Exempt:           DefaultExempt(),
		// A swarm's bridged records name at most 16*40 = 640 peers: as
		// many as a few classic trackers' answers, far fewer than the
		// swarm's own records may.
		BridgedPerKey: 16,
		// A bridge or public tracker serving S swarms in a network of N
		// nodes puts S*m/N bridged records on each: 5,000 takes a tracker
		// of 5,000 swarms in any network, 625,000 at N = 1,000.
		BridgedKeysPerAnnouncer: 5000,
	}
}

// DefaultExempt are the addresses no Sybil from the internet can have:
// loopback, the private and link-local ranges, and IPv6's discard-only
// prefix 100::/64 (RFC 6666), which go-libp2p's mocknet gives its hosts.
func DefaultExempt() []netip.Prefix {
	return []netip.Prefix{
		netip.MustParsePrefix("127.0.0.0/8"),
		netip.MustParsePrefix("::1/128"),
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("172.16.0.0/12"),
		netip.MustParsePrefix("192.168.0.0/16"),
		netip.MustParsePrefix("169.254.0.0/16"),
		netip.MustParsePrefix("fc00::/7"),
		netip.MustParsePrefix("fe80::/10"),
		netip.MustParsePrefix("100::/64"),
	}
}

// Exempts reports whether ip is in one of l.Exempt.
func (l Limits) Exempts(ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, p := range l.Exempt {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// SourceAddr is the unit the per-address caps and eviction count by: an
// IPv4 address, or the /64 an IPv6 address is in (one host usually has a
// whole /64). The zero Addr (a record of this node's own) stays zero.
func SourceAddr(ip netip.Addr) netip.Addr {
	if !ip.IsValid() {
		return netip.Addr{}
	}
	ip = ip.Unmap().WithZone("")
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.Addr()
	}
	return ip
}

// Options configure a store.
type Options struct {
	Limits Limits
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// MaxTTL, if nonzero, makes Put reject a record expiring more than
	// MaxTTL (plus MaxClockSkew) from now with ErrTooFarAhead.
	MaxTTL time.Duration
	// Seed seeds the store's random choice of entries in Get, so a test can
	// repeat it; zero means a random seed.
	Seed uint64
}

func (o Options) clock() func() time.Time {
	if o.Now == nil {
		return time.Now
	}
	return o.Now
}

// Result is the answer to Get.
type Result struct {
	Entries  []Entry // at most want, a random choice when more are stored
	Seeds    int     // all unexpired seeds for the key (tombstones not counted)
	Leechers int     // all unexpired leechers for the key
	More     bool    // more entries were stored than returned
}

// Stats counts what a store holds, expired records not yet swept included.
type Stats struct {
	Keys    int
	Records int
	// Evicted counts records deleted by the eviction policy since open.
	Evicted int64
}

// Store holds peer records for others. Implementations are safe for
// concurrent use and enforce Limits.
type Store interface {
	// Put stores e, replacing the announcer's record for the key when e.Seq is
	// higher (an identical envelope again is a no-op, not an error). A Withdrawn
	// record is a tombstone: it replaces the announcer's record, or is stored
	// without one, and holds its place until it expires, so an older record
	// arriving later is ErrStale; Get serves it, uncounted. At the
	// store-wide caps it evicts a record by the Limits policy. Errors:
	// ErrExpired, ErrStale, ErrKeyFull, ErrStoreFull, ErrAnnouncerFull,
	// ErrIPFull, ErrKeyIPFull, ErrClosed.
	// Put does not verify e: its Record must be what Open returned for
	// e.Envelope. With Options.MaxTTL set it may also return ErrTooFarAhead;
	// an unfit Entry (zero key, no announcer or envelope, port 0) is
	// ErrMalformed.
	Put(ctx context.Context, e Entry) error
	// Get returns up to want unexpired entries for k (want <= 0 means none,
	// only counts). The entries are the caller's: envelopes are copies.
	Get(ctx context.Context, k Key, want int) (Result, error)
	// Remove deletes announcer's record for k, if any.
	Remove(ctx context.Context, k Key, announcer peer.ID) error
	// List calls fn for every unexpired entry until fn returns false.
	List(ctx context.Context, fn func(Entry) bool) error
	// Expire deletes expired records and returns how many it deleted.
	Expire(ctx context.Context) (int, error)
	Stats() Stats
	Close() error
}

// SaltedGetter is a Store that can choose Get's entries by a salt rather
// than at random: when more than want are live, the want whose announcers
// rank first for salt (a hash of salt and announcer ID). Storing nodes that
// hold the same records then answer one asker with the same ones, and the
// asker can tell which records several of them vouch for; a fresh salt per
// lookup still spreads the choice over the swarm. Salt 0 is Get.
type SaltedGetter interface {
	GetSalted(ctx context.Context, k Key, want int, salt uint64) (Result, error)
}

var (
	_ SaltedGetter = (*Memory)(nil)
	_ SaltedGetter = (*Pebble)(nil)
)

// KeyCount is one infohash's unexpired records, for a status page.
type KeyCount struct {
	Key      Key
	Seeds    int
	Leechers int
}

// Records is the records counted.
func (c KeyCount) Records() int { return c.Seeds + c.Leechers }
