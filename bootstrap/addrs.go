// Package bootstrap is how a kadtracker node joins the network: static
// multiaddrs from the command line or environment, peers remembered from
// the last run, and mDNS on the local network.
//
// It is a leaf: it knows libp2p hosts and peer addresses, nothing of the
// node, the DHT or records. The node decides what to do with the peers it
// gets from here; bootstrap only parses, remembers, dials and discovers.
package bootstrap

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// Errors wrapped by an *AddrError.
var (
	// ErrNoPeerID means a multiaddr does not end in /p2p/<peer ID>.
	ErrNoPeerID = errors.New("no /p2p/ peer ID")
	// ErrBadMultiaddr means a string is not a multiaddr at all.
	ErrBadMultiaddr = errors.New("invalid multiaddr")
)

// AddrError reports a bootstrap address that cannot be used. Its message
// names the offending entry, e.g.
//
//	bootstrap: "/ip4/1.2.3.4/tcp/4001": no /p2p/ peer ID
type AddrError struct {
	Addr string // the entry as given, trimmed
	Err  error  // ErrNoPeerID or ErrBadMultiaddr, possibly joined with the parser's error
}

func (e *AddrError) Error() string { return fmt.Sprintf("bootstrap: %q: %v", e.Addr, e.Err) }

func (e *AddrError) Unwrap() error { return e.Err }

// SplitList splits a comma-separated list, as given to --bootstrap or
// KADTRACKER_BOOTSTRAP, into its entries. Surrounding white space is trimmed
// and empty entries are dropped, so "a, b,,c " is ["a" "b" "c"].
func SplitList(s string) []string {
	var out []string
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// ParseAddrs parses bootstrap multiaddrs. Each must end in /p2p/<peer ID>;
// addresses of the same peer are merged into one AddrInfo, in order of first
// appearance, without duplicate addresses. Empty and all-white-space entries
// are ignored. A bare /p2p/<peer ID> is accepted and gives a peer with no
// addresses (dialable only if the peerstore already knows some).
//
// On error ParseAddrs returns no peers and an error that names every bad
// entry (each an *AddrError, joined with errors.Join).
func ParseAddrs(addrs []string) ([]peer.AddrInfo, error) {
	var (
		infos []peer.AddrInfo
		errs  []error
	)
	for _, s := range addrs {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		info, err := parseAddr(s)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		infos = append(infos, info)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return merge(infos), nil
}

func parseAddr(s string) (peer.AddrInfo, error) {
	m, err := ma.NewMultiaddr(s)
	if err != nil {
		return peer.AddrInfo{}, &AddrError{Addr: s, Err: fmt.Errorf("%w: %w", ErrBadMultiaddr, err)}
	}
	transport, id := peer.SplitAddr(m)
	if id == "" {
		return peer.AddrInfo{}, &AddrError{Addr: s, Err: ErrNoPeerID}
	}
	info := peer.AddrInfo{ID: id}
	if len(transport) > 0 {
		info.Addrs = []ma.Multiaddr{transport}
	}
	return info, nil
}

// merge folds entries of the same peer into one, keeping the order in which
// peers and addresses first appear and dropping duplicate addresses. The
// result shares no slices with the input.
func merge(infos []peer.AddrInfo) []peer.AddrInfo {
	out := make([]peer.AddrInfo, 0, len(infos))
	index := make(map[peer.ID]int, len(infos))
	for _, in := range infos {
		i, ok := index[in.ID]
		if !ok {
			i = len(out)
			index[in.ID] = i
			out = append(out, peer.AddrInfo{ID: in.ID})
		}
		for _, a := range in.Addrs {
			if len(a) == 0 || slices.ContainsFunc(out[i].Addrs, a.Equal) {
				continue
			}
			out[i].Addrs = append(out[i].Addrs, a)
		}
	}
	return out
}
