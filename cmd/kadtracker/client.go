package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kadtracker/kadtracker/node/localapi"
	"github.com/kadtracker/kadtracker/records"
)

// clientOpts are what every client command has.
type clientOpts struct {
	socket string // the daemon's local API socket
	json   bool
}

// clientDefaultDataDir is the data dir a daemon started in this environment
// without --data-dir uses.
func clientDefaultDataDir(getenv func(string) string) string {
	if d := getenv(envName("data-dir")); d != "" {
		return d
	}
	return defaultDataDir(getenv)
}

// findSocket finds the daemon's socket: --rpc-socket, else --data-dir, else
// $KADTRACKER_RPC_SOCKET, else the default data dir.
func findSocket(rpcSocket, dataDir string, getenv func(string) string) (string, error) {
	switch {
	case rpcSocket != "":
		return rpcSocket, nil
	case dataDir != "":
		return filepath.Join(dataDir, socketName), nil
	case getenv(envName("rpc-socket")) != "":
		return getenv(envName("rpc-socket")), nil
	}
	dir := clientDefaultDataDir(getenv)
	if dir == "" {
		return "", errors.New("cannot find the daemon: set --rpc-socket or --data-dir (neither HOME nor XDG_DATA_HOME is set)")
	}
	return filepath.Join(dir, socketName), nil
}

// call runs f with a client of the daemon and turns "nothing listens" into
// one clear line.
func (o *clientOpts) call(f func(c *localapi.Client) error) error {
	err := f(localapi.NewClient(o.socket))
	if errors.Is(err, localapi.ErrNoDaemon) {
		return fmt.Errorf("no daemon at %s (start it with 'kadtracker run')", o.socket)
	}
	return err
}

