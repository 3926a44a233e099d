package main

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const (
	// clientFileSize is the size of the random file each pair transfers.
	clientFileSize = 4 << 20
	// seedRecordTimeout bounds the wait until the leecher's daemon finds the
	// seeder: the client's start and verification, its first announce, and
	// the DHT publish.
	seedRecordTimeout = 60 * time.Second
	// downloadTimeout bounds the leecher's start and download.
	downloadTimeout = 120 * time.Second
	// clientStopTimeout bounds how long a client takes to quit, its
	// stopped announce included.
	clientStopTimeout = 30 * time.Second
	// seedGoneTimeout bounds the wait until the last daemon no longer finds
	// a seeder that stopped.
	seedGoneTimeout = 30 * time.Second
	// clientPairsAtOnce is how many pairs run at the same time.
	clientPairsAtOnce = 2
)

// clientPair is one case of the matrix: a seeder and a leecher, and the
// tracker protocol both use.
type clientPair struct {
	seed, leech string
	udp         bool
	v2          bool // a BEP 52 v2-only torrent
}

func (p clientPair) String() string {
	proto := "http"
	if p.udp {
		proto = "udp"
	}
	name := fmt.Sprintf("%s_to_%s_%s", p.seed, p.leech, proto)
	if p.v2 {
		name += "_v2"
	}
	return name
}

// clientMatrix covers each client as seeder and as leecher over HTTP (the
// mixed pairs, both ways round) and over UDP (each with itself), and a v2
// torrent with the one client that knows them.
var clientMatrix = []clientPair{
	{seed: "aria2", leech: "qbittorrent"},
	{seed: "qbittorrent", leech: "transmission"},
	{seed: "transmission", leech: "aria2"},
	{seed: "qbittorrent", leech: "aria2"},
	{seed: "aria2", leech: "transmission"},
	{seed: "transmission", leech: "qbittorrent"},
	{seed: "aria2", leech: "aria2", udp: true},
	{seed: "qbittorrent", leech: "qbittorrent", udp: true},
	{seed: "transmission", leech: "transmission", udp: true},
	// Of these clients only qBittorrent (libtorrent 2) knows BEP 52: it
	// announces a v2 torrent under the truncated SHA2-256 infohash.
	{seed: "qbittorrent", leech: "qbittorrent", v2: true},
}

