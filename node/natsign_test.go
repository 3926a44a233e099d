package node

import (
	"net/netip"
	"testing"

	"github.com/kadtracker/kadtracker/records"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	ma "github.com/multiformats/go-multiaddr"
)

// unreachableNATHost is a host behind a NAT without a mapping once AutoNAT
// v2 found the NAT's observed address unreachable: Addrs leaves it out.
type unreachableNATHost struct {
	host.Host
	lan, all []ma.Multiaddr
}

func (h unreachableNATHost) Addrs() []ma.Multiaddr { return h.lan }

// allAddrsHost offers AllAddrs, every direct address, as libp2p's basic
// host does.
type allAddrsHost struct{ unreachableNATHost }

func (h allAddrsHost) AllAddrs() []ma.Multiaddr { return h.all }

// A NATed node signs its NAT's address after AutoNAT v2 has found it
// unreachable; before the node read AllAddrs, its records then carried its
// LAN address, and every storing node refused them (ErrWrongAddr).
func TestSignedAddrBehindNATAfterAutoNAT(t *testing.T) {
	lan := ma.StringCast("/ip4/192.168.1.2/tcp/4001")
	nat := ma.StringCast("/ip4/11.8.0.10/tcp/4001")
	base := unreachableNATHost{lan: []ma.Multiaddr{lan}, all: []ma.Multiaddr{lan, nat}}
	want := netip.MustParseAddr("11.8.0.10")

	n := &Node{host: allAddrsHost{base}}
	if got := n.hostAddr(records.IsGlobal); got != want {
		t.Fatalf("global address %v, want the NAT's %v", got, want)
	}
	if got := n.ownAddr(); got != want {
		t.Fatalf("own record's address %v, want %v", got, want)
	}
	// Control: reading Addrs alone, the NAT's address is gone.
	n = &Node{host: base}
	if got := n.hostAddr(records.IsGlobal); got.IsValid() {
		t.Fatalf("control: Addrs alone gave a global address %v", got)
	}

	// The host the node builds offers AllAddrs, so the above applies.
	key, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := offlineConfig()
	cfg.ListenAddrs = []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/0")}
	h, err := newHost(cfg, key, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if _, ok := h.(interface{ AllAddrs() []ma.Multiaddr }); !ok {
		t.Fatalf("%T has no AllAddrs: NATed nodes would sign their LAN address", h)
	}
}
