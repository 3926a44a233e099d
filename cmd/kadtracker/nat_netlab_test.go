package main

// The Internet with home NATs, in network namespaces (issue 12):
//
//	inet netns:  bridge br0, the "Internet": 11.0.0.0/8 on one link,
//	             addresses that libp2p counts as public, existing only in
//	             these namespaces; each host in a /16 of its own, as the
//	             routing table's diversity limits expect of the Internet
//	pub0..pub3:  eth0 = 11.<i+1>.0.10; a daemon serving the DHT and the
//	             rendezvous DHT (--rendezvous-serve)
//	routerA:     eth0 = 11.100.0.1 (WAN), eth1 = 192.168.1.1 (LAN);
//	             nftables masquerade; miniupnpd (UPnP IGD and NAT-PMP)
//	homeA:       eth0 = 192.168.1.2, default route via routerA
//	routerB:     eth0 = 11.101.0.1, eth1 = 192.168.2.1; masquerade only
//	homeB:       eth0 = 192.168.2.2, default route via routerB
//
// No namespace has a route beyond 11.0.0.0/8 (the homes' default routes
// end at routers that have none), and nothing is added to the host's own
// namespace: nothing leaves the namespaces the test created.

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kadtracker/kadtracker/bootstrap"
	"github.com/kadtracker/kadtracker/node/localapi"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// natLab is the topology above.
type natLab struct {
	t    *testing.T
	base string
	ns   []string // created, deleted in reverse
}

func (l *natLab) name(s string) string { return l.base + "-" + s }

