package localapi

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// ErrDaemonRunning means a live daemon already answers on the socket.
var ErrDaemonRunning = errors.New("localapi: a daemon is already listening")

// Listen opens the unix socket at path for Serve. It creates the parent
// directory (mode 0700) if needed and makes the socket mode 0600. A socket
// file left by a daemon that died is removed; Listen refuses, with
// ErrDaemonRunning, when a daemon answers there, and never removes a file
// that is not a socket.
func Listen(path string) (net.Listener, error) {
	if path == "" {
		return nil, errors.New("localapi: no socket path")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("localapi: %w", err)
	}
	if err := removeStale(path); err != nil {
		return nil, err
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		if len(path) > 100 {
			// sun_path holds 104 (BSD) to 108 (Linux) bytes.
			return nil, fmt.Errorf("localapi: %w (the socket path is %d bytes, too long for a unix socket: choose a shorter one)", err, len(path))
		}
		return nil, fmt.Errorf("localapi: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("localapi: %w", err)
	}
	return ln, nil
}

// removeStale removes the socket at path if nothing answers on it.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("localapi: %w", err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("localapi: %s exists and is not a socket; not replacing it", path)
	}
	conn, err := net.DialTimeout("unix", path, 2*time.Second)
	switch {
	case err == nil:
		conn.Close()
		return fmt.Errorf("%w on %s", ErrDaemonRunning, path)
	case errors.Is(err, fs.ErrNotExist):
		return nil // gone meanwhile
	case !errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("localapi: socket %s exists but cannot be checked: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("localapi: removing stale socket: %w", err)
	}
	return nil
}
