// Package netsim launches networks of real kadtracker nodes and measures
// them against the reliability model of "Tracker designs and reliability"
// (R_DHT = (1-(1-Rp)^m)^k, R_server = 1-(1-Rs)^n) and under the torrent
// evolution workload of Guo et al.
//
// In process, New builds N nodes of the node package on go-libp2p's mocknet,
// with seeded identities, per-link latency and lazily made links; Fail and
// Repair switch nodes off and on. Uniform is the model's workload: announce,
// fail each node with probability 1-Rp, look up, compare with the model.
// Evolution and Churn run in compressed simulated time on a SimClock.
// RunExperiment sweeps them and writes CSV, JSON and plots.
//
// Across processes, StartCluster runs `kadtracker run` daemons on loopback
// or in network namespaces of their own, and ProcessRun drives them through
// their local APIs while killing and restarting them.
//
// RunLoad drives one running daemon's HTTP and UDP fronts and its record
// protocol at a set rate and reports throughput, latency and memory.
//
// These are the engines of `kadtracker netsim` (RunCommand,
// ExperimentCommand, ProcessCommand, from a Command of the flags' values)
// and `kadtracker load` (RunLoad): the command keeps only its flags and
// its printing.
//
// docs/netsim.md has the results and the commands that made them.
package netsim