func (l *natLab) ip(args ...string) {
	l.t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		l.t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// in runs name args... in namespace ns and fails the test on error.
func (l *natLab) in(ns, name string, args ...string) string {
	l.t.Helper()
	out, err := exec.Command("ip", append([]string{"netns", "exec", l.name(ns), name}, args...)...).CombinedOutput()
	if err != nil {
		l.t.Fatalf("%s in %s: %s %v: %s", name, ns, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (l *natLab) addNS(s string) {
	l.t.Helper()
	l.ip("netns", "add", l.name(s))
	l.ns = append(l.ns, l.name(s))
	l.ip("-n", l.name(s), "link", "set", "lo", "up")
}

// link joins a and b by a veth pair named ifA in a and ifB in b.
func (l *natLab) link(a, ifA, b, ifB string) {
	l.t.Helper()
	l.ip("-n", l.name(a), "link", "add", ifA, "type", "veth", "peer", "name", ifB, "netns", l.name(b))
	l.ip("-n", l.name(a), "link", "set", ifA, "up")
	l.ip("-n", l.name(b), "link", "set", ifB, "up")
}

// onInternet puts ns on the Internet bridge with addr.
func (l *natLab) onInternet(ns, addr string, i int) {
	l.t.Helper()
	veth := fmt.Sprintf("w%d", i)
	l.ip("-n", l.name(ns), "link", "add", "eth0", "type", "veth", "peer", "name", veth, "netns", l.name("inet"))
	l.ip("-n", l.name("inet"), "link", "set", veth, "master", "br0", "up")
	l.ip("-n", l.name(ns), "addr", "add", addr+"/8", "dev", "eth0")
	l.ip("-n", l.name(ns), "link", "set", "eth0", "up")
}

// home builds router r (WAN wan) and home h behind it on lan.0/24.
func (l *natLab) home(r, h, wan, lan string, i int) {
	l.t.Helper()
	l.addNS(r)
	l.addNS(h)
	l.onInternet(r, wan, i)
	l.link(r, "eth1", h, "eth0")
	l.ip("-n", l.name(r), "addr", "add", lan+".1/24", "dev", "eth1")
	l.ip("-n", l.name(h), "addr", "add", lan+".2/24", "dev", "eth0")
	l.ip("-n", l.name(h), "route", "add", "default", "via", lan+".1")
	l.in(r, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	// The chains miniupnpd fills (its nft_init.sh layout, table "filter"),
	// then masquerade of the LAN out of the WAN port.
	ruleset := `table inet filter {
	chain forward { type filter hook forward priority 0; policy accept; jump miniupnpd; }
	chain miniupnpd { }
	chain prerouting { type nat hook prerouting priority -100; policy accept; jump prerouting_miniupnpd; }
	chain postrouting { type nat hook postrouting priority 100; policy accept; jump postrouting_miniupnpd; oifname "eth0" masquerade; }
	chain prerouting_miniupnpd { }
	chain postrouting_miniupnpd { }
}
`
	cmd := exec.Command("ip", "netns", "exec", l.name(r), "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(ruleset)
	if out, err := cmd.CombinedOutput(); err != nil {
		l.t.Fatalf("nft in %s: %v: %s", r, err, out)
	}
}

// newNATLab builds the topology, or skips (fails in CI) without root,
// iproute2, nft or miniupnpd.
func newNATLab(t *testing.T, publics int) *natLab {
	t.Helper()
	why := netnsUnavailable()
	for _, tool := range []string{"nft", "miniupnpd"} {
		if _, err := exec.LookPath(tool); why == "" && err != nil {
			why = tool + " is not installed"
		}
	}
	if why != "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI must run the NAT test in network namespaces, but: %s", why)
		}
		t.Skipf("network namespaces unavailable: %s", why)
	}
	sweepStaleNetns(t)
	var rnd [3]byte
	rand.Read(rnd[:])
	l := &natLab{t: t, base: fmt.Sprintf("%s%d-%s", netnsPrefix, os.Getpid(), hex.EncodeToString(rnd[:]))}
	t.Cleanup(func() {
		for i := len(l.ns) - 1; i >= 0; i-- {
			if out, err := exec.Command("ip", "netns", "delete", l.ns[i]).CombinedOutput(); err != nil {
				t.Errorf("ip netns delete %s: %v: %s", l.ns[i], err, out)
			}
		}
	})
	l.addNS("inet")
	l.ip("-n", l.name("inet"), "link", "add", "br0", "type", "bridge")
	l.ip("-n", l.name("inet"), "link", "set", "br0", "up")
	for i := range publics {
		ns := fmt.Sprintf("pub%d", i)
		l.addNS(ns)
		l.onInternet(ns, fmt.Sprintf("11.%d.0.10", i+1), i)
	}
	l.home("routerA", "homeA", "11.100.0.1", "192.168.1", 100)
	l.home("routerB", "homeB", "11.101.0.1", "192.168.2", 101)
	for _, ns := range []string{"pub0", "routerA", "routerB"} {
		if out, err := exec.Command("ip", "-n", l.name(ns), "route", "get", "192.0.2.1").CombinedOutput(); err == nil {
			t.Fatalf("namespace %s has a route out: %s", ns, out)
		}
	}
	if !manet.IsPublicAddr(ma.StringCast("/ip4/11.1.0.10/tcp/4001")) {
		t.Fatal("the Internet segment's addresses are not public to libp2p")
	}
	return l
}

// miniupnpd starts miniupnpd in router r, serving lan.0/24, with a config
// the test writes; it stops with the test.
func (l *natLab) miniupnpd(r, lan string) {
	t := l.t
	t.Helper()
	dir := t.TempDir()
	conf := filepath.Join(dir, "miniupnpd.conf")
	err := os.WriteFile(conf, []byte(fmt.Sprintf(`ext_ifname=eth0
listening_ip=eth1
port=0
enable_natpmp=yes
enable_upnp=yes
secure_mode=yes
system_uptime=yes
notify_interval=60
clean_ruleset_interval=600
uuid=3e4f5a6b-1c2d-4e5f-8a9b-0c1d2e3f4a5b
lease_file=%s
allow 1024-65535 %s.0/24 1024-65535
deny 0-65535 0.0.0.0/0 0-65535
`, filepath.Join(dir, "leases"), lan)), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	cmd := exec.Command("ip", "netns", "exec", l.name(r), "miniupnpd", "-d", "-f", conf, "-P", filepath.Join(dir, "pid"))
	cmd.Stdout, cmd.Stderr = &logs, &logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("miniupnpd in %s:\n%s", r, logs.String())
		}
	})
	// Ready when NAT-PMP's port is bound.
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(l.in(r, "ss", "-uln"), ":5351") {
		if time.Now().After(deadline) {
			t.Fatalf("miniupnpd did not start:\n%s", logs.String())
		}
		select {
		case <-done:
			t.Fatalf("miniupnpd exited:\n%s", logs.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// startIn starts a daemon in namespace ns.
func (l *natLab) startIn(ns string, args ...string) *daemonProc {
	l.t.Helper()
	return startDaemonIn(l.t, []string{"ip", "netns", "exec", l.name(ns)}, args...)
}

func status(t *testing.T, d *daemonProc) localapi.Status {
	t.Helper()
	out, errOut, code := d.CLI(t, "status", "--json")
	var st localapi.Status
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil {
		t.Fatalf("status: exit %d, %q %q", code, out, errOut)
	}
	return st
}

// waitStatus polls d's status until ok holds, for up to d.
func waitStatus(t *testing.T, d *daemonProc, what string, patience time.Duration, ok func(localapi.Status) bool) (localapi.Status, time.Duration) {
	t.Helper()
	start := time.Now()
	for {
		st := status(t, d)
		if ok(st) {
			return st, time.Since(start)
		}
		if time.Since(start) > patience {
			t.Fatalf("%s: not within %s; last status %+v\nlog:\n%s", what, patience, st, d.Logs())
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// natPeersOf looks infohash up through d, as "ip:port" strings.
func natPeersOf(t *testing.T, d *daemonProc, infohash string) []string {
	t.Helper()
	out, errOut, code := d.CLI(t, "peers", infohash, "--json")
	var pr localapi.PeersResult
	if code != 0 || json.Unmarshal([]byte(out), &pr) != nil {
		t.Fatalf("peers: exit %d, %q %q", code, out, errOut)
	}
	var s []string
	for _, p := range pr.Peers {
		s = append(s, netip.AddrPortFrom(netip.MustParseAddr(p.IP), p.Port).String())
	}
	return s
}

// TestNATHomes is issue 12's topology: public daemons, one home whose
// router maps ports (miniupnpd) and one whose router does not; the home
// daemons know nothing but one public daemon's address for the rendezvous
// DHT and start with empty data dirs.
func TestNATHomes(t *testing.T) {
	l := newNATLab(t, 4)
	l.miniupnpd("routerA", "192.168.1")

	var pubs []*daemonProc
	for i := range 4 {
		args := []string{"--listen", fmt.Sprintf("/ip4/11.%d.0.10/tcp/4001", i+1), "--rendezvous=true", "--rendezvous-serve", "--nat-portmap=false"}
		if i == 0 {
			args = append(args, "--rendezvous-bootstrap=") // the first of the rendezvous DHT
		} else {
			args = append(args, "--rendezvous-bootstrap", pubs[0].Addr())
		}
		pubs = append(pubs, l.startIn(fmt.Sprintf("pub%d", i), args...))
	}
	home := func(ns string) *daemonProc {
		return l.startIn(ns, "--listen", "/ip4/0.0.0.0/tcp/4001", "--rendezvous=true", "--nat-portmap=true", "--rendezvous-bootstrap", pubs[1].Addr())
	}
	began := time.Now()
	a, b := home("homeA"), home("homeB")

	joined := func(st localapi.Status) bool { return st.RoutingTableSize >= 3 }
	waitStatus(t, a, "home A joins", time.Minute, joined)
	t.Logf("home A joined by rendezvous %s after start", time.Since(began))
	waitStatus(t, b, "home B joins", time.Minute, joined)
	t.Logf("home B joined by rendezvous %s after start", time.Since(began))

	// Home A: mapped through miniupnpd, confirmed by AutoNAT, a DHT server.
	stA, _ := waitStatus(t, a, "home A public", 3*time.Minute, func(st localapi.Status) bool {
		return st.Reachability == "public" && st.DHTMode == "server" && len(st.PortMapping.Mapped) > 0
	})
	t.Logf("home A public and serving %s after start: %+v", time.Since(began), stA)
	if !slices.ContainsFunc(stA.PortMapping.Mapped, func(s string) bool { return strings.HasPrefix(s, "/ip4/11.100.0.1/tcp/") }) {
		t.Errorf("home A's mapping is not on its router's address: %v", stA.PortMapping.Mapped)
	}
	// AutoNAT v2 confirms the mapped address: status shows it as the one
	// others can use.
	stA, _ = waitStatus(t, a, "home A's mapped address confirmed", time.Minute, func(st localapi.Status) bool {
		return len(st.PortMapping.Mapped) > 0 && slices.Equal(st.PublicAddrs, st.PortMapping.Mapped)
	})
	t.Logf("home A's mapped address confirmed %s after start: %v", time.Since(began), stA.PublicAddrs)
	// Home B: no mapping, AutoNAT finds it unreachable, a DHT client.
	stB, _ := waitStatus(t, b, "home B private", 3*time.Minute, func(st localapi.Status) bool {
		return st.Reachability == "private" && st.DHTMode == "client"
	})
	t.Logf("home B private and a DHT client %s after start", time.Since(began))
	if len(stB.PortMapping.Mapped) != 0 || stB.PortMapping.Gateway {
		t.Errorf("home B has a port mapping: %+v", stB.PortMapping)
	}
	if !stB.Rendezvous.Enabled || stB.Rendezvous.DHTPeers == 0 {
		t.Errorf("home B's rendezvous: %+v", stB.Rendezvous)
	}
	// Only reachable nodes advertise themselves for rendezvous.
	if !stB.Rendezvous.LastAdvertised.IsZero() {
		t.Errorf("home B, unreachable, advertised itself: %+v", stB.Rendezvous)
	}
	if st := status(t, a); st.Rendezvous.LastAdvertised.IsZero() {
		t.Errorf("home A, public, did not advertise itself: %+v", st.Rendezvous)
	}

	// Records cross both NATs: each carries the router's address.
	const ihB, ihA = "1111111111111111111111111111111111111111", "2222222222222222222222222222222222222222"
	if out, errOut, code := b.CLI(t, "announce", ihB, "--port", "6881", "--seed"); code != 0 {
		t.Fatalf("announce in home B: %q %q", out, errOut)
	}
	if out, errOut, code := a.CLI(t, "announce", ihA, "--port", "6882", "--seed"); code != 0 {
		t.Fatalf("announce in home A: %q %q", out, errOut)
	}
	for _, c := range []struct {
		name string
		d    *daemonProc
		ih   string
		want string
	}{
		{"home A finds home B", a, ihB, "11.101.0.1:6881"},
		{"a public daemon finds home B", pubs[3], ihB, "11.101.0.1:6881"},
		{"home B finds home A", b, ihA, "11.100.0.1:6882"},
		{"a public daemon finds home A", pubs[2], ihA, "11.100.0.1:6882"},
	} {
		if got := natPeersOf(t, c.d, c.ih); !slices.Contains(got, c.want) {
			t.Errorf("%s: peers %v, want %s", c.name, got, c.want)
		}
	}

	natClients(t, l, a, b)

	// Home B restarts without rendezvous: its remembered peers suffice.
	dir := b.DataDir
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(bootstrap.MemoryPath(dir)); err != nil {
		t.Fatalf("home B remembered no peers: %v", err)
	}
	b2 := l.startIn("homeB", "--data-dir", dir, "--listen", "/ip4/0.0.0.0/tcp/4001", "--rendezvous=false", "--nat-portmap=true")
	st2, d2 := waitStatus(t, b2, "home B rejoins from peers.json", time.Minute, func(st localapi.Status) bool { return st.RoutingTableSize > 0 })
	if st2.Rendezvous.Enabled {
		t.Error("rendezvous on after --rendezvous=false")
	}
	t.Logf("home B rejoined from peers.json in %s", d2)
	if got := natPeersOf(t, b2, ihA); !slices.Contains(got, "11.100.0.1:6882") {
		t.Errorf("home B after restart: peers %v", got)
	}
}

// natClients runs real BitTorrent clients across the two NATs: qBittorrent
// in home A seeds, its own UPnP mapping its port through miniupnpd;
// aria2 in home B downloads. Each announces only to its own daemon's
// loopback tracker URL.
func natClients(t *testing.T, l *natLab, a, b *daemonProc) {
	t.Helper()
	var missing []string
	for _, bin := range []string{"mktorrent", "qbittorrent-nox", "aria2c"} {
		if _, err := exec.LookPath(bin); err != nil {
			missing = append(missing, bin)
		}
	}
	if len(missing) > 0 {
		if os.Getenv("CI") != "" {
			t.Fatalf("the NAT test's clients need %v", missing)
		}
		t.Logf("no real clients across the NATs: %v not installed", missing)
		return
	}
	slot := func(ns, ip string) labSlot {
		return labSlot{ns: l.name(ns), wrap: []string{"ip", "netns", "exec", l.name(ns)}, ip: ip}
	}
	lab := &netLab{netns: true, nextPort: 20000, slots: []labSlot{slot("homeA", "192.168.1.2"), slot("homeB", "192.168.2.2")}}
	start := time.Now()
	tt := makeTestTorrent(t, clientFileSize, a.TrackerHTTP, b.TrackerHTTP)
	seeder := startQBittorrentUPnP(t, clientJob{lab: lab, slot: 0, torrent: tt.Seed, dir: tt.SeedDir, seed: true})

	// qBittorrent's UPnP maps its port on router A...
	rule := fmt.Sprintf("dport %d", seeder.Port)
	deadline := time.Now().Add(seedRecordTimeout)
	for !strings.Contains(l.in("routerA", "nft", "list", "chain", "inet", "filter", "prerouting_miniupnpd"), rule) {
		if time.Now().After(deadline) {
			t.Fatalf("qBittorrent mapped no port %d through miniupnpd:\n%s", seeder.Port, l.in("routerA", "nft", "list", "ruleset"))
		}
		time.Sleep(250 * time.Millisecond)
	}
	// ...and home B's daemon finds it at router A's address.
	waitSeedRecord(t, b, tt.Infohash, "11.100.0.1", seeder)
	found := time.Now()
	leechDir := t.TempDir()
	leecher := startAria2(t, clientJob{lab: lab, slot: 1, torrent: tt.Leech, dir: leechDir})
	waitFile(t, leecher, filepath.Join(leechDir, tt.Name), tt.SHA256, downloadTimeout)
	t.Logf("across the NATs: home B's daemon found the qBittorrent seed at 11.100.0.1:%d %v after it started; aria2 downloaded %d bytes (SHA-256 matches) in %v",
		seeder.Port, found.Sub(start).Round(time.Millisecond), clientFileSize, time.Since(found).Round(time.Millisecond))
}

// startQBittorrentUPnP is startQBittorrent as a user behind a home router
// runs it: port forwarding (UPnP / NAT-PMP) on, as is its default.
func startQBittorrentUPnP(t *testing.T, job clientJob) *btClient {
	c := &btClient{Name: "qbittorrent", Port: job.lab.port(t)}
	webPort := job.lab.port(t)
	profile := t.TempDir()
	confDir := filepath.Join(profile, "qBittorrent", "config")
	if err := os.MkdirAll(confDir, 0o700); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`[LegalNotice]
Accepted=true

[BitTorrent]
Session\DHTEnabled=false
Session\LSDEnabled=false
Session\PeXEnabled=false
Session\Port=%d
Session\QueueingSystemEnabled=false
Session\DefaultSavePath=%s

[Network]
PortForwardingEnabled=true

[Preferences]
Connection\ResolvePeerCountries=false
WebUI\Address=127.0.0.1
WebUI\Port=%d
WebUI\LocalHostAuth=false
`, c.Port, job.dir, webPort)
	if err := os.WriteFile(filepath.Join(confDir, "qBittorrent.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	c.logs = []string{filepath.Join(profile, "qBittorrent", "data", "logs", "qbittorrent.log")}
	c.run(t, job.lab.command(job.slot, "qbittorrent-nox",
		"--profile="+profile, "--webui-port="+strconv.Itoa(webPort), "--torrenting-port="+strconv.Itoa(c.Port),
		"--save-path="+job.dir, "--add-paused=false", "--skip-dialog=true", job.torrent))
	return c
}
