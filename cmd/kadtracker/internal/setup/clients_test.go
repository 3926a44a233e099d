package setup

// Tests against the real clients, each run headless on loopback by package
// realclients with its remote API behind a password, as a user's would be.

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kadtracker/kadtracker/cmd/kadtracker/internal/realclients"
)

const (
	testUser = "kt"
	testPass = "correct horse"
	// announceTimeout bounds the wait for a client's first announce.
	announceTimeout = 60 * time.Second
)

// trackerRecorder is an HTTP tracker on loopback that records the
// infohashes announced to it and returns no peers.
type trackerRecorder struct {
	URL  string
	mu   sync.Mutex
	seen map[string]bool
}

func newTrackerRecorder(t *testing.T) *trackerRecorder {
	r := &trackerRecorder{seen: map[string]bool{}}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// libtorrent refuses a loopback tracker whose path does not end in
	// /announce.
	r.URL = "http://" + l.Addr().String() + "/announce"
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		// The raw query: info_hash is binary, percent-escaped.
		for kv := range strings.SplitSeq(req.URL.RawQuery, "&") {
			if v, ok := strings.CutPrefix(kv, "info_hash="); ok {
				if b, err := url.QueryUnescape(v); err == nil {
					r.mu.Lock()
					r.seen[hex.EncodeToString([]byte(b))] = true
					r.mu.Unlock()
				}
			}
		}
		w.Write([]byte("d8:intervali60e5:peers0:e"))
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return r
}

