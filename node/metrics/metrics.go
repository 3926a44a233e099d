// Package metrics is a kadtracker daemon's metrics face: Prometheus metrics
// at /metrics and a small status page at /, on one HTTP listener (the
// daemon's --metrics, loopback by default, off unless asked for).
//
// It reads the daemon through Source, an interface of its own, and is told
// of lookups and announces by whoever makes them (ObserveLookup,
// ObserveAnnounce), so it is tested without a DHT. Each Metrics has its own
// prometheus.Registry: there is no global state, and netsim may run many.
//
// Metric names (all prefixed kadtracker_):
//
//	announces_total{front,result}        client announces answered: front http, udp, api; result ok, error
//	lookups_total{front,result}          DHT lookups: front tracker, api; result ok, empty, error
//	lookup_duration_seconds{front}       histogram of lookup latency
//	lookup_hops{front}                   histogram of a lookup's DHT walk depth
//	records_stored, swarms_stored        what this node stores for others
//	swarms_tracked                       swarms this node announces for its clients
//	publish_keys, publish_capacity_keys  keys this node keeps published (own and bridged), and about
//	                                     how many its republish scheduler can keep alive (0: not measured yet)
//	publish_lapsed_total                 records that expired before this node republished them
//	tracker_swarms                       swarms the tracker front keeps (cache and clients)
//	records_evicted_total                records the full store evicted
//	puts_received_total, puts_accepted_total, puts_rejected_total{reason}
//	gets_received_total
//	rate_limited_total{limit}            record-protocol requests refused by a rate or stream limit
//	refused_total{reason}                other refusals: bad requests, routing-table and storing-node diversity
//	routing_table_size, connections
//	reachability{state}                  1 for AutoNAT's verdict (public, private, unknown), 0 for the others
//	dht_mode{mode}                       1 for the DHT mode now (server, client), 0 for the other
//	public_addrs                         addresses others on the Internet may dial
//	port_mapping_enabled, port_mapping_gateway, port_mapping_addrs
//	                                     UPnP / NAT-PMP: on, a gateway found, external addresses mapped
//	rendezvous_state{state}              1 for the rendezvous state (off, starting, searching, resting)
//	rendezvous_dht_peers                 the rendezvous DHT's routing table
//	rendezvous_rounds_total, rendezvous_peers_found_total, rendezvous_peers_connected_total,
//	rendezvous_peers_dropped_total
//	rendezvous_last_success_timestamp_seconds  Unix time of the last round that connected a peer; 0: never
//
// plus the Go runtime's and the process's collectors (go_*, process_*).
package metrics

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/kadtracker/kadtracker/records"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Source is what the metrics read of the daemon.
type Source interface {
	// Counts is read on every scrape, so it must be cheap.
	Counts() Counts
	// Status is read for the status page.
	Status(ctx context.Context) (Status, error)
}

// Counts are the daemon's counters and gauges.
type Counts struct {
	RoutingTableSize int
	Connections      int
	Store            records.Stats // records and swarms stored, evictions
	Tracked          int           // swarms this node announces for its clients
	TrackerSwarms    int           // swarms the tracker front keeps
	PutsReceived     int64
	GetsReceived     int64
	PutsRejected     map[string]int64 // by reason
	RateLimited      map[string]int64 // by limit
	Refused          map[string]int64 // other refusals, by reason
	// Announces counts client announces answered by fronts the Metrics
	// are not told of with ObserveAnnounce (the tracker front keeps its
	// own counts).
	Announces map[FrontResult]int64
	// Reachability is how others reach the node; zero without a DHT node.
	Reachability Reachability
	// Publish is the republish scheduler: keys kept published, about how
	// many it can keep alive (0: not measured yet), records that lapsed.
	Publish Publish
}

// Publish is the republish scheduler's state.
type Publish struct {
	Keys, CapacityKeys int
	LapsedTotal        int64
}

// Reachability is what AutoNAT, the port mapping and rendezvous say.
type Reachability struct {
	State       string // public, private, unknown; "" without a DHT node
	DHTMode     string // server, client
	PublicAddrs int
	PortMapping PortMapping
	Rendezvous  Rendezvous
}

// PortMapping is the UPnP IGD / NAT-PMP port mapping's state.
type PortMapping struct {
	Enabled bool
	Gateway bool // a gateway was found
	Mapped  int  // external addresses mapped to our listeners
}

// Rendezvous is the search for other nodes through the rendezvous DHT.
type Rendezvous struct {
	State                     string // off, starting, searching, resting
	Serving                   bool
	DHTPeers                  int
	Rounds                    int64
	Found, Connected, Dropped int64
	LastSuccess               time.Time // zero: never
}

// The label values the state gauges always carry, so a dashboard sees a 0
// rather than a missing series.
var (
	ReachabilityStates = []string{"public", "private", "unknown"}
	DHTModes           = []string{"server", "client"}
	RendezvousStates   = []string{"off", "starting", "searching", "resting"}
)

