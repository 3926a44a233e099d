package daemon

import (
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kadtracker/kadtracker/node/tracker/wire"
	"github.com/libp2p/go-libp2p/core/peer"
	"net/netip"
)

// httpScrape scrapes one infohash from the HTTP tracker whose announce URL
// is announceURL.
func httpScrape(t *testing.T, announceURL string, ih [20]byte) wire.ScrapeFile {
	t.Helper()
	url := strings.Replace(announceURL, "/announce", "/scrape", 1) + "?" + string(wire.AppendScrapeQuery(nil, [][20]byte{ih}))
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	files, err := wire.ParseScrapeResponse(body)
	if err != nil || len(files) != 1 {
		t.Fatalf("scrape %s: %v (%q)", url, err, body)
	}
	return files[0]
}

// TestSeedHearsOfLeecher: a seed announces to daemon A, then a leecher to
// daemon B; the seed's re-announce 3 s later is answered with the leecher,
// and A's scrape counts both. Before, a seed's answer came from a lookup
// cache up to 60 s old, so with qBittorrent's 300 s re-announce a seed
// heard of a leecher 5-10 minutes late (issue 14).
func TestSeedHearsOfLeecher(t *testing.T) {
	dir := shortDir(t)
	ih := [20]byte{0xf0, 0x0d, 0x5e, 0xed}
	const seedPort, leechPort = 7100, 7101
	leecher := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), leechPort)

	bcfg := loopbackNode(filepath.Join(dir, "b"))
	b := startDaemon(t, "b", Config{Node: &bcfg, RPCSocket: filepath.Join(dir, "b.sock"), Front: &FrontConfig{HTTP: "127.0.0.1:0"}})
	acfg := loopbackNode(filepath.Join(dir, "a"))
	acfg.BootstrapPeers = []peer.AddrInfo{{ID: b.Node().ID(), Addrs: b.Node().Host().Addrs()}}
	a := startDaemon(t, "a", Config{Node: &acfg, RPCSocket: filepath.Join(dir, "a.sock"), Front: &FrontConfig{HTTP: "127.0.0.1:0"}})

	httpAnnounce(t, a.Info().TrackerHTTP, ih, seedPort, 0)
	httpAnnounce(t, b.Info().TrackerHTTP, ih, leechPort, 1000)
	time.Sleep(3 * time.Second)
	if got := httpAnnounce(t, a.Info().TrackerHTTP, ih, seedPort, 0); !slices.Contains(got, leecher) {
		t.Errorf("the seed's re-announce 3 s after the leecher's got %v, without the leecher %v", got, leecher)
	}
	if sf := httpScrape(t, a.Info().TrackerHTTP, ih); sf.Complete != 1 || sf.Incomplete != 1 {
		t.Errorf("daemon a's scrape: %d seeds, %d leechers; want 1 and 1", sf.Complete, sf.Incomplete)
	}
}
