package metrics

import (
	"bytes"
	"context"
	"fmt"
	"html/template"
	"net/http"
	"slices"
	"time"
)

// statusTimeout bounds gathering the page's data.
const statusTimeout = 10 * time.Second

// page is what the template renders.
type page struct {
	Status
	Counts
	Now      time.Time
	Uptime   time.Duration
	Recent   []Lookup
	Rejected int64
	Limited  int64
	Err      string
}

func (m *Metrics) serveStatus(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), statusTimeout)
	defer cancel()
	p := page{Counts: m.src.Counts(), Now: m.now(), Recent: m.Recent()}
	st, err := m.src.Status(ctx)
	if err != nil {
		p.Err = err.Error()
	}
	p.Status = st
	if !st.Started.IsZero() {
		p.Uptime = p.Now.Sub(st.Started).Truncate(time.Second)
	}
	slices.SortStableFunc(p.Routing, func(a, b RoutingPeer) int { return b.CPL - a.CPL })
	slices.SortFunc(p.Status.Tracked, func(a, b TrackedSwarm) int { return bytes.Compare(a.Infohash.Infohash(), b.Infohash.Infohash()) })
	for _, n := range p.PutsRejected {
		p.Rejected += n
	}
	for _, n := range p.RateLimited {
		p.Limited += n
	}
	var buf bytes.Buffer
	if err := statusPage.Execute(&buf, &p); err != nil {
		http.Error(w, "status page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	// Nothing on the page comes from elsewhere, and nothing may.
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	_, _ = w.Write(buf.Bytes())
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

var statusPage = template.Must(template.New("status").Funcs(template.FuncMap{
	"ms":    ms,
	"clock": func(t time.Time) string { return t.UTC().Format("15:04:05") },
	"utc":   func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
}).Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>kadtracker {{.PeerID}}</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.3em; margin: 0 0 .2em; }
h2 { font-size: 1.1em; margin: 1.5em 0 .4em; }
code, td.mono { font-family: ui-monospace, monospace; font-size: 12px; }
table { border-collapse: collapse; }
th, td { text-align: left; padding: 2px 10px 2px 0; vertical-align: top; }
th { border-bottom: 1px solid #999; }
dl { display: grid; grid-template-columns: max-content auto; gap: 2px 16px; }
dt { color: #555; } dd { margin: 0; }
.err { color: #a00; }
.empty { color: #777; font-style: italic; }
</style>
</head>
<body>
<h1>kadtracker</h1>
<div id="peer-id"><code>{{.PeerID}}</code></div>
{{if .Err}}<p class="err" id="error">{{.Err}}</p>{{end}}

<h2>Node</h2>
<dl id="summary">
<dt>DHT mode</dt><dd id="dht-mode">{{.DHTMode}}</dd>
<dt>Uptime</dt><dd>{{.Uptime}}</dd>
<dt>Replication (m)</dt><dd>{{.Replication}}</dd>
<dt>Routing table</dt><dd id="routing-size">{{.RoutingTableSize}}</dd>
<dt>Connections</dt><dd id="connections">{{.Connections}}</dd>
<dt>Records stored</dt><dd id="records-stored">{{.Store.Records}}</dd>
<dt>Swarms stored</dt><dd id="swarms-stored">{{.Store.Keys}}</dd>
<dt>Records evicted</dt><dd>{{.Store.Evicted}}</dd>
<dt>Swarms tracked</dt><dd id="swarms-tracked">{{.Counts.Tracked}}</dd>
{{with .Counts.Publish}}<dt>Keys published</dt><dd id="publish-keys">{{.Keys}} of about {{if .CapacityKeys}}{{.CapacityKeys}}{{else}}(not measured yet){{end}} the scheduler keeps alive{{if .LapsedTotal}}; <strong>{{.LapsedTotal}} records lapsed</strong>{{end}}</dd>{{end}}
<dt>PUTs received / rejected</dt><dd>{{.PutsReceived}} / {{.Rejected}}</dd>
<dt>GETs received</dt><dd>{{.GetsReceived}}</dd>
<dt>Requests rate limited</dt><dd>{{.Limited}}</dd>
</dl>
{{with .Addrs}}<details><summary>Listen addresses</summary><ul>{{range .}}<li><code>{{.}}</code></li>{{end}}</ul></details>{{end}}

{{with .Reachability}}{{if .State}}
<h2>Reachability</h2>
<dl id="reachability">
{{with $.Network}}<dt>Network</dt><dd id="network">{{.}}</dd>{{end}}
<dt>Reachability</dt><dd id="reachability-state">{{.State}}</dd>
<dt>DHT mode</dt><dd>{{.DHTMode}}{{if eq .DHTMode "client"}} (lookups and announces work; others cannot dial this node){{end}}</dd>
<dt>Public addresses</dt><dd id="public-addrs">{{range $.PublicAddrs}}<code>{{.}}</code><br>{{else}}<span class="empty">none known</span>{{end}}</dd>
<dt>Port mapping</dt><dd id="port-mapping">{{if not .PortMapping.Enabled}}off{{else if not .PortMapping.Gateway}}on, no gateway found{{else if not .PortMapping.Mapped}}on, gateway found, nothing mapped{{else}}on, {{.PortMapping.Mapped}} mapped{{end}}</dd>
{{with $.MappedAddrs}}<dt>Mapped addresses</dt><dd id="mapped-addrs">{{range .}}<code>{{.}}</code><br>{{end}}</dd>{{end}}
<dt>Rendezvous</dt><dd id="rendezvous-state">{{.Rendezvous.State}}{{if .Rendezvous.Serving}}, serving{{end}}</dd>
{{if ne .Rendezvous.State "off"}}<dt>Rendezvous DHT peers</dt><dd>{{.Rendezvous.DHTPeers}}</dd>
<dt>Rendezvous rounds</dt><dd>{{.Rendezvous.Rounds}}</dd>
<dt>Peers found / connected</dt><dd id="rendezvous-peers">{{.Rendezvous.Found}} / {{.Rendezvous.Connected}}</dd>
<dt>Last success</dt><dd id="rendezvous-last">{{if .Rendezvous.LastSuccess.IsZero}}never{{else}}{{utc .Rendezvous.LastSuccess}}{{end}}</dd>{{end}}
</dl>
{{end}}{{end}}

<h2>Recent lookups</h2>
{{if .Recent}}
<table id="lookups">
<tr><th>time</th><th>front</th><th>infohash</th><th>result</th><th>peers</th><th>hops</th><th>queried</th><th>latency</th></tr>
{{range .Recent}}<tr class="lookup"><td>{{clock .At}}</td><td>{{.Front}}</td><td class="mono infohash">{{.Infohash}}</td><td class="result">{{.Result}}{{with .Err}} <span class="err">{{.}}</span>{{end}}</td><td class="peers">{{.Peers}}</td><td class="hops">{{.Hops}}</td><td>{{.Queried}}</td><td class="latency">{{ms .Duration}}</td></tr>
{{end}}</table>
{{else}}<p class="empty" id="lookups">no lookups yet</p>{{end}}

<h2>Swarms tracked</h2>
{{if .Status.Tracked}}
<table id="tracked">
<tr><th>infohash</th><th>port</th><th>seed</th></tr>
{{range .Status.Tracked}}<tr><td class="mono infohash">{{.Infohash}}</td><td>{{.Port}}</td><td>{{if .Seed}}seed{{else}}leecher{{end}}</td></tr>
{{end}}</table>
{{else}}<p class="empty" id="tracked">this node announces no swarm</p>{{end}}

<h2>Swarms stored</h2>
{{if .Stored}}
<table id="stored">
<tr><th>infohash</th><th>records</th><th>seeds</th><th>leechers</th></tr>
{{range .Stored}}<tr><td class="mono infohash">{{.Key}}</td><td class="records">{{.Records}}</td><td>{{.Seeds}}</td><td>{{.Leechers}}</td></tr>
{{end}}</table>
{{else}}<p class="empty" id="stored">no records stored</p>{{end}}

<h2>Routing table</h2>
{{if .Routing}}
<table id="routing">
<tr><th>peer</th><th>bucket (CPL)</th><th>connected</th><th>addresses</th></tr>
{{range .Routing}}<tr class="peer"><td class="mono">{{.ID}}</td><td>{{.CPL}}</td><td>{{if .Connected}}yes{{else}}no{{end}}</td><td class="mono">{{range $i, $a := .Addrs}}{{if $i}}<br>{{end}}{{$a}}{{end}}</td></tr>
{{end}}</table>
{{else}}<p class="empty" id="routing">the routing table is empty</p>{{end}}

<p class="empty">{{.Now.UTC.Format "2006-01-02 15:04:05 UTC"}} · <a href="/metrics">metrics</a></p>
</body>
</html>
`))
