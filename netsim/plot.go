package netsim

import (
	"cmp"
	"encoding/json"
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// series is one curve of a chart.
type series struct {
	name string
	xs   []float64
	ys   []float64
	// lo and hi, if set, draw an error bar from lo[i] to hi[i].
	lo, hi []float64
	// points draws markers without a line (a measurement); otherwise a line
	// (a model).
	points bool
	dashes bool
	// color is the palette index plus one; zero picks by position.
	color int
	// noLine leaves measured points unconnected.
	noLine bool
	// dotted draws a model line dotted rather than dashed.
	dotted bool
}

// chart describes a plot.
type chart struct {
	title, xlabel, ylabel string
	logX                  bool
	// yMin and yMax fix the y range when yMax > yMin.
	yMin, yMax float64
	// legendTop and legendLeft place the legend (bottom right by default).
	legendTop, legendLeft bool
	// xTicks, if set, are the x values labelled (for a log axis).
	xTicks []float64
	series []series
}

var palette = []color.Color{
	color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff},
	color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff},
	color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff},
	color.RGBA{R: 0x94, G: 0x67, B: 0xbd, A: 0xff},
	color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff},
	color.RGBA{R: 0x8c, G: 0x56, B: 0x4b, A: 0xff},
	color.RGBA{R: 0x7f, G: 0x7f, B: 0x7f, A: 0xff},
	color.RGBA{R: 0x17, G: 0xbe, B: 0xcf, A: 0xff},
}

// save renders the chart to path; the extension (.png, .svg) picks the format.
func (c chart) save(path string) error {
	p := plot.New()
	p.Title.Text = c.title
	p.X.Label.Text = c.xlabel
	p.Y.Label.Text = c.ylabel
	p.Legend.Top, p.Legend.Left = c.legendTop, c.legendLeft
	p.Legend.TextStyle.Font.Size = vg.Points(9)
	p.Legend.Padding = vg.Points(2)
	p.Add(plotter.NewGrid())
	if c.logX {
		p.X.Scale = plot.LogScale{}
		p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	}
	if c.yMax > c.yMin {
		p.Y.Min, p.Y.Max = c.yMin, c.yMax
	}
	for i, s := range c.series {
		col := palette[i%len(palette)]
		if s.color > 0 {
			col = palette[(s.color-1)%len(palette)]
		}
		xys := make(plotter.XYs, 0, len(s.xs))
		for j := range s.xs {
			if math.IsNaN(s.ys[j]) || math.IsInf(s.ys[j], 0) {
				continue
			}
			xys = append(xys, plotter.XY{X: s.xs[j], Y: s.ys[j]})
		}
		if len(xys) == 0 {
			continue
		}
		if s.points {
			sc, err := plotter.NewScatter(xys)
			if err != nil {
				return err
			}
			sc.GlyphStyle.Color = col
			sc.GlyphStyle.Radius = vg.Points(3)
			sc.GlyphStyle.Shape = draw.CircleGlyph{}
			if !s.noLine {
				ln, err := plotter.NewLine(xys)
				if err != nil {
					return err
				}
				ln.LineStyle.Color = col
				ln.LineStyle.Width = vg.Points(0.5)
				p.Add(ln)
			}
			p.Add(sc)
			p.Legend.Add(s.name, sc)
			if s.lo != nil {
				eb := errBars{xys: xys}
				for j := range s.xs {
					eb.low = append(eb.low, s.ys[j]-s.lo[j])
					eb.high = append(eb.high, s.hi[j]-s.ys[j])
				}
				bars, err := plotter.NewYErrorBars(eb)
				if err != nil {
					return err
				}
				bars.LineStyle.Color = col
				p.Add(bars)
			}
			continue
		}
		ln, err := plotter.NewLine(xys)
		if err != nil {
			return err
		}
		ln.LineStyle.Color = col
		ln.LineStyle.Width = vg.Points(1.5)
		switch {
		case s.dotted:
			ln.LineStyle.Dashes = []vg.Length{vg.Points(1.5), vg.Points(2.5)}
		case s.dashes:
			ln.LineStyle.Dashes = []vg.Length{vg.Points(5), vg.Points(3)}
		}
		p.Add(ln)
		p.Legend.Add(s.name, ln)
	}
	if c.logX {
		// A log axis needs a positive range that is not a single point.
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, s := range c.series {
			for _, x := range s.xs {
				if x > 0 {
					lo, hi = math.Min(lo, x), math.Max(hi, x)
				}
			}
		}
		if lo > hi {
			lo, hi = 1, 10
		}
		p.X.Min, p.X.Max = lo/1.2, hi*1.2
	}
	if len(c.xTicks) > 0 {
		var ticks []plot.Tick
		for _, x := range c.xTicks {
			ticks = append(ticks, plot.Tick{Value: x, Label: strconv.FormatFloat(x, 'g', 4, 64)})
		}
		p.X.Tick.Marker = plot.ConstantTicks(ticks)
	}
	if err := p.Save(8*vg.Inch, 5.5*vg.Inch, path); err != nil {
		return fmt.Errorf("netsim: plot %s: %w", path, err)
	}
	return nil
}

