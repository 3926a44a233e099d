package node

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/kadtracker/kadtracker/node/internal/pb"
	"github.com/kadtracker/kadtracker/records"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-msgio/pbio"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	msmux "github.com/multiformats/go-multistream"
)

// ProtocolID is the record protocol between kadtracker nodes.
const ProtocolID protocol.ID = "/kadtracker/records/1.0.0"

// Message size caps. A request carries at most one envelope; a response at
// most MaxWant entries.
const (
	MaxRequestSize  = records.MaxEnvelopeSize + 256
	MaxResponseSize = 1 << 20
	// MaxWant bounds the records one GET returns.
	MaxWant = 200
	// maxRequestsPerStream bounds how long one stream may keep a handler busy.
	maxRequestsPerStream = 64
)

// ErrRemote is wrapped by errors a remote node reported in its response.
var ErrRemote = errors.New("node: remote refused")

// handleStream serves record-protocol requests on s until the remote closes
// it, a read fails, or the stream's budget is spent. The stream holds a
// place of the gate from the start: one waiting for a request costs the
// host as much as one being served.
func (n *Node) handleStream(s network.Stream) {
	defer s.Close()
	remote := s.Conn().RemotePeer()
	remoteIP, _ := addrIP(s.Conn().RemoteMultiaddr())
	localIP, _ := addrIP(s.Conn().LocalMultiaddr())
	w := pbio.NewDelimitedWriter(s)
	if why := n.guard.gate.enter(remote, remoteIP.IsValid() && n.guard.exempt(remoteIP)); why != "" {
		n.refuse(why, remote, remoteIP)
		_ = s.SetWriteDeadline(time.Now().Add(n.cfg.Protect.RequestStartTimeout))
		if w.WriteMsg(failure(pb.Status_BUSY, errBusy)) != nil {
			_ = s.Reset()
		}
		return
	}
	defer n.guard.gate.leave(remote)
	br := bufio.NewReader(s) // pbio reads through it: Peek sees the request's first byte
	r := pbio.NewDelimitedReader(br, MaxRequestSize)
	for range maxRequestsPerStream {
		_ = s.SetDeadline(time.Now().Add(n.cfg.Protect.RequestStartTimeout))
		_, err := br.Peek(1)
		if err == nil {
			_ = s.SetDeadline(time.Now().Add(n.cfg.RequestTimeout))
			var req pb.Request
			if err = r.ReadMsg(&req); err == nil {
				if !n.serveOne(s, w, remote, remoteIP, localIP, &req) {
					return
				}
				continue
			}
		}
		if errors.Is(err, io.EOF) {
			return
		}
		why := RefusedBadRequest
		switch {
		case isTimeout(err):
			why = RefusedTimeout
		case isStreamError(err):
			why = RefusedBroken
		}
		n.refuse(why, remote, remoteIP, "err", err)
		// Say why before hanging up, when the stream still allows it.
		var reason error
		switch {
		case errors.Is(err, io.ErrShortBuffer):
			reason = fmt.Errorf("node: request larger than %d bytes", MaxRequestSize)
		case !isStreamError(err):
			reason = errors.New("node: malformed request")
		}
		if reason == nil || w.WriteMsg(failure(pb.Status_BAD_REQUEST, reason)) != nil {
			_ = s.Reset()
		}
		return // the deferred Close lets the reason reach the peer
	}
}

// serveOne answers req on s, or BUSY when remote is over its rates. It
// reports whether the stream may carry another request.
func (n *Node) serveOne(s network.Stream, w pbio.WriteCloser, remote peer.ID, remoteIP, localIP netip.Addr, req *pb.Request) bool {
	if why := n.guard.allow(remote, remoteIP); why != "" {
		n.refuse(why, remote, remoteIP)
		if w.WriteMsg(failure(pb.Status_BUSY, errBusy)) != nil {
			_ = s.Reset()
		}
		return false // a peer over its limits gets no more of this stream
	}
	ctx, cancel := context.WithTimeout(n.ctx, n.cfg.RequestTimeout)
	resp := n.serve(ctx, remote, remoteIP, localIP, req)
	cancel()
	resp.Coord = n.coordWire()
	if err := w.WriteMsg(resp); err != nil {
		n.log.Debug("record response not sent", "peer", remote, "err", err)
		_ = s.Reset()
		return false
	}
	return true
}

// errBusy is the reason a BUSY response gives.
var errBusy = errors.New("node: busy: too many requests, try later or another node")

// refuse counts a refusal and logs it at Debug.
func (n *Node) refuse(why string, remote peer.ID, ip netip.Addr, args ...any) {
	n.refused.add(why)
	n.log.Debug("refused", append([]any{"reason", why, "peer", remote, "ip", ip}, args...)...)
}

