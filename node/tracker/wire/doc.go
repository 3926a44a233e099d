// Package wire encodes and decodes the BitTorrent tracker wire formats, for
// the tracker front (server side) and for a tracker client (the bridge to
// classic trackers): no I/O, no logging, no state.
//
// HTTP (BEP 3, 7, 23, 48): ParseAnnounce and ParseScrape read a raw query the
// way trackers must, byte by byte (info_hash and peer_id are binary, '+' is a
// literal plus, escapes come in either case); AppendAnnounceQuery and
// AppendScrapeQuery write them. AppendAnnounceResponse writes the compact
// (peers, peers6) or dictionary form, AppendScrapeResponse and AppendFailure
// the rest; ParseAnnounceResponse and ParseScrapeResponse read them back. The
// bencode underneath (DecodeBencode, AppendBencode) accepts only the canonical
// form, within MaxBencodeLen and MaxBencodeDepth.
//
// UDP (BEP 15, BEP 41): Parse… and Append… for each of connect, announce,
// scrape and error, requests and responses. The announce response layout (6
// or 18 bytes per peer) follows the address family of the request's source.
//
// Errors: every parse error is an *Error whose text is a sentence fit to send
// back as a "failure reason" or a BEP 15 error message; it unwraps to
// ErrBadQuery, ErrBadPacket, ErrBadBencode or ErrBadResponse. Caps are named
// constants (MaxQueryLen, MaxScrapeHashes, ...).
//
// # v2 infohashes (BEP 52)
//
// BEP 52's tracker section keeps the protocol unchanged: info_hash is "the
// 20byte truncated infohash", the first 20 bytes of the SHA2-256 infohash. A
// tracker cannot tell such a value from a v1 SHA-1 infohash, and need not: a
// v2-only torrent is announced under its truncated hash, and a hybrid torrent
// is announced twice, once under each hash, as two swarms of the same peers.
//
// So the front treats the 20 bytes as an opaque swarm name and maps them to a
// DHT key with records.KeyFromInfohash on those 20 bytes (SwarmKey). Every
// daemon does the same, so clients behind different daemons meet under the
// same key; the key's multihash says SHA-1 even for a truncated v2 hash,
// which only labels it. The full 32-byte key is never reachable from a
// tracker announce. When a 32-byte v2 key is known (typed on the CLI, or from
// a v2 magnet link), TruncateV2 gives the key those tracker announces live
// under, and TrackerInfohash the 20 bytes a tracker client sends for a key.
package wire
