package localapi

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// ErrDaemonRunning means a live daemon already answers on the socket.
var ErrDaemonRunning = errors.New("localapi: a daemon is already listening")

// Listen opens the unix socket at path for Serve. It creates the parent
// directory (mode 0700) if needed; the socket is mode 0600 from the moment
// it appears at path. A socket file left by a daemon that died is removed;
// Listen refuses, with ErrDaemonRunning, when a daemon answers there, and
// never removes a file that is not a socket. Closing the listener removes
// the socket file, unless another has taken its place.
//
// The socket is created in a fresh 0700 directory beside path, made 0600
// there, then renamed into place, so nobody else can connect while it has
// looser permissions. Not syscall.Umask around net.Listen: the umask is
// the process's, and the daemon's other goroutines create files (the
// record store, the identity key) at the same time.
func Listen(path string) (net.Listener, error) {
	if path == "" {
		return nil, errors.New("localapi: no socket path")
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("localapi: %w", err)
	}
	if err := removeStale(path); err != nil {
		return nil, err
	}
	private, err := os.MkdirTemp(dir, ".") // 0700
	if err != nil {
		return nil, fmt.Errorf("localapi: %w", err)
	}
	defer os.RemoveAll(private)
	tmp := filepath.Join(private, "s")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		if len(tmp) > 100 {
			// sun_path holds 104 (BSD) to 108 (Linux) bytes.
			return nil, fmt.Errorf("localapi: %w (the socket path is %d bytes while it is created, too long for a unix socket: choose a path of at most %d)", err, len(tmp), 100-(len(tmp)-len(path)))
		}
		return nil, fmt.Errorf("localapi: %w", err)
	}
	ln.SetUnlinkOnClose(false) // it will not be at tmp
	if err := os.Chmod(tmp, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("localapi: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		ln.Close()
		return nil, fmt.Errorf("localapi: %w", err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("localapi: %w", err)
	}
	return &socketListener{UnixListener: ln, path: path, file: fi}, nil
}

// socketListener is a unix listener whose socket was renamed to path.
type socketListener struct {
	*net.UnixListener
	path string
	file fs.FileInfo // the socket file, to remove only our own
	once sync.Once
}

func (l *socketListener) Addr() net.Addr { return &net.UnixAddr{Name: l.path, Net: "unix"} }

// Close stops listening and removes the socket file if it is still ours.
func (l *socketListener) Close() error {
	err := l.UnixListener.Close()
	l.once.Do(func() {
		if fi, serr := os.Lstat(l.path); serr == nil && os.SameFile(fi, l.file) {
			_ = os.Remove(l.path)
		}
	})
	return err
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
