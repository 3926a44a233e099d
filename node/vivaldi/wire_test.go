package vivaldi

import (
	"bytes"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

func TestWireGolden(t *testing.T) {
	c := Coord{Vec: [Dims]float64{0.5, -0.25, 0}, Height: 0.001, Error: 1.5}
	const want = "3f000000" + "be800000" + "00000000" + "3a83126f" + "3fc00000"
	b := Append(nil, c)
	if got := hex.EncodeToString(b); got != want {
		t.Fatalf("wire form %s, want %s", got, want)
	}
	back, err := Parse(b)
	if err != nil || back != c.Round() {
		t.Fatalf("Parse = %+v, %v; want %+v", back, err, c.Round())
	}
	for name, b := range map[string][]byte{
		"short":    b[:EncodedSize-1],
		"long":     append(bytes.Clone(b), 0),
		"nan":      Append(nil, Coord{Vec: [Dims]float64{math.NaN()}}),
		"far":      Append(nil, Coord{Height: 1e30}),
		"negative": Append(nil, Coord{Error: -1}),
	} {
		if _, err := Parse(b); !errors.Is(err, ErrBadCoord) {
			t.Errorf("%s: Parse = %v, want ErrBadCoord", name, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse(b)
		if err != nil {
			if !errors.Is(err, ErrBadCoord) || c != (Coord{}) {
				t.Fatalf("Parse(%x) = %+v, %v", b, c, err)
			}
			return
		}
		if c.Check() != nil {
			t.Fatalf("accepted %+v", c)
		}
		if back := Append(nil, c); !bytes.Equal(back, b) && !hasNegZero(c) {
			t.Fatalf("round trip %x, want %x", back, b)
		}
	})
}

// hasNegZero: -0 reads as a float equal to 0 but writes back its sign, so
// the bytes may differ only there.
func hasNegZero(c Coord) bool {
	for _, v := range append(c.Vec[:], c.Height, c.Error) {
		if v == 0 && math.Signbit(v) {
			return true
		}
	}
	return false
}

var writeFuzzCorpus = flag.Bool("write-fuzz-corpus", false, "rewrite the fuzz seed corpus in testdata/fuzz")

func TestWriteFuzzCorpus(t *testing.T) {
	if !*writeFuzzCorpus {
		t.Skip("run with -args -write-fuzz-corpus to rewrite testdata/fuzz")
	}
	good := Append(nil, Coord{Vec: [Dims]float64{0.012, -0.03, 0.002}, Height: 0.0015, Error: 0.25})
	seeds := [][]byte{
		good, good[:EncodedSize-1], append(bytes.Clone(good), 1), {},
		Append(nil, Coord{Vec: [Dims]float64{math.Inf(1)}}),
		Append(nil, Coord{Vec: [Dims]float64{MaxComponent + 1}}),
		Append(nil, Coord{Height: -0.001}),
		Append(nil, Coord{Error: MaxError}),
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzParse")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, s := range seeds {
		data := "go test fuzz v1\n[]byte(" + strconv.Quote(string(s)) + ")\n"
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%02d", i)), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
