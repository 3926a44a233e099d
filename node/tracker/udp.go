package tracker

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/kadtracker/kadtracker/node/tracker/wire"
)

const (
	// maxUDPPacket is the read buffer: an announce with BEP 41 options is
	// about 110 bytes, a full scrape 1496.
	maxUDPPacket = 2048
	// maxUDPWaiting bounds announces waiting for a first lookup; past it an
	// announce is answered at once with what the cache has.
	maxUDPWaiting = 1024
	// maxReadErrors: consecutive read errors after which ServeUDP gives up.
	maxReadErrors = 100
)

// ServeUDP answers BEP 15 tracker packets on pc until ctx ends: connect,
// announce and scrape, with connection IDs that cannot be forged and expire
// after one to two minutes. A malformed request gets an error packet saying
// what is wrong; a packet too short to carry a transaction ID gets nothing.
// Announce responses use the IPv4 or IPv6 layout by the family of the
// request's source (IPv4-mapped sources count as IPv4) and carry only peers
// of that family. BEP 41 options are parsed and the URL data is ignored.
//
// ServeUDP closes pc. It returns nil when ctx ends, ErrClosed when the
// Tracker is closed, or the error that stopped it.
func (t *Tracker) ServeUDP(ctx context.Context, pc net.PacketConn) error {
	var key [32]byte
	rand.Read(key[:])
	u := &udpFront{t: t, pc: pc, ids: newConnIDs(key[:])}
	u.udp, _ = pc.(*net.UDPConn)
	u.apw, _ = pc.(addrPortWriter)
	stop := context.AfterFunc(ctx, func() { pc.Close() })
	defer stop()
	stopT := context.AfterFunc(t.ctx, func() { pc.Close() })
	defer stopT()
	defer u.wg.Wait()
	defer pc.Close()

	buf := make([]byte, maxUDPPacket)
	var out []byte
	errs := 0
	for {
		n, from, err := u.read(buf)
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
			t.log.Debug("UDP read", "err", err)
			continue
		}
		errs = 0
		out = u.handle(ctx, buf[:n], from, out[:0])
	}
}

type udpFront struct {
	t       *Tracker
	pc      net.PacketConn
	udp     *net.UDPConn   // pc when it is one: allocation-free reads
	apw     addrPortWriter // pc when it has one: allocation-free writes
	ids     *connIDs       // used by the read loop only
	wg      sync.WaitGroup
	waiting atomic.Int32
}

func (u *udpFront) read(buf []byte) (int, netip.AddrPort, error) {
	if u.udp != nil {
		return u.udp.ReadFromUDPAddrPort(buf)
	}
	n, addr, err := u.pc.ReadFrom(buf)
	if err != nil {
		return n, netip.AddrPort{}, err
	}
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return 0, netip.AddrPort{}, fmt.Errorf("tracker: packet from a %T", addr)
	}
	return n, ua.AddrPort(), nil
}

// addrPortWriter is the allocation-free write of *net.UDPConn.
type addrPortWriter interface {
	WriteToUDPAddrPort(b []byte, addr netip.AddrPort) (int, error)
}

func (u *udpFront) write(b []byte, to netip.AddrPort) {
	var err error
	if u.apw != nil {
		_, err = u.apw.WriteToUDPAddrPort(b, to)
	} else {
		_, err = u.pc.WriteTo(b, net.UDPAddrFromAddrPort(to))
	}
	if err != nil {
		u.t.log.Debug("UDP write", "to", to, "err", err)
	}
}

