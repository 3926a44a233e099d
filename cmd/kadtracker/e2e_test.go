package main

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kadtracker/kadtracker/node/localapi"
)

// TestDaemonStarts runs two daemon processes, the second bootstrapping from
// the first, and checks what a user sees: the logged identity, status, and a
// clean stop.
func TestDaemonStarts(t *testing.T) {
	a := startDaemon(t, "--dht-mode", "server")
	for _, want := range append([]string{a.PeerID}, a.Addrs...) {
		if !strings.Contains(a.Logs(), want) {
			t.Errorf("the log does not show %s:\n%s", want, a.Logs())
		}
	}
	for _, addr := range a.Addrs {
		if !strings.HasPrefix(addr, "/ip4/127.0.0.1/") || !strings.HasSuffix(addr, "/p2p/"+a.PeerID) {
			t.Errorf("address %s: want a full loopback multiaddr", addr)
		}
	}
	out, errOut, code := a.CLI(t, "status")
	if code != 0 || !strings.Contains(out, a.PeerID) {
		t.Errorf("status: exit %d, %q %q", code, out, errOut)
	}

	b := startDaemon(t, "--dht-mode", "server", "--bootstrap", a.Addr())
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, _, _ := a.CLI(t, "routing", "--json")
		var rt localapi.RoutingResult
		if json.Unmarshal([]byte(out), &rt) == nil && len(rt.Peers) > 0 && rt.Peers[0].PeerID == b.PeerID {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never entered %s's routing table; last answer %s", b.PeerID, a.PeerID, out)
		}
		time.Sleep(200 * time.Millisecond)
	}

	if err := b.Stop(); err != nil {
		t.Errorf("stop: %v", err)
	}
	if _, err := os.Lstat(b.Socket); !os.IsNotExist(err) {
		t.Errorf("socket left behind after a clean stop: %v", err)
	}
	_, errOut, code = b.CLI(t, "status")
	if want := "kadtracker: no daemon at " + b.Socket + " (start it with 'kadtracker run')\n"; code != 1 || errOut != want {
		t.Errorf("status of a stopped daemon: exit %d, %q; want 1, %q", code, errOut, want)
	}
}
