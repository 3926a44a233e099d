//go:build !linux

package setup

import (
	"errors"
	"io"
	"os"
)

// IsTerminal reports false: prompting is implemented on Linux only; give
// the password in the environment elsewhere.
func IsTerminal(*os.File) bool { return false }

// ReadPassword fails: see IsTerminal.
func ReadPassword(*os.File, io.Writer, string) (string, error) {
	return "", errors.New("setup: no password prompt on this system: set KADTRACKER_SETUP_PASSWORD")
}
