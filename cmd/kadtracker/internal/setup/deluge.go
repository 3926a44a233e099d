package setup

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// deluge speaks deluge-web's JSON-RPC (POST /json): auth.login with the
// web password sets a _session_id cookie; the web server relays core.*
// calls to the daemon it is connected to (web.connect, with a host of its
// connection manager).
//
// Deluge has no setting that gives new torrents trackers: setup changes
// the torrents it has and says what the user can do for later ones.
type deluge struct {
	*api
	pass    string
	session *http.Cookie
	id      int
}

// delugeDefaultPassword is deluge-web's password until the user changes
// it; setup tries it when none is given.
const delugeDefaultPassword = "deluge"

// delugeNeeds are the remote methods setup calls (Deluge 1.3 has them).
var delugeNeeds = []string{"core.get_torrents_status", "core.set_torrent_trackers"}

// delugeNotAuthenticated is deluge-web's error code for a call without a
// valid session.
const delugeNotAuthenticated = 1

func (d *deluge) call(ctx context.Context, method string, result any, params ...any) error {
	if params == nil {
		params = []any{}
	}
	d.id++
	body, err := json.Marshal(map[string]any{"method": method, "params": params, "id": d.id})
	if err != nil {
		return err
	}
	req, err := d.request(ctx, http.MethodPost, d.endpoint, "application/json", body)
	if err != nil {
		return err
	}
	if d.session != nil {
		req.AddCookie(d.session)
	}
	code, h, b, err := d.do(req)
	if err != nil {
		return err
	}
	// auth.login's answer carries the session cookie.
	for _, c := range (&http.Response{Header: h}).Cookies() {
		if c.Name == "_session_id" && c.Value != "" {
			d.session = &http.Cookie{Name: c.Name, Value: c.Value}
		}
	}
	if code != http.StatusOK {
		return fmt.Errorf("deluge %s: HTTP %d %s (is %s deluge-web's /json?)", method, code, short(b), d.endpoint)
	}
	var r struct {
		Result json.RawMessage `json:"result"`
		Error  *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return fmt.Errorf("deluge %s: %s: %w", method, short(b), err)
	}
	if r.Error != nil {
		if r.Error.Code == delugeNotAuthenticated {
			return fmt.Errorf("%w: deluge-web: %s", ErrAuth, r.Error.Message)
		}
		return fmt.Errorf("deluge %s: %s", method, r.Error.Message)
	}
	if result == nil {
		return nil
	}
	if err := json.Unmarshal(r.Result, result); err != nil {
		return fmt.Errorf("deluge %s: %w", method, err)
	}
	return nil
}

func (d *deluge) open(ctx context.Context) (string, error) {
	if err := d.login(ctx); err != nil {
		return "", err
	}
	host, err := d.connect(ctx)
	if err != nil {
		return "", err
	}
	var methods []string
	if err := d.call(ctx, "system.listMethods", &methods); err != nil {
		return "", err
	}
	for _, m := range delugeNeeds {
		if !slices.Contains(methods, m) {
			return "", fmt.Errorf("%w: the Deluge daemon at %s has no %s", ErrOldVersion, host, m)
		}
	}
	var version string
	if err := d.call(ctx, "daemon.get_version", &version); err != nil {
		return "", err
	}
	return fmt.Sprintf("Deluge %s (daemon %s, through deluge-web)", version, host), nil
}

// login logs in with the password given, or with deluge-web's default.
func (d *deluge) login(ctx context.Context) error {
	pass := d.pass
	if pass == "" {
		pass = delugeDefaultPassword
	}
	var ok bool
	if err := d.call(ctx, "auth.login", &ok, pass); err != nil {
		return err
	}
	switch {
	case !ok && d.pass == "":
		return fmt.Errorf("%w: deluge-web's password is not the default one", ErrNeedPassword)
	case !ok:
		return fmt.Errorf("%w (deluge-web's password)", ErrAuth)
	case d.session == nil:
		return fmt.Errorf("deluge login: no session cookie in the answer")
	}
	return nil
}

