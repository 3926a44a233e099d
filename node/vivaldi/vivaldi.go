// Package vivaldi keeps a node's network coordinate: Vivaldi (Dabek, Cox,
// Kaashoek, Morris, SIGCOMM 2004) with a height and the adaptive
// timestep, after the constants of Serf's and Consul's implementation
// (hashicorp/serf coordinate). A node predicts its round trip to another
// from their two coordinates without measuring it.
//
// Each sample is a round trip this node measured to a remote and the
// coordinate the remote said it has. Both are the remote's to choose: a
// remote can lie about its coordinate, its error, or delay its answer. So
// Update refuses coordinates that are not finite or lie outside any
// plausible Internet (Check), round trips beyond MaxRTT, and samples that
// disagree with this node's prediction by more than MaxWrongness once its
// own coordinate has settled (what a lie of any size looks like); it
// floors the error a remote claims (MinRemoteError), so no remote can
// claim the full weight of a sample; it takes a low percentile of the last
// few round trips to each remote (FilterSize), so delayed answers (a busy
// remote, a busy scheduler) move nothing. Every refusal is counted (Stats).
//
// The package is pure: no I/O, no clock, no goroutines. Units are seconds.
package vivaldi

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"time"
)

// Dims is the number of Euclidean dimensions of a coordinate; the height
// comes on top (Dabek et al. find 2 to 3 dimensions plus height fit
// Internet latencies about as well as many more).
const Dims = 3

// Bounds on what a remote may claim, in seconds. No round trip on the
// Internet takes 10 s; a coordinate that far out predicts nothing.
const (
	MaxComponent = 10.0 // |Vec[i]|
	MaxHeight    = 10.0
	MaxError     = 10.0 // an error beyond ErrorMax is clamped, beyond this refused
	// MaxRTT: a longer sample is a stall, not a distance.
	MaxRTT = 10 * time.Second
	// zeroThreshold stands in for zero in divisions (Serf's).
	zeroThreshold = 1e-6
)

// Coord is a Vivaldi coordinate: a point, a height (the access link's
// share of every round trip) and the node's own estimate of its relative
// error. The predicted round trip between two coordinates is the distance
// of their points plus both heights.
type Coord struct {
	Vec    [Dims]float64
	Height float64
	Error  float64
}

// ErrBadCoord is what Check returns for a coordinate no honest node has.
var ErrBadCoord = errors.New("vivaldi: coordinate out of range")

