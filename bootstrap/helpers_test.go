package bootstrap

import (
	"testing"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// newHost starts a libp2p host with default security and transports,
// listening on loopback TCP only, closed at the end of the test.
func newHost(t testing.TB) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatalf("libp2p.New: %v", err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func addrInfo(h host.Host) peer.AddrInfo {
	return peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()}
}

func mustAddr(t testing.TB, s string) ma.Multiaddr {
	t.Helper()
	a, err := ma.NewMultiaddr(s)
	if err != nil {
		t.Fatalf("multiaddr %q: %v", s, err)
	}
	return a
}

// Fixed, valid peer IDs (Ed25519 identity multihashes, base58).
const (
	idA = "12D3KooWLdeLnMp9hUpwoHTxeLbLxYXQdbmG9WR8UfVTTTT1QJMw"
	idB = "12D3KooWEAKU2n2JrCY94QXoX9rWYMvbpG5kCwtYfCjcNUcbmXFt"
)
