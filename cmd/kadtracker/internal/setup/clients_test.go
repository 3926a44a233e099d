package setup

// Tests against the real clients, each run headless on loopback with its
// own directories, DHT, local peer discovery and PEX off, and its remote
// API behind a password as a user's would be.

import (
	"bytes"
	"context"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"mime/multipart"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	testUser = "kt"
	testPass = "correct horse"
	// startTimeout bounds a client's start until its API answers.
	startTimeout = 30 * time.Second
)

// freePort is a loopback TCP port nothing listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// testTorrentMeta is a .torrent with no tracker at all for a small random
// file written to dir, and its infohash in hex.
func testTorrentMeta(t *testing.T, dir string) ([]byte, string) {
	t.Helper()
	data := make([]byte, 64<<10)
	rand.Read(data)
	name := "kt-setup-" + hex.EncodeToString(data[:4]) + ".bin"
	if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
		t.Fatal(err)
	}
	const pieceLen = 16 << 10
	var pieces []byte
	for off := 0; off < len(data); off += pieceLen {
		s := sha1.Sum(data[off : off+pieceLen])
		pieces = append(pieces, s[:]...)
	}
	info := fmt.Appendf(nil, "d6:lengthi%de4:name%d:%s12:piece lengthi%de6:pieces%d:%se", len(data), len(name), name, pieceLen, len(pieces), pieces)
	sum := sha1.Sum(info)
	return fmt.Appendf(nil, "d4:info%se", info), hex.EncodeToString(sum[:])
}

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

func (r *trackerRecorder) waitFor(t *testing.T, infohash string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		r.mu.Lock()
		ok := r.seen[infohash]
		r.mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no announce of %s at %s within %v", infohash, r.URL, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// realClient is a running client and what the test needs of it beyond
// the package's own calls.
type realClient struct {
	cfg Config
	// add adds a torrent (a .torrent's bytes) whose data is in dir.
	add func(t *testing.T, meta []byte, dir string)
	// settings are the client's settings as its API reports them, without
	// the values that change on their own.
	settings func(t *testing.T) map[string]any
}

// startProc runs a client process until the test ends.
func startProc(t *testing.T, name string, args ...string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Fatalf("%s is needed for this test (Debian: aria2 transmission-daemon qbittorrent-nox): %v", name, err)
	}
	cmd := exec.Command(name, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("%s output:\n%s", name, out.String())
		}
	})
}

