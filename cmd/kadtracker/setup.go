package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/kadtracker/kadtracker/cmd/kadtracker/internal/setup"
	"github.com/kadtracker/kadtracker/node/localapi"
)

// setupCmd is `kadtracker setup CLIENT`: its flags and output; the work is
// package setup's.
type setupCmd struct {
	cfg       setup.Config
	undo      bool
	dataDir   string // holds the record of what setup added
	socket    string // the daemon's, to ask for its tracker URL
	passGiven bool
	// trackerGiven: --tracker-url was set; else the daemon's is used.
	trackerGiven bool
}

func setupSetup(fs *flag.FlagSet, getenv func(string) string) func([]string) (runner, error) {
	c := &setupCmd{}
	var endpoint, tracker, rpcSocket string
	fs.StringVar(&endpoint, "url", "", "`URL` of the client's remote API")
	fs.Lookup("url").DefValue = "the client's: " + strings.Join(defaultEndpoints(), ", ")
	fs.StringVar(&c.cfg.Username, "username", "", "user `NAME` for the client's remote API [$KADTRACKER_SETUP_USERNAME]")
	fs.StringVar(&c.cfg.Password, "password", "", "`PASSWORD` (aria2: RPC secret; deluge: deluge-web's, default deluge) for the client's remote API; other users can see it in the process list, prefer $KADTRACKER_SETUP_PASSWORD or the prompt")
	fs.StringVar(&tracker, "tracker-url", "", "tracker `URL` to add")
	fs.Lookup("tracker-url").DefValue = "the running daemon's HTTP tracker, else " + setup.DefaultTracker
	fs.BoolVar(&c.cfg.DryRun, "dry-run", false, "show what would change and change nothing")
	fs.BoolVar(&c.undo, "undo", false, "remove exactly what an earlier setup of this client added")
	fs.StringVar(&c.dataDir, "data-dir", "", "the daemon's data `DIR`: its socket, and where setup records what it added")
	fs.Lookup("data-dir").DefValue = clientDefaultDataDir(getenv)
	fs.StringVar(&rpcSocket, "rpc-socket", "", "`PATH` of the daemon's local API socket")
	fs.Lookup("rpc-socket").DefValue = "DATA-DIR/" + socketName
	return func(pos []string) (runner, error) {
		if err := wantArgs(pos, "CLIENT"); err != nil {
			return nil, err
		}
		c.cfg = withDefaults(c.cfg, pos[0], endpoint, tracker, getenv)
		c.passGiven, c.trackerGiven = c.cfg.Password != "", tracker != ""
		if c.dataDir == "" {
			if c.dataDir = clientDefaultDataDir(getenv); c.dataDir == "" {
				return nil, errors.New("set --data-dir (neither HOME nor XDG_DATA_HOME is set)")
			}
		}
		var err error
		if c.socket, err = findSocket(rpcSocket, c.dataDir, getenv); err != nil {
			return nil, err
		}
		if err := c.cfg.Validate(); err != nil {
			return nil, errors.New(strings.TrimPrefix(err.Error(), "setup: "))
		}
		return c, nil
	}
}

// withDefaults fills in what the flags left out.
func withDefaults(given setup.Config, client, endpoint, tracker string, getenv func(string) string) setup.Config {
	cfg := setup.DefaultConfig(strings.ToLower(client))
	cfg.Endpoint, cfg.Tracker = endpoint, tracker
	cfg.DryRun, cfg.Username, cfg.Password = given.DryRun, given.Username, given.Password
	if cfg.Username == "" {
		cfg.Username = getenv("KADTRACKER_SETUP_USERNAME")
	}
	if cfg.Password == "" {
		cfg.Password = getenv("KADTRACKER_SETUP_PASSWORD")
	}
	if cfg.Tracker == "" {
		cfg.Tracker = setup.DefaultTracker // checked now, replaced by the daemon's in run
	}
	return cfg
}

