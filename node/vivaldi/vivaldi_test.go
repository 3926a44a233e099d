package vivaldi

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestCheck(t *testing.T) {
	good := Coord{Vec: [Dims]float64{0.01, -0.02, 0.003}, Height: 0.001, Error: 0.3}
	if err := good.Check(); err != nil {
		t.Fatalf("good coordinate refused: %v", err)
	}
	bad := map[string]func(*Coord){
		"nan component":   func(c *Coord) { c.Vec[1] = math.NaN() },
		"inf component":   func(c *Coord) { c.Vec[0] = math.Inf(-1) },
		"huge component":  func(c *Coord) { c.Vec[2] = MaxComponent * 2 },
		"nan height":      func(c *Coord) { c.Height = math.NaN() },
		"negative height": func(c *Coord) { c.Height = -0.001 },
		"huge height":     func(c *Coord) { c.Height = MaxHeight + 1 },
		"negative error":  func(c *Coord) { c.Error = -1 },
		"inf error":       func(c *Coord) { c.Error = math.Inf(1) },
	}
	for name, spoil := range bad {
		c := good
		spoil(&c)
		if err := c.Check(); !errors.Is(err, ErrBadCoord) {
			t.Errorf("%s: Check = %v, want ErrBadCoord", name, err)
		}
	}
}

