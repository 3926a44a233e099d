package tsup

import (
	"strings"
	"testing"
	"time"
)

// --tsup-disconnect 5m was refused because the plain links' fixed 4 min
// could not be below it; now they follow it, never below XBT's 240 s.
func TestPlainDisconnectFollows(t *testing.T) {
	for _, tc := range []struct {
		disconnect, plain, want time.Duration
	}{
		{30 * time.Second, 0, MinPlainDisconnect},
		{5 * time.Minute, 0, 5 * time.Minute},
		{5 * time.Minute, time.Minute, time.Minute},
	} {
		cfg := DefaultConfig()
		cfg.DisconnectInterval, cfg.PlainDisconnectInterval = tc.disconnect, tc.plain
		if err := cfg.Validate(); err != nil {
			t.Errorf("disconnect %v, plain %v refused: %v", tc.disconnect, tc.plain, err)
		}
		if got := cfg.PlainDisconnect(); got != tc.want {
			t.Errorf("disconnect %v, plain %v: plain links drop after %v, want %v", tc.disconnect, tc.plain, got, tc.want)
		}
	}
	// A link without the extensions drops after PlainDisconnect.
	net, a, b := pair(t, 21, 0, func(i int, c *Config) {
		c.NoExtensions = i == 1
		c.DisconnectInterval = 5 * time.Minute
	})
	if _, ok := net.runUntil(time.Minute, time.Second, func() bool { return stateOf(a) == "connected" }); !ok {
		t.Fatal("no link")
	}
	b.alive = false
	net.runFor(5*time.Minute - 30*time.Second)
	if s := stateOf(a); s != "connected" {
		t.Fatalf("dropped before 5 min of silence: %s", s)
	}
	net.runFor(time.Minute)
	if s := stateOf(a); s == "connected" {
		t.Fatal("still connected after 5 min of silence")
	}
}

// Start-up errors name the flags a user can set.
func TestValidateNamesFlags(t *testing.T) {
	for _, tc := range []struct {
		tweak func(*Config)
		want  []string
	}{
		{func(c *Config) { c.HelloInterval = time.Minute }, []string{"--tsup-disconnect", "--tsup-hello"}},
		{func(c *Config) { c.UpdateInterval = 2 * time.Minute }, []string{"--tsup-update", "at most 1m40s"}},
		{func(c *Config) { c.DisconnectInterval = 2 * time.Hour }, []string{"--tsup-disconnect"}},
		{func(c *Config) { c.PlainDisconnectInterval = time.Second }, []string{"--tsup-plain-disconnect", "0 to follow --tsup-disconnect"}},
	} {
		cfg := DefaultConfig()
		tc.tweak(&cfg)
		err := cfg.Validate()
		for _, w := range tc.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("error %v does not name %q", err, w)
			}
		}
	}
}
