package node

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/kadtracker/kadtracker/records"
	"golang.org/x/time/rate"
)

// ownRecord returns the record this node stores for itself under key.
func ownRecord(t *testing.T, nd *Node, key records.Key) (records.Entry, bool) {
	t.Helper()
	recs, err := nd.Records(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range recs {
		if e.Key == key && e.Announcer == nd.ID() {
			return e, true
		}
	}
	return records.Entry{}, false
}

// Announcements made with Announce survive a restart on the data dir
// (a real pebble store) and are published again at once. The control
// deletes the saved announcements before the restart: the node then
// announces nothing, which is what happened before they were saved.
func TestRestartKeepsAnnouncements(t *testing.T) {
	for _, saved := range []bool{true, false} {
		t.Run(fmt.Sprintf("saved=%v", saved), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			dir := t.TempDir()
			nd, err := New(ctx, loopbackConfig(dir))
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(21, 1))
			keep, gone := randomKey(t, rng, false), randomKey(t, rng, true)
			for _, k := range []records.Key{keep, gone} {
				if _, err := nd.Announce(ctx, k, 6881, true); err != nil {
					t.Fatal(err)
				}
			}
			if err := nd.Withdraw(ctx, gone); err != nil {
				t.Fatal(err)
			}
			// The tracker front's announcements are its clients', who
			// announce again after a restart: they are not saved.
			transient := randomKey(t, rng, false)
			if _, err := nd.AnnounceTransient(ctx, transient, 6882, false); err != nil {
				t.Fatal(err)
			}
			before, ok := ownRecord(t, nd, keep)
			if !ok {
				t.Fatal("no own record before the restart")
			}
			if err := nd.Close(); err != nil {
				t.Fatal(err)
			}
			if !saved {
				if err := os.Remove(filepath.Join(dir, announcedFile)); err != nil {
					t.Fatal(err)
				}
			}

			nd, err = New(ctx, loopbackConfig(dir))
			if err != nil {
				t.Fatal(err)
			}
			defer nd.Close()
			got := nd.Announced()
			if !saved {
				if len(got) != 0 {
					t.Fatalf("control: %+v announced without the saved file", got)
				}
				return
			}
			if len(got) != 1 || got[0] != (Announcement{Key: keep, Port: 6881, Seed: true}) {
				t.Fatalf("announced after restart: %+v, want only %s", got, keep)
			}
			// Published again at once, not a RepublishInterval later.
			for {
				if e, ok := ownRecord(t, nd, keep); ok && e.Seq > before.Seq {
					break
				}
				select {
				case <-ctx.Done():
					t.Fatal("the restored announcement was not published again")
				case <-time.After(20 * time.Millisecond):
				}
			}
		})
	}
}

// countHandler counts log records by level, and publish-failure Warns.
type countHandler struct {
	mu          sync.Mutex
	counts      map[slog.Level]int
	publishWarn int
}

func (h *countHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *countHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.counts[r.Level]++
	if r.Level == slog.LevelWarn && r.Message == "publish failed, retrying with backoff" {
		h.publishWarn++
	}
	return nil
}
func (h *countHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *countHandler) WithGroup(string) slog.Handler      { return h }

