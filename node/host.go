package node

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
)

// identityFile holds the node's libp2p private key in DataDir.
const identityFile = "identity.key"

// loadIdentity reads the node key from dir, creating it on first run. An
// empty dir gives a fresh key that lives only as long as the process.
func loadIdentity(dir string) (crypto.PrivKey, error) {
	if dir == "" {
		k, _, err := crypto.GenerateEd25519Key(nil)
		return k, err
	}
	path := filepath.Join(dir, identityFile)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		k, err := crypto.UnmarshalPrivateKey(b)
		if err != nil {
			return nil, fmt.Errorf("node: identity %s: %w", path, err)
		}
		return k, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("node: identity: %w", err)
	}
	k, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		return nil, err
	}
	b, err = crypto.MarshalPrivateKey(k)
	if err != nil {
		return nil, err
	}
	// Write then rename, so a crash never leaves a half-written key.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return nil, fmt.Errorf("node: identity: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return nil, fmt.Errorf("node: identity: %w", err)
	}
	return k, nil
}

// newHost builds the libp2p host: TCP and QUIC (libp2p's defaults), the
// given identity, no port mapping and no relay service, so nothing is
// announced or dialled that the user did not ask for.
func newHost(cfg Config, key crypto.PrivKey) (host.Host, error) {
	h, err := libp2p.New(
		libp2p.Identity(key),
		libp2p.ListenAddrs(cfg.ListenAddrs...),
		libp2p.DisableRelay(),
		libp2p.UserAgent("kadtracker"),
	)
	if err != nil {
		return nil, fmt.Errorf("node: libp2p host: %w", err)
	}
	return h, nil
}
