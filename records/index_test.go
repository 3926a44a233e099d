package records

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"
	"unsafe"

	"github.com/libp2p/go-libp2p/core/peer"
)

// TestKeySet drives one key's slot set through growth past the linear scan
// limit, shrinking and emptying, checking find against a model each step.
func TestKeySet(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var ks keySet
	model := map[peer.ID]int{} // announcer -> port
	check := func(step string) {
		t.Helper()
		if len(ks.slots) != len(model) {
			t.Fatalf("%s: %d slots, model %d", step, len(ks.slots), len(model))
		}
		if (ks.byAnnouncer != nil) && len(ks.slots) <= linearScanMax/2 {
			t.Fatalf("%s: map kept at %d slots", step, len(ks.slots))
		}
		for a, port := range model {
			i := ks.find(a)
			if i < 0 || ks.slots[i].announcer != a || int(ks.slots[i].port) != port {
				t.Fatalf("%s: find(%s) = %d", step, a, i)
			}
		}
		if ks.find("absent") != -1 {
			t.Fatalf("%s: found an absent announcer", step)
		}
	}
	for round := range 3 {
		for i := range 40 {
			a := peer.ID(fmt.Sprintf("a%d", rng.IntN(60)))
			if _, ok := model[a]; ok {
				continue
			}
			model[a] = i + 1
			ks.add(slot{announcer: a, port: uint16(i + 1)})
			check(fmt.Sprintf("round %d add %d", round, i))
		}
		for len(model) > round*3 {
			i := rng.IntN(len(ks.slots))
			delete(model, ks.slots[i].announcer)
			ks.remove(i)
			check(fmt.Sprintf("round %d remove", round))
		}
	}
	if cap(ks.slots) > 16 {
		t.Errorf("cap %d after shrinking to %d", cap(ks.slots), len(ks.slots))
	}
}

// TestGetEntriesIndependent: appending to one returned envelope must not
// overwrite the next one, which shares its buffer.
func TestGetEntriesIndependent(t *testing.T) {
	ctx := context.Background()
	s := NewMemory(Options{Now: newClock().Now})
	k := testKey(t, 1)
	for i := range 3 {
		if err := s.Put(ctx, seal(t, newIdentity(t, i), rec(k, 1, t0.Add(time.Hour)), testIP)); err != nil {
			t.Fatal(err)
		}
	}
	res, err := s.Get(ctx, k, 3)
	if err != nil || len(res.Entries) != 3 {
		t.Fatal(res, err)
	}
	second := bytes.Clone(res.Entries[1].Envelope)
	_ = append(res.Entries[0].Envelope, 0xee, 0xee, 0xee)
	if !bytes.Equal(res.Entries[1].Envelope, second) {
		t.Fatal("appending to one envelope overwrote the next")
	}
}

// TestAnnouncerInterned: records from one announcer share one copy of its ID.
func TestAnnouncerInterned(t *testing.T) {
	ctx := context.Background()
	s := NewMemory(Options{Now: newClock().Now})
	id := newIdentity(t, 0)
	for i := range 3 {
		if err := s.Put(ctx, seal(t, id, rec(testKey(t, i), 1, t0.Add(time.Hour)), testIP)); err != nil {
			t.Fatal(err)
		}
	}
	var ptrs []*byte
	for _, ks := range s.x.keys {
		ptrs = append(ptrs, unsafe.StringData(string(ks.slots[0].announcer)))
	}
	if ptrs[0] != ptrs[1] || ptrs[1] != ptrs[2] {
		t.Error("announcer ID stored more than once")
	}
}