// output prints v as one line of JSON, the local API's form, or as text.
func (o *clientOpts) output(w io.Writer, v any, text func(w io.Writer)) error {
	if o.json {
		return json.NewEncoder(w).Encode(v)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	text(tw)
	return tw.Flush()
}

// clientSetup registers the flags every client command has and, once they
// are parsed, finds the socket and checks the positional arguments before
// calling build.
func clientSetup(fs *flag.FlagSet, getenv func(string) string, o *clientOpts, args []string, build func(pos []string) (runner, error)) func([]string) (runner, error) {
	var rpcSocket, dataDir string
	fs.StringVar(&rpcSocket, "rpc-socket", "", "`PATH` of the daemon's local API socket")
	fs.Lookup("rpc-socket").DefValue = "DATA-DIR/" + socketName
	fs.StringVar(&dataDir, "data-dir", "", "the daemon's data `DIR`, to find its socket")
	fs.Lookup("data-dir").DefValue = clientDefaultDataDir(getenv)
	fs.BoolVar(&o.json, "json", false, "print the local API's JSON")
	return func(pos []string) (runner, error) {
		if err := wantArgs(pos, args...); err != nil {
			return nil, err
		}
		var err error
		if o.socket, err = findSocket(rpcSocket, dataDir, getenv); err != nil {
			return nil, err
		}
		return build(pos)
	}
}

type statusCmd struct{ clientOpts }

func setupStatus(fs *flag.FlagSet, getenv func(string) string) func([]string) (runner, error) {
	c := &statusCmd{}
	return clientSetup(fs, getenv, &c.clientOpts, nil, func([]string) (runner, error) { return c, nil })
}

func (c *statusCmd) run(ctx context.Context, stdout, _ io.Writer) error {
	var st localapi.Status
	err := c.call(func(cl *localapi.Client) (err error) {
		st, err = cl.Status(ctx)
		return err
	})
	if err != nil {
		return err
	}
	return c.output(stdout, st, func(w io.Writer) {
		fmt.Fprintf(w, "peer ID:\t%s\n", st.PeerID)
		for i, a := range st.Addrs {
			label := ""
			if i == 0 {
				label = "addresses:"
			}
			fmt.Fprintf(w, "%s\t%s\n", label, a)
		}
		if len(st.Addrs) == 0 {
			fmt.Fprintf(w, "addresses:\tnone\n")
		}
		fmt.Fprintf(w, "routing table:\t%d peers\n", st.RoutingTableSize)
		fmt.Fprintf(w, "records stored:\t%d for %d infohashes\n", st.RecordsStored, st.KeysStored)
		if st.RecordsLost > 0 {
			fmt.Fprintf(w, "records lost:\t%d missing from the store at start (damaged store?)\n", st.RecordsLost)
		}
		if st.StoreMovedAside != "" {
			fmt.Fprintf(w, "store:\tdamaged; moved aside to %s, started empty\n", st.StoreMovedAside)
		}
		fmt.Fprintf(w, "announcing:\t%d infohashes\n", st.Announced)
		if p := st.Publish; p != nil {
			capacity := "not measured yet"
			if p.CapacityKeys > 0 {
				capacity = fmt.Sprintf("about %d", p.CapacityKeys)
			}
			fmt.Fprintf(w, "publishing:\t%d keys; the scheduler keeps %s alive; %d records lapsed\n", p.Keys, capacity, p.LapsedTotal)
		}
		fmt.Fprintf(w, "replication:\t%d\n", st.Replication)
		fmt.Fprintf(w, "DHT mode:\t%s\n", st.DHTMode)
		reach := st.Reachability
		if reach == "" {
			reach = "unknown"
		}
		fmt.Fprintf(w, "reachability:\t%s\n", reach)
		for i, a := range st.PublicAddrs {
			label := ""
			if i == 0 {
				label = "public addresses:"
			}
			fmt.Fprintf(w, "%s\t%s\n", label, a)
		}
		switch pm := st.PortMapping; {
		case !pm.Enabled:
			fmt.Fprintf(w, "port mapping:\toff\n")
		case len(pm.Mapped) > 0:
			fmt.Fprintf(w, "port mapping:\t%s\n", strings.Join(pm.Mapped, ", "))
		case pm.Gateway:
			fmt.Fprintf(w, "port mapping:\tgateway found, nothing mapped yet\n")
		default:
			fmt.Fprintf(w, "port mapping:\tno gateway found\n")
		}
		if rv := st.Rendezvous; rv.Enabled {
			last := "never"
			if !rv.LastSuccess.IsZero() {
				last = rv.LastSuccess.Format(time.RFC3339)
			}
			fmt.Fprintf(w, "rendezvous:\t%s, %d peers found, %d connected, last success %s\n", rv.State, rv.PeersFound, rv.PeersConnected, last)
		} else {
			fmt.Fprintf(w, "rendezvous:\toff\n")
		}
		fmt.Fprintf(w, "started:\t%s\n", st.Started.Format(time.RFC3339))
	})
}

// parseInfohash reads the INFOHASH argument.
func parseInfohash(s string) (records.Key, error) {
	k, err := records.ParseKey(s)
	if err != nil {
		return records.Key{}, fmt.Errorf("INFOHASH: %w", err)
	}
	return k, nil
}

type announceCmd struct {
	clientOpts
	key  records.Key
	port uint16
	seed bool
}

func setupAnnounce(fs *flag.FlagSet, getenv func(string) string) func([]string) (runner, error) {
	c := &announceCmd{}
	var port uint
	fs.UintVar(&port, "port", 0, "`PORT` of the BitTorrent client (required)")
	fs.BoolVar(&c.seed, "seed", false, "the client has the whole torrent")
	return clientSetup(fs, getenv, &c.clientOpts, []string{"INFOHASH"}, func(pos []string) (runner, error) {
		var err error
		if c.key, err = parseInfohash(pos[0]); err != nil {
			return nil, err
		}
		if port < 1 || port > 65535 {
			return nil, fmt.Errorf("--port %d: want the client's port, 1..65535", port)
		}
		c.port = uint16(port)
		return c, nil
	})
}

func (c *announceCmd) run(ctx context.Context, stdout, _ io.Writer) error {
	var res localapi.AnnounceResult
	err := c.call(func(cl *localapi.Client) (err error) {
		res, err = cl.Announce(ctx, c.key, c.port, c.seed)
		return err
	})
	if err != nil {
		return err
	}
	return c.output(stdout, res, func(w io.Writer) {
		role := "leecher"
		if c.seed {
			role = "seed"
		}
		fmt.Fprintf(w, "announced %s (port %d, %s): stored on %d of %d nodes\n", c.key, c.port, role, res.StoredOn, res.Targets)
	})
}

type withdrawCmd struct {
	clientOpts
	key records.Key
}

func setupWithdraw(fs *flag.FlagSet, getenv func(string) string) func([]string) (runner, error) {
	c := &withdrawCmd{}
	return clientSetup(fs, getenv, &c.clientOpts, []string{"INFOHASH"}, func(pos []string) (runner, error) {
		var err error
		c.key, err = parseInfohash(pos[0])
		return c, err
	})
}

func (c *withdrawCmd) run(ctx context.Context, stdout, _ io.Writer) error {
	err := c.call(func(cl *localapi.Client) error { return cl.Withdraw(ctx, c.key) })
	if err != nil {
		return err
	}
	return c.output(stdout, localapi.WithdrawResult{Infohash: c.key}, func(w io.Writer) {
		fmt.Fprintf(w, "withdrew %s\n", c.key)
	})
}

type peersCmd struct {
	clientOpts
	key  records.Key
	want int
}

func setupPeers(fs *flag.FlagSet, getenv func(string) string) func([]string) (runner, error) {
	c := &peersCmd{}
	fs.IntVar(&c.want, "want", localapi.DefaultWant, fmt.Sprintf("how many peers to find, at most %d", localapi.MaxWant))
	return clientSetup(fs, getenv, &c.clientOpts, []string{"INFOHASH"}, func(pos []string) (runner, error) {
		var err error
		if c.key, err = parseInfohash(pos[0]); err != nil {
			return nil, err
		}
		if c.want < 1 || c.want > localapi.MaxWant {
			return nil, fmt.Errorf("--want %d: want 1..%d", c.want, localapi.MaxWant)
		}
		return c, nil
	})
}

func (c *peersCmd) run(ctx context.Context, stdout, _ io.Writer) error {
	var res localapi.PeersResult
	err := c.call(func(cl *localapi.Client) (err error) {
		res, err = cl.Peers(ctx, c.key, c.want)
		return err
	})
	if err != nil {
		return err
	}
	return c.output(stdout, res, func(w io.Writer) {
		if len(res.Peers) > 0 {
			fmt.Fprintf(w, "IP\tPORT\tSEED\tANNOUNCER\n")
			for _, p := range res.Peers {
				fmt.Fprintf(w, "%s\t%d\t%s\t%s\n", p.IP, p.Port, yesNo(p.Seed), p.Announcer)
			}
			fmt.Fprintln(w)
		}
		s := res.Stats
		fmt.Fprintf(w, "%s (the swarm reports %d seeds, %d leechers); lookup: %d hops, %d nodes queried, %d of %d storing nodes answered, %s\n",
			count(len(res.Peers), "peer"), res.Seeds, res.Leechers, s.Hops, s.Queried, s.Answered, s.Asked,
			time.Duration(s.DurationMS*float64(time.Millisecond)).Round(time.Millisecond/10))
	})
}

type recordsCmd struct{ clientOpts }

func setupRecords(fs *flag.FlagSet, getenv func(string) string) func([]string) (runner, error) {
	c := &recordsCmd{}
	return clientSetup(fs, getenv, &c.clientOpts, nil, func([]string) (runner, error) { return c, nil })
}

func (c *recordsCmd) run(ctx context.Context, stdout, _ io.Writer) error {
	var recs []localapi.Record
	err := c.call(func(cl *localapi.Client) (err error) {
		recs, err = cl.Records(ctx)
		return err
	})
	if err != nil {
		return err
	}
	if recs == nil {
		recs = []localapi.Record{}
	}
	return c.output(stdout, localapi.RecordsResult{Records: recs}, func(w io.Writer) {
		if len(recs) == 0 {
			fmt.Fprintln(w, "no records stored")
			return
		}
		fmt.Fprintf(w, "INFOHASH\tIP\tPORT\tSEED\tANNOUNCER\tEXPIRES\n")
		for _, r := range recs {
			fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\t%s\n", r.Infohash, orDash(r.IP), r.Port, yesNo(r.Seed), r.Announcer, r.Expires.Format(time.RFC3339))
		}
	})
}

type routingCmd struct{ clientOpts }

func setupRouting(fs *flag.FlagSet, getenv func(string) string) func([]string) (runner, error) {
	c := &routingCmd{}
	return clientSetup(fs, getenv, &c.clientOpts, nil, func([]string) (runner, error) { return c, nil })
}

func (c *routingCmd) run(ctx context.Context, stdout, _ io.Writer) error {
	var peers []localapi.RoutingPeer
	err := c.call(func(cl *localapi.Client) (err error) {
		peers, err = cl.Routing(ctx)
		return err
	})
	if err != nil {
		return err
	}
	if peers == nil {
		peers = []localapi.RoutingPeer{}
	}
	return c.output(stdout, localapi.RoutingResult{Peers: peers}, func(w io.Writer) {
		if len(peers) == 0 {
			fmt.Fprintln(w, "the routing table is empty")
			return
		}
		fmt.Fprintf(w, "PEER ID\tCPL\tCONNECTED\tADDRESSES\n")
		for _, p := range peers {
			fmt.Fprintf(w, "%s\t%d\t%s\t%s\n", p.PeerID, p.CPL, yesNo(p.Connected), orDash(strings.Join(p.Addrs, ",")))
		}
	})
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
