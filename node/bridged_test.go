package node

import (
	"context"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"
)

// A node publishes peers it learned from a classic tracker as a bridged
// record with its own client beside them; another node finds both, the
// bridged endpoints marked; they live BridgedRecordTTL; withdrawing either
// part keeps the other.
func TestPublishBridged(t *testing.T) {
	clock := newFakeClock()
	tn := newTestNet(t, 10, time.Millisecond, func(c *Config) {
		c.Replication = 3
		c.Clock = clock.Now
		// One bridge, naming documentation addresses: the publishing
		// mechanics, not the rules of vouching (see vouch_test.go).
		c.BridgeQuorum = 1
		c.LocalBridgedEndpoints = true
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	key := randomKey(t, rand.New(rand.NewPCG(8, 8)), false)
	bridger, other, asker := tn.nodes[0], tn.nodes[1], tn.nodes[9]
	tracked := []netip.AddrPort{
		netip.MustParseAddrPort("198.51.100.1:6881"),
		netip.MustParseAddrPort("[::ffff:198.51.100.2]:6882"), // published unmapped
		netip.MustParseAddrPort("0.0.0.0:1"),                  // dropped
		netip.MustParseAddrPort("198.51.100.1:6881"),          // once
	}
	if _, err := bridger.Announce(ctx, key, 7000, false); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Announce(ctx, key, 7001, true); err != nil {
		t.Fatal(err)
	}
	res, err := bridger.PublishBridged(ctx, key, tracked)
	if err != nil || res.StoredOn == 0 {
		t.Fatalf("PublishBridged: %+v, %v", res, err)
	}
	find := func(when string, want map[string]bool) {
		t.Helper()
		lr, err := asker.Lookup(ctx, key, 50)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]bool{}
		for _, p := range lr.Peers {
			got[p.Endpoint.String()] = p.Bridged
		}
		if len(got) != len(want) {
			t.Fatalf("%s: found %v, want %v", when, got, want)
		}
		for ep, bridged := range want {
			if b, ok := got[ep]; !ok || b != bridged {
				t.Fatalf("%s: found %v, want %v", when, got, want)
			}
		}
	}
	ownEP := netip.AddrPortFrom(connIP(t, bridger), 7000).String()
	otherEP := netip.AddrPortFrom(connIP(t, other), 7001).String()
	find("published", map[string]bool{ownEP: false, otherEP: false, "198.51.100.1:6881": true, "198.51.100.2:6882": true})

	// The client stops: the bridged endpoints stay.
	if err := bridger.Withdraw(ctx, key); err != nil {
		t.Fatal(err)
	}
	find("client withdrawn", map[string]bool{otherEP: false, "198.51.100.1:6881": true, "198.51.100.2:6882": true})
	// Bridged records expire sooner than plain ones.
	clock.Advance(bridger.cfg.BridgedRecordTTL + time.Second)
	find("after the bridged TTL", map[string]bool{otherEP: false})

	// Republished while kept: the republish loop runs on the real ticker,
	// so publish again by hand, then withdraw the bridged part alone.
	if _, err := bridger.PublishBridged(ctx, key, tracked[:1]); err != nil {
		t.Fatal(err)
	}
	if _, err := bridger.Announce(ctx, key, 7000, true); err != nil {
		t.Fatal(err)
	}
	find("again", map[string]bool{ownEP: false, otherEP: false, "198.51.100.1:6881": true})
	if err := bridger.WithdrawBridged(ctx, key); err != nil {
		t.Fatal(err)
	}
	find("bridged withdrawn", map[string]bool{ownEP: false, otherEP: false})
	if len(bridger.Bridged()) != 0 {
		t.Errorf("Bridged() = %v after WithdrawBridged", bridger.Bridged())
	}
	if lr, _ := asker.Lookup(ctx, key, 50); lr.Seeds != 2 || lr.Leechers != 0 {
		t.Errorf("counts %d seeds %d leechers, want 2 seeds", lr.Seeds, lr.Leechers)
	}
}
