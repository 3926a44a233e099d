package netsim

import (
	"context"
	"testing"
	"time"
)

// TestGeoLatency: the model parses, repeats with the seed, is symmetric,
// and orders its distances: within a city below within a region below
// between regions.
func TestGeoLatency(t *testing.T) {
	l, err := ParseLatency("geo")
	if err != nil || l.String() != "geo" || l.Validate() != nil {
		t.Fatalf("ParseLatency(geo) = %+v, %v", l, err)
	}
	var city, region, world []time.Duration
	for i := range 300 {
		for j := i + 1; j < 300; j++ {
			d := l.Link(7, i, j)
			if d != l.Link(7, j, i) || d != l.Link(7, i, j) || d <= 0 {
				t.Fatalf("link %d-%d: %s, not repeatable or symmetric", i, j, d)
			}
			a, b := GeoPlaceOf(7, i), GeoPlaceOf(7, j)
			switch {
			case a == b:
				city = append(city, d)
			case a.Region == b.Region:
				region = append(region, d)
			default:
				world = append(world, d)
			}
		}
	}
	avg := func(ds []time.Duration) time.Duration {
		var s time.Duration
		for _, d := range ds {
			s += d
		}
		return s / time.Duration(max(1, len(ds)))
	}
	t.Logf("one-way means: city %s (%d links), region %s (%d), between regions %s (%d); model mean %s",
		avg(city), len(city), avg(region), len(region), avg(world), len(world), l.Mean())
	if len(city) == 0 || !(avg(city) < avg(region) && avg(region) < avg(world)) {
		t.Fatalf("distances out of order: city %s, region %s, world %s", avg(city), avg(region), avg(world))
	}
	if l.Link(7, 1, 2) == l.Link(8, 1, 2) && l.Link(7, 3, 4) == l.Link(8, 3, 4) {
		t.Fatal("the seed does not change the placement")
	}
}

// TestLocalityWorkload: a small geographic network, the CI check of issue
// 16: after rounds of coordinate traffic, kadtracker's ranking returns
// nearer peers than random selection, and every swarm stays connected at
// the default share.
func TestLocalityWorkload(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Nodes = 40
	cfg.Latency = GeoLatency()
	cfg.Seed = 3
	NoRepublish(&cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	nw, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer nw.Close()
	l := DefaultLocality()
	l.Swarms, l.SwarmSize, l.Want, l.Rounds = 3, 16, 5, 12
	l.Shares = []float64{0}
	l.ErrorPairs = 300
	res, err := l.Run(ctx, nw, 3)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("share %.2f: ranked %.1f ms, random %.1f, oracle %.1f; error %.3f (by round %.2f), converged in %d rounds; connected %v; %d lookups, %d errors",
		res.Share, res.RTTMsRanked, res.RTTMsRandom, res.RTTMsOracle, res.CoordRelErrorMedian, res.CoordRelErrorByRound, res.RoundsToConverge, res.SwarmsConnected, res.Lookups, res.LookupErrors)
	if res.Lookups == 0 || res.LookupErrors > res.Lookups/10 {
		t.Fatalf("%d lookups, %d errors", res.Lookups, res.LookupErrors)
	}
	if !(res.RTTMsRanked < res.RTTMsRandom) || !(res.RTTMsOracle <= res.RTTMsRanked) {
		t.Fatalf("ranked %.1f ms, random %.1f, oracle %.1f: want oracle <= ranked < random", res.RTTMsRanked, res.RTTMsRandom, res.RTTMsOracle)
	}
	if !res.SwarmsConnected {
		t.Fatal("a swarm's who-got-whom graph split")
	}
	if first, last := res.CoordRelErrorByRound[0], res.CoordRelErrorByRound[len(res.CoordRelErrorByRound)-1]; last >= first/2 {
		t.Fatalf("coordinates' error %.3f at start, %.3f after %d rounds", first, last, l.Rounds)
	}
	if len(res.Sweep) != 2 || res.Sweep[0].Share != 0 {
		t.Fatalf("sweep %+v", res.Sweep)
	}
}
