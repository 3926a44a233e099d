package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/kadtracker/kadtracker/node/localapi"
	"github.com/kadtracker/kadtracker/records"
)

// shortDir is a fresh temporary directory with a path short enough for a
// unix socket (t.TempDir's can exceed sun_path).
func shortDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "kt")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// env is a fake environment for realMain and parse.
type env map[string]string

func (e env) get(name string) string { return e[name] }

// cli runs the command line in-process.
func cli(t testing.TB, e env, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	code = realMain(t.Context(), args, &out, &errb, e.get)
	return out.String(), errb.String(), code
}

// fakeBackend answers the local API with canned data and remembers what it
// was asked; read those fields after the request returned.
type fakeBackend struct {
	mu  sync.Mutex
	err error

	status    localapi.Status
	announce  localapi.AnnounceResult
	peers     localapi.PeersResult
	records   []localapi.Record
	routing   []localapi.RoutingPeer
	gotKey    records.Key
	gotPort   uint16
	gotSeed   bool
	gotWant   int
	withdrawn records.Key
}

func (f *fakeBackend) Status(context.Context) (localapi.Status, error) { return f.status, f.err }

func (f *fakeBackend) Announce(_ context.Context, key records.Key, port uint16, seed bool) (localapi.AnnounceResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gotKey, f.gotPort, f.gotSeed = key, port, seed
	return f.announce, f.err
}

func (f *fakeBackend) Withdraw(_ context.Context, key records.Key) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.withdrawn = key
	return f.err
}

func (f *fakeBackend) Peers(_ context.Context, key records.Key, want int) (localapi.PeersResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gotKey, f.gotWant = key, want
	return f.peers, f.err
}

func (f *fakeBackend) Records(context.Context) ([]localapi.Record, error) { return f.records, f.err }

func (f *fakeBackend) Routing(context.Context) ([]localapi.RoutingPeer, error) {
	return f.routing, f.err
}

// serveAPI serves b on a socket in a fresh directory until the test ends.
func serveAPI(t testing.TB, b localapi.Backend) (socket string) {
	t.Helper()
	socket = filepath.Join(shortDir(t), "kadtracker.sock")
	ln, err := localapi.Listen(socket)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- localapi.NewServer(b, localapi.Options{}).Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Serve did not stop")
		}
	})
	return socket
}
