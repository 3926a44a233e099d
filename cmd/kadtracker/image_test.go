package main

import (
	"context"
	"crypto/rand"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kadtracker/kadtracker/node/localapi"
)

// containerUID is the user the image runs as (Containerfile's USER).
const containerUID = 65532

// podmanRun are the flags that let `podman run` start a container on
// these machines: crun refuses their cgroups ("hybrid mode") and podman's
// default rlimits above the host's hard limits, so runc with cgroupfs, and
// rlimits within the host's. On an ordinary host they are harmless.
func podmanRun(t *testing.T) []string {
	var nofile syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &nofile); err != nil {
		t.Fatal(err)
	}
	n := strconv.FormatUint(min(nofile.Max, 65536), 10)
	return []string{"--runtime", "runc", "--cgroup-manager", "cgroupfs", "run",
		"--ulimit", "nofile=" + n + ":" + n, "--ulimit", "nproc=4096:4096"}
}

// podmanCmd runs podman with args and fails the test unless it succeeds.
func podmanCmd(t *testing.T, ctx context.Context, args ...string) string {
	t.Helper()
	out, err := exec.CommandContext(ctx, "podman", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("podman %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// buildTestImage builds a static binary and the image of
// dist/container/Containerfile with podman, removed when the test ends,
// and returns its tag.
func buildTestImage(t *testing.T, ctx context.Context) string {
	t.Helper()
	for _, bin := range []string{"podman", "runc"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s is needed to build and run the image (Debian: podman runc; .ci/deps installs them): %v", bin, err)
		}
	}
	if os.Getuid() != 0 {
		t.Fatal("the image tests run podman as root (rootless podman maps the volume's owner)")
	}
	buildCtx := t.TempDir()
	if err := os.Mkdir(filepath.Join(buildCtx, "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	binPath := filepath.Join(buildCtx, "kadtracker")
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", binPath, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	// A scratch image has no dynamic loader: the binary must be static.
	f, err := elf.Open(binPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Fatal("the binary wants a dynamic loader; the image has none")
		}
	}
	f.Close()
	tag := "localhost/kadtracker-test:" + randomHex(4)
	podmanCmd(t, ctx, "build", "-q", "-t", tag, "-f", "dist/container/Containerfile", buildCtx)
	t.Cleanup(func() { exec.Command("podman", "rmi", "-f", tag).Run() })
	return tag
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// startContainer runs image detached with args before it, removed (its
// log shown if the test failed) when the test ends.
func startContainer(t *testing.T, ctx context.Context, name, image string, args ...string) {
	t.Helper()
	podmanCmd(t, ctx, append(append(append(podmanRun(t), "-d", "--name", name), args...), image)...)
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := exec.Command("podman", "logs", name).CombinedOutput()
			t.Logf("container %s log:\n%s", name, tail(string(out), 16<<10))
		}
		exec.Command("podman", "rm", "-f", name).Run()
	})
}

// TestContainerImage builds the image of dist/container/Containerfile with
// podman from a static binary (no base image), runs it with `podman run`
// on the host's network and a host directory as its /data volume, and
// asks the daemon inside for its status through the socket in that
// volume. The daemon must run as the image's unprivileged user and stop
// cleanly on `podman stop`.
func TestContainerImage(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	tag := buildTestImage(t, ctx)
	if layers := podmanCmd(t, ctx, "image", "inspect", "--format", "{{len .RootFS.Layers}}", tag); layers != "2" {
		t.Errorf("the image has %s layers, want 2 (data/ and the binary: nothing from a base image)", layers)
	}

	data := t.TempDir()
	if err := os.Chown(data, containerUID, containerUID); err != nil {
		t.Fatal(err)
	}
	name := "kt-test-" + randomHex(4)
	startContainer(t, ctx, name, tag, "--network", "host", "-v", data+":/data",
		// Loopback and free ports only; never the public bootstrap list.
		"-e", "KADTRACKER_LISTEN=/ip4/127.0.0.1/tcp/0",
		"-e", "KADTRACKER_TRACKER_HTTP=127.0.0.1:0", "-e", "KADTRACKER_TRACKER_UDP=127.0.0.1:0",
		"-e", "KADTRACKER_NO_PUBLIC_NETWORK=1", "-e", "KADTRACKER_RENDEZVOUS=false", "-e", "KADTRACKER_NAT_PORTMAP=false")

	sock := filepath.Join(data, socketName)
	var st localapi.Status
	var err error
	deadline := time.Now().Add(daemonStartTimeout)
	for {
		st, err = localapi.NewClient(sock).Status(ctx)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no status through %s within %v: %v", sock, daemonStartTimeout, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if st.PeerID == "" || !strings.HasPrefix(st.TrackerHTTP, "http://127.0.0.1:") {
		t.Errorf("status from the container: %+v", st)
	}
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if uid := fi.Sys().(*syscall.Stat_t).Uid; uid != containerUID || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket owned by %d with mode %v, want %d and 0600", uid, fi.Mode().Perm(), containerUID)
	}
	if _, err := os.Stat(filepath.Join(data, "identity.key")); err != nil {
		t.Errorf("the identity key is not in the volume: %v", err)
	}

	podmanCmd(t, ctx, "stop", "-t", "20", name)
	if code := podmanCmd(t, ctx, "inspect", "--format", "{{.State.ExitCode}}", name); code != "0" {
		t.Errorf("the daemon exited %s on podman stop, want 0", code)
	}
}

// TestContainerNetwork runs compose.yaml's setting by hand: three
// containers of the image on a podman network of their own (a bridge
// between network namespaces podman makes), with compose.yaml's
// environment; they must find each other with mDNS and each have the other
// two in its routing table.
func TestContainerNetwork(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	tag := buildTestImage(t, ctx)
	compose, err := os.ReadFile("dist/container/compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var env []string
	for _, m := range regexp.MustCompile(`(?m)^\s+(KADTRACKER_[A-Z_]+): "?([^"\n]*)"?$`).FindAllSubmatch(compose, -1) {
		env = append(env, "-e", string(m[1])+"="+string(m[2]))
	}
	if !slices.Contains(env, "KADTRACKER_MDNS=true") {
		t.Fatalf("compose.yaml's environment %q lacks KADTRACKER_MDNS", env)
	}
	network := "kt-test-" + randomHex(4)
	podmanCmd(t, ctx, "network", "create", network)
	t.Cleanup(func() { exec.Command("podman", "network", "rm", "-f", network).Run() })
	names := make([]string, 3)
	for i := range names {
		names[i] = network + "-" + strconv.Itoa(i+1)
		startContainer(t, ctx, names[i], tag, append([]string{"--network", network, "-e", "KADTRACKER_NO_PUBLIC_NETWORK=1",
			"-e", "KADTRACKER_RENDEZVOUS=false", "-e", "KADTRACKER_NAT_PORTMAP=false"}, env...)...)
	}
	for _, name := range names {
		deadline := time.Now().Add(daemonStartTimeout)
		for {
			out, err := exec.CommandContext(ctx, "podman", "exec", name, "kadtracker", "status", "--json").Output()
			var st localapi.Status
			if err == nil && json.Unmarshal(out, &st) == nil && st.RoutingTableSize >= len(names)-1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: the others not in its routing table after %v: %s %v", name, daemonStartTimeout, out, err)
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
}
