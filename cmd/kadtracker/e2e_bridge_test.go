package main

// End-to-end tests of the bridge to classic trackers and of tracker mode,
// with real BitTorrent clients in the network lab of the real-client tests
// (clients_netlab_test.go, clients_helpers_test.go).

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kadtracker/kadtracker/node/localapi"
)

// needBins fails the test when a program it runs is missing (.ci/run
// installs them).
func needBins(t *testing.T, bins ...string) {
	t.Helper()
	for _, b := range bins {
		if _, err := exec.LookPath(b); err != nil {
			t.Fatalf("%s is needed (.ci/run installs it): %v", b, err)
		}
	}
}

// startOpentracker runs Debian's opentracker on ip:port in slot i. Its
// Debian build serves whitelisted infohashes only: allow writes one into
// the whitelist and makes it reload (SIGHUP). It runs as nobody, chrooted
// to a directory of its own.
func startOpentracker(t *testing.T, lab *netLab, i int, ip string, port int) (allow func(infohash string)) {
	t.Helper()
	dir := t.TempDir()
	wl := filepath.Join(dir, "whitelist.txt")
	if err := os.WriteFile(wl, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	c := &btClient{Name: "opentracker", Port: port}
	p := strconv.Itoa(port)
	// -w is read after the chroot to -d.
	c.run(t, lab.command(i, "opentracker", "-i", ip, "-p", p, "-P", p, "-d", dir, "-w", "/whitelist.txt"))
	waitTCP(t, lab, i, ip, port)
	return func(infohash string) {
		t.Helper()
		if err := os.WriteFile(wl, []byte(infohash+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := c.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatalf("opentracker reload: %v", err)
		}
	}
}

// waitTCP waits until something accepts TCP connections on ip:port, seen
// from slot i (the test's own namespace may have no route there).
func waitTCP(t *testing.T, lab *netLab, i int, ip string, port int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := lab.command(i, "bash", "-c", fmt.Sprintf("exec 3<>/dev/tcp/%s/%d", ip, port)).Run()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens on %s:%d after 15s: %v", ip, port, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// scrapeSeeds asks the HTTP tracker at host:port, from slot i, how many
// seeds it has for infohash (BEP 48); -1 when it does not answer.
func scrapeSeeds(t *testing.T, lab *netLab, i int, hostport, infohash string) int {
	t.Helper()
	raw, err := hex.DecodeString(infohash)
	if err != nil {
		t.Fatal(err)
	}
	var q strings.Builder
	for _, b := range raw {
		fmt.Fprintf(&q, "%%%02X", b)
	}
	host, port, _ := net.SplitHostPort(hostport)
	script := fmt.Sprintf("exec 3<>/dev/tcp/%s/%s && printf '%%s' $'GET /scrape?info_hash=%s HTTP/1.0\\r\\nHost: %s\\r\\n\\r\\n' >&3 && timeout 5 cat <&3", host, port, q.String(), hostport)
	out, err := lab.command(i, "bash", "-c", script).Output()
	if err != nil {
		return -1
	}
	body := string(out)
	if k := strings.Index(body, "8:completei"); k >= 0 {
		n, err := strconv.Atoi(body[k+len("8:completei") : k+len("8:completei")+strings.IndexByte(body[k+len("8:completei"):], 'e')])
		if err == nil {
			return n
		}
	}
	return 0
}

// waitSeeds waits until the tracker at hostport counts a seed for infohash.
func waitSeeds(t *testing.T, lab *netLab, i int, hostport, infohash string, seeder *btClient) {
	t.Helper()
	deadline := time.Now().Add(seedRecordTimeout)
	for scrapeSeeds(t, lab, i, hostport, infohash) < 1 {
		select {
		case <-seeder.exited:
			t.Fatalf("%s exited while seeding", seeder.Name)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the tracker at %s has no seed for %s after %v", hostport, infohash, seedRecordTimeout)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// trackerPort is a TCP and UDP port for a tracker in slot i.
func trackerPort(t *testing.T, lab *netLab) int { return lab.port(t) }

// bridgeCase is a seeder on a classic tracker and a leecher on its own
// daemon that bridges to it.
type bridgeCase struct {
	seed, leech string
	// classic starts the classic tracker in slot 0 on ip:port and returns
	// a function that lets it serve an infohash.
	classic func(t *testing.T, lab *netLab, ip string, port int) func(infohash string)
	udp     bool // the daemon bridges over UDP (the seeder announces over HTTP)
}

func runBridgeCase(t *testing.T, bc bridgeCase) {
	needBins(t, "mktorrent", clientKinds[bc.seed].bin, clientKinds[bc.leech].bin)
	lab := newNetLab(t, 2)
	if !lab.netns && bc.leech == "transmission" {
		bc.leech = "aria2" // Transmission ignores peers in 127.0.0.0/8
	}
	start := time.Now()
	ip0 := lab.slots[0].ip
	port := trackerPort(t, lab)
	hostport := net.JoinHostPort(ip0, strconv.Itoa(port))
	allow := bc.classic(t, lab, ip0, port)
	bridgeURL := "http://" + hostport + "/announce"
	if bc.udp {
		bridgeURL = "udp://" + hostport + "/announce"
	}
	args := []string{"--bridge-trackers", bridgeURL}
	if lab.netns {
		args = append(args, "--listen", "/ip4/"+lab.slots[1].ip+"/tcp/0")
	}
	d := startDaemonIn(t, lab.slots[1].wrap, args...)

	tt := makeTestTorrent(t, clientFileSize, "http://"+hostport+"/announce", d.TrackerHTTP)
	allow(tt.Infohash)
	seeder := clientKinds[bc.seed].start(t, clientJob{lab: lab, slot: 0, torrent: tt.Seed, dir: tt.SeedDir, seed: true})
	waitSeeds(t, lab, 1, hostport, tt.Infohash, seeder)
	seeded := time.Now()

	leechDir := t.TempDir()
	leecher := clientKinds[bc.leech].start(t, clientJob{lab: lab, slot: 1, torrent: tt.Leech, dir: leechDir})
	// While the leecher leeches, `kadtracker peers` shows the seeder as
	// found through the tracker. (Once it seeds, the tracker hands it no
	// seeds any more.)
	seen := make(chan bool, 1)
	done := make(chan struct{})
	go func() {
		found := false
		defer func() { seen <- found }()
		for !found {
			select {
			case <-done:
				return
			case <-time.After(200 * time.Millisecond):
			}
			out, _, err := d.run("peers", tt.Infohash, "--json")
			var res localapi.PeersResult
			if err != nil || json.Unmarshal([]byte(out), &res) != nil {
				continue
			}
			for _, p := range res.Peers {
				found = found || (p.Source == "tracker" && p.IP == ip0 && int(p.Port) == seeder.Port)
			}
		}
	}()
	waitFile(t, leecher, filepath.Join(leechDir, tt.Name), tt.SHA256, downloadTimeout)
	close(done)
	if !<-seen {
		t.Errorf("kadtracker peers never showed the seeder %s:%d from the tracker while the leecher leeched", ip0, seeder.Port)
	}
	t.Logf("%s seeding on the classic tracker (registered after %v), %s downloading through its daemon's bridge (%s): complete after %v, SHA-256 matches",
		bc.seed, seeded.Sub(start).Round(time.Millisecond), bc.leech, bridgeURL, time.Since(seeded).Round(time.Millisecond))

	// The daemon shows the bridge's state and where the seeder came from.
	out, errOut, code := d.CLI(t, "bridge", "--json")
	var st localapi.BridgeState
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil {
		t.Fatalf("kadtracker bridge: %d %s %s", code, out, errOut)
	}
	if len(st.Trackers) != 1 || len(st.Swarms) != 1 || st.Swarms[0].Infohash != tt.Infohash ||
		st.Swarms[0].Trackers[0].LastSuccess.IsZero() || st.Swarms[0].Trackers[0].Error != "" {
		t.Errorf("kadtracker bridge --json: %s", out)
	}
	if text, _, _ := d.CLI(t, "bridge"); !strings.Contains(text, bridgeURL) {
		t.Errorf("kadtracker bridge:\n%s", text)
	}
}

// TestBridgeOpentracker: a seeder announces only to Debian's opentracker, a
// leecher only to its own daemon, which bridges to opentracker.
func TestBridgeOpentracker(t *testing.T) {
	needBins(t, "opentracker")
	runBridgeCase(t, bridgeCase{seed: "aria2", leech: "aria2", classic: func(t *testing.T, lab *netLab, ip string, port int) func(string) {
		return startOpentracker(t, lab, 0, ip, port)
	}})
}

// TestBridgeKadtrackerClassic: the same with `kadtracker run --dht=false`
// in tracker mode as the classic tracker, bridged to over UDP.
func TestBridgeKadtrackerClassic(t *testing.T) {
	runBridgeCase(t, bridgeCase{seed: "qbittorrent", leech: "transmission", udp: true, classic: func(t *testing.T, lab *netLab, ip string, port int) func(string) {
		hp := net.JoinHostPort(ip, strconv.Itoa(port))
		startDaemonIn(t, lab.slots[0].wrap, "--dht=false", "--tracker-public", hp)
		waitTCP(t, lab, 0, ip, port)
		return func(string) {}
	}})
}

// TestTrackerMode: one daemon in tracker mode (--tracker-public, with an
// allowlist) serves a seeder and three leechers on other hosts, each a
// different client; all three complete their downloads.
func TestTrackerMode(t *testing.T) {
	needBins(t, "mktorrent", "aria2c", "qbittorrent-nox", "transmission-daemon")
	lab := newNetLab(t, 4)
	ip0 := lab.slots[0].ip
	port := trackerPort(t, lab)
	hostport := net.JoinHostPort(ip0, strconv.Itoa(port))
	allowFile := filepath.Join(t.TempDir(), "allow.txt")
	args := []string{"--tracker-public", hostport, "--tracker-allowlist", allowFile}
	if lab.netns {
		args = append(args, "--listen", "/ip4/"+ip0+"/tcp/0")
	}
	announce := "http://" + hostport + "/announce"
	tt := makeTestTorrent(t, clientFileSize, announce, announce)
	if err := os.WriteFile(allowFile, []byte("# the test torrent\n"+tt.Infohash+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	startDaemonIn(t, lab.slots[0].wrap, args...)
	waitTCP(t, lab, 1, ip0, port)
	start := time.Now()
	seeder := clientKinds["aria2"].start(t, clientJob{lab: lab, slot: 0, torrent: tt.Seed, dir: tt.SeedDir, seed: true})
	waitSeeds(t, lab, 1, hostport, tt.Infohash, seeder)

	type leech struct {
		c   *btClient
		dir string
	}
	var leechers []leech
	for i, kind := range []string{"aria2", "qbittorrent", "transmission"} {
		if !lab.netns && kind == "transmission" {
			t.Log("Transmission ignores peers in 127.0.0.0/8: without network namespaces it sits this one out")
			continue
		}
		dir := t.TempDir()
		leechers = append(leechers, leech{clientKinds[kind].start(t, clientJob{lab: lab, slot: i + 1, torrent: tt.Leech, dir: dir}), dir})
	}
	for _, l := range leechers {
		waitFile(t, l.c, filepath.Join(l.dir, tt.Name), tt.SHA256, downloadTimeout)
		t.Logf("%s complete after %v, SHA-256 matches", l.c.Name, time.Since(start).Round(time.Millisecond))
	}
}