// connect makes sure deluge-web is connected to a daemon: the one it is
// connected to, else the first of its connection manager that is online.
// It stays connected afterwards, as after a login in the web UI.
func (d *deluge) connect(ctx context.Context) (string, error) {
	var connected bool
	if err := d.call(ctx, "web.connected", &connected); err != nil {
		return "", err
	}
	// A host is [id, address, port, user] (web.get_hosts); its status
	// [id, "Online"|"Offline"|"Connected", version].
	var hosts [][]any
	if err := d.call(ctx, "web.get_hosts", &hosts); err != nil {
		return "", err
	}
	var tried []string
	for _, h := range hosts {
		if len(h) < 3 {
			return "", fmt.Errorf("deluge web.get_hosts: a host of %d fields", len(h))
		}
		id, ok := h[0].(string)
		if !ok {
			return "", fmt.Errorf("deluge web.get_hosts: host id %v is no string", h[0])
		}
		addr := fmt.Sprintf("%v:%v", h[1], h[2])
		var st []any
		if err := d.call(ctx, "web.get_host_status", &st, id); err != nil {
			return "", err
		}
		status := ""
		if len(st) >= 2 {
			status, _ = st[1].(string)
		}
		switch {
		case status == "Connected":
			return addr, nil
		case status == "Online" && !connected:
			if err := d.call(ctx, "web.connect", nil, id); err != nil {
				return "", fmt.Errorf("deluge-web cannot connect to the daemon at %s: %w", addr, err)
			}
			if err := d.call(ctx, "web.connected", &connected); err != nil {
				return "", err
			}
			if connected {
				return addr, nil
			}
		}
		tried = append(tried, addr+" "+status)
	}
	if connected {
		// Connected to a daemon its connection manager does not list.
		return "the connected one", nil
	}
	return "", fmt.Errorf("%w: deluge-web answers at %s but no daemon of its connection manager is online (%s): start deluged",
		ErrNotRunning, d.endpoint, strings.Join(tried, ", "))
}

type delugeTracker struct {
	URL  string `json:"url"`
	Tier int    `json:"tier"`
}

func (d *deluge) torrents(ctx context.Context) ([]torrent, error) {
	var st map[string]struct {
		Name     string          `json:"name"`
		Private  bool            `json:"private"`
		Trackers []delugeTracker `json:"trackers"`
	}
	if err := d.call(ctx, "core.get_torrents_status", &st, map[string]any{}, []string{"name", "private", "trackers"}); err != nil {
		return nil, err
	}
	ts := make([]torrent, 0, len(st))
	for id, s := range st {
		t := torrent{ID: id, Name: s.Name, private: s.Private, data: s.Trackers}
		for _, tr := range s.Trackers {
			t.Trackers = append(t.Trackers, tr.URL)
		}
		ts = append(ts, t)
	}
	// Map order is random: keep the output and the record stable.
	slices.SortFunc(ts, func(a, b torrent) int { return strings.Compare(a.ID, b.ID) })
	return ts, nil
}

// addTracker sets the torrent's list with u added as a tier of its own,
// after the others, so the torrent's trackers keep their order.
func (d *deluge) addTracker(ctx context.Context, t torrent, u string) error {
	list := slices.Clone(t.data.([]delugeTracker))
	tier := 0
	for _, tr := range list {
		tier = max(tier, tr.Tier+1)
	}
	return d.call(ctx, "core.set_torrent_trackers", nil, t.ID, append(list, delugeTracker{URL: u, Tier: tier}))
}

func (d *deluge) removeTracker(ctx context.Context, t torrent, u string) error {
	list := slices.DeleteFunc(slices.Clone(t.data.([]delugeTracker)), func(tr delugeTracker) bool { return tr.URL == u })
	if list == nil {
		list = []delugeTracker{} // JSON [], not null
	}
	return d.call(ctx, "core.set_torrent_trackers", nil, t.ID, list)
}

func (d *deluge) defaults(context.Context) (defaults, error) { return defaults{}, nil }

func (d *deluge) setDefaults(context.Context, defaults) error {
	return fmt.Errorf("deluge has no default trackers")
}

func (d *deluge) unsupportedNote(tracker string) string {
	return fmt.Sprintf("Deluge has no default trackers (no setting gives new torrents a tracker): torrents added later do not get %s. "+
		"Run kadtracker setup deluge again after adding torrents, or install a third-party plugin that adds trackers "+
		"to new torrents (DefaultTrackers, github.com/stefantalpalaru/deluge-default-trackers) with %s in its list", tracker, tracker)
}

func (d *deluge) fixedNote(string, []string) string { return "" }
