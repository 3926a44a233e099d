package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kadtracker/kadtracker/cmd/kadtracker/internal/realclients"
	"github.com/kadtracker/kadtracker/node/localapi"
)

// failedStep is podman-compose's line after a podman command that failed.
var failedStep = regexp.MustCompile(`(?m)^exit code: [1-9]`)

// composeTestEnv is what the test adds to compose.yaml's services, in a
// second compose file: no public rendezvous, bootstrap list or port
// mapping from inside the test.
const composeTestEnv = `{KADTRACKER_NO_PUBLIC_NETWORK: "1", KADTRACKER_RENDEZVOUS: "false", KADTRACKER_NAT_PORTMAP: "false"}`

// TestCompose runs dist/container/compose.yaml with podman-compose
// (Debian's 1.0.3): `up -d` must start three daemons of the image that
// form a network (each has the other two in its routing table, read
// through the socket in its volume), kt1's tracker must answer on the
// host's loopback port compose.yaml publishes, and `down -v` must remove
// the containers and volumes. Nothing is pulled: the image is the test's
// own, and compose.yaml says pull_policy: never. podman runs with runc
// and cgroupfs, as in TestContainerImage (podmanRun).
func TestCompose(t *testing.T) {
	if _, err := exec.LookPath("podman-compose"); err != nil {
		t.Fatalf("podman-compose is needed (Debian: podman-compose; .ci/deps installs it): %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	tag := buildTestImage(t, ctx)

	override := filepath.Join(t.TempDir(), "test.yaml")
	var b strings.Builder
	b.WriteString("services:\n")
	services := []string{"kt1", "kt2", "kt3"}
	for _, s := range services {
		b.WriteString("  " + s + ":\n    environment: " + composeTestEnv + "\n")
	}
	if err := os.WriteFile(override, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	project := "kttest" + randomHex(4)
	port := realclients.FreePort(t)
	var nofile syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &nofile); err != nil {
		t.Fatal(err)
	}
	n := strconv.FormatUint(min(nofile.Max, 65536), 10)
	compose := func(args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(ctx, "podman-compose", append([]string{"-p", project,
			"--podman-args", "--runtime runc --cgroup-manager cgroupfs",
			"--podman-run-args", "--ulimit nofile=" + n + ":" + n + " --ulimit nproc=4096:4096",
			"-f", "dist/container/compose.yaml", "-f", override}, args...)...)
		cmd.Env = append(os.Environ(), "KADTRACKER_IMAGE="+tag, "KADTRACKER_TRACKER_PORT="+strconv.Itoa(port))
		out, err := cmd.CombinedOutput()
		// podman-compose 1.0.3 exits 0 when a podman command fails; its
		// output says "exit code: N" after each.
		if err != nil || failedStep.Match(out) {
			t.Fatalf("podman-compose %s: %v\n%s", strings.Join(args, " "), err, tail(string(out), 8<<10))
		}
		return string(out)
	}
	containers := make([]string, len(services))
	for i, s := range services {
		containers[i] = project + "_" + s + "_1"
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, c := range containers {
				out, _ := exec.Command("podman", "logs", c).CombinedOutput()
				t.Logf("container %s log:\n%s", c, tail(string(out), 8<<10))
			}
		}
		// After a failed down: leave nothing behind.
		for _, c := range containers {
			exec.Command("podman", "rm", "-f", c).Run()
		}
		for _, s := range services {
			exec.Command("podman", "volume", "rm", "-f", project+"_"+s).Run()
		}
		// podman-compose 1.0.3's down leaves the project's network.
		exec.Command("podman", "network", "rm", "-f", project+"_default").Run()
	})

	out := compose("up", "-d")
	if !strings.Contains(out, "--pull never") {
		t.Errorf("podman-compose did not run the containers with --pull never:\n%s", tail(out, 4<<10))
	}
	for i, s := range services {
		mount := podmanCmd(t, ctx, "volume", "inspect", "--format", "{{.Mountpoint}}", project+"_"+s)
		sock := filepath.Join(mount, socketName)
		deadline := time.Now().Add(daemonStartTimeout)
		for {
			st, err := localapi.NewClient(sock).Status(ctx)
			if err == nil && st.RoutingTableSize >= len(services)-1 {
				t.Logf("%s (%s): %d peers in its routing table", s, containers[i], st.RoutingTableSize)
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: the other daemons not in its routing table after %v (status through %s: %+v, %v)", s, daemonStartTimeout, sock, st, err)
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	// kt1's tracker, published on the host's loopback: an announce
	// without an infohash is refused in a bencoded failure.
	resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(port) + "/announce")
	if err != nil {
		t.Fatalf("kt1's published tracker: %v", err)
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if !strings.Contains(string(body), "failure reason") {
		t.Errorf("kt1's published tracker answered %q", body)
	}

	compose("down", "-v")
	for _, c := range containers {
		if exec.Command("podman", "container", "exists", c).Run() == nil {
			t.Errorf("container %s still exists after down", c)
		}
	}
	for _, s := range services {
		if exec.Command("podman", "volume", "exists", project+"_"+s).Run() == nil {
			t.Errorf("volume %s still exists after down -v", project+"_"+s)
		}
	}
}
