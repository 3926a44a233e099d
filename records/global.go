package records

import (
	"errors"
	"fmt"
	"net/netip"
)

// ErrNotGlobal refuses a bridged endpoint no stranger should be sent to.
var ErrNotGlobal = errors.New("records: endpoint is not a global unicast address")

// nonGlobal are the special-purpose ranges (RFC 6890 and its updates) a
// bridged endpoint may not name: dialing them reaches the dialer's own
// host, its LAN, its provider's NAT or nothing, which is what makes a
// bridged record a tool against the users who look it up. IPv6 prefixes
// that embed an IPv4 address (NAT64, 6to4) are refused whole: they may
// embed a private one.
var nonGlobal = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),       // "this network"
	netip.MustParsePrefix("10.0.0.0/8"),      // private
	netip.MustParsePrefix("100.64.0.0/10"),   // carrier-grade NAT
	netip.MustParsePrefix("127.0.0.0/8"),     // loopback
	netip.MustParsePrefix("169.254.0.0/16"),  // link-local, cloud metadata
	netip.MustParsePrefix("172.16.0.0/12"),   // private
	netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments
	netip.MustParsePrefix("192.0.2.0/24"),    // documentation (TEST-NET-1)
	netip.MustParsePrefix("192.88.99.0/24"),  // 6to4 relay anycast
	netip.MustParsePrefix("192.168.0.0/16"),  // private
	netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking
	netip.MustParsePrefix("198.51.100.0/24"), // documentation (TEST-NET-2)
	netip.MustParsePrefix("203.0.113.0/24"),  // documentation (TEST-NET-3)
	netip.MustParsePrefix("224.0.0.0/4"),     // multicast
	netip.MustParsePrefix("240.0.0.0/4"),     // reserved, broadcast
	netip.MustParsePrefix("::/128"),          // unspecified
	netip.MustParsePrefix("::1/128"),         // loopback
	netip.MustParsePrefix("::/96"),           // IPv4-compatible (deprecated)
	netip.MustParsePrefix("::ffff:0:0/96"),   // IPv4-mapped
	netip.MustParsePrefix("::ffff:0:0:0/96"), // IPv4-translated (SIIT)
	netip.MustParsePrefix("64:ff9b::/96"),    // NAT64
	netip.MustParsePrefix("64:ff9b:1::/48"),  // local-use NAT64
	netip.MustParsePrefix("100::/64"),        // discard-only
	netip.MustParsePrefix("2001::/23"),       // IETF protocol assignments (Teredo, ORCHID, ...)
	netip.MustParsePrefix("2001:db8::/32"),   // documentation
	netip.MustParsePrefix("2002::/16"),       // 6to4
	netip.MustParsePrefix("3fff::/20"),       // documentation
	netip.MustParsePrefix("fc00::/7"),        // unique local
	netip.MustParsePrefix("fe80::/10"),       // link-local
	netip.MustParsePrefix("ff00::/8"),        // multicast
}

// IsGlobal reports whether a is a global unicast address: none of the
// loopback, private, link-local, unique-local, carrier-grade NAT,
// multicast, unspecified, documentation or other special ranges.
func IsGlobal(a netip.Addr) bool {
	if !a.IsValid() || a.Zone() != "" || !a.IsGlobalUnicast() {
		return false
	}
	for _, p := range nonGlobal {
		if p.Contains(a) {
			return false
		}
	}
	return true
}

// CheckGlobalEndpoint is CheckEndpoint for a bridged endpoint served to
// strangers: it must also be global (IsGlobal). Storing nodes refuse, and
// lookups drop, bridged endpoints that fail it, unless a test network on
// loopback turns the rule off (node.Config.LocalBridgedEndpoints).
func CheckGlobalEndpoint(ep netip.AddrPort) error {
	if err := checkEndpoint(ep); err != nil {
		return err
	}
	if !IsGlobal(ep.Addr()) {
		return fmt.Errorf("%w: %s", ErrNotGlobal, ep)
	}
	return nil
}