// Repeated publish failures of many keys are logged at Warn a bounded
// number of times, and each key backs off: doubling from the first retry
// delay up to RepublishInterval, with jitter. The control is the failure
// count itself: one Warn line per failure is what the loop logged before.
func TestPublishFailureBackoffAndLogs(t *testing.T) {
	h := &countHandler{counts: map[slog.Level]int{}}
	cfg := DefaultConfig()
	n := &Node{
		cfg:       cfg,
		log:       slog.New(h),
		now:       time.Now,
		announced: make(map[records.Key]announcement),
		sched:     make(map[records.Key]*pubState),
		failLog:   rate.NewLimiter(rate.Every(failLogEvery/publishFailBurst), publishFailBurst),
	}
	rng := rand.New(rand.NewPCG(9, 9))
	const keys, rounds = 100, 6
	refused := fmt.Errorf("node: no storing node accepted the record: %w", fmt.Errorf("a: %w\nb: %w", ErrRemote, ErrRemote))
	ks := make([]records.Key, keys)
	for i := range ks {
		ks[i] = randomKey(t, rng, false)
	}
	var dues []time.Duration
	for round := 1; round <= rounds; round++ {
		for _, k := range ks {
			start := time.Now()
			n.settle(k, AnnounceResult{Targets: 8}, refused)
			d := n.sched[k].due.Sub(start)
			want := min(n.retryBase()<<(round-1), cfg.RepublishInterval)
			if d < want*3/4-time.Millisecond || d > want*5/4+time.Millisecond {
				t.Fatalf("failure %d: retry in %s, want %s ±25%%", round, d, want)
			}
			if round == rounds {
				dues = append(dues, d)
			}
		}
	}
	failures := keys * rounds
	warns := h.counts[slog.LevelWarn]
	t.Logf("%d failures: %d Warn lines, %d Debug", failures, warns, h.counts[slog.LevelDebug])
	if warns > publishFailBurst || warns == 0 {
		t.Errorf("%d Warn lines for %d failures, want 1..%d", warns, failures, publishFailBurst)
	}
	// Jitter: keys refused together do not all retry together.
	distinct := map[time.Duration]bool{}
	for _, d := range dues {
		distinct[d.Round(time.Second)] = true
	}
	if len(distinct) < 10 {
		t.Errorf("retry delays of %d keys fall in %d seconds: no jitter", keys, len(distinct))
	}
	// Success resets the key.
	n.settle(ks[0], AnnounceResult{StoredOn: 3, Targets: 8}, nil)
	if st := n.sched[ks[0]]; st.failures != 0 || st.due.Sub(time.Now()) < cfg.RepublishInterval-time.Second {
		t.Errorf("after success: %+v", st)
	}
}

// A storing node refusing bridged records (BridgedKeysPerAnnouncer): the
// publisher retries each refused key with backoff, sooner than
// RepublishInterval, and logs each at Warn once, not once per attempt.
func TestRefusedPublishBacksOff(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	an := newAdvNet(t, 17)
	store := an.start(ctx, an.host(nil, honestAddr(0)), func(c *Config) {
		c.Replication = 1
		c.Limits.BridgedKeysPerAnnouncer = 1
	})
	h := &countHandler{counts: map[slog.Level]int{}}
	pub := an.start(ctx, an.host(nil, honestAddr(1)), func(c *Config) {
		c.Replication = 1
		c.DHTMode = ModeClient
		c.RepublishInterval = 2 * time.Second // first retry after 250 ms
		c.RecordTTL = 6 * time.Second
		c.BridgedRecordTTL = 5 * time.Second
		c.Logger = slog.New(h)
	})
	an.refresh([]*Node{store, pub})
	rng := rand.New(rand.NewPCG(17, 1))
	eps := []netip.AddrPort{netip.MustParseAddrPort("1.2.3.4:6881")}
	var refused []records.Key
	for i := range 3 {
		k := randomKey(t, rng, false)
		res, err := pub.PublishBridged(ctx, k, eps)
		if i == 0 {
			if err != nil || res.StoredOn != 1 {
				t.Fatalf("first bridged key: %+v, %v", res, err)
			}
			continue
		}
		if err == nil {
			t.Fatalf("bridged key %d taken: %+v", i, res)
		}
		refused = append(refused, k)
	}
	time.Sleep(2 * time.Second)
	pub.mu.Lock()
	for _, k := range refused {
		if f := pub.sched[k].failures; f < 3 {
			t.Errorf("key %s failed %d times in 2 s, want retries with backoff (>= 3)", k, f)
		}
	}
	pub.mu.Unlock()
	h.mu.Lock()
	defer h.mu.Unlock()
	t.Logf("log lines by level: %v; refused: %v", h.counts, store.Stats().PutsRejectedBy[RejectAnnouncerFull])
	if w := h.publishWarn; w != len(refused) {
		t.Errorf("%d Warn lines, want one per refused key (%d)", w, len(refused))
	}
}
