package netsim

import (
	"context"
	"testing"
	"time"
)

// publishRun runs the republish workload on n nodes with k keys, 20 ms
// links, a 10 s interval and 30 s records, for d.
func publishRun(t *testing.T, n, k int, d time.Duration, serial bool) *Results {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Nodes, cfg.Seed, cfg.RefreshRounds = n, 15, 1
	cfg.Latency = FixedLatency(20 * time.Millisecond)
	cfg.Node.RepublishInterval, cfg.Node.RecordTTL, cfg.Node.BridgedRecordTTL = 10*time.Second, 30*time.Second, 30*time.Second
	cfg.Node.SerialRepublish = serial
	p := DefaultPublish()
	p.Keys, p.Lookups, p.Duration = k, 100, d
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	res, err := RunPublish(ctx, cfg, p, 15)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("N=%d: %s; lookups found %d of %d; built in %.0fs, announced in %.0fs", n, res.Publish, res.Successes, res.Lookups, res.BuildSeconds, res.Publish.AnnounceSeconds)
	return res
}

// The CI version of the republish experiment (docs/netsim.md): one node of
// 50 keeps 500 records alive over two record TTLs with a 10 s interval,
// every lookup finds its record, and republishing costs far fewer RPCs per
// key than a walk per key would. The old serial scheduler, a walk per key
// one after another, lets records lapse in the same setup within a TTL
// and a bit: at 20 ms links a walk and a PUT take 160 ms or more, so its
// round lasts over 80 s, whatever the machine. (The 200 nodes and
// 2,000 keys take 9 GB under -race, and a loaded machine's CPU, not the
// scheduler, then decides whether records lapse.)
func TestPublishKeepsKeysAlive(t *testing.T) {
	if testing.Short() {
		t.Skip("a two-minute mocknet run")
	}
	res := publishRun(t, 50, 500, 60*time.Second, false)
	pr := res.Publish
	if pr.Lapsed != 0 || pr.KeysUnheld != 0 {
		t.Fatalf("%d records lapsed, %d keys unheld", pr.Lapsed, pr.KeysUnheld)
	}
	if res.Successes != res.Lookups {
		t.Fatalf("%d of %d lookups found the record", res.Successes, res.Lookups)
	}
	// A walk per key would cost QueriesPerWalk RPCs per key and round
	// besides the PUTs; shared walks cost a fraction of one.
	if walkRPCs := pr.RPCsPerKeyRound - float64(pr.PutsSent)/float64(pr.Keys)/pr.Rounds; walkRPCs > pr.QueriesPerWalk/4 {
		t.Errorf("%.1f walk RPCs per key and round: walks are not shared (a walk is %.1f)", walkRPCs, pr.QueriesPerWalk)
	}

	t.Run("control: old scheduler", func(t *testing.T) {
		res := publishRun(t, 50, 500, 40*time.Second, true)
		if res.Publish.Lapsed == 0 {
			t.Fatal("the serial scheduler kept every record alive: the setup does not load it")
		}
	})
}
