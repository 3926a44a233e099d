package netsim

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestCommandExperiment: the flags' zero values take each experiment's
// defaults, and --max-nodes becomes the n experiment's doubling sizes.
func TestCommandExperiment(t *testing.T) {
	c := DefaultCommand()
	def := DefaultExperimentConfig()
	for _, tc := range []struct {
		name string
		repl []int
		want []int
	}{
		{"rp", nil, def.Replication},
		{"m", nil, nil},
		{"n", nil, []int{4}},
		{"churn", nil, []int{4}},
		{"m", []int{1, 3}, []int{1, 3}},
	} {
		c.Replication = tc.repl
		if got := c.Experiment(tc.name).Replication; !slices.Equal(got, tc.want) {
			t.Errorf("%s with %v: replication %v, want %v", tc.name, tc.repl, got, tc.want)
		}
	}
	c.Replication = nil
	for _, tc := range []struct {
		max  int
		want []int
	}{
		{1600, []int{100, 200, 400, 800, 1600}},
		{300, []int{100, 200, 300}},
		{50, []int{50}},
	} {
		c.MaxNodes = tc.max
		if got := c.Experiment("n").NodeCounts; !slices.Equal(got, tc.want) {
			t.Errorf("max nodes %d: %v, want %v", tc.max, got, tc.want)
		}
	}
	ec := c.Experiment("m")
	if ec.Nodes != def.Nodes || ec.Rp != def.Rp || ec.Lookups != def.Lookups || ec.Epochs != def.Epochs || ec.Latency != FixedLatency(10*time.Millisecond) {
		t.Errorf("zero flags did not take the defaults: %+v", ec)
	}
	c.Nodes, c.Rp, c.Lookups, c.Epochs, c.CommandLine = 30, .7, 9, 3, "kadtracker netsim experiment m"
	ec = c.Experiment("m")
	if ec.Nodes != 30 || ec.Rp != .7 || ec.Lookups != 9 || ec.Epochs != 3 || ec.Command != c.CommandLine || ec.Name != "m" {
		t.Errorf("flags not passed on: %+v", ec)
	}
}

// TestCommandRefuses: the modes that take one replication value refuse a
// list, and process mode a missing binary, before building anything.
func TestCommandRefuses(t *testing.T) {
	c := DefaultCommand()
	c.Out = t.TempDir()
	c.Replication = []int{2, 3}
	if _, err := RunCommand(t.Context(), c); err == nil || !strings.Contains(err.Error(), "one replication value") {
		t.Errorf("run with two replication values: %v", err)
	}
	c.Binary = "/nonexistent"
	if _, _, err := ProcessCommand(t.Context(), c); err == nil || !strings.Contains(err.Error(), "one replication value") {
		t.Errorf("process with two replication values: %v", err)
	}
	c.Binary, c.Replication = "", nil
	if _, _, err := ProcessCommand(t.Context(), c); err == nil {
		t.Error("process ran without a binary")
	}
}

// TestCommandRun runs a small network through RunCommand: the flags' zero
// values take run's defaults and the results land in Out.
func TestCommandRun(t *testing.T) {
	c := DefaultCommand()
	c.Out = t.TempDir()
	c.Nodes, c.Lookups, c.Seed = 12, 6, 3
	var stages []string
	c.Progress = func(stage string, done, total int) {
		if !slices.Contains(stages, stage) {
			stages = append(stages, stage)
		}
	}
	res, err := RunCommand(t.Context(), c)
	if err != nil {
		t.Fatal(err)
	}
	if res.Nodes != 12 || res.Lookups != 6 || res.Keys != 3 || res.Rp != 1 || res.Epochs != 1 || res.Replication != 8 {
		t.Errorf("results: N %d, lookups %d, keys %d, rp %v, epochs %d, m %d", res.Nodes, res.Lookups, res.Keys, res.Rp, res.Epochs, res.Replication)
	}
	if !slices.Equal(stages, []string{"joining", "lookups"}) {
		t.Errorf("progress stages %v", stages)
	}
	for _, f := range []string{"results.json", "lookups.csv"} {
		if _, err := os.Stat(filepath.Join(c.Out, f)); err != nil {
			t.Error(err)
		}
	}
}

// TestProgressBar: on a terminal, a log line first clears the bar; on
// anything else only the log lines pass.
func TestProgressBar(t *testing.T) {
	var out bytes.Buffer
	p := NewProgressBar(&out)
	p.Set("lookups", 1, 2)
	p.Write([]byte("line\n"))
	p.Done()
	if out.String() != "line\n" {
		t.Errorf("not a terminal: %q", out.String())
	}
	out.Reset()
	p.terminal = true
	p.Set("lookups", 15, 30)
	p.Write([]byte("line\n"))
	p.Set("lookups", 30, 30)
	p.Done()
	want := "\r\x1b[K[###############---------------]  50% lookups (15/30)" + "\r\x1b[K" + "line\n" +
		"\r\x1b[K[##############################] 100% lookups (30/30)" + "\r\x1b[K"
	if out.String() != want {
		t.Errorf("terminal:\n got %q\nwant %q", out.String(), want)
	}
}