// waitAPI waits until the client's API answers open.
func waitAPI(t *testing.T, c Config) {
	t.Helper()
	b, err := newBackend(c)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(startTimeout)
	for {
		_, err := b.open(t.Context())
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s API: %v", c.Client, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func testConfig(client, endpoint string) Config {
	c := DefaultConfig(client)
	c.Endpoint, c.Username, c.Password = endpoint, testUser, testPass
	return c
}

func startQBittorrent(t *testing.T) *realClient {
	profile := t.TempDir()
	confDir := filepath.Join(profile, "qBittorrent", "config")
	if err := os.MkdirAll(confDir, 0o700); err != nil {
		t.Fatal(err)
	}
	// The WebUI password as qBittorrent stores it: PBKDF2-HMAC-SHA512,
	// 100000 iterations, 16 bytes of salt, 64 bytes of key. Localhost
	// clients must log in, as on a default profile.
	salt := make([]byte, 16)
	rand.Read(salt)
	key, err := pbkdf2.Key(sha512.New, testPass, salt, 100000, 64)
	if err != nil {
		t.Fatal(err)
	}
	webPort, dir := freePort(t), t.TempDir()
	conf := fmt.Sprintf(`[LegalNotice]
Accepted=true

[BitTorrent]
Session\DHTEnabled=false
Session\LSDEnabled=false
Session\PeXEnabled=false
Session\Port=%d
Session\QueueingSystemEnabled=false
Session\DefaultSavePath=%s
Session\Interface=lo
Session\InterfaceName=lo
Session\InterfaceAddress=127.0.0.1

[Network]
PortForwardingEnabled=false

[Preferences]
Connection\ResolvePeerCountries=false
WebUI\Address=127.0.0.1
WebUI\Port=%d
WebUI\Username=%s
WebUI\Password_PBKDF2="@ByteArray(%s:%s)"
`, freePort(t), dir, webPort, testUser, base64.StdEncoding.EncodeToString(salt), base64.StdEncoding.EncodeToString(key))
	if err := os.WriteFile(filepath.Join(confDir, "qBittorrent.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	startProc(t, "qbittorrent-nox", "--profile="+profile, "--webui-port="+strconv.Itoa(webPort))
	rc := &realClient{cfg: testConfig("qbittorrent", "http://127.0.0.1:"+strconv.Itoa(webPort))}
	waitAPI(t, rc.cfg)
	q := func(t *testing.T) *qbittorrent {
		b, _ := newBackend(rc.cfg)
		if _, err := b.open(t.Context()); err != nil {
			t.Fatal(err)
		}
		return b.(*qbittorrent)
	}
	rc.add = func(t *testing.T, meta []byte, dir string) {
		var body bytes.Buffer
		mw := multipart.NewWriter(&body)
		fw, _ := mw.CreateFormFile("torrents", "t.torrent")
		fw.Write(meta)
		mw.WriteField("savepath", dir)
		mw.Close()
		b := q(t)
		req, _ := b.request(t.Context(), http.MethodPost, b.endpoint+"/api/v2/torrents/add", mw.FormDataContentType(), body.Bytes())
		req.AddCookie(b.sid)
		code, _, out, err := b.do(req)
		if err != nil || code != http.StatusOK {
			t.Fatalf("qBittorrent torrents/add: %d %s %v", code, out, err)
		}
	}
	rc.settings = func(t *testing.T) map[string]any {
		var p map[string]any
		if err := q(t).get(t.Context(), "/api/v2/app/preferences", &p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	return rc
}

func startTransmission(t *testing.T) *realClient {
	conf, dir, rpcPort := t.TempDir(), t.TempDir(), freePort(t)
	settings := fmt.Sprintf(`{
	"dht-enabled": false, "lpd-enabled": false, "pex-enabled": false,
	"port-forwarding-enabled": false, "utp-enabled": false,
	"bind-address-ipv4": "127.0.0.1", "bind-address-ipv6": "::1",
	"peer-port": %d, "peer-port-random-on-start": false,
	"rpc-enabled": true, "rpc-bind-address": "127.0.0.1", "rpc-port": %d,
	"rpc-authentication-required": true, "rpc-username": %q, "rpc-password": %q,
	"rpc-whitelist-enabled": true, "rpc-whitelist": "127.0.0.1", "rpc-host-whitelist-enabled": false,
	"download-dir": %q, "incomplete-dir-enabled": false, "watch-dir-enabled": false,
	"start-added-torrents": true, "blocklist-enabled": false
}
`, freePort(t), rpcPort, testUser, testPass, dir)
	if err := os.WriteFile(filepath.Join(conf, "settings.json"), []byte(settings), 0o600); err != nil {
		t.Fatal(err)
	}
	startProc(t, "transmission-daemon", "--foreground", "--config-dir", conf)
	rc := &realClient{cfg: testConfig("transmission", "http://127.0.0.1:"+strconv.Itoa(rpcPort)+"/transmission/rpc")}
	waitAPI(t, rc.cfg)
	tr := func(t *testing.T) *transmission {
		b, _ := newBackend(rc.cfg)
		if _, err := b.open(t.Context()); err != nil {
			t.Fatal(err)
		}
		return b.(*transmission)
	}
	rc.add = func(t *testing.T, meta []byte, dir string) {
		if err := tr(t).call(t.Context(), "torrent-add", map[string]any{"metainfo": base64.StdEncoding.EncodeToString(meta), "download-dir": dir}, nil); err != nil {
			t.Fatal(err)
		}
	}
	rc.settings = func(t *testing.T) map[string]any {
		var s map[string]any
		if err := tr(t).call(t.Context(), "session-get", map[string]any{}, &s); err != nil {
			t.Fatal(err)
		}
		delete(s, "download-dir-free-space") // the disk's, changing
		return s
	}
	return rc
}

func startAria2(t *testing.T) *realClient {
	dir, rpcPort := t.TempDir(), freePort(t)
	startProc(t, "aria2c", "--no-conf", "--enable-rpc", "--rpc-listen-port="+strconv.Itoa(rpcPort),
		"--rpc-secret="+testPass, "--dir="+dir, "--listen-port="+strconv.Itoa(freePort(t)),
		"--enable-dht=false", "--enable-dht6=false", "--bt-enable-lpd=false", "--enable-peer-exchange=false",
		"--interface=127.0.0.1", "--disable-ipv6=true", "--stop-with-process="+strconv.Itoa(os.Getpid()),
		"--seed-ratio=0.0", "--file-allocation=none", "--check-integrity=true",
		"--summary-interval=0", "--console-log-level=warn")
	rc := &realClient{cfg: testConfig("aria2", "http://127.0.0.1:"+strconv.Itoa(rpcPort)+"/jsonrpc")}
	waitAPI(t, rc.cfg)
	a := func(t *testing.T) *aria2 {
		b, _ := newBackend(rc.cfg)
		return b.(*aria2)
	}
	rc.add = func(t *testing.T, meta []byte, dir string) {
		var gid string
		if err := a(t).call(t.Context(), "aria2.addTorrent", &gid, base64.StdEncoding.EncodeToString(meta), []string{}, map[string]string{"dir": dir}); err != nil {
			t.Fatal(err)
		}
	}
	rc.settings = func(t *testing.T) map[string]any {
		var s map[string]any
		if err := a(t).call(t.Context(), "aria2.getGlobalOption", &s); err != nil {
			t.Fatal(err)
		}
		// aria2 leaves out an option with no value, and its RPC cannot
		// unset one: undo sets bt-tracker to "", which aria2 treats as
		// unset. Compare with the empty values left out.
		for k, v := range s {
			if v == "" {
				delete(s, k)
			}
		}
		return s
	}
	return rc
}

var realClients = map[string]func(*testing.T) *realClient{
	"qbittorrent":  startQBittorrent,
	"transmission": startTransmission,
	"aria2":        startAria2,
}

// trackersOf is the trackers the client reports for the torrent with the
// infohash.
func trackersOf(t *testing.T, c Config, infohash string) []string {
	t.Helper()
	b, _ := newBackend(c)
	if _, err := b.open(t.Context()); err != nil {
		t.Fatal(err)
	}
	ts, err := b.torrents(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range ts {
		if strings.EqualFold(x.ID, infohash) || strings.Contains(x.Name, infohash) {
			return x.Trackers
		}
	}
	t.Fatalf("%s has no torrent %s (it has %v)", c.Client, infohash, ts)
	return nil
}

func jsonOf(v any) string {
	b, _ := json.MarshalIndent(v, "", " ")
	return string(b)
}

// TestRealClients runs setup against each real client: wrong and missing
// credentials fail clearly; a dry run changes nothing; setup adds the
// tracker to a torrent that had none, which then announces to it, and
// (where the client has default trackers) to a torrent added afterwards;
// undo leaves the settings exactly as they were.
func TestRealClients(t *testing.T) {
	for _, name := range Clients {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			rc := realClients[name](t)
			tracker := newTrackerRecorder(t)
			cfg := rc.cfg
			cfg.Tracker = tracker.URL
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
			defer cancel()

			dir := t.TempDir()
			meta, first := testTorrentMeta(t, dir)
			rc.add(t, meta, dir)
			if got := trackersOf(t, cfg, first); len(got) != 0 {
				t.Fatalf("the test torrent has trackers %v before setup", got)
			}
			before := rc.settings(t)

			wrong := cfg
			wrong.Password = "wrong"
			if _, err := Apply(ctx, wrong, nil); !errorsIs(err, ErrAuth) {
				t.Errorf("wrong password: %v, want ErrAuth", err)
			}
			none := cfg
			none.Password = ""
			if _, err := Apply(ctx, none, nil); !errorsIs(err, ErrNeedPassword) {
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
			if !strings.Contains(strings.Join(where, "\n"), first) {
				t.Errorf("dry run reports changes %q, notes %q; want the torrent %s among the %s", res.Changes, res.Notes, first, what)
			}
			if after := rc.settings(t); jsonOf(after) != jsonOf(before) {
				t.Errorf("the dry run changed the settings:\n%s\nwant\n%s", jsonOf(after), jsonOf(before))
			}
			if got := trackersOf(t, cfg, first); len(got) != 0 {
				t.Errorf("the dry run added trackers %v", got)
			}

			res, err = Apply(ctx, cfg, nil)
			if err != nil {
				t.Fatalf("setup: %v", err)
			}
			t.Logf("%s: changes %q, notes %q", res.Version, res.Changes, res.Notes)
			if name != "aria2" {
				if got := trackersOf(t, cfg, first); len(got) != 1 || got[0] != tracker.URL {
					t.Errorf("after setup the torrent has trackers %v, want [%s]", got, tracker.URL)
				}
				tracker.waitFor(t, first, 60*time.Second)
			} else if len(res.Record.Torrents) != 0 || !strings.Contains(strings.Join(res.Notes, "\n"), first) {
				t.Errorf("aria2: setup recorded torrents %v and notes %q; want none and a note naming %s", res.Record.Torrents, res.Notes, first)
			}

			// Again: nothing left to do, and the record stays what it was.
			again, err := Apply(ctx, cfg, &res.Record)
			if err != nil {
				t.Fatalf("setup again: %v", err)
			}
			if len(again.Changes) != 0 || jsonOf(again.Record.Torrents) != jsonOf(res.Record.Torrents) ||
				again.Record.AddedDefault != res.Record.AddedDefault || again.Record.EnabledDefault != res.Record.EnabledDefault {
				t.Errorf("setup again: changes %q, record %+v, want none and %+v", again.Changes, again.Record, res.Record)
			}

			d, err := mustBackend(t, cfg).defaults(ctx)
			if err != nil {
				t.Fatal(err)
			}
			dir2 := t.TempDir()
			meta2, second := testTorrentMeta(t, dir2)
			if d.Supported {
				rc.add(t, meta2, dir2)
				if got := trackersOf(t, cfg, second); len(got) != 1 || got[0] != tracker.URL {
					t.Errorf("a torrent added after setup has trackers %v, want [%s]", got, tracker.URL)
				}
				tracker.waitFor(t, second, 60*time.Second)
			} else if len(res.Notes) == 0 {
				t.Errorf("no default trackers in %s, and no note saying what to do", res.Version)
			}

			if _, err := Undo(ctx, cfg, res.Record); err != nil {
				t.Fatalf("undo: %v", err)
			}
			if got := trackersOf(t, cfg, first); len(got) != 0 {
				t.Errorf("after undo the torrent has trackers %v", got)
			}
			if after := rc.settings(t); jsonOf(after) != jsonOf(before) {
				t.Errorf("undo left the settings\n%s\nwant\n%s", jsonOf(after), jsonOf(before))
			}
		})
	}
}

func mustBackend(t *testing.T, c Config) backend {
	b, err := newBackend(c)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.open(t.Context()); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestNotRunning: nothing listening is ErrNotRunning, for every client.
func TestNotRunning(t *testing.T) {
	port := freePort(t)
	for _, name := range Clients {
		c := DefaultConfig(name)
		c.Endpoint = "http://127.0.0.1:" + strconv.Itoa(port)
		if _, err := Apply(t.Context(), c, nil); !errorsIs(err, ErrNotRunning) {
			t.Errorf("%s: %v, want ErrNotRunning", name, err)
		}
	}
}
