// Package setup wires a BitTorrent client to kadtracker through the
// client's own remote API: it adds the daemon's tracker URL to every torrent
// the client has and makes torrents added later get it too, and undoes
// exactly what it did from a record of it.
//
// Each client is a backend that lists torrents, adds and removes one
// tracker URL, and reads and writes the client's "default trackers"
// setting; the driver here decides what to change, so --dry-run, the record
// and undo behave the same for every client.
package setup

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// DefaultTracker is the daemon's HTTP tracker URL when it runs with its
// default --tracker-http.
const DefaultTracker = "http://127.0.0.1:6969/announce"

var (
	// ErrNotRunning: nothing answers at the client's API address.
	ErrNotRunning = errors.New("setup: the client is not running (or its remote API is off or elsewhere)")
	// ErrAuth: the client refused the credentials given.
	ErrAuth = errors.New("setup: the client refused the user name or password")
	// ErrNeedPassword: the client wants credentials and none were given.
	ErrNeedPassword = errors.New("setup: the client wants a password")
	// ErrOldVersion: the client's API lacks what setup needs.
	ErrOldVersion = errors.New("setup: the client's version is too old")
	// ErrTooLong: an answer of the client's API exceeded the bound.
	ErrTooLong = errors.New("setup: the client's answer is too long")
	// ErrOtherTracker: an earlier setup of the client added another URL.
	ErrOtherTracker = errors.New("setup: the client is set up with another tracker")
	// ErrNoRecord: undo found nothing that setup added.
	ErrNoRecord = errors.New("setup: no record of a setup for this client")
)

// Clients are the client names Apply and Undo know, in the order help
// shows them.
var Clients = []string{"qbittorrent", "transmission", "aria2", "deluge"}

// Config says which client to wire and how to reach it.
type Config struct {
	Client string // one of Clients
	// Endpoint is the client's remote API URL; empty means the client's
	// default (DefaultEndpoint).
	Endpoint string
	Username string // qBittorrent and Transmission; empty: the client's default
	// Password is aria2's RPC secret, deluge-web's password (empty: its
	// default, "deluge").
	Password string
	Tracker  string // the URL to add
	DryRun   bool   // report what would change, change nothing
	// HTTP is the client for the API calls; nil means one with Timeout.
	HTTP    *http.Client
	Timeout time.Duration // each API call's
}

// DefaultConfig is the config for client with the daemon's default tracker.
func DefaultConfig(client string) Config {
	return Config{Client: client, Tracker: DefaultTracker, Timeout: 15 * time.Second}
}

// DefaultEndpoint is where client's remote API listens by default.
func DefaultEndpoint(client string) string {
	switch client {
	case "qbittorrent":
		return "http://127.0.0.1:8080"
	case "transmission":
		return "http://127.0.0.1:9091/transmission/rpc"
	case "aria2":
		return "http://127.0.0.1:6800/jsonrpc"
	case "deluge":
		return "http://127.0.0.1:8112/json" // deluge-web's
	}
	return ""
}

// Validate reports what is wrong with c.
func (c Config) Validate() error {
	if !slices.Contains(Clients, c.Client) {
		return fmt.Errorf("setup: unknown client %q (want one of %s)", c.Client, strings.Join(Clients, ", "))
	}
	if !strings.HasPrefix(c.Tracker, "http://") && !strings.HasPrefix(c.Tracker, "https://") && !strings.HasPrefix(c.Tracker, "udp://") {
		return fmt.Errorf("setup: tracker URL %q is not http://, https:// or udp://", c.Tracker)
	}
	if strings.ContainsAny(c.Tracker, " \t\r\n,|") {
		// Each client joins tracker lists with one of these.
		return fmt.Errorf("setup: tracker URL %q holds a space, comma, | or line break", c.Tracker)
	}
	if e := c.endpoint(); !strings.HasPrefix(e, "http://") && !strings.HasPrefix(e, "https://") {
		return fmt.Errorf("setup: endpoint %q is not an http:// or https:// URL", e)
	}
	if c.Timeout <= 0 && c.HTTP == nil {
		return errors.New("setup: Timeout must be positive")
	}
	return nil
}

func (c Config) endpoint() string {
	if c.Endpoint != "" {
		return strings.TrimSuffix(c.Endpoint, "/")
	}
	return DefaultEndpoint(c.Client)
}

