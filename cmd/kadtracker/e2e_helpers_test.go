package main

// Helpers for end-to-end tests that run the real kadtracker binary as
// separate daemon processes on loopback.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kadtracker/kadtracker/node"
	"github.com/kadtracker/kadtracker/node/localapi"
)

const (
	// daemonStartTimeout bounds how long a daemon may take to answer status;
	// generous because race builds on two shared cores are slow.
	daemonStartTimeout = 60 * time.Second
	// daemonStopTimeout is how long a daemon gets after SIGTERM before SIGKILL.
	daemonStopTimeout = 15 * time.Second
)

// binary is the kadtracker binary, built once per test process.
var binary struct {
	once sync.Once
	dir  string
	path string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binary.dir != "" {
		os.RemoveAll(binary.dir)
	}
	os.Exit(code)
}

// buildBinary builds the kadtracker binary from this package, with the race
// detector when the tests have it, once per test process, and returns its
// path.
func buildBinary(t testing.TB) string {
	t.Helper()
	binary.once.Do(func() {
		goTool, err := exec.LookPath("go")
		if err != nil {
			binary.err = fmt.Errorf("the go tool is needed to build the binary: %w", err)
			return
		}
		if binary.dir, err = os.MkdirTemp("", "kadtracker-e2e-"); err != nil {
			binary.err = err
			return
		}
		path := filepath.Join(binary.dir, "kadtracker")
		args := []string{"build", "-o", path}
		if raceEnabled {
			args = append(args, "-race")
		}
		out, err := exec.Command(goTool, append(args, ".")...).CombinedOutput()
		if err != nil {
			binary.err = fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
			return
		}
		binary.path = path
	})
	if binary.err != nil {
		t.Fatal(binary.err)
	}
	return binary.path
}

// daemon is a `kadtracker run` process started by startDaemon.
type daemonProc struct {
	bin     string
	DataDir string
	Socket  string
	PeerID  string
	Addrs   []string // full listen multiaddrs, ending in /p2p/PeerID
	// Announce URLs of the tracker front, "" when off.
	TrackerHTTP, TrackerUDP string

	cmd      *exec.Cmd
	logs     *syncBuffer // stdout and stderr
	exited   chan struct{}
	exitErr  error // valid once exited is closed
	stopOnce sync.Once
	stopErr  error
}

// startDaemon starts `kadtracker run` with args, in a fresh data directory
// and on 127.0.0.1 with a free TCP port unless args say otherwise, waits
// until `kadtracker status --json` answers, and stops the daemon when the
// test ends (SIGTERM, then SIGKILL after daemonStopTimeout).
func startDaemon(t testing.TB, args ...string) *daemonProc {
	t.Helper()
	return startDaemonIn(t, nil, args...)
}

// startDaemonIn is startDaemon with the daemon's command line prefixed by
// wrap, such as {"ip", "netns", "exec", NAME} to run it in a network
// namespace; nil runs it directly. The CLI still reaches it from here: its
// socket is a path, which network namespaces do not separate.
func startDaemonIn(t testing.TB, wrap []string, args ...string) *daemonProc {
	t.Helper()
	d := &daemonProc{
		bin:    buildBinary(t),
		logs:   &syncBuffer{},
		exited: make(chan struct{}),
	}
	var defaults []string
	if d.DataDir = flagValue(args, "data-dir"); d.DataDir == "" {
		d.DataDir = shortDir(t)
		defaults = append(defaults, "--data-dir", d.DataDir)
	}
	if d.Socket = flagValue(args, "rpc-socket"); d.Socket == "" {
		d.Socket = filepath.Join(d.DataDir, socketName)
	}
	if flagValue(args, "listen") == "" {
		defaults = append(defaults, "--listen", "/ip4/127.0.0.1/tcp/0")
	}
	// Every daemon of a test gets its own tracker ports.
	for _, f := range []string{"tracker-http", "tracker-udp"} {
		if flagValue(args, f) == "" && !hasFlag(args, f) {
			defaults = append(defaults, "--"+f, "127.0.0.1:0")
		}
	}
	if flagValue(args, "log-level") == "" {
		defaults = append(defaults, "--log-level", "debug")
	}
	// Nothing beyond this host: the daemon refuses the public rendezvous
	// peers and port mapping outside a test's namespace under
	// node.NoPublicNetworkEnv, which cleanEnv sets.
	for _, f := range []string{"rendezvous", "nat-portmap"} {
		if !hasFlag(args, f) {
			defaults = append(defaults, "--"+f+"=false")
		}
	}
	argv := append(append(append(append([]string{}, wrap...), d.bin, "run"), defaults...), args...)
	d.cmd = exec.Command(argv[0], argv[1:]...)
	d.cmd.Env = cleanEnv()
	// Dies with the test process even when no cleanup runs (a test timeout).
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	d.cmd.Stdout, d.cmd.Stderr = d.logs, d.logs
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		d.exitErr = d.cmd.Wait()
		close(d.exited)
	}()
	t.Cleanup(func() {
		if err := d.Stop(); err != nil {
			t.Errorf("daemon %s: %v", d.PeerID, err)
		}
		if t.Failed() {
			t.Logf("daemon %s log:\n%s", d.PeerID, d.Logs())
		}
	})

	st, err := d.waitReady()
	if err != nil {
		t.Fatalf("daemon did not start: %v\n%s", err, d.Logs())
	}
	d.PeerID, d.Addrs = st.PeerID, st.Addrs
	d.TrackerHTTP, d.TrackerUDP = st.TrackerHTTP, st.TrackerUDP
	if flagValue(args, "dht") != "false" && (d.PeerID == "" || len(d.Addrs) == 0) {
		t.Fatalf("daemon status without peer ID or addresses: %+v", st)
	}
	return d
}

