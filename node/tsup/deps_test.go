package tsup

import (
	"go/build"
	"strings"
	"testing"
)

// The overlay depends on the standard library and its codec only: never on
// the node, the tracker front or cmd (the daemon wires them together).
func TestImports(t *testing.T) {
	const mod = "github.com/kadtracker/kadtracker/"
	allowed := map[string]map[string]bool{
		".":    {mod + "node/tsup/wire": true},
		"wire": {},
	}
	for dir, ok := range allowed {
		pkg, err := build.ImportDir(dir, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range pkg.Imports {
			if std := !strings.Contains(strings.Split(imp, "/")[0], "."); !std && !ok[imp] {
				t.Errorf("package %q (node/tsup/%s) imports %s", pkg.Name, dir, imp)
			}
		}
	}
}
