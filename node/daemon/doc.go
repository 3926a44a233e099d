// Package daemon assembles a kadtracker daemon from its parts and runs it:
// the DHT node (package node), the tracker front for the BitTorrent
// clients on this host (node/tracker), the bridge to classic trackers
// (node/tracker/bridge), the TSUP overlay (node/tsup), tracker mode for
// clients on other hosts, the local API (node/localapi) and the metrics
// (node/metrics).
//
// A Config holds each part's settings, nil for a part that is off; Run
// starts them and serves until its context ends. The command
// cmd/kadtracker only turns flags into a Config; tests run whole daemons
// in-process through Start, and netsim may (the layering allows it; its
// networks are node.Nodes today).
//
// The parts are composed explicitly, once, in Start: the front is given
// the DHT node, and the TSUP overlay and the bridge as live peer sources
// and as listeners of its publication changes (tracker.Config.Live and
// Listeners); the local API is given the TSUP and bridge views it serves
// (localapi.Options). No part finds another by type assertion. A part
// that fails to start stops the daemon with an error naming it; a part
// that fails while serving stops the others, and everything acquired is
// released in reverse order.
//
// Peers known besides the DHT's (the classic trackers', the overlay's, and
// the public tracker's clients) are kept published in the DHT as bridged
// records by one publisher, so DHT-only users meet them.
package daemon
