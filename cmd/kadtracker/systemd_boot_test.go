package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Dynamic users get uids in this range (systemd.exec(5), DynamicUser=).
const dynamicUIDMin, dynamicUIDMax = 61184, 65519

// bootTimeout bounds the container's boot until systemd says it is up.
const bootTimeout = 90 * time.Second

// TestSystemUnitBooted runs the system unit under a real systemd: a
// systemd-nspawn container whose root is a tmpfs and whose /usr is the
// host's, read-only (--volatile=yes: no base image to download), with a
// network namespace of its own holding only loopback. The unit goes in as
// `make install-units PREFIX=/opt/kt` writes it, with a drop-in that keeps
// the daemon off the public network; `systemctl start kadtracker` must
// bring up a daemon that answers `kadtracker status` on the unit's socket,
// runs as a dynamic user with no capabilities, no new privileges and a
// system-call filter, sees / read-only (ProtectSystem=strict: the
// container's own init sees it writable, the control) and its state
// directory writable; `systemctl stop` must stop it cleanly.
func TestSystemUnitBooted(t *testing.T) {
	if os.Getuid() != 0 {
		t.Fatal("systemd-nspawn needs root")
	}
	for _, bin := range []string{"systemd-nspawn", "nsenter"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s is needed (Debian: systemd-container, util-linux; .ci/deps installs them): %v", bin, err)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()

	dir := t.TempDir()
	bin := filepath.Join(dir, "kadtracker")
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	const prefix = "/opt/kt"
	unit, err := os.ReadFile(systemdUnits[0].path)
	if err != nil {
		t.Fatal(err)
	}
	// What make install-units does with PREFIX.
	unit = bytes.ReplaceAll(unit, []byte("/usr/local/bin/kadtracker"), []byte(prefix+"/bin/kadtracker"))
	dropIn := "[Service]\nEnvironment=KADTRACKER_NO_PUBLIC_NETWORK=1 KADTRACKER_RENDEZVOUS=false KADTRACKER_NAT_PORTMAP=false\n"
	for name, text := range map[string][]byte{"kadtracker.service": unit, "test.conf": []byte(dropIn)} {
		if err := os.WriteFile(filepath.Join(dir, name), text, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	machine := "kt-test-" + randomHex(4)
	var log bytes.Buffer
	nspawn := exec.Command("systemd-nspawn", "--directory=/", "--volatile=yes", "--private-network",
		"--register=no", "--keep-unit", "--machine="+machine, "--console=passive",
		"--bind-ro="+bin+":"+prefix+"/bin/kadtracker",
		"--bind-ro="+filepath.Join(dir, "kadtracker.service")+":/etc/systemd/system/kadtracker.service",
		"--bind-ro="+filepath.Join(dir, "test.conf")+":/etc/systemd/system/kadtracker.service.d/test.conf",
		// basic.target: not the host's enabled services, and no first-boot
		// questions on a console nobody reads.
		"--boot", "systemd.firstboot=off", "systemd.unit=basic.target")
	nspawn.Stdout, nspawn.Stderr = &log, &log
	start := time.Now()
	if err := nspawn.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- nspawn.Wait() }()
	t.Cleanup(func() {
		// SIGTERM halts the container; a second one, or SIGKILL, ends it.
		nspawn.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			nspawn.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("systemd-nspawn:\n%s", tail(log.String(), 16<<10))
		}
	})

	// The container's init: systemd-nspawn's child.
	var leader int
	for deadline := time.Now().Add(bootTimeout); leader == 0; time.Sleep(200 * time.Millisecond) {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", nspawn.Process.Pid, nspawn.Process.Pid))
		if f := strings.Fields(string(b)); len(f) > 0 {
			leader, _ = strconv.Atoi(f[0])
		}
		if time.Now().After(deadline) {
			t.Fatalf("systemd-nspawn started no init within %v:\n%s", bootTimeout, log.String())
		}
	}
	// in runs a command in the container, in its namespaces but not its
	// user namespace (it has none) or cgroup namespace.
	in := func(args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, "nsenter", append([]string{"-t", strconv.Itoa(leader), "-m", "-u", "-i", "-n", "-p", "--"}, args...)...)
		out, err := cmd.CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	for deadline := time.Now().Add(bootTimeout); ; time.Sleep(500 * time.Millisecond) {
		// "degraded": some of the host's units fail in a container
		// (nftables, without a network of the host's); the manager runs.
		state, _ := in("systemctl", "is-system-running")
		if state == "running" || state == "degraded" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("systemd in the container is %q after %v", state, bootTimeout)
		}
	}

	t.Logf("systemd up in the container after %v", time.Since(start).Round(time.Millisecond))
	// The unit wants network-online.target; in a container with loopback
	// only, systemd-networkd-wait-online would wait its full two minutes
	// for a network that never comes.
	if out, err := in("systemctl", "mask", "--runtime", "systemd-networkd-wait-online.service"); err != nil {
		t.Fatalf("systemctl mask: %v\n%s", err, out)
	}
	if out, err := in("systemctl", "start", "kadtracker"); err != nil {
		j, _ := in("journalctl", "-u", "kadtracker", "--no-pager")
		t.Fatalf("systemctl start kadtracker: %v\n%s\n%s", err, out, j)
	}
	t.Logf("systemctl start returned after %v", time.Since(start).Round(time.Millisecond))
	var status string
	for deadline := time.Now().Add(daemonStartTimeout); ; time.Sleep(300 * time.Millisecond) {
		status, err = in(prefix+"/bin/kadtracker", "status", "--rpc-socket", "/run/kadtracker/kadtracker.sock")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			j, _ := in("journalctl", "-u", "kadtracker", "--no-pager")
			t.Fatalf("kadtracker status through the unit's socket: %v\n%s\njournal:\n%s", err, status, j)
		}
	}
	if !strings.Contains(status, "peer ID:") {
		t.Errorf("kadtracker status said:\n%s", status)
	}

	// The daemon's process, seen from the host.
	mainPID, err := in("systemctl", "show", "--property=MainPID", "--value", "kadtracker")
	if err != nil || mainPID == "0" {
		t.Fatalf("MainPID %q: %v", mainPID, err)
	}
	// MainPID is in the container's PID namespace: read its /proc there.
	procStatus, err := in("cat", "/proc/"+mainPID+"/status")
	if err != nil {
		t.Fatal(err)
	}
	fields := map[string]string{}
	for l := range strings.SplitSeq(procStatus, "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok {
			fields[k] = strings.TrimSpace(v)
		}
	}
	uid, _ := strconv.Atoi(strings.Fields(fields["Uid"] + " x")[0])
	if uid < dynamicUIDMin || uid > dynamicUIDMax {
		t.Errorf("the daemon runs as uid %s, want a dynamic user's (%d-%d)", fields["Uid"], dynamicUIDMin, dynamicUIDMax)
	}
	for k, want := range map[string]string{"NoNewPrivs": "1", "CapEff": "0000000000000000", "CapBnd": "0000000000000000", "Seccomp": "2"} {
		if fields[k] != want {
			t.Errorf("the daemon's %s is %q, want %q", k, fields[k], want)
		}
	}
	mounts := func(pid string) map[string]string {
		out, err := in("cat", "/proc/"+pid+"/mountinfo")
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]string{}
		for l := range strings.SplitSeq(out, "\n") {
			if f := strings.Fields(l); len(f) > 5 {
				m[f[4]] = f[5] // mount point: its options; the last mount wins
			}
		}
		return m
	}
	daemon, init := mounts(mainPID), mounts("1")
	if !hasOpt(daemon["/"], "ro") {
		t.Errorf("the daemon sees / mounted %q, want ro (ProtectSystem=strict)", daemon["/"])
	}
	if !hasOpt(init["/"], "rw") {
		t.Errorf("control: the container's init sees / mounted %q, want rw", init["/"])
	}
	if !hasOpt(daemon["/var/lib/private/kadtracker"], "rw") {
		t.Errorf("the daemon's state directory is mounted %q, want rw (StateDirectory=)", daemon["/var/lib/private/kadtracker"])
	}
	if owner, err := in("stat", "-c", "%u", "/var/lib/private/kadtracker"); err != nil || owner != strconv.Itoa(uid) {
		t.Errorf("the state directory is owned by %q (%v), want the daemon's uid %d", owner, err, uid)
	}

	if out, err := in("systemctl", "stop", "kadtracker"); err != nil {
		t.Fatalf("systemctl stop kadtracker: %v\n%s", err, out)
	}
	if out, _ := in("systemctl", "show", "--property=Result", "--value", "kadtracker"); out != "success" {
		j, _ := in("journalctl", "-u", "kadtracker", "--no-pager")
		t.Errorf("after systemctl stop the unit's result is %q, want success\n%s", out, j)
	}
}

func hasOpt(opts, want string) bool {
	for o := range strings.SplitSeq(opts, ",") {
		if o == want {
			return true
		}
	}
	return false
}
