package tracker

import (
	"errors"
	"net/netip"
	"slices"
	"testing"

	"github.com/kadtracker/kadtracker/node/tracker/wire"
	"github.com/kadtracker/kadtracker/records"
)

// A tracker serving other hosts: BEP 24's external ip in HTTP answers, an
// allowlist, and the clients of each swarm for publishing.
func TestPublicTracker(t *testing.T) {
	cfg := testConfig()
	cfg.ExternalIP = true
	allowed := ihash(1)
	cfg.Allow = func(ih [20]byte) bool { return ih == allowed }
	tr := newTracker(t, newFakeNode(), cfg)
	base := serveHTTP(t, tr)

	resp := httpAnnounce(t, base, areq(allowed, 7001, 0))
	if resp.ExternalIP != netip.MustParseAddr("127.0.0.1") {
		t.Errorf("external ip %v", resp.ExternalIP)
	}
	_, _, body := get(t, announceURL(base, areq(ihash(2), 7002, 0)))
	var fe *wire.FailureError
	if _, err := wire.ParseAnnounceResponse(body); !errors.As(err, &fe) || fe.Reason != "torrent not allowed on this tracker" {
		t.Errorf("announce of a torrent not allowed: %v", err)
	}
	clients := tr.Clients()
	if len(clients) != 1 || !slices.Equal(clients[records.SwarmKey(allowed)], []netip.AddrPort{ap("127.0.0.1:7001")}) {
		t.Errorf("Clients() = %v", clients)
	}
	// Without ExternalIP, no external ip.
	plain := newTracker(t, newFakeNode(), testConfig())
	if resp := httpAnnounce(t, serveHTTP(t, plain), areq(allowed, 7001, 0)); resp.ExternalIP.IsValid() {
		t.Errorf("external ip %v from a local front", resp.ExternalIP)
	}
}
