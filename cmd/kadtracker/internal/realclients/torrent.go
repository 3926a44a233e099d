package realclients

import (
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// Torrent is a random file and a .torrent for it that names no tracker.
type Torrent struct {
	Meta     []byte // the .torrent's bytes
	Infohash string // hex, lower case
	Name     string // the file's name
	SHA256   [32]byte
}

// MakeTorrent writes size random bytes (a multiple of 16 KiB) into dir and
// returns a torrent of them with no announce URL at all.
func MakeTorrent(t testing.TB, dir string, size int) Torrent {
	t.Helper()
	return makeTorrent(t, dir, size, false)
}

// MakePrivateTorrent is MakeTorrent for a private torrent (BEP 27).
func MakePrivateTorrent(t testing.TB, dir string, size int) Torrent {
	t.Helper()
	return makeTorrent(t, dir, size, true)
}

func makeTorrent(t testing.TB, dir string, size int, private bool) Torrent {
	t.Helper()
	const pieceLen = 16 << 10
	if size <= 0 || size%pieceLen != 0 {
		t.Fatalf("realclients: torrent size %d is not a positive multiple of %d", size, pieceLen)
	}
	data := make([]byte, size)
	rand.Read(data)
	tt := Torrent{Name: "kt-" + hex.EncodeToString(data[:4]) + ".bin", SHA256: sha256.Sum256(data)}
	if err := os.WriteFile(filepath.Join(dir, tt.Name), data, 0o644); err != nil {
		t.Fatal(err)
	}
	var pieces []byte
	for off := 0; off < size; off += pieceLen {
		s := sha1.Sum(data[off : off+pieceLen])
		pieces = append(pieces, s[:]...)
	}
	info := fmt.Appendf(nil, "d6:lengthi%de4:name%d:%s12:piece lengthi%de6:pieces%d:%s", size, len(tt.Name), tt.Name, pieceLen, len(pieces), pieces)
	if private {
		info = append(info, "7:privatei1e"...)
	}
	info = append(info, 'e')
	sum := sha1.Sum(info)
	tt.Infohash = hex.EncodeToString(sum[:])
	tt.Meta = fmt.Appendf(nil, "d4:info%se", info)
	return tt
}
