package localapi

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/kadtracker/kadtracker/records"
)

// fakeBackend is a Backend with canned answers that records what it was asked.
type fakeBackend struct {
	mu sync.Mutex
	// err, when set, is returned by every method.
	err error
	// block, when set, makes every method wait for it to close or for ctx.
	block chan struct{}
	// entered, when set, gets a value each time a method is called.
	entered chan struct{}

	status  Status
	stored  int
	peers   []Peer
	records []Record
	routing []RoutingPeer

	announced []announceCall
	withdrawn []records.Key
	looked    []peersCall
}

type announceCall struct {
	Key  records.Key
	Port uint16
	Seed bool
}

type peersCall struct {
	Key  records.Key
	Want int
}

func (f *fakeBackend) wait(ctx context.Context) error {
	if f.entered != nil {
		f.entered <- struct{}{}
	}
	if f.block != nil {
		select {
		case <-f.block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return f.err
}

func (f *fakeBackend) Status(ctx context.Context) (Status, error) {
	if err := f.wait(ctx); err != nil {
		return Status{}, err
	}
	return f.status, nil
}

func (f *fakeBackend) Announce(ctx context.Context, key records.Key, port uint16, seed bool) (AnnounceResult, error) {
	if err := f.wait(ctx); err != nil {
		return AnnounceResult{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.announced = append(f.announced, announceCall{key, port, seed})
	return AnnounceResult{StoredOn: f.stored, Targets: 8}, nil
}

func (f *fakeBackend) Withdraw(ctx context.Context, key records.Key) error {
	if err := f.wait(ctx); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.withdrawn = append(f.withdrawn, key)
	return nil
}

func (f *fakeBackend) Peers(ctx context.Context, key records.Key, want int) (PeersResult, error) {
	if err := f.wait(ctx); err != nil {
		return PeersResult{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.looked = append(f.looked, peersCall{key, want})
	return PeersResult{
		Peers: f.peers, Seeds: 1, Leechers: 2,
		Stats: LookupStats{Hops: 3, Queried: 10, Asked: 8, Answered: 7, DurationMS: 12.5},
	}, nil
}

func (f *fakeBackend) Records(ctx context.Context) ([]Record, error) {
	if err := f.wait(ctx); err != nil {
		return nil, err
	}
	return f.records, nil
}

func (f *fakeBackend) Routing(ctx context.Context) ([]RoutingPeer, error) {
	if err := f.wait(ctx); err != nil {
		return nil, err
	}
	return f.routing, nil
}

const (
	hexV1 = "0123456789abcdef0123456789abcdef01234567"
	hexV2 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
)

func mustKey(t testing.TB, s string) records.Key {
	t.Helper()
	k, err := records.ParseKey(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// socketPath returns a path for a socket in a fresh directory short enough
// for sun_path (t.TempDir can exceed it).
func socketPath(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "kt")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "api.sock")
}

// serve runs a Server for b on a fresh socket until the test ends, and
// checks that Serve returns cleanly and removes the socket.
func serve(t testing.TB, b Backend, configure ...func(*Server)) (path string, stop func()) {
	t.Helper()
	path = socketPath(t)
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer(b, Options{})
	for _, f := range configure {
		f(s)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Serve: %v", err)
				}
			case <-time.After(20 * time.Second):
				t.Errorf("Serve did not return after cancel")
			}
			if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("socket file still there after Serve returned: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return path, stop
}

// rawClient is a plain HTTP client on a unix socket, for requests the typed
// Client never makes.
func dialUnix(path string) func(ctx context.Context, _, _ string) (net.Conn, error) {
	return func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}
}
