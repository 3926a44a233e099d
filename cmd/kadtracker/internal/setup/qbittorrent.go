package setup

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// qbittorrent speaks qBittorrent's WebUI API (v2). A default profile
// answers 403 to every call until one logs in; with "bypass
// authentication for clients on localhost" it answers at once.
type qbittorrent struct {
	*api
	user, pass string
	sid        *http.Cookie
}

// qbMinAPI is the first WebUI API version with removeTrackers (2.2.0,
// qBittorrent 4.2).
var qbMinAPI = [2]int{2, 2}

func (q *qbittorrent) call(ctx context.Context, method, path string, form url.Values) (int, []byte, error) {
	var body []byte
	ct := ""
	if form != nil {
		body, ct = []byte(form.Encode()), "application/x-www-form-urlencoded"
	}
	req, err := q.request(ctx, method, q.endpoint+path, ct, body)
	if err != nil {
		return 0, nil, err
	}
	if q.sid != nil {
		req.AddCookie(q.sid)
	}
	code, _, b, err := q.do(req)
	return code, b, err
}

// get calls path and decodes its JSON answer into v.
func (q *qbittorrent) get(ctx context.Context, path string, v any) error {
	code, b, err := q.call(ctx, http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	if code != http.StatusOK {
		return fmt.Errorf("qBittorrent %s: HTTP %d %s", path, code, short(b))
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("qBittorrent %s: %w", path, err)
	}
	return nil
}

func (q *qbittorrent) post(ctx context.Context, path string, form url.Values) error {
	code, b, err := q.call(ctx, http.MethodPost, path, form)
	if err != nil {
		return err
	}
	if code != http.StatusOK {
		return fmt.Errorf("qBittorrent %s: HTTP %d %s", path, code, short(b))
	}
	return nil
}

func (q *qbittorrent) open(ctx context.Context) (string, error) {
	code, b, err := q.call(ctx, http.MethodGet, "/api/v2/app/webapiVersion", nil)
	if err != nil {
		return "", err
	}
	if code == http.StatusForbidden {
		if err := q.login(ctx); err != nil {
			return "", err
		}
		code, b, err = q.call(ctx, http.MethodGet, "/api/v2/app/webapiVersion", nil)
		if err != nil {
			return "", err
		}
	}
	if code == http.StatusNotFound {
		return "", fmt.Errorf("%w: %s has no WebUI API v2 (qBittorrent 4.1 or later)", ErrOldVersion, q.endpoint)
	}
	if code != http.StatusOK {
		return "", fmt.Errorf("qBittorrent WebUI API version: HTTP %d %s", code, short(b))
	}
	apiVersion := strings.TrimSpace(string(b))
	if !versionAtLeast(apiVersion, qbMinAPI) {
		return "", fmt.Errorf("%w: qBittorrent WebUI API %s, want %d.%d or later (qBittorrent 4.2)", ErrOldVersion, apiVersion, qbMinAPI[0], qbMinAPI[1])
	}
	_, v, err := q.call(ctx, http.MethodGet, "/api/v2/app/version", nil)
	if err != nil {
		return "", err
	}
	return "qBittorrent " + strings.TrimSpace(string(v)) + " (WebUI API " + apiVersion + ")", nil
}

func (q *qbittorrent) login(ctx context.Context) error {
	if q.pass == "" {
		return fmt.Errorf("%w: qBittorrent's WebUI asks to log in", ErrNeedPassword)
	}
	user := q.user
	if user == "" {
		user = "admin"
	}
	req, err := q.request(ctx, http.MethodPost, q.endpoint+"/api/v2/auth/login", "application/x-www-form-urlencoded",
		[]byte(url.Values{"username": {user}, "password": {q.pass}}.Encode()))
	if err != nil {
		return err
	}
	resp, err := q.http.Do(req)
	if err != nil {
		if isDown(err) {
			return fmt.Errorf("%w: %s", ErrNotRunning, q.endpoint)
		}
		return err
	}
	defer resp.Body.Close()
	var buf [256]byte
	n, _ := resp.Body.Read(buf[:])
	answer := strings.TrimSpace(string(buf[:n]))
	switch {
	case resp.StatusCode == http.StatusForbidden:
		return fmt.Errorf("%w: qBittorrent has banned this address after too many failed logins (%s); wait or restart it", ErrAuth, answer)
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("qBittorrent login: HTTP %d %q", resp.StatusCode, answer)
	case answer != "Ok.":
		return fmt.Errorf("%w (qBittorrent says %q; it bans an address after a few failures)", ErrAuth, answer)
	}
	for _, c := range resp.Cookies() {
		if c.Name == "SID" {
			q.sid = &http.Cookie{Name: "SID", Value: c.Value}
		}
	}
	if q.sid == nil {
		return fmt.Errorf("qBittorrent login: no session cookie in the answer")
	}
	return nil
}

func (q *qbittorrent) torrents(ctx context.Context) ([]torrent, error) {
	var list []struct{ Hash, Name string }
	if err := q.get(ctx, "/api/v2/torrents/info", &list); err != nil {
		return nil, err
	}
	ts := make([]torrent, 0, len(list))
	for _, l := range list {
		var trackers []struct{ URL string }
		if err := q.get(ctx, "/api/v2/torrents/trackers?hash="+url.QueryEscape(l.Hash), &trackers); err != nil {
			return nil, err
		}
		// is_private (WebUI API 2.8.x on): a private torrent is left alone.
		var props map[string]json.RawMessage
		if err := q.get(ctx, "/api/v2/torrents/properties?hash="+url.QueryEscape(l.Hash), &props); err != nil {
			return nil, err
		}
		t := torrent{ID: l.Hash, Name: l.Name}
		if raw, ok := props["is_private"]; ok {
			if err := json.Unmarshal(raw, &t.private); err != nil {
				return nil, fmt.Errorf("qBittorrent is_private: %w", err)
			}
		}
		for _, tr := range trackers {
			if !strings.HasPrefix(tr.URL, "** [") { // ** [DHT] **, ** [PeX] **, ** [LSD] **
				t.Trackers = append(t.Trackers, tr.URL)
			}
		}
		ts = append(ts, t)
	}
	return ts, nil
}

func (q *qbittorrent) addTracker(ctx context.Context, t torrent, u string) error {
	return q.post(ctx, "/api/v2/torrents/addTrackers", url.Values{"hash": {t.ID}, "urls": {u}})
}

func (q *qbittorrent) removeTracker(ctx context.Context, t torrent, u string) error {
	return q.post(ctx, "/api/v2/torrents/removeTrackers", url.Values{"hash": {t.ID}, "urls": {u}})
}

func (q *qbittorrent) defaults(ctx context.Context) (defaults, error) {
	var p map[string]json.RawMessage
	if err := q.get(ctx, "/api/v2/app/preferences", &p); err != nil {
		return defaults{}, err
	}
	rawOn, ok1 := p["add_trackers_enabled"]
	rawList, ok2 := p["add_trackers"]
	if !ok1 || !ok2 {
		return defaults{}, nil
	}
	var d defaults
	var list string
	if err := json.Unmarshal(rawOn, &d.Enabled); err != nil {
		return d, fmt.Errorf("qBittorrent add_trackers_enabled: %w", err)
	}
	if err := json.Unmarshal(rawList, &list); err != nil {
		return d, fmt.Errorf("qBittorrent add_trackers: %w", err)
	}
	d.Supported, d.Trackers = true, splitList(list, "\n")
	return d, nil
}

func (q *qbittorrent) setDefaults(ctx context.Context, d defaults) error {
	b, err := json.Marshal(map[string]any{"add_trackers_enabled": d.Enabled, "add_trackers": strings.Join(d.Trackers, "\n")})
	if err != nil {
		return err
	}
	return q.post(ctx, "/api/v2/app/setPreferences", url.Values{"json": {string(b)}})
}

func (q *qbittorrent) unsupportedNote(tracker string) string {
	return "this qBittorrent has no \"automatically add these trackers to new downloads\": add " + tracker + " to each new torrent, or run kadtracker setup again"
}

// versionAtLeast reports whether the dotted version v is min or later.
func versionAtLeast(v string, min [2]int) bool {
	parts := strings.Split(strings.TrimPrefix(v, "v"), ".")
	if len(parts) < 2 {
		return false
	}
	major, err1 := strconv.Atoi(parts[0])
	minor, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil {
		return false
	}
	return major > min[0] || major == min[0] && minor >= min[1]
}

func (q *qbittorrent) fixedNote(string, []string) string { return "" }
