package main

// The network the real-client end-to-end tests run on.
//
// Why network namespaces: each daemon publishes its client's port with the
// IP address the storing nodes see the daemon connect from. With every
// daemon on 127.0.0.1 all records say 127.0.0.1, and Transmission ignores
// tracker-returned peers in 127.0.0.0/8 (it treats them as martian), so a
// Transmission leecher would never dial the seeder. So when the tests run as
// root with iproute2 (as CI does), every daemon and its client get a
// network namespace of their own with one address in a private /24, on a
// bridge that lives in one more namespace (the hub):
//
//	hub netns:  bridge br0 <- v0, v1, v2 (veth ends)
//	slot i:     lo (127.0.0.1: the daemon's tracker front, for its client)
//	            eth0 = 10.77.<n>.<10+i>/24, veth peer of v<i>
//
// Nothing is added to the host's own namespace and no namespace has a
// route anywhere else, so nothing the daemons or clients send can leave the
// namespaces the test created. The daemon of slot i listens for libp2p on
// its eth0 address, so storing nodes see distinct IPs; the client announces
// to the daemon on the slot's 127.0.0.1 and takes peer connections on eth0.
//
// Without root or iproute2 every slot is the host's loopback, as in the
// other end-to-end tests; pairs that need distinct IPs (a Transmission
// leecher) are then skipped with the reason, and in CI (CI set) the lack
// of namespaces is a failure instead.

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// netnsPrefix starts the name of every namespace these tests create,
// followed by the creating process's pid, so a later run can remove the
// ones a killed run left behind (and never touches anyone else's).
const netnsPrefix = "kte2e-"

// netLab is the set of slots a client test runs daemons and clients in.
type netLab struct {
	netns bool
	slots []labSlot

	mu       sync.Mutex
	nextPort int // netns mode: ports handed out, below the ephemeral range
}

// labSlot is where one daemon and its clients run.
type labSlot struct {
	ns   string   // network namespace name; "" on the host's loopback
	wrap []string // command prefix that runs a program in the slot
	ip   string   // the address other slots reach this one on
}

// netnsUnavailable says why namespaces cannot be used here, "" if they can.
func netnsUnavailable() string {
	if os.Geteuid() != 0 {
		return "not running as root"
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return "iproute2's ip is not installed"
	}
	return ""
}

// newNetLab makes n slots: network namespaces when it can (see the top of
// this file), else n times the host's loopback. Namespaces are deleted when
// the test ends, whatever its outcome; register it before starting
// anything in it, so its cleanup runs after theirs.
func newNetLab(t *testing.T, n int) *netLab {
	t.Helper()
	lab := &netLab{nextPort: 20000}
	var rnd [3]byte
	rand.Read(rnd[:])
	base := fmt.Sprintf("%s%d-%s", netnsPrefix, os.Getpid(), hex.EncodeToString(rnd[:]))
	subnet := fmt.Sprintf("10.77.%d", rnd[0])
	hub := base + "-hub"
	why := netnsUnavailable()
	if why == "" {
		sweepStaleNetns(t)
		// A container without CAP_SYS_ADMIN refuses this first step.
		if out, err := exec.Command("ip", "netns", "add", hub).CombinedOutput(); err != nil {
			why = fmt.Sprintf("ip netns add: %v: %s", err, bytes.TrimSpace(out))
		}
	}
	if why != "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI must run the real-client tests in network namespaces, but: %s", why)
		}
		t.Logf("network namespaces unavailable (%s): all daemons and clients share 127.0.0.1", why)
		for range n {
			lab.slots = append(lab.slots, labSlot{ip: "127.0.0.1"})
		}
		return lab
	}
	lab.netns = true
	created := []string{hub}
	t.Cleanup(func() {
		// The daemons' and clients' cleanups ran first (registered later),
		// so the namespaces are empty; deleting one takes its veth end along.
		for i := len(created) - 1; i >= 0; i-- {
			if out, err := exec.Command("ip", "netns", "delete", created[i]).CombinedOutput(); err != nil {
				t.Errorf("ip netns delete %s: %v: %s", created[i], err, out)
			}
		}
	})
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	addNS := func(name string) {
		t.Helper()
		ip("netns", "add", name)
		created = append(created, name)
		ip("-n", name, "link", "set", "lo", "up")
	}
	ip("-n", hub, "link", "set", "lo", "up")
	ip("-n", hub, "link", "add", "br0", "type", "bridge")
	ip("-n", hub, "link", "set", "br0", "up")
	for i := range n {
		ns := fmt.Sprintf("%s-%d", base, i)
		addNS(ns)
		veth := "v" + strconv.Itoa(i)
		ip("-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", veth, "netns", hub)
		ip("-n", hub, "link", "set", veth, "master", "br0", "up")
		addr := fmt.Sprintf("%s.%d", subnet, 10+i)
		ip("-n", ns, "addr", "add", addr+"/24", "dev", "eth0")
		ip("-n", ns, "link", "set", "eth0", "up")
		lab.slots = append(lab.slots, labSlot{ns: ns, wrap: []string{"ip", "netns", "exec", ns}, ip: addr})
		// The slot reaches its /24 and nothing else (TEST-NET-1 stands for
		// the rest of the world).
		if out, err := exec.Command("ip", "-n", ns, "route", "get", "192.0.2.1").CombinedOutput(); err == nil {
			t.Fatalf("namespace %s has a route out: %s", ns, out)
		}
	}
	t.Logf("network namespaces: hub %s with bridge br0; slots %s", hub, lab.describe())
	return lab
}

func (l *netLab) describe() string {
	var s []string
	for i, sl := range l.slots {
		s = append(s, fmt.Sprintf("%d=%s(%s)", i, sl.ns, sl.ip))
	}
	return strings.Join(s, " ")
}

// sweepStaleNetns deletes namespaces that an earlier run of these tests
// created and could not delete because it was killed: ours by name, with
// the pid of a process that no longer exists.
func sweepStaleNetns(t *testing.T) {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		rest, ok := strings.CutPrefix(name, netnsPrefix)
		if !ok {
			continue
		}
		pidStr, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid <= 0 || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			if out, err := exec.Command("ip", "netns", "delete", name).CombinedOutput(); err != nil {
				t.Logf("removing stale namespace %s: %v: %s", name, err, bytes.TrimSpace(out))
			} else {
				t.Logf("removed stale namespace %s of a run that was killed", name)
			}
		}
	}
}

// port returns a TCP and UDP port for a client to listen on in any slot.
// In namespaces nothing else binds below the ephemeral range (the daemons
// take ephemeral ports), so a counter is enough; on the host, ask the
// kernel for a port that is free for both protocols now.
func (l *netLab) port(t *testing.T) int {
	t.Helper()
	if l.netns {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.nextPort++
		return l.nextPort
	}
	for range 50 {
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := ln.Addr().(*net.TCPAddr).Port
		pc, err := net.ListenPacket("udp4", "127.0.0.1:"+strconv.Itoa(p))
		ln.Close()
		if err == nil {
			pc.Close()
			return p
		}
	}
	t.Fatal("no port free for both TCP and UDP on 127.0.0.1")
	return 0
}

// command is name args... to run in slot i.
func (l *netLab) command(i int, name string, args ...string) *exec.Cmd {
	argv := append(append(append([]string{}, l.slots[i].wrap...), name), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd
}
