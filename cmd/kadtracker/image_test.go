package main

import (
	"context"
	"crypto/rand"
	"debug/elf"
	"encoding/hex"
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

// TestContainerImage builds the image of dist/container/Containerfile with
// podman from a static binary (no base image), runs it with `podman run`
// on the host's network and a host directory as its /data volume, and
// asks the daemon inside for its status through the socket in that
// volume. The daemon must run as the image's unprivileged user and stop
// cleanly on `podman stop`.
func TestContainerImage(t *testing.T) {
	for _, bin := range []string{"podman", "runc"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s is needed to build and run the image (Debian: podman runc; .ci/deps installs them): %v", bin, err)
		}
	}
	if os.Getuid() != 0 {
		t.Fatal("the image test runs podman as root (rootless podman maps the volume's owner)")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	podman := func(args ...string) string {
		t.Helper()
		out, err := exec.CommandContext(ctx, "podman", args...).CombinedOutput()
		if err != nil {
			t.Fatalf("podman %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
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

	suffix := make([]byte, 4)
	rand.Read(suffix)
	tag := "localhost/kadtracker-test:" + hex.EncodeToString(suffix)
	podman("build", "-q", "-t", tag, "-f", "dist/container/Containerfile", buildCtx)
	t.Cleanup(func() { exec.Command("podman", "rmi", "-f", tag).Run() })
	if layers := podman("image", "inspect", "--format", "{{len .RootFS.Layers}}", tag); layers != "2" {
		t.Errorf("the image has %s layers, want 2 (data/ and the binary: nothing from a base image)", layers)
	}

	data := t.TempDir()
	if err := os.Chown(data, containerUID, containerUID); err != nil {
		t.Fatal(err)
	}
	name := "kt-test-" + hex.EncodeToString(suffix)
	args := append(podmanRun(t), "-d", "--name", name, "--network", "host", "-v", data+":/data",
		// Loopback and free ports only; never the public bootstrap list.
		"-e", "KADTRACKER_LISTEN=/ip4/127.0.0.1/tcp/0",
		"-e", "KADTRACKER_TRACKER_HTTP=127.0.0.1:0", "-e", "KADTRACKER_TRACKER_UDP=127.0.0.1:0",
		"-e", "KADTRACKER_NO_PUBLIC_NETWORK=1", tag)
	podman(args...)
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := exec.Command("podman", "logs", name).CombinedOutput()
			t.Logf("container log:\n%s", out)
		}
		exec.Command("podman", "rm", "-f", name).Run()
	})

	sock := filepath.Join(data, socketName)
	var st localapi.Status
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

	podman("stop", "-t", "20", name)
	if code := podman("inspect", "--format", "{{.State.ExitCode}}", name); code != "0" {
		t.Errorf("the daemon exited %s on podman stop, want 0", code)
	}
}