func (r *trackerRecorder) waitFor(t *testing.T, infohash string) {
	t.Helper()
	deadline := time.Now().Add(announceTimeout)
	for {
		r.mu.Lock()
		ok := r.seen[infohash]
		r.mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no announce of %s at %s within %v", infohash, r.URL, announceTimeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func settings(t *testing.T, c *realclients.Client) string {
	t.Helper()
	s, err := c.Settings(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.MarshalIndent(s, "", " ")
	return string(b)
}

func trackers(t *testing.T, c *realclients.Client, infohash string) []string {
	t.Helper()
	urls, ok := c.Trackers(t, infohash)
	if !ok {
		t.Fatalf("%s has no torrent %s", c.Kind, infohash)
	}
	return urls
}

// TestRealClients runs setup against each real client: wrong and missing
// credentials fail clearly; a dry run changes nothing; setup adds the
// tracker to a torrent that had none, which then announces to it (aria2
// cannot: setup must say so), and to the defaults, so that a torrent added
// afterwards announces to it too; setup again changes nothing; undo
// leaves the settings exactly as they were.
//
// transmission4 is Transmission 4 (Debian 13's, in a root file system of
// its own: realclients.Transmission4Root), whose default-trackers and
// trackerList the Debian 12 Transmission 3.00 lacks.
func TestRealClients(t *testing.T) {
	for _, test := range append(slices.Clone(Clients), "transmission4") {
		t.Run(test, func(t *testing.T) {
			t.Parallel()
			name := test
			opts := realclients.Options{Username: testUser, Password: testPass}
			if test == "transmission4" {
				name, opts.Root = "transmission", realclients.Transmission4Root(t)
			}
			rc := realclients.Start(t, name, opts)
			tracker := newTrackerRecorder(t)
			cfg := DefaultConfig(name)
			cfg.Endpoint, cfg.Username, cfg.Password, cfg.Tracker = rc.Endpoint, testUser, testPass, tracker.URL
			ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
			defer cancel()

			dir := t.TempDir()
			first := realclients.MakeTorrent(t, dir, 64<<10)
			rc.Add(t, first, dir)
			if got := trackers(t, rc, first.Infohash); len(got) != 0 {
				t.Fatalf("the test torrent has trackers %v before setup", got)
			}
			// A private torrent must keep its trackers as they are.
			privDir := t.TempDir()
			priv := realclients.MakePrivateTorrent(t, privDir, 64<<10)
			rc.Add(t, priv, privDir)
			before := settings(t, rc)

			wrong := cfg
			wrong.Password = "wrong"
			if _, err := Apply(ctx, wrong, nil); !errors.Is(err, ErrAuth) {
				t.Errorf("wrong password: %v, want ErrAuth", err)
			}
			none := cfg
			none.Password = ""
			if _, err := Apply(ctx, none, nil); !errors.Is(err, ErrNeedPassword) {
				t.Errorf("no password: %v, want ErrNeedPassword", err)
			}

			dry := cfg
			dry.DryRun = true
			res, err := Apply(ctx, dry, nil)
			if err != nil {
				t.Fatalf("dry run: %v", err)
			}
			// aria2 cannot change an existing download's trackers (see
			// aria2.go): setup must say so rather than pretend.
			where, what := res.Changes, "changes"
			if name == "aria2" {
				where, what = res.Notes, "notes"
			}
			if !strings.Contains(strings.Join(where, "\n"), first.Infohash) {
				t.Errorf("dry run reports changes %q, notes %q; want the torrent %s among the %s", res.Changes, res.Notes, first.Infohash, what)
			}
			if after := settings(t, rc); after != before {
				t.Errorf("the dry run changed the settings:\n%s\nwant\n%s", after, before)
			}
			if got := trackers(t, rc, first.Infohash); len(got) != 0 {
				t.Errorf("the dry run added trackers %v", got)
			}

			if name == "deluge" {
				// As after deluge-web starts: setup connects it to the
				// daemon.
				rc.DelugeDisconnect(t)
			}
			res, err = Apply(ctx, cfg, nil)
			if err != nil {
				t.Fatalf("setup: %v", err)
			}
			t.Logf("%s: changes %q, notes %q", res.Version, res.Changes, res.Notes)
			if name != "aria2" {
				if got := trackers(t, rc, first.Infohash); !slices.Equal(got, []string{tracker.URL}) {
					t.Errorf("after setup the torrent has trackers %v, want [%s]", got, tracker.URL)
				}
				tracker.waitFor(t, first.Infohash)
			} else if len(res.Record.Torrents) != 0 || !strings.Contains(strings.Join(res.Notes, "\n"), first.Infohash) {
				t.Errorf("aria2: setup recorded torrents %v and notes %q; want none and a note naming %s", res.Record.Torrents, res.Notes, first.Infohash)
			}

			if got := trackers(t, rc, priv.Infohash); len(got) != 0 {
				t.Errorf("setup gave the private torrent trackers %v", got)
			}
			if name != "aria2" && !strings.Contains(strings.Join(res.Notes, "\n"), priv.Infohash) {
				t.Errorf("no note names the private torrent %s left alone: %q", priv.Infohash, res.Notes)
			}

			again, err := Apply(ctx, cfg, &res.Record)
			if err != nil {
				t.Fatalf("setup again: %v", err)
			}
			if len(again.Changes) != 0 || !slices.Equal(again.Record.Torrents, res.Record.Torrents) ||
				again.Record.AddedDefault != res.Record.AddedDefault || again.Record.EnabledDefault != res.Record.EnabledDefault {
				t.Errorf("setup again: changes %q, record %+v; want none and %+v", again.Changes, again.Record, res.Record)
			}

			dir2 := t.TempDir()
			second := realclients.MakeTorrent(t, dir2, 64<<10)
			if res.Record.AddedDefault {
				rc.Add(t, second, dir2)
				if got := trackers(t, rc, second.Infohash); !slices.Equal(got, []string{tracker.URL}) {
					t.Errorf("a torrent added after setup has trackers %v, want [%s]", got, tracker.URL)
				}
				tracker.waitFor(t, second.Infohash)
				if test == "qbittorrent" || test == "transmission4" {
					// qBittorrent and Transmission 4 give their default
					// trackers to public torrents only, as the README says.
					privDir2 := t.TempDir()
					priv2 := realclients.MakePrivateTorrent(t, privDir2, 64<<10)
					rc.Add(t, priv2, privDir2)
					if got := trackers(t, rc, priv2.Infohash); len(got) != 0 {
						t.Errorf("a private torrent added after setup has trackers %v", got)
					}
				}
			} else if name != "transmission" && name != "deluge" || !strings.Contains(strings.Join(res.Notes, "\n"), "default trackers") {
				// Debian's Transmission 3.00 has no default-trackers;
				// Deluge has none at all.
				t.Errorf("%s: the defaults were not changed, and no note says why: %q", res.Version, res.Notes)
			}

			if _, err := Undo(ctx, cfg, res.Record); err != nil {
				t.Fatalf("undo: %v", err)
			}
			if got := trackers(t, rc, first.Infohash); len(got) != 0 {
				t.Errorf("after undo the torrent has trackers %v", got)
			}
			if after := settings(t, rc); after != before {
				t.Errorf("undo left the settings\n%s\nwant\n%s", after, before)
			}
		})
	}
}

// TestNotRunning: nothing listening is ErrNotRunning, for every client.
func TestNotRunning(t *testing.T) {
	port := realclients.FreePort(t)
	for _, name := range Clients {
		c := DefaultConfig(name)
		c.Endpoint = "http://127.0.0.1:" + strconv.Itoa(port)
		if _, err := Apply(t.Context(), c, nil); !errors.Is(err, ErrNotRunning) {
			t.Errorf("%s: %v, want ErrNotRunning", name, err)
		}
	}
}
