package main

import "flag"

// metricsFlags is `kadtracker run --metrics ADDR`.
type metricsFlags struct{ addr string }

func (f *metricsFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.addr, "metrics", "", "`ADDR` (such as 127.0.0.1:9090) to serve Prometheus metrics at /metrics and a status page at /; empty: off")
}