func TestDistance(t *testing.T) {
	a := Coord{Vec: [Dims]float64{0, 0, 0}, Height: 0.001}
	b := Coord{Vec: [Dims]float64{0.03, 0.04, 0}, Height: 0.002}
	if d := a.Distance(b); math.Abs(d-0.053) > 1e-12 {
		t.Fatalf("distance %g, want 0.053", d)
	}
	if d := b.Distance(a); math.Abs(d-0.053) > 1e-12 {
		t.Fatalf("distance not symmetric: %g", d)
	}
	if rtt := a.RTT(b); rtt != 53*time.Millisecond {
		t.Fatalf("RTT %s, want 53ms", rtt)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	c := DefaultConfig()
	c.CC = 0
	c.FilterSize = 0
	if err := c.Validate(); err == nil {
		t.Fatal("zero cc and filter size accepted")
	}
	if _, err := New(c, 1); err == nil {
		t.Fatal("New accepted an invalid config")
	}
}

// TestUpdateRefuses counts every kind of refused input, and that a refused
// sample leaves the coordinate alone.
func TestUpdateRefuses(t *testing.T) {
	c := mustNew(t, DefaultConfig(), 1)
	before := c.Coord()
	cases := []struct {
		other Coord
		rtt   time.Duration
		want  string
	}{
		{Coord{Vec: [Dims]float64{math.NaN()}}, 10 * time.Millisecond, RefusedCoord},
		{Coord{Vec: [Dims]float64{1e9}}, 10 * time.Millisecond, RefusedCoord},
		{Coord{Error: math.Inf(1)}, 10 * time.Millisecond, RefusedCoord},
		{Coord{}, -time.Millisecond, RefusedRTT},
		{Coord{}, time.Minute, RefusedRTT},
	}
	for _, tc := range cases {
		if got := c.Update("x", tc.other, tc.rtt); got != tc.want {
			t.Errorf("Update(%+v, %s) = %q, want %q", tc.other, tc.rtt, got, tc.want)
		}
	}
	if c.Coord() != before {
		t.Fatalf("refused samples moved the coordinate: %+v", c.Coord())
	}
	s := c.Stats()
	if s.Samples != 0 || s.Refused[RefusedCoord] != 3 || s.Refused[RefusedRTT] != 2 {
		t.Fatalf("stats %+v", s)
	}
	if got := c.Update("x", Coord{Error: 1}, 0); got != "" {
		t.Fatalf("a zero round trip was refused (%q): it is clamped, not refused", got)
	}
}

// TestTwoNodes: two nodes that sample each other settle at their round trip.
func TestTwoNodes(t *testing.T) {
	a, b := mustNew(t, DefaultConfig(), 1), mustNew(t, DefaultConfig(), 2)
	const rtt = 80 * time.Millisecond
	for range 200 {
		a.Update("b", b.Coord(), rtt)
		b.Update("a", a.Coord(), rtt)
	}
	got := a.Coord().RTT(b.Coord())
	if math.Abs(float64(got-rtt)) > 0.05*float64(rtt) {
		t.Fatalf("predicted %s, want %s within 5%%", got, rtt)
	}
	if e := a.Coord().Error; e > 0.2 {
		t.Fatalf("error estimate %g after 200 exact samples", e)
	}
}

// TestFilter: delayed answers among prompt ones move nothing; the filter
// takes the 25th percentile of the last four.
func TestFilter(t *testing.T) {
	c := mustNew(t, DefaultConfig(), 1)
	for _, ms := range []int{900, 50, 700} {
		if got := c.filter("r", float64(ms)/1000); got != 0.9 && got != 0.05 {
			t.Fatalf("filter gave %g", got)
		}
	}
	if m := c.filter("r", 0.052); m != 0.052 {
		t.Fatalf("filter %g, want 0.052 (second lowest of 900, 50, 700, 52)", m)
	}
	for _, ms := range []int{800, 810, 820} {
		c.filter("r", float64(ms)/1000)
	}
	if m := c.filter("r", 0.83); m != 0.81 {
		t.Fatalf("filter %g, want 0.81 once the prompt answers left the window", m)
	}
	// Remotes beyond MaxRemotes push out the oldest.
	cfg := DefaultConfig()
	cfg.MaxRemotes = 2
	c = mustNew(t, cfg, 1)
	for _, r := range []string{"a", "b", "c"} {
		c.filter(r, 0.01)
	}
	if _, ok := c.recent["a"]; ok || len(c.recent) != 2 {
		t.Fatalf("remembered %v", c.recent)
	}
}

// world is a synthetic latency matrix: points on a plane in clusters
// (cities) plus an access-link delay per node, which Vivaldi's height is
// made for.
type world struct {
	rtt [][]float64 // seconds
}

func newWorld(n int, seed uint64) world {
	rng := rand.New(rand.NewPCG(seed, 7))
	type pt struct{ x, y, access float64 }
	centres := []pt{{0, 0, 0}, {0.06, 0.01, 0}, {0.01, 0.09, 0}, {0.12, 0.1, 0}}
	pts := make([]pt, n)
	for i := range pts {
		c := centres[rng.IntN(len(centres))]
		pts[i] = pt{c.x + rng.NormFloat64()*0.004, c.y + rng.NormFloat64()*0.004, 0.001 + rng.Float64()*0.004}
	}
	w := world{rtt: make([][]float64, n)}
	for i := range n {
		w.rtt[i] = make([]float64, n)
		for j := range n {
			if i != j {
				w.rtt[i][j] = math.Hypot(pts[i].x-pts[j].x, pts[i].y-pts[j].y) + pts[i].access + pts[j].access
			}
		}
	}
	return w
}

// medianRelError is the median over pairs of |predicted - true| / true.
func medianRelError(w world, cs []*Client) float64 {
	var errs []float64
	for i := range cs {
		for j := i + 1; j < len(cs); j++ {
			p := cs[i].Coord().Distance(cs[j].Coord())
			errs = append(errs, math.Abs(p-w.rtt[i][j])/w.rtt[i][j])
		}
	}
	slices.Sort(errs)
	return errs[len(errs)/2]
}

// simulate runs rounds in which every node samples k random others, with
// 5% multiplicative jitter, and returns the median relative error after
// each round.
func simulate(w world, cs []*Client, rounds, k int, seed uint64) []float64 {
	rng := rand.New(rand.NewPCG(seed, 9))
	n := len(cs)
	var out []float64
	for range rounds {
		for i := range n {
			for range k {
				j := rng.IntN(n - 1)
				if j >= i {
					j++
				}
				rtt := w.rtt[i][j] * (1 + 0.05*rng.Float64())
				cs[i].Update(fmt.Sprint(j), cs[j].Coord(), time.Duration(rtt*float64(time.Second)))
			}
		}
		out = append(out, medianRelError(w, cs))
	}
	return out
}

func clients(t *testing.T, n int, cfg Config) []*Client {
	cs := make([]*Client, n)
	for i := range cs {
		cs[i] = mustNew(t, cfg, uint64(i))
	}
	return cs
}

// TestConvergence: on a clustered world of 200 nodes, each sampling 4
// others a round, the median relative error falls below 15% and stays.
func TestConvergence(t *testing.T) {
	w := newWorld(200, 1)
	cs := clients(t, 200, DefaultConfig())
	errs := simulate(w, cs, 60, 4, 1)
	t.Logf("median relative error by round: first %.2f, 10th %.2f, 30th %.2f, last %.2f", errs[0], errs[9], errs[29], errs[len(errs)-1])
	if last := errs[len(errs)-1]; last > 0.15 {
		t.Fatalf("median relative error %.3f after 60 rounds, want <= 0.15", last)
	}
	if errs[0] < 2*errs[len(errs)-1] {
		t.Fatalf("error did not fall: %.3f at first, %.3f at last", errs[0], errs[len(errs)-1])
	}
}

// TestLiar: a remote lying about its coordinate (claiming to sit 2 s out,
// with a tiny error) is answered honestly in time but its samples are
// refused once the victim has settled, so the victim's predictions to
// honest nodes stay good. The control turns the defences off and shows
// the same liar ruins them.
func TestLiar(t *testing.T) {
	run := func(cfg Config) (before, after float64, refused int64) {
		w := newWorld(60, 2)
		cs := clients(t, 60, cfg)
		simulate(w, cs, 40, 4, 2)
		victim := cs[0]
		pred := func() float64 {
			var errs []float64
			for j := 1; j < len(cs); j++ {
				p := victim.Coord().Distance(cs[j].Coord())
				errs = append(errs, math.Abs(p-w.rtt[0][j])/w.rtt[0][j])
			}
			slices.Sort(errs)
			return errs[len(errs)/2]
		}
		before = pred()
		lie := Coord{Vec: [Dims]float64{2, -2, 2}, Height: 0.5, Error: 0}
		for i := range 50 {
			victim.Update(fmt.Sprint("liar", i%5), lie, 30*time.Millisecond)
		}
		return before, pred(), victim.Stats().Refused[RefusedOutlier]
	}
	before, after, refused := run(DefaultConfig())
	t.Logf("protected: victim's median error %.3f before, %.3f after; %d refused", before, after, refused)
	if after > before+0.05 || refused < 45 {
		t.Fatalf("protected victim's error went from %.3f to %.3f, %d samples refused", before, after, refused)
	}
	open := DefaultConfig()
	open.MaxWrongness, open.MinRemoteError = 0, 0
	before, after, _ = run(open)
	t.Logf("unprotected: victim's median error %.3f before, %.3f after", before, after)
	if after < 1 {
		t.Fatalf("control: the liar should ruin an unprotected victim (error %.3f -> %.3f)", before, after)
	}
}

func mustNew(t testing.TB, cfg Config, seed uint64) *Client {
	t.Helper()
	c, err := New(cfg, seed)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func BenchmarkUpdate(b *testing.B) {
	c := mustNew(b, DefaultConfig(), 1)
	other := Coord{Vec: [Dims]float64{0.01, 0.02, 0.03}, Height: 0.001, Error: 0.5}
	b.ReportAllocs()
	for b.Loop() {
		c.Update("r", other, 40*time.Millisecond)
	}
}
