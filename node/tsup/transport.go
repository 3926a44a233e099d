package tsup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kadtracker/kadtracker/node/tsup/wire"
)

// ErrClosed is returned by Serve once the Transport is closed.
var ErrClosed = errors.New("tsup: transport closed")

const (
	// maxDatagram is Serve's read buffer: XBT sends UPDATEs of any size.
	maxDatagram = 65535
	// maxReadErrors: consecutive read errors after which Serve gives up.
	maxReadErrors = 100
)

// Transport runs a Core on a UDP socket: the daemon's UDP tracker socket,
// which TSUP shares as the paper and XBT do (TSUP actions have bit 0x80
// set, BEP 15 actions are 0 to 3). It sends from that socket; packets reach
// it in one of three ways:
//
//   - HandlePacket, called by the UDP tracker's read loop for each packet
//     with IsPacket(b) (the hook a front calls);
//   - the PacketConn returned by Demux, handed to the UDP tracker in place
//     of the socket: its reads pass TSUP packets here and return the rest;
//   - Serve, when TSUP has a socket of its own.
//
// A timer goroutine, owned by the Transport and stopped by Close, drives
// the Core's Tick. All methods are safe for concurrent use.
type Transport struct {
	mu    sync.Mutex
	core  *Core
	pc    net.PacketConn
	apw   addrPortWriter
	clock func() time.Time
	log   *slog.Logger

	kick   chan struct{}
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once

	writeErrs atomic.Uint64
}

// addrPortWriter is *net.UDPConn's allocation-free write.
type addrPortWriter interface {
	WriteToUDPAddrPort(b []byte, addr netip.AddrPort) (int, error)
}

// IsPacket reports whether a UDP payload is a TSUP packet (its 32-bit
// action at offset 8 has bit 0x80), which a UDP tracker sharing its port
// hands to HandlePacket instead of answering.
func IsPacket(b []byte) bool { return wire.IsPacket(b) }

// New starts an overlay sending from pc. cfg.Port, when 0, is pc's local
// port. pc stays the caller's unless Serve is used.
func New(cfg Config, pc net.PacketConn) (*Transport, error) {
	if cfg.Port == 0 {
		ua, ok := pc.LocalAddr().(*net.UDPAddr)
		if !ok || ua.Port == 0 {
			return nil, fmt.Errorf("tsup: cannot take the TSUP port from %v", pc.LocalAddr())
		}
		cfg.Port = uint16(ua.Port)
	}
	if cfg.Clock == nil {
		return nil, errors.New("tsup: Config.Clock is nil")
	}
	core, err := NewCore(cfg, cfg.Clock())
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	t := &Transport{
		core: core, pc: pc, clock: cfg.Clock, log: core.log,
		kick: make(chan struct{}, 1), ctx: ctx, cancel: cancel,
	}
	t.apw, _ = pc.(addrPortWriter)
	t.wg.Go(t.timers)
	return t, nil
}

// timers ticks the Core at its deadlines (and when poked).
func (t *Transport) timers() {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-t.ctx.Done():
			return
		case <-timer.C:
		case <-t.kick:
		}
		t.mu.Lock()
		t.core.Tick(t.clock())
		out := t.core.Ready()
		next := t.core.NextDeadline()
		t.mu.Unlock()
		t.write(out)
		timer.Reset(max(next.Sub(t.clock()), time.Millisecond))
	}
}

func (t *Transport) poke() {
	select {
	case t.kick <- struct{}{}:
	default:
	}
}

func (t *Transport) write(out []Datagram) {
	for _, d := range out {
		var err error
		if t.apw != nil {
			_, err = t.apw.WriteToUDPAddrPort(d.Data, d.To)
		} else {
			_, err = t.pc.WriteTo(d.Data, net.UDPAddrFromAddrPort(d.To))
		}
		if err != nil {
			t.writeErrs.Add(1)
			t.log.Debug("TSUP write", "to", d.To, "err", err)
		}
	}
}

// HandlePacket processes one TSUP packet received from from. b is not
// retained. It does nothing once the Transport is closed.
func (t *Transport) HandlePacket(from netip.AddrPort, b []byte) {
	if t.ctx.Err() != nil {
		return
	}
	t.mu.Lock()
	t.core.Step(t.clock(), from, b)
	out := t.core.Ready()
	t.mu.Unlock()
	t.write(out)
	t.poke()
}

