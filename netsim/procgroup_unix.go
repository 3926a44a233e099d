//go:build unix

package netsim

import (
	"os/exec"
	"syscall"
)

// ownGroup starts cmd in a process group of its own: a Ctrl-C at the
// terminal reaches netsim, which stops the daemons in order.
func ownGroup(cmd *exec.Cmd) { cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} }

// signalGroup sends sig to the process group ownGroup started: with
// --netns, `ip netns exec` has become the daemon.
func signalGroup(pid int, sig syscall.Signal) { _ = syscall.Kill(-pid, sig) }
