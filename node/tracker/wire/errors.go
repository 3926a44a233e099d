package wire

import (
	"errors"
	"fmt"
)

// Sentinel kinds; every *Error unwraps to one of them.
var (
	// ErrBadQuery: an HTTP announce or scrape query is malformed.
	ErrBadQuery = errors.New("wire: bad tracker query")
	// ErrBadPacket: a BEP 15 UDP packet is malformed.
	ErrBadPacket = errors.New("wire: bad UDP tracker packet")
	// ErrBadBencode: bytes are not one canonical bencoded value.
	ErrBadBencode = errors.New("wire: bad bencode")
	// ErrBadResponse: a tracker response is well-formed bencode but not a valid response.
	ErrBadResponse = errors.New("wire: bad tracker response")
)

// Error is a parse error meant for the remote side: its text is a short
// sentence fit for a tracker "failure reason" or a BEP 15 error packet. It
// never carries more than a few quoted bytes of the input.
type Error struct {
	kind error
	msg  string
}

func (e *Error) Error() string { return e.msg }

// Unwrap returns the sentinel kind (ErrBadQuery, ErrBadPacket, ...).
func (e *Error) Unwrap() error { return e.kind }

func errf(kind error, format string, args ...any) *Error {
	return &Error{kind: kind, msg: fmt.Sprintf(format, args...)}
}

// FailureError is a tracker's answer carrying "failure reason" (HTTP), as a
// client-side decoder reports it.
type FailureError struct {
	Reason string
}

func (e *FailureError) Error() string { return "tracker failure: " + e.Reason }

// quote shows at most 32 bytes of untrusted input in an error message.
func quote(s string) string {
	const max = 32
	if len(s) > max {
		return fmt.Sprintf("%q...", s[:max])
	}
	return fmt.Sprintf("%q", s)
}