// FrontResult labels a count by front and result.
type FrontResult struct{ Front, Result string }

// Status is what the status page shows besides the counts.
type Status struct {
	PeerID      string
	Addrs       []string
	DHTMode     string
	Replication int
	Started     time.Time
	Network     string   // the kadtracker network's name
	PublicAddrs []string // addresses others on the Internet may dial
	MappedAddrs []string // external addresses the port mapping holds
	Routing     []RoutingPeer
	Tracked     []TrackedSwarm
	Stored      []records.KeyCount // the busiest swarms stored, most records first
}

// RoutingPeer is one routing-table entry.
type RoutingPeer struct {
	ID        string
	CPL       int
	Connected bool
	Addrs     []string
}

// TrackedSwarm is a swarm this node announces for a local client.
type TrackedSwarm struct {
	Infohash records.Key
	Port     uint16
	Seed     bool
}

// Lookup is one DHT lookup, as ObserveLookup is told of it.
type Lookup struct {
	Front    string // who asked: "tracker", "api"
	Infohash records.Key
	Peers    int
	Hops     int
	Queried  int
	Duration time.Duration
	Err      error
	At       time.Time // set by ObserveLookup
}

// Result is "ok", "empty" (no peers found) or "error".
func (l Lookup) Result() string {
	switch {
	case l.Err != nil:
		return "error"
	case l.Peers == 0:
		return "empty"
	}
	return "ok"
}

// RecentLookups is how many lookups the status page shows.
const RecentLookups = 32

// Metrics collects and serves. Its methods are safe for concurrent use.
type Metrics struct {
	src Source
	now func() time.Time
	reg *prometheus.Registry

	lookups *prometheus.CounterVec
	latency *prometheus.HistogramVec
	hops    *prometheus.HistogramVec

	mu        sync.Mutex
	announces map[FrontResult]int64
	recent    [RecentLookups]Lookup
	next      int // index in recent of the next lookup
}

// New returns Metrics reading src, with its own registry. now is the clock
// (nil: time.Now).
func New(src Source, now func() time.Time) *Metrics {
	if now == nil {
		now = time.Now
	}
	m := &Metrics{
		src:       src,
		now:       now,
		reg:       prometheus.NewRegistry(),
		announces: make(map[FrontResult]int64),
		lookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kadtracker_lookups_total", Help: "DHT lookups, by the front that asked and result (ok, empty, error).",
		}, []string{"front", "result"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "kadtracker_lookup_duration_seconds", Help: "Latency of DHT lookups: the walk and the GETs.",
			Buckets: prometheus.ExponentialBuckets(0.002, 2, 14), // 2 ms .. 16 s
		}, []string{"front"}),
		hops: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "kadtracker_lookup_hops", Help: "Referral depth of DHT lookups' walks.",
			Buckets: prometheus.LinearBuckets(0, 1, 11),
		}, []string{"front"}),
	}
	m.reg.MustRegister(m.lookups, m.latency, m.hops, &collector{m: m},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry is the Metrics' own registry.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// ObserveLookup records a finished lookup.
func (m *Metrics) ObserveLookup(l Lookup) {
	l.At = m.now()
	m.lookups.WithLabelValues(l.Front, l.Result()).Inc()
	if l.Err == nil {
		m.latency.WithLabelValues(l.Front).Observe(l.Duration.Seconds())
		m.hops.WithLabelValues(l.Front).Observe(float64(l.Hops))
	}
	m.mu.Lock()
	m.recent[m.next] = l
	m.next = (m.next + 1) % RecentLookups
	m.mu.Unlock()
}

// ObserveAnnounce counts a client announce answered by front.
func (m *Metrics) ObserveAnnounce(front string, err error) {
	r := "ok"
	if err != nil {
		r = "error"
	}
	m.mu.Lock()
	m.announces[FrontResult{front, r}]++
	m.mu.Unlock()
}

// Recent returns the last RecentLookups lookups, newest first.
func (m *Metrics) Recent() []Lookup {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Lookup, 0, RecentLookups)
	for i := range RecentLookups {
		l := m.recent[(m.next-1-i+2*RecentLookups)%RecentLookups]
		if l.At.IsZero() {
			break
		}
		out = append(out, l)
	}
	return out
}

// Handler serves /metrics and the status page at /.
func (m *Metrics) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg}))
	mux.HandleFunc("GET /{$}", m.serveStatus)
	return mux
}

// Server timeouts: the listener is for a scraper and a browser on this host.
const (
	readHeaderTimeout = 5 * time.Second
	writeTimeout      = 30 * time.Second
	idleTimeout       = time.Minute
	shutdownGrace     = 3 * time.Second
)

