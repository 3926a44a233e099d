package netsim

import (
	"math"
	"slices"
	"time"
)

// The reliability model of "Tracker designs and reliability" (section 4.1).
// A lookup in a DHT tracker passes k units in series, each a parallel set of
// m replicas; a server tracker is one parallel set of n servers.

// RDHT is the series model R_DHT = (1-(1-Rp)^m)^k: the probability that a
// lookup over k hops succeeds when each node is up with probability rp and
// every hop, like the record, has m alternatives. k may be fractional (a
// mean path length).
func RDHT(rp float64, m int, k float64) float64 {
	return math.Pow(ReplicaBound(rp, m), k)
}

// RServer is R_server = 1-(1-Rs)^n: n tracker servers in parallel, each up
// with probability rs.
func RServer(rs float64, n int) float64 {
	return 1 - math.Pow(1-rs, float64(n))
}

// ReplicaBound is 1-(1-Rp)^m, the chance that at least one of a record's m
// storing nodes is up: no lookup can do better, and one whose walk always
// reaches the live storing nodes does exactly this well. It is R_DHT with
// k = 1, and R_server with n = m servers as reliable as peers.
func ReplicaBound(rp float64, m int) float64 {
	return RServer(rp, m)
}

// Lifespan is the expected torrent lifespan of Guo et al. (section 3.2),
// τ·ln(λ0/γ): the time after which peers arrive more slowly than seeds leave.
// It is zero when λ0 <= γ.
func Lifespan(lambda0, tau, gamma float64) float64 {
	if lambda0 <= gamma || gamma <= 0 {
		return 0
	}
	return tau * math.Log(lambda0/gamma)
}

// Wilson is the Wilson score interval for a proportion: successes of n at
// confidence z (1.96 for 95 %, 3.29 for 99.9 %).
func Wilson(successes, n int, z float64) (lo, hi float64) {
	if n == 0 {
		return 0, 1
	}
	p := float64(successes) / float64(n)
	nf := float64(n)
	den := 1 + z*z/nf
	centre := (p + z*z/(2*nf)) / den
	half := z * math.Sqrt(p*(1-p)/nf+z*z/(4*nf*nf)) / den
	return max(0, centre-half), min(1, centre+half)
}

// Percentiles summarise a sample.
type Percentiles struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P95  float64 `json:"p95"`
	P99  float64 `json:"p99"`
	Mean float64 `json:"mean"`
	Max  float64 `json:"max"`
}

// percentiles of xs by the nearest-rank method; zero for an empty sample.
func percentiles(xs []float64) Percentiles {
	if len(xs) == 0 {
		return Percentiles{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	rank := func(q float64) float64 {
		i := int(math.Ceil(q*float64(len(s)))) - 1
		return s[min(max(i, 0), len(s)-1)]
	}
	sum := 0.0
	for _, x := range s {
		sum += x
	}
	return Percentiles{P50: rank(0.50), P90: rank(0.90), P95: rank(0.95), P99: rank(0.99), Mean: sum / float64(len(s)), Max: s[len(s)-1]}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// scale divides every field of p by d (for latency in round trips).
func (p Percentiles) scale(d float64) Percentiles {
	if d <= 0 {
		return Percentiles{}
	}
	return Percentiles{P50: p.P50 / d, P90: p.P90 / d, P95: p.P95 / d, P99: p.P99 / d, Mean: p.Mean / d, Max: p.Max / d}
}
