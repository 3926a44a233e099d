package netsim

import (
	"os"
	"path/filepath"
	"testing"
)

// TestPlotRunsRTT draws the plot from two runs' results and refuses a
// directory without results.
func TestPlotRunsRTT(t *testing.T) {
	dir := t.TempDir()
	var dirs []string
	for i, lookup := range []string{"early", "full"} {
		d := filepath.Join(dir, lookup)
		res := &Results{Nodes: 100 * (i + 1), Lookup: lookup, Announce: lookup, LatencyRTT: Percentiles{P50: 2, P99: 4}, AnnounceRTT: Percentiles{P50: 3, P90: 5}}
		if err := WriteResults(d, res); err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, d)
	}
	path := filepath.Join(dir, "rtt_n.png")
	if err := PlotRunsRTT(path, dirs); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() == 0 {
		t.Fatalf("plot: %v", err)
	}
	announces := filepath.Join(dir, "rtt_announce.png")
	if err := PlotRunsAnnounceRTT(announces, dirs); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(announces); err != nil || fi.Size() == 0 {
		t.Fatalf("announce plot: %v", err)
	}
	if err := PlotRunsRTT(path, []string{filepath.Join(dir, "none")}); err == nil {
		t.Error("a directory without results.json was plotted")
	}
}

// TestPlotRunsPublish draws RPCs per key against K from republish runs
// and refuses a run that is not one.
func TestPlotRunsPublish(t *testing.T) {
	dir := t.TempDir()
	var dirs []string
	for i, sched := range []string{"regions", "serial", "regions"} {
		d := filepath.Join(dir, sched+string(rune('a'+i)))
		res := &Results{Nodes: 100, Publish: &PublishResults{Keys: 1000 * (i + 1), Scheduler: sched, RPCsPerKeyRound: 9, MainlineRPCsPer30Min: 30}}
		if err := WriteResults(d, res); err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, d)
	}
	path := filepath.Join(dir, "publish_k.png")
	if err := PlotRunsPublish(path, dirs); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() == 0 {
		t.Fatalf("plot: %v", err)
	}
	plain := filepath.Join(dir, "plain")
	if err := WriteResults(plain, &Results{Nodes: 100}); err != nil {
		t.Fatal(err)
	}
	if err := PlotRunsPublish(path, []string{plain}); err == nil {
		t.Error("a run without publish results was plotted")
	}
}
