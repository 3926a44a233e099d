package netsim

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// isPNG reports whether path holds a PNG image of some size.
func isPNG(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 1000 || !bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) {
		t.Fatalf("%s is not a PNG plot (%d bytes)", path, len(b))
	}
}

// A small m sweep writes a CSV row and a JSON point per m, and a plot.
func TestExperimentFiles(t *testing.T) {
	ec := DefaultExperimentConfig()
	ec.Name, ec.Out = "m", t.TempDir()
	ec.Nodes, ec.Replication, ec.Rp = 16, []int{1, 3}, 0.6
	ec.Lookups, ec.Epochs = 24, 6
	ec.Latency = FixedLatency(time.Millisecond)
	var log bytes.Buffer
	ec.Log = &log
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := RunExperiment(ctx, ec); err != nil {
		t.Fatal(err)
	}
	t.Log(log.String())
	f, err := os.Open(filepath.Join(ec.Out, "m.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 || rows[0][0] != "experiment" || rows[1][3] != "1" || rows[2][3] != "3" {
		t.Fatalf("m.csv rows: %v", rows)
	}
	var doc struct {
		Experiment string
		Points     []struct {
			X           float64 `json:"x"`
			SuccessRate float64 `json:"success_rate"`
			Lookups     int     `json:"lookups"`
		}
	}
	b, err := os.ReadFile(filepath.Join(ec.Out, "m.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Experiment != "m" || len(doc.Points) != 2 || doc.Points[1].X != 3 || doc.Points[1].Lookups != 24 {
		t.Fatalf("m.json: %+v", doc)
	}
	isPNG(t, filepath.Join(ec.Out, "m.png"))
	// The plot can be drawn again from the JSON alone.
	if err := os.Remove(filepath.Join(ec.Out, "m.png")); err != nil {
		t.Fatal(err)
	}
	if err := Replot(ExperimentConfig{Name: "m", Out: ec.Out}); err != nil {
		t.Fatal(err)
	}
	isPNG(t, filepath.Join(ec.Out, "m.png"))
	if err := RunExperiment(ctx, ExperimentConfig{Name: "nope", Out: ec.Out}); err == nil {
		t.Fatal("an unknown experiment ran")
	}
}

// A short torrent evolution: every arrival is served or failed, the DHT
// finds a live seed whenever one exists, and the torrent dies.
func TestEvolution(t *testing.T) {
	ec := DefaultExperimentConfig()
	ec.Name, ec.Out, ec.Nodes = "evolution", t.TempDir(), 24
	ec.Latency = FixedLatency(time.Millisecond)
	ec.Evolution = Evolution{
		Lambda0: []float64{20}, Replicas: 1, TauHours: 1, GammaPerHour: 4,
		SecondsPerHour: 3, ProbeEveryHours: 0.1, BinHours: 0.25, HorizonHours: 3,
		RecordTTL: 2 * time.Hour, Republish: time.Hour, Concurrency: 8,
	}
	var log bytes.Buffer
	ec.Log = &log
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := RunExperiment(ctx, ec); err != nil {
		t.Fatal(err)
	}
	t.Log(log.String())
	var res EvolutionResults
	b, err := os.ReadFile(filepath.Join(ec.Out, "evolution.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	tr := res.Torrents[0]
	if tr.Arrivals < 5 || tr.Served+tr.Failed != tr.Arrivals {
		t.Fatalf("%d arrivals, %d served, %d failed", tr.Arrivals, tr.Served, tr.Failed)
	}
	if tr.Availability < 0.8 {
		t.Fatalf("only %.2f of lookups found a live seed while the torrent lived", tr.Availability)
	}
	if tr.DHTLifespan > tr.Lifespan+0.2 {
		t.Fatalf("a live seed was found at %.2f h, after the last one left at %.2f h", tr.DHTLifespan, tr.Lifespan)
	}
	for _, name := range []string{"evolution.png", "evolution_lifespan.png", "evolution_seeds.png"} {
		isPNG(t, filepath.Join(ec.Out, name))
	}
}

// Churn with republishing: nodes fail and come back, lookups keep finding
// records, and the repair model brackets the measurement loosely.
func TestChurn(t *testing.T) {
	ec := DefaultExperimentConfig()
	ec.Name, ec.Out, ec.Nodes = "churn", t.TempDir(), 24
	ec.Replication = []int{2}
	ec.Latency = FixedLatency(time.Millisecond)
	ec.Churn = Churn{
		MTTF: 30 * time.Minute, MTTR: 30 * time.Minute, Republish: []time.Duration{10 * time.Minute}, TTLFactor: 3,
		WarmupHours: 0.25, Hours: 1, SecondsPerHour: 6, Keys: 4, LookupsPerHour: 120, Concurrency: 4,
	}
	var log bytes.Buffer
	ec.Log = &log
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := RunExperiment(ctx, ec); err != nil {
		t.Fatal(err)
	}
	t.Log(log.String())
	var doc struct{ Results []ChurnResult }
	b, err := os.ReadFile(filepath.Join(ec.Out, "churn.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	r := doc.Results[0]
	if r.Lookups < 100 || r.Failures < 10 {
		t.Fatalf("%d lookups and %d failures: the churn did not run", r.Lookups, r.Failures)
	}
	if r.DownMean < 0.25 || r.DownMean > 0.75 {
		t.Fatalf("%.2f of churning nodes down on average, want about half", r.DownMean)
	}
	// With republishing every third of a session, success beats the no-repair
	// bound; lookups of 24 nodes are few, so only loosely.
	if r.SuccessRate < r.ReplicaBound-0.1 || r.SuccessRate > 1 {
		t.Fatalf("success %.3f, no-repair bound %.3f, repair model %.3f", r.SuccessRate, r.ReplicaBound, r.RepairModel)
	}
	isPNG(t, filepath.Join(ec.Out, "churn.png"))
}
