package records

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// index is the in-memory state both stores serve reads from. It is not safe
// for concurrent use: the stores lock around it. A write is two steps so the
// persistent store can write to disk between them: plan decides what a Put or
// Remove does without changing anything, apply carries the plan out.
type index struct {
	limits Limits
	maxTTL time.Duration
	seed   uint64        // with gets, seeds the random choice in get
	gets   atomic.Uint64 // get runs under a read lock: each call seeds its own PCG

	keys map[Key]*keySet
	// announcers counts keys per announcer and holds the one copy of each
	// announcer ID that its slots share.
	announcers map[peer.ID]announcer
	records    int

	// sources holds the records of each source address, and heap orders
	// the sources by record count, for the per-address caps and eviction.
	sources map[netip.Addr]*source
	heap    sourceHeap
	rng     rand.PCG                  // eviction sampling; writers only (they are serialized)
	groups  map[netip.Addr]groupCount // keyVictim's scratch; writers only
	evicted int64
}

// keySet holds one key's records, at most one per announcer.
type keySet struct {
	key   Key
	slots []slot
	// byAnnouncer indexes slots once there are more than linearScanMax of
	// them; below that a scan is as fast and a map costs ~200 B per key.
	byAnnouncer map[peer.ID]int32
	// endpoints holds the explicit endpoints of the bridged records, by
	// announcer; nil while the key has none (the common case), so plain
	// records pay nothing for them.
	endpoints map[peer.ID][]netip.AddrPort
}

// bridgedOf returns a copy of the endpoints of a's record when it is
// bridged.
func (ks *keySet) bridgedOf(a peer.ID) (bool, []netip.AddrPort) {
	eps, ok := ks.endpoints[a]
	return ok, slices.Clone(eps)
}

const linearScanMax = 8

type announcer struct {
	id      peer.ID // interned: slots share its bytes
	keys    int32
	bridged int32 // keys with a bridged record of this announcer
}

// slot is one stored record: what Get serves and Put compares, nothing else.
// The envelope is the only per-record allocation besides the slot itself.
type slot struct {
	announcer peer.ID
	envelope  string // 8 bytes smaller than a slice, and immutable
	ip        netip.Addr
	expires   int64 // unix milliseconds
	seq       uint64
	src       int32 // index in its source's refs; -1 for our own records
	port      uint16
	seed      bool
	// withdrawn marks a tombstone: it holds the announcer's place (and
	// seq) until it expires, counts towards the caps, and is served but
	// counted neither seed nor leecher.
	withdrawn bool
	// signed: the record's Addr is ip (version 2; the storing node checked
	// they match). Our own records have no ip: their Addr is in the envelope.
	signed bool
}

func newIndex(opts Options) *index {
	seed := opts.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	x := &index{
		limits:     opts.Limits,
		maxTTL:     opts.MaxTTL,
		seed:       seed,
		keys:       make(map[Key]*keySet),
		announcers: make(map[peer.ID]announcer),
		sources:    make(map[netip.Addr]*source),
	}
	x.rng.Seed(seed, 0x65766963)
	return x
}

func (ks *keySet) find(a peer.ID) int {
	if ks.byAnnouncer != nil {
		if i, ok := ks.byAnnouncer[a]; ok {
			return int(i)
		}
		return -1
	}
	for i := range ks.slots {
		if ks.slots[i].announcer == a {
			return i
		}
	}
	return -1
}

func (ks *keySet) add(s slot) {
	if n := len(ks.slots); n == cap(ks.slots) && n < linearScanMax {
		// Most keys have a handful of peers: grow one at a time, not to
		// the next power of two, which would waste a third of the slots.
		ks.slots = append(make([]slot, 0, n+1), ks.slots...)
	}
	ks.slots = append(ks.slots, s)
	switch n := len(ks.slots); {
	case ks.byAnnouncer != nil:
		ks.byAnnouncer[s.announcer] = int32(n - 1)
	case n > linearScanMax:
		ks.byAnnouncer = make(map[peer.ID]int32, n)
		for i := range ks.slots {
			ks.byAnnouncer[ks.slots[i].announcer] = int32(i)
		}
	}
}

