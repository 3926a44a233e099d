package records

import (
	"container/heap"
	"net/netip"

	"github.com/libp2p/go-libp2p/core/peer"
)

// source is one source address (SourceAddr) and the records that came from
// it, for the per-address caps and for eviction. Records of this node's own
// (no IP) have no source.
type source struct {
	addr netip.Addr
	refs []recRef // every record from addr; slot.src is its index here
	pos  int      // index in the index's heap
}

// recRef names a stored record: its key set and announcer. The key set
// pointer stays valid while the record exists (a key set is dropped only
// with its last record).
type recRef struct {
	ks        *keySet
	announcer peer.ID
}

// sourceHeap is a max-heap of sources by record count, so the heaviest
// source is found in O(1) and kept in O(log sources) per change.
type sourceHeap []*source

func (h sourceHeap) Len() int           { return len(h) }
func (h sourceHeap) Less(i, j int) bool { return len(h[i].refs) > len(h[j].refs) }
func (h sourceHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].pos, h[j].pos = i, j
}
func (h *sourceHeap) Push(x any) {
	s := x.(*source)
	s.pos = len(*h)
	*h = append(*h, s)
}
func (h *sourceHeap) Pop() any {
	old := *h
	s := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return s
}

// link adds slot i of ks to its source's records.
func (x *index) link(ks *keySet, i int) {
	s := &ks.slots[i]
	addr := SourceAddr(s.ip)
	if !addr.IsValid() {
		s.src = -1
		return
	}
	so := x.sources[addr]
	if so == nil {
		so = &source{addr: addr}
		x.sources[addr] = so
		heap.Push(&x.heap, so)
	}
	s.src = int32(len(so.refs))
	so.refs = append(so.refs, recRef{ks: ks, announcer: s.announcer})
	heap.Fix(&x.heap, so.pos)
}

// unlink removes slot i of ks from its source's records.
func (x *index) unlink(ks *keySet, i int) {
	s := &ks.slots[i]
	if s.src < 0 {
		return
	}
	so := x.sources[SourceAddr(s.ip)]
	j, last := int(s.src), len(so.refs)-1
	if j != last {
		moved := so.refs[last]
		so.refs[j] = moved
		moved.ks.slots[moved.ks.find(moved.announcer)].src = int32(j)
	}
	so.refs[last] = recRef{}
	so.refs = so.refs[:last]
	s.src = -1
	if len(so.refs) == 0 {
		heap.Remove(&x.heap, so.pos)
		delete(x.sources, so.addr)
		return
	}
	if cap(so.refs) > 64 && len(so.refs) < cap(so.refs)/4 {
		so.refs = append([]recRef(nil), so.refs...)
	}
	heap.Fix(&x.heap, so.pos)
}

// count is the records source addr holds.
func (x *index) count(addr netip.Addr) int {
	if so := x.sources[addr]; so != nil {
		return len(so.refs)
	}
	return 0
}

// countInKey is the records ks holds from source addr.
func countInKey(ks *keySet, addr netip.Addr) int {
	n := 0
	for i := range ks.slots {
		if SourceAddr(ks.slots[i].ip) == addr {
			n++
		}
	}
	return n
}

// Eviction sampling: how many records of the victim source are looked at,
// and how many samples are tried when only a key's last record will do.
const (
	evictSample = 8
	evictTries  = 4
)

// victim chooses the record to evict for an incoming record from source in
// (zero for our own), by the policy in Limits. needKey restricts the choice
// to records that are their key's last one. ok is false when no record
// qualifies. It draws from x.rng, so it runs only under the writer's lock.
func (x *index) victim(in netip.Addr, needKey bool) (recRef, bool) {
	if len(x.heap) == 0 {
		return recRef{}, false
	}
	so := x.heap[0]
	if in.IsValid() {
		if own := x.sources[in]; own != nil && len(own.refs)+1 >= len(so.refs) {
			so = own
		}
	}
	for range evictTries {
		best, found := recRef{}, false
		var bestExp int64
		n := len(so.refs)
		for k := range min(evictSample, n) {
			r := so.refs[k] // a small source is looked at whole
			if n > evictSample {
				r = so.refs[randN(&x.rng, n)]
			}
			if needKey && len(r.ks.slots) != 1 {
				continue
			}
			exp := r.ks.slots[r.ks.find(r.announcer)].expires
			if !found || exp < bestExp {
				best, bestExp, found = r, exp, true
			}
		}
		if found {
			return best, true
		}
		if !needKey || n <= evictSample {
			break
		}
	}
	return recRef{}, false
}
