package netsim

import (
	"bufio"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
)

// Memory is what a network costs in memory.
type Memory struct {
	Nodes int `json:"nodes"`
	// PerNode is the growth of Go heap and stacks since the baseline,
	// divided by the nodes: what one more node costs.
	PerNode    uint64 `json:"per_node_bytes"`
	HeapInuse  uint64 `json:"heap_inuse_bytes"`
	StackInuse uint64 `json:"stack_inuse_bytes"`
	Sys        uint64 `json:"go_sys_bytes"`
	// RSS and PeakRSS are the process's resident set now and at its peak
	// (Linux only; zero elsewhere).
	RSS        uint64 `json:"rss_bytes"`
	PeakRSS    uint64 `json:"peak_rss_bytes"`
	Goroutines int    `json:"goroutines"`
	Conns      int    `json:"conns"`
	Links      int    `json:"links"`
}

// MemBaseline collects garbage and reads the memory statistics to measure
// a network against; take it before New.
func MemBaseline() runtime.MemStats {
	var m runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m
}

// Memory measures the process now against base.
func (nw *Network) Memory(base runtime.MemStats) Memory {
	now := MemBaseline()
	mem := Memory{
		Nodes:      nw.Size(),
		HeapInuse:  now.HeapInuse,
		StackInuse: now.StackInuse,
		Sys:        now.Sys,
		Goroutines: runtime.NumGoroutine(),
		Conns:      nw.Conns(),
		Links:      nw.Links(),
	}
	grown := int64(now.HeapInuse+now.StackInuse) - int64(base.HeapInuse+base.StackInuse)
	if grown > 0 && nw.Size() > 0 {
		mem.PerNode = uint64(grown) / uint64(nw.Size())
	}
	mem.RSS, mem.PeakRSS = procRSS()
	return mem
}

// procRSS reads VmRSS and VmHWM from /proc/self/status.
func procRSS() (rss, peak uint64) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fields := strings.Fields(val)
		if len(fields) != 2 || fields[1] != "kB" {
			continue
		}
		kb, err := strconv.ParseUint(fields[0], 10, 64)
		if err != nil {
			continue
		}
		switch name {
		case "VmRSS":
			rss = kb << 10
		case "VmHWM":
			peak = kb << 10
		}
	}
	return rss, peak
}

// quietGC collects garbage once and then holds the collector off until the
// returned restore is called, or until the process has grown by a quarter
// (at least 1 GiB) past its size now, when the soft memory limit makes it
// collect anyway. The whole network lives in one process: a cycle marks
// every node's heap (gigabytes at N=300 and up) on the machine's cores and
// its assists stall whatever goroutine allocates, so timed lookups stall
// for tens of milliseconds where a daemon, whose heap is its own few
// megabytes, would not. The measured phases run with it quiet.
func quietGC() (restore func()) {
	var m runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m)
	held := m.Sys - m.HeapReleased
	limit := min(debug.SetMemoryLimit(-1), int64(held+max(held/4, 1<<30)))
	oldLimit := debug.SetMemoryLimit(limit)
	oldPercent := debug.SetGCPercent(-1)
	return func() {
		debug.SetGCPercent(oldPercent)
		debug.SetMemoryLimit(oldLimit)
	}
}