// Serve serves Handler on ln until ctx is done, then shuts down; it closes
// ln.
func (m *Metrics) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           m.Handler(),
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readHeaderTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    16 << 10,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }() // waited for below
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

var descs = struct {
	routing, conns, records, swarms, tracked, trackerSwarms, evicted *prometheus.Desc
	putsReceived, putsAccepted, putsRejected, gets                   *prometheus.Desc
	rateLimited, refused, announces                                  *prometheus.Desc
	reachability, dhtMode, publicAddrs                               *prometheus.Desc
	pmEnabled, pmGateway, pmAddrs                                    *prometheus.Desc
	rdvState, rdvPeers, rdvRounds, rdvFound, rdvConnected            *prometheus.Desc
	rdvDropped, rdvLastSuccess                                       *prometheus.Desc
	pubKeys, pubCapacity, pubLapsed                                  *prometheus.Desc
}{
	pubKeys:     prometheus.NewDesc("kadtracker_publish_keys", "Keys this node keeps published (announced and bridged).", nil, nil),
	pubCapacity: prometheus.NewDesc("kadtracker_publish_capacity_keys", "About how many keys the republish scheduler can keep alive at the republish interval; 0 until measured.", nil, nil),
	pubLapsed:   prometheus.NewDesc("kadtracker_publish_lapsed_total", "Records that expired on the storing nodes before this node republished them.", nil, nil),

	routing:       prometheus.NewDesc("kadtracker_routing_table_size", "Peers in the DHT routing table.", nil, nil),
	conns:         prometheus.NewDesc("kadtracker_connections", "Open libp2p connections.", nil, nil),
	records:       prometheus.NewDesc("kadtracker_records_stored", "Peer records this node stores for others (expired ones not yet swept included).", nil, nil),
	swarms:        prometheus.NewDesc("kadtracker_swarms_stored", "Infohashes this node stores records for.", nil, nil),
	tracked:       prometheus.NewDesc("kadtracker_swarms_tracked", "Infohashes this node announces for its local clients.", nil, nil),
	trackerSwarms: prometheus.NewDesc("kadtracker_tracker_swarms", "Infohashes the tracker front keeps (lookup cache and announced swarms).", nil, nil),
	evicted:       prometheus.NewDesc("kadtracker_records_evicted_total", "Records the store evicted to make room.", nil, nil),
	putsReceived:  prometheus.NewDesc("kadtracker_puts_received_total", "Record PUTs received from other nodes.", nil, nil),
	putsAccepted:  prometheus.NewDesc("kadtracker_puts_accepted_total", "Record PUTs stored.", nil, nil),
	putsRejected:  prometheus.NewDesc("kadtracker_puts_rejected_total", "Record PUTs refused, by reason.", []string{"reason"}, nil),
	gets:          prometheus.NewDesc("kadtracker_gets_received_total", "Record GETs received from other nodes.", nil, nil),
	rateLimited:   prometheus.NewDesc("kadtracker_rate_limited_total", "Record-protocol requests refused by a rate or concurrency limit, by limit.", []string{"limit"}, nil),
	refused:       prometheus.NewDesc("kadtracker_refused_total", "Other refusals, by reason.", []string{"reason"}, nil),
	announces:     prometheus.NewDesc("kadtracker_announces_total", "Client announces answered, by front and result.", []string{"front", "result"}, nil),

	reachability:   prometheus.NewDesc("kadtracker_reachability", "1 for AutoNAT's verdict on this node (public, private, unknown), 0 for the others.", []string{"state"}, nil),
	dhtMode:        prometheus.NewDesc("kadtracker_dht_mode", "1 for the DHT mode the node is in now (server, client), 0 for the other.", []string{"mode"}, nil),
	publicAddrs:    prometheus.NewDesc("kadtracker_public_addrs", "Addresses others on the Internet may dial.", nil, nil),
	pmEnabled:      prometheus.NewDesc("kadtracker_port_mapping_enabled", "1 when UPnP / NAT-PMP port mapping is on.", nil, nil),
	pmGateway:      prometheus.NewDesc("kadtracker_port_mapping_gateway", "1 when a UPnP IGD or NAT-PMP gateway was found.", nil, nil),
	pmAddrs:        prometheus.NewDesc("kadtracker_port_mapping_addrs", "External addresses the gateway maps to this node's listeners.", nil, nil),
	rdvState:       prometheus.NewDesc("kadtracker_rendezvous_state", "1 for the rendezvous state (off, starting, searching, resting), 0 for the others.", []string{"state"}, nil),
	rdvPeers:       prometheus.NewDesc("kadtracker_rendezvous_dht_peers", "Peers in the rendezvous DHT's routing table.", nil, nil),
	rdvRounds:      prometheus.NewDesc("kadtracker_rendezvous_rounds_total", "Rendezvous search rounds.", nil, nil),
	rdvFound:       prometheus.NewDesc("kadtracker_rendezvous_peers_found_total", "Providers the rendezvous rounds returned (self and peers already connected included).", nil, nil),
	rdvConnected:   prometheus.NewDesc("kadtracker_rendezvous_peers_connected_total", "Peers found by rendezvous that this node connected.", nil, nil),
	rdvDropped:     prometheus.NewDesc("kadtracker_rendezvous_peers_dropped_total", "Peers found by rendezvous over the per-round caps.", nil, nil),
	rdvLastSuccess: prometheus.NewDesc("kadtracker_rendezvous_last_success_timestamp_seconds", "Unix time of the last rendezvous round that connected a peer; 0 if none has.", nil, nil),
}

