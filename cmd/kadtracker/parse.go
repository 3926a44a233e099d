package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"
)

// command is one subcommand.
type command struct {
	name    string
	args    string // positional arguments, for the synopsis
	summary string
	// env makes every flag also settable as KADTRACKER_<NAME>.
	env bool
	// setup registers the command's flags on fs and returns a function that
	// builds the command from them and the positional arguments.
	setup func(fs *flag.FlagSet, getenv func(string) string) func(pos []string) (runner, error)
}

// commands lists the subcommands in the order usage shows them.
var commands = []command{
	{name: "run", summary: "run the daemon", env: true, setup: setupDaemon},
	{name: "status", summary: "show the daemon's status", setup: setupStatus},
	{name: "announce", args: "INFOHASH", summary: "announce a BitTorrent client for a swarm", setup: setupAnnounce},
	{name: "withdraw", args: "INFOHASH", summary: "stop announcing a swarm", setup: setupWithdraw},
	{name: "peers", args: "INFOHASH", summary: "find peers for a swarm", setup: setupPeers},
	{name: "records", summary: "list the records this daemon stores for others", setup: setupRecords},
	{name: "routing", summary: "list the DHT routing table", setup: setupRouting},
	{name: "tsup", args: "links|swarms", summary: "show the TSUP overlay's links or swarms", setup: setupTSUP},
	{name: "bridge", summary: "show the bridge to classic trackers: its swarms, answers and errors", setup: setupBridge},
	{name: "setup", args: "qbittorrent|transmission|aria2|deluge", summary: "add the daemon's tracker to a BitTorrent client's torrents and defaults (--undo removes it)", setup: setupSetup},
	{name: "load", summary: "drive a daemon's fronts at a set rate; report throughput, latency, memory", setup: setupLoad},
	{name: "netsim", args: "run | experiment NAME | process", summary: "simulate kadtracker networks and measure them against the reliability model", setup: setupNetsim},
	{name: "version", summary: "print the version", setup: setupVersion},
}

func lookupCommand(name string) *command {
	for i := range commands {
		if commands[i].name == name {
			return &commands[i]
		}
	}
	return nil
}

func mainUsage() string {
	var b strings.Builder
	b.WriteString("kadtracker is a serverless BitTorrent tracker on a Kademlia DHT.\n\n")
	b.WriteString("usage: kadtracker <command> [flags] [arguments]\n\ncommands:\n")
	for _, c := range commands {
		fmt.Fprintf(&b, "  %-9s  %s\n", c.name, c.summary)
	}
	b.WriteString("\nFlags may stand before or after arguments.\n")
	b.WriteString("'kadtracker <command> --help' lists a command's flags.\n")
	return b.String()
}

// parse turns a command line (without the program name) into a runner.
func parse(args []string, getenv func(string) string) (runner, error) {
	if len(args) == 0 {
		return nil, &usageError{"kadtracker: no command", "\n" + mainUsage()}
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		if len(args) > 1 && args[0] == "help" {
			if c := lookupCommand(args[1]); c != nil {
				return parseCommand(c, []string{"--help"}, getenv)
			}
			return nil, &usageError{fmt.Sprintf("kadtracker: unknown command %q", args[1]), "\n" + mainUsage()}
		}
		return nil, &helpRequest{mainUsage()}
	}
	c := lookupCommand(args[0])
	if c == nil {
		return nil, &usageError{fmt.Sprintf("kadtracker: unknown command %q", args[0]), "\n" + mainUsage()}
	}
	return parseCommand(c, args[1:], getenv)
}

func parseCommand(c *command, args []string, getenv func(string) string) (runner, error) {
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // usage is ours
	build := c.setup(fs, getenv)
	fail := func(err error) error {
		return &usageError{fmt.Sprintf("kadtracker %s: %v", c.name, err), fmt.Sprintf("Run 'kadtracker %s --help' for usage.\n", c.name)}
	}
	pos, err := parseInterspersed(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return nil, &helpRequest{commandUsage(c, fs)}
	}
	if err != nil {
		return nil, fail(err)
	}
	if c.env {
		if err := applyEnv(fs, getenv); err != nil {
			return nil, fail(err)
		}
	}
	r, err := build(pos)
	if err != nil {
		return nil, fail(err)
	}
	return r, nil
}

// parseInterspersed parses flags that may stand before, between and after
// positional arguments, which it returns in order. flag.Parse stops at the
// first positional argument, so parsing starts again after each one. After
// "--" everything is positional (a flag whose value is "--" followed by a
// positional argument is read that way too; nobody names a file "--").
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// envName is the environment variable of a flag: KADTRACKER_DATA_DIR for
// --data-dir.
func envName(flagName string) string {
	return "KADTRACKER_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// applyEnv sets every flag not given on the command line from its
// environment variable, if that is set and not empty: flags beat the
// environment.
func applyEnv(fs *flag.FlagSet, getenv func(string) string) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] {
			return
		}
		name := envName(f.Name)
		if v := getenv(name); v != "" {
			if err := f.Value.Set(v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %v", name, v, err))
			}
		}
	})
	return errors.Join(errs...)
}

// commandUsage lists a command's synopsis and every flag with its default.
func commandUsage(c *command, fs *flag.FlagSet) string {
	var b strings.Builder
	fmt.Fprintf(&b, "usage: kadtracker %s [flags]", c.name)
	if c.args != "" {
		b.WriteString(" " + c.args)
	}
	fmt.Fprintf(&b, "\n\n%s.\n", upperFirst(c.summary))
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	if n == 0 {
		return b.String()
	}
	b.WriteString("\nflags:\n")
	fs.VisitAll(func(f *flag.Flag) {
		typ, usage := flag.UnquoteUsage(f)
		fmt.Fprintf(&b, "  --%s", f.Name)
		if typ != "" {
			b.WriteString(" " + typ)
		}
		def := f.DefValue
		if def == "" {
			def = "none"
		}
		fmt.Fprintf(&b, "\n    \t%s (default %s)", usage, def)
		if c.env {
			fmt.Fprintf(&b, " [$%s]", envName(f.Name))
		}
		b.WriteString("\n")
	})
	return b.String()
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// socketName is the local API socket's name in the data directory.
const socketName = "kadtracker.sock"

// defaultDataDir is $XDG_DATA_HOME/kadtracker if that is set, else
// $HOME/.kadtracker; "" if neither is set.
func defaultDataDir(getenv func(string) string) string {
	if x := getenv("XDG_DATA_HOME"); x != "" {
		return filepath.Join(x, "kadtracker")
	}
	if h := getenv("HOME"); h != "" {
		return filepath.Join(h, ".kadtracker")
	}
	return ""
}

// wantArgs checks the number of positional arguments.
func wantArgs(pos []string, names ...string) error {
	switch {
	case len(pos) < len(names):
		return fmt.Errorf("missing %s", strings.Join(names[len(pos):], " "))
	case len(pos) > len(names):
		return fmt.Errorf("unexpected argument %q", pos[len(names)])
	}
	return nil
}
