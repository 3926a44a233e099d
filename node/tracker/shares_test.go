package tracker

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/kadtracker/kadtracker/node/tracker/wire"
	"github.com/kadtracker/kadtracker/records"
)

// The public tracker's floods, each from 127.0.0.2 while 127.0.0.1 asks
// to be served, on real loopback sockets. Each runs with the per-address
// shares (the defaults) and without them (the control): without, the
// flood locks 127.0.0.1 out.

const attacker, honest = "127.0.0.2", "127.0.0.1"

// publicFront serves a public-mode front over HTTP; unprotected turns the
// per-address shares off.
func publicFront(t *testing.T, unprotected bool, tune func(*Config)) (*Tracker, string) {
	cfg := testConfig()
	cfg.ExternalIP = true
	if unprotected {
		cfg.SwarmClientsPerAddr, cfg.MinSwarmsPerAddr, cfg.NewSwarmsPerAddr = 0, 0, 0
		cfg.HTTPConnsPerAddr, cfg.HTTPIdleConnsPerAddr = 0, 0
	}
	if tune != nil {
		tune(&cfg)
	}
	tr := newTracker(t, newFakeNode(), cfg)
	tr.unprotected = unprotected
	return tr, serveHTTP(t, tr)
}

// clientFrom is an HTTP client whose connections come from src.
func clientFrom(t *testing.T, src string, timeout time.Duration) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	tp := &http.Transport{DialContext: d.DialContext}
	t.Cleanup(tp.CloseIdleConnections)
	return &http.Client{Transport: tp, Timeout: timeout}
}

