package netsim

import (
	"math"
	"math/rand/v2"
	"time"
)

// The geographic latency model (Latency{Kind: "geo"}, --latency-model geo).
// Each node sits in a city of a region, drawn from the seed and its index
// with the regions' shares of nodes. A link's one-way latency is the
// distance between the two cities (the same city: a few ms; two cities of
// one region: drawn per city pair; two regions: the regions' base latency
// plus each city's distance from its region's hub), plus each end's access
// link, times a jitter drawn per link (normal, 5 % standard deviation). The
// numbers are round figures of measured Internet round trips (e.g. WonderNetwork's
// ping tables: New York-London about 70 ms, London-Tokyo about 230 ms,
// within a continent 10 to 50 ms), halved into one-way delays.
type geoRegion struct {
	name   string
	share  float64 // of the nodes
	cities int
}

var geoRegions = []geoRegion{
	{"north-america", 0.30, 6},
	{"europe", 0.30, 6},
	{"asia", 0.22, 6},
	{"south-america", 0.10, 3},
	{"oceania", 0.08, 2},
}

// geoBase is the one-way latency between the hubs of two regions, in ms.
var geoBase = [5][5]float64{
	//  NA   EU   AS   SA   OC
	{0, 38, 75, 60, 80},    // north-america
	{38, 0, 115, 100, 140}, // europe
	{75, 115, 0, 150, 60},  // asia
	{60, 100, 150, 0, 150}, // south-america
	{80, 140, 60, 150, 0},  // oceania
}

const (
	geoCityMin, geoCityMax     = 0.5, 2.5 // ms, one-way within a city
	geoRegionMin, geoRegionMax = 5, 25    // ms, one-way between two cities of a region
	geoHubMax                  = 12       // ms, a city's distance from its region's hub
	geoAccessMedian            = 1.5      // ms, one-way access link, lognormal
	geoAccessSigma             = 0.6
	geoJitter                  = 0.05 // standard deviation of the per-link factor
)

// GeoPlace is where node i sits in a network seeded with seed: its region
// and its city within the region.
type GeoPlace struct {
	Region, City int
}

// GeoPlaceOf places node i.
func GeoPlaceOf(seed uint64, i int) GeoPlace {
	rng := rand.New(rand.NewPCG(seed^0x67656f_706c6163, uint64(i)))
	x, r := rng.Float64(), 0
	for r < len(geoRegions)-1 && x >= geoRegions[r].share {
		x -= geoRegions[r].share
		r++
	}
	return GeoPlace{Region: r, City: rng.IntN(geoRegions[r].cities)}
}

// RegionName names a region of GeoPlace.
func RegionName(r int) string { return geoRegions[r].name }

// geoDraw is a uniform draw in [lo, hi) fixed by the seed and the labels.
func geoDraw(seed uint64, lo, hi float64, labels ...uint64) float64 {
	h := seed ^ 0x67656f
	for _, l := range labels {
		h = h*0x9e3779b97f4a7c15 + l + 1
	}
	rng := rand.New(rand.NewPCG(h, 0x6472617700))
	return lo + rng.Float64()*(hi-lo)
}

// geoAccess is node i's access link, one-way, in ms.
func geoAccess(seed uint64, i int) float64 {
	rng := rand.New(rand.NewPCG(seed^0x616363657373, uint64(i)))
	return min(geoAccessMedian*math.Exp(rng.NormFloat64()*geoAccessSigma), 20)
}

// geoCities is the one-way latency between two places, access links
// excluded, in ms.
func geoCities(seed uint64, a, b GeoPlace) float64 {
	switch {
	case a == b:
		return geoDraw(seed, geoCityMin, geoCityMax, 1, uint64(a.Region), uint64(a.City))
	case a.Region == b.Region:
		lo, hi := min(a.City, b.City), max(a.City, b.City)
		return geoDraw(seed, geoRegionMin, geoRegionMax, 2, uint64(a.Region), uint64(lo), uint64(hi))
	}
	hub := func(p GeoPlace) float64 { return geoDraw(seed, 0, geoHubMax, 3, uint64(p.Region), uint64(p.City)) }
	return geoBase[a.Region][b.Region] + hub(a) + hub(b)
}

// geoLink is the one-way latency of the link between nodes i < j.
func geoLink(seed uint64, i, j int) time.Duration {
	if i == j {
		return 0
	}
	ms := geoCities(seed, GeoPlaceOf(seed, i), GeoPlaceOf(seed, j)) + geoAccess(seed, i) + geoAccess(seed, j)
	rng := rand.New(rand.NewPCG(seed^0x6a6974746572, uint64(i)<<32|uint64(j)))
	ms *= max(0.5, 1+rng.NormFloat64()*geoJitter)
	return time.Duration(ms * float64(time.Millisecond))
}

// geoMean is the model's mean one-way latency, over a fixed sample of
// node pairs of a large network.
func geoMean() time.Duration {
	rng := rand.New(rand.NewPCG(1, 2))
	var sum time.Duration
	const pairs = 4000
	for range pairs {
		i, j := rng.IntN(10000), rng.IntN(10000)
		sum += geoLink(1, min(i, j), max(i, j))
	}
	return sum / pairs
}
