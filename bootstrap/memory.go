package bootstrap

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// Caps and names for remembered peers.
const (
	// MemoryFile is the file name of the peer memory inside the data directory.
	MemoryFile = "peers.json"
	// MaxRemembered is the most peers Save keeps; the rest are dropped.
	MaxRemembered = 64
	// MaxRememberedAddrs is the most addresses Save keeps per peer.
	MaxRememberedAddrs = 16
	// maxMemorySize bounds what LoadMemory reads; a file we wrote is far smaller.
	maxMemorySize = 1 << 20

	memoryVersion = 1
)

// ErrCorruptMemory is wrapped by LoadMemory's error when the file exists but
// cannot be used. The caller may log it and carry on with the empty Memory.
var ErrCorruptMemory = errors.New("bootstrap: corrupt peer memory")

// Memory is the set of peers remembered from the last run, kept in a JSON
// file. It is safe for concurrent use.
type Memory struct {
	path string

	mu    sync.Mutex // serialises Save, guards peers
	peers []peer.AddrInfo
}

// The file format. Versioned so a later layout can be told apart.
type memoryJSON struct {
	Version int          `json:"version"`
	Peers   []memoryPeer `json:"peers"`
}

type memoryPeer struct {
	ID    string   `json:"id"`
	Addrs []string `json:"addrs"`
}

// MemoryPath is the peer memory's path inside dataDir.
func MemoryPath(dataDir string) string { return filepath.Join(dataDir, MemoryFile) }

// LoadMemory reads the peer memory at path. It always returns a usable
// Memory: a missing file gives an empty one and no error; a file that cannot
// be read or parsed gives an empty one and an error (wrapping
// ErrCorruptMemory when the content is bad), which the caller may ignore. The
// next Save replaces the file either way.
func LoadMemory(path string) (*Memory, error) {
	m := &Memory{path: path}
	data, err := readLimited(path, maxMemorySize)
	if errors.Is(err, fs.ErrNotExist) {
		return m, nil
	}
	if err != nil {
		return m, fmt.Errorf("bootstrap: read peer memory: %w", err)
	}
	if len(data) > maxMemorySize {
		return m, fmt.Errorf("%w: %s: larger than %d bytes", ErrCorruptMemory, path, maxMemorySize)
	}
	peers, err := decodeMemory(data)
	if err != nil {
		return m, fmt.Errorf("%w: %s: %w", ErrCorruptMemory, path, err)
	}
	m.peers = peers
	return m, nil
}

// readLimited reads at most limit+1 bytes of the file at path, so a result
// longer than limit means the file is too large.
func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, limit+1))
}

func decodeMemory(data []byte) ([]peer.AddrInfo, error) {
	var f memoryJSON
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, err
	}
	if f.Version != memoryVersion {
		return nil, fmt.Errorf("version %d, want %d", f.Version, memoryVersion)
	}
	infos := make([]peer.AddrInfo, 0, min(len(f.Peers), MaxRemembered))
	for i, p := range f.Peers {
		id, err := peer.Decode(p.ID)
		if err != nil {
			return nil, fmt.Errorf("peer %d: %w", i, err)
		}
		info := peer.AddrInfo{ID: id}
		for _, s := range p.Addrs {
			a, err := ma.NewMultiaddr(s)
			if err != nil {
				return nil, fmt.Errorf("peer %d: address %q: %w", i, s, err)
			}
			info.Addrs = append(info.Addrs, a)
		}
		infos = append(infos, info)
	}
	return clean(infos), nil
}

// clean merges duplicates and applies the caps: no empty IDs, no peers
// without addresses, at most MaxRemembered peers of at most
// MaxRememberedAddrs addresses each, in the order given.
func clean(infos []peer.AddrInfo) []peer.AddrInfo {
	merged := merge(infos)
	out := merged[:0]
	for _, p := range merged {
		if p.ID == "" || len(p.Addrs) == 0 {
			continue
		}
		p.Addrs = p.Addrs[:min(len(p.Addrs), MaxRememberedAddrs)]
		out = append(out, p)
		if len(out) == MaxRemembered {
			break
		}
	}
	return out
}

// Path is the file this Memory reads and writes.
func (m *Memory) Path() string { return m.path }

// Peers returns the remembered peers, most preferred first. The caller owns
// the result.
func (m *Memory) Peers() []peer.AddrInfo {
	m.mu.Lock()
	defer m.mu.Unlock()
	return clonePeers(m.peers)
}

// Save replaces the remembered peers with peers, in the order given (put the
// best first): peers without addresses are skipped, duplicates merged, and
// the list is capped at MaxRemembered peers and MaxRememberedAddrs addresses
// per peer. The file is written atomically (a temporary file in the same
// directory, synced, then renamed) with mode 0600; on error the previous file
// and the in-memory list are unchanged.
func (m *Memory) Save(peers []peer.AddrInfo) error {
	peers = clean(peers)
	f := memoryJSON{Version: memoryVersion, Peers: make([]memoryPeer, 0, len(peers))}
	for _, p := range peers {
		mp := memoryPeer{ID: p.ID.String(), Addrs: make([]string, 0, len(p.Addrs))}
		for _, a := range p.Addrs {
			mp.Addrs = append(mp.Addrs, a.String())
		}
		f.Peers = append(f.Peers, mp)
	}
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("bootstrap: save peer memory: %w", err)
	}
	data = append(data, '\n')

	m.mu.Lock()
	defer m.mu.Unlock()
	if err := writeFileAtomic(m.path, data, 0o600); err != nil {
		return fmt.Errorf("bootstrap: save peer memory: %w", err)
	}
	m.peers = peers
	return nil
}

// writeFileAtomic writes data to a temporary file beside path and renames it
// over path, so a reader sees the old content or the new, never a mix.
func writeFileAtomic(path string, data []byte, perm fs.FileMode) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(perm); err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	// Make the rename durable. Best effort: not every file system can sync
	// a directory, and the data is already safe in either name.
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

func clonePeers(peers []peer.AddrInfo) []peer.AddrInfo {
	out := make([]peer.AddrInfo, len(peers))
	for i, p := range peers {
		out[i] = peer.AddrInfo{ID: p.ID, Addrs: slices.Clone(p.Addrs)}
	}
	return out
}
