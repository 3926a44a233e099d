// Command kadtracker is the kadtracker daemon and its command-line client.
//
//	kadtracker run [flags]                  run the daemon
//	kadtracker status|announce|withdraw|peers|records|routing [flags] [args]
//	kadtracker version
//
// The client commands talk to a running daemon through its local API (see
// package localapi). Flags may stand before or after positional arguments.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Exit codes.
const (
	exitOK    = 0
	exitError = 1 // the command failed
	exitUsage = 2 // the command line is wrong
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// The first signal starts an orderly stop; a second one kills the
	// process the default way.
	context.AfterFunc(ctx, stop)
	os.Exit(realMain(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv))
}

// realMain parses args into a command, runs it and returns the exit code.
// getenv stands for os.Getenv, so tests can give each run its environment.
func realMain(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	cmd, err := parse(args, getenv)
	if err != nil {
		var help *helpRequest
		var usage *usageError
		switch {
		case errors.As(err, &help):
			fmt.Fprint(stdout, help.usage)
			return exitOK
		case errors.As(err, &usage):
			fmt.Fprintf(stderr, "%s\n%s", usage.msg, usage.usage)
			return exitUsage
		}
		fmt.Fprintf(stderr, "kadtracker: %v\n", err)
		return exitUsage
	}
	if err := cmd.run(ctx, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "kadtracker: %v\n", err)
		return exitError
	}
	return exitOK
}

// runner is a parsed command line, ready to run.
type runner interface {
	run(ctx context.Context, stdout, stderr io.Writer) error
}

// helpRequest is returned by parse for --help: usage goes to stdout, exit 0.
type helpRequest struct{ usage string }

func (h *helpRequest) Error() string { return "help requested" }

// usageError is a wrong command line: the message and a usage text or hint
// go to stderr, exit 2.
type usageError struct{ msg, usage string }

func (e *usageError) Error() string { return e.msg }
