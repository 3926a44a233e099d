package main

// Helpers for the end-to-end tests with real BitTorrent clients: torrents
// made by mktorrent, and aria2, Transmission and qBittorrent run headless
// with their own directories and ports, DHT, local peer discovery, PEX and
// UPnP/NAT-PMP off, so that only kadtracker can introduce them.
// docs/clients.md explains these settings, and the clients' quirks the
// helpers allow for, to users.

import (
	"bytes"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// testTorrent is a random file and two .torrent files for it with the same
// info dictionary (so the same infohash) and different announce URLs.
type testTorrent struct {
	Name string // file name inside the data directory
	// Infohash is the hex of the 20 bytes clients announce: the SHA-1
	// infohash of a v1 torrent, the SHA2-256 one truncated for a v2 torrent.
	Infohash string
	SHA256   [32]byte
	SeedDir  string // holds the complete file
	Seed     string // .torrent announcing to the seeder's daemon only
	Leech    string // .torrent announcing to the leecher's daemon only
}

// makeTestTorrent writes size random bytes and makes the torrent with
// mktorrent, announcing only to seedURL; the leecher's copy is the same
// bencoding with only the announce URL replaced by leechURL.
func makeTestTorrent(t *testing.T, size int, seedURL, leechURL string) *testTorrent {
	t.Helper()
	dir := t.TempDir()
	tt := &testTorrent{SeedDir: filepath.Join(dir, "seed")}
	if err := os.Mkdir(tt.SeedDir, 0o755); err != nil {
		t.Fatal(err)
	}
	data := make([]byte, size)
	rand.Read(data)
	tt.SHA256 = sha256.Sum256(data)
	tt.Name = "kt-" + hex.EncodeToString(data[:4]) + ".bin"
	file := filepath.Join(tt.SeedDir, tt.Name)
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	tt.Seed = filepath.Join(dir, "seed.torrent")
	// 256 KiB pieces; no creation date, no comment, public: the info
	// dictionary holds only length, name, piece length and pieces.
	out, err := exec.Command("mktorrent", "-d", "-l", "18", "-a", seedURL, "-o", tt.Seed, file).CombinedOutput()
	if err != nil {
		t.Fatalf("mktorrent: %v\n%s", err, out)
	}
	meta, err := os.ReadFile(tt.Seed)
	if err != nil {
		t.Fatal(err)
	}
	announce, info, err := torrentParts(meta)
	if err != nil {
		t.Fatalf("mktorrent wrote %q: %v", meta, err)
	}
	if announce != seedURL {
		t.Fatalf("mktorrent announces to %q, want %q", announce, seedURL)
	}
	sum := sha1.Sum(info)
	tt.Infohash = hex.EncodeToString(sum[:])
	tt.Leech = filepath.Join(dir, "leech.torrent")
	leech := fmt.Appendf(nil, "d8:announce%d:%s4:info%se", len(leechURL), leechURL, info)
	if err := os.WriteFile(tt.Leech, leech, 0o644); err != nil {
		t.Fatal(err)
	}
	return tt
}

// makeTestTorrentV2 is makeTestTorrent for a BEP 52 v2-only torrent, which
// mktorrent cannot make: size must be a multiple of the 256 KiB piece
// length, so the merkle tree of 16 KiB blocks needs no padding.
func makeTestTorrentV2(t *testing.T, size int, seedURL, leechURL string) *testTorrent {
	t.Helper()
	const block, pieceLen = 16 << 10, 256 << 10
	if size <= 0 || size%pieceLen != 0 || (size/block)&(size/block-1) != 0 {
		t.Fatalf("v2 test torrent of %d bytes: want a power of two of 16 KiB blocks, at least one piece", size)
	}
	dir := t.TempDir()
	tt := &testTorrent{SeedDir: filepath.Join(dir, "seed")}
	if err := os.Mkdir(tt.SeedDir, 0o755); err != nil {
		t.Fatal(err)
	}
	data := make([]byte, size)
	rand.Read(data)
	tt.SHA256 = sha256.Sum256(data)
	tt.Name = "kt-v2-" + hex.EncodeToString(data[:4]) + ".bin"
	if err := os.WriteFile(filepath.Join(tt.SeedDir, tt.Name), data, 0o644); err != nil {
		t.Fatal(err)
	}
	// The merkle tree: leaves are the blocks' SHA-256, each level up hashes
	// pairs; the piece layer is the level where a node covers one piece.
	level := make([][32]byte, 0, size/block)
	for off := 0; off < size; off += block {
		level = append(level, sha256.Sum256(data[off:off+block]))
	}
	var pieceLayer []byte
	for n := block; len(level) > 1; n *= 2 {
		if n == pieceLen {
			for _, h := range level {
				pieceLayer = append(pieceLayer, h[:]...)
			}
		}
		up := make([][32]byte, len(level)/2)
		for i := range up {
			up[i] = sha256.Sum256(append(level[2*i][:], level[2*i+1][:]...))
		}
		level = up
	}
	root := level[0]
	if size == pieceLen {
		pieceLayer = root[:]
	}
	info := fmt.Appendf(nil, "d9:file treed%d:%sd0:d6:lengthi%de11:pieces root32:%seee12:meta versioni2e4:name%d:%s12:piece lengthi%dee",
		len(tt.Name), tt.Name, size, root[:], len(tt.Name), tt.Name, pieceLen)
	sum := sha256.Sum256(info)
	tt.Infohash = hex.EncodeToString(sum[:20])
	write := func(url string) string {
		meta := fmt.Appendf(nil, "d8:announce%d:%s4:info%s12:piece layersd32:%s%d:%see",
			len(url), url, info, root[:], len(pieceLayer), pieceLayer)
		f, err := os.CreateTemp(dir, "*.torrent")
		if err == nil {
			_, err = f.Write(meta)
			err = errors.Join(err, f.Close())
		}
		if err != nil {
			t.Fatal(err)
		}
		return f.Name()
	}
	tt.Seed, tt.Leech = write(seedURL), write(leechURL)
	return tt
}

// torrentParts returns the announce URL of a .torrent file and the exact
// bytes of its info dictionary, and checks that it names no other tracker.
func torrentParts(meta []byte) (announce string, info []byte, err error) {
	if len(meta) == 0 || meta[0] != 'd' {
		return "", nil, errors.New("not a bencoded dictionary")
	}
	i := 1
	for i < len(meta) && meta[i] != 'e' {
		keyEnd, err := bencodeSkip(meta, i)
		if err != nil {
			return "", nil, err
		}
		key := meta[bytes.IndexByte(meta[i:], ':')+i+1 : keyEnd]
		valEnd, err := bencodeSkip(meta, keyEnd)
		if err != nil {
			return "", nil, err
		}
		val := meta[keyEnd:valEnd]
		switch string(key) {
		case "announce":
			announce = string(val[bytes.IndexByte(val, ':')+1:])
		case "info":
			info = val
		case "announce-list", "url-list", "httpseeds", "nodes":
			return "", nil, fmt.Errorf("unexpected key %q: the torrent must name only one tracker", key)
		}
		i = valEnd
	}
	if i != len(meta)-1 || info == nil {
		return "", nil, errors.New("truncated, trailing data, or no info dictionary")
	}
	return announce, info, nil
}

// bencodeSkip returns the end of the bencoded value that starts at b[i].
func bencodeSkip(b []byte, i int) (int, error) {
	if i >= len(b) {
		return 0, errors.New("truncated")
	}
	switch c := b[i]; {
	case c == 'i':
		end := bytes.IndexByte(b[i:], 'e')
		if end < 0 {
			return 0, errors.New("unterminated integer")
		}
		return i + end + 1, nil
	case c == 'l' || c == 'd':
		i++
		for i < len(b) && b[i] != 'e' {
			var err error
			if i, err = bencodeSkip(b, i); err != nil {
				return 0, err
			}
		}
		if i >= len(b) {
			return 0, errors.New("unterminated list or dictionary")
		}
		return i + 1, nil
	case c >= '0' && c <= '9':
		colon := bytes.IndexByte(b[i:], ':')
		if colon < 0 {
			return 0, errors.New("string without length")
		}
		n, err := strconv.Atoi(string(b[i : i+colon]))
		if err != nil || n < 0 || i+colon+1+n > len(b) {
			return 0, errors.New("bad string length")
		}
		return i + colon + 1 + n, nil
	}
	return 0, fmt.Errorf("unexpected byte %q at %d", b[i], i)
}

// clientJob is what a client is asked to do in a slot of the lab.
type clientJob struct {
	lab     *netLab
	slot    int
	torrent string // the .torrent file to add
	dir     string // the data directory: the complete file when seeding, empty when leeching
	seed    bool
	udp     bool // the torrent's tracker is a udp:// URL
}

// btClient is a running BitTorrent client.
type btClient struct {
	Name string
	Port int // the peer port it listens on and announces
	cmd  *exec.Cmd
	out  *syncBuffer
	logs []string // log files to show when the test fails
	// exited is closed when the process has ended.
	exited chan struct{}
	// stop, when set, is how Stop ends seeding.
	stop func(t *testing.T)
}

// clientKind starts one kind of client; each writes its settings before
// its first start, in a directory of its own.
type clientKind struct {
	name  string
	bin   string
	start func(t *testing.T, job clientJob) *btClient
}

var clientKinds = map[string]clientKind{
	"aria2":        {"aria2", "aria2c", startAria2},
	"transmission": {"transmission", "transmission-daemon", startTransmission},
	"qbittorrent":  {"qbittorrent", "qbittorrent-nox", startQBittorrent},
}

// run starts cmd as the client process and stops it when the test ends,
// showing its output and log files if the test failed.
func (c *btClient) run(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	c.cmd, c.out = cmd, &syncBuffer{}
	cmd.Stdout, cmd.Stderr = c.out, c.out
	cmd.Env = cleanEnv()
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: %v", c.Name, err)
	}
	c.exited = make(chan struct{})
	go func() { cmd.Wait(); close(c.exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-c.exited
		if t.Failed() {
			c.dumpLogs(t)
		}
	})
}

