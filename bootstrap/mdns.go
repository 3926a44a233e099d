package bootstrap

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
)

// DefaultServiceName is the mDNS service kadtracker nodes announce and
// browse. Nodes find each other only under the same name.
const DefaultServiceName = "kadtracker"

// foundQueue is how many discovered peers may wait for the found callback;
// more are dropped (mDNS repeats itself, so a dropped peer comes back).
const foundQueue = 64

// StartMDNS announces h on the local network under serviceName (empty means
// DefaultServiceName) and calls found for every other peer discovered there.
// found runs on a single goroutine owned by the returned Closer, one call at
// a time, possibly more than once for the same peer (each mDNS answer counts);
// it should not block for long. Close stops announcing and browsing, waits
// for a running found to return, and calls found no more; it is idempotent.
func StartMDNS(h host.Host, serviceName string, found func(peer.AddrInfo)) (io.Closer, error) {
	if found == nil {
		return nil, errors.New("bootstrap: mdns: nil found callback")
	}
	if serviceName == "" {
		serviceName = DefaultServiceName
	}
	ctx, cancel := context.WithCancel(context.Background())
	d := &mdnsDiscovery{
		self:   h.ID(),
		ctx:    ctx,
		cancel: cancel,
		queue:  make(chan peer.AddrInfo, foundQueue),
	}
	d.svc = mdns.NewMdnsService(h, serviceName, d)
	d.wg.Go(func() { d.deliver(found) })
	if err := d.svc.Start(); err != nil {
		d.Close()
		return nil, fmt.Errorf("bootstrap: mdns: %w", err)
	}
	return d, nil
}

type mdnsDiscovery struct {
	self   peer.ID
	svc    mdns.Service
	ctx    context.Context // done once Close starts
	cancel context.CancelFunc
	queue  chan peer.AddrInfo // never closed: late senders select on ctx instead
	wg     sync.WaitGroup     // the deliver goroutine

	closeOnce sync.Once
	closeErr  error
}

// HandlePeerFound implements mdns.Notifee. The mdns service calls it on a
// goroutine of its own per answer, which Close does not wait for; so it only
// queues, never blocks, and does nothing once Close has started.
func (d *mdnsDiscovery) HandlePeerFound(info peer.AddrInfo) {
	if info.ID == d.self || d.ctx.Err() != nil {
		return
	}
	select {
	case d.queue <- info:
	default: // full: drop, the peer will answer again
	}
}

func (d *mdnsDiscovery) deliver(found func(peer.AddrInfo)) {
	for {
		select {
		case <-d.ctx.Done():
			return
		case info := <-d.queue:
			if d.ctx.Err() != nil {
				return
			}
			found(info)
		}
	}
}

// Close stops mDNS and waits for the callback goroutine.
func (d *mdnsDiscovery) Close() error {
	d.closeOnce.Do(func() {
		d.cancel()
		d.closeErr = d.svc.Close()
		d.wg.Wait()
	})
	return d.closeErr
}