// waitReady polls `status --json` until it answers or the daemon exits.
func (d *daemonProc) waitReady() (localapi.Status, error) {
	deadline := time.Now().Add(daemonStartTimeout)
	for {
		out, errOut, err := d.run("status", "--json")
		if err == nil {
			var st localapi.Status
			if err := json.Unmarshal([]byte(out), &st); err != nil {
				return st, fmt.Errorf("status --json printed %q: %v", out, err)
			}
			return st, nil
		}
		if time.Now().After(deadline) {
			return localapi.Status{}, fmt.Errorf("no answer within %v: %v: %s", daemonStartTimeout, err, errOut)
		}
		select {
		case <-d.exited:
			return localapi.Status{}, fmt.Errorf("exited: %v", d.exitErr)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// run runs a client command of the binary against this daemon.
func (d *daemonProc) run(args ...string) (stdout, stderr string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*localapi.DefaultRequestTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, d.bin, append(args, "--rpc-socket", d.Socket)...)
	cmd.Env = cleanEnv()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	return out.String(), errb.String(), err
}

// CLI runs `kadtracker args... --rpc-socket SOCKET` and returns its output
// and exit code.
func (d *daemonProc) CLI(t testing.TB, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	stdout, stderr, err := d.run(args...)
	if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
		return stdout, stderr, ee.ExitCode()
	} else if err != nil {
		t.Fatalf("kadtracker %s: %v", strings.Join(args, " "), err)
	}
	return stdout, stderr, 0
}

// Addr is the daemon's first full listen multiaddr, for another daemon's
// --bootstrap.
func (d *daemonProc) Addr() string { return d.Addrs[0] }

// Logs is what the daemon has written so far.
func (d *daemonProc) Logs() string { return d.logs.String() }

// Stop sends SIGTERM, waits daemonStopTimeout, then kills. It returns an
// error unless the daemon exited cleanly on SIGTERM. It is idempotent.
func (d *daemonProc) Stop() error {
	d.stopOnce.Do(func() {
		select {
		case <-d.exited:
			d.stopErr = fmt.Errorf("exited before it was stopped: %v", d.exitErr)
			return
		default:
		}
		if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			d.stopErr = err
		}
		select {
		case <-d.exited:
			if d.exitErr != nil {
				d.stopErr = fmt.Errorf("unclean exit after SIGTERM: %v", d.exitErr)
			}
		case <-time.After(daemonStopTimeout):
			d.cmd.Process.Kill()
			<-d.exited
			d.stopErr = fmt.Errorf("still running %v after SIGTERM; killed", daemonStopTimeout)
		}
	})
	return d.stopErr
}

// flagValue returns the value of --name (or -name) in args, "" if absent.
func flagValue(args []string, name string) string {
	for i, a := range args {
		a = strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
		if a == name && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

// hasFlag reports whether --name or -name (with any value form) is in args.
func hasFlag(args []string, name string) bool {
	for _, a := range args {
		a = strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
		if a == name || strings.HasPrefix(a, name+"=") {
			return true
		}
	}
	return false
}

// cleanEnv is this process's environment without KADTRACKER_ variables, so
// the developer's settings do not leak into daemons under test.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "KADTRACKER_") {
			env = append(env, kv)
		}
	}
	return append(env, node.NoPublicNetworkEnv+"=1")
}

// Kill ends the daemon with SIGKILL, as a crash would: no shutdown code runs.
func (d *daemonProc) Kill() {
	d.stopOnce.Do(func() {
		_ = d.cmd.Process.Kill()
		<-d.exited
	})
}

// ListenAddr is the daemon's first listen multiaddr without /p2p/, to restart
// it on the same address.
func (d *daemonProc) ListenAddr() string {
	addr, _, _ := strings.Cut(d.Addr(), "/p2p/")
	return addr
}
