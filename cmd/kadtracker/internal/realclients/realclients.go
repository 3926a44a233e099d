// Package realclients runs real BitTorrent clients (qbittorrent-nox,
// transmission-daemon, aria2c, deluged with deluge-web) headless on loopback for tests, with their
// remote APIs on and every way of finding peers but trackers off, and talks
// to those APIs with its own plain calls, so that a test of code that
// drives the APIs does not check that code with itself.
//
// It is test support: its functions take a testing.TB and fail the test.
package realclients

import (
	"bytes"
	"context"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Kinds are the clients Start knows.
var Kinds = []string{"qbittorrent", "transmission", "aria2", "deluge"}

// StartTimeout bounds a client's start until its API answers.
const StartTimeout = 30 * time.Second

// Options say how to start a client.
type Options struct {
	// Password protects the remote API (aria2: its RPC secret); "" leaves
	// it open to loopback, as the tests of other packages run them
	// (deluge-web always wants one: "" is its default, "deluge").
	Username, Password string
	// Root, if set, is a root file system the client's binary runs in
	// (chroot), with this host's temporary directory bound at the same
	// path: Transmission 4 from Debian 13 (Transmission4Root) on a Debian
	// 12 host.
	Root string
}

// Client is a running client.
type Client struct {
	Kind     string
	Endpoint string // its remote API's URL
	Username string
	Password string
	PeerPort int // the port it takes peer connections on

	http    *http.Client
	mu      sync.Mutex
	cookie  *http.Cookie // qBittorrent's or deluge-web's session
	session string       // Transmission's session id
	host    string       // deluge-web's id of the daemon
	root    string       // Options.Root
	out     *SyncBuffer
}

// FreePort is a loopback TCP port nothing listens on now.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Start runs a client of kind until the test ends and waits until its API
// answers.
func Start(t testing.TB, kind string, o Options) *Client {
	t.Helper()
	c := &Client{Kind: kind, Username: o.Username, Password: o.Password, PeerPort: FreePort(t),
		http: &http.Client{Timeout: 15 * time.Second}, out: &SyncBuffer{}, root: o.Root}
	dir := t.TempDir()
	apiPort := FreePort(t)
	switch kind {
	case "qbittorrent":
		c.Endpoint = "http://127.0.0.1:" + strconv.Itoa(apiPort)
		profile := t.TempDir()
		confDir := filepath.Join(profile, "qBittorrent", "config")
		if err := os.MkdirAll(confDir, 0o700); err != nil {
			t.Fatal(err)
		}
		auth := "WebUI\\LocalHostAuth=false\n"
		if o.Password != "" {
			// As qBittorrent stores it: PBKDF2-HMAC-SHA512, 100000
			// iterations, 16 bytes of salt, 64 of key. Localhost clients
			// must log in, as on a default profile.
			salt := make([]byte, 16)
			rand.Read(salt)
			key, err := pbkdf2.Key(sha512.New, o.Password, salt, 100000, 64)
			if err != nil {
				t.Fatal(err)
			}
			auth = fmt.Sprintf("WebUI\\Username=%s\nWebUI\\Password_PBKDF2=\"@ByteArray(%s:%s)\"\n", o.Username,
				base64.StdEncoding.EncodeToString(salt), base64.StdEncoding.EncodeToString(key))
		}
		conf := fmt.Sprintf(`[LegalNotice]
Accepted=true

[BitTorrent]
Session\DHTEnabled=false
Session\LSDEnabled=false
Session\PeXEnabled=false
Session\Port=%d
Session\MultiConnectionsPerIp=true
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
%s`, c.PeerPort, dir, apiPort, auth)
		if err := os.WriteFile(filepath.Join(confDir, "qBittorrent.conf"), []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		c.run(t, "qbittorrent-nox", "--profile="+profile, "--webui-port="+strconv.Itoa(apiPort))
	case "transmission":
		c.Endpoint = "http://127.0.0.1:" + strconv.Itoa(apiPort) + "/transmission/rpc"
		conf := t.TempDir()
		settings := fmt.Sprintf(`{
	"dht-enabled": false, "lpd-enabled": false, "pex-enabled": false,
	"port-forwarding-enabled": false, "utp-enabled": false,
	"bind-address-ipv4": "127.0.0.1", "bind-address-ipv6": "::1",
	"peer-port": %d, "peer-port-random-on-start": false,
	"rpc-enabled": true, "rpc-bind-address": "127.0.0.1", "rpc-port": %d,
	"rpc-authentication-required": %v, "rpc-username": %q, "rpc-password": %q,
	"rpc-whitelist-enabled": true, "rpc-whitelist": "127.0.0.1", "rpc-host-whitelist-enabled": false,
	"download-dir": %q, "incomplete-dir-enabled": false, "watch-dir-enabled": false,
	"start-added-torrents": true, "blocklist-enabled": false,
	"ratio-limit-enabled": false, "idle-seeding-limit-enabled": false,
	"download-queue-enabled": false, "seed-queue-enabled": false, "queue-stalled-enabled": false
}
`, c.PeerPort, apiPort, o.Password != "", o.Username, o.Password, dir)
		if err := os.WriteFile(filepath.Join(conf, "settings.json"), []byte(settings), 0o600); err != nil {
			t.Fatal(err)
		}
		c.run(t, "transmission-daemon", "--foreground", "--config-dir", conf)
	case "aria2":
		c.Endpoint = "http://127.0.0.1:" + strconv.Itoa(apiPort) + "/jsonrpc"
		args := []string{"--no-conf", "--enable-rpc", "--rpc-listen-port=" + strconv.Itoa(apiPort),
			"--dir=" + dir, "--listen-port=" + strconv.Itoa(c.PeerPort),
			"--enable-dht=false", "--enable-dht6=false", "--bt-enable-lpd=false", "--enable-peer-exchange=false",
			"--interface=127.0.0.1", "--disable-ipv6=true", "--stop-with-process=" + strconv.Itoa(os.Getpid()),
			"--seed-ratio=0.0", "--file-allocation=none", "--check-integrity=true", "--auto-file-renaming=false",
			"--summary-interval=0", "--console-log-level=warn"}
		if o.Password != "" {
			args = append(args, "--rpc-secret="+o.Password)
		}
		c.run(t, "aria2c", args...)
	case "deluge":
		c.startDeluge(t, dir, apiPort, o)
	default:
		t.Fatalf("realclients: unknown kind %q", kind)
	}
	deadline := time.Now().Add(StartTimeout)
	for {
		_, err := c.Settings(t.Context())
		if err == nil {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s API at %s: %v\n%s", kind, c.Endpoint, err, c.out.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (c *Client) run(t testing.TB, name string, args ...string) {
	t.Helper()
	var cmd *exec.Cmd
	if c.root != "" {
		bin := filepath.Join("/usr/bin", name)
		if _, err := os.Stat(filepath.Join(c.root, bin)); err != nil {
			t.Fatalf("%s is not in the root file system %s: %v", bin, c.root, err)
		}
		// A mount namespace of its own, so the bind mounts go with it;
		// --kill-child ends the client when unshare is killed.
		tmp := os.TempDir()
		script := `mkdir -p "$2$1" && mount --bind "$1" "$2$1" && mount -t proc proc "$2/proc" && root=$2 && shift 2 && exec chroot "$root" "$@"`
		cmd = exec.Command("unshare", append([]string{"--mount", "--propagation", "private", "--fork", "--kill-child",
			"sh", "-c", script, "sh", tmp, c.root, bin}, args...)...)
	} else {
		if _, err := exec.LookPath(name); err != nil {
			t.Fatalf("%s is needed for this test (Debian: aria2 transmission-daemon qbittorrent-nox deluged deluge-web): %v", name, err)
		}
		cmd = exec.Command(name, args...)
	}
	cmd.Stdout, cmd.Stderr = c.out, c.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("%s output:\n%s", name, c.out.String())
		}
	})
}

// call is one API call: qBittorrent's path with a form (nil: GET), or a
// Transmission or aria2 method with its arguments; the answer's JSON goes
// into out.
func (c *Client) call(ctx context.Context, method string, args any, out any) error {
	switch c.Kind {
	case "qbittorrent":
		return c.qbCall(ctx, method, args, out)
	case "deluge":
		return c.delugeCall(ctx, method, args.([]any), out)
	case "transmission":
		b, _ := json.Marshal(map[string]any{"method": method, "arguments": args})
		for range 2 {
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, c.Endpoint, bytes.NewReader(b))
			c.mu.Lock()
			req.Header.Set("X-Transmission-Session-Id", c.session)
			c.mu.Unlock()
			if c.Password != "" {
				req.SetBasicAuth(c.Username, c.Password)
			}
			resp, err := c.http.Do(req)
			if err != nil {
				return err
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusConflict {
				c.mu.Lock()
				c.session = resp.Header.Get("X-Transmission-Session-Id")
				c.mu.Unlock()
				continue
			}
			var r struct {
				Result    string
				Arguments json.RawMessage
			}
			if err := json.Unmarshal(body, &r); err != nil || r.Result != "success" {
				return fmt.Errorf("transmission %s: HTTP %d %s %v", method, resp.StatusCode, body, err)
			}
			if out == nil {
				return nil
			}
			return json.Unmarshal(r.Arguments, out)
		}
		return fmt.Errorf("transmission %s: no session", method)
	default:
		params := args.([]any)
		if c.Password != "" {
			params = append([]any{"token:" + c.Password}, params...)
		}
		b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": "t", "method": method, "params": params})
		resp, err := c.http.Post(c.Endpoint, "application/json", bytes.NewReader(b))
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var r struct {
			Result json.RawMessage
			Error  any
		}
		if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || r.Error != nil {
			return fmt.Errorf("aria2 %s: %v %v", method, r.Error, err)
		}
		if out == nil {
			return nil
		}
		return json.Unmarshal(r.Result, out)
	}
}

func (c *Client) qbCall(ctx context.Context, path string, args any, out any) error {
	for try := 0; ; try++ {
		var req *http.Request
		switch a := args.(type) {
		case nil:
			req, _ = http.NewRequestWithContext(ctx, http.MethodGet, c.Endpoint+path, nil)
		case url.Values:
			req, _ = http.NewRequestWithContext(ctx, http.MethodPost, c.Endpoint+path, strings.NewReader(a.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		case multipartBody:
			req, _ = http.NewRequestWithContext(ctx, http.MethodPost, c.Endpoint+path, bytes.NewReader(a.body))
			req.Header.Set("Content-Type", a.contentType)
		}
		c.mu.Lock()
		if c.cookie != nil {
			req.AddCookie(c.cookie)
		}
		c.mu.Unlock()
		resp, err := c.http.Do(req)
		if err != nil {
			return err
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusForbidden && try == 0 && c.Password != "" {
			if err := c.qbLogin(ctx); err != nil {
				return err
			}
			continue
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("qBittorrent %s: HTTP %d %s", path, resp.StatusCode, body)
		}
		if out == nil {
			return nil
		}
		return json.Unmarshal(body, out)
	}
}

func (c *Client) qbLogin(ctx context.Context) error {
	form := url.Values{"username": {c.Username}, "password": {c.Password}}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, c.Endpoint+"/api/v2/auth/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	for _, k := range resp.Cookies() {
		if k.Name == "SID" {
			c.mu.Lock()
			c.cookie = &http.Cookie{Name: "SID", Value: k.Value}
			c.mu.Unlock()
			return nil
		}
	}
	return fmt.Errorf("qBittorrent login: HTTP %d, no session", resp.StatusCode)
}

type multipartBody struct {
	body        []byte
	contentType string
}

// Add adds a torrent whose data is, or goes, in dir, and waits until the
// client lists it (qBittorrent adds asynchronously).
func (c *Client) Add(t testing.TB, tt Torrent, dir string) {
	t.Helper()
	meta := tt.Meta
	var err error
	switch c.Kind {
	case "qbittorrent":
		var body bytes.Buffer
		mw := multipart.NewWriter(&body)
		fw, _ := mw.CreateFormFile("torrents", "t.torrent")
		fw.Write(meta)
		mw.WriteField("savepath", dir)
		mw.Close()
		err = c.call(t.Context(), "/api/v2/torrents/add", multipartBody{body.Bytes(), mw.FormDataContentType()}, nil)
	case "deluge":
		err = c.call(t.Context(), "core.add_torrent_file", []any{"t.torrent", base64.StdEncoding.EncodeToString(meta), map[string]any{"download_location": dir}}, nil)
	case "transmission":
		err = c.call(t.Context(), "torrent-add", map[string]any{"metainfo": base64.StdEncoding.EncodeToString(meta), "download-dir": dir}, nil)
	default:
		err = c.call(t.Context(), "aria2.addTorrent", []any{base64.StdEncoding.EncodeToString(meta), []string{}, map[string]string{"dir": dir}}, nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(StartTimeout); ; time.Sleep(100 * time.Millisecond) {
		if _, ok := c.Trackers(t, tt.Infohash); ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not list the torrent %s %v after it was added", c.Kind, tt.Infohash, StartTimeout)
		}
	}
}

// Settings are the client's settings as its API reports them, without
// the values that change on their own; for aria2 without the options that
// have no value (its RPC cannot unset an option, and it leaves out an
// option with no value: an empty one means the same).
func (c *Client) Settings(ctx context.Context) (map[string]any, error) {
	var s map[string]any
	var err error
	switch c.Kind {
	case "qbittorrent":
		err = c.call(ctx, "/api/v2/app/preferences", nil, &s)
	case "deluge":
		err = c.call(ctx, "core.get_config", []any{}, &s)
	case "transmission":
		err = c.call(ctx, "session-get", map[string]any{}, &s)
		delete(s, "download-dir-free-space") // the disk's
	default:
		err = c.call(ctx, "aria2.getGlobalOption", []any{}, &s)
		for k, v := range s {
			if v == "" {
				delete(s, k)
			}
		}
	}
	return s, err
}

// Trackers are the announce URLs of the client's torrent with infohash
// (hex, lower case), and whether it has that torrent.
func (c *Client) Trackers(t testing.TB, infohash string) ([]string, bool) {
	t.Helper()
	var urls []string
	found := false
	var err error
	switch c.Kind {
	case "qbittorrent":
		var tr []struct{ URL string }
		if err = c.call(t.Context(), "/api/v2/torrents/trackers?hash="+infohash, nil, &tr); err != nil && strings.Contains(err.Error(), "HTTP 404") {
			return nil, false
		}
		found = true
		for _, x := range tr {
			if !strings.HasPrefix(x.URL, "** [") {
				urls = append(urls, x.URL)
			}
		}
	case "deluge":
		var st struct{ Trackers *[]struct{ URL string } }
		err = c.call(t.Context(), "core.get_torrent_status", []any{infohash, []string{"trackers"}}, &st)
		if found = st.Trackers != nil; found { // a torrent it lacks is {}
			for _, x := range *st.Trackers {
				urls = append(urls, x.URL)
			}
		}
	case "transmission":
		var r struct {
			Torrents []struct {
				HashString   string
				Trackers     []struct{ Announce string }
				TrackerStats []struct{ Announce string }
			}
		}
		// Transmission 4 announces to its default-trackers without listing
		// them in the torrent's trackers; trackerStats, what it announces
		// to, has them.
		err = c.call(t.Context(), "torrent-get", map[string]any{"fields": []string{"hashString", "trackers", "trackerStats"}}, &r)
		for _, x := range r.Torrents {
			if x.HashString == infohash {
				found = true
				for _, a := range x.Trackers {
					urls = append(urls, a.Announce)
				}
				for _, a := range x.TrackerStats {
					if !slices.Contains(urls, a.Announce) {
						urls = append(urls, a.Announce)
					}
				}
			}
		}
	default:
		var active, waiting []struct {
			InfoHash   string
			Bittorrent struct{ AnnounceList [][]string }
		}
		keys := []string{"infoHash", "bittorrent"}
		err = c.call(t.Context(), "aria2.tellActive", []any{keys}, &active)
		if err == nil {
			err = c.call(t.Context(), "aria2.tellWaiting", []any{0, 1000, keys}, &waiting)
		}
		for _, x := range append(active, waiting...) {
			if x.InfoHash == infohash {
				found = true
				for _, tier := range x.Bittorrent.AnnounceList {
					urls = append(urls, tier...)
				}
			}
		}
	}
	if err != nil {
		t.Fatalf("%s trackers of %s: %v", c.Kind, infohash, err)
	}
	return urls, found
}

// Output is what the client printed.
func (c *Client) Output() string { return c.out.String() }

// SyncBuffer is a bytes.Buffer safe for a writer and a reader goroutine:
// a process's output, read while it runs.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Transmission4RootDefault is where .ci/deps makes a Debian 13 root file
// system with transmission-daemon 4 in it (debootstrap), for
// Options.Root; $KADTRACKER_TRANSMISSION4_ROOT names another.
const Transmission4RootDefault = "/var/lib/kadtracker-ci/trixie"

// Transmission4Root is the root file system with Transmission 4, or fails
// the test saying how to make one.
func Transmission4Root(t testing.TB) string {
	t.Helper()
	root := os.Getenv("KADTRACKER_TRANSMISSION4_ROOT")
	if root == "" {
		root = Transmission4RootDefault
	}
	if _, err := os.Stat(filepath.Join(root, "usr/bin/transmission-daemon")); err != nil {
		t.Fatalf("Transmission 4 is needed in a Debian 13 root file system at %s (.ci/deps makes it: debootstrap --variant=minbase --include=transmission-daemon trixie %s): %v", root, root, err)
	}
	return root
}