// collector turns Source.Counts into metrics at scrape time.
type collector struct{ m *Metrics }

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descs.routing, descs.conns, descs.records, descs.swarms, descs.tracked, descs.trackerSwarms,
		descs.evicted, descs.putsReceived, descs.putsAccepted, descs.putsRejected, descs.gets, descs.rateLimited, descs.refused, descs.announces,
		descs.reachability, descs.dhtMode, descs.publicAddrs, descs.pmEnabled, descs.pmGateway, descs.pmAddrs,
		descs.rdvState, descs.rdvPeers, descs.rdvRounds, descs.rdvFound, descs.rdvConnected, descs.rdvDropped, descs.rdvLastSuccess,
		descs.pubKeys, descs.pubCapacity, descs.pubLapsed} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	k := c.m.src.Counts()
	gauge := func(d *prometheus.Desc, v int) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v))
	}
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge(descs.routing, k.RoutingTableSize)
	gauge(descs.conns, k.Connections)
	gauge(descs.records, k.Store.Records)
	gauge(descs.swarms, k.Store.Keys)
	gauge(descs.tracked, k.Tracked)
	gauge(descs.trackerSwarms, k.TrackerSwarms)
	gauge(descs.pubKeys, k.Publish.Keys)
	gauge(descs.pubCapacity, k.Publish.CapacityKeys)
	counter(descs.pubLapsed, k.Publish.LapsedTotal)
	counter(descs.evicted, k.Store.Evicted)
	counter(descs.putsReceived, k.PutsReceived)
	var rejected int64
	for _, r := range sortedKeys(k.PutsRejected) {
		counter(descs.putsRejected, k.PutsRejected[r], r)
		rejected += k.PutsRejected[r]
	}
	counter(descs.putsAccepted, max(0, k.PutsReceived-rejected))
	counter(descs.gets, k.GetsReceived)
	for _, r := range sortedKeys(k.RateLimited) {
		counter(descs.rateLimited, k.RateLimited[r], r)
	}
	for _, r := range sortedKeys(k.Refused) {
		counter(descs.refused, k.Refused[r], r)
	}
	all := make(map[FrontResult]int64, len(k.Announces))
	for fr, n := range k.Announces {
		all[fr] += n
	}
	c.m.mu.Lock()
	for fr, n := range c.m.announces {
		all[fr] += n
	}
	c.m.mu.Unlock()
	for fr, n := range all {
		counter(descs.announces, n, fr.Front, fr.Result)
	}
	c.collectReachability(ch, k.Reachability)
}

// collectReachability exports r; without a DHT node (no state) there is
// nothing to say.
func (c *collector) collectReachability(ch chan<- prometheus.Metric, r Reachability) {
	if r.State == "" {
		return
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	oneOf := func(d *prometheus.Desc, values []string, v string) {
		for _, s := range values {
			gauge(d, float64(btoi(s == v)), s)
		}
	}
	oneOf(descs.reachability, ReachabilityStates, r.State)
	oneOf(descs.dhtMode, DHTModes, r.DHTMode)
	gauge(descs.publicAddrs, float64(r.PublicAddrs))
	gauge(descs.pmEnabled, float64(btoi(r.PortMapping.Enabled)))
	gauge(descs.pmGateway, float64(btoi(r.PortMapping.Gateway)))
	gauge(descs.pmAddrs, float64(r.PortMapping.Mapped))
	rdv := r.Rendezvous
	oneOf(descs.rdvState, RendezvousStates, rdv.State)
	gauge(descs.rdvPeers, float64(rdv.DHTPeers))
	counter := func(d *prometheus.Desc, v int64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	counter(descs.rdvRounds, rdv.Rounds)
	counter(descs.rdvFound, rdv.Found)
	counter(descs.rdvConnected, rdv.Connected)
	counter(descs.rdvDropped, rdv.Dropped)
	var last float64
	if !rdv.LastSuccess.IsZero() {
		last = float64(rdv.LastSuccess.UnixNano()) / 1e9
	}
	gauge(descs.rdvLastSuccess, last)
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func sortedKeys(m map[string]int64) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
