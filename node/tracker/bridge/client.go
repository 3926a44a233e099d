package bridge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/kadtracker/kadtracker/node/tracker/wire"
)

// Errors of the tracker client. A tracker's own refusal is a
// *wire.FailureError (HTTP "failure reason", or a BEP 15 error packet).
var (
	ErrBadURL      = errors.New("bridge: bad tracker URL")
	ErrNoScrape    = errors.New("bridge: tracker has no scrape URL (BEP 48: the announce path must end in /announce...)")
	ErrHTTPStatus  = errors.New("bridge: tracker answered with an HTTP error")
	ErrTooLarge    = errors.New("bridge: tracker answer too large")
	ErrNoAnswer    = errors.New("bridge: no answer from tracker")
	ErrBadResponse = errors.New("bridge: malformed tracker answer")
)

// Client defaults.
const (
	// DefaultTimeout bounds a request when the caller's context has no
	// deadline: no call of the client runs unbounded.
	DefaultTimeout = 15 * time.Second
	// DefaultUDPRetransmit is the first BEP 15 retransmission timeout.
	// BEP 15 says 15 s, doubling up to 8 times; a bridge that must answer
	// its local client in a few seconds scales that down, and the caller's
	// deadline bounds the whole exchange.
	DefaultUDPRetransmit = 1 * time.Second
	// DefaultUDPTries is how many times a UDP request is sent (the first
	// send and its retransmissions), each waiting twice as long as the last.
	DefaultUDPTries = 4
	// connIDLifetime is how long a BEP 15 connection ID is used: the
	// tracker accepts it for at least a minute after it was issued.
	connIDLifetime = 50 * time.Second
	// maxUDPResponse bounds a UDP answer we read (an IPv6 announce
	// response with 200 peers is 3620 bytes).
	maxUDPResponse = 64 << 10
)

// ClientConfig tunes a Client. The zero value is usable.
type ClientConfig struct {
	// HTTP is the client for http(s) trackers; nil means one that follows
	// at most 3 redirects and takes no proxy settings from the environment.
	HTTP *http.Client
	// Timeout bounds a request whose context has no deadline; 0 means
	// DefaultTimeout.
	Timeout time.Duration
	// UDPRetransmit and UDPTries: see DefaultUDPRetransmit, DefaultUDPTries.
	UDPRetransmit time.Duration
	UDPTries      int
	// Resolver looks up tracker host names; nil means net.DefaultResolver.
	Resolver *net.Resolver
	// UserAgent is sent to HTTP trackers.
	UserAgent string
	// Clock is the time source for connection-ID expiry; nil means time.Now.
	Clock func() time.Time
}

// Client announces to and scrapes one classic tracker, HTTP (BEP 3, 7, 23,
// 24, 48) or UDP (BEP 15, 41). Its methods are safe for concurrent use and
// never outlive their context (or DefaultTimeout when it has no deadline).
type Client struct {
	url *url.URL
	udp bool
	cfg ClientConfig
	hc  *http.Client

	mu     sync.Mutex
	connID map[netip.AddrPort]connID // BEP 15 connection IDs by tracker address
}

type connID struct {
	id      uint64
	expires time.Time
}

// ParseURL checks a tracker announce URL: http, https or udp, with a host,
// and a port for udp. It is what NewClient accepts.
func ParseURL(raw string) (*url.URL, error) {
	if len(raw) > 2048 {
		return nil, fmt.Errorf("%w: longer than 2048 bytes", ErrBadURL)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadURL, err)
	}
	switch u.Scheme {
	case "http", "https":
	case "udp":
		if u.Port() == "" {
			return nil, fmt.Errorf("%w: %q: a udp:// tracker URL needs a port", ErrBadURL, raw)
		}
	default:
		return nil, fmt.Errorf("%w: %q: want http://, https:// or udp://", ErrBadURL, raw)
	}
	if u.Hostname() == "" || u.User != nil || u.Fragment != "" {
		return nil, fmt.Errorf("%w: %q: want scheme://host[:port]/path, no user or fragment", ErrBadURL, raw)
	}
	return u, nil
}

