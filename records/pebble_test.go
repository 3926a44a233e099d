package records

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	ds "github.com/ipfs/go-datastore"
	pebbleds "github.com/ipfs/go-ds-pebble"
)

func openPebbleT(t *testing.T, dir string, opts Options) *Pebble {
	t.Helper()
	s, err := OpenPebble(dir, opts)
	if err != nil {
		t.Fatalf("OpenPebble: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestPebbleReopen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	c := newClock()
	ids := identities(t, 3)
	k1, k2 := testKey(t, 1), testKeyV2(t, 2)

	s := openPebbleT(t, dir, Options{Now: c.Now})
	short := seal(t, ids[0], rec(k1, 1, t0.Add(10*time.Minute)), testIP)
	long := seal(t, ids[1], rec(k1, 4, t0.Add(time.Hour)), netip.MustParseAddr("2001:db8::7"))
	self := seal(t, ids[2], rec(k2, 1, t0.Add(time.Hour)), netip.Addr{})
	for _, e := range []Entry{short, long, self} {
		if err := s.Put(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	// A replaced and a removed record must not come back.
	replaced := seal(t, ids[1], rec(k1, 5, t0.Add(time.Hour)), testIP)
	if err := s.Put(ctx, replaced); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, seal(t, ids[0], rec(k2, 1, t0.Add(time.Hour)), testIP)); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(ctx, k2, ids[0].id); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	c.Advance(30 * time.Minute)
	s = openPebbleT(t, dir, Options{Now: c.Now})
	if kept, dropped := s.Loaded(); kept != 2 || dropped != 1 {
		t.Fatalf("Loaded = %d kept, %d dropped; want 2, 1", kept, dropped)
	}
	if st := s.Stats(); st != (Stats{Keys: 2, Records: 2}) {
		t.Errorf("Stats = %+v", st)
	}
	res, err := s.Get(ctx, k1, 10)
	if err != nil || len(res.Entries) != 1 {
		t.Fatalf("Get(k1) = %+v, %v", res, err)
	}
	equalEntry(t, res.Entries[0], replaced)
	res, err = s.Get(ctx, k2, 10)
	if err != nil || len(res.Entries) != 1 {
		t.Fatalf("Get(k2) = %+v, %v", res, err)
	}
	equalEntry(t, res.Entries[0], self)
	// The loaded records keep their seq.
	if err := s.Put(ctx, seal(t, ids[1], rec(k1, 5, t0.Add(2*time.Hour)), testIP)); !errors.Is(err, ErrStale) {
		t.Errorf("Put(stored seq) after reopen = %v, want ErrStale", err)
	}
	s.Close()

	// The expired record was deleted from disk, not just skipped.
	s = openPebbleT(t, dir, Options{Now: c.Now})
	if kept, dropped := s.Loaded(); kept != 2 || dropped != 0 {
		t.Errorf("Loaded on third open = %d, %d; want 2, 0", kept, dropped)
	}
}

func TestPebbleCorruptValues(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	c := newClock()
	ids := identities(t, 4)
	k1 := testKey(t, 1)

	s := openPebbleT(t, dir, Options{Now: c.Now})
	var es []Entry
	for i := range 4 {
		e := seal(t, ids[i], rec(k1, 1, t0.Add(time.Hour)), testIP)
		es = append(es, e)
		if err := s.Put(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()

	// Spoil three of the four records, and add a stray value, behind the
	// store's back.
	d, err := pebbleds.NewDatastore(dir)
	if err != nil {
		t.Fatal(err)
	}
	tampered := append([]byte(nil), es[1].Envelope...)
	tampered[len(tampered)-1] ^= 1 // the signature's last byte
	for k, v := range map[ds.Key][]byte{
		dsKey(k1, ids[0].id):                                  []byte("not a protobuf \xff\xff\xff"),
		dsKey(k1, ids[1].id):                                  encodeValue(tampered, testIP),
		dsKey(k1, ids[2].id):                                  encodeValue(es[3].Envelope, testIP), // another record's
		ds.NewKey("/r/garbage/key"):                           {0x0a, 0x03, 1, 2, 3},
		dsKey(testKey(t, 9), ids[3].id).Child(ds.NewKey("x")): encodeValue(es[3].Envelope, testIP),
	} {
		if err := d.Put(ctx, k, v); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}

	s = openPebbleT(t, dir, Options{Now: c.Now})
	if kept, dropped := s.Loaded(); kept != 1 || dropped != 5 {
		t.Fatalf("Loaded = %d kept, %d dropped; want 1, 5", kept, dropped)
	}
	res, err := s.Get(ctx, k1, 10)
	if err != nil || len(res.Entries) != 1 {
		t.Fatalf("Get = %+v, %v", res, err)
	}
	equalEntry(t, res.Entries[0], es[3])
}

// TestPebbleLoadLimits: records over today's limits are dropped on load.
func TestPebbleLoadLimits(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	c := newClock()
	ids := identities(t, 3)
	s := openPebbleT(t, dir, Options{Now: c.Now})
	for i := range 3 {
		if err := s.Put(ctx, seal(t, ids[i], rec(testKey(t, 1), 1, t0.Add(time.Hour)), testIP)); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	s = openPebbleT(t, dir, Options{Now: c.Now, Limits: Limits{PeersPerKey: 2}})
	if kept, dropped := s.Loaded(); kept != 2 || dropped != 1 {
		t.Fatalf("Loaded = %d, %d; want 2, 1", kept, dropped)
	}
}

func TestPebbleOpenErrors(t *testing.T) {
	dir := t.TempDir()
	openPebbleT(t, dir, Options{})
	// pebble locks its directory: a second store on it fails cleanly.
	if s2, err := OpenPebble(dir, Options{}); err == nil {
		s2.Close()
		t.Fatal("second OpenPebble on a directory in use succeeded")
	}
	f := dir + "/file"
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenPebble(f, Options{}); err == nil {
		t.Fatal("OpenPebble on a file succeeded")
	}
}

// TestPebbleSIGKILL puts records in a child process, kills it with SIGKILL
// as soon as Put has returned, and finds every record on reopen.
func TestPebbleSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	const n = 50
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestPebbleSIGKILLChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), "RECORDS_SIGKILL_DIR="+dir, "RECORDS_SIGKILL_N="+strconv.Itoa(n))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	done := false
	for sc.Scan() {
		if sc.Text() == "stored" {
			done = true
			break
		}
	}
	// Kill at once: no Close, no deferred flush.
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if !done {
		t.Fatal("child did not report its records stored")
	}
	s := openPebbleT(t, dir, Options{})
	if kept, dropped := s.Loaded(); kept != n || dropped != 0 {
		t.Fatalf("after SIGKILL: Loaded = %d, %d; want %d, 0", kept, dropped, n)
	}
}

func TestPebbleSIGKILLChild(t *testing.T) {
	dir := os.Getenv("RECORDS_SIGKILL_DIR")
	if dir == "" {
		t.Skip("the child of TestPebbleSIGKILL")
	}
	n, _ := strconv.Atoi(os.Getenv("RECORDS_SIGKILL_N"))
	wo := pebble.Sync
	if os.Getenv("RECORDS_SIGKILL_NOSYNC") != "" {
		wo = pebble.NoSync // TestPebbleDamagedWAL: speed, not durability
	}
	s, err := openPebble(dir, Options{}, wo)
	if err != nil {
		t.Fatal(err)
	}
	id := newIdentity(t, 0)
	for i := range n {
		if err := s.Put(context.Background(), seal(t, id, rec(testKey(t, i), 1, time.Now().Add(time.Hour)), testIP)); err != nil {
			t.Fatal(err)
		}
	}
	// As the node's sweep does every minute: the count checkpoint follows.
	if _, err := s.Expire(context.Background()); err != nil {
		t.Fatal(err)
	}
	if wo == pebble.NoSync {
		if err := s.ds.DB.LogData(nil, pebble.Sync); err != nil { // the WAL on disk, not in a buffer
			t.Fatal(err)
		}
	}
	fmt.Println("stored")
	time.Sleep(time.Hour) // until SIGKILL
}
