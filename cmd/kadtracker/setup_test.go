package main

import (
	"net"
	"strings"
	"testing"
)

// TestSetupCLI: the command's errors are one clear line and exit 1; its
// usage errors exit 2.
func TestSetupCLI(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + l.Addr().String()
	l.Close()
	dir := shortDir(t)
	for _, tc := range []struct {
		name string
		e    env
		args []string
		code int
		want string
	}{
		{"unknown client", env{}, []string{"setup", "utorrent", "--data-dir", dir}, exitUsage, `unknown client "utorrent"`},
		{"no client", env{}, []string{"setup", "--data-dir", dir}, exitUsage, "missing CLIENT"},
		{"bad tracker", env{}, []string{"setup", "aria2", "--data-dir", dir, "--tracker-url", "http://a/announce,http://b/announce"}, exitUsage, "comma"},
		{"not running", env{"KADTRACKER_SETUP_PASSWORD": "s3cret"}, []string{"setup", "aria2", "--data-dir", dir, "--url", closed + "/jsonrpc", "--tracker-url", "http://127.0.0.1:6969/announce"}, exitError, "is not running"},
		{"undo without record", env{}, []string{"setup", "qbittorrent", "--undo", "--data-dir", dir}, exitError, "nothing to undo"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := cli(t, tc.e, tc.args...)
			if code != tc.code || !strings.Contains(errOut, tc.want) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", code, errOut, tc.code, tc.want)
			}
			if strings.Contains(out+errOut, "s3cret") {
				t.Errorf("the password was printed: %q %q", out, errOut)
			}
		})
	}
}

func TestReachable(t *testing.T) {
	for in, want := range map[string]string{
		"http://[::]:6969/announce":      "http://127.0.0.1:6969/announce",
		"udp://0.0.0.0:6969/announce":    "udp://127.0.0.1:6969/announce",
		"http://127.0.0.1:6969/announce": "http://127.0.0.1:6969/announce",
		"http://192.0.2.1:6969/announce": "http://192.0.2.1:6969/announce",
		"http://localhost:6969/announce": "http://localhost:6969/announce",
	} {
		if got := reachable(in); got != want {
			t.Errorf("reachable(%q) = %q, want %q", in, got, want)
		}
	}
}