// NewClient returns a client of the tracker at rawURL (see ParseURL).
func NewClient(rawURL string, cfg ClientConfig) (*Client, error) {
	u, err := ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.UDPRetransmit <= 0 {
		cfg.UDPRetransmit = DefaultUDPRetransmit
	}
	if cfg.UDPTries <= 0 {
		cfg.UDPTries = DefaultUDPTries
	}
	if cfg.Resolver == nil {
		cfg.Resolver = net.DefaultResolver
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	c := &Client{url: u, udp: u.Scheme == "udp", cfg: cfg, hc: cfg.HTTP, connID: make(map[netip.AddrPort]connID)}
	if c.hc == nil {
		c.hc = &http.Client{
			Transport: &http.Transport{
				Proxy:                 nil,
				DialContext:           (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
				MaxIdleConnsPerHost:   2,
				IdleConnTimeout:       90 * time.Second,
				TLSHandshakeTimeout:   10 * time.Second,
				ResponseHeaderTimeout: 30 * time.Second,
			},
			CheckRedirect: func(_ *http.Request, via []*http.Request) error {
				if len(via) >= 3 {
					return errors.New("more than 3 redirects")
				}
				return nil
			},
		}
	}
	return c, nil
}

// URL is the tracker's announce URL.
func (c *Client) URL() string { return c.url.String() }

// AnnounceRequest is what the client tells a tracker.
type AnnounceRequest struct {
	InfoHash   [20]byte
	PeerID     [20]byte
	Port       uint16
	Uploaded   int64
	Downloaded int64
	Left       int64
	Event      wire.Event
	NumWant    int // < 0: the tracker's default
	Key        uint32
}

// AnnounceResponse is what a tracker answered.
type AnnounceResponse struct {
	Interval    time.Duration
	MinInterval time.Duration // 0: not sent (UDP never sends one)
	Seeders     int
	Leechers    int
	Peers       []netip.AddrPort
	Warning     string
	ExternalIP  netip.Addr // BEP 24; the zero Addr when not sent
}

// withDeadline gives ctx the client's default timeout unless it has a
// deadline already.
func (c *Client) withDeadline(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, c.cfg.Timeout)
}

// Announce sends one announce and returns the tracker's answer. A tracker's
// refusal is a *wire.FailureError carrying its reason.
func (c *Client) Announce(ctx context.Context, r AnnounceRequest) (AnnounceResponse, error) {
	ctx, cancel := c.withDeadline(ctx)
	defer cancel()
	if c.udp {
		return c.udpAnnounce(ctx, r)
	}
	return c.httpAnnounce(ctx, r)
}

// Scrape asks for the counts of up to wire.MaxScrapeHashes infohashes, in
// the order asked. An HTTP tracker whose announce URL has no scrape form
// (BEP 48) gives ErrNoScrape.
func (c *Client) Scrape(ctx context.Context, hashes [][20]byte) ([]wire.ScrapeFile, error) {
	if len(hashes) == 0 || len(hashes) > wire.MaxScrapeHashes {
		return nil, fmt.Errorf("bridge: scrape of %d infohashes: want 1 to %d", len(hashes), wire.MaxScrapeHashes)
	}
	ctx, cancel := c.withDeadline(ctx)
	defer cancel()
	if c.udp {
		return c.udpScrape(ctx, hashes)
	}
	return c.httpScrape(ctx, hashes)
}

// ScrapeURL derives the scrape URL from an announce URL as BEP 48 says:
// the last path segment must start with "announce", which becomes "scrape".
func ScrapeURL(announce *url.URL) (*url.URL, error) {
	i := strings.LastIndexByte(announce.Path, '/')
	last := announce.Path[i+1:]
	if !strings.HasPrefix(last, "announce") {
		return nil, ErrNoScrape
	}
	u := *announce
	u.Path = announce.Path[:i+1] + "scrape" + strings.TrimPrefix(last, "announce")
	u.RawPath = ""
	return &u, nil
}

func (c *Client) httpAnnounce(ctx context.Context, r AnnounceRequest) (AnnounceResponse, error) {
	q := wire.AnnounceRequest{
		InfoHash: r.InfoHash, PeerID: r.PeerID, Port: r.Port,
		Uploaded: r.Uploaded, Downloaded: r.Downloaded, Left: r.Left,
		Event: r.Event, Compact: true, NoPeerID: true, NumWant: r.NumWant,
		Key: fmt.Sprintf("%08X", r.Key),
	}
	if q.NumWant < 0 {
		q.NumWant = -1
	}
	body, status, err := c.httpGet(ctx, c.url, wire.AppendAnnounceQuery(nil, &q))
	if err != nil {
		return AnnounceResponse{}, err
	}
	return parseHTTPAnnounce(status, body)
}

// parseHTTPAnnounce reads an HTTP tracker's answer: a failure reason
// whatever the status (trackers send them with 200 and with 4xx), else a
// 200 with a valid announce response.
func parseHTTPAnnounce(status int, body []byte) (AnnounceResponse, error) {
	wr, err := wire.ParseAnnounceResponse(body)
	var fe *wire.FailureError
	switch {
	case errors.As(err, &fe):
		return AnnounceResponse{}, fe
	case status != http.StatusOK:
		return AnnounceResponse{}, fmt.Errorf("%w: %d %s", ErrHTTPStatus, status, http.StatusText(status))
	case err != nil:
		return AnnounceResponse{}, fmt.Errorf("%w: %w", ErrBadResponse, err)
	}
	out := AnnounceResponse{
		Interval: wr.Interval, MinInterval: wr.MinInterval,
		Seeders: wr.Complete, Leechers: wr.Incomplete,
		Warning: wr.Warning, ExternalIP: wr.ExternalIP,
	}
	if len(wr.Peers) > 0 {
		out.Peers = make([]netip.AddrPort, len(wr.Peers))
		for i, p := range wr.Peers {
			out.Peers[i] = p.Addr
		}
	}
	return out, nil
}

func (c *Client) httpScrape(ctx context.Context, hashes [][20]byte) ([]wire.ScrapeFile, error) {
	su, err := ScrapeURL(c.url)
	if err != nil {
		return nil, err
	}
	body, status, err := c.httpGet(ctx, su, wire.AppendScrapeQuery(nil, hashes))
	if err != nil {
		return nil, err
	}
	files, err := wire.ParseScrapeResponse(body)
	var fe *wire.FailureError
	switch {
	case errors.As(err, &fe):
		return nil, fe
	case status != http.StatusOK:
		return nil, fmt.Errorf("%w: %d %s", ErrHTTPStatus, status, http.StatusText(status))
	case err != nil:
		return nil, fmt.Errorf("%w: %w", ErrBadResponse, err)
	}
	// In the order asked; an infohash the tracker left out counts zero.
	out := make([]wire.ScrapeFile, len(hashes))
	for i, h := range hashes {
		out[i].InfoHash = h
		for _, f := range files {
			if f.InfoHash == h {
				out[i] = f
				break
			}
		}
	}
	return out, nil
}

// httpGet fetches base with query appended (after '&' when base has a
// query already, as BEP 3 allows) and returns at most wire.MaxBencodeLen
// bytes of body.
func (c *Client) httpGet(ctx context.Context, base *url.URL, query []byte) ([]byte, int, error) {
	u := *base
	if u.RawQuery != "" {
		u.RawQuery += "&" + string(query)
	} else {
		u.RawQuery = string(query)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %v", ErrBadURL, err)
	}
	if c.cfg.UserAgent != "" {
		req.Header.Set("User-Agent", c.cfg.UserAgent)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ue := (*url.Error)(nil); errors.As(err, &ue) {
			err = ue.Err // the URL holds the infohash; the caller knows it
		}
		return nil, 0, fmt.Errorf("bridge: %s: %w", base.Redacted(), err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, wire.MaxBencodeLen+1))
	if err != nil {
		return nil, 0, fmt.Errorf("bridge: reading answer of %s: %w", base.Redacted(), err)
	}
	if len(body) > wire.MaxBencodeLen {
		return nil, 0, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, wire.MaxBencodeLen)
	}
	return body, resp.StatusCode, nil
}

