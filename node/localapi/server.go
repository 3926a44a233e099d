// Package localapi is the daemon's local API: HTTP and JSON on a unix socket
// that only its owner can open (mode 0600). The kadtracker CLI is its client;
// curl works too:
//
//	curl --unix-socket ~/.kadtracker/kadtracker.sock http://kadtracker/v1/status
//
// Endpoints (all answers are JSON objects; errors are {"error": "..."}):
//
//	GET  /v1/status
//	POST /v1/announce   {"infohash": "HEX", "port": 6881, "seed": false}
//	POST /v1/withdraw   {"infohash": "HEX"}
//	GET  /v1/peers?infohash=HEX&want=N
//	GET  /v1/records?limit=N&after=CURSOR   (a page; "next" is the cursor of the following one)
//	GET  /v1/routing
//	GET  /v1/tsup/links    (404 unless the daemon runs TSUP)
//	GET  /v1/tsup/swarms
//	GET  /v1/bridge        (404 unless the daemon bridges to classic trackers)
//
// The package talks to the node through Backend, an interface it owns, so it
// never imports the node.
package localapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kadtracker/kadtracker/records"
)

// Limits and defaults of the server.
const (
	// MaxBodySize bounds a request body.
	MaxBodySize = 64 << 10
	// DefaultWant is how many peers /v1/peers asks for without want=.
	DefaultWant = 50
	// MaxWant caps want=; larger values are clamped to it.
	MaxWant = 1000
	// DefaultRecordsLimit is a /v1/records page without limit=; a store
	// holds up to 500 000 records, about 100 MB of JSON in one answer.
	DefaultRecordsLimit = 1000
	// MaxRecordsLimit caps limit=; larger values are clamped to it.
	MaxRecordsLimit = 10000
	// DefaultRequestTimeout bounds the backend call of one request.
	DefaultRequestTimeout = 30 * time.Second
	// DefaultShutdownTimeout is how long Serve lets requests in flight finish
	// once its context is done; then their contexts are cancelled.
	DefaultShutdownTimeout = 5 * time.Second
)

// Server answers the local API from a Backend.
type Server struct {
	// RequestTimeout bounds each request; zero means DefaultRequestTimeout.
	// Set it before Serve.
	RequestTimeout time.Duration
	// ShutdownTimeout bounds the graceful shutdown; zero means
	// DefaultShutdownTimeout. Set it before Serve.
	ShutdownTimeout time.Duration

	b    Backend
	opts Options
	log  *slog.Logger
}

// Options are the server's optional views. A nil view answers its
// endpoints with 404 and a hint of the flag that turns it on.
type Options struct {
	// TSUP serves /v1/tsup/...; nil when the daemon runs no TSUP overlay.
	TSUP TSUPBackend
	// Bridge serves /v1/bridge; nil when the daemon bridges to no tracker.
	Bridge BridgeBackend
	// Logger receives the server's logs; nil discards them.
	Logger *slog.Logger
}

// NewServer returns a server for b with the views in opts.
func NewServer(b Backend, opts Options) *Server {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Server{b: b, opts: opts, log: logger}
}

func (s *Server) requestTimeout() time.Duration {
	if s.RequestTimeout > 0 {
		return s.RequestTimeout
	}
	return DefaultRequestTimeout
}

func (s *Server) shutdownTimeout() time.Duration {
	if s.ShutdownTimeout > 0 {
		return s.ShutdownTimeout
	}
	return DefaultShutdownTimeout
}

// Serve answers requests on ln until ctx is done, then shuts down: it stops
// accepting, gives requests in flight ShutdownTimeout to finish, cancels the
// rest and waits for their handlers. It closes ln; a unix socket file is
// removed. It returns nil after a shutdown, or the error that stopped it.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if ul, ok := ln.(*net.UnixListener); ok {
		ul.SetUnlinkOnClose(true)
	}
	// Requests outlive ctx by up to ShutdownTimeout, then are cancelled.
	reqCtx, cancelRequests := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelRequests()
	var handlers inflight
	hs := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !handlers.enter() {
				writeJSON(w, http.StatusServiceUnavailable, errorBody{"shutting down"})
				return
			}
			defer handlers.leave()
			s.ServeHTTP(w, r)
		}),
		BaseContext:       func(net.Listener) context.Context { return reqCtx },
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      s.requestTimeout() + 10*time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()

	var err error
	select {
	case err = <-served:
		err = fmt.Errorf("localapi: serve: %w", err)
		cancelRequests()
		_ = hs.Close()
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), s.shutdownTimeout())
		if serr := hs.Shutdown(sctx); serr != nil {
			s.log.Warn("local API: requests still running at shutdown, cancelling them", "err", serr)
			cancelRequests()
			_ = hs.Close()
		}
		cancel()
		<-served // http.ErrServerClosed
	}
	handlers.closeAndWait()
	return err
}

// inflight counts running handlers so Serve can wait for them; once closed it
// admits no more.
type inflight struct {
	mu     sync.Mutex
	n      int
	closed bool
	idle   chan struct{} // closed when closed and n reaches 0
}

