package bootstrap

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// deadAddr is a loopback TCP address nothing listens on.
func deadAddr(t *testing.T) ma.Multiaddr {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return mustAddr(t, fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", port))
}

func TestConnect(t *testing.T) {
	h, a, b := newHost(t), newHost(t), newHost(t)
	dead := peer.AddrInfo{ID: newHost(t).ID(), Addrs: []ma.Multiaddr{deadAddr(t)}}

	peers := []peer.AddrInfo{
		addrInfo(a),
		addrInfo(h), // self: skipped, neither counted nor an error
		dead,
		addrInfo(b),
		{ID: a.ID(), Addrs: a.Addrs()}, // a again: merged
	}
	n, err := Connect(t.Context(), h, peers, 5*time.Second)
	if n != 2 {
		t.Errorf("connected = %d, want 2", n)
	}
	if err == nil {
		t.Fatal("no error for the dead peer")
	}
	t.Logf("Connect error: %v", err)
	if !strings.Contains(err.Error(), dead.ID.String()) {
		t.Errorf("error %q does not name the dead peer %s", err, dead.ID)
	}
	for _, p := range []peer.ID{a.ID(), b.ID()} {
		if strings.Contains(err.Error(), "connect "+p.String()) {
			t.Errorf("error %q names live peer %s", err, p)
		}
		if h.Network().Connectedness(p) != network.Connected {
			t.Errorf("not connected to %s", p)
		}
	}
	if h.Network().Connectedness(dead.ID) == network.Connected {
		t.Error("connected to the dead peer")
	}

	// Nothing to do is not an error.
	if n, err := Connect(t.Context(), h, nil, time.Second); n != 0 || err != nil {
		t.Errorf("Connect(nil) = %d, %v", n, err)
	}
	if n, err := Connect(t.Context(), h, []peer.AddrInfo{{}}, time.Second); n != 0 || !errors.Is(err, ErrEmptyPeerID) {
		t.Errorf("Connect(empty ID) = %d, %v; want ErrEmptyPeerID", n, err)
	}
}

// TestConnectTimeout: a peer that accepts TCP but never speaks fails after
// the per-dial timeout, not the caller's (longer) context.
func TestConnectTimeout(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	silent := peer.AddrInfo{
		ID:    newHost(t).ID(),
		Addrs: []ma.Multiaddr{mustAddr(t, "/ip4/127.0.0.1/tcp/"+fmt.Sprint(l.Addr().(*net.TCPAddr).Port))},
	}
	h, a := newHost(t), newHost(t)

	start := time.Now()
	n, err := Connect(t.Context(), h, []peer.AddrInfo{silent, addrInfo(a)}, 500*time.Millisecond)
	elapsed := time.Since(start)
	if n != 1 || err == nil || !strings.Contains(err.Error(), silent.ID.String()) {
		t.Errorf("Connect = %d, %v; want 1 and an error naming %s", n, err, silent.ID)
	}
	if elapsed > 10*time.Second {
		t.Errorf("Connect took %v with a 500ms dial timeout", elapsed)
	}
}

func TestConnectCanceled(t *testing.T) {
	h := newHost(t)
	peers := testPeers(t, MaxParallelDials*2)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	n, err := Connect(ctx, h, peers, time.Second)
	if n != 0 || !errors.Is(err, context.Canceled) {
		t.Errorf("Connect(canceled) = %d, %v; want 0, context.Canceled", n, err)
	}
}