// Stop ends seeding the way the client's user would, which makes the
// client announce event=stopped: by default it quits on SIGTERM (and is
// killed, failing the test, if it takes longer than timeout); a kind with
// its own way sets stop.
func (c *btClient) Stop(t *testing.T, timeout time.Duration) {
	t.Helper()
	if c.stop != nil {
		c.stop(t)
		return
	}
	c.quit(t, syscall.SIGTERM, timeout)
}

// quit sends sig and waits for the client to exit.
func (c *btClient) quit(t *testing.T, sig syscall.Signal, timeout time.Duration) {
	t.Helper()
	_ = c.cmd.Process.Signal(sig)
	select {
	case <-c.exited:
	case <-time.After(timeout):
		_ = c.cmd.Process.Kill()
		<-c.exited
		t.Fatalf("%s still running %v after %v; killed", c.Name, timeout, sig)
	}
}

func (c *btClient) dumpLogs(t *testing.T) {
	t.Logf("%s (port %d) command: %s\noutput:\n%s", c.Name, c.Port, strings.Join(c.cmd.Args, " "), tail(c.out.String(), 32<<10))
	for _, f := range c.logs {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Logf("%s log %s: %v", c.Name, f, err)
			continue
		}
		t.Logf("%s log %s:\n%s", c.Name, f, tail(string(b), 64<<10))
	}
}

