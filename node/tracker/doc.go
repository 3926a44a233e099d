// Package tracker is the BitTorrent tracker front of a kadtracker daemon:
// an HTTP tracker (BEP 3, 7, 23, 48) and a UDP tracker (BEP 15, 41) that a
// BitTorrent client on the same host announces to, backed by the DHT node
// through the small Node interface declared here (tests use a fake).
//
// Semantics:
//   - An announce registers the client (its source IP with the announced
//     port) in the swarm of the info_hash and makes the node Announce that
//     swarm with the client's port and seed = (left == 0). Node calls are
//     asynchronous and deduplicated: one Announce per change of (port,
//     seed), since the node republishes on its own for as long as it keeps
//     a swarm announced. Failed calls are retried with backoff.
//   - event=stopped removes the client; the node Withdraws the swarm when
//     no client of this daemon announces it any more. A client silent for
//     ClientTimeout lapses the same way.
//   - Listeners (Config.Listeners: the TSUP overlay, the bridge) hear the
//     same changes, just before the Node. One error rule: a listener's error
//     is logged (rate-limited) and counted in Stats.ListenerErrors, and never
//     stops, fails or repeats the Node call. Listeners must not block.
//   - Answers come from a bounded per-infohash lookup cache (CacheSize
//     swarms, least recently used evicted first), kept fresh: an announce
//     or scrape that finds a swarm's entry older than FreshFor (1 s),
//     whoever sends it, seed or leecher, starts a lookup and waits for it up
//     to FirstLookupWait, so answers hold what the DHT held moments before
//     (a seed hears of a leecher at its next re-announce). Every swarm with
//     local clients is also refreshed in the background after CacheTTL. A
//     swarm is looked up at most once a second, background lookups are
//     bounded by LookupConcurrency and all node calls by NodeConcurrency.
//     An answer whose first lookup has not finished, or a leecher's with no
//     peers, carries ShortInterval. Live sources (Config.Live) are read on
//     every answer, each of them, not through the cache.
//   - A client is never handed its own endpoint: not its address as seen
//     with its announced port, not its "ip" parameter with that port, not
//     any loopback address with that port when it announced over loopback,
//     and not a record this daemon published for its port (Peer.Local).
//     Other local clients of the same swarm are offered directly. A seed is
//     not handed other seeds. numwant defaults to DefaultNumwant and is
//     capped at MaxNumwant; complete/incomplete are the larger of the
//     storing nodes' counts and the peers this daemon sees.
//   - v2 torrents: BEP 52 clients announce the SHA2-256 infohash truncated
//     to 20 bytes; the front maps any 20-byte info_hash to a key with
//     records.SwarmKey (see records/key.go for the reasoning and Key.Swarm).
//
// Public tracker mode (clients on other hosts): per-address shares (an
// IPv4 address or an IPv6 /64) keep one address from locking the others
// out: of a swarm's client slots (SwarmClientsPerAddr), of the cache
// (MinSwarmsPerAddr: an address under it takes a swarm from the address
// holding the most), of new swarms per interval (NewSwarmsPerAddr), and of
// the HTTP front's connections (HTTPConnsPerAddr, HTTPIdleConnsPerAddr;
// a full front closes its longest idle keep-alive connection for a new
// one). Refusals are counted in Stats.
//
// The "ip" parameter (and the UDP IP field) is honoured from no one for
// publishing: the record's IP is what the storing node sees of this daemon,
// which is the only address other daemons' clients can reach. It is used
// only to widen the self-exclusion, which is harmless whoever sends it.
//
// Wiring is explicit: the caller puts the parts in Config (Live, Listeners)
// and nothing is discovered by type assertion on the Node. New(node, cfg),
// then Serve(ctx, tcpListener) and ServeUDP(ctx, udpConn) in goroutines the
// caller owns, Close at the end.
//
// Files: tracker.go (Tracker, New, Close, the announce path), swarm.go
// (a swarm's clients and who may be offered to whom), publish.go (what the
// node and listeners are told, retries), cache.go (lookups and answers),
// sweep.go, stats.go, shares.go (per-address shares), http.go and udp.go
// (the fronts), limitln.go (the HTTP front's connection limits).
package tracker
