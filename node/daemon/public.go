package daemon

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/kadtracker/kadtracker/node/tracker"
	"github.com/kadtracker/kadtracker/records"
)

// PublicConfig is tracker mode: a tracker for many clients on other hosts,
// like a classic one, backed by the local store and the DHT. Its clients
// are published into the DHT as bridged records.
type PublicConfig struct {
	// Addr is host:port for HTTP (http://Addr/announce) and UDP on the
	// same port; port 0 picks one for both.
	Addr string
	// AllowlistFile, if set, lists the infohashes served (40 hex digits a
	// line, # comments); others are refused. It is re-read when it changes.
	AllowlistFile string
}

// listen opens the public tracker's sockets, or nothing when it is off.
func (c *PublicConfig) listen(ctx context.Context) (net.Listener, net.PacketConn, error) {
	if c == nil {
		return nil, nil, nil
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", c.Addr)
	if err != nil {
		return nil, nil, fmt.Errorf("--tracker-public: %w", err)
	}
	// The UDP socket on the port TCP got, so Addr may say port 0.
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	host, _, _ := net.SplitHostPort(c.Addr)
	pc, err := lc.ListenPacket(ctx, "udp", net.JoinHostPort(host, port))
	if err != nil {
		ln.Close()
		return nil, nil, fmt.Errorf("--tracker-public: %w", err)
	}
	return ln, pc, nil
}

// startPublic builds the public tracker on its sockets: lookups go to the
// DHT; its clients are not this host's, so nothing is published for them
// as the node's own client: the publisher publishes them as bridged
// records instead.
func (p *parts) startPublic(ln net.Listener, conn net.PacketConn) ([]face, error) {
	pcfg := tracker.DefaultConfig()
	pcfg.Logger = p.log.With("component", "public-tracker")
	pcfg.ExternalIP = true
	var allow *allowlist
	if file := p.cfg.Public.AllowlistFile; file != "" {
		var err error
		if allow, err = loadAllowlist(file, p.log); err != nil {
			return nil, err
		}
		pcfg.Allow = allow.Allow
	}
	public, err := tracker.New(&frontNode{n: p.dht, front: "public"}, pcfg)
	if err != nil {
		return nil, err
	}
	p.d.onClose(public.Close)
	p.d.info.PublicHTTP = "http://" + ln.Addr().String() + "/announce"
	p.d.info.PublicUDP = "udp://" + conn.LocalAddr().String() + "/announce"
	p.log.Info("public tracker", "announce", p.d.info.PublicHTTP, "udp", p.d.info.PublicUDP, "allowlist", p.cfg.Public.AllowlistFile, "publish", p.published != nil)
	return []face{
		{"public HTTP tracker", func(ctx context.Context) error { return public.Serve(ctx, ln) }},
		{"public UDP tracker", func(ctx context.Context) error { return public.ServeUDP(ctx, conn) }},
		{"public tracker sync", func(ctx context.Context) error {
			return syncPublic(ctx, public, p.published, allow, p.log)
		}},
	}, nil
}

// allowlist is the set of infohashes the public tracker serves, re-read
// from its file when that changes.
type allowlist struct {
	path  string
	log   *slog.Logger
	set   atomic.Pointer[map[[20]byte]struct{}]
	mtime time.Time
}

func loadAllowlist(path string, logger *slog.Logger) (*allowlist, error) {
	a := &allowlist{path: path, log: logger}
	if err := a.reload(); err != nil {
		return nil, err
	}
	return a, nil
}

func (a *allowlist) Allow(ih [20]byte) bool {
	_, ok := (*a.set.Load())[ih]
	return ok
}

// reload reads the file again when its modification time changed.
func (a *allowlist) reload() error {
	fi, err := os.Stat(a.path)
	if err != nil {
		return fmt.Errorf("--tracker-allowlist: %w", err)
	}
	if fi.ModTime().Equal(a.mtime) && a.set.Load() != nil {
		return nil
	}
	set, err := readAllowlist(a.path)
	if err != nil {
		return err
	}
	a.mtime = fi.ModTime()
	a.set.Store(&set)
	a.log.Info("tracker allowlist loaded", "file", a.path, "infohashes", len(set))
	return nil
}

func readAllowlist(path string) (map[[20]byte]struct{}, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("--tracker-allowlist: %w", err)
	}
	defer f.Close()
	set := make(map[[20]byte]struct{})
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		b, err := hex.DecodeString(line)
		if err != nil || len(b) != 20 {
			return nil, fmt.Errorf("--tracker-allowlist %s:%d: %q is not 40 hex digits", path, n, line)
		}
		set[[20]byte(b)] = struct{}{}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("--tracker-allowlist %s: %w", path, err)
	}
	return set, nil
}

// publicSync is how often the public tracker's clients are handed to the
// publisher and the allowlist file is checked for changes.
const publicSync = 5 * time.Second

// syncPublic hands the public tracker's clients to pub (when set) and
// re-reads the allowlist (when set) until ctx ends.
func syncPublic(ctx context.Context, front *tracker.Tracker, pub *bridgedPublisher, allow *allowlist, logger *slog.Logger) error {
	t := time.NewTicker(publicSync)
	defer t.Stop()
	var last map[records.Key][]netip.AddrPort
	for {
		if allow != nil {
			if err := allow.reload(); err != nil {
				logger.Warn("allowlist not reloaded; keeping the last one", "err", err)
			}
		}
		if pub != nil {
			now := front.Clients()
			for k, eps := range now {
				pub.Set("public", k, eps)
			}
			for k := range last {
				if _, ok := now[k]; !ok {
					pub.Set("public", k, nil)
				}
			}
			last = now
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
