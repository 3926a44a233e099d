package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestReleaseBuilds builds the binary for every platform `make release`
// ships (linux, macOS and Windows on amd64 and arm64), as a static binary
// without cgo: a change that only builds on Linux fails here, not at
// release time.
func TestReleaseBuilds(t *testing.T) {
	makefile, err := os.ReadFile(filepath.Join("..", "..", "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	var platforms []string
	for line := range strings.Lines(string(makefile)) {
		if rest, ok := strings.CutPrefix(line, "RELEASE_PLATFORMS ?="); ok {
			platforms = strings.Fields(rest)
		}
	}
	if len(platforms) < 6 {
		t.Fatalf("the Makefile's RELEASE_PLATFORMS lists %v", platforms)
	}
	out := t.TempDir()
	for _, p := range platforms {
		goos, goarch, _ := strings.Cut(p, "/")
		cmd := exec.Command("go", "build", "-o", filepath.Join(out, goos+"-"+goarch), ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+goos, "GOARCH="+goarch)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s: %v\n%s", p, err, b)
		}
	}
}
