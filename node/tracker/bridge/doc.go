// Package bridge connects a kadtracker daemon to classic BitTorrent
// trackers: a tracker client (Client) and the Announcer that uses it on
// behalf of the daemon's local BitTorrent clients.
//
// Client speaks HTTP (BEP 3, 7, 23, 24 "external ip", 48 scrape) and UDP
// (BEP 15, with BEP 41 URL data) on the codecs of package wire, the same
// the tracker front serves with. Every call is bounded by its context, or
// by ClientConfig.Timeout when the context has no deadline. UDP follows
// BEP 15 with its timeouts scaled down: a request is sent UDPTries times,
// waiting UDPRetransmit, then twice that, and so on, never past the
// deadline; connection IDs are cached for 50 s of their minute, and one
// the tracker refuses is renewed once. A tracker's refusal is a
// *wire.FailureError with its reason, over HTTP (a "failure reason", with
// any status) and UDP (an error packet) alike.
//
// Announcer keeps, for each swarm a local client announces, one schedule
// per tracker: started when the client starts, completed when it turns
// seed, stopped when it stops, and plain announces at the tracker's
// interval (never sooner than its min interval, within [MinInterval,
// MaxInterval]). A failure is retried after RetryFirst, doubling up to
// RetryMax. The client's port is announced; the tracker takes the address
// from the request, which leaves from this host as the client's would.
// Peers keeps the latest peers of every tracker, merged, in memory: the
// daemon reads them on every answer to its client, so a slow or broken
// tracker never delays an answer, it only contributes nothing.
//
// The package depends on package wire alone: it knows nothing of the DHT.
package bridge
