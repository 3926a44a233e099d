package main

import (
	"errors"
	"flag"
	"log/slog"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kadtracker/kadtracker/node"
	"github.com/kadtracker/kadtracker/node/daemon"
	"github.com/kadtracker/kadtracker/node/localapi"
	"github.com/kadtracker/kadtracker/node/tsup"
	"github.com/kadtracker/kadtracker/records"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

const (
	hexV1  = "0123456789abcdef0123456789abcdef01234567"
	peerID = "12D3KooWQZop8AVYKEzemxNDqMiais6sFen8rUXEXNPs2vMPreF6"
)

var home = env{"HOME": "/home/u"}

func mustKey(t testing.TB, s string) records.Key {
	t.Helper()
	k, err := records.ParseKey(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func addrs(t testing.TB, ss ...string) []ma.Multiaddr {
	t.Helper()
	var out []ma.Multiaddr
	for _, s := range ss {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, a)
	}
	return out
}

func mustParse(t *testing.T, e env, args ...string) runner {
	t.Helper()
	r, err := parse(args, e.get)
	if err != nil {
		t.Fatalf("parse %q: %v", args, err)
	}
	return r
}

// daemonWant is the daemon command parse should give for HOME=/home/u and
// no flags, changed by f.
func daemonWant(f func(d *daemonCmd)) *daemonCmd {
	d := &daemonCmd{node: node.DefaultConfig(), logLevel: slog.LevelInfo, logFormat: "text"}
	d.node.DataDir = "/home/u/.kadtracker"
	d.rpcSocket = "/home/u/.kadtracker/kadtracker.sock"
	d.trackerHTTP, d.trackerUDP = daemon.DefaultFrontAddr, daemon.DefaultFrontAddr
	def := tsup.DefaultConfig()
	d.dht, d.tsup.hello, d.tsup.update, d.tsup.disconnect = true, def.HelloInterval, def.UpdateInterval, def.DisconnectInterval
	d.bridge.publish = true
	if f != nil {
		f(d)
	}
	return d
}

func TestParseRun(t *testing.T) {
	id, err := peer.Decode(peerID)
	if err != nil {
		t.Fatal(err)
	}
	boot := "/ip4/10.0.0.1/tcp/4001/p2p/" + peerID
	tests := []struct {
		name string
		env  env
		args []string
		want *daemonCmd
	}{
		{"defaults", home, nil, daemonWant(nil)},
		{"XDG_DATA_HOME", env{"HOME": "/home/u", "XDG_DATA_HOME": "/xdg"}, nil, daemonWant(func(d *daemonCmd) {
			d.node.DataDir, d.rpcSocket = "/xdg/kadtracker", "/xdg/kadtracker/kadtracker.sock"
		})},
		{"every flag", home, []string{
			"--data-dir", "/d", "--listen", "/ip4/127.0.0.1/tcp/0, /ip4/127.0.0.1/udp/0/quic-v1",
			"--bootstrap", boot, "--rpc-socket=/s.sock", "--replication", "3", "--dht-mode", "client",
			"--mdns", "--record-ttl", "1h", "--republish", "20m", "--log-level", "debug", "-log-format", "json",
			"--bridged-quorum", "1", "--bridged-local", "--store-recovery", "--exempt-ranges", "default,192.0.2.0/24",
			"--locality", "0.3",
		}, daemonWant(func(d *daemonCmd) {
			d.node.Locality = 0.3
			d.node.StoreRecovery = true
			d.node.Limits.Exempt = append(records.DefaultExempt(), netip.MustParsePrefix("192.0.2.0/24"))
			d.node.BridgeQuorum, d.node.LocalBridgedEndpoints = 1, true
			d.node.DataDir, d.rpcSocket = "/d", "/s.sock"
			d.node.ListenAddrs = addrs(t, "/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1")
			d.node.BootstrapPeers = []peer.AddrInfo{{ID: id, Addrs: addrs(t, "/ip4/10.0.0.1/tcp/4001")}}
			d.node.Replication, d.node.DHTMode, d.node.MDNS = 3, node.ModeClient, true
			d.node.RecordTTL, d.node.RepublishInterval = time.Hour, 20*time.Minute
			d.logLevel, d.logFormat = slog.LevelDebug, "json"
		})},
		{"every env var", env{
			"KADTRACKER_DATA_DIR": "/d", "KADTRACKER_LISTEN": "/ip4/127.0.0.1/tcp/5",
			"KADTRACKER_BOOTSTRAP": boot, "KADTRACKER_RPC_SOCKET": "/s.sock", "KADTRACKER_REPLICATION": "3",
			"KADTRACKER_DHT_MODE": "server", "KADTRACKER_MDNS": "true", "KADTRACKER_RECORD_TTL": "1h",
			"KADTRACKER_REPUBLISH": "20m", "KADTRACKER_LOG_LEVEL": "WARN", "KADTRACKER_LOG_FORMAT": "json",
		}, nil, daemonWant(func(d *daemonCmd) {
			d.node.DataDir, d.rpcSocket = "/d", "/s.sock"
			d.node.ListenAddrs = addrs(t, "/ip4/127.0.0.1/tcp/5")
			d.node.BootstrapPeers = []peer.AddrInfo{{ID: id, Addrs: addrs(t, "/ip4/10.0.0.1/tcp/4001")}}
			d.node.Replication, d.node.DHTMode, d.node.MDNS = 3, node.ModeServer, true
			d.node.RecordTTL, d.node.RepublishInterval = time.Hour, 20*time.Minute
			d.logLevel, d.logFormat = slog.LevelWarn, "json"
		})},
		{"flag beats env", env{"HOME": "/home/u", "KADTRACKER_REPLICATION": "5", "KADTRACKER_MDNS": "true", "KADTRACKER_DATA_DIR": "/env"},
			[]string{"--replication=3", "--mdns=false", "--data-dir", "/flag"}, daemonWant(func(d *daemonCmd) {
				d.node.Replication = 3
				d.node.DataDir, d.rpcSocket = "/flag", "/flag/kadtracker.sock"
			})},
		{"env data dir moves the socket", env{"KADTRACKER_DATA_DIR": "/env"}, nil, daemonWant(func(d *daemonCmd) {
			d.node.DataDir, d.rpcSocket = "/env", "/env/kadtracker.sock"
		})},
		{"tracker fronts", home, []string{"--tracker-http", "127.0.0.2:7000", "--tracker-udp="}, daemonWant(func(d *daemonCmd) {
			d.trackerHTTP, d.trackerUDP = "127.0.0.2:7000", ""
		})},
		{"tracker front beyond loopback, allowed", home, []string{"--tracker-http", "0.0.0.0:6969", "--tracker-allow-remote"}, daemonWant(func(d *daemonCmd) {
			d.trackerHTTP, d.trackerRemote = "0.0.0.0:6969", true
		})},
		{"plain tracker with TSUP", home, []string{"--dht=false", "--tsup-links", "/etc/links", "--tsup-update", "5s", "--tsup-advertise-ip", "10.0.0.1", "--tsup-plain-disconnect", "5m"}, daemonWant(func(d *daemonCmd) {
			d.dht, d.tsup.links, d.tsup.update, d.tsup.advertise = false, "/etc/links", 5*time.Second, "10.0.0.1"
			d.tsup.plainDisconnect = 5 * time.Minute
		})},
		{"empty env var is unset", env{"HOME": "/home/u", "KADTRACKER_REPLICATION": ""}, nil, daemonWant(nil)},
		{"repeated list flags add up", home, []string{"--listen", "/ip4/127.0.0.1/tcp/1", "--listen", "/ip4/127.0.0.1/tcp/2"}, daemonWant(func(d *daemonCmd) {
			d.node.ListenAddrs = addrs(t, "/ip4/127.0.0.1/tcp/1", "/ip4/127.0.0.1/tcp/2")
		})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := mustParse(t, tt.env, append([]string{"run"}, tt.args...)...)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseClients(t *testing.T) {
	key := mustKey(t, hexV1)
	sock := clientOpts{socket: "/home/u/.kadtracker/kadtracker.sock"}
	sockJSON := sock
	sockJSON.json = true
	tests := []struct {
		name string
		env  env
		args []string
		want runner
	}{
		{"status", home, []string{"status"}, &statusCmd{sock}},
		{"records json", home, []string{"records", "--json"}, &recordsCmd{sockJSON}},
		{"routing json", home, []string{"routing", "-json"}, &routingCmd{sockJSON}},
		{"peers flags after", home, []string{"peers", hexV1, "--json"}, &peersCmd{sockJSON, key, localapi.DefaultWant}},
		{"peers flags before", home, []string{"peers", "--json", hexV1}, &peersCmd{sockJSON, key, localapi.DefaultWant}},
		{"peers flags around", home, []string{"peers", "--want", "7", hexV1, "--json"}, &peersCmd{sockJSON, key, 7}},
		{"peers after --", home, []string{"peers", "--json", "--", hexV1}, &peersCmd{sockJSON, key, localapi.DefaultWant}},
		{"peers upper-case hex", home, []string{"peers", strings.ToUpper(hexV1)}, &peersCmd{sock, key, localapi.DefaultWant}},
		{"peers CID", home, []string{"peers", key.CID().String()}, &peersCmd{sock, key, localapi.DefaultWant}},
		{"announce", home, []string{"announce", hexV1, "--port", "6881", "--seed"}, &announceCmd{sock, key, 6881, true}},
		{"announce flags first", home, []string{"announce", "--port=6881", "--json", hexV1}, &announceCmd{sockJSON, key, 6881, false}},
		{"withdraw", home, []string{"withdraw", hexV1}, &withdrawCmd{sock, key}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := mustParse(t, tt.env, tt.args...)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestClientSocketOrder(t *testing.T) {
	all := env{
		"HOME": "/home/u", "XDG_DATA_HOME": "/xdg",
		"KADTRACKER_DATA_DIR": "/envdir", "KADTRACKER_RPC_SOCKET": "/env.sock",
	}
	without := func(keys ...string) env {
		e := env{}
		for k, v := range all {
			e[k] = v
		}
		for _, k := range keys {
			delete(e, k)
		}
		return e
	}
	tests := []struct {
		name string
		env  env
		args []string
		want string
	}{
		{"--rpc-socket first", all, []string{"--rpc-socket", "/flag.sock", "--data-dir", "/flagdir"}, "/flag.sock"},
		{"then --data-dir", all, []string{"--data-dir", "/flagdir"}, "/flagdir/kadtracker.sock"},
		{"then $KADTRACKER_RPC_SOCKET", all, nil, "/env.sock"},
		{"then $KADTRACKER_DATA_DIR", without("KADTRACKER_RPC_SOCKET"), nil, "/envdir/kadtracker.sock"},
		{"then $XDG_DATA_HOME", without("KADTRACKER_RPC_SOCKET", "KADTRACKER_DATA_DIR"), nil, "/xdg/kadtracker/kadtracker.sock"},
		{"then $HOME", without("KADTRACKER_RPC_SOCKET", "KADTRACKER_DATA_DIR", "XDG_DATA_HOME"), nil, "/home/u/.kadtracker/kadtracker.sock"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := mustParse(t, tt.env, append([]string{"status"}, tt.args...)...)
			if got := r.(*statusCmd).socket; got != tt.want {
				t.Errorf("socket %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name    string
		env     env
		args    []string
		wantErr string
	}{
		{"no command", home, nil, "no command"},
		{"unknown command", home, []string{"frob"}, `unknown command "frob"`},
		{"help unknown command", home, []string{"help", "frob"}, `unknown command "frob"`},
		{"unknown flag", home, []string{"status", "--frob"}, "flag provided but not defined: -frob"},
		{"run positional", home, []string{"run", "now"}, `unexpected argument "now"`},
		{"bad replication", home, []string{"run", "--replication", "many"}, `invalid value "many" for flag -replication`},
		{"bad dht mode", home, []string{"run", "--dht-mode", "peer"}, "want auto, server or client"},
		{"bad listen", home, []string{"run", "--listen", "127.0.0.1:4001"}, `"127.0.0.1:4001"`},
		{"bootstrap without ID", home, []string{"run", "--bootstrap", "/ip4/1.2.3.4/tcp/4001"}, "no /p2p/ peer ID"},
		{"bad duration", home, []string{"run", "--record-ttl", "soon"}, `invalid value "soon" for flag -record-ttl`},
		{"bad log level", home, []string{"run", "--log-level", "loud"}, "want debug, info, warn or error"},
		{"bad log format", home, []string{"run", "--log-format", "xml"}, "want text or json"},
		{"bad env var", env{"HOME": "/h", "KADTRACKER_REPUBLISH": "often"}, []string{"run"}, `KADTRACKER_REPUBLISH="often"`},
		{"bad env bool", env{"HOME": "/h", "KADTRACKER_MDNS": "sure"}, []string{"run"}, `KADTRACKER_MDNS="sure"`},
		{"tracker beyond loopback", home, []string{"run", "--tracker-udp", "0.0.0.0:6969"}, "--tracker-udp: 0.0.0.0:6969 is not a loopback address; add --tracker-allow-remote"},
		{"tracker address without port", home, []string{"run", "--tracker-http", "127.0.0.1"}, "--tracker-http: address 127.0.0.1: missing port"},
		{"tracker host name", home, []string{"run", "--tracker-http", "example.org:80"}, "want an IP address and port"},
		{"tsup publish without a DHT", home, []string{"run", "--dht=false", "--tsup-links", "/l", "--tsup-publish"}, "cannot go with --dht=false"},
		{"no home", env{}, []string{"run"}, "no data directory"},
		{"client no home", env{}, []string{"status"}, "set --rpc-socket or --data-dir"},
		{"peers no infohash", home, []string{"peers", "--json"}, "missing INFOHASH"},
		{"peers two infohashes", home, []string{"peers", hexV1, hexV1}, "unexpected argument"},
		{"peers bad infohash", home, []string{"peers", "abc"}, `INFOHASH: records: bad infohash: "abc"`},
		{"peers want 0", home, []string{"peers", hexV1, "--want", "0"}, "--want 0: want 1..1000"},
		{"peers want too many", home, []string{"peers", hexV1, "--want", "1001"}, "--want 1001"},
		{"announce no port", home, []string{"announce", hexV1}, "--port 0: want the client's port"},
		{"announce port too big", home, []string{"announce", hexV1, "--port", "65536"}, "--port 65536"},
		{"announce negative port", home, []string{"announce", hexV1, "--port", "-1"}, `invalid value "-1" for flag -port`},
		{"withdraw nothing", home, []string{"withdraw"}, "missing INFOHASH"},
		{"version argument", home, []string{"version", "x"}, `unexpected argument "x"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := parse(tt.args, tt.env.get)
			var ue *usageError
			if !errors.As(err, &ue) {
				t.Fatalf("parse %q = %v, %v; want a usage error", tt.args, r, err)
			}
			if !strings.Contains(ue.msg, tt.wantErr) {
				t.Errorf("error %q, want it to contain %q", ue.msg, tt.wantErr)
			}
		})
	}
}

// TestExitCodes checks what the user sees: help on stdout with exit 0,
// usage errors on stderr with exit 2.
func TestExitCodes(t *testing.T) {
	for _, c := range commands {
		for _, h := range []string{"--help", "-h"} {
			out, errOut, code := cli(t, home, c.name, h)
			if code != 0 || errOut != "" || !strings.HasPrefix(out, "usage: kadtracker "+c.name) {
				t.Errorf("%s %s: exit %d, stdout %q, stderr %q", c.name, h, code, out, errOut)
			}
			// Every flag is listed with its default.
			fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
			c.setup(fs, home.get)
			fs.VisitAll(func(f *flag.Flag) {
				if !strings.Contains(out, "--"+f.Name) {
					t.Errorf("%s --help does not list --%s", c.name, f.Name)
				}
			})
			if n := strings.Count(out, "(default "); n != countFlags(fs) {
				t.Errorf("%s --help shows %d defaults for %d flags:\n%s", c.name, n, countFlags(fs), out)
			}
		}
	}
	if out, _, code := cli(t, home, "help", "peers"); code != 0 || !strings.HasPrefix(out, "usage: kadtracker peers") {
		t.Errorf("help peers: exit %d, %q", code, out)
	}
	for _, args := range [][]string{{"--help"}, {"help"}, {"-h"}} {
		if out, _, code := cli(t, home, args...); code != 0 || !strings.Contains(out, "commands:") {
			t.Errorf("%q: exit %d, %q", args, code, out)
		}
	}
	for _, args := range [][]string{nil, {"frob"}} {
		out, errOut, code := cli(t, home, args...)
		if code != 2 || out != "" || !strings.Contains(errOut, "commands:") {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want usage on stderr, exit 2", args, code, out, errOut)
		}
	}
	out, errOut, code := cli(t, home, "peers", "--frob")
	if code != 2 || out != "" || errOut != "kadtracker peers: flag provided but not defined: -frob\nRun 'kadtracker peers --help' for usage.\n" {
		t.Errorf("bad flag: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if out, _, code := cli(t, home, "run", "--help"); code != 0 || !strings.Contains(out, "[$KADTRACKER_DATA_DIR]") {
		t.Errorf("run --help does not name the environment variables:\n%s", out)
	}
}

func countFlags(fs *flag.FlagSet) int {
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	return n
}

func TestVersion(t *testing.T) {
	out, _, code := cli(t, home, "version")
	if code != 0 || !strings.HasPrefix(out, "kadtracker ") || !strings.HasSuffix(out, "\n") {
		t.Errorf("version: exit %d, %q", code, out)
	}
}
