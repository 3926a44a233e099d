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

// version is the module version the binary was built from, with the VCS
// revision when the build recorded one.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "kadtracker (unknown version) " + runtime.Version()
	}
	v := "kadtracker " + bi.Main.Version
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v += " " + s.Value
		case "vcs.modified":
			if s.Value == "true" {
				v += "+dirty"
			}
		}
	}
	return v + " " + bi.GoVersion
}
