package realclients

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// delugeHostID is the daemon's id in deluge-web's connection manager.
const delugeHostID = "6b61647472616365726b616474726163"

// startDeluge runs deluged and deluge-web in one config dir: the daemon's
// core.conf keeps it on loopback with DHT, LSD, PEX (utpex), UPnP and
// NAT-PMP off; deluge-web lists the daemon (hostlist.conf) but is not
// connected to it, as a fresh deluge-web is not.
func (c *Client) startDeluge(t testing.TB, dir string, apiPort int, o Options) {
	t.Helper()
	c.Endpoint = "http://127.0.0.1:" + strconv.Itoa(apiPort) + "/json"
	conf := t.TempDir()
	daemonPort := FreePort(t)
	localPass := rand.Text()
	pass := o.Password
	if pass == "" {
		pass = "deluge"
	}
	c.Password = pass
	salt := rand.Text()
	sum := sha1.Sum([]byte(salt + pass))
	header := `{"file": 1, "format": 1}`
	files := map[string]any{
		"core.conf": map[string]any{
			"listen_ports": []int{c.PeerPort, c.PeerPort}, "random_port": false,
			"listen_interface": "127.0.0.1", "outgoing_interface": "lo",
			"dht": false, "lsd": false, "utpex": false, "upnp": false, "natpmp": false,
			"new_release_check": false, "send_info": false, "allow_remote": false, "daemon_port": daemonPort,
			"download_location": dir, "move_completed": false, "copy_torrent_file": false,
			"max_active_seeding": -1, "max_active_downloading": -1, "max_active_limit": -1,
			"stop_seed_at_ratio": false, "geoip_db_location": filepath.Join(conf, "no-geoip"),
			"enabled_plugins": []string{},
		},
		"web.conf": map[string]any{
			"pwd_salt": salt, "pwd_sha1": hex.EncodeToString(sum[:]), "first_login": false,
			"default_daemon": "", "interface": "127.0.0.1", "port": apiPort, "https": false,
		},
		"hostlist.conf": map[string]any{
			"hosts": [][]any{{delugeHostID, "127.0.0.1", daemonPort, "localclient", localPass}},
		},
	}
	versions := map[string]string{"web.conf": `{"file": 2, "format": 1}`, "hostlist.conf": `{"file": 3, "format": 1}`}
	for name, v := range files {
		b, _ := json.MarshalIndent(v, "", "  ")
		h := header
		if x, ok := versions[name]; ok {
			h = x
		}
		if err := os.WriteFile(filepath.Join(conf, name), append([]byte(h), b...), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(conf, "auth"), []byte("localclient:"+localPass+":10\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c.host = delugeHostID
	c.run(t, "deluged", "--config", conf, "--do-not-daemonize", "--port", strconv.Itoa(daemonPort),
		"--ui-interface", "127.0.0.1", "--interface", "127.0.0.1", "--loglevel", "warning")
	c.run(t, "deluge-web", "--config", conf, "--do-not-daemonize", "--port", strconv.Itoa(apiPort),
		"--interface", "127.0.0.1", "--no-ssl", "--loglevel", "warning")
}

// delugeCall calls deluge-web's JSON-RPC, logging in and connecting
// deluge-web to the daemon when it must.
func (c *Client) delugeCall(ctx context.Context, method string, params []any, out any) error {
	for try := 0; ; try++ {
		result, code, err := c.delugeOnce(ctx, method, params)
		if err != nil {
			return err
		}
		switch {
		case code == 1 && try < 2: // not authenticated
			if _, _, err := c.delugeOnce(ctx, "auth.login", []any{c.Password}); err != nil {
				return err
			}
			continue
		case code == 2 && try < 2: // unknown method: not connected to the daemon yet
			if err := c.delugeConnect(ctx); err != nil {
				return err
			}
			continue
		case code != 0:
			return fmt.Errorf("deluge %s: error %d: %s", method, code, result)
		}
		if out == nil {
			return nil
		}
		return json.Unmarshal(result, out)
	}
}

func (c *Client) delugeConnect(ctx context.Context) error {
	// web.connect is deluge-web's own: never "unknown method".
	return c.delugeCall(ctx, "web.connect", []any{c.host}, nil)
}

// DelugeDisconnect disconnects deluge-web from its daemon, as it is after
// it starts.
func (c *Client) DelugeDisconnect(t testing.TB) {
	t.Helper()
	if err := c.delugeCall(t.Context(), "web.disconnect", []any{}, nil); err != nil {
		t.Fatal(err)
	}
}

// delugeOnce is one call: the result, or the error's code and message.
func (c *Client) delugeOnce(ctx context.Context, method string, params []any) (json.RawMessage, int, error) {
	b, _ := json.Marshal(map[string]any{"method": method, "params": params, "id": 1})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, c.Endpoint, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	c.mu.Lock()
	if c.cookie != nil {
		req.AddCookie(c.cookie)
	}
	c.mu.Unlock()
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	for _, k := range resp.Cookies() {
		if k.Name == "_session_id" {
			c.mu.Lock()
			c.cookie = &http.Cookie{Name: k.Name, Value: k.Value}
			c.mu.Unlock()
		}
	}
	body, _ := io.ReadAll(resp.Body)
	var r struct {
		Result json.RawMessage
		Error  *struct {
			Code    int
			Message string
		}
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, 0, fmt.Errorf("deluge %s: HTTP %d %s: %w", method, resp.StatusCode, body, err)
	}
	if r.Error != nil {
		return json.RawMessage(strconv.Quote(r.Error.Message)), r.Error.Code, nil
	}
	return r.Result, 0, nil
}
