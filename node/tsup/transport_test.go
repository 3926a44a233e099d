package tsup

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"
)

// checkGoroutines fails the test if it leaves goroutines behind.
func checkGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > before {
			buf := make([]byte, 1<<16)
			t.Errorf("%d goroutines left running (had %d):\n%s", n, before, buf[:runtime.Stack(buf, true)])
		}
	})
}

func listenUDP(t *testing.T) *net.UDPConn {
	t.Helper()
	pc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc
}

// fastConfig shrinks the timers so real sockets converge in a second.
func fastConfig() Config {
	cfg := DefaultConfig()
	cfg.HelloInterval = 50 * time.Millisecond
	cfg.UpdateInterval = 150 * time.Millisecond
	cfg.DisconnectInterval = time.Second
	cfg.ReconnectInterval = time.Second
	cfg.MandateInterval = time.Minute
	cfg.PeerTTL = 5 * time.Second
	return cfg
}

func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v", what, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Three trackers on real loopback sockets: the first reads through Demux
// (as the UDP tracker front would), the second is fed by HandlePacket from
// its own read loop, the third runs Serve. One link is keyed. They
// converge; BEP 15 packets pass through Demux untouched.
func TestTransportLoopback(t *testing.T) {
	checkGoroutines(t)
	pcs := []*net.UDPConn{listenUDP(t), listenUDP(t), listenUDP(t)}
	addr := func(i int) netip.AddrPort { return pcs[i].LocalAddr().(*net.UDPAddr).AddrPort() }
	key := []byte("a key shared by trackers 0 and 2")
	var ts []*Transport
	for i := range pcs {
		cfg := fastConfig()
		for j := range pcs {
			if j != i {
				l := Link{Addr: addr(j), Name: "127.0.0.1"}
				if i+j == 2 {
					l.Key = key
				}
				cfg.Links = append(cfg.Links, l)
			}
		}
		tr, err := New(cfg, pcs[i])
		if err != nil {
			t.Fatal(err)
		}
		ts = append(ts, tr)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 3)

	// 0: a stand-in for the UDP tracker front reading the demuxed socket,
	// answering BEP 15 connects.
	front := ts[0].Demux()
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := front.ReadFrom(buf)
			if err != nil {
				done <- nil
				return
			}
			if n >= 16 && binary.BigEndian.Uint32(buf[8:]) == 0 { // connect
				resp := binary.BigEndian.AppendUint32(nil, 0)
				resp = append(resp, buf[12:16]...)
				resp = binary.BigEndian.AppendUint64(resp, 0x1234)
				front.WriteTo(resp, from)
			}
		}
	}()
	// 1: the hook a front calls for TSUP packets.
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := pcs[1].ReadFromUDPAddrPort(buf)
			if err != nil {
				done <- nil
				return
			}
			if IsPacket(buf[:n]) {
				ts[1].HandlePacket(from, buf[:n])
			}
		}
	}()
	// 2: a socket of TSUP's own.
	go func() { done <- ts[2].Serve(ctx) }()

	var all []Peer
	for i, tr := range ts {
		ps := []Peer{{Addr: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(7000+i)), Seed: i == 0}}
		all = append(all, ps...)
		if err := tr.SetOwn(testIH, ps); err != nil {
			t.Fatal(err)
		}
	}
	want := peerSet(all)
	start := time.Now()
	waitFor(t, 10*time.Second, "convergence", func() bool {
		for _, tr := range ts {
			got := tr.Peers(testIH)
			if len(got) != len(want) {
				return false
			}
		}
		return true
	})
	t.Logf("three trackers on loopback converged in %v", time.Since(start))
	for _, p := range ts[2].Peers(testIH) {
		if p.Addr.Port() == 7000 && (!p.Seed || p.Origin != Internal) {
			t.Fatalf("peer from tracker 0 arrived as %+v", p)
		}
	}
	if l := ts[2].Links(); !l[0].MAC || l[0].State != "connected" || !l[0].Extended {
		t.Fatalf("keyed link %+v", l[0])
	}

	// A BEP 15 connect to the shared socket reaches the front, not TSUP.
	client := listenUDP(t)
	req := binary.BigEndian.AppendUint64(nil, 0x41727101980)
	req = binary.BigEndian.AppendUint32(req, 0)
	req = binary.BigEndian.AppendUint32(req, 0xbeef)
	if _, err := client.WriteToUDPAddrPort(req, addr(0)); err != nil {
		t.Fatal(err)
	}
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64)
	n, err := client.Read(buf)
	if err != nil || n != 16 || binary.BigEndian.Uint32(buf[4:]) != 0xbeef {
		t.Fatalf("BEP 15 connect through Demux: %x %v", buf[:n], err)
	}

	// Tracker 1 goes away: the others see its link drop and keep the rest.
	ts[1].Close()
	pcs[1].Close()
	waitFor(t, 10*time.Second, "link drop", func() bool {
		return ts[0].Links()[0].State != "connected" && ts[2].Links()[1].State != "connected"
	})
	if s := ts[0].Stats(); s.PacketsIn == 0 || s.Dropped > s.PacketsIn {
		t.Fatalf("stats %+v", s)
	}

	for _, tr := range ts {
		if err := tr.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-done; err != nil && !errors.Is(err, ErrClosed) {
		t.Fatal(err)
	}
	pcs[0].Close()
	for range 2 {
		if err := <-done; err != nil && !errors.Is(err, ErrClosed) {
			t.Fatal(err)
		}
	}
	ts[0].HandlePacket(addr(1), []byte("after close")) // a no-op
}

func TestTransportPort(t *testing.T) {
	checkGoroutines(t)
	pc := listenUDP(t)
	tr, err := New(fastConfig(), pc)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if got, want := tr.core.cfg.Port, uint16(pc.LocalAddr().(*net.UDPAddr).Port); got != want {
		t.Fatalf("port %d, want the socket's %d", got, want)
	}
	cfg := fastConfig()
	cfg.HelloInterval = 0
	if _, err := New(cfg, pc); err == nil || !strings.Contains(err.Error(), "HelloInterval") {
		t.Fatalf("bad config: %v", err)
	}
	// Serve returns nil when its context ends, and closes the socket.
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- tr.Serve(ctx) }()
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if _, err := pc.WriteToUDPAddrPort([]byte("x"), netip.MustParseAddrPort("127.0.0.1:9")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("socket still open: %v", err)
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	tr.Close() // idempotent
}
