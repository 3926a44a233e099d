package setup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
)

// maxBody bounds what setup reads of one API answer: a client with
// thousands of torrents answers a few MiB.
const maxBody = 32 << 20

// api is what the backends share: one HTTP endpoint.
type api struct {
	http     *http.Client
	endpoint string
	limit    int // of an answer's bytes; maxBody
}

// do sends req and returns the status, headers and body; a refused or
// unreachable connection is ErrNotRunning.
func (a *api) do(req *http.Request) (int, http.Header, []byte, error) {
	resp, err := a.http.Do(req)
	if err != nil {
		if isDown(err) {
			return 0, nil, nil, fmt.Errorf("%w: %s: %v", ErrNotRunning, a.endpoint, errors.Unwrap(err))
		}
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, int64(a.limit)+1))
	if err != nil {
		return 0, nil, nil, fmt.Errorf("%s: %w", a.endpoint, err)
	}
	if len(body) > a.limit {
		return 0, nil, nil, fmt.Errorf("%w: %s: answer longer than %d bytes", ErrTooLong, a.endpoint, a.limit)
	}
	return resp.StatusCode, resp.Header, body, nil
}

func (a *api) request(ctx context.Context, method, url, contentType string, body []byte) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return req, nil
}

func isDown(err error) bool {
	var op *net.OpError
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.As(err, &op) && op.Op == "dial"
}

// short is the start of an answer, for an error message.
func short(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return fmt.Sprintf("%q", s)
}