// Record is what one setup added, so that undo removes exactly that.
type Record struct {
	Client   string `json:"client"`
	Endpoint string `json:"endpoint"`
	Tracker  string `json:"tracker"`
	// Torrents are the IDs (infohash, or aria2's GID) of the torrents the
	// tracker was added to: those that did not have it.
	Torrents []string `json:"torrents,omitempty"`
	// AddedDefault: the tracker was added to the default trackers.
	AddedDefault bool `json:"added_default,omitempty"`
	// EnabledDefault: the default trackers were off and setup turned them on.
	EnabledDefault bool      `json:"enabled_default,omitempty"`
	Updated        time.Time `json:"updated"`
}

// Key names the record of one client at one endpoint.
func (r Record) Key() string { return r.Client + " " + r.Endpoint }

// Result is what Apply or Undo did, or in a dry run would do.
type Result struct {
	Version string   // the client's name and version
	Changes []string // one line per change
	Notes   []string // what the user should know or do by hand
	Record  Record   // after Apply: the record to keep (merged with prev)
}

// torrent is one of the client's torrents.
type torrent struct {
	ID, Name string
	Trackers []string
	// fixed: the client cannot change this torrent's trackers.
	fixed bool
	// private: a private torrent (BEP 27), whose swarm must not be
	// published: setup leaves it alone.
	private bool
	// data the backend needs to change the tracker list.
	data any
}

// defaults is a client's "add these trackers to new torrents" setting.
type defaults struct {
	Supported bool
	Enabled   bool // qBittorrent has a switch; the others are always on
	Trackers  []string
	// data the backend needs to write the setting back.
	data any
}

// backend is one client's remote API.
type backend interface {
	// open checks the client answers, logs in, and returns its version.
	open(ctx context.Context) (string, error)
	torrents(ctx context.Context) ([]torrent, error)
	addTracker(ctx context.Context, t torrent, url string) error
	removeTracker(ctx context.Context, t torrent, url string) error
	defaults(ctx context.Context) (defaults, error)
	setDefaults(ctx context.Context, d defaults) error
	// unsupportedNote says what the user must do when the client has no
	// default trackers.
	unsupportedNote(tracker string) string
	// fixedNote says what the user must do about the torrents whose
	// trackers the client cannot change.
	fixedNote(tracker string, names []string) string
}

// errFixed is what a backend returns for a torrent marked fixed.
var errFixed = errors.New("setup: the client cannot change this torrent's trackers")

func newBackend(c Config) (backend, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: c.Timeout}
	}
	api := &api{http: hc, endpoint: c.endpoint(), limit: maxBody}
	switch c.Client {
	case "qbittorrent":
		return &qbittorrent{api: api, user: c.Username, pass: c.Password}, nil
	case "transmission":
		return &transmission{api: api, user: c.Username, pass: c.Password}, nil
	case "deluge":
		// Users give the web UI's URL as often as its /json.
		if !strings.HasSuffix(api.endpoint, "/json") {
			api.endpoint += "/json"
		}
		return &deluge{api: api, pass: c.Password}, nil
	default:
		return &aria2{api: api, secret: c.Password}, nil
	}
}