// announceFrom announces r with c; a failure reason comes back as an error.
func announceFrom(c *http.Client, base string, r wire.AnnounceRequest) (wire.AnnounceResponse, error) {
	resp, err := c.Get(announceURL(base, r))
	if err != nil {
		return wire.AnnounceResponse{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return wire.AnnounceResponse{}, err
	}
	return wire.ParseAnnounceResponse(body)
}

// 64 announces of one torrent from one address (one client per port)
// filled the swarm's 64 client slots for 20 minutes.
func TestFloodSwarmClientSlots(t *testing.T) {
	for _, unprotected := range []bool{false, true} {
		t.Run(map[bool]string{false: "shares", true: "control"}[unprotected], func(t *testing.T) {
			tr, base := publicFront(t, unprotected, nil)
			ih := ihash(60)
			flood := clientFrom(t, attacker, 10*time.Second)
			for port := range uint16(maxClientsPerSwarm) {
				announceFrom(flood, base, areq(ih, 10000+port, 0))
			}
			resp, err := announceFrom(clientFrom(t, honest, 10*time.Second), base, areq(ih, 6881, 100))
			st := tr.Stats()
			t.Logf("honest answer: %d peers, err %v; stats: clients %d, refused %d", len(resp.Peers), err, st.Clients, st.RefusedClients)
			if unprotected {
				if err == nil || st.Clients != maxClientsPerSwarm {
					t.Fatalf("control: the flood did not lock the swarm (err %v, %d clients)", err, st.Clients)
				}
				return
			}
			if err != nil || len(resp.Peers) == 0 {
				t.Fatalf("honest client refused: %v", err)
			}
			if want := uint64(maxClientsPerSwarm - DefaultConfig().SwarmClientsPerAddr); st.RefusedClients != want || st.Clients != DefaultConfig().SwarmClientsPerAddr+1 {
				t.Fatalf("refused %d (want %d), %d clients", st.RefusedClients, want, st.Clients)
			}
		})
	}
}

// Junk infohashes from one address filled the cache (CacheSize swarms,
// each with a live client), and every new torrent got "tracker is full".
// The flood is CacheSize+1% as in the report (10,100 for 10,000), on a
// cache of 1,000 to keep the test short; NewSwarmsPerAddr is then the
// cache's size, so the cache fills.
func TestFloodJunkInfohashes(t *testing.T) {
	for _, unprotected := range []bool{false, true} {
		t.Run(map[bool]string{false: "shares", true: "control"}[unprotected], func(t *testing.T) {
			tr, base := publicFront(t, unprotected, func(c *Config) { c.CacheSize = 1000 })
			flood := clientFrom(t, attacker, 10*time.Second)
			junk := func() {
				for i := range 1010 {
					var ih [20]byte
					ih[0], ih[1], ih[19] = byte(i>>8), byte(i), 0xee
					announceFrom(flood, base, areq(ih, 7000, 100))
				}
			}
			junk()
			resp, err := announceFrom(clientFrom(t, honest, 10*time.Second), base, areq(ihash(61), 6881, 100))
			st := tr.Stats()
			t.Logf("honest answer err %v; stats: swarms %d, refused %d, shares taken %d", err, st.Swarms, st.Refused, st.SharesTaken)
			if unprotected {
				if err == nil {
					t.Fatal("control: the flood did not fill the tracker")
				}
				return
			}
			if err != nil || resp.Interval == 0 {
				t.Fatalf("honest torrent refused: %v", err)
			}
			// The ten swarms past the cache: refused as the address holding
			// the most, or by its new-swarm rate.
			if st.SharesTaken != 1 || st.Refused+st.RefusedNewSwarms != 10 || st.Swarms != 1000 {
				t.Fatalf("stats %+v", st)
			}
			// The flood goes on, every junk infohash again: the swarm taken
			// does not come back, and 127.0.0.1 keeps its share.
			junk()
			good := clientFrom(t, honest, 10*time.Second)
			for _, ih := range [][20]byte{ihash(61), ihash(66)} {
				if _, err := announceFrom(good, base, areq(ih, 6881, 100)); err != nil {
					t.Fatalf("honest torrent %x refused after the second flood: %v", ih[0], err)
				}
			}
			if st := tr.Stats(); st.SharesTaken != 2 || st.Swarms != 1000 || st.Leaving > 2 {
				t.Fatalf("after the second flood: %+v", st)
			}
		})
	}
}

// The new-swarm rate: one address adds NewSwarmsPerAddr swarms at once;
// the rest are refused and counted, others are not affected.
func TestNewSwarmRate(t *testing.T) {
	tr, base := publicFront(t, false, func(c *Config) { c.NewSwarmsPerAddr = 50 })
	flood := clientFrom(t, attacker, 10*time.Second)
	refused := 0
	for i := range 80 {
		var ih [20]byte
		ih[0], ih[19] = byte(i), 0xdd
		if _, err := announceFrom(flood, base, areq(ih, 7000, 100)); err != nil {
			refused++
		}
	}
	if _, err := announceFrom(clientFrom(t, honest, 10*time.Second), base, areq(ihash(62), 6881, 100)); err != nil {
		t.Fatalf("honest torrent refused: %v", err)
	}
	if st := tr.Stats(); refused != 30 || st.RefusedNewSwarms != 30 || st.Swarms != 51 {
		t.Fatalf("%d refused; stats %+v", refused, st)
	}
}

// 1,024 keep-alive connections from one address, each idle after one
// announce, held every place of the HTTP front: a new connection waited
// in the backlog until one closed (two minutes).
// "cut first" runs without the per-address caps: closing idle connections
// when the front is full is enough on its own (and is what stops the same
// flood from many addresses).
func TestFloodIdleKeepAlive(t *testing.T) {
	for _, mode := range []string{"shares", "cut first", "control"} {
		unprotected := mode == "control"
		t.Run(mode, func(t *testing.T) {
			tr, base := publicFront(t, unprotected, func(c *Config) {
				if mode == "cut first" {
					c.HTTPConnsPerAddr, c.HTTPIdleConnsPerAddr = 0, 0
				}
			})
			target := base[len("http://"):]
			req := "GET " + announceURL("", areq(ihash(63), 7000, 100)) + " HTTP/1.1\r\nHost: tracker\r\n\r\n"
			d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(attacker)}, Timeout: 5 * time.Second}
			var held []net.Conn
			defer func() {
				for _, c := range held {
					c.Close()
				}
			}()
			for range maxHTTPConns {
				c, err := d.Dial("tcp", target)
				if err != nil {
					t.Fatal(err)
				}
				held = append(held, c)
				c.SetDeadline(time.Now().Add(5 * time.Second))
				if _, err := io.WriteString(c, req); err != nil {
					t.Fatal(err)
				}
				// The answer, or the close of a connection cut for the next.
				if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				} else if !unprotected {
					continue
				} else {
					t.Fatalf("control: %v", err)
				}
			}
			timeout := 10 * time.Second
			if unprotected {
				timeout = time.Second // it would wait two minutes
			}
			_, err := announceFrom(clientFrom(t, honest, timeout), base, areq(ihash(64), 6881, 100))
			st := tr.Stats()
			t.Logf("honest: %v; stats: idle cut %d, refused %d", err, st.HTTPIdleCut, st.HTTPConnsRefused)
			if unprotected {
				if err == nil {
					t.Fatal("control: the flood did not hold the front")
				}
				return
			}
			if err != nil {
				t.Fatalf("honest client not served: %v", err)
			}
			// Every idle connection past the address's share was cut, or
			// the oldest one for the honest client.
			want := uint64(maxHTTPConns - DefaultConfig().HTTPIdleConnsPerAddr)
			if mode == "cut first" {
				want = 1
			}
			eventually(t, "idle connections cut", func() bool { return tr.Stats().HTTPIdleCut == want })
		})
	}
}

