package setup

import (
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// fakeDelugeWeb answers deluge-web's JSON-RPC at /json from a table of
// method results, after a login with password; it counts the calls and
// keeps each method's last params.
type fakeDelugeWeb struct {
	URL      string
	password string
	mu       sync.Mutex
	results  map[string]string
	calls    map[string]int
	params   map[string][]any
}

func newFakeDelugeWeb(t *testing.T, password string, results map[string]string) *fakeDelugeWeb {
	f := &fakeDelugeWeb{password: password, results: results, calls: map[string]int{}, params: map[string][]any{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	f.URL = srv.URL
	return f
}

func (f *fakeDelugeWeb) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/json" {
		http.NotFound(w, r)
		return
	}
	var req struct {
		Method string
		Params []any
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[req.Method]++
	f.params[req.Method] = req.Params
	if req.Method == "auth.login" {
		ok := len(req.Params) == 1 && req.Params[0] == f.password
		if ok {
			http.SetCookie(w, &http.Cookie{Name: "_session_id", Value: "s1", Path: "/json"})
		}
		json.NewEncoder(w).Encode(map[string]any{"result": ok, "error": nil, "id": 1})
		return
	}
	if c, err := r.Cookie("_session_id"); err != nil || c.Value != "s1" {
		w.Write([]byte(`{"result": null, "error": {"message": "Not authenticated", "code": 1}, "id": 1}`))
		return
	}
	res, ok := f.results[req.Method]
	if !ok {
		w.Write([]byte(`{"result": null, "error": {"message": "Unknown method", "code": 2}, "id": 1}`))
		return
	}
	w.Write([]byte(`{"result": ` + res + `, "error": null, "id": 1}`))
}

func (f *fakeDelugeWeb) set(method, result string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.results[method] = result
}

func (f *fakeDelugeWeb) called(method string) (int, []any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[method], f.params[method]
}

func delugeConfig(url, password string) Config {
	c := DefaultConfig("deluge")
	c.Endpoint, c.Password = url, password // the web UI's URL: /json is added
	return c
}

// TestDelugeLogin: no password tries deluge-web's default; a refused
// default is ErrNeedPassword, a refused password ErrAuth.
func TestDelugeLogin(t *testing.T) {
	results := map[string]string{
		"web.connected": "true", "web.get_hosts": "[]", "daemon.get_version": `"2.0.3"`,
		"system.listMethods":       `["core.get_torrents_status", "core.set_torrent_trackers"]`,
		"core.get_torrents_status": "{}",
	}
	dflt := newFakeDelugeWeb(t, "deluge", results)
	if _, err := Apply(t.Context(), delugeConfig(dflt.URL, ""), nil); err != nil {
		t.Errorf("default password: %v", err)
	}
	other := newFakeDelugeWeb(t, "s3cret", maps.Clone(results))
	if _, err := Apply(t.Context(), delugeConfig(other.URL, ""), nil); !errors.Is(err, ErrNeedPassword) {
		t.Errorf("no password, not the default: %v, want ErrNeedPassword", err)
	}
	if _, err := Apply(t.Context(), delugeConfig(other.URL, "wrong"), nil); !errors.Is(err, ErrAuth) {
		t.Errorf("wrong password: %v, want ErrAuth", err)
	}
	if _, err := Apply(t.Context(), delugeConfig(other.URL, "s3cret"), nil); err != nil {
		t.Errorf("right password: %v", err)
	}
}

// TestDelugeConnect: deluge-web not connected connects to the first
// online host; with none online setup says to start deluged; a daemon
// without the methods setup needs is ErrOldVersion; malformed host lists
// are errors, not panics.
func TestDelugeConnect(t *testing.T) {
	base := func() map[string]string {
		return map[string]string{
			"web.connected": "false", "daemon.get_version": `"2.0.3"`,
			"web.get_hosts":            `[["a", "127.0.0.1", 58846, "localclient"], ["b", "127.0.0.1", 58847, "localclient"]]`,
			"system.listMethods":       `["core.get_torrents_status", "core.set_torrent_trackers"]`,
			"core.get_torrents_status": "{}",
		}
	}
	t.Run("offline", func(t *testing.T) {
		r := base()
		r["web.get_host_status"] = `["a", "Offline", ""]`
		srv := newFakeDelugeWeb(t, "deluge", r)
		_, err := Apply(t.Context(), delugeConfig(srv.URL+"/json", ""), nil)
		if !errors.Is(err, ErrNotRunning) || !strings.Contains(err.Error(), "start deluged") {
			t.Errorf("no daemon online: %v, want ErrNotRunning saying to start deluged", err)
		}
		if n, _ := srv.called("web.connect"); n != 0 {
			t.Errorf("connected to an offline daemon")
		}
	})
	t.Run("online", func(t *testing.T) {
		r := base()
		r["web.get_host_status"] = `["a", "Online", "2.0.3"]`
		r["web.connect"] = "[]"
		srv := newFakeDelugeWeb(t, "deluge", r)
		// The fake stays "not connected" after web.connect: setup must
		// check rather than trust web.connect's answer, and try the next.
		_, err := Apply(t.Context(), delugeConfig(srv.URL, ""), nil)
		if n, _ := srv.called("web.connect"); !errors.Is(err, ErrNotRunning) || n != 2 {
			t.Errorf("web.connect without effect: %v after %d connects, want ErrNotRunning after 2", err, n)
		}
	})
	t.Run("old", func(t *testing.T) {
		r := base()
		r["web.connected"] = "true"
		r["web.get_host_status"] = `["a", "Connected", "1.2"]`
		r["system.listMethods"] = `["core.get_torrents_status"]`
		srv := newFakeDelugeWeb(t, "deluge", r)
		if _, err := Apply(t.Context(), delugeConfig(srv.URL, ""), nil); !errors.Is(err, ErrOldVersion) {
			t.Errorf("no set_torrent_trackers: %v, want ErrOldVersion", err)
		}
	})
	for name, hosts := range map[string]string{"short": `[["a"]]`, "id": `[[1, "h", 2]]`, "type": `{"a": 1}`} {
		t.Run(name, func(t *testing.T) {
			r := base()
			r["web.get_hosts"] = hosts
			srv := newFakeDelugeWeb(t, "deluge", r)
			if _, err := Apply(t.Context(), delugeConfig(srv.URL, ""), nil); err == nil {
				t.Errorf("hosts %s: no error", hosts)
			}
		})
	}
}

// TestDelugeTrackers: the tracker goes in a tier after the torrent's
// others, which keep theirs; undo removes it alone.
func TestDelugeTrackers(t *testing.T) {
	r := map[string]string{
		"web.connected": "true", "web.get_hosts": "[]", "daemon.get_version": `"2.0.3"`,
		"system.listMethods":       `["core.get_torrents_status", "core.set_torrent_trackers"]`,
		"core.get_torrents_status": `{"aa": {"name": "x", "private": false, "trackers": [{"url": "http://t1/announce", "tier": 0}, {"url": "http://t2/announce", "tier": 3}]}}`,
	}
	srv := newFakeDelugeWeb(t, "deluge", r)
	r["core.set_torrent_trackers"] = "null"
	res, err := Apply(t.Context(), delugeConfig(srv.URL, ""), nil)
	if err != nil {
		t.Fatal(err)
	}
	// The fake decodes into maps: keys come back sorted.
	want := `["aa",[{"tier":0,"url":"http://t1/announce"},{"tier":3,"url":"http://t2/announce"},{"tier":4,"url":"http://127.0.0.1:6969/announce"}]]`
	if _, set := srv.called("core.set_torrent_trackers"); string(must(json.Marshal(set))) != want {
		t.Errorf("set_torrent_trackers %s, want %s", must(json.Marshal(set)), want)
	}
	if len(res.Record.Torrents) != 1 || res.Record.AddedDefault {
		t.Errorf("record %+v", res.Record)
	}
	srv.set("core.get_torrents_status", `{"aa": {"name": "x", "trackers": [{"url": "http://t1/announce", "tier": 0}, {"url": "http://127.0.0.1:6969/announce", "tier": 4}]}}`)
	if _, err := Undo(t.Context(), delugeConfig(srv.URL, ""), res.Record); err != nil {
		t.Fatal(err)
	}
	want = `["aa",[{"tier":0,"url":"http://t1/announce"}]]`
	if _, set := srv.called("core.set_torrent_trackers"); string(must(json.Marshal(set))) != want {
		t.Errorf("undo: set_torrent_trackers %s, want %s", must(json.Marshal(set)), want)
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}
