package wire

import (
	"encoding/hex"
	"strings"
)

// First announces of real clients (REAL-CLIENTS.md), seeder side, completed
// to full length with the escaping style each client uses: aria2 and
// libtorrent upper-case escapes, transmission lower-case, raw bytes wherever
// the client leaves them unescaped ('.', '-', '~', '*', letters).
var realAnnounces = map[string]string{
	"aria2":        "info_hash=%C3%9EZ%0F%1B.%7DL%8Ao%3E-%1C%0B%9A%8F~m%5CK&peer_id=A2-1-36-0-%5C%2B%FF%00%91~*A%B3%C4&uploaded=0&downloaded=0&left=0&compact=1&key=%3E%C6Q%3C%11k%9C.&numwant=50&no_peer_id=1&port=26293&event=started&supportcrypto=1",
	"transmission": "info_hash=%02K%da%1cU%e3%a8oM%2b%91%c0~_%3ak%8c%9d%0e%1f&peer_id=-TR3000-1w50ns7956m6&port=38128&uploaded=0&downloaded=0&left=0&numwant=80&key=478325eb&compact=1&supportcrypto=1&event=started",
	"qbittorrent":  "info_hash=%82Ik%3F%0A%2CNm%8F%1B%3DZ%7C%9E%0F*Kl%8D%0E&peer_id=-qB4520-RhrIZgXfJNOy&port=44542&uploaded=0&downloaded=0&left=0&corrupt=0&key=D38068A0&event=started&numwant=200&compact=1&no_peer_id=1&supportcrypto=1&redundant=0",
	"rtorrent":     "info_hash=%88%B0-Oj%8C%0E%1F%3B%5Dz%9C.Ok%8D%0A%1C%3E_&peer_id=-lt0D80-%1F%8A%22%E3%B4%C5%D6%E7%F8%09%1A%2B&key=69c3d22b&compact=1&port=23206&uploaded=0&downloaded=0&left=0&event=started",
}

var realInfohashes = map[string]string{
	"aria2":        "c39e5a0f1b2e7d4c8a6f3e2d1c0b9a8f7e6d5c4b",
	"transmission": "024bda1c55e3a86f4d2b91c07e5f3a6b8c9d0e1f",
	"qbittorrent":  "82496b3f0a2c4e6d8f1b3d5a7c9e0f2a4b6c8d0e",
	"rtorrent":     "88b02d4f6a8c0e1f3b5d7a9c2e4f6b8d0a1c3e5f",
}

// BEP 15 announces as clients send them: the plain 98 bytes, aria2's 100
// (two zero bytes of padding), qBittorrent's 109 (BEP 41 URLData "/announce").
var (
	udpAnnounce98  = mustHex(udpAnnounceHex)
	udpAnnounce100 = mustHex(udpAnnounceHex + "0000")
	udpAnnounce109 = mustHex(udpAnnounceHex + "0209" + hex.EncodeToString([]byte("/announce")))
)

const udpAnnounceHex = "" +
	"0123456789abcdef" + // connection ID
	"00000001" + // action announce
	"deadbeef" + // transaction ID
	"82496b3f0a2c4e6d8f1b3d5a7c9e0f2a4b6c8d0e" + // info_hash
	"2d7142343532302d526872495a6758664a4e4f79" + // peer_id "-qB4520-RhrIZgXfJNOy"
	"0000000000000400" + // downloaded 1024
	"0000000000100000" + // left 1 MiB
	"0000000000000200" + // uploaded 512
	"00000002" + // event started
	"00000000" + // IP 0
	"d38068a0" + // key
	"ffffffff" + // num_want -1
	"adfe" // port 44542

func mustHex(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(err)
	}
	return b
}

func ih(s string) [20]byte { return [20]byte(mustHex(s)) }