// Many connections from one address that send nothing: past
// HTTPConnsPerAddr they are closed at once, and the others are served.
func TestHTTPConnsPerAddr(t *testing.T) {
	tr, base := publicFront(t, false, func(c *Config) { c.HTTPConnsPerAddr = 16 })
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(attacker)}}
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for range 40 {
		c, err := d.Dial("tcp", base[len("http://"):])
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	eventually(t, "refusals", func() bool { return tr.Stats().HTTPConnsRefused == 24 })
	if _, err := announceFrom(clientFrom(t, honest, 10*time.Second), base, areq(ihash(65), 6881, 100)); err != nil {
		t.Fatalf("honest client not served: %v", err)
	}
}

// Each address's holdings follow its clients in and out, so the table
// empties when they leave.
func TestHeldFollowsClients(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr, _ := New(newFakeNode(), testConfig())
		defer tr.Close()
		for i := range 3 {
			tr.announce(t.Context(), treq(ihash(byte(i)), "127.0.0.1:7001", false), nil)
			tr.announce(t.Context(), treq(ihash(byte(i)), "127.0.0.1:7002", false), nil)
			tr.announce(t.Context(), treq(ihash(byte(i)), "[2001:db8::1]:7001", false), nil)
		}
		tr.mu.Lock()
		v4, v6 := tr.held[addrOf(netip.MustParseAddr("127.0.0.1"))], tr.held[addrOf(netip.MustParseAddr("2001:db8::2"))]
		tr.mu.Unlock()
		if v4 != 3 || v6 != 3 {
			t.Fatalf("held %d and %d, want 3 and 3", v4, v6)
		}
		stop := treq(ihash(0), "127.0.0.1:7001", false)
		stop.event = wire.EventStopped
		tr.announce(t.Context(), stop, nil) // 7002 still holds swarm 0
		tr.mu.Lock()
		v4 = tr.held[addrOf(netip.MustParseAddr("127.0.0.1"))]
		tr.mu.Unlock()
		if v4 != 3 {
			t.Fatalf("held %d after one of two clients stopped, want 3", v4)
		}
		time.Sleep(DefaultConfig().ClientTimeout + 2*sweepEvery) // the rest lapse
		synctest.Wait()
		tr.mu.Lock()
		defer tr.mu.Unlock()
		if len(tr.held) != 0 || len(tr.newSwarms) != 0 {
			t.Fatalf("held %v, rates %v after every client left", tr.held, tr.newSwarms)
		}
	})
}

func TestAddrOf(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1":         "192.0.2.1/32",
		"::ffff:192.0.2.1":  "192.0.2.1/32",
		"2001:db8:1:2:3::4": "2001:db8:1:2::/64",
		"fe80::1%eth0":      "fe80::/64",
	} {
		if got := addrOf(netip.MustParseAddr(in)); got != netip.MustParsePrefix(want) {
			t.Errorf("addrOf(%s) = %v, want %s", in, got, want)
		}
	}
}

// slowWithdraw is a fakeNode whose Withdraw waits for release.
type slowWithdraw struct {
	*fakeNode
	release chan struct{}
}

func (n *slowWithdraw) Withdraw(ctx context.Context, key records.Key) error {
	select {
	case <-n.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	return n.fakeNode.Withdraw(ctx, key)
}

// A swarm whose clients have all left makes room at once, while its
// withdraw still runs: it leaves the cache, the withdraw goes on.
func TestLeftSwarmsMakeRoom(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := &slowWithdraw{fakeNode: newFakeNode(), release: make(chan struct{})}
		cfg := testConfig()
		cfg.CacheSize = 2
		tr, _ := New(n, cfg)
		defer tr.Close()
		for _, b := range []byte{1, 2} {
			if _, err := tr.announce(t.Context(), treq(ihash(b), "127.0.0.1:7001", false), nil); err != nil {
				t.Fatal(err)
			}
		}
		synctest.Wait()
		stop := treq(ihash(1), "127.0.0.1:7001", false)
		stop.event = wire.EventStopped
		tr.announce(t.Context(), stop, nil)
		synctest.Wait() // the withdraw waits
		if _, err := tr.announce(t.Context(), treq(ihash(3), "127.0.0.1:7001", false), nil); err != nil {
			t.Fatalf("new swarm refused while a left one withdraws: %v", err)
		}
		synctest.Wait()
		if st := tr.Stats(); st.Swarms != 2 || st.Leaving != 1 || st.Published != 3 {
			t.Fatalf("stats %+v", st)
		}
		close(n.release)
		synctest.Wait()
		if st := tr.Stats(); st.Leaving != 0 || st.Published != 2 || len(n.ops("withdraw")) != 1 {
			t.Fatalf("after the withdraw: %+v", st)
		}
	})
}
