package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	dhtpb "github.com/libp2p/go-libp2p-kad-dht/pb"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-msgio/pbio"
	ma "github.com/multiformats/go-multiaddr"
)

// TestStreamHold: 20 peer IDs open 1,600 record-protocol streams to a node
// on loopback, write one byte on each and hold them. Another host's DHT
// query to the node must still be answered. The control runs the node on
// a host with the old limits (the record protocol allowed 2,048 inbound
// streams, more than the host's 1,536), a gate that lets every stream wait
// and no start timeout: the hold takes the host's whole inbound budget and
// the query fails.
func TestStreamHold(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 1,600 streams over loopback TCP")
	}
	t.Run("protected", func(t *testing.T) { testStreamHold(t, true) })
	t.Run("control", func(t *testing.T) { testStreamHold(t, false) })
}

func testStreamHold(t *testing.T, protected bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const attackers, perAttacker = 20, 80 // 1,600 streams
	cfg := loopbackConfig("")
	cfg.RequestTimeout = 2 * time.Minute // the hold outlasts the test
	if !protected {
		cfg.Protect.MaxStreams, cfg.Protect.MaxStreamsPerPeer = 4096, 4096
		// Before RequestStartTimeout a held stream waited as long as any
		// request; with it, a loaded machine's slow waves let it reset the
		// first holds, and the control starved nothing.
		cfg.Protect.RequestStartTimeout = cfg.RequestTimeout
		cfg.Host = oldLimitsHost(t, cfg)
	}
	victim, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer victim.Close()
	target := peer.AddrInfo{ID: victim.ID(), Addrs: victim.Host().Addrs()}

	hosts := make([]host.Host, attackers)
	for a := range hosts {
		hosts[a] = rawHost(t)
		if err := hosts[a].Connect(ctx, target); err != nil {
			t.Fatalf("attacker %d: %v", a, err)
		}
	}
	// Three waves, as an attacker tops up what the victim reset.
	var last int
	for range 3 {
		var held sync.WaitGroup
		for _, h := range hosts {
			held.Go(func() {
				for range perAttacker {
					s, err := h.NewStream(ctx, victim.ID(), ProtocolID)
					if err != nil {
						continue // the victim refused it: fine
					}
					_, _ = s.Write([]byte{0x05}) // a length prefix, and nothing more
					t.Cleanup(func() { _ = s.Reset() })
				}
			})
		}
		held.Wait()
		last = settled(t, victim.Host())
	}
	victim.guard.gate.mu.Lock()
	gated := victim.guard.gate.total
	victim.guard.gate.mu.Unlock()
	t.Logf("protected=%v: the victim holds %d inbound streams, %d in the record gate; refused %v", protected, last, gated, victim.Stats().Refused)

	err = kadQuery(ctx, rawHost(t), target)
	if protected {
		if err != nil {
			t.Fatalf("a DHT query during the hold failed: %v", err)
		}
		if gated > cfg.Protect.MaxStreams {
			t.Errorf("%d streams in the gate, cap %d", gated, cfg.Protect.MaxStreams)
		}
		if victim.Stats().Refused[RefusedStreams] == 0 {
			t.Error("no stream refused by the gate")
		}
		return
	}
	if err == nil {
		t.Fatal("control: the DHT query succeeded: the hold did not starve the host, so the test shows nothing")
	}
	t.Logf("control: the DHT query failed as expected: %v", err)
}

// oldLimitsHost is a loopback host with the resource limits the node had
// before: the record protocol may take 2,048 inbound streams.
func oldLimitsHost(t *testing.T, cfg Config) host.Host {
	p := cfg.Protect
	scaling := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&scaling)
	limits := rcmgr.PartialLimitConfig{
		System: rcmgr.ResourceLimits{Conns: rcmgr.LimitVal(p.MaxConns), ConnsInbound: rcmgr.LimitVal(p.MaxConns / 2)},
		Protocol: map[protocol.ID]rcmgr.ResourceLimits{
			ProtocolID: {StreamsInbound: 2048, Streams: 4096},
		},
		ProtocolPeer: map[protocol.ID]rcmgr.ResourceLimits{
			ProtocolID: {StreamsInbound: 128, Streams: 256},
		},
	}.Build(scaling.Scale(p.Memory, p.FDs))
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(limits))
	if err != nil {
		t.Fatal(err)
	}
	h, err := libp2p.New(libp2p.ListenAddrs(cfg.ListenAddrs...), libp2p.ResourceManager(rm), libp2p.DisableRelay())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return h
}

