package localapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"syscall"
	"time"

	"github.com/kadtracker/kadtracker/records"
)

// ErrNoDaemon means nothing listens on the socket: no socket file, or a
// stale one. Errors that match it also wrap the dial error.
var ErrNoDaemon = errors.New("localapi: no daemon listening")

// maxResponseSize bounds an answer the client reads.
const maxResponseSize = 256 << 20

// Client talks to a daemon's local API.
type Client struct {
	path string
	hc   *http.Client
}

var _ Backend = (*Client)(nil)

// NewClient returns a client for the socket at socketPath. It connects on
// the first request.
func NewClient(socketPath string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			d := net.Dialer{Timeout: 5 * time.Second}
			conn, err := d.DialContext(ctx, "unix", socketPath)
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) {
				return nil, &noDaemonError{path: socketPath, err: err}
			}
			return conn, err
		},
		Proxy:                 nil, // never HTTP_PROXY for a unix socket
		MaxIdleConns:          2,
		IdleConnTimeout:       30 * time.Second,
		ResponseHeaderTimeout: DefaultRequestTimeout + 15*time.Second,
		DisableCompression:    true,
	}
	return &Client{
		path: socketPath,
		hc:   &http.Client{Transport: tr, Timeout: DefaultRequestTimeout + 30*time.Second},
	}
}

type noDaemonError struct {
	path string
	err  error
}

func (e *noDaemonError) Error() string {
	return fmt.Sprintf("localapi: no daemon at %s: %v", e.path, e.err)
}
func (e *noDaemonError) Unwrap() error        { return e.err }
func (e *noDaemonError) Is(target error) bool { return target == ErrNoDaemon }

// APIError is an error answer from the daemon.
type APIError struct {
	StatusCode int    // HTTP status
	Message    string // the daemon's {"error"} text
}

func (e *APIError) Error() string { return e.Message }

// do sends in (if not nil) as JSON and decodes a 200 answer into out.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, in, out any) error {
	u := url.URL{Scheme: "http", Host: "kadtracker", Path: path, RawQuery: query.Encode()}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("localapi: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return fmt.Errorf("localapi: %w", err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if nd := (*noDaemonError)(nil); errors.As(err, &nd) {
			return nd
		}
		if ue := (*url.Error)(nil); errors.As(err, &ue) {
			err = ue.Err // the URL is made up; the socket path says more
		}
		return fmt.Errorf("localapi: %s %s on %s: %w", method, path, c.path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseSize+1))
	if err != nil {
		return fmt.Errorf("localapi: reading answer to %s: %w", path, err)
	}
	if len(data) > maxResponseSize {
		return fmt.Errorf("localapi: answer to %s larger than %d bytes", path, maxResponseSize)
	}
	if resp.StatusCode != http.StatusOK {
		var eb errorBody
		if json.Unmarshal(data, &eb) != nil || eb.Error == "" {
			eb.Error = fmt.Sprintf("localapi: %s %s: %s", method, path, resp.Status)
		}
		return &APIError{StatusCode: resp.StatusCode, Message: eb.Error}
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("localapi: decoding answer to %s: %w", path, err)
	}
	return nil
}

// Status asks for the daemon's status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var st Status
	err := c.do(ctx, http.MethodGet, "/v1/status", nil, nil, &st)
	return st, err
}

// Announce publishes a client on port for key.
func (c *Client) Announce(ctx context.Context, key records.Key, port uint16, seed bool) (AnnounceResult, error) {
	var res AnnounceResult
	err := c.do(ctx, http.MethodPost, "/v1/announce", nil, AnnounceRequest{Infohash: key.Hex(), Port: int(port), Seed: seed}, &res)
	return res, err
}

// Withdraw stops announcing key.
func (c *Client) Withdraw(ctx context.Context, key records.Key) error {
	var res WithdrawResult
	return c.do(ctx, http.MethodPost, "/v1/withdraw", nil, WithdrawRequest{Infohash: key.Hex()}, &res)
}

// Peers looks up to want peers for key; want <= 0 means the server's default.
func (c *Client) Peers(ctx context.Context, key records.Key, want int) (PeersResult, error) {
	q := url.Values{"infohash": {key.Hex()}}
	if want > 0 {
		q.Set("want", strconv.Itoa(want))
	}
	var res PeersResult
	err := c.do(ctx, http.MethodGet, "/v1/peers", q, nil, &res)
	return res, err
}

// Records lists the records the daemon stores for others.
func (c *Client) Records(ctx context.Context) ([]Record, error) {
	var all []Record
	after := ""
	for {
		page, err := c.RecordsPage(ctx, after, MaxRecordsLimit)
		if err != nil {
			return nil, err
		}
		all = append(all, page.Records...)
		if page.Next == "" || page.Next <= after {
			return all, nil
		}
		after = page.Next
	}
}

// RecordsPage lists up to limit of the records the node stores, after the
// cursor after ("" for the first page).
func (c *Client) RecordsPage(ctx context.Context, after string, limit int) (RecordsResult, error) {
	q := url.Values{"limit": {strconv.Itoa(limit)}}
	if after != "" {
		q.Set("after", after)
	}
	var res RecordsResult
	err := c.do(ctx, http.MethodGet, "/v1/records", q, nil, &res)
	return res, err
}

// TSUPLinks lists the daemon's TSUP links.
func (c *Client) TSUPLinks(ctx context.Context) ([]TSUPLink, error) {
	var res TSUPLinksResult
	err := c.do(ctx, http.MethodGet, "/v1/tsup/links", nil, nil, &res)
	return res.Links, err
}

// TSUPSwarms lists the swarms of the daemon's TSUP overlay.
func (c *Client) TSUPSwarms(ctx context.Context) ([]TSUPSwarm, error) {
	var res TSUPSwarmsResult
	err := c.do(ctx, http.MethodGet, "/v1/tsup/swarms", nil, nil, &res)
	return res.Swarms, err
}

// Bridge returns the state of the daemon's bridge to classic trackers.
func (c *Client) Bridge(ctx context.Context) (BridgeState, error) {
	var res BridgeState
	err := c.do(ctx, http.MethodGet, "/v1/bridge", nil, nil, &res)
	return res, err
}

// Routing lists the daemon's routing table.
func (c *Client) Routing(ctx context.Context) ([]RoutingPeer, error) {
	var res RoutingResult
	err := c.do(ctx, http.MethodGet, "/v1/routing", nil, nil, &res)
	return res.Peers, err
}
