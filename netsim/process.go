package netsim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kadtracker/kadtracker/node"
	"github.com/kadtracker/kadtracker/node/localapi"
)

// ClusterConfig describes N `kadtracker run` daemons, each its own process.
type ClusterConfig struct {
	// Binary is the kadtracker executable.
	Binary string
	Nodes  int
	// Dir holds the data directories and sockets; empty means a temporary
	// directory that Close removes.
	Dir string
	// LogDir, if set, gets each daemon's log as node-I.log (appended across
	// restarts); otherwise logs go to Dir.
	LogDir      string
	Replication int
	RecordTTL   time.Duration
	Republish   time.Duration
	// Netns puts each daemon in a network namespace of its own, with an
	// address of its own on a bridge in another namespace, so every daemon
	// sees the others at distinct IPs. It needs root and iproute2.
	Netns bool
	// NATShare is the share of daemons (never the first) behind a home NAT
	// without port mapping: each in a LAN namespace behind a router
	// namespace that masquerades and forwards nothing inwards, as a router
	// without UPnP. They run --dht-mode auto, as a newcomer's daemon does,
	// and the cluster is ready once AutoNAT has found each of them private
	// and it has turned DHT client. No daemon bootstraps through them. It
	// needs Netns.
	NATShare float64
	// Internet gives the bridge "Internet" addresses in 11.0.0.0/8, which
	// libp2p and the node's limits take for public, instead of a LAN's;
	// NATShare implies it. It needs Netns.
	Internet bool
	// Args are added to every daemon's command line.
	Args []string
	// ReadyTimeout bounds a daemon's start, until its local API answers.
	ReadyTimeout time.Duration
	// BootstrapPeers is how many earlier daemons each joins through.
	BootstrapPeers int
	Seed           uint64
	Logger         *slog.Logger
}

// DefaultClusterConfig is five daemons with short TTLs, for scenarios that
// last minutes.
func DefaultClusterConfig() ClusterConfig {
	return ClusterConfig{
		Nodes:          5,
		Replication:    3,
		RecordTTL:      30 * time.Second,
		Republish:      10 * time.Second,
		ReadyTimeout:   60 * time.Second,
		BootstrapPeers: 3,
		Seed:           1,
	}
}

// Daemon is one daemon of a cluster.
type Daemon struct {
	Index   int
	DataDir string
	Socket  string
	// Listen is the multiaddr it listens on; Addr is that with /p2p/ID.
	Listen string
	Addr   string
	PeerID string
	// IP is the address others see it at: its router's for a NATed one.
	IP string
	// NATed daemons sit behind a NAT without port mapping.
	NATed bool

	cl        *Cluster
	client    *localapi.Client
	bootstrap []string
	mu        sync.Mutex
	cmd       *exec.Cmd
	exited    chan struct{}
	starts    int
}

// Cluster is a running set of daemons. Close stops them all.
type Cluster struct {
	cfg     ClusterConfig
	log     *slog.Logger
	dir     string
	tempDir bool
	netns   *netnsPlan
	Daemons []*Daemon

	closeOnce sync.Once
	closeErr  error
}

