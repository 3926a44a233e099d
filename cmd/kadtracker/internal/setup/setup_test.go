package setup

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestWithoutLine(t *testing.T) {
	const u = "http://127.0.0.1:6969/announce"
	for _, tc := range []struct{ in, want string }{
		{u, ""},
		{"a\n\n" + u, "a"},
		{"a\n\n" + u + "\n\nb", "a\n\nb"},
		{"a\n" + u + "\nb", "a\nb"},
		{u + "\n\na", "a"},
		{"a\n\nb", "a\n\nb"},
	} {
		if got := withoutLine(tc.in, u); got != tc.want {
			t.Errorf("withoutLine(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func FuzzWithoutLine(f *testing.F) {
	f.Add("a\n\nhttp://x/announce\n\nb", "http://x/announce")
	f.Add("", "u")
	f.Fuzz(func(t *testing.T, list, u string) {
		if strings.TrimSpace(u) == "" || strings.ContainsAny(u, "\n") {
			return
		}
		got := withoutLine(list, u)
		for l := range strings.SplitSeq(got, "\n") {
			if strings.TrimSpace(l) == u {
				t.Fatalf("withoutLine(%q, %q) = %q still holds it", list, u, got)
			}
		}
		if again := withoutLine(got, u); again != got {
			t.Fatalf("not idempotent: %q then %q", got, again)
		}
		if strings.Contains(got, "\n\n\n") {
			t.Fatalf("withoutLine(%q) = %q leaves an empty tier", list, got)
		}
	})
}

func TestVersionAtLeast(t *testing.T) {
	for v, want := range map[string]bool{"2.8.19": true, "2.2": true, "v2.2.0": true, "2.1.9": false, "3.0": true, "1.9": false, "x": false, "": false} {
		if got := versionAtLeast(v, [2]int{2, 2}); got != want {
			t.Errorf("versionAtLeast(%q) = %v", v, got)
		}
	}
}

func TestValidate(t *testing.T) {
	ok := DefaultConfig("aria2")
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(*Config){
		"client":        func(c *Config) { c.Client = "utorrent" },
		"tracker comma": func(c *Config) { c.Tracker = "http://a/announce,http://evil/announce" },
		"tracker line":  func(c *Config) { c.Tracker = "http://a/announce\nhttp://evil/announce" },
		"tracker file":  func(c *Config) { c.Tracker = "file:///etc/passwd" },
		"endpoint":      func(c *Config) { c.Endpoint = "unix:///x" },
		"timeout":       func(c *Config) { c.Timeout = 0 },
	} {
		c := ok
		mut(&c)
		if c.Validate() == nil {
			t.Errorf("%s: Validate accepts %+v", name, c)
		}
	}
}

func TestRecords(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", RecordFile)
	rs, err := LoadRecords(path)
	if err != nil || len(rs) != 0 {
		t.Fatalf("missing file: %v, %v", rs, err)
	}
	r := Record{Client: "qbittorrent", Endpoint: DefaultEndpoint("qbittorrent"), Tracker: DefaultTracker, Torrents: []string{"ab"}, AddedDefault: true, Updated: time.Unix(1, 0).UTC()}
	rs[r.Key()] = r
	if err := rs.Save(path); err != nil {
		t.Fatal(err)
	}
	back, err := LoadRecords(path)
	if err != nil {
		t.Fatal(err)
	}
	got, ok := back.Find("qbittorrent", "")
	if !ok || !slices.Equal(got.Torrents, r.Torrents) || !got.AddedDefault || got.Tracker != r.Tracker {
		t.Fatalf("Find after Save: %+v %v, want %+v", got, ok, r)
	}
	if _, ok := back.Find("qbittorrent", "http://127.0.0.1:9999"); ok {
		t.Fatal("found a record for another endpoint")
	}
}

// TestAnswerBounded: a hostile or broken API answering without end is cut
// off at the bound; the control shows the same answer is read whole
// without it.
func TestAnswerBounded(t *testing.T) {
	const size = 1 << 20
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"jsonrpc":"2.0","id":"1","result":{"version":"`))
		w.Write([]byte(strings.Repeat("x", size)))
		w.Write([]byte(`"}}`))
	}))
	defer srv.Close()
	open := func(limit int) error {
		c := DefaultConfig("aria2")
		c.Endpoint = srv.URL
		b, err := newBackend(c)
		if err != nil {
			t.Fatal(err)
		}
		b.(*aria2).limit = limit
		_, err = b.open(t.Context())
		return err
	}
	if err := open(size / 2); !errors.Is(err, ErrTooLong) {
		t.Errorf("with the bound: %v, want ErrTooLong", err)
	}
	if err := open(2 * size); err != nil {
		t.Errorf("control, bound above the answer: %v", err)
	}
}

// TestSessionLoop: a server that answers 409 for ever is given up on after
// the one retry the handshake needs.
func TestSessionLoop(t *testing.T) {
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		w.Header().Set("X-Transmission-Session-Id", "again")
		w.WriteHeader(http.StatusConflict)
	}))
	defer srv.Close()
	c := DefaultConfig("transmission")
	c.Endpoint = srv.URL
	if _, err := Apply(t.Context(), c, nil); err == nil || calls != 2 {
		t.Fatalf("endless 409: %v after %d calls, want an error after 2", err, calls)
	}
}
