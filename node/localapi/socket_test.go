package localapi

import (
	"bufio"
	"context"
	"errors"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestClientEndpoints(t *testing.T) {
	b := fullBackend()
	b.records[0].Infohash = mustKey(t, hexV2)
	path, _ := serve(t, b)
	c := NewClient(path)
	ctx := t.Context()
	k1 := mustKey(t, hexV1)

	st, err := c.Status(ctx)
	if err != nil || !reflect.DeepEqual(st, b.status) {
		t.Errorf("Status = %+v, %v; want %+v", st, err, b.status)
	}
	ar, err := c.Announce(ctx, k1, 6881, true)
	if want := (AnnounceResult{StoredOn: 5, Targets: 8}); err != nil || ar != want {
		t.Errorf("Announce = %+v, %v; want %+v", ar, err, want)
	}
	if want := []announceCall{{k1, 6881, true}}; !reflect.DeepEqual(b.announced, want) {
		t.Errorf("backend got %v, want %v", b.announced, want)
	}
	if err := c.Withdraw(ctx, k1); err != nil || len(b.withdrawn) != 1 || b.withdrawn[0] != k1 {
		t.Errorf("Withdraw: %v; backend got %v", err, b.withdrawn)
	}
	pr, err := c.Peers(ctx, k1, 0)
	if err != nil || !reflect.DeepEqual(pr.Peers, b.peers) || pr.Seeds != 1 || pr.Leechers != 2 || pr.Stats.DurationMS != 12.5 {
		t.Errorf("Peers = %+v, %v", pr, err)
	}
	if _, err := c.Peers(ctx, k1, 3); err != nil {
		t.Fatal(err)
	}
	if want := []peersCall{{k1, DefaultWant}, {k1, 3}}; !reflect.DeepEqual(b.looked, want) {
		t.Errorf("lookups %v, want %v", b.looked, want)
	}
	recs, err := c.Records(ctx)
	if err != nil || !reflect.DeepEqual(recs, b.records) {
		t.Errorf("Records = %+v, %v; want %+v", recs, err, b.records)
	}
	rt, err := c.Routing(ctx)
	want := []RoutingPeer{b.routing[0], {PeerID: "12D3KooWB", Addrs: []string{}, CPL: 3}}
	if err != nil || !reflect.DeepEqual(rt, want) {
		t.Errorf("Routing = %+v, %v; want %+v", rt, err, want)
	}
}

func TestClientErrors(t *testing.T) {
	b := fullBackend()
	b.err = errors.New("node: closed")
	path, _ := serve(t, b)
	c := NewClient(path)
	_, err := c.Status(t.Context())
	var ae *APIError
	if !errors.As(err, &ae) || ae.StatusCode != 500 || err.Error() != "node: closed" {
		t.Errorf("Status error = %#v, want APIError 500 %q", err, "node: closed")
	}
	if errors.Is(err, ErrNoDaemon) {
		t.Error("a backend error matches ErrNoDaemon")
	}
}

func TestClientNoDaemon(t *testing.T) {
	missing := socketPath(t)
	stale := staleSocket(t)
	for name, path := range map[string]string{"missing": missing, "stale": stale, "no dir": filepath.Join(missing, "x", "kt.sock")} {
		t.Run(name, func(t *testing.T) {
			_, err := NewClient(path).Status(t.Context())
			if !errors.Is(err, ErrNoDaemon) {
				t.Fatalf("err = %v, want ErrNoDaemon", err)
			}
			if !errors.Is(err, syscall.ENOENT) && !errors.Is(err, syscall.ECONNREFUSED) {
				t.Errorf("err = %v does not wrap the dial error", err)
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("err = %v does not name the socket", err)
			}
		})
	}
}

// staleSocket leaves a socket file that nobody listens on, as a killed
// daemon does.
func staleSocket(t testing.TB) string {
	t.Helper()
	path := socketPath(t)
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	if fi, err := os.Lstat(path); err != nil || fi.Mode().Type() != fs.ModeSocket {
		t.Fatalf("stale socket not left behind: %v", err)
	}
	return path
}

func TestListenPermissions(t *testing.T) {
	path := filepath.Join(filepath.Dir(socketPath(t)), "new", "api.sock")
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, want a socket with 0600", fi.Mode())
	}
	di, err := os.Stat(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if di.Mode().Perm() != 0o700 {
		t.Errorf("created directory mode %v, want 0700", di.Mode().Perm())
	}
}

func TestListenReplacesStaleSocket(t *testing.T) {
	path := staleSocket(t)
	ln, err := Listen(path)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	ln.Close()
}

func TestListenRefusesLiveDaemon(t *testing.T) {
	path, _ := serve(t, fullBackend())
	_, err := Listen(path)
	if !errors.Is(err, ErrDaemonRunning) || !strings.Contains(err.Error(), path) {
		t.Fatalf("Listen on a live socket: %v, want ErrDaemonRunning naming the path", err)
	}
	if _, err := NewClient(path).Status(t.Context()); err != nil {
		t.Errorf("the live daemon stopped answering: %v", err)
	}
}

func TestListenKeepsOtherFiles(t *testing.T) {
	dir := filepath.Dir(socketPath(t))
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(staleSocket(t), link); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(dir, "dir")
	if err := os.Mkdir(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{file, link, sub} {
		if _, err := Listen(path); err == nil || !strings.Contains(err.Error(), "not a socket") {
			t.Errorf("Listen(%s): %v, want a not-a-socket error", filepath.Base(path), err)
		}
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "precious" {
		t.Errorf("file changed: %q, %v", b, err)
	}
	if _, err := os.Lstat(link); err != nil {
		t.Errorf("symlink removed: %v", err)
	}
}

func TestListenLongPath(t *testing.T) {
	path := filepath.Join(filepath.Dir(socketPath(t)), strings.Repeat("d", 120), "api.sock")
	if _, err := Listen(path); err == nil || !strings.Contains(err.Error(), "too long") {
		t.Errorf("Listen with a %d-byte path: %v, want a too-long error", len(path), err)
	}
}

// TestGarbage writes bytes that are not HTTP to the socket; the server must
// answer or hang up, and keep serving.
func TestGarbage(t *testing.T) {
	path, _ := serve(t, fullBackend())
	inputs := []string{
		"\x00\x01\x02\xff\xfe garbage\r\n\r\n",
		"GET /v1/status HTTP/9.9\r\n\r\n",
		"GET /v1/status HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
		"POST /v1/announce HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
		"GET /v1/status HTTP/1.1\r\nHost: x\r\nX: " + strings.Repeat("a", 1<<20) + "\r\n\r\n",
		"half a request",
		"",
	}
	for _, in := range inputs {
		conn, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		go func() {
			conn.Write([]byte(in))
			conn.(*net.UnixConn).CloseWrite()
		}()
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			if resp.StatusCode < 400 {
				t.Errorf("%.30q: status %d", in, resp.StatusCode)
			}
		}
		conn.Close()
	}
	if _, err := NewClient(path).Status(t.Context()); err != nil {
		t.Errorf("server stopped answering after garbage: %v", err)
	}
}

func TestShutdownWaitsForRequests(t *testing.T) {
	b := fullBackend()
	b.block = make(chan struct{})
	b.entered = make(chan struct{}, 1)
	path, stop := serve(t, b)
	done := make(chan error, 1)
	go func() {
		_, err := NewClient(path).Status(context.Background())
		done <- err
	}()
	<-b.entered
	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	time.Sleep(50 * time.Millisecond)
	select {
	case <-stopped:
		t.Fatal("Serve returned with a request in flight")
	default:
	}
	close(b.block)
	if err := <-done; err != nil {
		t.Errorf("request in flight at shutdown failed: %v", err)
	}
	<-stopped
}

func TestShutdownCancelsStuckRequests(t *testing.T) {
	b := fullBackend()
	b.block = make(chan struct{}) // never closed
	b.entered = make(chan struct{}, 1)
	path, stop := serve(t, b, func(s *Server) { s.ShutdownTimeout = 50 * time.Millisecond })
	done := make(chan error, 1)
	go func() {
		_, err := NewClient(path).Status(context.Background())
		done <- err
	}()
	<-b.entered
	start := time.Now()
	stop()
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("shutdown took %v", d)
	}
	if err := <-done; err == nil {
		t.Error("a stuck request succeeded")
	}
}

// The socket is made 0600 in a private directory before it appears at its
// path; the directory goes away, and Close removes the socket, but not one
// that has taken its place.
func TestListenLeavesNothingBehind(t *testing.T) {
	path := socketPath(t)
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(filepath.Dir(path)); len(ents) != 1 {
		t.Errorf("beside the socket: %v, want only it", ents)
	}
	if ln.Addr().String() != path {
		t.Errorf("Addr = %s, want %s", ln.Addr(), path)
	}
	ln.Close()
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket left after Close: %v", err)
	}

	ln, err = Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	other, err := Listen(path) // another daemon's, after ours was removed
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	ln.Close()
	if _, err := os.Lstat(path); err != nil {
		t.Errorf("Close removed a socket that was not its own: %v", err)
	}
}
