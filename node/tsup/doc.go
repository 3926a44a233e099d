// Package tsup is the TSUP overlay of a kadtracker daemon: the Tracker
// Swarm Unification Protocol (Burloiu, Deaconescu, Ţăpuş, ICNS 2011),
// by which trackers linked statically over UDP share the peers of the
// swarms they have in common. It speaks the wire format of XBT Unified
// Tracker, the one public implementation, so the two can link; package wire
// has the codecs.
//
// # Pieces
//
// Core is the protocol: a state machine with no I/O and no clock (as
// etcd-io/raft's RawNode), driven by Step (a received packet), Tick (time,
// at NextDeadline) and SetOwn (this daemon's clients), emitting packets via
// Ready and the unified swarms via Peers. Transport runs a Core on the
// daemon's UDP tracker socket, which TSUP shares (TSUP actions have bit
// 0x80 set, BEP 15 actions are 0 to 3). ParseLinks reads the --tsup-links
// file.
//
// The tests run kadtracker beside a model of XBT written from its source
// (xbt_test.go) in the deterministic simulation.
//
// Wiring, in the daemon:
//
//	links, err := tsup.ParseLinks(f)              // --tsup-links FILE
//	err = tsup.ResolveLinks(ctx, links, nil)
//	cfg := tsup.DefaultConfig()                   // hello 10 s, update 30 s, disconnect 30 s
//	cfg.Links, cfg.Logger = links, log
//	tr, err := tsup.New(cfg, udpConn)             // the UDP tracker's socket
//	go front.ServeUDP(ctx, tr.Demux())            // TSUP packets go to tr, the rest to the front
//	tr.SetOwn(ih, []tsup.Peer{{Addr: publicIP:clientPort, Seed: seed}}) // own clients changed
//	peers := tr.Peers(ih)                         // Origin Own, Internal or External
//	defer tr.Close()
//
// # Protocol
//
// Per link: a three-way handshake (SYN, SYN+ACK, then SUMMARY as the third
// leg), unification (SUMMARY → UPDATE+S → UPDATE+S+A: the common swarms
// and the first peers, pipelined), a HELLO keep-alive, a disconnect after
// DisconnectInterval of silence (on links without the extensions
// Config.PlainDisconnect: the same but at least XBT's 240 s, unless set),
// RetryTimes SYNs one per hello interval, then one per ReconnectInterval. A swarm that appears or goes is sent at
// once as a one-entry SUMMARY. Every UpdateInterval each link sharing a
// swarm gets an UPDATE (a full snapshot, dead peers flagged NEG) that it
// acknowledges; anything unacknowledged is resent by timer. Each swarm has
// an internal and an external leader: members send their updates to the
// leader only, which sends everything to every member, 2(n-1) UPDATEs per
// round instead of the full mesh's n(n-1) (Config.FullMesh turns leaders
// off). Forwarding: own peers go everywhere; peers learned over internal
// links go over internal links only from the internal leader, over
// external links always; likewise for external peers. A border tracker
// (internal and external links) is a member of every swarm and carries
// swarms it has no clients of, so two networks unify through it even for
// swarms it lacks.
//
// # Differences from XBT Unified Tracker
//
// Where XBT is defective, kadtracker does the right thing without
// breaking a link to XBT:
//
//   - Simultaneous open. XBT, having answered the other side's SYN, drops
//     its SYN+ACK, so two trackers that SYN each other at once wait for the
//     disconnect interval (its random back-off is unreachable). kadtracker
//     sets SYN flag 0x80 (EXT; XBT tests bit 0x01 only): between two
//     kadtrackers the side whose own connection id is smaller adopts the
//     other's and sends the SUMMARY; toward XBT (no EXT) we always adopt
//     XBT's id and send the SUMMARY, which XBT accepts in its SYN state.
//   - Both trackers elected leader. XBT elects locally with its own address
//     defaulting to 0.0.0.0 (winning every tie) and counts mandates
//     differently for itself and others, so two trackers sharing a swarm
//     both lead and fall back to full mesh. kadtracker's CANDIDATURE to a
//     kadtracker appends a rank and a campaign epoch (XBT reads only the
//     mandates), and every kadtracker computes the same result from the
//     same numbers: fewest mandates not counting the swarm itself, ties
//     broken by rendezvous hashing of rank and info_hash, a leader keeping
//     its swarm unless a member leads at least two fewer (then the swarm
//     moves with a probability that halves the gap instead of swinging it).
//     The winner claims its swarms with LEADER to every member after each
//     election; members route to a leader only once it has claimed (full
//     mesh meanwhile), two claimants settle by rank hash, and XBT, which is
//     never elected by kadtrackers, follows any LEADER it is sent. As XBT
//     elects itself at the end of each of its campaigns, the claims are
//     repeated to it whenever one of its campaigns may have ended (it
//     acknowledged our CANDIDATURE, or we its).
//   - Elections. XBT starts a campaign on any CANDIDATURE received outside
//     one and sends its own on its next hello tick, which comes only after
//     its hello interval of silence toward every link (one timer, reset by
//     every send): any time later, or never while a neighbour's UPDATEs
//     keep it answering. Answering that late CANDIDATURE with a campaign
//     (or with ours, which starts another there) echoed without end. So
//     between kadtrackers campaign epochs tell a straggler from a new
//     campaign; toward a link without the extensions a CANDIDATURE never
//     starts a campaign, a campaign does not wait for one (such a link is
//     never a candidate), and the CANDIDATURE our last one made the
//     neighbour owe is acknowledged without an answer, while one from a
//     campaign of its own gets ours. Each of our campaigns so costs an XBT
//     neighbour one campaign at most (TestXBTElectionSettles: at most one
//     campaign per tracker in any ten minutes, with one or two XBTs,
//     hello intervals of 5 to 60 s, and an XBT restart). A newcomer
//     during a campaign is counted; a campaign ends at a deadline even if a
//     neighbour never answers; and an election also runs when a shared
//     swarm has no leader (a new swarm, a lost leader) instead of waiting
//     for the hourly one.
//   - One-hash LEADER. XBT's send buffer holds one info_hash (the copy
//     overflows it) while its ACK clears them all; kadtracker sends as many
//     as fit in one packet (XBT's receiver reads them all) and an ACK
//     clears only the notice it acknowledges.
//   - Echoing peers back. An XBT leader sends members their own peers.
//     kadtracker keeps the last four reporters of each peer and never sends
//     a peer back to a link that is its only reporter (an echo would keep
//     a departed client alive there: XBT's remote report refreshes its own
//     peer). A peer others report too goes back to a kadtracker neighbour
//     once it has not reported it for an update and a hello interval, and
//     to a link without the extensions every round: an XBT forwards peers
//     it does not refresh (when it led the swarm, before it followed our
//     LEADER) and forgets them 1.5 announce intervals after the last report
//     it got, an interval we cannot see; it keeps one entry per IP, so the
//     copy costs it nothing.
//   - A malformed SUMMARY changes XBT's link state before its length is
//     checked; kadtracker drops malformed packets whole (XBT applies the
//     readable part of a cut UPDATE; kadtracker never sends one: UPDATEs are
//     split into packets of at most 2048 bytes, each acknowledged).
//   - More than 96 swarms: XBT sends one SUMMARY that an XBT receiver cuts
//     at 2048 bytes and drops, so the handshake never completes.
//     kadtracker sends SUMMARY chunks of at most 2048 bytes, one
//     outstanding at a time, each answered by UPDATE+S, which XBT handles.
//   - Keep-alive per link. XBT's one hello timer is reset by any send to
//     any link, so a busy link can starve the others; kadtracker sends a
//     link a HELLO when it sent it nothing for half a hello interval, and
//     resends on a link's own hello ticks.
//   - Dead peers. XBT's fixed 50-slot list of dead peers overflows;
//     kadtracker advertises a dead peer (NEG) for three update intervals,
//     then forgets it; toward links without the extensions only peers that
//     stopped or were reported dead, not peers that merely expired: XBT
//     applies a NEG to its own clients too, until they announce again.
//     Peers are keyed by address and port, not by IP alone. Remote peers
//     expire after PeerTTL (5 min; XBT: 1.5 announce intervals, 45 min by
//     default), or twice the reporting link's observed period between
//     UPDATEs if that is longer (at most an hour): XBT's default update
//     interval is 300 s, PeerTTL's default too.
//   - Border trackers add the sender to a swarm they create from its
//     SUMMARY (XBT waits for its next UPDATE), and forget swarms left with
//     neither peers nor members.
//   - A block with peers for a swarm the receiver lacks makes XBT parse
//     them with an invalid iterator. Toward a link without the extensions
//     kadtracker sends peers only in swarms the neighbour named itself (a
//     border neighbour is a member of every swarm): others get an empty
//     block, from which an XBT border tracker creates the swarm. Unknown
//     blocks it receives are skipped.
//   - Timers: the paper's 10 s hello and 30 s update (XBT 60 s and 300 s),
//     30 s disconnect (240 s; links without the extensions, maybe XBT with
//     its 60 s hello, follow DisconnectInterval but no less than XBT's
//     240 s unless Config.PlainDisconnectInterval says otherwise), 2 min
//     reconnect (900 s).
//
// # Extensions
//
// Negotiated per link by SYN EXT, so off toward XBT: IPv6 peers and a seed
// bit in UPDATE peer entries, up to ExtendedPeers peers per swarm per round
// (XBT: 50, sampled), and the ranked CANDIDATURE and LEADER. A link may be
// IPv6 (XBT is IPv4 only). A link configured with a key (key=HEX in the
// links file, the same on both ends) seals every packet with a trailer:
// the sender's random nonce, its clock, and HMAC-SHA256 over packet, nonce
// and clock truncated to 16 bytes; packets with a bad tag, a clock not
// newer than the last accepted or outside MACWindow, or our own nonce
// (reflected) are dropped. Without a key a link is as spoofable as XBT's:
// its identity is the source IP and a self-declared port.
//
// # Not implemented
//
// XBT's per-link NAT flag (sending to the last source port seen): packets
// go to the configured port. Tracker discovery: links are static, as in the
// paper and XBT.
package tsup
