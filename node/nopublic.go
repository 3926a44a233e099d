package node

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// NoPublicNetworkEnv, set to 1, makes every node of the process refuse to
// reach beyond the machine on its own: test harnesses set it for the daemons
// they spawn. Test binaries behave as if it were set.
const NoPublicNetworkEnv = "KADTRACKER_NO_PUBLIC_NETWORK"

// ErrPublicNetwork is returned by New when the configuration would reach the
// public Internet where that is forbidden (see NoPublicNetworkEnv).
var ErrPublicNetwork = errors.New("node: configuration reaches the public Internet, which tests and " + NoPublicNetworkEnv + "=1 forbid")

// publicNetworkForbidden reports whether this process may not reach the
// public network by default.
func publicNetworkForbidden(getenv func(string) string) bool {
	return testing.Testing() || getenv(NoPublicNetworkEnv) == "1"
}

// checkNoPublicNetwork refuses, where the public network is forbidden, what
// would reach it unasked: rendezvous through the public bootstrap peers or
// any name that needs DNS, and port mapping (UPnP multicast, NAT-PMP to the
// gateway) from the machine's own network namespace. A test that builds
// its own namespaces may map ports inside them.
func checkNoPublicNetwork(cfg Config, forbidden bool, ownNetns func() bool) error {
	if !forbidden {
		return nil
	}
	var errs []error
	if cfg.Rendezvous {
		public := make(map[peer.ID]bool)
		for _, p := range dht.GetDefaultBootstrapPeerAddrInfos() {
			public[p.ID] = true
		}
		for _, p := range cfg.RendezvousBootstrap {
			if public[p.ID] {
				errs = append(errs, fmt.Errorf("%w: rendezvous through the public bootstrap peer %s; set RendezvousBootstrap (--rendezvous-bootstrap) to your own peers or Rendezvous=false (--rendezvous=false)", ErrPublicNetwork, p.ID))
				break
			}
			for _, a := range p.Addrs {
				if needsDNS(a) {
					errs = append(errs, fmt.Errorf("%w: rendezvous bootstrap address %s needs DNS", ErrPublicNetwork, a))
				}
			}
		}
	}
	if cfg.NATPortMap && cfg.Host == nil && !ownNetns() {
		errs = append(errs, fmt.Errorf("%w: NAT port mapping from the host's own network namespace; set NATPortMap=false (--nat-portmap=false)", ErrPublicNetwork))
	}
	return errors.Join(errs...)
}

func needsDNS(a ma.Multiaddr) bool {
	for _, c := range a {
		switch c.Protocol().Code {
		case ma.P_DNS, ma.P_DNS4, ma.P_DNS6, ma.P_DNSADDR:
			return true
		}
	}
	return false
}

// inOwnNetns reports whether this process runs in a network namespace that
// `ip netns add` created (one of /run/netns), as tests that build their own
// networks do. Anything it cannot read counts as no.
func inOwnNetns() bool {
	self, err := os.Stat("/proc/self/ns/net")
	if err != nil {
		return false
	}
	named, err := os.ReadDir(netnsDir)
	if err != nil {
		return false
	}
	for _, e := range named {
		if fi, err := os.Stat(filepath.Join(netnsDir, e.Name())); err == nil && os.SameFile(self, fi) {
			return true
		}
	}
	return false
}

// netnsDir is where iproute2 keeps named network namespaces.
const netnsDir = "/run/netns"
