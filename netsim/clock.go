package netsim

import (
	"context"
	"time"
)

// SimClock runs simulated time faster than real time: Speed simulated
// seconds pass per real second. Give Now to every node as Config.Clock, so
// record TTLs and expiry follow simulated time.
type SimClock struct {
	origin    time.Time // simulated time at realStart
	realStart time.Time
	speed     float64
}

// NewSimClock starts a clock at origin that runs speed times faster than
// real time.
func NewSimClock(origin time.Time, speed float64) *SimClock {
	return &SimClock{origin: origin, realStart: time.Now(), speed: speed}
}

// Now is the simulated time.
func (c *SimClock) Now() time.Time {
	return c.origin.Add(time.Duration(float64(time.Since(c.realStart)) * c.speed))
}

// Real is how long a simulated duration takes in real time.
func (c *SimClock) Real(d time.Duration) time.Duration {
	return time.Duration(float64(d) / c.speed)
}

// SleepUntil waits until simulated time t, or ctx ends.
func (c *SimClock) SleepUntil(ctx context.Context, t time.Time) error {
	d := c.Real(t.Sub(c.Now()))
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