// serve answers one request from remote, seen at remoteIP on our localIP.
func (n *Node) serve(ctx context.Context, remote peer.ID, remoteIP, localIP netip.Addr, req *pb.Request) *pb.Response {
	switch body := req.Body.(type) {
	case *pb.Request_Put:
		return n.servePut(ctx, remote, remoteIP, body.Put)
	case *pb.Request_Get:
		return n.serveGet(ctx, localIP, body.Get)
	case *pb.Request_Ping:
		return &pb.Response{Nonce: body.Ping.GetNonce()}
	default:
		n.refused.add(RefusedBadRequest)
		return failure(pb.Status_BAD_REQUEST, errors.New("node: unknown request"))
	}
}

func (n *Node) servePut(ctx context.Context, remote peer.ID, remoteIP netip.Addr, put *pb.Put) *pb.Response {
	n.stats.putsReceived.Add(1)
	resp, why := n.acceptPut(ctx, remote, remoteIP, put.GetEnvelope())
	if resp.Status != pb.Status_OK {
		n.stats.putsRejected.Add(1)
		n.rejected.add(why)
		n.log.Debug("PUT rejected", "peer", remote, "ip", remoteIP, "reason", why, "status", resp.Status, "err", resp.Error)
	}
	return resp
}

// acceptPut verifies and stores a record. A signed address must be the one
// the record arrived from, and a record without one is stored with that
// address, so nobody can make the DHT point at a third party; bridged
// endpoints must be global (see checkVouchable).
// The second result names the reason of a refusal (see rejectReason).
func (n *Node) acceptPut(ctx context.Context, remote peer.ID, remoteIP netip.Addr, envelope []byte) (*pb.Response, string) {
	if !remoteIP.IsValid() {
		return failure(pb.Status_REJECTED, errors.New("node: connection has no IP address")), RejectNoIP
	}
	rec, err := records.Open(envelope)
	if err != nil {
		return failure(pb.Status_REJECTED, err), rejectReason(err)
	}
	if rec.Announcer != remote {
		err := fmt.Errorf("%w: record of %s sent by %s", records.ErrWrongAnnouncer, rec.Announcer, remote)
		return failure(pb.Status_REJECTED, err), rejectReason(err)
	}
	if err := rec.Validate(n.now(), n.cfg.MaxRecordTTL); err != nil {
		return failure(pb.Status_REJECTED, err), rejectReason(err)
	}
	if why, err := n.checkVouchable(rec, remoteIP); err != nil {
		return failure(pb.Status_REJECTED, err), why
	}
	err = n.store.Put(ctx, records.Entry{Record: rec, IP: remoteIP.Unmap(), Envelope: envelope})
	switch {
	case err == nil:
		return &pb.Response{}, ""
	case errors.Is(err, records.ErrKeyFull), errors.Is(err, records.ErrStoreFull), errors.Is(err, records.ErrAnnouncerFull),
		errors.Is(err, records.ErrIPFull), errors.Is(err, records.ErrKeyIPFull):
		return failure(pb.Status_FULL, err), rejectReason(err)
	case errors.Is(err, records.ErrStale), errors.Is(err, records.ErrExpired):
		return failure(pb.Status_REJECTED, err), rejectReason(err)
	default:
		n.log.Warn("record store failed", "err", err)
		return failure(pb.Status_INTERNAL, errors.New("node: store failed")), RejectInternal
	}
}

func (n *Node) serveGet(ctx context.Context, localIP netip.Addr, get *pb.Get) *pb.Response {
	n.stats.getsReceived.Add(1)
	key, err := records.KeyFromMultihash(get.GetKey())
	if err != nil {
		return failure(pb.Status_BAD_REQUEST, err)
	}
	want := min(int(get.GetWant()), MaxWant)
	var res records.Result
	if sg, ok := n.store.(records.SaltedGetter); ok {
		res, err = sg.GetSalted(ctx, key, want, get.GetSalt())
	} else {
		res, err = n.store.Get(ctx, key, want)
	}
	if err != nil {
		n.log.Warn("record store failed", "err", err)
		return failure(pb.Status_INTERNAL, errors.New("node: store failed"))
	}
	resp := &pb.Response{
		Seeds:    uint32(res.Seeds),
		Leechers: uint32(res.Leechers),
		More:     res.More,
		Entries:  make([]*pb.Entry, 0, len(res.Entries)),
	}
	for _, e := range res.Entries {
		ip := e.IP
		if !ip.IsValid() {
			// Our own record: the client lives where the asker reached us.
			ip = localIP
		}
		resp.Entries = append(resp.Entries, &pb.Entry{Envelope: e.Envelope, Ip: ip.AsSlice()})
	}
	return resp
}

