// Package records holds kadtracker's signed peer records and the stores
// that keep them for others.
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
package records
