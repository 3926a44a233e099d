package main

import (
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kadtracker/kadtracker/node/localapi"
)

var started = time.Date(2026, 11, 22, 1, 2, 3, 0, time.UTC)

func fullBackend(t testing.TB) *fakeBackend {
	return &fakeBackend{
		status: localapi.Status{
			PeerID:           peerID,
			Addrs:            []string{"/ip4/127.0.0.1/tcp/4001/p2p/" + peerID},
			RoutingTableSize: 12, RecordsStored: 30, KeysStored: 5, Announced: 2,
			Replication: 8, DHTMode: "server", Started: started,
			Network: "kadtracker", Reachability: "public",
			PublicAddrs: []string{"/ip4/203.0.113.7/tcp/4001"},
			PortMapping: localapi.PortMapping{Enabled: true, Gateway: true, Mapped: []string{"/ip4/203.0.113.7/tcp/4001"}},
			Rendezvous: localapi.Rendezvous{Enabled: true, State: "resting", Namespace: "/kadtracker/rendezvous/v1/kadtracker",
				DHTPeers: 20, Rounds: 2, PeersFound: 9, PeersConnected: 4, LastSuccess: started.Add(time.Minute)},
			Publish: &localapi.Publish{Keys: 5000, CapacityKeys: 19000, LapsedTotal: 3},
		},
		announce: localapi.AnnounceResult{StoredOn: 5, Targets: 8},
		peers: localapi.PeersResult{
			Peers: []localapi.Peer{
				{IP: "127.0.0.1", Port: 6881, Seed: true, Announcer: "12D3KooWA"},
				{IP: "::1", Port: 51413, Announcer: "12D3KooWB"},
			},
			Seeds: 1, Leechers: 2,
			Stats: localapi.LookupStats{Hops: 3, Queried: 10, Asked: 8, Answered: 7, DurationMS: 12.5},
		},
		records: []localapi.Record{
			{Infohash: mustKey(t, hexV1), IP: "192.0.2.1", Port: 6881, Seed: true, Announcer: "12D3KooWA", Expires: started.Add(30 * time.Minute)},
			{Infohash: mustKey(t, hexV1), Port: 6882, Announcer: peerID, Expires: started.Add(time.Hour)},
		},
		routing: []localapi.RoutingPeer{
			{PeerID: "12D3KooWA", Addrs: []string{"/ip4/127.0.0.1/tcp/4002", "/ip4/127.0.0.1/udp/4002/quic-v1"}, CPL: 1, Connected: true},
			{PeerID: "12D3KooWB", CPL: 3},
		},
	}
}