// TestSourceAccounting drives a small capped store through random puts,
// replacements from moved addresses, removals, sweeps and evictions, and
// checks after every step that the per-source records, the heap and the
// slots agree.
func TestSourceAccounting(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(3, 4))
	c := newClock()
	s := NewMemory(Options{Now: c.Now, Seed: 1, Limits: Limits{Records: 40, Keys: 25, PeersPerKeyPerIP: 3, RecordsPerIP: 20}})
	ids := identities(t, 12)
	addrs := []netip.Addr{{}, netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2"),
		netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2"), netip.MustParseAddr("198.51.100.9")}
	seq := uint64(0)
	for step := range 3000 {
		switch r := rng.IntN(20); {
		case r < 14:
			seq++
			id := ids[rng.IntN(len(ids))]
			e := seal(t, id, rec(testKey(t, rng.IntN(40)), seq, c.Now().Add(time.Duration(1+rng.IntN(60))*time.Minute)), addrs[rng.IntN(len(addrs))])
			_ = s.Put(ctx, e)
		case r < 18:
			_ = s.Remove(ctx, testKey(t, rng.IntN(40)), ids[rng.IntN(len(ids))].id)
		case r < 19:
			c.Advance(time.Duration(rng.IntN(10)) * time.Minute)
		default:
			if _, err := s.Expire(ctx); err != nil {
				t.Fatal(err)
			}
		}
		checkSources(t, s.x, step)
	}
	if st := s.Stats(); st.Evicted == 0 {
		t.Errorf("no evictions in the run: %+v", st)
	}
}

func checkSources(t *testing.T, x *index, step int) {
	t.Helper()
	n := 0
	for k, ks := range x.keys {
		if ks.key != k {
			t.Fatalf("step %d: key set of %s says %s", step, k, ks.key)
		}
		for i := range ks.slots {
			sl := &ks.slots[i]
			addr := SourceAddr(sl.ip)
			if !addr.IsValid() {
				if sl.src != -1 {
					t.Fatalf("step %d: own record with src %d", step, sl.src)
				}
				continue
			}
			n++
			so := x.sources[addr]
			if so == nil || int(sl.src) >= len(so.refs) || so.refs[sl.src].ks != ks || so.refs[sl.src].announcer != sl.announcer {
				t.Fatalf("step %d: slot %s/%s not at its source index %d", step, k, sl.announcer, sl.src)
			}
		}
	}
	total := 0
	for addr, so := range x.sources {
		if so.addr != addr || len(so.refs) == 0 || x.heap[so.pos] != so {
			t.Fatalf("step %d: source %s inconsistent", step, addr)
		}
		total += len(so.refs)
	}
	if total != n || len(x.heap) != len(x.sources) {
		t.Fatalf("step %d: %d refs, %d sourced slots, heap %d, sources %d", step, total, n, len(x.heap), len(x.sources))
	}
	for i := 1; i < len(x.heap); i++ {
		if len(x.heap[(i-1)/2].refs) < len(x.heap[i].refs) {
			t.Fatalf("step %d: heap order broken at %d", step, i)
		}
	}
	if l := x.limits; x.records > l.Records || len(x.keys) > l.Keys {
		t.Fatalf("step %d: %d records, %d keys over the caps", step, x.records, len(x.keys))
	}
}

func TestBusiest(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	s := NewMemory(Options{Now: c.Now})
	ids := identities(t, 6)
	// Key i has i+1 records; key 4's last one expires soon.
	for k := range 5 {
		for a := range k + 1 {
			exp := t0.Add(time.Hour)
			if k == 4 && a == 4 {
				exp = t0.Add(time.Minute)
			}
			r := rec(testKey(t, k), 1, exp)
			r.Seed = a == 0
			if err := s.Put(ctx, seal(t, ids[a], r, testIP)); err != nil {
				t.Fatal(err)
			}
		}
	}
	c.Advance(2 * time.Minute)
	got := s.Busiest(3)
	if len(got) != 3 || got[0].Records() != 4 || got[1].Records() != 4 || got[2].Records() != 3 || got[0].Seeds != 1 {
		t.Fatalf("Busiest(3) = %+v", got)
	}
	if len(s.Busiest(100)) != 5 || s.Busiest(0) != nil {
		t.Fatal("Busiest bounds")
	}
}
