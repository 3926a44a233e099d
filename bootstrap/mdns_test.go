package bootstrap

import (
	"crypto/rand"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

func TestMDNS(t *testing.T) {
	// A service name of our own, so nodes running elsewhere on the LAN (or a
	// parallel run of this test) do not interfere.
	service := "kadtracker-test-" + strings.ToLower(rand.Text()[:12])
	a, b := newHost(t), newHost(t)

	type seen struct {
		mu    sync.Mutex
		peers map[peer.ID]peer.AddrInfo
	}
	watch := func(h interface{ ID() peer.ID }) (*seen, func(peer.AddrInfo)) {
		s := &seen{peers: make(map[peer.ID]peer.AddrInfo)}
		return s, func(info peer.AddrInfo) {
			s.mu.Lock()
			defer s.mu.Unlock()
			if info.ID == h.ID() {
				t.Errorf("%s found itself", h.ID())
			}
			s.peers[info.ID] = info
		}
	}
	seenA, foundA := watch(a)
	seenB, foundB := watch(b)

	ca, err := StartMDNS(a, service, foundA)
	if err != nil {
		t.Fatalf("StartMDNS: %v", err)
	}
	defer ca.Close()
	cb, err := StartMDNS(b, service, foundB)
	if err != nil {
		t.Fatalf("StartMDNS: %v", err)
	}
	defer cb.Close()

	has := func(s *seen, id peer.ID) bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		info, ok := s.peers[id]
		return ok && len(info.Addrs) > 0
	}
	deadline := time.Now().Add(20 * time.Second)
	for !has(seenA, b.ID()) || !has(seenB, a.ID()) {
		if time.Now().After(deadline) {
			t.Fatalf("after 20s: a found b: %v, b found a: %v", has(seenA, b.ID()), has(seenB, a.ID()))
		}
		time.Sleep(50 * time.Millisecond)
	}

	// What mDNS found is dialable.
	seenA.mu.Lock()
	info := seenA.peers[b.ID()]
	seenA.mu.Unlock()
	if n, err := Connect(t.Context(), a, []peer.AddrInfo{info}, 5*time.Second); n != 1 {
		t.Errorf("Connect to the peer mDNS found: %v", err)
	}

	// Close is idempotent.
	if err := ca.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := ca.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestMDNSCloseStopsCallbacks(t *testing.T) {
	h := newHost(t)
	var (
		mu     sync.Mutex
		closed bool
	)
	c, err := StartMDNS(h, "", func(peer.AddrInfo) {
		mu.Lock()
		defer mu.Unlock()
		if closed {
			t.Error("found called after Close returned")
		}
	})
	if err != nil {
		t.Fatalf("StartMDNS: %v", err)
	}
	d := c.(*mdnsDiscovery)
	// Feed it as the mdns service would, before and after Close.
	other := peer.AddrInfo{ID: testPeers(t, 1)[0].ID}
	d.HandlePeerFound(other)
	d.HandlePeerFound(peer.AddrInfo{ID: h.ID()})
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	closed = true
	mu.Unlock()
	for range foundQueue * 2 {
		d.HandlePeerFound(other) // must neither block nor call found
	}
}

func TestStartMDNSNilCallback(t *testing.T) {
	if _, err := StartMDNS(newHost(t), "", nil); err == nil {
		t.Error("StartMDNS with a nil callback succeeded")
	}
}

// TestMDNSNoLeak: Close leaves no goroutine of StartMDNS behind.
func TestMDNSNoLeak(t *testing.T) {
	h := newHost(t)
	time.Sleep(100 * time.Millisecond) // let the host's own start-up settle
	before := runtime.NumGoroutine()
	for range 3 {
		c, err := StartMDNS(h, "kadtracker-test-"+strings.ToLower(rand.Text()[:12]), func(peer.AddrInfo) {})
		if err != nil {
			t.Fatalf("StartMDNS: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines before, %d after Close:\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
}