// colored sets the palette colour of every series in ss.
func colored(color int, ss ...series) []series {
	for i := range ss {
		ss[i].color = color + 1
	}
	return ss
}

// errBars adapts error bars to plotter.YErrorer.
type errBars struct {
	xys       plotter.XYs
	low, high []float64
}

func (e errBars) Len() int                    { return len(e.xys) }
func (e errBars) XY(i int) (float64, float64) { return e.xys[i].X, e.xys[i].Y }
func (e errBars) YError(i int) (float64, float64) {
	return math.Max(e.low[i], 0), math.Max(e.high[i], 0)
}

// barGroup is one set of bars of a grouped bar chart.
type barGroup struct {
	name   string
	values []float64
}

// saveBars renders a grouped bar chart: one bar per group at each category.
func saveBars(path, title, xlabel, ylabel string, categories []string, groups []barGroup) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = xlabel
	p.Y.Label.Text = ylabel
	p.Legend.Top = true
	p.Add(plotter.NewGrid())
	w := vg.Points(float64(min(20, 120/max(len(groups), 1))))
	for i, g := range groups {
		vals := make(plotter.Values, len(categories))
		copy(vals, g.values)
		b, err := plotter.NewBarChart(vals, w)
		if err != nil {
			return err
		}
		b.Color = palette[i%len(palette)]
		b.LineStyle.Width = 0
		b.Offset = w * vg.Length(float64(i)-float64(len(groups)-1)/2)
		p.Add(b)
		p.Legend.Add(g.name, b)
	}
	p.NominalX(categories...)
	if err := p.Save(8*vg.Inch, 5.5*vg.Inch, path); err != nil {
		return fmt.Errorf("netsim: plot %s: %w", path, err)
	}
	return nil
}

// PlotRunsRTT reads the results.json of `netsim run` directories and plots
// lookup latency in RPC round trips (p50 and p99) against N, one pair of
// curves per lookup kind and handshake cost, to path.
func PlotRunsRTT(path string, dirs []string) error {
	return plotRuns(path, dirs, "Lookup latency in RPC round trips against network size (netsim run, 10 ms links)",
		"lookup latency / RPC round trip", "p99", func(r *Results) (string, float64, float64) {
			name := r.Lookup + " lookup"
			if r.Lookup == "" {
				name = "full lookup"
			}
			return name, r.LatencyRTT.P50, r.LatencyRTT.P99
		})
}

// PlotRunsAnnounceRTT is PlotRunsRTT for the announces: p50 and p90, one
// pair of curves per announce kind and handshake cost.
func PlotRunsAnnounceRTT(path string, dirs []string) error {
	return plotRuns(path, dirs, "Announce latency in RPC round trips against network size (netsim run, 10 ms links)",
		"announce latency / RPC round trip", "p90", func(r *Results) (string, float64, float64) {
			name := r.Announce + " announce"
			if r.Announce == "" {
				name = "full announce"
			}
			return name, r.AnnounceRTT.P50, r.AnnounceRTT.P90
		})
}

// plotRuns plots, for each run, the two latencies of() picks against N,
// in curves named by of() and the handshake cost.
func plotRuns(path string, dirs []string, title, ylabel, high string, of func(*Results) (string, float64, float64)) error {
	type curve struct {
		xs, p50, hi []float64
	}
	curves := make(map[string]*curve)
	var names []string
	var ticks []float64
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "results.json"))
		if err != nil {
			return err
		}
		var r Results
		if err := json.Unmarshal(b, &r); err != nil {
			return fmt.Errorf("netsim: %s: %w", d, err)
		}
		name, p50, hi := of(&r)
		if r.HandshakeRTTs > 0 {
			name += fmt.Sprintf(", %d-RTT handshakes", r.HandshakeRTTs)
		}
		c := curves[name]
		if c == nil {
			c = &curve{}
			curves[name] = c
			names = append(names, name)
		}
		c.xs = append(c.xs, float64(r.Nodes))
		c.p50 = append(c.p50, p50)
		c.hi = append(c.hi, hi)
		if !slices.Contains(ticks, float64(r.Nodes)) {
			ticks = append(ticks, float64(r.Nodes))
		}
	}
	slices.Sort(names)
	slices.Sort(ticks)
	ch := chart{
		title:  title,
		xlabel: "N, nodes (log scale)", ylabel: ylabel, logX: true, legendTop: true, legendLeft: true, xTicks: ticks,
	}
	for i, name := range names {
		c := curves[name]
		order := make([]int, len(c.xs))
		for j := range order {
			order[j] = j
		}
		slices.SortFunc(order, func(a, b int) int { return cmp.Compare(c.xs[a], c.xs[b]) })
		pick := func(v []float64) []float64 {
			out := make([]float64, len(order))
			for j, k := range order {
				out[j] = v[k]
			}
			return out
		}
		xs := pick(c.xs)
		ch.series = append(ch.series,
			series{name: name + ", p50", xs: xs, ys: pick(c.p50), points: true, color: i + 1},
			series{name: name + ", " + high + " (dashed)", xs: xs, ys: pick(c.hi), dashes: true, color: i + 1})
	}
	return ch.save(path)
}
