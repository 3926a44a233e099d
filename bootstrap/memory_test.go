package bootstrap

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// testPeers makes n peers with distinct IDs (derived from a fixed seed) and
// one loopback address each.
func testPeers(t testing.TB, n int) []peer.AddrInfo {
	t.Helper()
	infos := make([]peer.AddrInfo, n)
	for i := range infos {
		seed := make([]byte, 32)
		seed[0], seed[1] = byte(i), byte(i>>8)
		_, pub, err := crypto.GenerateEd25519Key(&fixedReader{seed})
		if err != nil {
			t.Fatal(err)
		}
		id, err := peer.IDFromPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		infos[i] = peer.AddrInfo{ID: id, Addrs: []ma.Multiaddr{mustAddr(t, fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", 10000+i))}}
	}
	return infos
}

// fixedReader yields its bytes, then zeros: a deterministic key source.
type fixedReader struct{ b []byte }

func (r *fixedReader) Read(p []byte) (int, error) {
	n := copy(p, r.b)
	r.b = r.b[n:]
	clear(p[n:])
	return len(p), nil
}

func TestMemoryRoundTrip(t *testing.T) {
	path := MemoryPath(t.TempDir())
	m, err := LoadMemory(path)
	if err != nil {
		t.Fatalf("LoadMemory(missing): %v", err)
	}
	if got := m.Peers(); len(got) != 0 {
		t.Fatalf("missing file gave peers %v", got)
	}

	peers := testPeers(t, 3)
	peers[1].Addrs = append(peers[1].Addrs, mustAddr(t, "/ip6/::1/udp/4001/quic-v1"))
	noAddrs := peer.AddrInfo{ID: testPeers(t, 4)[3].ID}
	in := append([]peer.AddrInfo{noAddrs}, peers...)
	in = append(in, peers[0]) // a duplicate
	if err := m.Save(in); err != nil {
		t.Fatalf("Save: %v", err)
	}
	if got := m.Peers(); !equalInfos(got, peers) {
		t.Errorf("Peers after Save = %v, want %v", got, peers)
	}

	m2, err := LoadMemory(path)
	if err != nil {
		t.Fatalf("LoadMemory: %v", err)
	}
	if got := m2.Peers(); !equalInfos(got, peers) {
		t.Errorf("Peers after reload = %v, want %v", got, peers)
	}

	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if mode := fi.Mode().Perm(); mode != 0o600 {
		t.Errorf("mode %v, want 0600", mode)
	}

	// Peers returns a copy.
	got := m2.Peers()
	got[0].Addrs[0] = nil
	if m2.Peers()[0].Addrs[0] == nil {
		t.Error("Peers shares its slices with the Memory")
	}
}

func TestMemoryCap(t *testing.T) {
	path := MemoryPath(t.TempDir())
	m, _ := LoadMemory(path)
	peers := testPeers(t, MaxRemembered+10)
	for i := range MaxRememberedAddrs + 5 {
		peers[0].Addrs = append(peers[0].Addrs, mustAddr(t, fmt.Sprintf("/ip4/10.0.0.1/tcp/%d", i+1)))
	}
	if err := m.Save(peers); err != nil {
		t.Fatal(err)
	}
	m2, err := LoadMemory(path)
	if err != nil {
		t.Fatal(err)
	}
	got := m2.Peers()
	if len(got) != MaxRemembered {
		t.Fatalf("kept %d peers, want %d", len(got), MaxRemembered)
	}
	if got[0].ID != peers[0].ID || got[MaxRemembered-1].ID != peers[MaxRemembered-1].ID {
		t.Error("the cap did not keep the first peers in order")
	}
	if n := len(got[0].Addrs); n != MaxRememberedAddrs {
		t.Errorf("kept %d addresses, want %d", n, MaxRememberedAddrs)
	}

	// A file over the cap (hand-edited, or from another version) is capped on load.
	writeMemoryFile(t, path, peers)
	m3, err := LoadMemory(path)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(m3.Peers()); n != MaxRemembered {
		t.Errorf("loaded %d peers, want %d", n, MaxRemembered)
	}
}

func writeMemoryFile(t *testing.T, path string, peers []peer.AddrInfo) {
	t.Helper()
	var b strings.Builder
	b.WriteString(`{"version":1,"peers":[`)
	for i, p := range peers {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"id":%q,"addrs":[%q]}`, p.ID, p.Addrs[0])
	}
	b.WriteString("]}")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestMemoryCorrupt(t *testing.T) {
	for name, content := range map[string]string{
		"not json":       "{peers: nope",
		"truncated":      `{"version":1,"peers":[{"id":"` + idA + `","addrs":["/ip4/1.2.3.4/tcp/1"`,
		"trailing data":  `{"version":1,"peers":[]} {}`,
		"wrong version":  `{"version":2,"peers":[]}`,
		"no version":     `{"peers":[]}`,
		"bad peer id":    `{"version":1,"peers":[{"id":"Qmnope","addrs":["/ip4/1.2.3.4/tcp/1"]}]}`,
		"bad multiaddr":  `{"version":1,"peers":[{"id":"` + idA + `","addrs":["1.2.3.4:1"]}]}`,
		"wrong type":     `{"version":1,"peers":{}}`,
		"empty file":     "",
		"too large file": `{"version":1,"peers":[]}` + strings.Repeat(" ", maxMemorySize),
	} {
		t.Run(name, func(t *testing.T) {
			path := MemoryPath(t.TempDir())
			if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			m, err := LoadMemory(path)
			if !errors.Is(err, ErrCorruptMemory) {
				t.Fatalf("LoadMemory error %v, want ErrCorruptMemory", err)
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name the file", err)
			}
			// The caller may ignore the error and go on with an empty Memory.
			if m == nil || len(m.Peers()) != 0 {
				t.Fatalf("LoadMemory returned %v, want an empty Memory", m)
			}
			peers := testPeers(t, 2)
			if err := m.Save(peers); err != nil {
				t.Fatalf("Save over a corrupt file: %v", err)
			}
			if m2, err := LoadMemory(path); err != nil || !equalInfos(m2.Peers(), peers) {
				t.Errorf("after Save: %v, %v; want %v", m2.Peers(), err, peers)
			}
		})
	}
}

// TestMemoryAtomicSave checks that a reader never sees a partial file, and
// that no temporary files are left behind.
func TestMemoryAtomicSave(t *testing.T) {
	dir := t.TempDir()
	path := MemoryPath(dir)
	m, _ := LoadMemory(path)
	small, large := testPeers(t, 1), testPeers(t, MaxRemembered)
	if err := m.Save(small); err != nil {
		t.Fatal(err)
	}

	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Go(func() {
		for i := range 50 {
			if err := m.Save([][]peer.AddrInfo{small, large}[i%2]); err != nil {
				t.Error(err)
			}
		}
		close(done)
	})
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			m2, err := LoadMemory(path)
			if err != nil {
				t.Errorf("concurrent LoadMemory: %v", err)
				return
			}
			if n := len(m2.Peers()); n != len(small) && n != len(large) {
				t.Errorf("read %d peers, want %d or %d", n, len(small), len(large))
				return
			}
		}
	})
	wg.Wait()

	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != MemoryFile {
		t.Errorf("directory holds %v, want only %s", entries, MemoryFile)
	}
}

// TestMemorySaveFailure: a Save that cannot rename leaves the old state and
// no temporary file.
func TestMemorySaveFailure(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "peers")
	// A non-empty directory where the file should be: reads and the final
	// rename fail (even for root, unlike a permission test).
	if err := os.MkdirAll(filepath.Join(path, "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	m, err := LoadMemory(path)
	if err == nil || errors.Is(err, ErrCorruptMemory) {
		t.Errorf("LoadMemory(directory) error %v, want a read error", err)
	}
	if err := m.Save(testPeers(t, 2)); err == nil {
		t.Fatal("Save over a directory succeeded")
	}
	if n := len(m.Peers()); n != 0 {
		t.Errorf("failed Save changed Peers to %d entries", n)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %v after a failed Save, want only the peers directory", entries)
	}

	// A missing directory is an error, not created behind the caller's back.
	m, err = LoadMemory(filepath.Join(dir, "missing", MemoryFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Save(testPeers(t, 1)); err == nil {
		t.Error("Save into a missing directory succeeded")
	}
}
