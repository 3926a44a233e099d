package records

import "github.com/kadtracker/kadtracker/node/vivaldi"

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

// Coord is the network coordinate an announcer signs into its record: a
// Vivaldi coordinate (a point, a height, the announcer's estimate of its
// relative error), in seconds, bounded and finite (Check), in the wire form
// of package node/vivaldi, a standard-library leaf that owns it.
type Coord = vivaldi.Coord

// CoordDims is the number of Euclidean dimensions of a coordinate (the
// height comes on top).
const CoordDims = vivaldi.Dims

// coordSize is the wire form's length.
const coordSize = vivaldi.EncodedSize

func appendCoord(dst []byte, c Coord) []byte { return vivaldi.Append(dst, c) }

func decodeCoord(b []byte) (Coord, error) { return vivaldi.Parse(b) }
