// Package node is the kadtracker DHT node: a libp2p host with kad-dht for
// routing and the /kadtracker/records/1.0.0 protocol that stores signed
// peer records (package records) on the m nodes closest to an infohash.
// The faces of a daemon (the tracker front, the local API, TSUP) never
// import it; package node/daemon adapts a *Node to each.
//
// # Parts
//
// New builds a Node from a Config (start from DefaultConfig):
//   - a libp2p host (host.go: libp2p's default transports on
//     Config.ListenAddrs, TCP and QUIC by default, no relay; an Ed25519
//     identity kept in DataDir/identity.key; a connection manager and a
//     resource manager sized by Protection), or Config.Host as given
//     (netsim, mocknet tests);
//   - a records.Store: records.Pebble in DataDir/records, records.Memory
//     without a DataDir, or Config.Store;
//   - kad-dht under the protocol prefix /kadtracker, with its provider and
//     value stores off: it only finds the closest nodes (GetClosestPeers)
//     and keeps the routing table, guarded by an IP-diversity filter
//     (diversity.go);
//   - the record protocol's stream handler (protocol.go);
//   - bootstrap: the configured peers and those remembered from the last
//     run (package bootstrap), dialled at start (join), and mDNS on the LAN
//     with Config.MDNS.
//
// A node with no peers is a one-node network that others can join. In
// ModeAuto it serves the DHT unless AutoNAT finds it unreachable. Walks
// find only nodes that serve the DHT, so in practice only they store
// records for others; the record protocol answers in every mode.
//
// # Announce
//
// Announce(ctx, key, port, seed) keeps key announced for this host's client
// on port until Withdraw, also across restarts, and publishes it now
// (publish.go):
//
//	record   records.Record{key, own peer ID, port, seed, Seq, Expires = now+RecordTTL}
//	walk     closest: kad-dht's GetClosestPeers, plus this node when it serves,
//	         sorted by XOR distance, at most TargetsPerGroup of one IP group
//	PUT      to the m closest in parallel, each copy sealed for its storing
//	         node with the address that node sees (sealFor, records v2's
//	         signed Addr); this node stores its own copy directly; while
//	         fewer than m accept, on to the next closest
//
// Seq follows the clock in milliseconds and always grows, so a storing node
// keeps the newest record of each announcer, also across restarts. One
// publish of a key runs at a time (keylock.go). The result says how many
// nodes stored the record (AnnounceResult.StoredOn) of how many it was
// offered to.
//
// Announce does not wait for the walk by default (announce_early.go, after
// kad-dht's optimistic provide): it PUTs to the nodes heard of that the
// network-size estimate says are among the m closest, returns once the m
// closest heard of took the record (AnnounceResult.Early; two to three
// round trips), and lets the walk finish behind it to give the record to
// the m closest it finds, as above. Config.FullAnnounce walks first;
// republishes and withdrawals always do.
//
// Announce saves the announcement in DataDir/announced.json (announced.go),
// and a restarted node publishes the saved ones at once. AnnounceTransient,
// the tracker front's call, is not saved: the front's clients announce
// again after a restart, and one that stopped meanwhile must not be
// republished for ever.
//
// PublishBridged and WithdrawBridged do the same for peers this node
// learned elsewhere (classic trackers, TSUP, a public tracker's clients):
// they ride in the key's record as explicit endpoints, global unicast ones
// only unless Config.LocalBridgedEndpoints, with the shorter
// BridgedRecordTTL. A node has one record per key.
//
// # Withdraw and republish
//
// Withdraw forgets a key and publishes a tombstone: a signed record with
// Withdrawn set and the next Seq. Storing nodes keep it in the announcer's
// place until it expires and serve it, so a storing node replaying the
// withdrawn record loses to those holding the tombstone.
//
// One scheduler republishes every announced or bridged key (schedule.go):
// keys due are grouped by keyspace region, so one walk serves the keys of
// a region, and regions come due at slots spread over RepublishInterval.
// A key is due again at its region's slot about RepublishInterval after a
// publish some storing node took, so records live while announced and
// lapse within RecordTTL after a crash; after one none took, retried after
// 30 s, doubling per failure up to RepublishInterval, with ±25% jitter
// (settle). A failing key is logged at Warn at most once per 10 minutes,
// and at most 10 Warn lines per 10 minutes over all keys; the rest go to
// Debug and are counted in the next Warn. Stats.Publish says how many keys
// the scheduler can keep alive and how many records lapsed; SetBridged
// hands a key's bridged endpoints to it without blocking.
//
// # Lookup
//
// Lookup(ctx, key, want) sends a salted GET to the m closest nodes in
// parallel and reads this node's own store too (lookup.go). By default it
// asks them while the walk runs and answers as soon as a majority of the m
// closest agree (lookup_early.go: about two round trips on a warm node);
// when they do not, or with Config.FullLookup, it walks as Announce does
// and asks the m closest the walk found. One salt per lookup makes storing nodes that hold the same
// records return the same ones. Every envelope is opened and validated
// again; per announcer the newest record wins, a tombstone too. What is
// served then follows the vouching rules of vouch.go (its doc comment is
// the reference): direct endpoints only from signed addresses; records a
// majority of the answering storing nodes returned first; the others,
// records only one node returned last, in a minority share capped at one
// place per four majority records and a quarter of want; seeds and
// leechers counted from the verified records, never from a storing node's
// claim; bridged endpoints only when bridges at BridgeQuorum distinct
// addresses name them, after the direct records and at most half of want.
// An answer longer than asked for is refused whole. LookupStats give the
// walk's hops and queried nodes, the storing nodes asked and answered, the
// records left unvouched or unsigned, and the duration.
//
// # The record protocol
//
// ProtocolID, /kadtracker/records/1.0.0: varint-length-delimited protobuf
// (internal/pb/wire.proto), one Request answered by one Response, several
// a stream. PUT carries an envelope. The storing node (acceptPut) requires
// an IP on the connection, opens the envelope (signature, domain, payload
// type), requires the announcer to be the peer that sent it, validates the
// expiry against MaxRecordTTL, requires a signed address to be the
// connection's source and bridged endpoints to be global (checkVouchable),
// and stores the entry with the connection's IP. GET returns up to want
// stored envelopes (chosen by the request's salt when more are stored)
// with the IP each came from, and the key's counts. PING measures a round trip (PingRTT). A refusal is a
// status: BAD_REQUEST, REJECTED, FULL, INTERNAL or BUSY, with a reason.
// PutTo and GetFrom speak to one node, outside the walk, for load tools and
// tests.
//
// # Limits
//
// Protection (limits.go) holds the limits against floods and Sybils: token
// buckets per peer ID and per source address, caps on record streams open
// (waiting ones included) in all and per peer, a deadline for a request's
// first bytes, 64 requests a stream, message size caps
// (MaxRequestSize, MaxResponseSize), the routing table's IP diversity
// (DiversityPerCpl, DiversityPerTable), TargetsPerGroup, and the host's
// connection and resource limits. Config.Limits are the store's
// (records.Limits). Addresses in Limits.Exempt are held to none of the
// per-address limits. Every refusal is answered, counted in Stats
// (Refused by Refused* name, PutsRejectedBy by Reject* name) and logged
// at Debug.
//
// # Goroutines
//
// A Node owns its background loops, started by New and stopped by Close
// (which cancels them and waits): the republish scheduler (which also
// saves the announcements) and its region jobs, watchLoop (reachability and routing-table changes, for
// the log), the rendezvous search with Config.Rendezvous, sweepLoop
// (Store.Expire every minute) and, with a DataDir, rememberLoop (the
// routing table saved every five minutes and at Close, so the next start
// rejoins without flags). Each inbound record stream is served on a
// goroutine of the host's; the stream gate bounds the streams open, waiting
// or served, and the resource manager backs it. Announce, Lookup and the
// rest start goroutines only for their parallel PUTs and GETs and the
// walk's event readers, and wait for them before returning; every request
// is bounded by RequestTimeout and the caller's context. kad-dht's and
// mDNS's goroutines are theirs, closed by Close. Close also closes the
// store, and the host when New built it.
package node
