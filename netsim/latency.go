package netsim

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

// Latency is the one-way delay of the link between two nodes. Each link gets
// one draw, made from the network seed and the pair of node indexes, so the
// same seed gives every link the same latency whatever order links are made in.
type Latency struct {
	// Kind is fixed, uniform, normal, lognormal or geo (geo.go: latency
	// from where the two nodes are placed; A and B unused).
	Kind string
	// A and B are the distribution's parameters:
	//   fixed      A
	//   uniform    from A to B
	//   normal     mean A, standard deviation B, clamped at zero
	//   lognormal  median A, sigma B (of the underlying normal)
	A, B time.Duration
}

// FixedLatency is the same delay on every link.
func FixedLatency(d time.Duration) Latency { return Latency{Kind: "fixed", A: d} }

// GeoLatency is the geographic model (geo.go).
func GeoLatency() Latency { return Latency{Kind: "geo"} }

// ParseLatency reads a latency model: "geo" (geo.go), "10ms" (fixed), "uniform:5ms,50ms",
// "normal:20ms,5ms" or "lognormal:20ms,0.5" (median, sigma).
func ParseLatency(s string) (Latency, error) {
	if s == "geo" {
		return GeoLatency(), nil
	}
	kind, args, found := strings.Cut(s, ":")
	if !found {
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 {
			return Latency{}, fmt.Errorf("netsim: latency %q: want a duration or KIND:A,B", s)
		}
		return FixedLatency(d), nil
	}
	a, b, ok := strings.Cut(args, ",")
	if !ok {
		return Latency{}, fmt.Errorf("netsim: latency %q: %s needs two parameters", s, kind)
	}
	l := Latency{Kind: kind}
	var err error
	if l.A, err = time.ParseDuration(a); err != nil || l.A < 0 {
		return Latency{}, fmt.Errorf("netsim: latency %q: bad first parameter", s)
	}
	switch kind {
	case "uniform", "normal":
		if l.B, err = time.ParseDuration(b); err != nil || l.B < 0 {
			return Latency{}, fmt.Errorf("netsim: latency %q: bad second parameter", s)
		}
		if kind == "uniform" && l.B < l.A {
			return Latency{}, fmt.Errorf("netsim: latency %q: upper bound below lower bound", s)
		}
	case "lognormal":
		sigma, err := strconv.ParseFloat(b, 64)
		if err != nil || sigma < 0 || sigma > 5 {
			return Latency{}, fmt.Errorf("netsim: latency %q: sigma must be a number in 0..5", s)
		}
		// Kept in B as nanoseconds per unit of sigma, so Latency stays comparable.
		l.B = time.Duration(sigma * 1e9)
	default:
		return Latency{}, fmt.Errorf("netsim: latency %q: unknown kind %q (fixed, uniform, normal, lognormal)", s, kind)
	}
	return l, nil
}

// String is the form ParseLatency reads.
func (l Latency) String() string {
	switch l.Kind {
	case "", "fixed":
		return l.A.String()
	case "lognormal":
		return fmt.Sprintf("lognormal:%s,%g", l.A, float64(l.B)/1e9)
	case "geo":
		return "geo"
	}
	return fmt.Sprintf("%s:%s,%s", l.Kind, l.A, l.B)
}

// Validate reports a model Link cannot draw from.
func (l Latency) Validate() error {
	switch l.Kind {
	case "", "fixed", "uniform", "normal", "lognormal", "geo":
	default:
		return fmt.Errorf("netsim: unknown latency kind %q", l.Kind)
	}
	if l.A < 0 || l.B < 0 {
		return errors.New("netsim: negative latency parameter")
	}
	return nil
}

// maxLinkLatency caps a draw from a long-tailed model.
const maxLinkLatency = 10 * time.Second

// Link is the latency of the link between nodes i and j (in either order)
// in a network seeded with seed.
func (l Latency) Link(seed uint64, i, j int) time.Duration {
	if i > j {
		i, j = j, i
	}
	rng := rand.New(rand.NewPCG(seed^0x6c61_7465_6e63_7900, uint64(i)<<32|uint64(j)))
	var d float64
	switch l.Kind {
	case "", "fixed":
		return l.A
	case "geo":
		return geoLink(seed, i, j)
	case "uniform":
		d = float64(l.A) + rng.Float64()*float64(l.B-l.A)
	case "normal":
		d = float64(l.A) + rng.NormFloat64()*float64(l.B)
	case "lognormal":
		d = float64(l.A) * math.Exp(rng.NormFloat64()*float64(l.B)/1e9)
	}
	return time.Duration(min(max(d, 0), float64(maxLinkLatency)))
}

// Mean is the model's mean one-way latency.
func (l Latency) Mean() time.Duration {
	switch l.Kind {
	case "uniform":
		return (l.A + l.B) / 2
	case "geo":
		return geoMean()
	case "lognormal":
		s := float64(l.B) / 1e9
		return time.Duration(float64(l.A) * math.Exp(s*s/2))
	}
	return l.A
}
