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
// BEP 52's tracker section keeps the protocol unchanged: info_hash is 20
// bytes, v1 or a truncated v2 infohash. This package treats them as opaque;
// records.SwarmKey maps them to a DHT key (see records/key.go for the rules).
package wire