// udpAddr resolves the tracker's address, IPv4 first.
func (c *Client) udpAddr(ctx context.Context) (netip.AddrPort, error) {
	host, port := c.url.Hostname(), c.url.Port()
	pn, err := c.cfg.Resolver.LookupPort(ctx, "udp", port)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%w: port %q: %v", ErrBadURL, port, err)
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return netip.AddrPortFrom(ip.Unmap(), uint16(pn)), nil
	}
	ips, err := c.cfg.Resolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("bridge: resolving %s: %w", host, err)
	}
	for _, ip := range ips {
		if ip.Unmap().Is4() {
			return netip.AddrPortFrom(ip.Unmap(), uint16(pn)), nil
		}
	}
	if len(ips) == 0 {
		return netip.AddrPort{}, fmt.Errorf("bridge: %s has no address", host)
	}
	return netip.AddrPortFrom(ips[0], uint16(pn)), nil
}

// udpSession is one request's socket to a UDP tracker.
type udpSession struct {
	c    *Client
	addr netip.AddrPort
	conn *net.UDPConn
	buf  []byte
}

func (c *Client) udpSession(ctx context.Context) (*udpSession, error) {
	addr, err := c.udpAddr(ctx)
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "udp", addr.String())
	if err != nil {
		return nil, fmt.Errorf("bridge: %s: %w", c.url.Redacted(), err)
	}
	return &udpSession{c: c, addr: addr, conn: conn.(*net.UDPConn), buf: make([]byte, maxUDPResponse)}, nil
}

