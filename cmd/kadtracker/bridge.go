package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/kadtracker/kadtracker/bootstrap"
	"github.com/kadtracker/kadtracker/node/localapi"
	"github.com/kadtracker/kadtracker/node/tracker/bridge"
)

// bridgeFlags configure the bridge to classic trackers.
type bridgeFlags struct {
	trackers []string
	// publish puts the trackers' peers into the DHT as bridged records.
	publish bool
}

func (f *bridgeFlags) register(fs *flag.FlagSet) {
	fs.Var((*urlList)(&f.trackers), "bridge-trackers", "comma-separated announce `URLS` of classic trackers (http://, https://, udp://) to announce this host's clients to as well; their peers join the answers")
	fs.BoolVar(&f.publish, "bridge-publish", true, "publish the peers learned from --bridge-trackers into the DHT as bridged records, so DHT-only users meet the classic swarms")
}

// urlList is a comma-separated list of tracker URLs; a repeated flag adds.
type urlList []string

func (l *urlList) String() string { return strings.Join(*l, ",") }

func (l *urlList) Set(v string) error {
	for _, s := range bootstrap.SplitList(v) {
		if _, err := bridge.ParseURL(s); err != nil {
			return err
		}
		*l = append(*l, s)
	}
	return nil
}

// bridgeCmd is `kadtracker bridge`: the bridge's trackers and swarms.
type bridgeCmd struct{ clientOpts }

func setupBridge(fs *flag.FlagSet, getenv func(string) string) func([]string) (runner, error) {
	c := &bridgeCmd{}
	return clientSetup(fs, getenv, &c.clientOpts, nil, func([]string) (runner, error) { return c, nil })
}

func (c *bridgeCmd) run(ctx context.Context, stdout, _ io.Writer) error {
	var st localapi.BridgeState
	if err := c.call(func(cl *localapi.Client) (err error) { st, err = cl.Bridge(ctx); return err }); err != nil {
		return err
	}
	st.Trackers, st.Swarms = nonNilSlice(st.Trackers), nonNilSlice(st.Swarms)
	return c.output(stdout, st, func(w io.Writer) {
		fmt.Fprintf(w, "trackers:\t%s\n", strings.Join(st.Trackers, ", "))
		fmt.Fprintf(w, "published:\t%d swarms as bridged records\n\n", st.Published)
		if len(st.Swarms) == 0 {
			fmt.Fprintln(w, "no swarm bridged: no local client announces")
			return
		}
		fmt.Fprintf(w, "INFOHASH\tPORT\tTRACKER\tLAST ANSWER\tNEXT\tPEERS\tSEEDERS\tLEECHERS\tERROR\n")
		for _, s := range st.Swarms {
			for _, t := range s.Trackers {
				next := "running"
				switch {
				case s.Stopping:
					next = "stopping"
				case !t.NextAnnounce.IsZero():
					next = "in " + time.Until(t.NextAnnounce).Round(time.Second).String()
				}
				errText := t.Error
				if t.Fails > 1 {
					errText = fmt.Sprintf("%s (%d in a row)", errText, t.Fails)
				}
				fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t%d\t%d\t%d\t%s\n", s.Infohash, s.Port, t.URL, ago(t.LastSuccess), next, t.Peers, t.Seeders, t.Leechers, orDash(errText))
			}
		}
	})
}
