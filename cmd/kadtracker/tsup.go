package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"time"

	"github.com/kadtracker/kadtracker/node/daemon"
	"github.com/kadtracker/kadtracker/node/localapi"
	"github.com/kadtracker/kadtracker/node/tsup"
)

// tsupFlags configure the TSUP overlay: trackers linked statically over UDP
// that unify the swarms they share.
type tsupFlags struct {
	links                     string
	hello, update, disconnect time.Duration
	plainDisconnect           time.Duration
	advertise                 string
	publish                   bool
}

func (f *tsupFlags) register(fs *flag.FlagSet) {
	def := tsup.DefaultConfig()
	fs.StringVar(&f.links, "tsup-links", "", "`FILE` of TSUP links, one per line: host:port internal|external [key=HEX]; empty: no TSUP overlay")
	fs.DurationVar(&f.hello, "tsup-hello", def.HelloInterval, "TSUP keep-alive interval")
	fs.DurationVar(&f.update, "tsup-update", def.UpdateInterval, "TSUP update round interval")
	fs.DurationVar(&f.disconnect, "tsup-disconnect", def.DisconnectInterval, "drop a TSUP link silent this long")
	fs.DurationVar(&f.plainDisconnect, "tsup-plain-disconnect", 0, "drop a TSUP link without kadtracker's extensions (such as an XBT Unified Tracker) silent this long; 0: as --tsup-disconnect but at least 4m, XBT's own value")
	fs.BoolVar(&f.publish, "tsup-publish", false, "publish the peers learned over TSUP into the DHT as bridged records")
	fs.StringVar(&f.advertise, "tsup-advertise-ip", "", "`IP` other trackers' clients reach this host's clients at (default: the UDP tracker's address when it is not a wildcard)")
}

// config is the overlay the flags describe, nil without --tsup-links.
func (f *tsupFlags) config() (*daemon.TSUPConfig, error) {
	if f.links == "" {
		return nil, nil
	}
	c := &daemon.TSUPConfig{LinksFile: f.links, Overlay: tsup.DefaultConfig(), Publish: f.publish}
	c.Overlay.HelloInterval, c.Overlay.UpdateInterval, c.Overlay.DisconnectInterval = f.hello, f.update, f.disconnect
	c.Overlay.PlainDisconnectInterval = f.plainDisconnect
	if f.advertise != "" {
		ip, err := netip.ParseAddr(f.advertise)
		if err != nil {
			return nil, fmt.Errorf("--tsup-advertise-ip: %w", err)
		}
		c.AdvertiseIP = ip
	}
	return c, nil
}

// tsupCmd is `kadtracker tsup links|swarms`: the paper's trackers and swarms
// pages, from the daemon's local API.
type tsupCmd struct {
	clientOpts
	page string
}

func setupTSUP(fs *flag.FlagSet, getenv func(string) string) func([]string) (runner, error) {
	c := &tsupCmd{}
	return clientSetup(fs, getenv, &c.clientOpts, []string{"links|swarms"}, func(pos []string) (runner, error) {
		if pos[0] != "links" && pos[0] != "swarms" {
			return nil, fmt.Errorf("unknown page %q: want links or swarms", pos[0])
		}
		c.page = pos[0]
		return c, nil
	})
}

func (c *tsupCmd) run(ctx context.Context, stdout, _ io.Writer) error {
	if c.page == "links" {
		var links []localapi.TSUPLink
		if err := c.call(func(cl *localapi.Client) (err error) { links, err = cl.TSUPLinks(ctx); return err }); err != nil {
			return err
		}
		links = nonNilSlice(links)
		return c.output(stdout, localapi.TSUPLinksResult{Links: links}, func(w io.Writer) {
			fmt.Fprintf(w, "LINK\tNETWORK\tSTATE\tSWARMS\tMANDATES\tLAST PACKET\n")
			for _, l := range links {
				network := "internal"
				if l.External {
					network = "external"
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%d\t%s\n", l.Addr, network, l.State, l.Swarms, l.Mandates, ago(l.LastRecv))
			}
		})
	}
	var swarms []localapi.TSUPSwarm
	if err := c.call(func(cl *localapi.Client) (err error) { swarms, err = cl.TSUPSwarms(ctx); return err }); err != nil {
		return err
	}
	swarms = nonNilSlice(swarms)
	return c.output(stdout, localapi.TSUPSwarmsResult{Swarms: swarms}, func(w io.Writer) {
		fmt.Fprintf(w, "INFOHASH\tTRACKERS\tLEADER\tOWN\tINTERNAL\tEXTERNAL\n")
		for _, s := range swarms {
			fmt.Fprintf(w, "%s\t%d\t%s\t%d\t%d\t%d\n", s.Infohash, s.Trackers, orDash(s.InternalLeader), s.Own, s.Internal, s.External)
		}
	})
}

func nonNilSlice[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// ago is how long before now t was, "-" for never.
func ago(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return time.Since(t).Round(time.Second).String() + " ago"
}