// exchange sends req until an answer with its transaction ID arrives,
// waiting UDPRetransmit, then twice that, and so on for UDPTries sends,
// never past ctx's deadline. An error packet is a *wire.FailureError.
func (s *udpSession) exchange(ctx context.Context, req []byte, tx uint32, want wire.Action) ([]byte, error) {
	deadline, _ := ctx.Deadline()
	wait := s.c.cfg.UDPRetransmit
	expired := func() error {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("%w from %s: %w", ErrNoAnswer, s.c.url.Redacted(), err)
		}
		if !deadline.IsZero() && !time.Now().Before(deadline) {
			return fmt.Errorf("%w from %s: %w", ErrNoAnswer, s.c.url.Redacted(), context.DeadlineExceeded)
		}
		return nil
	}
	for try := 0; try < s.c.cfg.UDPTries; try, wait = try+1, 2*wait {
		if err := expired(); err != nil {
			return nil, err
		}
		if _, err := s.conn.Write(req); err != nil {
			return nil, fmt.Errorf("bridge: %s: %w", s.c.url.Redacted(), err)
		}
		until := time.Now().Add(wait)
		if !deadline.IsZero() && deadline.Before(until) {
			until = deadline
		}
		_ = s.conn.SetReadDeadline(until)
		for {
			n, err := s.conn.Read(s.buf)
			if err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) {
					break // retransmit
				}
				return nil, fmt.Errorf("bridge: %s: %w", s.c.url.Redacted(), err)
			}
			b, err := udpReply(s.buf[:n], tx, want)
			if errors.Is(err, errOtherTx) {
				continue // a late answer to an earlier request, or noise
			}
			return b, err
		}
	}
	if err := expired(); err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("%w from %s after %d tries", ErrNoAnswer, s.c.url.Redacted(), s.c.cfg.UDPTries)
}

var errOtherTx = errors.New("bridge: answer to another transaction")

// udpReply sorts a UDP packet that arrived while waiting for an answer of
// action want to transaction tx: the answer itself, a BEP 15 error (a
// *wire.FailureError), a packet to ignore (errOtherTx), or malformed.
func udpReply(b []byte, tx uint32, want wire.Action) ([]byte, error) {
	action, got, ok := wire.PeekUDPResponse(b)
	switch {
	case !ok:
		return nil, errOtherTx // too short to be anyone's answer
	case got != tx:
		return nil, errOtherTx
	case action == wire.ActionError:
		e, err := wire.ParseUDPError(b)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBadResponse, err)
		}
		return nil, &wire.FailureError{Reason: e.Message}
	case action != want:
		return nil, fmt.Errorf("%w: %s where %s expected", ErrBadResponse, action, want)
	}
	return b, nil
}

// connect returns a connection ID for the session's tracker: a cached one
// while it is fresh, else a new one from a connect exchange. fresh reports
// which.
func (s *udpSession) connect(ctx context.Context) (id uint64, fresh bool, err error) {
	now := s.c.cfg.Clock()
	s.c.mu.Lock()
	ci, ok := s.c.connID[s.addr]
	s.c.mu.Unlock()
	if ok && now.Before(ci.expires) {
		return ci.id, false, nil
	}
	tx := rand.Uint32()
	b, err := s.exchange(ctx, wire.AppendConnectRequest(nil, wire.ConnectRequest{TransactionID: tx}), tx, wire.ActionConnect)
	if err != nil {
		return 0, false, err
	}
	cr, err := wire.ParseConnectResponse(b)
	if err != nil {
		return 0, false, fmt.Errorf("%w: %w", ErrBadResponse, err)
	}
	s.c.mu.Lock()
	s.c.connID[s.addr] = connID{id: cr.ConnectionID, expires: s.c.cfg.Clock().Add(connIDLifetime)}
	s.c.mu.Unlock()
	return cr.ConnectionID, true, nil
}

