package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

type versionCmd struct{}

func setupVersion(*flag.FlagSet, func(string) string) func([]string) (runner, error) {
	return func(pos []string) (runner, error) {
		if err := wantArgs(pos); err != nil {
			return nil, err
		}
		return versionCmd{}, nil
	}
}

func (versionCmd) run(_ context.Context, stdout, _ io.Writer) error {
	_, err := fmt.Fprintln(stdout, version())
	return err
}

// version is the module version the binary was built from (Go stamps a
// pseudo-version from the VCS for a build in a checkout), with the VCS
// revision when the build recorded one; `make build` always records it.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "kadtracker (unknown version) " + runtime.Version()
	}
	v := "kadtracker " + bi.Main.Version
	revision := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v += " " + s.Value
			revision = true
		case "vcs.modified":
			if s.Value == "true" {
				v += " (modified)"
			}
		}
	}
	if !revision && bi.Main.Version == "(devel)" {
		v += " (no VCS information: build with make build)"
	}
	return v + " " + bi.GoVersion
}