// StartCluster starts cfg.Nodes daemons: the first alone, the others each
// bootstrapped from a few that started before it, eight at a time, and
// returns once every local API answers and every routing table has a peer.
// On error everything started is stopped again.
func StartCluster(ctx context.Context, cfg ClusterConfig) (_ *Cluster, err error) {
	if cfg.Binary == "" || cfg.Nodes < 1 || cfg.Replication < 1 || cfg.ReadyTimeout <= 0 || cfg.BootstrapPeers < 1 {
		return nil, errors.New("netsim: cluster needs a binary, nodes, replication, a ready timeout and bootstrap peers")
	}
	if cfg.Republish <= 0 || cfg.RecordTTL <= cfg.Republish {
		return nil, errors.New("netsim: cluster republish must be positive and shorter than the record TTL")
	}
	if cfg.NATShare < 0 || cfg.NATShare >= 1 || ((cfg.NATShare > 0 || cfg.Internet) && !cfg.Netns) {
		return nil, errors.New("netsim: the NAT share must be in [0, 1); NAT and Internet addresses need network namespaces")
	}
	c := &Cluster{cfg: cfg, log: cfg.Logger, dir: cfg.Dir}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	defer func() {
		if err != nil {
			_ = c.Close()
		}
	}()
	if c.dir == "" {
		// Short, so socket paths stay under the 108-byte limit.
		if c.dir, err = os.MkdirTemp("", "ktns-"); err != nil {
			return nil, err
		}
		c.tempDir = true
	}
	if cfg.LogDir == "" {
		cfg.LogDir = c.dir
		c.cfg.LogDir = c.dir
	}
	if err := os.MkdirAll(cfg.LogDir, 0o755); err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x636c7573))
	nated := natedDaemons(rng, cfg.Nodes, cfg.NATShare)
	if cfg.Netns {
		if c.netns, err = newNetnsPlan(ctx, cfg.Nodes, nated, cfg.Internet); err != nil {
			return nil, err
		}
	}
	var public []int // daemons others may bootstrap through
	for i := range cfg.Nodes {
		d := &Daemon{
			Index:   i,
			cl:      c,
			DataDir: filepath.Join(c.dir, strconv.Itoa(i)),
			Socket:  filepath.Join(c.dir, strconv.Itoa(i)+".sock"),
			NATed:   nated[i],
		}
		if !d.NATed {
			public = append(public, i)
		}
		if c.netns != nil {
			d.IP = c.netns.addr(i)
			d.Listen = fmt.Sprintf("/ip4/%s/tcp/4001", d.IP)
			if d.NATed {
				d.Listen = "/ip4/" + lanHost + "/tcp/4001"
			}
		} else {
			port, err := freePort()
			if err != nil {
				return nil, err
			}
			d.IP = "127.0.0.1"
			d.Listen = fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", port)
		}
		d.client = localapi.NewClient(d.Socket)
		c.Daemons = append(c.Daemons, d)
	}
	if err := c.Daemons[0].Start(ctx); err != nil {
		return nil, err
	}
	for lo := 1; lo < cfg.Nodes; lo += 8 {
		hi := min(cfg.Nodes, lo+8)
		// Only public daemons that started before this batch: a NATed one
		// cannot be dialled.
		started := 0
		for started < len(public) && public[started] < lo {
			started++
		}
		for i := lo; i < hi; i++ {
			for _, j := range sample(rng, started, cfg.BootstrapPeers) {
				c.Daemons[i].bootstrap = append(c.Daemons[i].bootstrap, c.Daemons[public[j]].Addr)
			}
		}
		errs := make([]error, hi-lo)
		var wg sync.WaitGroup
		for i := lo; i < hi; i++ {
			wg.Go(func() { errs[i-lo] = c.Daemons[i].Start(ctx) })
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return nil, err
		}
	}
	if cfg.Nodes > 1 {
		for _, d := range c.Daemons {
			if err := d.waitRouting(ctx, 1); err != nil {
				return nil, err
			}
		}
	}
	for _, d := range c.Daemons {
		if d.NATed {
			if err := d.waitNATVerdict(ctx, rng); err != nil {
				return nil, err
			}
		}
	}
	return c, nil
}

// natedDaemons picks round(share*n) daemons, never the first, to sit
// behind a NAT.
func natedDaemons(rng *rand.Rand, n int, share float64) []bool {
	nated := make([]bool, n)
	k := min(n-1, int(share*float64(n)+0.5))
	if k <= 0 {
		return nated
	}
	for _, i := range rng.Perm(n - 1)[:k] {
		nated[i+1] = true
	}
	return nated
}

// freePort asks the kernel for a free TCP port on loopback.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// Client is the daemon's local API client.
func (d *Daemon) Client() *localapi.Client { return d.client }

