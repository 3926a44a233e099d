// Package records is what kadtracker stores in its DHT: swarm keys, the
// signed peer record, and the Store that holds records for others.
//
// # Keys
//
// A Key names a swarm: the multihash of its infohash, SHA-1 for a v1
// infohash (20 bytes) and SHA2-256 for a v2 one (32 bytes, BEP 52). The
// multihash bytes are the DHT key (Key.DHTKey). ParseKey reads 40 or 64
// hex characters, or a CIDv1 with multicodec torrent-info. BitTorrent
// clients announce a v2 torrent to trackers under its first 20 bytes, so
// every 20-byte tracker info_hash maps to a key with SwarmKey, and
// Key.Swarm and Key.TrackerInfohash convert between the two (key.go says
// why).
//
// # Records
//
// A Record says "peer Announcer has a BitTorrent client on Port for swarm
// Key until Expires", with a sequence number (the highest wins), a seed
// flag, and Withdrawn for a tombstone. A bridged record (Bridged,
// Endpoints) names up to MaxEndpoints peers the announcer learned
// elsewhere, and lives at most MaxBridgedTTL.
//
// # Record format
//
// A record is a libp2p signed envelope (domain EnvelopeDomain, at most
// MaxEnvelopeSize bytes) around a protobuf PeerRecord (internal/pb): key,
// announcer, port, seed, seq, expiry, withdrawn, bridged, endpoints and,
// from version 2 on, addr. The envelope's payload type names the version:
//
//   - /kadtracker/peer-record/2 (PayloadTypeV2): the record carries Addr,
//     the announcer's own address as the storing nodes see it, signed. Its
//     client's endpoint is Addr:Port. Storing nodes refuse it from any other
//     address, and lookups serve direct endpoints only from such records.
//     Bridged records carry it too: lookups count bridges by it.
//   - /kadtracker/peer-record/1 (PayloadType): no address. Tombstones and
//     the records of older announcers. A storing node still stores an old
//     direct record at the address it came from (for older lookups), but
//     current lookups do not serve it: only that storing node vouches for
//     the address.
//
// Open refuses an envelope whose payload type disagrees with its payload
// (an address under version 1, none under version 2).
//
// # Withdrawals
//
// A record with Withdrawn set is a tombstone: signed like any record, with
// the seq after the record it withdraws and the expiry that record had (or
// later). Stores keep it in the announcer's place until it expires, serve
// it, and count it as neither seed nor leecher, so that a storing node that
// replays the withdrawn record loses to those that hold the tombstone.
//
// # Bridged endpoints
//
// Endpoints of a bridged record are only as good as the bridge that signed
// them. Storing nodes refuse, and lookups drop, endpoints that are not
// global unicast (IsGlobal) unless a test network on loopback says
// otherwise; lookups serve an endpoint only when enough bridges at
// distinct addresses name it (node.Config.BridgeQuorum).
//
// # Sealing and opening
//
// Seal signs a record into a libp2p signed envelope (core/record) with the
// announcer's key, under the signature domain EnvelopeDomain and the
// payload type of its version; the payload is the protobuf PeerRecord of
// internal/pb, marshalled deterministically. Open is the only way in from
// the network: it checks the size (MaxEnvelopeSize), the signature, the
// payload type, a strict parse of the payload (unknown fields are
// ErrMalformed), and that the signer is the announcer. Validate checks the
// expiry against a clock and the largest TTL the caller accepts. Every
// error wraps one of the Err variables, so a storing node can name the
// reason it refused.
//
//	env, err := records.Seal(rec, privKey) // the announcing node
//	rec, err := records.Open(env)          // the storing node, and the looking-up node again
//	err = rec.Validate(now, maxTTL)
//
// # Stores
//
// A Store holds the records a node keeps for others: an Entry is the
// Record, the IP it came from (the zero IP for a record of this node's
// own), and the envelope, served verbatim. Put replaces an announcer's
// record when its Seq is higher (ErrStale otherwise) and keeps a withdrawn one as a
// tombstone in its place until it expires; Get returns up to want entries of a key, a random choice
// when more are stored, with the key's seed and leecher counts; Expire
// sweeps; List and Stats serve the local API. Put does not verify: its
// Entry must hold what Open returned.
//
// Two implementations share one in-memory index (index.go), which serves
// every read:
//   - Memory keeps nothing across restarts (ephemeral nodes, netsim).
//   - Pebble writes every change through to a pebble database, synced,
//     before the index changes, so a Put that returned nil survives a
//     crash; OpenPebble loads the records back, verifying every envelope
//     again and dropping (and counting, Loaded) expired, damaged or
//     over-the-limit ones.
//
// Both pass one conformance suite (runStoreSuite in the tests, which also
// checks the limits and Stats against List at its key steps, and
// runBridgedSuite, which reopens a Pebble store from disk midway); a new
// Store passes them too. Pebble's own tests add reopening, corrupt values
// and over-the-limit loads. The parsers of wire
// input have fuzz targets with seeds in testdata/fuzz: FuzzOpen,
// FuzzUnmarshalRecord, FuzzParseKey, FuzzKeyFromMultihash, and
// FuzzDecodeValue for the stored value.
//
// # Caps and eviction
//
// Limits bound a store; DefaultLimits are a home daemon's (about 200 MB at
// the Records cap). The per-entity caps refuse a Put with an error a
// remote may be told: KeysPerAnnouncer, RecordsPerIP and PeersPerKeyPerIP
// (per SourceAddr: an IPv4 address or an IPv6 /64), BridgedPerKey and
// BridgedKeysPerAnnouncer. A full infohash (PeersPerKey) evicts from the
// address group (an IPv4 address, an IPv6 /56) holding the most of its
// records, so a new address is never refused there. The store-wide caps,
// Records and Keys, evict too, so a full store keeps taking fresh records: the
// source address holding the most records (the incoming one's own source
// winning ties) loses the soonest-expiring of a few sampled records, so a
// flood displaces itself first; records of this node's own are never
// evicted (Limits has the details). Addresses in Limits.Exempt (loopback,
// private ranges: DefaultExempt) are not held to the per-address caps.
package records
