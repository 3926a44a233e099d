package setup

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// fakeTransmission4 answers the RPC the way Transmission 4 (RPC 17) does
// for what setup uses: the session-id handshake, session-get/-set with
// default-trackers, torrent-get with trackerList, torrent-set trackerList.
// Debian 12 ships Transmission 3.00, so this is how the RPC 17 path is
// tested here.
type fakeTransmission4 struct {
	mu              sync.Mutex
	defaultTrackers string
	trackerList     string // of the one torrent
	calls           []string
}

func (f *fakeTransmission4) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("X-Transmission-Session-Id") != "sid" {
		w.Header().Set("X-Transmission-Session-Id", "sid")
		w.WriteHeader(http.StatusConflict)
		return
	}
	var req struct {
		Method    string
		Arguments map[string]any
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, req.Method)
	args := map[string]any{}
	switch req.Method {
	case "session-get":
		args = map[string]any{"rpc-version": 17, "version": "4.0.5", "default-trackers": f.defaultTrackers}
	case "session-set":
		f.defaultTrackers = req.Arguments["default-trackers"].(string)
	case "torrent-get":
		var trackers []map[string]any
		for i, l := range splitList(f.trackerList, "\n") {
			trackers = append(trackers, map[string]any{"announce": l, "id": i})
		}
		args = map[string]any{"torrents": []map[string]any{{"hashString": "aa", "name": "t", "trackerList": f.trackerList, "trackers": trackers}}}
	case "torrent-set":
		if _, ok := req.Arguments["trackerAdd"]; ok {
			http.Error(w, "trackerAdd is deprecated in RPC 17", http.StatusBadRequest)
			return
		}
		f.trackerList = req.Arguments["trackerList"].(string)
	}
	json.NewEncoder(w).Encode(map[string]any{"result": "success", "arguments": args})
}

// TestTransmission4: on RPC 17 setup writes trackerList and default-trackers,
// keeping the user's tiers, and undo gives back the same strings.
func TestTransmission4(t *testing.T) {
	const user = "udp://a.example/announce\n\nhttp://b.example/announce"
	f := &fakeTransmission4{defaultTrackers: user, trackerList: user}
	srv := httptest.NewServer(f)
	defer srv.Close()
	c := DefaultConfig("transmission")
	c.Endpoint = srv.URL
	res, err := Apply(t.Context(), c, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := user + "\n\n" + DefaultTracker
	if f.trackerList != want || f.defaultTrackers != want {
		t.Errorf("after setup: trackerList %q, default-trackers %q; want both %q", f.trackerList, f.defaultTrackers, want)
	}
	if !res.Record.AddedDefault || len(res.Record.Torrents) != 1 || len(res.Notes) != 0 {
		t.Errorf("record %+v, notes %q", res.Record, res.Notes)
	}
	if _, err := Undo(t.Context(), c, res.Record); err != nil {
		t.Fatal(err)
	}
	if f.trackerList != user || f.defaultTrackers != user {
		t.Errorf("after undo: trackerList %q, default-trackers %q; want both %q", f.trackerList, f.defaultTrackers, user)
	}
	if got := strings.Join(f.calls, " "); !strings.Contains(got, "session-set") {
		t.Errorf("calls %s", got)
	}
}

// TestOtherTracker: a second setup with another tracker is refused, so the
// first one's record is not lost.
func TestOtherTracker(t *testing.T) {
	f := &fakeTransmission4{}
	srv := httptest.NewServer(f)
	defer srv.Close()
	c := DefaultConfig("transmission")
	c.Endpoint = srv.URL
	res, err := Apply(t.Context(), c, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Tracker = "http://127.0.0.1:7000/announce"
	if _, err := Apply(t.Context(), c, &res.Record); err == nil || !strings.Contains(err.Error(), DefaultTracker) {
		t.Errorf("setup with another tracker: %v, want a refusal naming %s", err, DefaultTracker)
	}
}