func (f *inflight) enter() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return false
	}
	f.n++
	return true
}

func (f *inflight) leave() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n--
	if f.closed && f.n == 0 {
		close(f.idle)
	}
}

func (f *inflight) closeAndWait() {
	f.mu.Lock()
	f.closed = true
	f.idle = make(chan struct{})
	if f.n == 0 {
		close(f.idle)
	}
	idle := f.idle
	f.mu.Unlock()
	<-idle
}

// httpError is an error with a status code other than 500.
type httpError struct {
	code int
	msg  string
}

func (e *httpError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &httpError{http.StatusBadRequest, fmt.Sprintf(format, args...)}
}

type handler func(s *Server, ctx context.Context, r *http.Request) (any, error)

// route returns the method and handler of path.
func route(path string) (method string, h handler, ok bool) {
	switch path {
	case "/v1/status":
		return http.MethodGet, (*Server).status, true
	case "/v1/announce":
		return http.MethodPost, (*Server).announce, true
	case "/v1/withdraw":
		return http.MethodPost, (*Server).withdraw, true
	case "/v1/peers":
		return http.MethodGet, (*Server).peers, true
	case "/v1/records":
		return http.MethodGet, (*Server).records, true
	case "/v1/routing":
		return http.MethodGet, (*Server).routing, true
	case "/v1/tsup/links":
		return http.MethodGet, (*Server).tsupLinks, true
	case "/v1/tsup/swarms":
		return http.MethodGet, (*Server).tsupSwarms, true
	case "/v1/bridge":
		return http.MethodGet, (*Server).bridge, true
	}
	return "", nil, false
}

// ServeHTTP answers one request. Serve uses it; tests may call it directly.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	code := http.StatusOK
	defer func() {
		level := slog.LevelDebug
		if code >= 500 {
			level = slog.LevelWarn
		}
		s.log.Log(r.Context(), level, "local API request", "method", r.Method, "path", r.URL.Path, "status", code, "duration", time.Since(start))
	}()

	method, h, ok := route(r.URL.Path)
	if !ok {
		code = http.StatusNotFound
		writeJSON(w, code, errorBody{fmt.Sprintf("no endpoint %s", r.URL.Path)})
		return
	}
	if r.Method != method {
		code = http.StatusMethodNotAllowed
		w.Header().Set("Allow", method)
		writeJSON(w, code, errorBody{fmt.Sprintf("%s wants %s, not %s", r.URL.Path, method, r.Method)})
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, MaxBodySize)
	ctx, cancel := context.WithTimeout(r.Context(), s.requestTimeout())
	defer cancel()
	v, err := h(s, ctx, r)
	if err != nil {
		code = http.StatusInternalServerError
		if he := (*httpError)(nil); errors.As(err, &he) {
			code = he.code
		}
		writeJSON(w, code, errorBody{err.Error()})
		return
	}
	writeJSON(w, code, v)
}

// writeJSON writes v as one line of JSON.
func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code = http.StatusInternalServerError
		b, _ = json.Marshal(errorBody{"encoding the answer: " + err.Error()})
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}

// decodeBody reads exactly one JSON object into v: no unknown fields, nothing
// after it, at most MaxBodySize bytes.
func decodeBody(body io.Reader, v any) error {
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if _, terr := dec.Token(); terr != io.EOF {
			err = errors.New("data after the JSON object")
			if terr != nil {
				err = terr
			}
		}
	}
	switch mbe := (*http.MaxBytesError)(nil); {
	case err == nil:
		return nil
	case errors.As(err, &mbe):
		return &httpError{http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", mbe.Limit)}
	case errors.Is(err, io.EOF):
		return badRequest("empty request body: want a JSON object")
	default:
		return badRequest("bad request body: %v", err)
	}
}

func parseKey(s string) (records.Key, error) {
	if s == "" {
		return records.Key{}, badRequest("infohash is required")
	}
	k, err := records.ParseKey(s)
	if err != nil {
		return records.Key{}, badRequest("%v", err)
	}
	return k, nil
}

func (s *Server) status(ctx context.Context, _ *http.Request) (any, error) {
	st, err := s.b.Status(ctx)
	if err != nil {
		return nil, err
	}
	st.Addrs = nonNil(st.Addrs)
	return st, nil
}

// parseAnnounce reads and checks an announce request body.
func parseAnnounce(body io.Reader) (key records.Key, port uint16, seed bool, err error) {
	var req AnnounceRequest
	if err := decodeBody(body, &req); err != nil {
		return records.Key{}, 0, false, err
	}
	key, err = parseKey(req.Infohash)
	if err != nil {
		return records.Key{}, 0, false, err
	}
	if req.Port < 1 || req.Port > 65535 {
		return records.Key{}, 0, false, badRequest("port %d out of range 1..65535", req.Port)
	}
	return key, uint16(req.Port), req.Seed, nil
}

func (s *Server) announce(ctx context.Context, r *http.Request) (any, error) {
	key, port, seed, err := parseAnnounce(r.Body)
	if err != nil {
		return nil, err
	}
	return s.b.Announce(ctx, key, port, seed)
}