func (c *setupCmd) run(ctx context.Context, stdout, stderr io.Writer) error {
	path := filepath.Join(c.dataDir, setup.RecordFile)
	records, err := setup.LoadRecords(path)
	if err != nil {
		return err
	}
	prev, havePrev := records.Find(c.cfg.Client, c.cfg.Endpoint)
	var res setup.Result
	if c.undo {
		if !havePrev {
			return fmt.Errorf("%w at %s in %s: nothing to undo", setup.ErrNoRecord, orDefault(c.cfg.Endpoint, setup.DefaultEndpoint(c.cfg.Client)), path)
		}
		res, err = c.withPassword(stderr, func(cfg setup.Config) (setup.Result, error) { return setup.Undo(ctx, cfg, prev) })
	} else {
		c.cfg.Tracker = c.trackerURL(ctx, stderr)
		var p *setup.Record
		if havePrev {
			p = &prev
		}
		res, err = c.withPassword(stderr, func(cfg setup.Config) (setup.Result, error) { return setup.Apply(ctx, cfg, p) })
	}
	if err != nil {
		return err
	}
	c.print(stdout, res)
	if c.cfg.DryRun || !c.undo && len(res.Changes) == 0 && havePrev {
		return nil
	}
	if c.undo {
		delete(records, res.Record.Key())
	} else if len(res.Record.Torrents) > 0 || res.Record.AddedDefault || res.Record.EnabledDefault {
		records[res.Record.Key()] = res.Record
	} else {
		return nil
	}
	if err := records.Save(path); err != nil {
		return fmt.Errorf("the client is set up, but the record for --undo was not saved: %w", err)
	}
	if !c.undo {
		fmt.Fprintf(stdout, "recorded in %s; 'kadtracker setup %s --undo' removes it\n", path, c.cfg.Client)
	}
	return nil
}

// withPassword runs f, and once more with a password read from the
// terminal if the client asks for one and none was given.
func (c *setupCmd) withPassword(stderr io.Writer, f func(setup.Config) (setup.Result, error)) (setup.Result, error) {
	res, err := f(c.cfg)
	if !errors.Is(err, setup.ErrNeedPassword) || c.passGiven || !setup.IsTerminal(os.Stdin) {
		if errors.Is(err, setup.ErrNeedPassword) {
			err = fmt.Errorf("%w: give it in $KADTRACKER_SETUP_PASSWORD (and $KADTRACKER_SETUP_USERNAME) or --password", err)
		}
		return res, err
	}
	what := "password"
	if c.cfg.Client == "aria2" {
		what = "RPC secret"
	}
	pass, perr := setup.ReadPassword(os.Stdin, stderr, fmt.Sprintf("%s %s: ", c.cfg.Client, what))
	if perr != nil {
		return res, errors.Join(err, perr)
	}
	cfg := c.cfg
	cfg.Password = pass
	return f(cfg)
}

// trackerURL is --tracker-url, else the running daemon's HTTP tracker
// (its UDP one if HTTP is off), else the default one.
func (c *setupCmd) trackerURL(ctx context.Context, stderr io.Writer) string {
	if c.trackerGiven {
		return c.cfg.Tracker
	}
	st, err := localapi.NewClient(c.socket).Status(ctx)
	switch {
	case err != nil:
		fmt.Fprintf(stderr, "note: no daemon answers at %s (%v); using %s\n", c.socket, err, setup.DefaultTracker)
	case st.TrackerHTTP != "":
		return reachable(st.TrackerHTTP)
	case st.TrackerUDP != "":
		return reachable(st.TrackerUDP)
	default:
		fmt.Fprintf(stderr, "note: the daemon at %s runs no tracker front; using %s\n", c.socket, setup.DefaultTracker)
	}
	return setup.DefaultTracker
}

// reachable is a tracker URL as a client on this host reaches it: a front
// listening on all addresses (a container's, or --tracker-allow-remote)
// reports [::] or 0.0.0.0, which is no address to announce to.
func reachable(tracker string) string {
	u, err := url.Parse(tracker)
	if err != nil {
		return tracker
	}
	if ip, err := netip.ParseAddr(u.Hostname()); err == nil && ip.IsUnspecified() {
		u.Host = net.JoinHostPort("127.0.0.1", u.Port())
	}
	return u.String()
}

func (c *setupCmd) print(w io.Writer, res setup.Result) {
	fmt.Fprintf(w, "%s at %s\n", res.Version, orDefault(c.cfg.Endpoint, setup.DefaultEndpoint(c.cfg.Client)))
	if !c.undo {
		fmt.Fprintf(w, "tracker: %s\n", c.cfg.Tracker)
	}
	verb := ""
	if c.cfg.DryRun {
		verb = "would "
	}
	for _, ch := range res.Changes {
		fmt.Fprintf(w, "  %s%s\n", verb, ch)
	}
	if len(res.Changes) == 0 {
		fmt.Fprintln(w, "  nothing to change")
	}
	for _, n := range res.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
}

func defaultEndpoints() []string {
	var out []string
	for _, c := range setup.Clients {
		out = append(out, setup.DefaultEndpoint(c))
	}
	return out
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