// handle answers one packet, using out as the reply buffer, and returns it
// for reuse. Announces that must wait for a lookup are answered from an
// owned goroutine so the read loop never blocks.
func (u *udpFront) handle(ctx context.Context, b []byte, from netip.AddrPort, out []byte) []byte {
	t := u.t
	connID, action, tx, ok := wire.PeekUDPRequest(b)
	if !ok {
		t.stats.udpIgnored.Add(1)
		return out
	}
	from = netip.AddrPortFrom(from.Addr().Unmap().WithZone(""), from.Port())
	now := t.cfg.Clock()
	fail := func(err error) []byte {
		t.stats.badRequests.Add(1)
		msg := reason(err)
		t.log.Debug("bad UDP request", "from", from, "action", action, "reason", msg)
		out = wire.AppendUDPError(out, wire.UDPError{TransactionID: tx, Message: msg})
		u.write(out, from)
		return out
	}
	switch action {
	case wire.ActionConnect:
		if _, err := wire.ParseConnectRequest(b); err != nil {
			return fail(err)
		}
		t.stats.udpConnects.Add(1)
		out = wire.AppendConnectResponse(out, wire.ConnectResponse{TransactionID: tx, ConnectionID: u.ids.issue(from.Addr(), now)})
		u.write(out, from)
		return out
	case wire.ActionAnnounce, wire.ActionScrape:
		if !u.ids.valid(connID, from.Addr(), now) {
			t.stats.udpBadConnIDs.Add(1)
			return fail(clientError("connection ID expired or invalid: connect again"))
		}
	default:
		return fail(clientError(fmt.Sprintf("unknown action %d", uint32(action))))
	}

	if action == wire.ActionScrape {
		sr, err := wire.ParseUDPScrapeRequest(b)
		if err != nil {
			return fail(err)
		}
		wait := t.beginScrape(sr.InfoHashes)
		if len(wait) == 0 || u.waiting.Load() >= maxUDPWaiting {
			sc := t.scratch.Get().(*scratch)
			sc.files = t.finishScrape(sr.InfoHashes, sc.files[:0])
			out = appendUDPScrape(out, tx, sc.files)
			t.scratch.Put(sc)
			u.write(out, from)
			return out
		}
		u.waiting.Add(1)
		u.wg.Go(func() {
			defer u.waiting.Add(-1)
			t.await(ctx, wait...)
			u.write(appendUDPScrape(nil, tx, t.finishScrape(sr.InfoHashes, nil)), from)
		})
		return out
	}

	ar, err := wire.ParseUDPAnnounceRequest(b)
	if err != nil {
		t.stats.udpFailed.Add(1)
		return fail(err)
	}
	v4 := from.Addr().Is4()
	req := request{
		infohash: ar.InfoHash,
		client:   netip.AddrPortFrom(from.Addr(), ar.Port),
		claimed:  ar.IP,
		event:    ar.Event,
		seed:     ar.Left == 0,
		numwant:  int(ar.NumWant),
		only4:    v4,
		only6:    !v4,
	}
	s, wait, err := t.begin(&req)
	if err != nil {
		t.stats.udpFailed.Add(1)
		return fail(err)
	}
	t.stats.udpOK.Add(1)
	if wait == nil || u.waiting.Load() >= maxUDPWaiting {
		sc := t.scratch.Get().(*scratch)
		ans := t.finish(s, &req, sc.addrs)
		out = appendUDPAnswer(out, tx, &ans, !v4)
		sc.addrs = ans.peers[:0]
		t.scratch.Put(sc)
		u.write(out, from)
		return out
	}
	u.waiting.Add(1)
	wreq := req // only this copy escapes to the heap
	u.wg.Go(func() {
		defer u.waiting.Add(-1)
		t.await(ctx, wait)
		ans := t.finish(s, &wreq, nil)
		u.write(appendUDPAnswer(nil, tx, &ans, !v4), from)
	})
	return out
}

func appendUDPScrape(out []byte, tx uint32, files []wire.ScrapeFile) []byte {
	resp := wire.UDPScrapeResponse{TransactionID: tx, Stats: make([]wire.UDPScrapeStats, len(files))}
	for i, f := range files {
		resp.Stats[i] = wire.UDPScrapeStats{Seeders: clamp32(f.Complete), Completed: clamp32(f.Downloaded), Leechers: clamp32(f.Incomplete)}
	}
	return wire.AppendUDPScrapeResponse(out, &resp)
}

func appendUDPAnswer(out []byte, tx uint32, ans *answer, ipv6 bool) []byte {
	// BEP 15 has one interval; clients that honour "min interval" over HTTP
	// (aria2) honour this one over UDP, so it carries the interval.
	resp := wire.UDPAnnounceResponse{
		TransactionID: tx,
		Interval:      ans.interval,
		Leechers:      clamp32(ans.incomplete),
		Seeders:       clamp32(ans.complete),
		Peers:         ans.peers,
	}
	return wire.AppendUDPAnnounceResponse(out, &resp, ipv6)
}

func clamp32(n int) int32 { return int32(min(max(n, 0), math.MaxInt32)) }