// remove deletes slot i by moving the last slot into its place.
func (ks *keySet) remove(i int) {
	last := len(ks.slots) - 1
	if ks.byAnnouncer != nil {
		delete(ks.byAnnouncer, ks.slots[i].announcer)
		if i != last {
			ks.byAnnouncer[ks.slots[last].announcer] = int32(i)
		}
	}
	ks.slots[i] = ks.slots[last]
	ks.slots[last] = slot{}
	ks.slots = ks.slots[:last]
	if ks.byAnnouncer != nil && len(ks.slots) <= linearScanMax/2 {
		ks.byAnnouncer = nil
	}
	if cap(ks.slots) > 16 && len(ks.slots) < cap(ks.slots)/4 {
		ks.slots = append([]slot(nil), ks.slots...)
	}
}

type opKind uint8

const (
	opNone    opKind = iota // nothing to do
	opInsert                // add a record for a new (key, announcer)
	opReplace               // replace the announcer's record at index i
	opDelete                // delete the announcer's record at index i
)

// plan is what a write will do. It is only valid until the index changes.
type plan struct {
	op  opKind
	key Key
	i   int  // slot index for opReplace and opDelete
	s   slot // the new slot for opInsert and opReplace
	// evict, for opInsert, is a record to delete first (the Limits policy).
	evict    recRef
	evicting bool
	// eps are the endpoints of a bridged record (opInsert, opReplace).
	eps     []netip.AddrPort
	bridged bool
}

func toMillis(t time.Time) int64 { return t.UnixMilli() }