// rawHost is a loopback host without resource limits of its own.
func rawHost(t *testing.T) host.Host {
	h, err := libp2p.New(libp2p.ListenAddrs(ma.StringCast("/ip4/127.0.0.1/tcp/0")),
		libp2p.ResourceManager(&network.NullResourceManager{}), libp2p.DisableRelay())
	if err != nil {
		t.Error(err)
		return nil
	}
	t.Cleanup(func() { _ = h.Close() })
	return h
}

// settled waits until the host's inbound stream count stops changing and
// returns it.
func settled(t *testing.T, h host.Host) int {
	last, still := -1, 0
	for still < 10 {
		time.Sleep(50 * time.Millisecond)
		n := inboundStreams(t, h)
		if n == last {
			still++
		} else {
			last, still = n, 0
		}
	}
	return last
}

func inboundStreams(t *testing.T, h host.Host) int {
	var n int
	err := h.Network().ResourceManager().ViewSystem(func(s network.ResourceScope) error {
		n = s.Stat().NumStreamsInbound
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// kadQuery sends one FIND_NODE to target, as another DHT node would.
func kadQuery(ctx context.Context, h host.Host, target peer.AddrInfo) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := h.Connect(ctx, target); err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	s, err := h.NewStream(ctx, target.ID, kadProtocol)
	if err != nil {
		return fmt.Errorf("stream: %w", err)
	}
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(10 * time.Second))
	if err := pbio.NewDelimitedWriter(s).WriteMsg(dhtpb.NewMessage(dhtpb.Message_FIND_NODE, []byte(h.ID()), 0)); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	var resp dhtpb.Message
	if err := pbio.NewDelimitedReader(s, 1<<20).ReadMsg(&resp); err != nil {
		return fmt.Errorf("read: %w", err)
	}
	if resp.GetType() != dhtpb.Message_FIND_NODE {
		return fmt.Errorf("answer of type %s", resp.GetType())
	}
	return nil
}

// A stream that sends nothing (after protocol negotiation) is cut after RequestStartTimeout, gives its
// gate place back, and counts as a timeout, not a bad request. Without
// the start timeout (RequestStartTimeout as long as RequestTimeout) the
// silent stream keeps its place.
func TestRequestStartTimeout(t *testing.T) {
	for _, short := range []bool{true, false} {
		t.Run(fmt.Sprintf("short=%v", short), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			// On loopback: mocknet streams ignore deadlines.
			cfg := loopbackConfig("")
			cfg.RequestTimeout = time.Minute
			cfg.Protect.RequestStartTimeout = time.Minute
			if short {
				cfg.Protect.RequestStartTimeout = 100 * time.Millisecond
			}
			victim, err := New(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer victim.Close()
			peerHost := rawHost(t)
			if err := peerHost.Connect(ctx, peer.AddrInfo{ID: victim.ID(), Addrs: victim.Host().Addrs()}); err != nil {
				t.Fatal(err)
			}
			s, err := peerHost.NewStream(ctx, victim.ID(), ProtocolID)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = s.Write(nil)
			defer s.Reset()
			_ = s.SetReadDeadline(time.Now().Add(3 * time.Second))
			got, err := io.ReadAll(s)
			var ne net.Error
			ours := errors.As(err, &ne) && ne.Timeout()
			if !short {
				if !ours {
					t.Fatalf("control: read = %v, want our own deadline: the silent stream is kept", err)
				}
				return
			}
			if err == nil || ours || len(got) > 0 {
				t.Fatalf("read %q, %v: want the victim to cut the stream", got, err)
			}
			st := victim.Stats().Refused
			if st[RefusedTimeout] != 1 || st[RefusedBadRequest] != 0 {
				t.Errorf("refused %v, want one timeout and no bad request", st)
			}
			// The handler leaves the gate just after it cuts the stream.
			for held := 1; held != 0; {
				victim.guard.gate.mu.Lock()
				held = victim.guard.gate.total
				victim.guard.gate.mu.Unlock()
				select {
				case <-ctx.Done():
					t.Fatalf("gate holds %d after the cut", held)
				case <-time.After(10 * time.Millisecond):
				}
			}
		})
	}
}
