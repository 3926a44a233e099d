package records

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
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