// Running reports whether the daemon's process is running.
func (d *Daemon) Running() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cmd == nil {
		return false
	}
	select {
	case <-d.exited:
		return false
	default:
		return true
	}
}

// Start starts the daemon (again, on the same data directory and address)
// and waits until its local API answers.
func (d *Daemon) Start(ctx context.Context) error {
	if d.Running() {
		return fmt.Errorf("netsim: daemon %d is already running", d.Index)
	}
	cfg := d.cl.cfg
	// Public daemons serve: AutoNAT would need a while to say so (and on
	// 10.99 addresses never would). NATed ones decide as a newcomer's
	// daemon does.
	dhtMode := "server"
	if d.NATed {
		dhtMode = "auto"
	}
	args := []string{"run",
		"--data-dir", d.DataDir,
		"--rpc-socket", d.Socket,
		"--listen", d.Listen,
		"--dht-mode", dhtMode,
		"--rendezvous=false",
		"--nat-portmap=false",
		"--replication", strconv.Itoa(cfg.Replication),
		"--record-ttl", cfg.RecordTTL.String(),
		"--republish", cfg.Republish.String(),
		"--tracker-http", "",
		"--tracker-udp", "",
		"--log-level", "info",
	}
	if len(d.bootstrap) > 0 {
		args = append(args, "--bootstrap", strings.Join(d.bootstrap, ","))
	}
	args = append(args, cfg.Args...)
	name := cfg.Binary
	if d.cl.netns != nil {
		args = append([]string{"netns", "exec", d.cl.netns.ns(d.Index), cfg.Binary}, args...)
		name = "ip"
	}
	logf, err := os.OpenFile(filepath.Join(cfg.LogDir, fmt.Sprintf("node-%d.log", d.Index)), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(name, args...)
	cmd.Env = daemonEnv()
	cmd.Stdout, cmd.Stderr = logf, logf
	ownGroup(cmd)
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("netsim: daemon %d: %w", d.Index, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(exited)
	}()
	d.mu.Lock()
	d.cmd, d.exited = cmd, exited
	d.starts++
	d.mu.Unlock()
	st, err := d.waitReady(ctx)
	if err != nil {
		_ = d.Kill()
		return err
	}
	d.PeerID = st.PeerID
	d.Addr = d.Listen + "/p2p/" + st.PeerID
	return nil
}

// daemonEnv is our environment without KADTRACKER_ settings, which would
// override the flags we give.
func daemonEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "KADTRACKER_") {
			env = append(env, kv)
		}
	}
	// A simulated cluster never reaches beyond the machine.
	return append(env, node.NoPublicNetworkEnv+"=1")
}

