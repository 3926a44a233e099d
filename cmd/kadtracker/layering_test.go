package main

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/kadtracker/kadtracker"

// allowedImports is DESIGN.md's layout table: the packages of ours that pkg
// may import. "x/..." is x and everything below it; "x" is x alone.
func allowedImports(pkg string) []string {
	switch {
	case within(pkg, "records"), within(pkg, "bootstrap"):
		return []string{topOf(pkg) + "/..."}
	case pkg == "node", within(pkg, "node/internal"):
		return []string{"node", "node/internal/...", "records/...", "bootstrap/..."}
	case within(pkg, "node"):
		// A face (node/tracker, node/localapi, ...): it talks to the node
		// through an interface of its own, so it never imports node.
		face := strings.Join(strings.SplitN(pkg, "/", 3)[:2], "/")
		return []string{face + "/...", "records/..."}
	case within(pkg, "netsim"):
		return []string{"netsim/...", "node/...", "records/...", "bootstrap/..."}
	case within(pkg, "cmd"):
		return []string{"records/...", "bootstrap/...", "node/...", "netsim/..."}
	}
	return nil
}

// TestLayering pins the import direction of DESIGN.md, so a shortcut
// through the layers fails here rather than in review.
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
		for _, imp := range fields[1:] {
			dep, ours := strings.CutPrefix(imp, module+"/")
			if !ours {
				continue
			}
			if !matchesAny(dep, allowedImports(pkg)) {
				t.Errorf("%s imports %s, which DESIGN.md's layout does not allow", pkg, dep)
			}
		}
	}
	if checked < 5 {
		t.Fatalf("only %d packages listed", checked)
	}
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
		{"node/tracker", "node", false},
		{"node/tracker", "node/tracker/wire", true},
		{"node/tracker", "node/localapi", false},
		{"records", "bootstrap", false},
		{"netsim", "node", true},
		{"node", "netsim", false},
		{"node/internal/pb", "records", true},
	} {
		if got := matchesAny(tc.dep, allowedImports(tc.pkg)); got != tc.ok {
			t.Errorf("%s importing %s: allowed=%v, want %v", tc.pkg, tc.dep, got, tc.ok)
		}
	}
}