// tail is the last n bytes of s.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "[...]\n" + s[len(s)-n:]
}

// startAria2 runs aria2c on the torrent. aria2 uses a udp:// tracker only
// when its DHT is on, and then sends the tracker packets from the DHT port:
// for UDP the DHT is on with an empty routing table and no entry points.
func startAria2(t *testing.T, job clientJob) *btClient {
	c := &btClient{Name: "aria2", Port: job.lab.port(t)}
	home := t.TempDir()
	logFile := filepath.Join(home, "aria2.log")
	c.logs = []string{logFile}
	args := []string{
		"--no-conf", "--dir=" + job.dir, "--listen-port=" + strconv.Itoa(c.Port),
		"--bt-enable-lpd=false", "--enable-peer-exchange=false", "--enable-dht6=false",
		"--disable-ipv6=true", "--stop-with-process=" + strconv.Itoa(os.Getpid()),
		"--seed-ratio=0.0", "--file-allocation=none", "--auto-file-renaming=false",
		"--summary-interval=0", "--console-log-level=warn",
		"--log=" + logFile, "--log-level=info",
	}
	if !job.lab.netns {
		args = append(args, "--interface=127.0.0.1")
	}
	if job.udp {
		args = append(args, "--enable-dht=true", "--dht-listen-port="+strconv.Itoa(job.lab.port(t)),
			"--dht-file-path="+filepath.Join(home, "dht.dat"))
	} else {
		args = append(args, "--enable-dht=false")
	}
	if job.seed {
		args = append(args, "--check-integrity=true")
	}
	c.run(t, job.lab.command(job.slot, "aria2c", append(args, job.torrent)...))
	// aria2 takes SIGTERM for an emergency shutdown that tells no tracker;
	// SIGINT (Ctrl-C) is its orderly one, with event=stopped.
	c.stop = func(t *testing.T) { c.quit(t, syscall.SIGINT, clientStopTimeout) }
	return c
}