// waitReady polls the local API until it answers, the process exits, or
// the ready timeout passes.
func (d *Daemon) waitReady(ctx context.Context) (localapi.Status, error) {
	ctx, cancel := context.WithTimeout(ctx, d.cl.cfg.ReadyTimeout)
	defer cancel()
	d.mu.Lock()
	exited := d.exited
	d.mu.Unlock()
	for {
		sctx, scancel := context.WithTimeout(ctx, 2*time.Second)
		st, err := d.client.Status(sctx)
		scancel()
		if err == nil {
			return st, nil
		}
		select {
		case <-exited:
			return localapi.Status{}, fmt.Errorf("netsim: daemon %d exited while starting (log in %s)", d.Index, d.cl.cfg.LogDir)
		case <-ctx.Done():
			return localapi.Status{}, fmt.Errorf("netsim: daemon %d not ready: %w (last: %v)", d.Index, ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// waitRouting waits until the daemon's routing table has n peers.
func (d *Daemon) waitRouting(ctx context.Context, n int) error {
	ctx, cancel := context.WithTimeout(ctx, d.cl.cfg.ReadyTimeout)
	defer cancel()
	for {
		st, err := d.client.Status(ctx)
		if err == nil && st.RoutingTableSize >= n {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("netsim: daemon %d: routing table never reached %d peers", d.Index, n)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// waitNATVerdict waits until AutoNAT has found a NATed daemon private, it
// has turned DHT client, and storing nodes accept its records. AutoNAT v1
// decides from dial-backs to the address the servers observe, which the
// daemon itself knows, and signs in its records, only once four peers at
// distinct IPs report it (observedaddrs.ActivationThresh): a NAT scenario
// needs four public daemons, and until then the daemon's announces are
// refused. So once it is a private client it announces a probe key of its
// own (withdrawn again) until that is stored; before, it looks up a random
// key now and then, which connects it to the servers it knows, as its
// routing-table refresh would in time.
func (d *Daemon) waitNATVerdict(ctx context.Context, rng *rand.Rand) error {
	ctx, cancel := context.WithTimeout(ctx, d.cl.cfg.ReadyTimeout)
	defer cancel()
	probe, err := randomKey(rng)
	if err != nil {
		return err
	}
	var last string
	for i := 0; ; i++ {
		st, err := d.client.Status(ctx)
		switch {
		case err != nil:
			last = err.Error()
		case st.Reachability == "private" && st.DHTMode == "client":
			if i%5 != 0 { // a probe a second: each is a walk and m PUTs
				break
			}
			actx, acancel := context.WithTimeout(ctx, 10*time.Second)
			r, err := d.client.Announce(actx, probe, 6881, false)
			if err == nil && r.StoredOn > 0 {
				err = d.client.Withdraw(actx, probe)
				acancel()
				return err
			}
			acancel()
			last = fmt.Sprintf("private client, probe announce: %v (addrs %v)", err, st.Addrs)
		default:
			last = fmt.Sprintf("reachability %q, DHT mode %q", st.Reachability, st.DHTMode)
			if i%10 == 0 {
				if k, err := randomKey(rng); err == nil {
					lctx, lcancel := context.WithTimeout(ctx, 10*time.Second)
					_, _ = d.client.Peers(lctx, k, 1)
					lcancel()
				}
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("netsim: NATed daemon %d behind %s not ready: %s", d.Index, d.IP, last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Kill stops the daemon with SIGKILL, as a crash would, and waits for it.
func (d *Daemon) Kill() error { return d.signal(syscall.SIGKILL, 10*time.Second) }

// Stop stops the daemon with SIGTERM, then SIGKILL if it takes longer than
// ten seconds.
func (d *Daemon) Stop() error {
	if err := d.signal(syscall.SIGTERM, 10*time.Second); err != nil {
		return d.Kill()
	}
	return nil
}

func (d *Daemon) signal(sig syscall.Signal, wait time.Duration) error {
	d.mu.Lock()
	cmd, exited := d.cmd, d.exited
	d.mu.Unlock()
	if cmd == nil {
		return nil
	}
	select {
	case <-exited:
		return nil
	default:
	}
	signalGroup(cmd.Process.Pid, sig)
	select {
	case <-exited:
		return nil
	case <-time.After(wait):
		return fmt.Errorf("netsim: daemon %d still running %s after %s", d.Index, wait, sig)
	}
}

// Close stops every daemon, removes the namespaces and, if it made it, the
// directory. It is idempotent.
func (c *Cluster) Close() error {
	c.closeOnce.Do(func() {
		errs := make([]error, len(c.Daemons))
		var wg sync.WaitGroup
		for i, d := range c.Daemons {
			wg.Go(func() { errs[i] = d.Stop() })
		}
		wg.Wait()
		if c.netns != nil {
			errs = append(errs, c.netns.teardown())
		}
		if c.tempDir {
			errs = append(errs, os.RemoveAll(c.dir))
		}
		c.closeErr = errors.Join(errs...)
	})
	return c.closeErr
}

// netnsPlan is the namespaces of a cluster: a hub namespace with a bridge,
// and one namespace per daemon joined to it by a veth pair; a NATed
// daemon's namespace is a LAN behind a router namespace of its own, which
// is what the bridge sees. Nothing is added to the caller's own namespace.
type netnsPlan struct {
	prefix string
	nodes  int
	// internet gives the bridge addresses that libp2p and the records
	// take for global, as a NAT scenario needs: a NATed node learns and
	// signs its router's address only towards global ones.
	internet bool
	made     []string // namespaces created, for teardown
}

func newNetnsPlan(ctx context.Context, nodes int, nated []bool, internet bool) (_ *netnsPlan, err error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("netsim: network namespaces need root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return nil, errors.New("netsim: network namespaces need iproute2's ip")
	}
	if slices.Contains(nated, true) {
		if _, err := exec.LookPath("nft"); err != nil {
			return nil, errors.New("netsim: NATed daemons need nftables' nft")
		}
	}
	if err := checkNeighbourTable(nodes, nated); err != nil {
		return nil, err
	}
	p := &netnsPlan{nodes: nodes, internet: internet || slices.Contains(nated, true)}
	if p.internet && nodes > maxInternetNodes {
		return nil, fmt.Errorf("netsim: at most %d daemons with NAT", maxInternetNodes)
	}
	p.prefix = p.prefixFor()
	defer func() {
		if err != nil {
			_ = p.teardown()
		}
	}()
	hub := p.prefix + "-hub"
	if err := p.addNS(ctx, hub); err != nil {
		return nil, err
	}
	for _, args := range [][]string{
		{"-n", hub, "link", "set", "lo", "up"},
		{"-n", hub, "link", "add", "br0", "type", "bridge"},
		{"-n", hub, "link", "set", "br0", "up"},
	} {
		if err := ipCmd(ctx, args...); err != nil {
			return nil, err
		}
	}
	for i := range nodes {
		// The namespace on the bridge: the daemon's, or its router's.
		ns := p.ns(i)
		if nated[i] {
			ns = p.router(i)
		}
		if err := p.addNS(ctx, ns); err != nil {
			return nil, err
		}
		hubEnd := fmt.Sprintf("v%d", i)
		for _, args := range [][]string{
			{"link", "add", "name", hubEnd, "netns", hub, "type", "veth", "peer", "name", "eth0", "netns", ns},
			{"-n", hub, "link", "set", hubEnd, "master", "br0"},
			{"-n", hub, "link", "set", hubEnd, "up"},
			{"-n", ns, "addr", "add", p.addr(i) + p.mask(), "dev", "eth0"},
			{"-n", ns, "link", "set", "eth0", "up"},
			{"-n", ns, "link", "set", "lo", "up"},
		} {
			if err := ipCmd(ctx, args...); err != nil {
				return nil, err
			}
		}
		if nated[i] {
			if err := p.addLAN(ctx, i); err != nil {
				return nil, err
			}
		}
	}
	return p, nil
}

// The LAN behind each NAT router: the same addresses in every home.
const (
	lanRouter = "192.168.1.1"
	lanHost   = "192.168.1.2"
)

// natRules masquerade the LAN out of the router's WAN port. Nothing is
// forwarded inwards but replies: no port mapping.
const natRules = `table ip nat {
	chain postrouting { type nat hook postrouting priority 100; policy accept; oifname "eth0" masquerade; }
}
table ip filter {
	chain forward { type filter hook forward priority 0; policy drop; ct state established,related accept; iifname "lan0" oifname "eth0" accept; }
}
`

// addLAN puts daemon i's namespace behind router i: a LAN link, a default
// route through the router, forwarding and masquerade.
func (p *netnsPlan) addLAN(ctx context.Context, i int) error {
	ns, rt := p.ns(i), p.router(i)
	if err := p.addNS(ctx, ns); err != nil {
		return err
	}
	for _, args := range [][]string{
		{"link", "add", "name", "lan0", "netns", rt, "type", "veth", "peer", "name", "eth0", "netns", ns},
		{"-n", rt, "addr", "add", lanRouter + "/24", "dev", "lan0"},
		{"-n", rt, "link", "set", "lan0", "up"},
		{"-n", ns, "addr", "add", lanHost + "/24", "dev", "eth0"},
		{"-n", ns, "link", "set", "eth0", "up"},
		{"-n", ns, "link", "set", "lo", "up"},
		{"-n", ns, "route", "add", "default", "via", lanRouter},
		{"netns", "exec", rt, "sysctl", "-qw", "net.ipv4.ip_forward=1"},
	} {
		if err := ipCmd(ctx, args...); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", rt, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(natRules)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("netsim: nft in %s: %v: %s", rt, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// router is NATed daemon i's router namespace.
func (p *netnsPlan) router(i int) string { return fmt.Sprintf("%s-r%d", p.prefix, i) }

// neighbourLimit is where the kernel's hard limit on ARP entries is read.
const neighbourLimit = "/proc/sys/net/ipv4/neigh/default/gc_thresh3"

// checkNeighbourTable refuses a plan whose ARP entries would overflow the
// kernel's neighbour table, which every namespace shares (gc_thresh3 of
// the first namespace, 1024 by default): each namespace on the bridge
// comes to know every other, and past the limit new neighbours are not
// resolved and dials time out ("neighbor table overflow" in dmesg), as
// they did for 40 daemons.
func checkNeighbourTable(nodes int, nated []bool) error {
	b, err := os.ReadFile(neighbourLimit)
	if err != nil {
		return nil // not Linux's layout: nothing to check against
	}
	limit, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return nil
	}
	need := nodes * (nodes - 1)
	for _, n := range nated {
		need += 2 * btoi(n) // the LAN host and its router know each other
	}
	if need > limit {
		return fmt.Errorf("netsim: %d namespaces on one bridge need about %d ARP entries, more than the kernel's neighbour table holds across all namespaces (%s = %d); raise it with sysctl -w net.ipv4.neigh.default.gc_thresh3=%d, or use fewer daemons",
			nodes, need, neighbourLimit, limit, 2*need)
	}
	return nil
}

// prefixFor names this process's namespaces.
func (*netnsPlan) prefixFor() string { return fmt.Sprintf("kns%d", os.Getpid()%100000) }

func (p *netnsPlan) ns(i int) string { return fmt.Sprintf("%s-%d", p.prefix, i) }

// addr is daemon i's address on the bridge: in 10.99.0.0/16, which the
// node's limits treat as a LAN (exempt), as netsim's in-process addresses
// are not; with NAT, an "Internet" address 11.<i+1>.0.10 (as in the NAT
// lab test: never routed beyond the namespaces), each in a /16 of its own
// so that kad-dht's per-/16 routing-table diversity does not bind.
func (p *netnsPlan) addr(i int) string {
	if p.internet {
		return fmt.Sprintf("11.%d.0.10", i+1)
	}
	return fmt.Sprintf("10.99.%d.%d", (i+1)/250, (i+1)%250+1)
}

func (p *netnsPlan) mask() string {
	if p.internet {
		return "/8"
	}
	return "/16"
}

// maxInternetNodes is how many /16s of 11.0.0.0/8 addr hands out.
const maxInternetNodes = 254

func (p *netnsPlan) addNS(ctx context.Context, name string) error {
	if err := ipCmd(ctx, "netns", "add", name); err != nil {
		return err
	}
	p.made = append(p.made, name)
	return nil
}

// teardown deletes every namespace made; their veths go with them.
func (p *netnsPlan) teardown() error {
	var errs []error
	for i := len(p.made) - 1; i >= 0; i-- {
		if err := ipCmd(context.Background(), "netns", "del", p.made[i]); err != nil {
			errs = append(errs, err)
		}
	}
	p.made = nil
	return errors.Join(errs...)
}

func ipCmd(ctx context.Context, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("netsim: ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
