package records

import (
	"errors"
	"net/netip"
	"testing"
	"time"
)

// TestSignedAddr: a record with an address is version 2, one without is
// version 1, and an envelope whose payload type disagrees with its payload
// is refused either way: a signer's type says which fields it meant.
func TestSignedAddr(t *testing.T) {
	a := newIdentity(t, 0)
	k := testKey(t, 1)
	exp := t0.Add(time.Hour)
	for _, addr := range []string{"203.0.113.9", "2001:db8::9"} {
		e := seal(t, a, Record{Key: k, Port: 6881, Addr: netip.MustParseAddr(addr), Seq: 1, Expires: exp}, testIP)
		if !e.Signed() || e.Addr.String() != addr {
			t.Fatalf("opened %+v, want signed address %s", e.Record, addr)
		}
		if got := e.Endpoint().String(); got != netip.AddrPortFrom(netip.MustParseAddr(addr), 6881).String() {
			t.Errorf("Endpoint = %s, want the signed address, not the storing node's %s", got, testIP)
		}
	}
	v1 := seal(t, a, rec(k, 1, exp), testIP)
	if v1.Signed() || v1.Endpoint() != netip.AddrPortFrom(testIP, v1.Port) {
		t.Errorf("version 1 record: signed %v, endpoint %s", v1.Signed(), v1.Endpoint())
	}
	withAddr := Record{Key: k, Announcer: a.id, Port: 6881, Addr: netip.MustParseAddr("203.0.113.9"), Seq: 1, Expires: exp}
	p2, err := withAddr.MarshalRecord()
	if err != nil {
		t.Fatal(err)
	}
	p1, err := rec(k, 1, exp).withAnnouncer(a).MarshalRecord()
	if err != nil {
		t.Fatal(err)
	}
	for name, env := range map[string][]byte{
		"address under version 1":    sealRaw(t, a.priv, &rawRecord{EnvelopeDomain, PayloadType, p2}),
		"no address under version 2": sealRaw(t, a.priv, &rawRecord{EnvelopeDomain, PayloadTypeV2, p1}),
	} {
		if _, err := Open(env); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: Open = %v, want ErrMalformed", name, err)
		}
	}
	for _, bad := range []string{"::ffff:1.2.3.4", "fe80::1%eth0", "0.0.0.0", "224.0.0.1"} {
		r := withAddr
		r.Addr = netip.MustParseAddr(bad)
		if _, err := Seal(r, a.priv); !errors.Is(err, ErrMalformed) {
			t.Errorf("Seal with address %s = %v, want ErrMalformed", bad, err)
		}
	}
}

func (r Record) withAnnouncer(id testIdentity) Record {
	r.Announcer = id.id
	return r
}

// TestIsGlobal covers each refused range and a few global addresses.
func TestIsGlobal(t *testing.T) {
	refused := []string{
		"127.0.0.1", "127.255.0.9", "10.0.0.1", "172.16.5.4", "172.31.255.255", "192.168.1.1",
		"169.254.169.254", "100.64.0.1", "100.127.255.254", "0.0.0.0", "0.1.2.3", "224.0.0.1",
		"239.255.255.250", "255.255.255.255", "240.0.0.1", "192.0.2.66", "198.51.100.7",
		"203.0.113.1", "198.18.0.1", "192.0.0.8", "192.88.99.1",
		"::", "::1", "fe80::1", "fc00::1", "fd12:3456::1", "ff02::1", "2001:db8::1",
		"3fff::1", "100::1", "64:ff9b::a00:1", "2002:a00:1::1", "2001::1", "::ffff:8.8.8.8",
	}
	for _, s := range refused {
		if a := netip.MustParseAddr(s); IsGlobal(a) {
			t.Errorf("IsGlobal(%s) = true", s)
		}
		ep := netip.AddrPortFrom(netip.MustParseAddr(s), 6881)
		if err := CheckGlobalEndpoint(ep); err == nil {
			t.Errorf("CheckGlobalEndpoint(%s) = nil", ep)
		}
	}
	for _, s := range []string{"8.8.8.8", "1.1.1.1", "100.63.255.255", "100.128.0.1", "172.32.0.1", "2606:4700::1111", "2a00:1450::1"} {
		if !IsGlobal(netip.MustParseAddr(s)) {
			t.Errorf("IsGlobal(%s) = false", s)
		}
		if err := CheckGlobalEndpoint(netip.AddrPortFrom(netip.MustParseAddr(s), 6881)); err != nil {
			t.Errorf("CheckGlobalEndpoint(%s): %v", s, err)
		}
	}
	if IsGlobal(netip.MustParseAddr("fe80::1%eth0")) || IsGlobal(netip.Addr{}) {
		t.Error("zoned or invalid address is global")
	}
}