// planPut decides what Put(e) does at now. The new slot's envelope is a
// copy, so the caller's buffer is not retained. With evict false a full
// store refuses instead of evicting (loading from disk does not evict).
func (x *index) planPut(e Entry, now time.Time, evict bool) (plan, error) {
	if err := e.check(); err != nil {
		return plan{}, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if len(e.Envelope) == 0 {
		return plan{}, fmt.Errorf("%w: no envelope", ErrMalformed)
	}
	if !e.Expires.After(now) {
		return plan{}, fmt.Errorf("%w: at %s", ErrExpired, e.Expires.UTC().Format(time.RFC3339Nano))
	}
	if x.maxTTL > 0 {
		if err := e.Validate(now, x.maxTTL); err != nil {
			return plan{}, err
		}
	}
	nowMs := toMillis(now)
	p := plan{key: e.Key, i: -1}
	ks := x.keys[e.Key]
	if ks != nil {
		p.i = ks.find(e.Announcer)
	}
	if p.i >= 0 {
		old := &ks.slots[p.i]
		// An expired record is as good as absent: any seq replaces it.
		if old.expires > nowMs {
			switch {
			case e.Seq == old.seq && string(e.Envelope) == old.envelope:
				return plan{op: opNone}, nil
			case e.Seq <= old.seq:
				return plan{}, fmt.Errorf("%w: seq %d, stored %d", ErrStale, e.Seq, old.seq)
			}
		}
		if was, _ := ks.bridgedOf(old.announcer); e.Bridged && !e.Withdrawn && !was {
			if err := x.checkBridged(ks, e); err != nil {
				return plan{}, err
			}
		}
		if src := SourceAddr(e.IP); src != SourceAddr(old.ip) {
			// The announcer moved: the new address's caps apply.
			if err := x.checkSource(ks, e, src); err != nil {
				return plan{}, err
			}
		}
		p.op = opReplace
		p.s = x.newSlot(e)
		p.bridged, p.eps = e.Bridged && !e.Withdrawn, slices.Clone(e.Endpoints)
		return p, nil
	}
	// A tombstone for a record not (or no longer) stored here is stored
	// all the same: the record may arrive late, or be replayed, and must
	// lose to it.
	keyFull := ks != nil && x.limits.PeersPerKey > 0 && len(ks.slots) >= x.limits.PeersPerKey
	if keyFull && (!evict || x.limits.NoKeyEviction) {
		return plan{}, fmt.Errorf("%w: %d peers for %s", ErrKeyFull, len(ks.slots), e.Key)
	}
	if n := x.announcers[e.Announcer].keys; x.limits.KeysPerAnnouncer > 0 && int(n) >= x.limits.KeysPerAnnouncer {
		return plan{}, fmt.Errorf("%w: %s holds records for %d infohashes", ErrAnnouncerFull, e.Announcer, n)
	}
	if e.Bridged && !e.Withdrawn {
		if err := x.checkBridged(ks, e); err != nil {
			return plan{}, err
		}
	}
	src := SourceAddr(e.IP)
	if err := x.checkSource(ks, e, src); err != nil {
		return plan{}, err
	}
	needKey := ks == nil && x.limits.Keys > 0 && len(x.keys) >= x.limits.Keys
	needRecord := x.limits.Records > 0 && x.records >= x.limits.Records
	switch {
	case keyFull:
		// Evicting within the key keeps the record count: no store-wide
		// eviction is needed as well.
		v, ok := x.keyVictim(ks, e.IP)
		if !ok {
			return plan{}, fmt.Errorf("%w: %d peers for %s", ErrKeyFull, len(ks.slots), e.Key)
		}
		p.evict, p.evicting = v, true
	case needKey || needRecord:
		v, ok := x.victim(src, needKey)
		if !evict || !ok {
			if needKey {
				return plan{}, fmt.Errorf("%w: %d infohashes", ErrStoreFull, len(x.keys))
			}
			return plan{}, fmt.Errorf("%w: %d records", ErrStoreFull, x.records)
		}
		p.evict, p.evicting = v, true
	}
	p.op = opInsert
	p.s = x.newSlot(e)
	p.bridged, p.eps = e.Bridged && !e.Withdrawn, slices.Clone(e.Endpoints)
	return p, nil
}

// SwarmGroup is the unit a full infohash evicts by: an IPv4 address, or
// the /56 an IPv6 address is in (what an ISP commonly gives one customer,
// so one subscriber's /64s count as one). The zero Addr stays zero.
func SwarmGroup(ip netip.Addr) netip.Addr {
	if !ip.IsValid() {
		return netip.Addr{}
	}
	ip = ip.Unmap().WithZone("")
	if ip.Is6() {
		p, _ := ip.Prefix(56)
		return p.Addr()
	}
	return ip
}

// keyVictim picks the record a new one from ip evicts from the full key
// set ks: from the SwarmGroup holding the most of ks's records, the new
// record counted with its own group, which wins ties (a group flooding a
// swarm evicts its own records, never an address with fewer), the one
// expiring soonest. Records of this node's own (no IP) are never chosen.
// With none to choose it reports false. It walks the key set once (at
// most PeersPerKey slots, only for a Put into a full key; see
// BenchmarkPutFullKey), counting in x.groups, which writers share: they
// are serialized.
func (x *index) keyVictim(ks *keySet, ip netip.Addr) (recRef, bool) {
	if x.groups == nil {
		x.groups = make(map[netip.Addr]groupCount)
	}
	defer clear(x.groups)
	for i := range ks.slots {
		s := &ks.slots[i]
		g := SwarmGroup(s.ip)
		if !g.IsValid() {
			continue
		}
		c, ok := x.groups[g]
		if !ok || s.expires < ks.slots[c.soonest].expires {
			c.soonest = int32(i)
		}
		c.n++
		x.groups[g] = c
	}
	own := SwarmGroup(ip)
	heavy, most := own, 0
	if own.IsValid() {
		most = x.groups[own].n + 1
	}
	for g, c := range x.groups {
		// Ties between other groups go to the lower address, so the
		// choice does not depend on map order.
		if c.n > most || (c.n == most && heavy != own && g.Less(heavy)) {
			heavy, most = g, c.n
		}
	}
	c, ok := x.groups[heavy]
	if !ok {
		return recRef{}, false // no group, or the new record's holds none here
	}
	return recRef{ks: ks, announcer: ks.slots[c.soonest].announcer}, true
}

// groupCount is one SwarmGroup's records in a key set, and its record
// expiring soonest.
type groupCount struct {
	n       int
	soonest int32
}

// checkBridged applies the bridged-record caps to e, a bridged record new
// for its announcer in ks (nil for a new key).
func (x *index) checkBridged(ks *keySet, e Entry) error {
	if l := x.limits.BridgedPerKey; l > 0 && ks != nil && len(ks.endpoints) >= l {
		return fmt.Errorf("%w: %d bridged records for %s", ErrKeyFull, len(ks.endpoints), e.Key)
	}
	if l := x.limits.BridgedKeysPerAnnouncer; l > 0 && int(x.announcers[e.Announcer].bridged) >= l {
		return fmt.Errorf("%w: %s holds bridged records for %d infohashes", ErrAnnouncerFull, e.Announcer, l)
	}
	return nil
}

// setBridged records (bridged true) or clears the endpoints of the record
// of announcer a in ks, keeping the announcer's count.
func (x *index) setBridged(ks *keySet, a peer.ID, bridged bool, eps []netip.AddrPort) {
	was, _ := ks.bridgedOf(a)
	if bridged {
		if ks.endpoints == nil {
			ks.endpoints = make(map[peer.ID][]netip.AddrPort)
		}
		ks.endpoints[a] = eps
	} else if was {
		delete(ks.endpoints, a)
		if len(ks.endpoints) == 0 {
			ks.endpoints = nil
		}
	}
	if was != bridged {
		n := x.announcers[a]
		if bridged {
			n.bridged++
		} else {
			n.bridged--
		}
		x.announcers[a] = n
	}
}

// checkSource applies the per-address caps to e arriving from src, into
// ks (nil for a new key). When e replaces the announcer's record from
// another address, that record counts for its old address, not for src.
func (x *index) checkSource(ks *keySet, e Entry, src netip.Addr) error {
	if !src.IsValid() || x.limits.Exempts(e.IP) {
		return nil
	}
	if l := x.limits.RecordsPerIP; l > 0 {
		if n := x.count(src); n >= l {
			return fmt.Errorf("%w: %s holds %d records", ErrIPFull, src, n)
		}
	}
	if l := x.limits.PeersPerKeyPerIP; l > 0 && ks != nil {
		if n := countInKey(ks, src); n >= l {
			return fmt.Errorf("%w: %s holds %d peers for %s", ErrKeyIPFull, src, n, e.Key)
		}
	}
	return nil
}

func (x *index) newSlot(e Entry) slot {
	return slot{
		announcer: e.Announcer,
		envelope:  string(e.Envelope),
		ip:        e.IP,
		expires:   toMillis(e.Expires),
		seq:       e.Seq,
		port:      e.Port,
		seed:      e.Seed,
		withdrawn: e.Withdrawn,
		signed:    e.Addr.IsValid() && e.Addr == e.IP.Unmap(),
	}
}

// planRemove plans deleting a's record for k; opNone when there is none.
func (x *index) planRemove(k Key, a peer.ID) plan {
	if ks := x.keys[k]; ks != nil {
		if i := ks.find(a); i >= 0 {
			return plan{op: opDelete, key: k, i: i}
		}
	}
	return plan{op: opNone}
}

func (x *index) apply(p plan) {
	switch p.op {
	case opInsert:
		if p.evicting {
			ks := p.evict.ks
			x.delete(ks.key, ks.find(p.evict.announcer))
			x.evicted++
		}
		x.insert(p.key, p.s)
		if p.bridged {
			ks := x.keys[p.key]
			x.setBridged(ks, ks.slots[len(ks.slots)-1].announcer, true, p.eps)
		}
	case opReplace:
		ks := x.keys[p.key]
		p.s.announcer = ks.slots[p.i].announcer // keep sharing the interned ID
		x.setBridged(ks, p.s.announcer, p.bridged, p.eps)
		if SourceAddr(p.s.ip) == SourceAddr(ks.slots[p.i].ip) {
			p.s.src = ks.slots[p.i].src
			ks.slots[p.i] = p.s
			return
		}
		x.unlink(ks, p.i)
		ks.slots[p.i] = p.s
		x.link(ks, p.i)
	case opDelete:
		x.delete(p.key, p.i)
	}
}

// insert adds s for k; the caller has checked the limits.
func (x *index) insert(k Key, s slot) {
	ks := x.keys[k]
	if ks == nil {
		ks = &keySet{key: k}
		x.keys[k] = ks
	}
	// Intern the announcer ID: records from one announcer share one copy,
	// which does not pin whatever larger buffer the caller's ID came from.
	a, ok := x.announcers[s.announcer]
	if !ok {
		a.id = peer.ID(strings.Clone(string(s.announcer)))
	}
	a.keys++
	x.announcers[a.id] = a
	s.announcer = a.id
	ks.add(s)
	x.link(ks, len(ks.slots)-1)
	x.records++
}

func (x *index) delete(k Key, i int) {
	ks := x.keys[k]
	a := ks.slots[i].announcer
	x.setBridged(ks, a, false, nil)
	x.unlink(ks, i)
	ks.remove(i)
	if len(ks.slots) == 0 {
		delete(x.keys, k)
	}
	if n := x.announcers[a]; n.keys <= 1 {
		delete(x.announcers, a)
	} else {
		n.keys--
		x.announcers[a] = n
	}
	x.records--
}

// get answers Get; want <= 0 returns only the counts. Entries get copies of
// the envelopes, all in one buffer. A nonzero salt chooses the entries by
// salt (see GetSalted) instead of at random when more than want are live.
func (x *index) get(k Key, want int, now time.Time, salt uint64) Result {
	ks := x.keys[k]
	if ks == nil {
		return Result{}
	}
	nowMs := toMillis(now)
	var (
		res   Result
		small [32]int32
		pick  []int32 // slot indices, a uniform reservoir sample
		rng   rand.PCG
		live  int
	)
	if want > 0 {
		if n := min(want, len(ks.slots)); n <= len(small) {
			pick = small[:0:n]
		} else {
			pick = make([]int32, 0, n)
		}
		rng.Seed(x.seed, x.gets.Add(1))
	}
	for i := range ks.slots {
		s := &ks.slots[i]
		if s.expires <= nowMs {
			continue
		}
		switch {
		case s.withdrawn:
		case s.port == 0: // a bridged record without a client of its own
		case s.seed:
			res.Seeds++
		default:
			res.Leechers++
		}
		switch {
		case want <= 0:
		case live < want:
			pick = append(pick, int32(i))
		default:
			if j := randN(&rng, live+1); j < want {
				pick[j] = int32(i)
			}
		}
		live++
	}
	res.More = live > len(pick)
	if len(pick) == 0 {
		return res
	}
	if res.More && salt != 0 {
		pick = x.pickSalted(ks, nowMs, salt, pick[:0])
	} else if res.More {
		// The reservoir is a uniform set but not in uniform order: the
		// first slots tend to stay in front. Shuffle it.
		for i := len(pick) - 1; i > 0; i-- {
			j := randN(&rng, i+1)
			pick[i], pick[j] = pick[j], pick[i]
		}
	}
	size := 0
	for _, i := range pick {
		size += len(ks.slots[i].envelope)
	}
	buf := make([]byte, 0, size)
	res.Entries = make([]Entry, len(pick))
	for n, i := range pick {
		s := &ks.slots[i]
		off := len(buf)
		buf = append(buf, s.envelope...)
		res.Entries[n] = s.entry(k, buf[off:len(buf):len(buf)])
		res.Entries[n].Bridged, res.Entries[n].Endpoints = ks.bridgedOf(s.announcer)
	}
	return res
}

// pickSalted returns the len(pick) live slots of ks that rank first by
// saltRank: every storing node holding the same records picks the same ones
// for one salt, so an asker can count how many of them vouch for each.
func (x *index) pickSalted(ks *keySet, nowMs int64, salt uint64, pick []int32) []int32 {
	want := cap(pick)
	type ranked struct {
		rank uint64
		i    int32
	}
	all := make([]ranked, 0, len(ks.slots))
	for i := range ks.slots {
		if ks.slots[i].expires > nowMs {
			all = append(all, ranked{saltRank(salt, ks.slots[i].announcer), int32(i)})
		}
	}
	slices.SortFunc(all, func(a, b ranked) int { return cmp.Compare(a.rank, b.rank) })
	for _, r := range all[:min(want, len(all))] {
		pick = append(pick, r.i)
	}
	return pick
}

// saltRank orders announcers for one salt. A cryptographic hash: the salt
// is the asker's random choice, and no announcer can pick an ID that ranks
// first for most salts.
func saltRank(salt uint64, a peer.ID) uint64 {
	var buf [64]byte // peer IDs of ed25519 keys are 38 bytes
	in := append(binary.BigEndian.AppendUint64(buf[:0], salt), a...)
	sum := sha256.Sum256(in)
	return binary.BigEndian.Uint64(sum[:])
}

// entry makes the Entry for s, with env as its envelope.
func (s *slot) entry(k Key, env []byte) Entry {
	e := Entry{
		Record: Record{
			Key:       k,
			Announcer: s.announcer,
			Port:      s.port,
			Seed:      s.seed,
			Seq:       s.seq,
			Expires:   time.UnixMilli(s.expires),
			Withdrawn: s.withdrawn,
		},
		IP:       s.ip,
		Envelope: env,
	}
	if s.signed {
		e.Addr = s.ip
	}
	return e
}

// randN returns a uniform integer in [0, n), n > 0 (Lemire's method).
func randN(r *rand.PCG, n int) int {
	hi, lo := bits.Mul64(r.Uint64(), uint64(n))
	if lo < uint64(n) {
		thresh := -uint64(n) % uint64(n)
		for lo < thresh {
			hi, lo = bits.Mul64(r.Uint64(), uint64(n))
		}
	}
	return int(hi)
}

// keyList returns every key, for List to walk one key at a time.
func (x *index) keyList() []Key {
	ks := make([]Key, 0, len(x.keys))
	for k := range x.keys {
		ks = append(ks, k)
	}
	return ks
}

// liveEntries returns k's unexpired entries.
func (x *index) liveEntries(k Key, now time.Time) []Entry {
	ks := x.keys[k]
	if ks == nil {
		return nil
	}
	nowMs := toMillis(now)
	out := make([]Entry, 0, len(ks.slots))
	for i := range ks.slots {
		if s := &ks.slots[i]; s.expires > nowMs {
			e := s.entry(k, []byte(s.envelope))
			e.Bridged, e.Endpoints = ks.bridgedOf(s.announcer)
			out = append(out, e)
		}
	}
	return out
}

// ref names a stored record.
type ref struct {
	key       Key
	announcer peer.ID
}

// expired lists the records expired at now.
func (x *index) expired(now time.Time) []ref {
	nowMs := toMillis(now)
	var out []ref
	for k, ks := range x.keys {
		for i := range ks.slots {
			if ks.slots[i].expires <= nowMs {
				out = append(out, ref{k, ks.slots[i].announcer})
			}
		}
	}
	return out
}

// sweep deletes the records expired at now and returns how many.
func (x *index) sweep(now time.Time) int {
	nowMs := toMillis(now)
	n := 0
	for k, ks := range x.keys {
		// Backwards: remove moves the last slot, already seen, into i.
		for i := len(ks.slots) - 1; i >= 0; i-- {
			if ks.slots[i].expires <= nowMs {
				x.delete(k, i) // may delete k from x.keys: fine while ranging
				n++
			}
		}
	}
	return n
}

func (x *index) stats() Stats {
	return Stats{Keys: len(x.keys), Records: x.records, Evicted: x.evicted}
}

// busiest returns the n keys with the most unexpired records, most first.
// It walks every key but keeps only n.
func (x *index) busiest(n int, now time.Time) []KeyCount {
	if n <= 0 {
		return nil
	}
	nowMs := toMillis(now)
	top := make([]KeyCount, 0, n+1)
	for k, ks := range x.keys {
		if len(top) == n && len(ks.slots) <= top[n-1].Records() {
			continue // cannot beat the last even with every slot live
		}
		c := KeyCount{Key: k}
		for i := range ks.slots {
			switch s := &ks.slots[i]; {
			case s.expires <= nowMs, s.withdrawn:
			case s.seed:
				c.Seeds++
			default:
				c.Leechers++
			}
		}
		if c.Records() == 0 {
			continue
		}
		i := len(top)
		for i > 0 && top[i-1].Records() < c.Records() {
			i--
		}
		if i < n {
			top = slices.Insert(top, i, c)
			if len(top) > n {
				top = top[:n]
			}
		}
	}
	return top
}
