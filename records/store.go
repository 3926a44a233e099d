package records

import (
	"context"
	"errors"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Store errors. A remote peer may be told these.
var (
	ErrStale         = errors.New("records: an equal or newer record from this announcer is stored")
	ErrKeyFull       = errors.New("records: too many peers for this infohash")
	ErrStoreFull     = errors.New("records: too many infohashes stored")
	ErrAnnouncerFull = errors.New("records: too many infohashes from this announcer")
	ErrClosed        = errors.New("records: store closed")
)

// Limits are the store's caps. A zero field means no limit. Expired records
// count until Expire deletes them, except that an announcer's expired record
// is replaced by its next one whatever the seq.
type Limits struct {
	PeersPerKey      int // records per infohash
	Keys             int // infohashes in the store
	KeysPerAnnouncer int // infohashes one announcer may hold records for
}

// DefaultLimits suit a daemon on a home machine (about 200 MB at the caps).
func DefaultLimits() Limits {
	return Limits{PeersPerKey: 2000, Keys: 100_000, KeysPerAnnouncer: 5000}
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
	Seeds    int     // all unexpired seeds for the key
	Leechers int     // all unexpired leechers for the key
	More     bool    // more entries were stored than returned
}

// Stats counts what a store holds, expired records not yet swept included.
type Stats struct {
	Keys    int
	Records int
}

// Store holds peer records for others. Implementations are safe for
// concurrent use and enforce Limits.
type Store interface {
	// Put stores e, replacing the announcer's record for the key when e.Seq is
	// higher (an identical envelope again is a no-op, not an error). A Withdrawn
	// record deletes the announcer's record and is not stored. Errors:
	// ErrExpired, ErrStale, ErrKeyFull, ErrStoreFull, ErrAnnouncerFull, ErrClosed.
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