// startTransmission runs transmission-daemon with a settings.json written
// before its first start (its defaults turn DHT, PEX, LPD and port
// forwarding on), then adds the torrent with transmission-remote.
func startTransmission(t *testing.T, job clientJob) *btClient {
	c := &btClient{Name: "transmission", Port: job.lab.port(t)}
	rpcPort := job.lab.port(t)
	conf := t.TempDir()
	// On the host's loopback, bind to it. In a namespace keep the defaults,
	// as a user would: a non-default bind address also binds the tracker
	// requests (libcurl's CURLOPT_INTERFACE, IPv4's if set, else IPv6's),
	// and with "::1" alone they could not reach 127.0.0.1.
	bind4, bind6 := "127.0.0.1", "::1"
	if job.lab.netns {
		bind4, bind6 = "0.0.0.0", "::"
	}
	settings := fmt.Sprintf(`{
	"dht-enabled": false, "lpd-enabled": false, "pex-enabled": false,
	"port-forwarding-enabled": false, "utp-enabled": false,
	"bind-address-ipv4": %q, "bind-address-ipv6": %q,
	"peer-port": %d, "peer-port-random-on-start": false,
	"rpc-enabled": true, "rpc-bind-address": "127.0.0.1", "rpc-port": %d,
	"rpc-authentication-required": false, "rpc-whitelist-enabled": true,
	"rpc-whitelist": "127.0.0.1", "rpc-host-whitelist-enabled": false,
	"download-dir": %q, "incomplete-dir-enabled": false, "watch-dir-enabled": false,
	"start-added-torrents": true, "blocklist-enabled": false,
	"ratio-limit-enabled": false, "idle-seeding-limit-enabled": false,
	"speed-limit-down-enabled": false, "speed-limit-up-enabled": false,
	"alt-speed-enabled": false, "queue-stalled-enabled": false,
	"download-queue-enabled": false, "seed-queue-enabled": false
}
`, bind4, bind6, c.Port, rpcPort, job.dir)
	if err := os.WriteFile(filepath.Join(conf, "settings.json"), []byte(settings), 0o600); err != nil {
		t.Fatal(err)
	}
	c.run(t, job.lab.command(job.slot, "transmission-daemon", "--foreground", "--config-dir", conf, "--log-debug"))

	rpc := "127.0.0.1:" + strconv.Itoa(rpcPort)
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := job.lab.command(job.slot, "transmission-remote", rpc, "--add", job.torrent, "--download-dir", job.dir).CombinedOutput()
		if err == nil && strings.Contains(string(out), "success") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("transmission-remote --add: %v: %s", err, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// transmission-daemon 3.00 announces nothing over HTTP when it quits:
	// stopping the torrent (pausing it, in its UI) is what sends stopped.
	c.stop = func(t *testing.T) {
		if out, err := job.lab.command(job.slot, "transmission-remote", rpc, "--torrent", "all", "--stop").CombinedOutput(); err != nil {
			t.Fatalf("transmission-remote --stop: %v: %s", err, out)
		}
	}
	return c
}

// startQBittorrent runs qbittorrent-nox with a qBittorrent.conf written
// before its first start, and the torrent on its command line.
func startQBittorrent(t *testing.T, job clientJob) *btClient {
	c := &btClient{Name: "qbittorrent", Port: job.lab.port(t)}
	webPort := job.lab.port(t)
	profile := t.TempDir()
	confDir := filepath.Join(profile, "qBittorrent", "config")
	if err := os.MkdirAll(confDir, 0o700); err != nil {
		t.Fatal(err)
	}
	iface := ""
	if !job.lab.netns {
		iface = "Session\\Interface=lo\nSession\\InterfaceName=lo\nSession\\InterfaceAddress=127.0.0.1\n"
	}
	conf := fmt.Sprintf(`[LegalNotice]
Accepted=true

[BitTorrent]
Session\DHTEnabled=false
Session\LSDEnabled=false
Session\PeXEnabled=false
Session\Port=%d
Session\MultiConnectionsPerIp=true
Session\QueueingSystemEnabled=false
Session\DefaultSavePath=%s
%s
[Network]
PortForwardingEnabled=false

[Preferences]
Connection\ResolvePeerCountries=false
WebUI\Address=127.0.0.1
WebUI\Port=%d
WebUI\LocalHostAuth=false
`, c.Port, job.dir, iface, webPort)
	if err := os.WriteFile(filepath.Join(confDir, "qBittorrent.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	c.logs = []string{filepath.Join(profile, "qBittorrent", "data", "logs", "qbittorrent.log")}
	c.run(t, job.lab.command(job.slot, "qbittorrent-nox",
		"--profile="+profile, "--webui-port="+strconv.Itoa(webPort), "--torrenting-port="+strconv.Itoa(c.Port),
		"--save-path="+job.dir, "--add-paused=false", "--skip-dialog=true", job.torrent))
	return c
}

// waitFile waits until path holds data with the SHA-256 want, or fails the
// test after timeout or when the client exits.
func waitFile(t *testing.T, c *btClient, path string, want [32]byte, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		sum, err := fileSHA256(path)
		if err == nil && sum == want {
			return
		}
		state := "missing"
		if fi, err := os.Stat(path); err == nil {
			state = fmt.Sprintf("%d bytes, SHA-256 differs", fi.Size())
		}
		select {
		case <-c.exited:
			t.Fatalf("%s exited before the download completed (%s is %s)", c.Name, path, state)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: download not complete after %v: %s is %s", c.Name, timeout, path, state)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func fileSHA256(path string) ([32]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return [32]byte{}, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return [32]byte{}, err
	}
	return [32]byte(h.Sum(nil)), nil
}