// Apply adds c.Tracker to every torrent of the client that lacks it and to
// the client's default trackers. prev is the record of an earlier setup of
// the same client and endpoint, or nil; the result's record adds to it.
func Apply(ctx context.Context, c Config, prev *Record) (Result, error) {
	b, err := newBackend(c)
	if err != nil {
		return Result{}, err
	}
	var res Result
	if res.Version, err = b.open(ctx); err != nil {
		return res, err
	}
	rec := Record{Client: c.Client, Endpoint: c.endpoint(), Tracker: c.Tracker}
	if prev != nil && prev.Tracker != c.Tracker {
		// One record per client: undo the other tracker first, or its
		// record would be lost.
		return res, fmt.Errorf("%w: an earlier setup added %s; undo that first", ErrOtherTracker, prev.Tracker)
	}
	if prev != nil {
		rec = *prev
		rec.Torrents = slices.Clone(prev.Torrents)
	}
	ts, err := b.torrents(ctx)
	if err != nil {
		return res, err
	}
	var fixed, private []string
	for _, t := range ts {
		if slices.Contains(t.Trackers, c.Tracker) {
			continue
		}
		if t.private {
			private = append(private, t.Name+" ("+t.ID+")")
			continue
		}
		if t.fixed {
			fixed = append(fixed, t.Name)
			continue
		}
		res.Changes = append(res.Changes, fmt.Sprintf("add the tracker to torrent %s (%s)", t.Name, t.ID))
		if c.DryRun {
			continue
		}
		if err := b.addTracker(ctx, t, c.Tracker); err != nil {
			return res, fmt.Errorf("torrent %s: %w", t.ID, err)
		}
		if !slices.Contains(rec.Torrents, t.ID) {
			rec.Torrents = append(rec.Torrents, t.ID)
		}
	}
	if len(fixed) > 0 {
		res.Notes = append(res.Notes, b.fixedNote(c.Tracker, fixed))
	}
	if len(private) > 0 {
		res.Notes = append(res.Notes, "private torrents left alone (publishing their swarms in the DHT is what private trackers forbid): "+strings.Join(private, "; "))
	}
	d, err := b.defaults(ctx)
	if err != nil {
		return res, err
	}
	if !d.Supported {
		res.Notes = append(res.Notes, b.unsupportedNote(c.Tracker))
	} else if !slices.Contains(d.Trackers, c.Tracker) || !d.Enabled {
		if !slices.Contains(d.Trackers, c.Tracker) {
			d.Trackers = append(d.Trackers, c.Tracker)
			res.Changes = append(res.Changes, "add the tracker to the trackers new torrents get")
			rec.AddedDefault = true
		}
		if !d.Enabled {
			d.Enabled = true
			res.Changes = append(res.Changes, "turn on adding those trackers to new torrents")
			rec.EnabledDefault = true
		}
		if !c.DryRun {
			if err := b.setDefaults(ctx, d); err != nil {
				return res, err
			}
		}
	}
	rec.Updated = time.Now().UTC()
	res.Record = rec
	if c.Client == "aria2" && !c.DryRun && rec.AddedDefault {
		res.Notes = append(res.Notes, fmt.Sprintf("aria2 forgets this when it restarts: add bt-tracker=%s to its aria2.conf (or --bt-tracker) to keep it", c.Tracker),
			"aria2 gives bt-tracker to private torrents too: add those with --bt-tracker= (empty) or remove the tracker from them")
	}
	return res, nil
}

// Undo removes what rec says setup added: the tracker from the torrents it
// was added to (those still there), and from the default trackers,
// switching those off again if setup switched them on and nothing else is
// left in them.
func Undo(ctx context.Context, c Config, rec Record) (Result, error) {
	c.Tracker = rec.Tracker
	b, err := newBackend(c)
	if err != nil {
		return Result{}, err
	}
	var res Result
	if res.Version, err = b.open(ctx); err != nil {
		return res, err
	}
	ts, err := b.torrents(ctx)
	if err != nil {
		return res, err
	}
	for _, t := range ts {
		if t.fixed || !slices.Contains(rec.Torrents, t.ID) || !slices.Contains(t.Trackers, rec.Tracker) {
			continue
		}
		res.Changes = append(res.Changes, fmt.Sprintf("remove the tracker from torrent %s (%s)", t.Name, t.ID))
		if c.DryRun {
			continue
		}
		if err := b.removeTracker(ctx, t, rec.Tracker); err != nil {
			return res, fmt.Errorf("torrent %s: %w", t.ID, err)
		}
	}
	if rec.AddedDefault || rec.EnabledDefault {
		d, err := b.defaults(ctx)
		if err != nil {
			return res, err
		}
		changed := false
		if rec.AddedDefault && slices.Contains(d.Trackers, rec.Tracker) {
			d.Trackers = slices.DeleteFunc(d.Trackers, func(s string) bool { return s == rec.Tracker })
			res.Changes = append(res.Changes, "remove the tracker from the trackers new torrents get")
			changed = true
		}
		if rec.EnabledDefault && d.Enabled {
			if len(d.Trackers) == 0 {
				d.Enabled = false
				res.Changes = append(res.Changes, "turn off adding trackers to new torrents, as it was")
				changed = true
			} else {
				res.Notes = append(res.Notes, "adding trackers to new torrents stays on: other trackers were added to the list since")
			}
		}
		if changed && !c.DryRun {
			if err := b.setDefaults(ctx, d); err != nil {
				return res, err
			}
		}
	}
	res.Record = rec
	return res, nil
}

// splitList splits a tracker list on sep, dropping empty entries.
func splitList(s, sep string) []string {
	var out []string
	for f := range strings.SplitSeq(s, sep) {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