// Check reports whether c is finite and within the bounds above.
func (c Coord) Check() error {
	for i, v := range c.Vec {
		if !finite(v) || math.Abs(v) > MaxComponent {
			return fmt.Errorf("%w: component %d is %g", ErrBadCoord, i, v)
		}
	}
	if !finite(c.Height) || c.Height < 0 || c.Height > MaxHeight {
		return fmt.Errorf("%w: height %g", ErrBadCoord, c.Height)
	}
	if !finite(c.Error) || c.Error < 0 || c.Error > MaxError {
		return fmt.Errorf("%w: error %g", ErrBadCoord, c.Error)
	}
	return nil
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// Distance is the round trip c predicts to o, in seconds.
func (c Coord) Distance(o Coord) float64 {
	return magnitude(diff(c.Vec, o.Vec)) + c.Height + o.Height
}

// RTT is Distance as a duration.
func (c Coord) RTT(o Coord) time.Duration {
	return time.Duration(c.Distance(o) * float64(time.Second))
}

// Config holds Vivaldi's constants. Start from DefaultConfig.
type Config struct {
	// CE and CC are the error and coordinate gains of the adaptive
	// timestep (Dabek et al.'s ce and cc).
	CE, CC float64
	// ErrorMax is the error a new coordinate starts at, and the most it
	// grows to.
	ErrorMax float64
	// HeightMin is the least height, in seconds.
	HeightMin float64
	// GravityRho pulls coordinates towards the origin, harder the further
	// out they drift, so the whole system does not wander off (seconds).
	GravityRho float64
	// FilterSize is how many recent round trips to one remote the filter
	// keeps; a sample's round trip is their 25th percentile (the moving
	// percentile filter of Ledlie, Gardner and Seltzer, NSDI 2007: queuing
	// only ever adds to a round trip, so the low end is the distance).
	FilterSize int
	// MaxRemotes bounds the remotes whose round trips are remembered.
	MaxRemotes int
	// MinRemoteError floors the error a remote claims: a remote claiming
	// to be certain would otherwise move this coordinate by the whole step.
	MinRemoteError float64
	// MaxWrongness refuses a sample whose round trip and prediction differ
	// by more than this many times the round trip, once this coordinate's
	// own error is below SettledError. 0 turns the check off.
	MaxWrongness float64
	SettledError float64
}

// DefaultConfig has Serf's constants (cc = ce = 0.25, error 1.5 at start,
// height at least 10 µs, gravity rho 150), Ledlie et al.'s filter of 4,
// and this package's bounds on what remotes claim.
func DefaultConfig() Config {
	return Config{
		CE:             0.25,
		CC:             0.25,
		ErrorMax:       1.5,
		HeightMin:      10e-6,
		GravityRho:     150,
		FilterSize:     4,
		MaxRemotes:     1024,
		MinRemoteError: 0.05,
		MaxWrongness:   8,
		SettledError:   0.5,
	}
}

// Validate reports every problem with c.
func (c Config) Validate() error {
	var errs []error
	if !(c.CE > 0 && c.CE <= 1) || !(c.CC > 0 && c.CC <= 1) {
		errs = append(errs, errors.New("vivaldi: ce and cc must be in (0, 1]"))
	}
	if !(c.ErrorMax > 0 && c.ErrorMax <= MaxError) {
		errs = append(errs, fmt.Errorf("vivaldi: error max %g out of (0, %g]", c.ErrorMax, MaxError))
	}
	if !(c.HeightMin > 0 && c.HeightMin < MaxHeight) || !(c.GravityRho > 0) {
		errs = append(errs, errors.New("vivaldi: height min and gravity rho must be positive"))
	}
	if c.FilterSize < 1 || c.MaxRemotes < 1 {
		errs = append(errs, errors.New("vivaldi: filter size and max remotes must be positive"))
	}
	if c.MinRemoteError < 0 || c.MinRemoteError > c.ErrorMax || c.MaxWrongness < 0 || c.SettledError < 0 {
		errs = append(errs, errors.New("vivaldi: remote error floor, max wrongness or settled error out of range"))
	}
	return errors.Join(errs...)
}

// Refusal reasons, as Stats counts them.
const (
	RefusedCoord   = "coord"      // the remote's coordinate failed Check
	RefusedRTT     = "rtt"        // negative, or above MaxRTT
	RefusedOutlier = "outlier"    // beyond MaxWrongness of a settled prediction
	RefusedSelf    = "self_coord" // the update would leave this coordinate invalid
)

// Stats count what Update did.
type Stats struct {
	Samples int64            // samples applied
	Refused map[string]int64 // by reason
}

// Client is one node's coordinate. Its methods are safe for concurrent use.
type Client struct {
	cfg Config

	mu      sync.Mutex
	coord   Coord
	rng     *rand.Rand
	recent  map[string][]float64 // remote -> its last round trips, seconds
	order   []string             // remotes in the order first seen, for eviction
	samples int64
	refused map[string]int64
}

// New returns a client at the origin with error cfg.ErrorMax; seed drives
// the random direction two coinciding coordinates part in.
func New(cfg Config, seed uint64) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Client{
		cfg:     cfg,
		coord:   Coord{Height: cfg.HeightMin, Error: cfg.ErrorMax},
		rng:     rand.New(rand.NewPCG(seed, 0x7669_7661_6c64_69)),
		recent:  make(map[string][]float64),
		refused: make(map[string]int64),
	}, nil
}

// Coord is the current coordinate.
func (c *Client) Coord() Coord {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.coord
}

// Stats is a snapshot of the counters.
func (c *Client) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := Stats{Samples: c.samples, Refused: make(map[string]int64, len(c.refused))}
	for k, v := range c.refused {
		s.Refused[k] = v
	}
	return s
}

