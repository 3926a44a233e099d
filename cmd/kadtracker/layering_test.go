package main

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/kadtracker/kadtracker"

// layer is what the packages of one layer of docs/design.md's layout may
// import: packages of ours matching allowed ("x/..." is x and everything
// below it; "x" is x alone), and modules outside the standard library only
// when thirdParty is set.
type layer struct {
	allowed    []string
	thirdParty bool
}

// layerOf is docs/design.md's layout table.
func layerOf(pkg string) layer {
	switch {
	case within(pkg, "records"):
		// node/vivaldi, a standard-library leaf, owns the coordinate
		// records sign.
		return layer{[]string{"records/...", "node/vivaldi"}, true}
	case within(pkg, "bootstrap"):
		return layer{[]string{topOf(pkg) + "/..."}, true}
	case pkg == "node", within(pkg, "node/internal"):
		return layer{[]string{"node", "node/internal/...", "node/vivaldi", "records/...", "bootstrap/..."}, true}
	case within(pkg, "node/daemon"):
		// The assembly: the node and every face, wired once.
		return layer{[]string{"node/...", "records/...", "bootstrap/..."}, true}
	case within(pkg, "node/tracker/wire"):
		// A codec: the standard library only, so it is read and fuzzed
		// alone.
		return layer{[]string{"node/tracker/wire"}, false}
	case within(pkg, "node/tsup"):
		// A protocol core and its codec: the standard library and their
		// own packages only, so they are read, fuzzed and simulated alone.
		return layer{[]string{"node/tsup/..."}, false}
	case within(pkg, "node/vivaldi"):
		// Network coordinates: a pure algorithm on the standard library,
		// which records' coordinates and the node's ranking build on.
		return layer{[]string{"node/vivaldi"}, false}
	case within(pkg, "node/tracker"), within(pkg, "node/localapi"):
		// A face talks to the node through an interface of its own, so it
		// never imports node; it needs no module beyond records.
		face := strings.Join(strings.SplitN(pkg, "/", 3)[:2], "/")
		return layer{[]string{face + "/...", "records/..."}, false}
	case within(pkg, "node"):
		face := strings.Join(strings.SplitN(pkg, "/", 3)[:2], "/")
		return layer{[]string{face + "/...", "records/..."}, true}
	case within(pkg, "netsim"):
		return layer{[]string{"netsim/...", "node/...", "records/...", "bootstrap/..."}, true}
	case within(pkg, "cmd"):
		// cmd/kadtracker/internal holds the command's own logic (setup).
		return layer{[]string{"records/...", "bootstrap/...", "node/...", "netsim/...", "cmd/kadtracker/internal/..."}, true}
	}
	return layer{}
}

// TestLayering pins the import direction of docs/design.md, so a shortcut
// through the layers fails here rather than in review. It replaces the
// per-package import tests: one table, one place to change it.
func TestLayering(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	checked := 0
	for line := range strings.Lines(string(out)) {
		fields := strings.Fields(line)
		pkg := strings.TrimPrefix(strings.TrimPrefix(fields[0], module), "/")
		checked++
		l := layerOf(pkg)
		for _, imp := range fields[1:] {
			dep, ours := strings.CutPrefix(imp, module+"/")
			switch {
			case ours && !matchesAny(dep, l.allowed):
				t.Errorf("%s imports %s, which docs/design.md's layout does not allow", pkg, dep)
			case !ours && !l.thirdParty && !isStd(imp):
				t.Errorf("%s imports %s: it may use the standard library only", pkg, imp)
			}
		}
	}
	if checked < 10 {
		t.Fatalf("only %d packages listed", checked)
	}
}

// isStd reports whether imp is a standard library package: its first
// element has no dot.
func isStd(imp string) bool {
	first, _, _ := strings.Cut(imp, "/")
	return !strings.Contains(first, ".")
}

func matchesAny(pkg string, patterns []string) bool {
	for _, p := range patterns {
		if dir, ok := strings.CutSuffix(p, "/..."); ok && within(pkg, dir) || pkg == p {
			return true
		}
	}
	return false
}

// within reports whether pkg is dir or below it.
func within(pkg, dir string) bool { return pkg == dir || strings.HasPrefix(pkg, dir+"/") }

func topOf(pkg string) string {
	top, _, _ := strings.Cut(pkg, "/")
	return top
}

func TestLayeringRules(t *testing.T) {
	for _, tc := range []struct {
		pkg, dep string
		ok       bool
	}{
		{"node", "records", true},
		{"node", "node/tracker", false},
		{"node", "node/daemon", false},
		{"node/tracker", "node", false},
		{"node/tracker", "node/tracker/wire", true},
		{"node/tracker", "node/localapi", false},
		{"node/tracker/wire", "records", false},
		{"node/tracker/wire", "node/tracker", false},
		{"node/tsup", "records", false},
		{"node/localapi", "node", false},
		{"node/daemon", "node", true},
		{"node/daemon", "node/tsup", true},
		{"node/daemon", "netsim", false},
		{"records", "bootstrap", false},
		{"netsim", "node", true},
		{"netsim", "node/daemon", true},
		{"node", "netsim", false},
		{"node/internal/pb", "records", true},
	} {
		if got := matchesAny(tc.dep, layerOf(tc.pkg).allowed); got != tc.ok {
			t.Errorf("%s importing %s: allowed=%v, want %v", tc.pkg, tc.dep, got, tc.ok)
		}
	}
	for pkg, third := range map[string]bool{"node/tsup": false, "node/tsup/wire": false, "node/tracker": false, "node/tracker/wire": false, "node/localapi": false, "node/metrics": true, "records": true} {
		if got := layerOf(pkg).thirdParty; got != third {
			t.Errorf("%s: third-party modules allowed=%v, want %v", pkg, got, third)
		}
	}
}
