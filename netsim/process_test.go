package netsim

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// binary is the kadtracker binary, built once for the process tests.
var kadtrackerBinary struct {
	once sync.Once
	path string
	err  error
}

func buildBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the kadtracker binary")
	}
	kadtrackerBinary.once.Do(func() {
		dir, err := os.MkdirTemp("", "netsim-bin-")
		if err != nil {
			kadtrackerBinary.err = err
			return
		}
		kadtrackerBinary.path = filepath.Join(dir, "kadtracker")
		// Without -race: the daemons are not what these tests examine.
		out, err := exec.Command("go", "build", "-o", kadtrackerBinary.path, "github.com/kadtracker/kadtracker/cmd/kadtracker").CombinedOutput()
		if err != nil {
			kadtrackerBinary.err = errors.New(string(out))
		}
	})
	if kadtrackerBinary.err != nil {
		t.Fatalf("building kadtracker: %v", kadtrackerBinary.err)
	}
	return kadtrackerBinary.path
}

func processRun(t *testing.T, netns bool) ProcessRun {
	pr := DefaultProcessRun()
	pr.Cluster.Binary = buildBinary(t)
	pr.Cluster.Nodes = 4
	pr.Cluster.Netns = netns
	pr.Cluster.RecordTTL, pr.Cluster.Republish = 6*time.Second, 2*time.Second
	pr.Cluster.LogDir = t.TempDir()
	pr.Keys, pr.Lookups, pr.Duration = 2, 40, 12*time.Second
	pr.TTF, pr.TTR = 5*time.Second, 2*time.Second
	pr.Window = 3 * time.Second
	return pr
}

// Daemons are killed and restarted while lookups run; republishing keeps
// the records found, each with its announcer's own address.
func TestProcessChurn(t *testing.T) {
	pr := processRun(t, false)
	var log bytes.Buffer
	pr.Log = &log
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := pr.Run(ctx)
	t.Log(log.String())
	if err != nil {
		t.Fatal(err)
	}
	res.Outcomes = nil
	t.Logf("%+v", *res)
	if res.Kills == 0 || res.Restarts < res.Kills {
		t.Fatalf("%d kills, %d restarts", res.Kills, res.Restarts)
	}
	if res.Lookups < 20 || res.SuccessRate < 0.9 {
		t.Fatalf("%d of %d lookups found the record", res.Successes, res.Lookups)
	}
	if res.WrongIP != 0 {
		t.Fatalf("%d records came back with an address not their announcer's", res.WrongIP)
	}
	dir := t.TempDir()
	if err := WriteProcessResults(dir, "test", res); err != nil {
		t.Fatal(err)
	}
	isPNG(t, filepath.Join(dir, "process.png"))
}

// Each daemon in its own network namespace: records carry each one's own
// address. Needs root and iproute2.
func TestProcessNetns(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("network namespaces need iproute2")
	}
	pr := processRun(t, true)
	pr.TTF, pr.Duration, pr.Lookups = 0, 5*time.Second, 20
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := pr.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.SuccessRate != 1 || res.WrongIP != 0 {
		t.Fatalf("%d of %d found, %d with the wrong address", res.Successes, res.Lookups, res.WrongIP)
	}
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatal(err)
	}
	if prefix := (&netnsPlan{}).prefixFor(); strings.Contains(string(out), prefix+"-") {
		t.Fatalf("namespaces left behind:\n%s", out)
	}
}