func (s *udpSession) forget() {
	s.c.mu.Lock()
	delete(s.c.connID, s.addr)
	s.c.mu.Unlock()
}

// request runs one connected exchange: build gets the connection ID and a
// transaction ID. When a cached connection ID draws an error packet, the
// tracker may have forgotten it: connect again and retry once.
func (s *udpSession) request(ctx context.Context, want wire.Action, build func(connID uint64, tx uint32) []byte) ([]byte, error) {
	for attempt := 0; ; attempt++ {
		id, fresh, err := s.connect(ctx)
		if err != nil {
			return nil, err
		}
		tx := rand.Uint32()
		b, err := s.exchange(ctx, build(id, tx), tx, want)
		var fe *wire.FailureError
		if errors.As(err, &fe) && !fresh && attempt == 0 {
			s.forget()
			continue
		}
		return b, err
	}
}

func (c *Client) udpAnnounce(ctx context.Context, r AnnounceRequest) (AnnounceResponse, error) {
	s, err := c.udpSession(ctx)
	if err != nil {
		return AnnounceResponse{}, err
	}
	defer s.conn.Close()
	numwant := int32(-1)
	if r.NumWant >= 0 {
		numwant = int32(min(r.NumWant, 1<<31-1))
	}
	urlData := c.url.EscapedPath()
	if c.url.RawQuery != "" {
		urlData += "?" + c.url.RawQuery
	}
	b, err := s.request(ctx, wire.ActionAnnounce, func(id uint64, tx uint32) []byte {
		return wire.AppendUDPAnnounceRequest(nil, &wire.UDPAnnounceRequest{
			ConnectionID: id, TransactionID: tx,
			InfoHash: r.InfoHash, PeerID: r.PeerID,
			Downloaded: r.Downloaded, Left: r.Left, Uploaded: r.Uploaded,
			Event: r.Event, Key: r.Key, NumWant: numwant, Port: r.Port,
			URLData: urlData, // BEP 41, as qBittorrent sends it
		})
	})
	if err != nil {
		return AnnounceResponse{}, err
	}
	return parseUDPAnnounce(b, s.addr.Addr().Is6())
}

func parseUDPAnnounce(b []byte, ipv6 bool) (AnnounceResponse, error) {
	ur, err := wire.ParseUDPAnnounceResponse(b, ipv6)
	if err != nil {
		return AnnounceResponse{}, fmt.Errorf("%w: %w", ErrBadResponse, err)
	}
	return AnnounceResponse{
		Interval: ur.Interval,
		Seeders:  int(max(ur.Seeders, 0)),
		Leechers: int(max(ur.Leechers, 0)),
		Peers:    ur.Peers,
	}, nil
}

func (c *Client) udpScrape(ctx context.Context, hashes [][20]byte) ([]wire.ScrapeFile, error) {
	s, err := c.udpSession(ctx)
	if err != nil {
		return nil, err
	}
	defer s.conn.Close()
	b, err := s.request(ctx, wire.ActionScrape, func(id uint64, tx uint32) []byte {
		return wire.AppendUDPScrapeRequest(nil, &wire.UDPScrapeRequest{ConnectionID: id, TransactionID: tx, InfoHashes: hashes})
	})
	if err != nil {
		return nil, err
	}
	sr, err := wire.ParseUDPScrapeResponse(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadResponse, err)
	}
	if len(sr.Stats) != len(hashes) {
		return nil, fmt.Errorf("%w: %d scrape entries for %d infohashes", ErrBadResponse, len(sr.Stats), len(hashes))
	}
	out := make([]wire.ScrapeFile, len(hashes))
	for i, st := range sr.Stats {
		out[i] = wire.ScrapeFile{InfoHash: hashes[i], Complete: int(max(st.Seeders, 0)), Downloaded: int(max(st.Completed, 0)), Incomplete: int(max(st.Leechers, 0))}
	}
	return out, nil
}
