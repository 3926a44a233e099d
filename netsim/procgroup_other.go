//go:build !unix

package netsim

import (
	"os"
	"os/exec"
	"syscall"
)

// ownGroup does nothing where there are no process groups (Windows):
// netsim's process mode and its namespaces are for Linux; the package
// builds elsewhere so the one binary does.
func ownGroup(*exec.Cmd) {}

// signalGroup ends the process: Windows has no signals to send it.
func signalGroup(pid int, _ syscall.Signal) {
	if p, err := os.FindProcess(pid); err == nil {
		_ = p.Kill()
	}
}
