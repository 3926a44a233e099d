package setup

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// openPTY opens a pseudo-terminal pair: the master end (what a terminal
// emulator holds) and the slave end (the program's terminal).
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { master.Close() })
	var unlock int32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, master.Fd(), syscall.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); e != 0 {
		t.Fatal(e)
	}
	var n uint32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, master.Fd(), syscall.TIOCGPTN, uintptr(unsafe.Pointer(&n))); e != 0 {
		t.Fatal(e)
	}
	slave, err = os.OpenFile("/dev/pts/"+strconv.Itoa(int(n)), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { slave.Close() })
	return master, slave
}

// echoed is what the terminal shows after "secret\n" is typed into it,
// with read running on the program's side.
// With quiet set it types only once the terminal's echo is off.
func echoed(t *testing.T, quiet bool, read func(slave *os.File) string) (string, string) {
	master, slave := openPTY(t)
	got := make(chan string, 1)
	go func() { got <- read(slave) }()
	for deadline := time.Now().Add(5 * time.Second); quiet; time.Sleep(10 * time.Millisecond) {
		var tio syscall.Termios
		if ioctl(slave.Fd(), syscall.TCGETS, &tio) == nil && tio.Lflag&syscall.ECHO == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the terminal's echo is still on")
		}
	}
	master.Write([]byte("secret\n"))
	line := <-got
	// What the terminal shows: read until nothing comes for a moment. Not
	// every kernel polls pseudo-terminals, so read the raw descriptor,
	// non-blocking.
	fd := int(master.Fd())
	if err := syscall.SetNonblock(fd, true); err != nil {
		t.Fatal(err)
	}
	var screen bytes.Buffer
	buf := make([]byte, 256)
	for quiet := 0; quiet < 10; {
		n, err := syscall.Read(fd, buf)
		if n > 0 {
			screen.Write(buf[:n])
			quiet = 0
			continue
		}
		if err != nil && err != syscall.EAGAIN && err != syscall.EINTR {
			break
		}
		quiet++
		time.Sleep(30 * time.Millisecond)
	}
	return line, screen.String()
}

// TestReadPasswordNoEcho: the password typed at the prompt is read and not
// shown; the control reads the same line from the same kind of terminal
// without ReadPassword, and the terminal shows it.
func TestReadPasswordNoEcho(t *testing.T) {
	if !IsTerminal(mustPTYSlave(t)) {
		t.Fatal("IsTerminal is false for a pseudo-terminal")
	}
	f, err := os.CreateTemp(t.TempDir(), "notty")
	if err != nil {
		t.Fatal(err)
	}
	if IsTerminal(f) {
		t.Fatal("IsTerminal is true for a file")
	}
	line, screen := echoed(t, true, func(slave *os.File) string {
		p, err := ReadPassword(slave, slave, "password: ")
		if err != nil {
			t.Error(err)
		}
		return p
	})
	if line != "secret" || strings.Contains(screen, "secret") || !strings.Contains(screen, "password: ") {
		t.Errorf("ReadPassword read %q; the terminal shows %q", line, screen)
	}
	line, screen = echoed(t, false, func(slave *os.File) string {
		b := make([]byte, 64)
		n, _ := slave.Read(b)
		return strings.TrimSpace(string(b[:n]))
	})
	if line != "secret" || !strings.Contains(screen, "secret") {
		t.Errorf("control: read %q; the terminal shows %q, want the echo", line, screen)
	}
}

func mustPTYSlave(t *testing.T) *os.File {
	_, slave := openPTY(t)
	return slave
}