func failure(status pb.Status, err error) *pb.Response {
	return &pb.Response{Status: status, Error: err.Error()}
}

// request sends one request to p and reads its response, within the
// context's deadline and the node's RequestTimeout. A non-OK status is
// returned as an error wrapping ErrRemote.
func (n *Node) request(ctx context.Context, p peer.ID, req *pb.Request) (*pb.Response, error) {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.RequestTimeout)
	defer cancel()
	s, err := n.newStream(ctx, p)
	if err != nil {
		return nil, err
	}
	// Deadlines bound the stream I/O; the AfterFunc ends it when the caller
	// gives up first.
	deadline, _ := ctx.Deadline()
	_ = s.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = s.Reset() })
	defer stop()
	start := time.Now()
	resp, err := roundTrip(s, req)
	if err != nil {
		_ = s.Reset()
		return nil, err
	}
	n.sample(p, resp, time.Since(start))
	_ = s.Close()
	if resp.Status != pb.Status_OK {
		return resp, fmt.Errorf("%w: %s: %s", ErrRemote, resp.Status, resp.Error)
	}
	return resp, nil
}

// newStream opens a record-protocol stream to p, dialing it if need be,
// without waiting for identify: host.NewStream waits for identify on a new
// connection before it negotiates, which costs a request to a node not yet
// connected one more round trip (measured on mocknet with 10 ms links: 43
// ms against 22 ms). The protocol is selected lazily, in the request's
// first flight; a node that does not speak it fails the read.
func (n *Node) newStream(ctx context.Context, p peer.ID) (network.Stream, error) {
	s, err := n.host.Network().NewStream(ctx, p)
	if err != nil {
		return nil, err
	}
	if err := s.SetProtocol(ProtocolID); err != nil {
		_ = s.Reset()
		return nil, err
	}
	return &lazyStream{Stream: s, lazy: msmux.NewMSSelect(s, ProtocolID)}, nil
}

// lazyStream is a stream whose protocol negotiation rides on its first
// write and read.
type lazyStream struct {
	network.Stream
	lazy msmux.LazyConn
}

func (s *lazyStream) Read(b []byte) (int, error)  { return s.lazy.Read(b) }
func (s *lazyStream) Write(b []byte) (int, error) { return s.lazy.Write(b) }
func (s *lazyStream) Close() error                { return s.lazy.Close() }

func roundTrip(s network.Stream, req *pb.Request) (*pb.Response, error) {
	if err := pbio.NewDelimitedWriter(s).WriteMsg(req); err != nil {
		return nil, err
	}
	var resp pb.Response
	if err := pbio.NewDelimitedReader(s, MaxResponseSize).ReadMsg(&resp); err != nil {
		return nil, err
	}
	return &resp, nil
}

// PingRTT measures one request/response round trip to p on an already open
// stream, the unit lookup latency is reported in.
func (n *Node) PingRTT(ctx context.Context, p peer.ID) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.RequestTimeout)
	defer cancel()
	s, err := n.host.NewStream(ctx, p, ProtocolID)
	if err != nil {
		return 0, err
	}
	defer s.Close()
	deadline, _ := ctx.Deadline()
	_ = s.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = s.Reset() })
	defer stop()
	// The first round trip pays for protocol negotiation; time the second.
	r := pbio.NewDelimitedReader(s, MaxResponseSize)
	w := pbio.NewDelimitedWriter(s)
	var rtt time.Duration
	for i := range 2 {
		start := time.Now()
		if err := w.WriteMsg(&pb.Request{Body: &pb.Request_Ping{Ping: &pb.Ping{Nonce: uint64(i)}}}); err != nil {
			return 0, err
		}
		var resp pb.Response
		if err := r.ReadMsg(&resp); err != nil {
			return 0, err
		}
		rtt = time.Since(start)
	}
	return rtt, nil
}

// isStreamError tells transport failures from a message that did not parse.
func isStreamError(err error) bool {
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, network.ErrReset) || isTimeout(err)
}

// isTimeout reports a deadline passing; the muxers' errors are not
// os.ErrDeadlineExceeded but say Timeout.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// addrIP extracts the IP of a connection's multiaddr.
func addrIP(a ma.Multiaddr) (netip.Addr, error) {
	ip, err := manet.ToIP(a)
	if err != nil {
		return netip.Addr{}, err
	}
	addr, ok := netip.AddrFromSlice(ip)
	if !ok {
		return netip.Addr{}, fmt.Errorf("node: bad IP in %s", a)
	}
	return addr.Unmap(), nil
}
