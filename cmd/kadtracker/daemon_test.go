package main

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kadtracker/kadtracker/cmd/kadtracker/internal/realclients"
	"github.com/kadtracker/kadtracker/node/localapi"
)

// TestRunConfigError: a configuration the node rejects is reported in full
// with exit 1, before anything is opened.
func TestRunConfigError(t *testing.T) {
	dir := shortDir(t)
	out, errOut, code := cli(t, env{}, "run", "--data-dir", dir, "--replication", "0", "--record-ttl", "1m", "--republish", "5m")
	if code != 1 || out != "" {
		t.Errorf("exit %d, stdout %q", code, out)
	}
	for _, want := range []string{"kadtracker: invalid configuration:\n", "replication 0 out of range", "republish interval 5m0s must be positive and shorter than the record TTL 1m0s"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr %q does not contain %q", errOut, want)
		}
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "*")); len(m) != 0 {
		t.Errorf("a rejected configuration left files: %v", m)
	}
}

// TestRunRefusesLiveSocket: a second daemon on the same socket stops before
// it starts a node.
func TestRunRefusesLiveSocket(t *testing.T) {
	sock := serveAPI(t, fullBackend(t))
	dir := shortDir(t)
	_, errOut, code := cli(t, env{}, "run", "--data-dir", dir, "--rpc-socket", sock, "--listen", "/ip4/127.0.0.1/tcp/0")
	if code != 1 || !strings.Contains(errOut, "already listening on "+sock) {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "*")); len(m) != 0 {
		t.Errorf("the refused daemon created %v", m)
	}
}

// TestRunInProcess runs the daemon in this process on loopback, talks to it
// with the CLI and stops it the way a signal does.
func TestRunInProcess(t *testing.T) {
	dir := shortDir(t)
	sock := filepath.Join(dir, socketName)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var logs syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- realMain(ctx, []string{"run", "--data-dir", dir, "--listen", "/ip4/127.0.0.1/tcp/0", "--dht-mode", "server", "--rendezvous=false", "--nat-portmap=false", "--log-format", "json"}, &bytes.Buffer{}, &logs, env{}.get)
	}()
	var st localapi.Status
	deadline := time.Now().Add(30 * time.Second)
	for {
		var err error
		st, err = localapi.NewClient(sock).Status(ctx)
		if err == nil {
			break
		}
		select {
		case code := <-done:
			t.Fatalf("daemon exited with %d:\n%s", code, logs.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no answer on %s: %v\n%s", sock, err, logs.String())
		}
	}
	if len(st.Addrs) == 0 || !strings.HasSuffix(st.Addrs[0], "/p2p/"+st.PeerID) || st.DHTMode != "server" {
		t.Errorf("status %+v", st)
	}
	out, errOut, code := cli(t, env{}, "announce", hexV1, "--port", "6881", "--json", "--data-dir", dir)
	if code != 0 || !strings.HasPrefix(out, `{"stored_on":`) {
		t.Errorf("announce: exit %d, %q %q", code, out, errOut)
	}

	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("daemon exited with %d:\n%s", code, logs.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("daemon did not stop")
	}
	for _, want := range []string{`"msg":"kadtracker started","peer_id":"` + st.PeerID + `"`, `"msg":"listening","addr":"` + st.Addrs[0] + `"`, `"msg":"stopped"`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %s:\n%s", want, logs.String())
		}
	}
	if _, err := localapi.NewClient(sock).Status(t.Context()); !errors.Is(err, localapi.ErrNoDaemon) {
		t.Errorf("after stop: %v, want ErrNoDaemon", err)
	}
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader goroutine.
type syncBuffer = realclients.SyncBuffer
