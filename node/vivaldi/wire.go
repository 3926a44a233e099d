package vivaldi

import (
	"encoding/binary"
	"fmt"
	"math"
)

// EncodedSize is the wire form of a coordinate: Dims+2 IEEE 754 float32
// (the components, the height, the error), big endian, in seconds. It is
// the form records.Coord is signed in.
const EncodedSize = 4 * (Dims + 2)

// Append appends c's wire form to dst, at float32 precision.
func Append(dst []byte, c Coord) []byte {
	for _, v := range c.Vec {
		dst = binary.BigEndian.AppendUint32(dst, math.Float32bits(float32(v)))
	}
	dst = binary.BigEndian.AppendUint32(dst, math.Float32bits(float32(c.Height)))
	return binary.BigEndian.AppendUint32(dst, math.Float32bits(float32(c.Error)))
}

// Parse reads a coordinate's wire form: exactly EncodedSize bytes, and a
// coordinate that passes Check.
func Parse(b []byte) (Coord, error) {
	if len(b) != EncodedSize {
		return Coord{}, fmt.Errorf("%w: %d bytes, want %d", ErrBadCoord, len(b), EncodedSize)
	}
	f := func(i int) float64 { return float64(math.Float32frombits(binary.BigEndian.Uint32(b[4*i:]))) }
	var c Coord
	for i := range c.Vec {
		c.Vec[i] = f(i)
	}
	c.Height, c.Error = f(Dims), f(Dims+1)
	if err := c.Check(); err != nil {
		return Coord{}, err
	}
	return c, nil
}

// Round is c at wire precision: what Parse(Append(nil, c)) gives.
func (c Coord) Round() Coord {
	for i := range c.Vec {
		c.Vec[i] = float64(float32(c.Vec[i]))
	}
	c.Height, c.Error = float64(float32(c.Height)), float64(float32(c.Error))
	return c
}