func (s *Server) withdraw(ctx context.Context, r *http.Request) (any, error) {
	var req WithdrawRequest
	if err := decodeBody(r.Body, &req); err != nil {
		return nil, err
	}
	key, err := parseKey(req.Infohash)
	if err != nil {
		return nil, err
	}
	if err := s.b.Withdraw(ctx, key); err != nil {
		return nil, err
	}
	return WithdrawResult{Infohash: key}, nil
}

// parsePeersQuery reads infohash= and want= (default DefaultWant, clamped to
// MaxWant).
func parsePeersQuery(rawQuery string) (records.Key, int, error) {
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return records.Key{}, 0, badRequest("bad query: %v", err)
	}
	key, err := parseKey(q.Get("infohash"))
	if err != nil {
		return records.Key{}, 0, err
	}
	want := DefaultWant
	if w := q.Get("want"); w != "" {
		want, err = strconv.Atoi(w)
		if err != nil || want < 1 {
			return records.Key{}, 0, badRequest("want %q: want a positive number", w)
		}
		want = min(want, MaxWant)
	}
	return key, want, nil
}

func (s *Server) peers(ctx context.Context, r *http.Request) (any, error) {
	key, want, err := parsePeersQuery(r.URL.RawQuery)
	if err != nil {
		return nil, err
	}
	res, err := s.b.Peers(ctx, key, want)
	if err != nil {
		return nil, err
	}
	res.Peers = nonNil(res.Peers)
	return res, nil
}

// recordCursor orders records for paging: infohash, then announcer.
func recordCursor(r *Record) string { return r.Infohash.Hex() + "/" + r.Announcer }

// parseRecordsQuery reads /v1/records' limit= (default
// DefaultRecordsLimit, clamped to MaxRecordsLimit) and after= (a Next
// cursor).
func parseRecordsQuery(rawQuery string) (limit int, after string, err error) {
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return 0, "", badRequest("bad query: %v", err)
	}
	limit = DefaultRecordsLimit
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 {
			return 0, "", badRequest("limit %q: want a positive number", l)
		}
		limit = min(n, MaxRecordsLimit)
	}
	return limit, q.Get("after"), nil
}

func (s *Server) records(ctx context.Context, r *http.Request) (any, error) {
	limit, after, err := parseRecordsQuery(r.URL.RawQuery)
	if err != nil {
		return nil, err
	}
	recs, err := s.b.Records(ctx)
	if err != nil {
		return nil, err
	}
	recs = slices.Clone(recs)
	slices.SortFunc(recs, func(a, b Record) int { return strings.Compare(recordCursor(&a), recordCursor(&b)) })
	start, _ := slices.BinarySearchFunc(recs, after, func(r Record, c string) int {
		if recordCursor(&r) <= c {
			return -1
		}
		return 1
	})
	page := recs[start:]
	res := RecordsResult{}
	if len(page) > limit {
		page = page[:limit]
		res.Next = recordCursor(&page[limit-1])
	}
	res.Records = nonNil(page)
	return res, nil
}

// tsupBackend is the TSUP overlay's backend, when the daemon runs one.
func (s *Server) tsupBackend() (TSUPBackend, error) {
	if s.opts.TSUP == nil {
		return nil, &httpError{http.StatusNotFound, "TSUP is off: start the daemon with --tsup-links"}
	}
	return s.opts.TSUP, nil
}

func (s *Server) tsupLinks(ctx context.Context, _ *http.Request) (any, error) {
	tb, err := s.tsupBackend()
	if err != nil {
		return nil, err
	}
	links, err := tb.TSUPLinks(ctx)
	if err != nil {
		return nil, err
	}
	return TSUPLinksResult{Links: nonNil(links)}, nil
}

func (s *Server) tsupSwarms(ctx context.Context, _ *http.Request) (any, error) {
	tb, err := s.tsupBackend()
	if err != nil {
		return nil, err
	}
	swarms, err := tb.TSUPSwarms(ctx)
	if err != nil {
		return nil, err
	}
	return TSUPSwarmsResult{Swarms: nonNil(swarms)}, nil
}

func (s *Server) bridge(ctx context.Context, _ *http.Request) (any, error) {
	if s.opts.Bridge == nil {
		return nil, &httpError{http.StatusNotFound, "the bridge is off: start the daemon with --bridge-trackers"}
	}
	st, err := s.opts.Bridge.Bridge(ctx)
	if err != nil {
		return nil, err
	}
	st.Trackers = nonNil(st.Trackers)
	st.Swarms = slices.Clone(nonNil(st.Swarms))
	for i := range st.Swarms {
		st.Swarms[i].Trackers = nonNil(st.Swarms[i].Trackers)
	}
	return st, nil
}

func (s *Server) routing(ctx context.Context, _ *http.Request) (any, error) {
	peers, err := s.b.Routing(ctx)
	if err != nil {
		return nil, err
	}
	peers = slices.Clone(nonNil(peers))
	for i := range peers {
		peers[i].Addrs = nonNil(peers[i].Addrs)
	}
	return RoutingResult{Peers: peers}, nil
}
