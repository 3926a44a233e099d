//go:build race

package main

// raceEnabled says the tests run with the race detector, so the binary the
// end-to-end tests build uses it too.
const raceEnabled = true
