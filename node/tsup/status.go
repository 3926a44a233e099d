package tsup

import (
	"bytes"
	"net/netip"
	"slices"
	"time"
)

// Stats counts what a Core did.
type Stats struct {
	PacketsIn, PacketsOut uint64
	BytesIn, BytesOut     uint64
	// Dropped packets, of which BadMAC failed the MAC, replay or
	// reflection checks.
	Dropped, BadMAC uint64
	// Updates counts data UPDATE packets sent (not UPDATE+S, +S+A or ACK),
	// retransmissions included; Retransmits counts every resent packet.
	Updates, Retransmits uint64
	// Rounds are update rounds, Elections campaigns started.
	Rounds, Elections uint64
	// PeersRefused were not kept for MaxPeersPerSwarm.
	PeersRefused uint64
	// WriteErrors are sends the Transport's socket refused.
	WriteErrors uint64
}

// Stats returns the counters.
func (c *Core) Stats() Stats { return c.stats }

// LinkStatus is one link as the trackers page shows it.
type LinkStatus struct {
	Addr     netip.AddrPort `json:"addr"`
	Name     string         `json:"name,omitempty"`
	External bool           `json:"external"`
	// State is "connected", "unifying" (connected, SUMMARY exchange under
	// way), "syn-received", "pending" (connecting) or "disconnected"
	// (retrying every ReconnectInterval).
	State string `json:"state"`
	// Extended: both ends speak the extensions; MAC: the link is keyed.
	Extended bool `json:"extended"`
	MAC      bool `json:"mac"`
	// Border: the neighbour is a border tracker.
	Border   bool      `json:"border"`
	LastRecv time.Time `json:"last_recv"`
	LastSent time.Time `json:"last_sent"`
	// Mandates the neighbour advertised in its last CANDIDATURE; -1 if it
	// sent none.
	Mandates int `json:"mandates"`
	// Swarms it shares with us.
	Swarms int `json:"swarms"`
	// Down says why the connection last dropped.
	Down string `json:"down,omitempty"`
}

// Links returns every link's state, in configuration order.
func (c *Core) Links() []LinkStatus {
	out := make([]LinkStatus, 0, len(c.links))
	for _, l := range c.links {
		st := l.state.String()
		if l.state == stateConnected && l.handshaking() {
			st = "unifying"
		}
		m := -1
		if l.hasCand {
			m = int(l.mandates)
		}
		out = append(out, LinkStatus{
			Addr: l.addr, Name: l.cfg.Name, External: l.cfg.External, State: st,
			Extended: l.ext(), MAC: l.mac != nil, Border: l.border,
			LastRecv: l.lastRecv, LastSent: l.lastSent, Mandates: m, Swarms: l.shared, Down: l.downReason,
		})
	}
	return out
}

// SwarmStatus is one swarm as the swarms page shows it.
type SwarmStatus struct {
	Infohash Infohash `json:"infohash"`
	// Local: our own clients announce it (else a border tracker keeps it
	// for its neighbours).
	Local bool `json:"local"`
	// Trackers sharing it.
	Trackers int `json:"trackers"`
	// InternalLeader and ExternalLeader are "self", a neighbour's address,
	// or "" when the swarm has none of that kind (full mesh, or no
	// neighbour of that kind shares it: nobody to lead).
	InternalLeader string `json:"internal_leader,omitempty"`
	ExternalLeader string `json:"external_leader,omitempty"`
	// Live peers by origin.
	Own      int `json:"own"`
	Internal int `json:"internal"`
	External int `json:"external"`
}

// Swarms returns every swarm, ordered by info_hash.
func (c *Core) Swarms() []SwarmStatus {
	out := make([]SwarmStatus, 0, len(c.list))
	for _, s := range c.list {
		st := SwarmStatus{Infohash: s.ih, Local: s.local}
		var kinds [2]bool
		for _, l := range c.links {
			if s.member(l.idx) {
				st.Trackers++
				kinds[l.kind] = true
			}
		}
		// A leadership outlives the links that dropped until the next
		// election; with no member of its kind left it leads nobody.
		if kinds[internal] {
			st.InternalLeader = c.leaderName(s.leader[internal])
		}
		if kinds[external] {
			st.ExternalLeader = c.leaderName(s.leader[external])
		}
		for _, p := range c.Peers(s.ih) {
			switch p.Origin {
			case Own:
				st.Own++
			case Internal:
				st.Internal++
			case External:
				st.External++
			}
		}
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b SwarmStatus) int { return bytes.Compare(a.Infohash[:], b.Infohash[:]) })
	return out
}

func (c *Core) leaderName(i int) string {
	switch {
	case i == leaderSelf:
		return "self"
	case i >= 0:
		return c.links[i].addr.String()
	}
	return ""
}

// Border reports whether this tracker has internal and external links.
func (c *Core) Border() bool { return c.border() }

// Mandates is the number of swarm leaderships (internal and external) this
// tracker holds.
func (c *Core) Mandates() int { return int(c.mandates()) }
