package localapi

import (
	"go/build"
	"path/filepath"
	"strings"
	"testing"
)

// TestImports pins DESIGN.md's import direction: a face depends on records
// and its own Backend interface, never on the node.
func TestImports(t *testing.T) {
	const module = "github.com/kadtracker/kadtracker/"
	allowed := map[string]bool{module + "records": true}
	root := filepath.Join("..", "..")
	seen := map[string]bool{}
	var walk func(dir, from string)
	walk = func(dir, from string) {
		pkg, err := build.ImportDir(dir, 0)
		if err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		for _, imp := range pkg.Imports {
			rel, ours := strings.CutPrefix(imp, module)
			if !ours || seen[imp] {
				continue
			}
			seen[imp] = true
			if from == "localapi" && !allowed[imp] {
				t.Errorf("localapi imports %s; it may import only %v", imp, allowed)
			}
			if rel == "node" || strings.HasPrefix(rel, "node/") {
				t.Errorf("localapi depends on %s (via %s)", imp, from)
			}
			walk(filepath.Join(root, filepath.FromSlash(rel)), imp)
		}
	}
	walk(".", "localapi")
	if !seen[module+"records"] {
		t.Errorf("found no import of records: the walk is broken")
	}
}