// TestClientJSON pins what scripts read: --json prints the local API's JSON,
// one object on one line, with docs/design.md's field names.
func TestClientJSON(t *testing.T) {
	b := fullBackend(t)
	sock := serveAPI(t, b)
	empty := serveAPI(t, &fakeBackend{status: localapi.Status{PeerID: peerID, Started: started}})
	tests := []struct {
		name string
		sock string
		args []string
		want string
	}{
		{"status", sock, []string{"status"},
			`{"peer_id":"` + peerID + `","addrs":["/ip4/127.0.0.1/tcp/4001/p2p/` + peerID + `"],"routing_table_size":12,"records_stored":30,"keys_stored":5,"announced":2,"replication":8,"dht_mode":"server","started":"2026-11-22T01:02:03Z","network":"kadtracker","reachability":"public","public_addrs":["/ip4/203.0.113.7/tcp/4001"],"port_mapping":{"enabled":true,"gateway":true,"mapped":["/ip4/203.0.113.7/tcp/4001"]},"rendezvous":{"enabled":true,"serving":false,"state":"resting","namespace":"/kadtracker/rendezvous/v1/kadtracker","dht_peers":20,"rounds":2,"peers_found":9,"peers_connected":4,"last_success":"2026-11-22T01:03:03Z"},"publish":{"keys":5000,"capacity_keys":19000,"lapsed_total":3}}`},
		{"status empty", empty, []string{"status"},
			`{"peer_id":"` + peerID + `","addrs":[],"routing_table_size":0,"records_stored":0,"keys_stored":0,"announced":0,"replication":0,"dht_mode":"","started":"2026-11-22T01:02:03Z"}`},
		{"announce", sock, []string{"announce", hexV1, "--port", "6881", "--seed"}, `{"stored_on":5,"targets":8}`},
		{"withdraw", sock, []string{"withdraw", hexV1}, `{"infohash":"` + hexV1 + `"}`},
		{"peers", sock, []string{"peers", hexV1, "--want", "20"},
			`{"peers":[{"ip":"127.0.0.1","port":6881,"seed":true,"announcer":"12D3KooWA"},{"ip":"::1","port":51413,"seed":false,"announcer":"12D3KooWB"}],"seeds":1,"leechers":2,"stats":{"hops":3,"queried":10,"asked":8,"answered":7,"duration_ms":12.5}}`},
		{"peers none", empty, []string{"peers", hexV1},
			`{"peers":[],"seeds":0,"leechers":0,"stats":{"hops":0,"queried":0,"asked":0,"answered":0,"duration_ms":0}}`},
		{"records", sock, []string{"records"},
			`{"records":[{"infohash":"` + hexV1 + `","ip":"192.0.2.1","port":6881,"seed":true,"announcer":"12D3KooWA","expires":"2026-11-22T01:32:03Z"},{"infohash":"` + hexV1 + `","ip":"","port":6882,"seed":false,"announcer":"` + peerID + `","expires":"2026-11-22T02:02:03Z"}]}`},
		{"records none", empty, []string{"records"}, `{"records":[]}`},
		{"routing", sock, []string{"routing"},
			`{"peers":[{"peer_id":"12D3KooWA","addrs":["/ip4/127.0.0.1/tcp/4002","/ip4/127.0.0.1/udp/4002/quic-v1"],"cpl":1,"connected":true},{"peer_id":"12D3KooWB","addrs":[],"cpl":3,"connected":false}]}`},
		{"routing none", empty, []string{"routing"}, `{"peers":[]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, code := cli(t, home, append(tt.args, "--json", "--rpc-socket", tt.sock)...)
			if code != 0 || errOut != "" {
				t.Fatalf("exit %d, stderr %q", code, errOut)
			}
			if out != tt.want+"\n" {
				t.Errorf("stdout\n got %s\nwant %s", out, tt.want)
			}
		})
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.gotKey != mustKey(t, hexV1) || b.gotWant != 20 || b.gotPort != 6881 || !b.gotSeed || b.withdrawn != mustKey(t, hexV1) {
		t.Errorf("the daemon got key %v, want %d, port %d, seed %v, withdrawn %v", b.gotKey, b.gotWant, b.gotPort, b.gotSeed, b.withdrawn)
	}
}

func TestClientText(t *testing.T) {
	sock := serveAPI(t, fullBackend(t))
	empty := serveAPI(t, &fakeBackend{})
	tests := []struct {
		name string
		sock string
		args []string
		want string
	}{
		{"status", sock, []string{"status"}, `peer ID:           ` + peerID + `
addresses:         /ip4/127.0.0.1/tcp/4001/p2p/` + peerID + `
routing table:     12 peers
records stored:    30 for 5 infohashes
announcing:        2 infohashes
publishing:        5000 keys; the scheduler keeps about 19000 alive; 3 records lapsed
replication:       8
DHT mode:          server
reachability:      public
public addresses:  /ip4/203.0.113.7/tcp/4001
port mapping:      /ip4/203.0.113.7/tcp/4001
rendezvous:        resting, 9 peers found, 4 connected, last success 2026-11-22T01:03:03Z
started:           2026-11-22T01:02:03Z
`},
		{"announce", sock, []string{"announce", hexV1, "--port", "6881"},
			"announced " + hexV1 + " (port 6881, leecher): stored on 5 of 8 nodes\n"},
		{"withdraw", sock, []string{"withdraw", hexV1}, "withdrew " + hexV1 + "\n"},
		{"peers", sock, []string{"peers", hexV1}, `IP         PORT   SEED  ANNOUNCER
127.0.0.1  6881   yes   12D3KooWA
::1        51413  no    12D3KooWB

2 peers (the swarm reports 1 seeds, 2 leechers); lookup: 3 hops, 10 nodes queried, 7 of 8 storing nodes answered, 12.5ms
`},
		{"peers none", empty, []string{"peers", hexV1},
			"0 peers (the swarm reports 0 seeds, 0 leechers); lookup: 0 hops, 0 nodes queried, 0 of 0 storing nodes answered, 0s\n"},
		{"records", sock, []string{"records"}, `INFOHASH                                  IP         PORT  SEED  ANNOUNCER                                             EXPIRES
` + hexV1 + `  192.0.2.1  6881  yes   12D3KooWA                                             2026-11-22T01:32:03Z
` + hexV1 + `  -          6882  no    ` + peerID + `  2026-11-22T02:02:03Z
`},
		{"records none", empty, []string{"records"}, "no records stored\n"},
		{"routing", sock, []string{"routing"}, `PEER ID    CPL  CONNECTED  ADDRESSES
12D3KooWA  1    yes        /ip4/127.0.0.1/tcp/4002,/ip4/127.0.0.1/udp/4002/quic-v1
12D3KooWB  3    no         -
`},
		{"routing none", empty, []string{"routing"}, "the routing table is empty\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, code := cli(t, home, append(tt.args, "--rpc-socket", tt.sock)...)
			if code != 0 || errOut != "" {
				t.Fatalf("exit %d, stderr %q", code, errOut)
			}
			if out != tt.want {
				t.Errorf("stdout\n got %q\nwant %q", out, tt.want)
			}
		})
	}
}

// TestClientFindsSocketInDataDir checks --data-dir and the environment reach
// a real socket.
func TestClientFindsSocketInDataDir(t *testing.T) {
	sock := serveAPI(t, fullBackend(t))
	dir := filepath.Dir(sock)
	for name, c := range map[string]struct {
		env  env
		args []string
	}{
		"--data-dir":             {env{}, []string{"--data-dir", dir}},
		"KADTRACKER_RPC_SOCKET":  {env{"KADTRACKER_RPC_SOCKET": sock}, nil},
		"KADTRACKER_DATA_DIR":    {env{"KADTRACKER_DATA_DIR": dir}, nil},
		"XDG_DATA_HOME is wrong": {env{"XDG_DATA_HOME": "/nonexistent", "KADTRACKER_DATA_DIR": dir}, nil},
	} {
		if _, errOut, code := cli(t, c.env, append([]string{"status"}, c.args...)...); code != 0 {
			t.Errorf("%s: exit %d, %s", name, code, errOut)
		}
	}
}

func TestClientNoDaemon(t *testing.T) {
	dir := shortDir(t)
	stale := filepath.Join(dir, "stale.sock")
	ln, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	missing := filepath.Join(dir, "missing", "kadtracker.sock")
	for _, sock := range []string{missing, stale} {
		for _, args := range [][]string{
			{"status"}, {"status", "--json"}, {"announce", hexV1, "--port", "1"}, {"withdraw", hexV1},
			{"peers", hexV1}, {"records"}, {"routing", "--json"},
		} {
			out, errOut, code := cli(t, home, append(args, "--rpc-socket", sock)...)
			want := "kadtracker: no daemon at " + sock + " (start it with 'kadtracker run')\n"
			if code != 1 || out != "" || errOut != want {
				t.Errorf("%q on %s: exit %d, stdout %q, stderr %q; want exit 1, stderr %q", args, filepath.Base(sock), code, out, errOut, want)
			}
		}
	}
	// Found through the data dir, the message names the socket too.
	_, errOut, _ := cli(t, env{"KADTRACKER_DATA_DIR": dir}, "status")
	if want := filepath.Join(dir, socketName); !strings.Contains(errOut, "no daemon at "+want+" ") {
		t.Errorf("stderr %q does not name %s", errOut, want)
	}
}

func TestClientDaemonError(t *testing.T) {
	b := fullBackend(t)
	b.err = errors.New("node: no DHT servers known")
	sock := serveAPI(t, b)
	out, errOut, code := cli(t, home, "announce", hexV1, "--port", "1", "--json", "--rpc-socket", sock)
	if code != 1 || out != "" || errOut != "kadtracker: node: no DHT servers known\n" {
		t.Errorf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}