// Cancelling the run, as Ctrl-C does, stops every daemon.
func TestProcessCancel(t *testing.T) {
	cfg := DefaultClusterConfig()
	cfg.Binary = buildBinary(t)
	cfg.Nodes = 3
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl, err := StartCluster(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range cl.Daemons {
		if !d.Running() {
			t.Fatalf("daemon %d not running", d.Index)
		}
	}
	if err := cl.Daemons[1].Kill(); err != nil {
		t.Fatal(err)
	}
	if err := cl.Daemons[1].Start(ctx); err != nil {
		t.Fatalf("restart: %v", err)
	}
	if err := cl.Close(); err != nil {
		t.Fatal(err)
	}
	for _, d := range cl.Daemons {
		if d.Running() {
			t.Fatalf("daemon %d still running after Close", d.Index)
		}
	}
	if _, err := os.Stat(cl.dir); !os.IsNotExist(err) {
		t.Fatalf("temporary directory %s left behind", cl.dir)
	}

	// A cancelled scenario tears down too.
	pr := processRun(t, false)
	pr.TTF, pr.Duration = 0, time.Minute
	rctx, rcancel := context.WithCancel(context.Background())
	time.AfterFunc(3*time.Second, rcancel)
	start := time.Now()
	if _, err := pr.Run(rctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled run: %v", err)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Fatalf("cancelled run took %v to stop", d)
	}
}

// Half the daemons behind home NATs without port mapping: AutoNAT finds
// them private and they turn DHT clients, nobody can dial them, and
// lookups from them and for their records still succeed. Needs root,
// iproute2 and nftables.
func TestProcessNAT(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root")
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("NAT routers need %s", tool)
		}
	}
	pr := processRun(t, true)
	// Six public daemons: a NATed one learns its router's address from
	// four observers, and with exactly four it sometimes never did.
	pr.Cluster.Nodes, pr.Cluster.NATShare = 10, 0.4
	pr.Keys, pr.TTF, pr.Duration, pr.Lookups = 5, 0, 8*time.Second, 40 // announcers 0..4
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cl, err := StartCluster(ctx, pr.Cluster)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cl.Close() }) // on failure; Close is idempotent
	// The NAT forwards nothing inwards: from a public daemon's namespace,
	// a NATed daemon's address refuses what a public one's accepts.
	var pub, nat *Daemon
	for _, d := range cl.Daemons[1:] {
		if d.NATed && nat == nil {
			nat = d
		}
		if !d.NATed && pub == nil {
			pub = d
		}
	}
	if nat == nil || pub == nil {
		t.Fatal("want public and NATed daemons besides the first")
	}
	dial := func(ip string) error {
		return exec.Command("ip", "netns", "exec", cl.netns.ns(0), "timeout", "5", "bash", "-c", "exec 3<>/dev/tcp/"+ip+"/4001").Run()
	}
	if err := dial(pub.IP); err != nil {
		t.Fatalf("control: dialling public daemon %d at %s: %v", pub.Index, pub.IP, err)
	}
	if err := dial(nat.IP); err == nil {
		t.Fatalf("NATed daemon %d dialled through its router %s", nat.Index, nat.IP)
	}
	if err := cl.Close(); err != nil {
		t.Fatal(err)
	}

	res, err := pr.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d NATed (%d clients); by role: %+v", res.NATed, res.NATedClients, res.ByRole)
	if res.NATed != 4 || res.NATedClients != res.NATed {
		t.Fatalf("%d NATed daemons, %d of them DHT clients: want 4, all clients", res.NATed, res.NATedClients)
	}
	for _, o := range res.Outcomes {
		if !o.Found || o.Err != nil {
			t.Logf("lookup from daemon %d (NATed %v) for key %d (announcer NATed %v): %d peers, %d hops, %v", o.From, o.FromNATed, o.Key, o.OfNATed, o.Peers, o.Hops, o.Err)
		}
	}
	if res.SuccessRate != 1 || res.WrongIP != 0 || res.LookupErrors != 0 {
		t.Fatalf("%d of %d found, %d errors, %d with the wrong address", res.Successes, res.Lookups, res.LookupErrors, res.WrongIP)
	}
	var fromNATed, ofNATed int
	for _, r := range res.ByRole {
		if r.From == "nated" {
			fromNATed += r.Lookups
		}
		if r.Announcer == "nated" {
			ofNATed += r.Lookups
		}
	}
	if fromNATed == 0 || ofNATed == 0 {
		t.Fatalf("%d lookups from NATed daemons, %d for NATed announcers: the test must cover both", fromNATed, ofNATed)
	}
}
