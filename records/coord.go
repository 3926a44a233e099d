package records

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// PayloadTypeV3 is version 2 plus the announcer's network coordinate
// (Record.Coord). A record has it exactly when it has a coordinate, and a
// coordinate only with a signed address.
//
// Readers of versions 1 and 2 alone (daemons before coordinates) refuse it:
// their parser rejects unknown payload types and fields, on purpose. So an
// announcer puts its coordinate only in the records it seals for storing
// nodes that have shown they read it (see node's coordinate exchange); a
// record of version 3 is otherwise the version 2 record with one more field,
// and every rule about version 2 holds for it.
var PayloadTypeV3 = []byte("/kadtracker/peer-record/3")

// CoordDims is the number of Euclidean dimensions of a coordinate (the
// height comes on top), as in package node/vivaldi.
const CoordDims = 3

// Bounds on a signed coordinate, in seconds: no round trip on the Internet
// takes 10 s, and a record claiming more predicts nothing.
const (
	MaxCoordComponent = 10.0
	MaxCoordHeight    = 10.0
	MaxCoordError     = 10.0
	// coordSize is the wire form: CoordDims+2 IEEE 754 float32, big endian.
	coordSize = 4 * (CoordDims + 2)
)

// Coord is the network coordinate an announcer signs into its record
// (Vivaldi: a point, a height, the announcer's estimate of its relative
// error), in seconds. It has the fields of vivaldi.Coord, so the node
// converts one to the other.
type Coord struct {
	Vec    [CoordDims]float64
	Height float64
	Error  float64
}

var errBadCoord = errors.New("coordinate out of range")

// Check reports whether c is finite and within the bounds above.
func (c Coord) Check() error {
	for i, v := range c.Vec {
		if !finite(v) || math.Abs(v) > MaxCoordComponent {
			return fmt.Errorf("%w: component %d is %g", errBadCoord, i, v)
		}
	}
	if !finite(c.Height) || c.Height < 0 || c.Height > MaxCoordHeight {
		return fmt.Errorf("%w: height %g", errBadCoord, c.Height)
	}
	if !finite(c.Error) || c.Error < 0 || c.Error > MaxCoordError {
		return fmt.Errorf("%w: error %g", errBadCoord, c.Error)
	}
	return nil
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// Round is c as the wire carries it (float32 precision), so that what a
// node signs is what its readers open.
func (c Coord) Round() Coord {
	for i := range c.Vec {
		c.Vec[i] = float64(float32(c.Vec[i]))
	}
	c.Height, c.Error = float64(float32(c.Height)), float64(float32(c.Error))
	return c
}

func appendCoord(dst []byte, c Coord) []byte {
	for _, v := range c.Vec {
		dst = binary.BigEndian.AppendUint32(dst, math.Float32bits(float32(v)))
	}
	dst = binary.BigEndian.AppendUint32(dst, math.Float32bits(float32(c.Height)))
	return binary.BigEndian.AppendUint32(dst, math.Float32bits(float32(c.Error)))
}

func decodeCoord(b []byte) (Coord, error) {
	if len(b) != coordSize {
		return Coord{}, fmt.Errorf("coordinate of %d bytes, want %d", len(b), coordSize)
	}
	f := func(i int) float64 { return float64(math.Float32frombits(binary.BigEndian.Uint32(b[4*i:]))) }
	var c Coord
	for i := range c.Vec {
		c.Vec[i] = f(i)
	}
	c.Height, c.Error = f(CoordDims), f(CoordDims+1)
	return c, c.Check()
}
