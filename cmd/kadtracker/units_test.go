package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// The systemd units of dist/systemd, as `make install-units` installs them.
var systemdUnits = []struct {
	path, user, execPath string
}{
	{"dist/systemd/kadtracker.service", "", "/usr/local/bin/kadtracker"},
	{"dist/systemd/user/kadtracker.service", "--user", "%h/.local/bin/kadtracker"},
}

// verifyUnit runs `systemd-analyze [--user] verify` on unit text written to
// a temporary kadtracker.service, its ExecStart pointed at an executable
// that exists (verify checks it), and returns what it printed: empty when
// systemd has nothing to say. It needs no systemd running as PID 1.
func verifyUnit(t *testing.T, text, user, execPath string) string {
	t.Helper()
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Fatalf("systemd-analyze is needed to check the units (Debian: systemd): %v", err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^ExecStart=` + regexp.QuoteMeta(execPath) + `( |$)`).MatchString(text) {
		t.Fatalf("the unit's ExecStart does not run %s, which make install-units replaces", execPath)
	}
	dir := t.TempDir()
	unit := filepath.Join(dir, "kadtracker.service")
	if err := os.WriteFile(unit, []byte(strings.ReplaceAll(text, execPath, self)), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"verify", unit}
	if user != "" {
		args = append([]string{user}, args...)
	}
	cmd := exec.Command("systemd-analyze", args...)
	// A user manager wants its runtime directory.
	runtime := t.TempDir()
	os.Chmod(runtime, 0o700)
	cmd.Env = append(os.Environ(), "XDG_RUNTIME_DIR="+runtime, "SYSTEMD_LOG_COLOR=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "exit: " + err.Error() + "\n" + string(out)
	}
	return string(out)
}

// TestSystemdUnits: systemd-analyze verify finds nothing to say about
// either unit; an unknown directive, which verify only warns about, fails
// the check too (the control).
func TestSystemdUnits(t *testing.T) {
	for _, u := range systemdUnits {
		t.Run(filepath.Base(filepath.Dir(u.path))+"_"+filepath.Base(u.path), func(t *testing.T) {
			b, err := os.ReadFile(u.path)
			if err != nil {
				t.Fatal(err)
			}
			if out := verifyUnit(t, string(b), u.user, u.execPath); out != "" {
				t.Errorf("systemd-analyze %s verify %s:\n%s", u.user, u.path, out)
			}
			bad := strings.Replace(string(b), "NoNewPrivileges=", "NoNewPrivilegez=", 1)
			if out := verifyUnit(t, bad, u.user, u.execPath); !strings.Contains(out, "NoNewPrivilegez") {
				t.Errorf("control: verify of a unit with an unknown key printed %q", out)
			}
		})
	}
}

// TestSystemUnitSandbox: the system unit keeps its state where the daemon
// is told to, and systemd rates its sandbox "OK" or better (exposure at
// most 2.0 of 10; `systemd-analyze security` offline, no manager needed).
func TestSystemUnitSandbox(t *testing.T) {
	b, err := os.ReadFile(systemdUnits[0].path)
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	for _, want := range []string{
		"--data-dir /var/lib/kadtracker", "StateDirectory=kadtracker\n",
		"--rpc-socket /run/kadtracker/kadtracker.sock", "RuntimeDirectory=kadtracker\n",
		"DynamicUser=yes", "ProtectSystem=strict", "ProtectHome=yes", "NoNewPrivileges=yes", "PrivateTmp=yes",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the system unit lacks %q", want)
		}
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	unit := filepath.Join(t.TempDir(), "kadtracker.service")
	if err := os.WriteFile(unit, []byte(strings.ReplaceAll(text, systemdUnits[0].execPath, self)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("systemd-analyze", "security", "--offline=yes", "--no-pager", unit).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`Overall exposure level for kadtracker.service: ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no exposure level in:\n%s", out)
	}
	if level, _ := strconv.ParseFloat(string(m[1]), 64); level > 2.0 {
		t.Errorf("exposure level %.1f, want at most 2.0:\n%s", level, out)
	}
}
