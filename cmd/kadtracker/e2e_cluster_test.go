package main

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/kadtracker/kadtracker/node/localapi"
)

// peersOf runs `kadtracker peers HEX --json` on d.
func peersOf(t *testing.T, d *daemonProc, infohash string) localapi.PeersResult {
	t.Helper()
	out, errOut, code := d.CLI(t, "peers", infohash, "--json")
	if code != 0 {
		t.Fatalf("peers on %s: exit %d: %s", d.PeerID, code, errOut)
	}
	var res localapi.PeersResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("peers --json printed %q: %v", out, err)
	}
	return res
}

func hasPeer(res localapi.PeersResult, ip string, port uint16, seed bool) bool {
	for _, p := range res.Peers {
		if p.IP == ip && p.Port == port && p.Seed == seed {
			return true
		}
	}
	return false
}

// waitRouting waits until d's routing table has at least n peers.
func waitRouting(t *testing.T, d *daemonProc, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, _, _ := d.CLI(t, "status", "--json")
		var st localapi.Status
		if json.Unmarshal([]byte(out), &st) == nil && st.RoutingTableSize >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: routing table never reached %d peers; status %s", d.PeerID, n, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestThreeDaemons is the core end-to-end test with real processes on
// loopback, joined as a bootstrap chain A <- B <- C:
//   - announce on A, and C finds 127.0.0.1 and the port;
//   - A is killed, and the record is still found (B and C hold copies);
//   - B is killed with SIGKILL and restarted on its data dir, C stops, and a
//     fresh D that knows only B finds the record: B served it from disk;
//   - once the TTL passes with no republish, it is gone.
func TestThreeDaemons(t *testing.T) {
	const (
		infohash = "5ab1e5ab1e5ab1e5ab1e5ab1e5ab1e5ab1e5ab1e"
		port     = 51413
		ttl      = 20 * time.Second
	)
	common := []string{"--dht-mode", "server", "--replication", "3", "--record-ttl", ttl.String(), "--republish", "4s"}
	a := startDaemon(t, common...)
	b := startDaemon(t, append(common, "--bootstrap", a.Addr())...)
	c := startDaemon(t, append(common, "--bootstrap", b.Addr())...)
	for _, d := range []*daemonProc{a, b, c} {
		waitRouting(t, d, 2)
	}

	out, errOut, code := a.CLI(t, "announce", infohash, "--port", "51413", "--seed", "--json")
	if code != 0 {
		t.Fatalf("announce: exit %d: %s", code, errOut)
	}
	var ann localapi.AnnounceResult
	if err := json.Unmarshal([]byte(out), &ann); err != nil || ann.StoredOn != 3 {
		t.Fatalf("announce --json printed %q (%v); want stored_on 3", out, err)
	}
	res := peersOf(t, c, infohash)
	if !hasPeer(res, "127.0.0.1", port, true) {
		t.Fatalf("C found %+v; want the seed at 127.0.0.1:%d", res.Peers, port)
	}
	if res.Stats.Queried == 0 {
		t.Errorf("lookup stats %+v: no DHT node queried", res.Stats)
	}

	a.Kill()
	killedAt := time.Now()
	if res := peersOf(t, c, infohash); !hasPeer(res, "127.0.0.1", port, true) {
		t.Fatalf("after the announcer died C found %+v", res.Peers)
	}

	b.Kill()
	b2 := startDaemon(t, "--data-dir", b.DataDir, "--listen", b.ListenAddr(), "--dht-mode", "server", "--record-ttl", ttl.String(), "--republish", "4s")
	if b2.PeerID != b.PeerID {
		t.Fatalf("B came back as %s, was %s", b2.PeerID, b.PeerID)
	}
	out, _, _ = b2.CLI(t, "records", "--json")
	var recs localapi.RecordsResult
	if err := json.Unmarshal([]byte(out), &recs); err != nil || len(recs.Records) != 1 || recs.Records[0].Infohash.Hex() != infohash || recs.Records[0].Port != port {
		t.Fatalf("B's records after SIGKILL and restart: %s (%v)", out, err)
	}
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, "--dht-mode", "server", "--bootstrap", b2.Addr())
	waitRouting(t, d, 1)
	if res := peersOf(t, d, infohash); !hasPeer(res, "127.0.0.1", port, true) {
		t.Fatalf("D, knowing only the restarted B, found %+v", res.Peers)
	}

	// The last republish was at most 4 s before the kill.
	deadline := killedAt.Add(ttl + 15*time.Second)
	for {
		res := peersOf(t, d, infohash)
		if len(res.Peers) == 0 {
			if gone := time.Since(killedAt); gone < ttl-5*time.Second {
				t.Fatalf("record gone %v after the announcer died, before its TTL %v", gone, ttl)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("record still found %v after the announcer died (TTL %v)", time.Since(killedAt), ttl)
		}
		time.Sleep(time.Second)
	}
}
