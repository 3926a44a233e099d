package bootstrap

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
)

// MaxParallelDials is how many peers Connect dials at once.
const MaxParallelDials = 16

// ErrEmptyPeerID is wrapped by Connect's error for a peer without an ID.
var ErrEmptyPeerID = errors.New("bootstrap: empty peer ID")

// Connect dials peers from h, at most MaxParallelDials at a time, each with
// its own deadline of timeout (timeout <= 0: only ctx bounds a dial). Entries
// for the same peer are merged and h's own ID is skipped. It returns how many
// peers are connected and the errors.Join of the failures, each naming its
// peer. It returns when every dial has finished; if ctx ends first, the peers
// not yet dialed fail with ctx's error.
func Connect(ctx context.Context, h host.Host, peers []peer.AddrInfo, timeout time.Duration) (connected int, err error) {
	peers = merge(peers)
	self := h.ID()
	errs := make([]error, len(peers)) // by index: the joined error lists peers in input order
	var (
		ok  atomic.Int64
		wg  sync.WaitGroup
		sem = make(chan struct{}, MaxParallelDials)
	)
	for i, p := range peers {
		switch {
		case p.ID == self:
			continue
		case p.ID == "":
			errs[i] = ErrEmptyPeerID
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			errs[i] = fmt.Errorf("bootstrap: connect %s: %w", p.ID, ctx.Err())
			continue
		}
		wg.Go(func() {
			defer func() { <-sem }()
			dctx := ctx
			if timeout > 0 {
				var cancel context.CancelFunc
				dctx, cancel = context.WithTimeout(ctx, timeout)
				defer cancel()
			}
			if err := h.Connect(dctx, p); err != nil {
				errs[i] = fmt.Errorf("bootstrap: connect %s: %w", p.ID, err)
				return
			}
			ok.Add(1)
		})
	}
	wg.Wait()
	return int(ok.Load()), errors.Join(errs...)
}