// TestRealClients runs three `kadtracker run` daemons in a bootstrap chain
// and, for each pair of the matrix, has a real client seed a random file
// announcing only to the first daemon's tracker front and another download
// it announcing only to the last daemon's; the download must complete with
// the right SHA-256. The clients have every other way of finding peers
// turned off, so only the DHT can introduce them. Each daemon and the
// clients it serves run in a network namespace of their own when the test
// runs as root (see clients_netlab_test.go for why and how).
func TestRealClients(t *testing.T) {
	for _, bin := range []string{"mktorrent", "aria2c", "transmission-daemon", "transmission-remote", "qbittorrent-nox"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s is needed for the real-client tests (.ci/run installs it: aria2 transmission-cli transmission-daemon qbittorrent-nox mktorrent): %v", bin, err)
		}
	}
	lab := newNetLab(t, 3)
	daemons := make([]*daemonProc, len(lab.slots))
	for i, slot := range lab.slots {
		args := []string{"--dht-mode", "server", "--replication", "3"}
		if lab.netns {
			args = append(args, "--listen", "/ip4/"+slot.ip+"/tcp/0")
		}
		if i > 0 {
			args = append(args, "--bootstrap", daemons[i-1].Addr())
		}
		daemons[i] = startDaemonIn(t, slot.wrap, args...)
	}
	for _, d := range daemons {
		waitRouting(t, d, len(daemons)-1)
	}
	first, last := daemons[0], daemons[len(daemons)-1]
	seedSlot, leechSlot := 0, len(daemons)-1

	sem := make(chan struct{}, clientPairsAtOnce)
	for _, p := range clientMatrix {
		t.Run(p.String(), func(t *testing.T) {
			if !lab.netns && p.leech == "transmission" {
				t.Skip("Transmission ignores tracker-returned peers in 127.0.0.0/8; this pair needs the network namespaces (run as root with iproute2)")
			}
			t.Parallel()
			sem <- struct{}{}
			t.Cleanup(func() { <-sem }) // after the clients' cleanups
			start := time.Now()

			seedURL, leechURL := first.TrackerHTTP, last.TrackerHTTP
			if p.udp {
				seedURL, leechURL = first.TrackerUDP, last.TrackerUDP
			}
			if seedURL == "" || leechURL == "" {
				t.Fatalf("daemons without the tracker front: %q %q", seedURL, leechURL)
			}
			newTorrent := makeTestTorrent
			if p.v2 {
				newTorrent = makeTestTorrentV2
			}
			tt := newTorrent(t, clientFileSize, seedURL, leechURL)
			t.Logf("infohash %s; %s seeds via %s, %s leeches via %s", tt.Infohash, p.seed, seedURL, p.leech, leechURL)

			seeder := clientKinds[p.seed].start(t, clientJob{lab: lab, slot: seedSlot, torrent: tt.Seed, dir: tt.SeedDir, seed: true, udp: p.udp})
			// Start the leecher only once its daemon finds the seeder:
			// qBittorrent announces again only after 300 s, so its first
			// answer must already hold the seeder.
			waitSeedRecord(t, last, tt.Infohash, lab.slots[seedSlot].ip, seeder)
			found := time.Now()

			leechDir := t.TempDir()
			leecher := clientKinds[p.leech].start(t, clientJob{lab: lab, slot: leechSlot, torrent: tt.Leech, dir: leechDir, udp: p.udp})
			waitFile(t, leecher, filepath.Join(leechDir, tt.Name), tt.SHA256, downloadTimeout)
			done := time.Now()

			// A seeder that stops seeding announces event=stopped: its
			// daemon withdraws the record, and the last daemon stops
			// finding it.
			seeder.Stop(t, clientStopTimeout)
			waitSeedRecordGone(t, last, tt.Infohash, lab.slots[seedSlot].ip, seeder)
			t.Logf("%s: the last daemon found the seeder after %v, the download completed %v later (SHA-256 matches), the seeder's record was gone %v after it stopped",
				p, found.Sub(start).Round(time.Millisecond), done.Sub(found).Round(time.Millisecond), time.Since(done).Round(time.Millisecond))
		})
	}
}

// waitSeedRecord waits until d's `kadtracker peers` lists the seeder at
// ip:port as a seed.
func waitSeedRecord(t *testing.T, d *daemonProc, infohash, ip string, seeder *btClient) {
	t.Helper()
	deadline := time.Now().Add(seedRecordTimeout)
	for {
		res := peersOf(t, d, infohash)
		if hasPeer(res, ip, uint16(seeder.Port), true) {
			return
		}
		select {
		case <-seeder.exited:
			t.Fatalf("%s exited while seeding", seeder.Name)
		default:
		}
		if time.Now().After(deadline) {
			var got []string
			for _, p := range res.Peers {
				got = append(got, fmt.Sprintf("%s:%d seed=%v", p.IP, p.Port, p.Seed))
			}
			t.Fatalf("after %v the last daemon still does not find the %s seed at %s:%d; it finds [%s]",
				seedRecordTimeout, seeder.Name, ip, seeder.Port, strings.Join(got, " "))
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// waitSeedRecordGone waits until d's `kadtracker peers` no longer lists the
// seeder at ip:port.
func waitSeedRecordGone(t *testing.T, d *daemonProc, infohash, ip string, seeder *btClient) {
	t.Helper()
	deadline := time.Now().Add(seedGoneTimeout)
	for {
		res := peersOf(t, d, infohash)
		if !hasPeer(res, ip, uint16(seeder.Port), true) && !hasPeer(res, ip, uint16(seeder.Port), false) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v after the %s seeder stopped the last daemon still finds it at %s:%d", seedGoneTimeout, seeder.Name, ip, seeder.Port)
		}
		time.Sleep(500 * time.Millisecond)
	}
}
