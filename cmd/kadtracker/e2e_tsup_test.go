package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kadtracker/kadtracker/node/localapi"
	"github.com/kadtracker/kadtracker/node/tracker/wire"
)

// freeUDPPorts finds n UDP ports on 127.0.0.1 that were free a moment ago:
// TSUP links name their neighbours' ports before the neighbours start.
func freeUDPPorts(t *testing.T, n int) []int {
	t.Helper()
	var conns []net.PacketConn
	var ports []int
	for range n {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		ports = append(ports, c.LocalAddr().(*net.UDPAddr).Port)
	}
	for _, c := range conns {
		c.Close()
	}
	return ports
}

// httpAnnounce sends one announce to an HTTP tracker URL and returns the
// peers it answered with.
func httpAnnounce(t *testing.T, url string, ih [20]byte, port uint16, left int64) []netip.AddrPort {
	t.Helper()
	req := wire.AnnounceRequest{InfoHash: ih, Port: port, Left: left, Compact: true, NumWant: 50}
	copy(req.PeerID[:], fmt.Sprintf("-KT0001-%012d", port))
	resp, err := http.Get(url + "?" + string(wire.AppendAnnounceQuery(nil, &req)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	ar, err := wire.ParseAnnounceResponse(body)
	if err != nil {
		t.Fatalf("announce to %s: %v (%q)", url, err, body)
	}
	var out []netip.AddrPort
	for _, p := range ar.Peers {
		out = append(out, p.Addr)
	}
	return out
}

// TestTSUPDaemons links three `kadtracker run --dht=false` daemons by TSUP
// over real UDP on loopback (a full mesh in one internal network): a client
// announcing to the first and one announcing to the third each get the
// other from their own daemon, which only the overlay can have told them.
func TestTSUPDaemons(t *testing.T) {
	const update = 500 * time.Millisecond
	ports := freeUDPPorts(t, 3)
	dir := shortDir(t)
	var daemons []*daemonProc
	for i, p := range ports {
		var links strings.Builder
		links.WriteString("# the other two trackers\n")
		for j, q := range ports {
			if j != i {
				fmt.Fprintf(&links, "127.0.0.1:%d internal\n", q)
			}
		}
		file := filepath.Join(dir, fmt.Sprintf("links%d", i))
		if err := os.WriteFile(file, []byte(links.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		daemons = append(daemons, startDaemon(t, "--dht=false",
			"--tracker-udp", fmt.Sprintf("127.0.0.1:%d", p), "--tsup-links", file,
			"--tsup-hello", "200ms", "--tsup-update", update.String(), "--tsup-disconnect", "2s"))
	}
	first, last := daemons[0], daemons[2]
	if first.PeerID != "" || first.TrackerHTTP == "" {
		t.Fatalf("a --dht=false daemon: peer ID %q, tracker %q", first.PeerID, first.TrackerHTTP)
	}

	ih := [20]byte{0xfe, 0xed, 0xfa, 0xce}
	seeder := netip.MustParseAddrPort("127.0.0.1:40001")
	leecher := netip.MustParseAddrPort("127.0.0.1:40003")
	httpAnnounce(t, first.TrackerHTTP, ih, seeder.Port(), 0)
	start := time.Now()
	deadline := start.Add(20 * update)
	for {
		gotSeeder := slices.Contains(httpAnnounce(t, last.TrackerHTTP, ih, leecher.Port(), 1000), seeder)
		gotLeecher := slices.Contains(httpAnnounce(t, first.TrackerHTTP, ih, seeder.Port(), 0), leecher)
		if gotSeeder && gotLeecher {
			t.Logf("both clients saw each other after %v (%.1f update intervals)", time.Since(start).Round(time.Millisecond), float64(time.Since(start))/float64(update))
			break
		}
		if time.Now().After(deadline) {
			links, _, _ := first.CLI(t, "tsup", "links")
			swarmsFirst, _, _ := first.CLI(t, "tsup", "swarms")
			swarmsLast, _, _ := last.CLI(t, "tsup", "swarms")
			t.Fatalf("after %v: leecher saw seeder %v, seeder saw leecher %v\nlinks of the first daemon:\n%s\nswarms of the first:\n%s\nswarms of the last:\n%s", time.Since(start), gotSeeder, gotLeecher, links, swarmsFirst, swarmsLast)
		}
		time.Sleep(update / 2)
	}

	out, errOut, code := first.CLI(t, "tsup", "links", "--json")
	var links localapi.TSUPLinksResult
	if code != 0 || json.Unmarshal([]byte(out), &links) != nil || len(links.Links) != 2 {
		t.Fatalf("tsup links: exit %d %q %q", code, out, errOut)
	}
	for _, l := range links.Links {
		if l.State != "connected" {
			t.Errorf("link %s is %s", l.Addr, l.State)
		}
	}
	out, _, code = last.CLI(t, "tsup", "swarms", "--json")
	var swarms localapi.TSUPSwarmsResult
	if code != 0 || json.Unmarshal([]byte(out), &swarms) != nil || len(swarms.Swarms) != 1 || swarms.Swarms[0].Own != 1 || swarms.Swarms[0].Internal < 1 {
		t.Fatalf("tsup swarms on the last daemon: %s", out)
	}
}

// TestTSUPPublish: a DHT daemon linked by TSUP to a plain tracker publishes
// the tracker's clients into the DHT (--tsup-publish), where a daemon that
// knows nothing of TSUP finds them as bridged records. TSUP unifies only the
// swarms both trackers have, so the linked daemon has a client of its own.
func TestTSUPPublish(t *testing.T) {
	ports := freeUDPPorts(t, 2)
	dir := shortDir(t)
	linkFile := func(name string, port int) string {
		file := filepath.Join(dir, name)
		if err := os.WriteFile(file, fmt.Appendf(nil, "127.0.0.1:%d internal\n", port), 0o600); err != nil {
			t.Fatal(err)
		}
		return file
	}
	fast := []string{"--tsup-hello", "200ms", "--tsup-update", "500ms", "--tsup-disconnect", "2s"}
	// One bridge, on loopback: the test network says so, or the DHT-only
	// daemon would serve its endpoint to nobody.
	local := []string{"--bridged-local", "--bridged-quorum", "1"}
	bridge := startDaemon(t, append(append([]string{"--dht-mode", "server", "--tracker-udp", fmt.Sprintf("127.0.0.1:%d", ports[0]),
		"--tsup-links", linkFile("a", ports[1]), "--tsup-publish"}, fast...), local...)...)
	plain := startDaemon(t, append([]string{"--dht=false", "--tracker-udp", fmt.Sprintf("127.0.0.1:%d", ports[1]),
		"--tsup-links", linkFile("b", ports[0])}, fast...)...)
	dhtOnly := startDaemon(t, append([]string{"--dht-mode", "server", "--tracker-http=", "--tracker-udp=", "--bootstrap", bridge.Addr()}, local...)...)
	waitRouting(t, dhtOnly, 1)

	ih := [20]byte{0x75, 0x5b}
	client := netip.MustParseAddrPort("127.0.0.1:40005")
	httpAnnounce(t, plain.TrackerHTTP, ih, client.Port(), 0)
	httpAnnounce(t, bridge.TrackerHTTP, ih, 40006, 1000)
	infohash := fmt.Sprintf("%x", ih)
	deadline := time.Now().Add(30 * time.Second)
	for {
		res := peersOf(t, dhtOnly, infohash)
		if i := slices.IndexFunc(res.Peers, func(p localapi.Peer) bool { return p.IP == "127.0.0.1" && p.Port == client.Port() }); i >= 0 {
			if src := res.Peers[i].Source; src != "bridged" {
				t.Fatalf("the overlay's peer came as %q, want bridged", src)
			}
			break
		}
		if time.Now().After(deadline) {
			out, _, _ := bridge.CLI(t, "tsup", "swarms")
			t.Fatalf("the DHT-only daemon never found the plain tracker's client; last answer %+v\nswarms of the linked daemon:\n%s", res.Peers, out)
		}
		time.Sleep(500 * time.Millisecond)
	}
}