// SetOwn sets the peers this daemon's own clients announce for ih: the
// endpoints other trackers' clients should connect to (this host's public
// address with each client's port). See Core.SetOwn.
func (t *Transport) SetOwn(ih Infohash, peers []Peer) error {
	t.mu.Lock()
	err := t.core.SetOwn(t.clock(), ih, peers)
	out := t.core.Ready()
	t.mu.Unlock()
	t.write(out)
	t.poke()
	return err
}

// Peers returns the unified swarm of ih: own peers and peers learned over
// TSUP, each with its origin. Nil for a swarm this tracker does not have.
func (t *Transport) Peers(ih Infohash) []Peer {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.core.Peers(ih)
}

// Links returns the links' state (the trackers page).
func (t *Transport) Links() []LinkStatus {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.core.Links()
}

// Swarms returns the swarms' state (the swarms page).
func (t *Transport) Swarms() []SwarmStatus {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.core.Swarms()
}

// Stats returns the counters.
func (t *Transport) Stats() Stats {
	t.mu.Lock()
	s := t.core.Stats()
	t.mu.Unlock()
	s.WriteErrors = t.writeErrs.Load()
	return s
}

// Serve reads pc until ctx ends or the Transport is closed, handling TSUP
// packets and dropping the rest: for a socket of TSUP's own. It closes pc.
// It returns nil when ctx ends, ErrClosed after Close, or the error that
// stopped it.
func (t *Transport) Serve(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { t.pc.Close() })
	defer stop()
	stopT := context.AfterFunc(t.ctx, func() { t.pc.Close() })
	defer stopT()
	defer t.pc.Close()
	buf := make([]byte, maxDatagram)
	errs := 0
	for {
		n, from, err := readAddrPort(t.pc, buf)
		if err != nil {
			switch {
			case ctx.Err() != nil:
				return nil
			case t.ctx.Err() != nil:
				return ErrClosed
			case errors.Is(err, net.ErrClosed):
				return err
			}
			if errs++; errs >= maxReadErrors {
				return err
			}
			continue
		}
		errs = 0
		t.HandlePacket(from, buf[:n])
	}
}

func readAddrPort(pc net.PacketConn, b []byte) (int, netip.AddrPort, error) {
	if u, ok := pc.(*net.UDPConn); ok {
		return u.ReadFromUDPAddrPort(b)
	}
	n, addr, err := pc.ReadFrom(b)
	if err != nil {
		return n, netip.AddrPort{}, err
	}
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return 0, netip.AddrPort{}, fmt.Errorf("tsup: packet from a %T", addr)
	}
	return n, ua.AddrPort(), nil
}

// Demux returns a PacketConn over the Transport's socket for the UDP
// tracker to serve instead of the socket itself: its reads hand TSUP
// packets to HandlePacket and return only the others; writes, deadlines
// and Close go to the socket. The tracker front needs no change. (Its read
// buffer bounds the TSUP packets it can pass; ours are at most 2048 bytes,
// XBT's UPDATEs can be longer.)
func (t *Transport) Demux() net.PacketConn { return &demux{PacketConn: t.pc, t: t} }

type demux struct {
	net.PacketConn
	t *Transport
}

func (d *demux) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, from, err := readAddrPort(d.PacketConn, b)
		if err != nil {
			return n, nil, err
		}
		if wire.IsPacket(b[:n]) {
			d.t.HandlePacket(netip.AddrPortFrom(from.Addr().Unmap(), from.Port()), b[:n])
			continue
		}
		return n, net.UDPAddrFromAddrPort(from), nil
	}
}

func (d *demux) WriteToUDPAddrPort(b []byte, addr netip.AddrPort) (int, error) {
	if d.t.apw != nil {
		return d.t.apw.WriteToUDPAddrPort(b, addr)
	}
	return d.PacketConn.WriteTo(b, net.UDPAddrFromAddrPort(addr))
}

// Close stops the timer goroutine and makes Serve return. It does not
// close a socket Serve is not reading. It is idempotent.
func (t *Transport) Close() error {
	t.once.Do(func() {
		t.cancel()
		t.wg.Wait()
	})
	return nil
}
