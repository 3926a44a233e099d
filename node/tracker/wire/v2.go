package wire

import "github.com/kadtracker/kadtracker/records"

// SwarmKey is the DHT key of the swarm a 20-byte tracker info_hash names:
// records.KeyFromInfohash of those 20 bytes, whether they are a v1 SHA-1
// infohash or a BEP 52 v2 infohash truncated to 20 bytes (see the package
// documentation).
func SwarmKey(infohash [20]byte) records.Key {
	k, err := records.KeyFromInfohash(infohash[:])
	if err != nil {
		return records.Key{} // unreachable: 20 bytes always make a key
	}
	return k
}

// TruncateV2 returns the key under which tracker announces of k's swarm are
// found: k itself for a v1 key, and for a v2 key the key of its first 20
// bytes, which is what BEP 52 clients send as info_hash. The CLI and local
// API use it to reach, from a 64-hex v2 infohash, the swarm clients announce.
func TruncateV2(k records.Key) records.Key {
	if !k.V2() {
		return k
	}
	return SwarmKey([20]byte(k.Infohash()[:20]))
}

// TrackerInfohash is the 20-byte info_hash to announce k under to a classic
// tracker: the v1 infohash, or a v2 infohash truncated as BEP 52 says. It is
// false for the zero key.
func TrackerInfohash(k records.Key) ([20]byte, bool) {
	ih := k.Infohash()
	if len(ih) < 20 {
		return [20]byte{}, false
	}
	return [20]byte(ih[:20]), true
}
