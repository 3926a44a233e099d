package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
)

// publicFlags configure tracker mode: a tracker for many clients on other
// hosts, like a classic one, backed by the local store and the DHT.
type publicFlags struct {
	addr      string
	allowlist string
}

func (f *publicFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.addr, "tracker-public", "", "`ADDR` (host:port) to serve as a public tracker for clients on any host, HTTP (http://ADDR/announce) and UDP on the same port; its clients are published into the DHT as bridged records")
	fs.StringVar(&f.allowlist, "tracker-allowlist", "", "`FILE` of infohashes (40 hex digits, one a line, # comments) the public tracker serves; others are refused; re-read when it changes")
}

func (f *publicFlags) check() error {
	if f.allowlist != "" && f.addr == "" {
		return errors.New("--tracker-allowlist needs --tracker-public")
	}
	if f.addr == "" {
		return nil
	}
	if _, _, err := net.SplitHostPort(f.addr); err != nil {
		return fmt.Errorf("--tracker-public %q: %v", f.addr, err)
	}
	return nil
}