// Update takes one sample: a round trip rtt to remote, which says it is at
// other. It returns the reason it refused the sample, or "".
func (c *Client) Update(remote string, other Coord, rtt time.Duration) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := other.Check(); err != nil {
		return c.refuse(RefusedCoord)
	}
	if rtt < 0 || rtt > MaxRTT {
		return c.refuse(RefusedRTT)
	}
	other.Error = min(max(other.Error, c.cfg.MinRemoteError), c.cfg.ErrorMax)
	other.Height = max(other.Height, c.cfg.HeightMin)
	sec := c.filter(remote, max(rtt.Seconds(), zeroThreshold))
	if c.cfg.MaxWrongness > 0 && c.coord.Error < c.cfg.SettledError {
		if math.Abs(c.coord.Distance(other)-sec)/sec > c.cfg.MaxWrongness {
			return c.refuse(RefusedOutlier)
		}
	}
	next := c.step(c.coord, other, sec)
	if next.Check() != nil {
		// Cannot happen with checked inputs; start over rather than keep it.
		c.coord = Coord{Height: c.cfg.HeightMin, Error: c.cfg.ErrorMax}
		return c.refuse(RefusedSelf)
	}
	c.coord = next
	c.samples++
	return ""
}

func (c *Client) refuse(why string) string {
	c.refused[why]++
	return why
}

// filter records sec for remote and returns the 25th percentile of its
// recent round trips.
func (c *Client) filter(remote string, sec float64) float64 {
	r, known := c.recent[remote]
	if !known {
		if len(c.order) >= c.cfg.MaxRemotes {
			delete(c.recent, c.order[0])
			c.order = c.order[1:]
		}
		c.order = append(c.order, remote)
	}
	r = append(r, sec)
	if len(r) > c.cfg.FilterSize {
		r = r[len(r)-c.cfg.FilterSize:]
	}
	c.recent[remote] = r
	s := slices.Clone(r)
	slices.Sort(s)
	return s[len(s)/4]
}

// step is one Vivaldi update of own towards other at measured rtt, then
// gravity (Serf's updateVivaldi and updateGravity).
func (c *Client) step(own, other Coord, rtt float64) Coord {
	dist := own.Distance(other)
	wrongness := math.Abs(dist-rtt) / rtt
	total := max(own.Error+other.Error, zeroThreshold)
	weight := own.Error / total
	own.Error = min(c.cfg.CE*weight*wrongness+own.Error*(1-c.cfg.CE*weight), c.cfg.ErrorMax)
	own = c.applyForce(own, other, c.cfg.CC*weight*(rtt-dist))
	origin := Coord{Height: c.cfg.HeightMin}
	d := own.Distance(origin)
	return c.applyForce(own, origin, -math.Pow(d/c.cfg.GravityRho, 2))
}

// applyForce moves own by force along the line from other (away when
// positive), and its height in proportion.
func (c *Client) applyForce(own, other Coord, force float64) Coord {
	unit, mag := c.unitVectorAt(own.Vec, other.Vec)
	for i := range own.Vec {
		own.Vec[i] += unit[i] * force
	}
	if mag > zeroThreshold {
		own.Height = (own.Height+other.Height)*force/mag + own.Height
	}
	own.Height = max(own.Height, c.cfg.HeightMin)
	return own
}

// unitVectorAt is the unit vector from b to a and their distance; a random
// direction when they coincide.
func (c *Client) unitVectorAt(a, b [Dims]float64) ([Dims]float64, float64) {
	d := diff(a, b)
	if mag := magnitude(d); mag > zeroThreshold {
		for i := range d {
			d[i] /= mag
		}
		return d, mag
	}
	for {
		var r [Dims]float64
		for i := range r {
			r[i] = c.rng.Float64() - 0.5
		}
		if mag := magnitude(r); mag > zeroThreshold {
			for i := range r {
				r[i] /= mag
			}
			return r, 0
		}
	}
}

func diff(a, b [Dims]float64) [Dims]float64 {
	var d [Dims]float64
	for i := range d {
		d[i] = a[i] - b[i]
	}
	return d
}

func magnitude(v [Dims]float64) float64 {
	s := 0.0
	for _, x := range v {
		s += x * x
	}
	return math.Sqrt(s)
}
