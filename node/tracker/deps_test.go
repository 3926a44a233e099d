package tracker

import (
	"go/build"
	"strings"
	"testing"
)

// The front and its codec depend on the standard library and records only:
// never on the node (the consumer owns the Node interface) nor on cmd.
func TestImports(t *testing.T) {
	const mod = "github.com/kadtracker/kadtracker/"
	allowed := map[string]map[string]bool{
		".":    {mod + "records": true, mod + "node/tracker/wire": true},
		"wire": {mod + "records": true},
	}
	for dir, ok := range allowed {
		pkg, err := build.ImportDir(dir, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range pkg.Imports {
			if std := !strings.Contains(strings.Split(imp, "/")[0], "."); !std && !ok[imp] {
				t.Errorf("package %q (node/tracker/%s) imports %s", pkg.Name, dir, imp)
			}
		}
	}
}
