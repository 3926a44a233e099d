package tracker

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/kadtracker/kadtracker/node/tracker/wire"
)

// HTTP server limits. WriteTimeout must leave room for FirstLookupWait.
const (
	httpReadHeaderTimeout = 5 * time.Second
	httpWriteTimeout      = 40 * time.Second
	httpIdleTimeout       = 2 * time.Minute
	httpMaxHeaderBytes    = wire.MaxQueryLen + 4<<10
	httpShutdownGrace     = 3 * time.Second
)

var textPlain = []string{"text/plain"}

// Serve answers HTTP tracker requests on ln until ctx ends: GET /announce
// (BEP 3, 7, 23) and GET /scrape (BEP 48), those paths exactly; anything else
// gets a 404 with a bencoded failure reason. Every bad request gets HTTP 200
// with a bencoded "failure reason" that says what is wrong, as trackers
// answer. The client's IP is the connection's source address; the "ip"
// parameter is never published (storing nodes take the daemon's address from
// the connection anyway) and only keeps a client from being handed itself.
//
// Serve closes ln. It returns nil when ctx ends, ErrClosed when the Tracker
// is closed, or the error that stopped it.
func (t *Tracker) Serve(ctx context.Context, ln net.Listener) error {
	lim := newConnLimiter(ln, maxHTTPConns, t.cfg.HTTPConnsPerAddr, t.cfg.HTTPIdleConnsPerAddr, &t.stats)
	lim.noCut = t.unprotected
	srv := &http.Server{
		Handler:           &httpFront{t: t},
		ReadHeaderTimeout: httpReadHeaderTimeout,
		ReadTimeout:       httpReadHeaderTimeout,
		WriteTimeout:      httpWriteTimeout,
		IdleTimeout:       httpIdleTimeout,
		MaxHeaderBytes:    httpMaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(t.log.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ConnState:         lim.connState,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(lim) }() // waited for below
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	case <-t.ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), httpShutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	<-errc
	if ctx.Err() == nil {
		return ErrClosed
	}
	return nil
}

type httpFront struct{ t *Tracker }

func (h *httpFront) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	t := h.t
	sc := t.scratch.Get().(*scratch)
	defer t.scratch.Put(sc)
	status := http.StatusOK
	switch {
	case r.URL.Path != "/announce" && r.URL.Path != "/scrape":
		status = http.StatusNotFound
		sc.out = wire.AppendFailure(sc.out[:0], "not found: this tracker answers /announce and /scrape")
	case r.Method != http.MethodGet && r.Method != http.MethodHead:
		status = http.StatusMethodNotAllowed
		sc.out = wire.AppendFailure(sc.out[:0], "method not allowed: use GET")
	case r.URL.Path == "/announce":
		sc.out = h.announce(r, sc)
	default:
		sc.out = h.scrape(r, sc)
	}
	if status != http.StatusOK {
		t.stats.badRequests.Add(1)
	}
	hdr := w.Header()
	hdr["Content-Type"] = textPlain
	w.WriteHeader(status)
	w.Write(sc.out)
}

func (h *httpFront) fail(r *http.Request, sc *scratch, err error) []byte {
	h.t.stats.badRequests.Add(1)
	msg := reason(err)
	h.t.log.Debug("bad HTTP request", "from", r.RemoteAddr, "path", r.URL.Path, "reason", msg)
	return wire.AppendFailure(sc.out[:0], msg)
}

func remoteAddr(r *http.Request) (netip.Addr, error) {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}, errors.New("tracker: no remote address")
	}
	return ap.Addr().Unmap().WithZone(""), nil
}

func (h *httpFront) announce(r *http.Request, sc *scratch) []byte {
	ar, err := wire.ParseAnnounce(r.URL.RawQuery)
	if err != nil {
		h.t.stats.httpFailed.Add(1)
		return h.fail(r, sc, err)
	}
	from, err := remoteAddr(r)
	if err != nil {
		h.t.stats.httpFailed.Add(1)
		return h.fail(r, sc, err)
	}
	req := request{
		infohash: ar.InfoHash,
		client:   netip.AddrPortFrom(from, ar.Port),
		claimed:  ar.IP.Unmap(),
		event:    ar.Event,
		seed:     ar.Left == 0,
		numwant:  ar.NumWant,
	}
	ans, err := h.t.announce(r.Context(), &req, sc.addrs)
	if err != nil {
		h.t.stats.httpFailed.Add(1)
		return h.fail(r, sc, err)
	}
	h.t.stats.httpOK.Add(1)
	sc.addrs = ans.peers[:0]
	sc.peers = sc.peers[:0]
	for _, p := range ans.peers {
		sc.peers = append(sc.peers, wire.Peer{Addr: p})
	}
	resp := wire.AnnounceResponse{
		Interval:    ans.interval,
		MinInterval: ans.minInterval,
		Complete:    ans.complete,
		Incomplete:  ans.incomplete,
		Peers:       sc.peers,
		Warning:     ans.warning,
	}
	if h.t.cfg.ExternalIP {
		resp.ExternalIP = from
	}
	return wire.AppendAnnounceResponse(sc.out[:0], &resp, ar.PeerForm())
}

func (h *httpFront) scrape(r *http.Request, sc *scratch) []byte {
	hashes, err := wire.ParseScrape(r.URL.RawQuery)
	if err != nil {
		return h.fail(r, sc, err)
	}
	sc.files = h.t.scrape(r.Context(), hashes, sc.files[:0])
	return wire.AppendScrapeResponse(sc.out[:0], sc.files)
}
