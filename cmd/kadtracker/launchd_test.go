package main

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// launchdLabel is the agent's label, and its plist's name.
const launchdLabel = "io.github.kadtracker"

// TestLaunchdAgent installs the launchd agent as `make install-launchd`
// does (into a DESTDIR, for a macOS home /Users/u), checks that plistutil
// (libplist) reads it, and that launchd would run the daemon: the label is
// the file's name, ProgramArguments name the binary `make install` puts in
// PREFIX/bin and a `run` command line that the real flag parser accepts,
// with the data directory under ~/Library/Application Support; RunAtLoad,
// KeepAlive, and logs under ~/Library/Logs. The control: the same plist
// with a misspelt flag is refused by the parser.
func TestLaunchdAgent(t *testing.T) {
	for _, bin := range []string{"make", "plistutil"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s is needed (Debian: make libplist-utils; .ci/deps installs them): %v", bin, err)
		}
	}
	const home, prefix = "/Users/u", "/Users/u/.local"
	dest := t.TempDir()
	out, err := exec.Command("make", "-C", "../..", "--no-print-directory", "install-launchd",
		"HOME="+home, "PREFIX="+prefix, "DESTDIR="+dest).CombinedOutput()
	if err != nil {
		t.Fatalf("make install-launchd: %v\n%s", err, out)
	}
	path := filepath.Join(dest, home, "Library/LaunchAgents", launchdLabel+".plist")
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(text), "@") {
		t.Errorf("a placeholder is left in the installed plist:\n%s", text)
	}
	if fi, err := os.Stat(filepath.Join(dest, home, "Library/Logs")); err != nil || !fi.IsDir() {
		t.Errorf("make install-launchd did not make ~/Library/Logs: %v", err)
	}
	// libplist reads it (XML to binary and back), as launchd's parser would.
	bin := filepath.Join(t.TempDir(), "agent.bplist")
	if out, err := exec.Command("plistutil", "-i", path, "-o", bin, "-f", "bin").CombinedOutput(); err != nil {
		t.Fatalf("plistutil: %v\n%s", err, out)
	}

	v, err := parsePlist(strings.NewReader(string(text)))
	if err != nil {
		t.Fatal(err)
	}
	agent, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("the plist is a %T, want a dict", v)
	}
	if agent["Label"] != launchdLabel {
		t.Errorf("Label %v, want %s (the file's name)", agent["Label"], launchdLabel)
	}
	if agent["RunAtLoad"] != true {
		t.Errorf("RunAtLoad %v, want true", agent["RunAtLoad"])
	}
	switch ka := agent["KeepAlive"].(type) {
	case bool:
		if !ka {
			t.Error("KeepAlive is false")
		}
	case map[string]any:
		if ka["SuccessfulExit"] != false {
			t.Errorf("KeepAlive %v, want SuccessfulExit false (restart after a failure)", ka)
		}
	default:
		t.Errorf("KeepAlive %v (%T), want true or a dict", ka, ka)
	}
	for _, k := range []string{"StandardOutPath", "StandardErrorPath"} {
		if s, _ := agent[k].(string); !strings.HasPrefix(s, home+"/Library/Logs/") {
			t.Errorf("%s %q, want a file in ~/Library/Logs", k, s)
		}
	}
	var argv []string
	list, _ := agent["ProgramArguments"].([]any)
	for _, a := range list {
		s, ok := a.(string)
		if !ok {
			t.Fatalf("ProgramArguments holds %v (%T)", a, a)
		}
		argv = append(argv, s)
	}
	if len(argv) < 2 || argv[0] != prefix+"/bin/kadtracker" {
		t.Fatalf("ProgramArguments %q, want %s/bin/kadtracker run ...", argv, prefix)
	}
	getenv := env{"HOME": home}.get
	r, err := parse(argv[1:], getenv)
	if err != nil {
		t.Fatalf("the flag parser refuses ProgramArguments %q: %v", argv[1:], err)
	}
	d, ok := r.(*daemonCmd)
	if !ok {
		t.Fatalf("ProgramArguments %q are a %T, want the daemon", argv[1:], r)
	}
	if want := home + "/Library/Application Support/kadtracker"; d.node.DataDir != want {
		t.Errorf("the agent's data dir is %q, want %q", d.node.DataDir, want)
	}

	// Control: a flag the daemon does not know is refused.
	bad := append(slices.Clone(argv[1:]), "--data-dri", "/x")
	if _, err := parse(bad, getenv); err == nil {
		t.Errorf("control: the parser accepts %q", bad)
	}
}

// parsePlist decodes an XML property list into dicts (map[string]any),
// arrays ([]any), strings, integers (int64), reals (float64) and booleans.
func parsePlist(r io.Reader) (any, error) {
	dec := xml.NewDecoder(r)
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("plist: %w", err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			if se.Name.Local != "plist" {
				return nil, fmt.Errorf("plist: root element %q", se.Name.Local)
			}
			v, end, err := plistValue(dec)
			if err != nil {
				return nil, err
			}
			if end {
				return nil, errors.New("plist: empty")
			}
			return v, nil
		}
	}
}

// plistValue reads the next value; end reports the enclosing element's end
// instead.
func plistValue(dec *xml.Decoder) (v any, end bool, err error) {
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil, false, fmt.Errorf("plist: %w", err)
		}
		switch t := tok.(type) {
		case xml.EndElement:
			return nil, true, nil
		case xml.StartElement:
			switch t.Name.Local {
			case "dict":
				m := map[string]any{}
				for {
					k, end, err := plistValue(dec)
					if err != nil {
						return nil, false, err
					}
					if end {
						return m, false, nil
					}
					key, ok := k.(plistKey)
					if !ok {
						return nil, false, fmt.Errorf("plist: dict entry without a key: %v", k)
					}
					val, end, err := plistValue(dec)
					if err != nil {
						return nil, false, err
					}
					if end {
						return nil, false, fmt.Errorf("plist: key %q without a value", key)
					}
					m[string(key)] = val
				}
			case "array":
				var a []any
				for {
					x, end, err := plistValue(dec)
					if err != nil {
						return nil, false, err
					}
					if end {
						return a, false, nil
					}
					a = append(a, x)
				}
			case "true", "false":
				if err := dec.Skip(); err != nil {
					return nil, false, err
				}
				return t.Name.Local == "true", false, nil
			case "key", "string", "integer", "real":
				var s string
				if err := dec.DecodeElement(&s, &t); err != nil {
					return nil, false, err
				}
				switch t.Name.Local {
				case "key":
					return plistKey(s), false, nil
				case "integer":
					n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
					return n, false, err
				case "real":
					f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
					return f, false, err
				}
				return s, false, nil
			default:
				return nil, false, fmt.Errorf("plist: element %q not handled", t.Name.Local)
			}
		}
	}
}

type plistKey string
