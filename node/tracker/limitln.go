package tracker

import (
	"container/list"
	"net"
	"net/http"
	"net/netip"
	"sync"
)

// maxHTTPConns bounds the HTTP front's open connections: past it, Accept
// first closes the oldest idle keep-alive connection, and waits for one to
// close when none is idle, so a client opening connections without end
// costs this many goroutines at most (the kernel's backlog holds the rest).
const maxHTTPConns = 1024

// connLimiter is the HTTP front's listener. It keeps at most max
// connections open, at most perAddr from one address (an IPv4 address or
// an IPv6 /64) and at most idlePerAddr of those idle between keep-alive
// requests. Idle connections go first: a client reopens one for the price
// of a handshake, while a full front turns everyone away. (It is
// golang.org/x/net/netutil.LimitListener with addresses and idleness.)
// Accept has one caller, the http.Server; ConnState is its hook.
type connLimiter struct {
	net.Listener
	max, perAddr, idlePerAddr int
	stats                     *counters
	// noCut makes a full front wait instead of closing an idle connection:
	// the front as it was, for the control of the flood tests only.
	noCut bool

	mu    sync.Mutex
	open  int // connections open or reserved by Accept
	addrs map[netip.Prefix]*addrConns
	idle  list.List // of *limitConn, longest idle first

	room      chan struct{} // a connection closed
	done      chan struct{}
	closeOnce sync.Once
}

type addrConns struct{ open, idle int }

// newConnLimiter limits ln; perAddr and idlePerAddr 0 mean no limit.
func newConnLimiter(ln net.Listener, max, perAddr, idlePerAddr int, stats *counters) *connLimiter {
	return &connLimiter{
		Listener: ln, max: max, perAddr: perAddr, idlePerAddr: idlePerAddr, stats: stats,
		addrs: make(map[netip.Prefix]*addrConns),
		room:  make(chan struct{}, 1),
		done:  make(chan struct{}),
	}
}

func (l *connLimiter) Accept() (net.Conn, error) {
	for {
		if err := l.waitRoom(); err != nil {
			return nil, err
		}
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if err := l.reserve(); err != nil {
			c.Close()
			return nil, err
		}
		if lc := l.admit(c); lc != nil {
			return lc, nil
		}
		c.Close() // its address holds its share
		l.stats.httpConnsRefused.Add(1)
		l.mu.Lock()
		l.open--
		l.mu.Unlock()
	}
}

// waitRoom waits until a connection can be taken: a place is free or an
// idle connection can be closed for it. Until then, new connections wait
// in the kernel's backlog.
func (l *connLimiter) waitRoom() error {
	for {
		l.mu.Lock()
		ok := l.open < l.max || (l.idle.Len() > 0 && !l.noCut)
		l.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-l.room:
		case <-l.done:
			return net.ErrClosed
		}
	}
}

// reserve takes a place for a connection just accepted, closing the
// longest idle connection when the front is full, waiting when none is
// idle (it became active since waitRoom).
func (l *connLimiter) reserve() error {
	for {
		l.mu.Lock()
		if l.open < l.max {
			l.open++
			l.mu.Unlock()
			return nil
		}
		var victim *limitConn
		if e := l.idle.Front(); e != nil && !l.noCut {
			victim = e.Value.(*limitConn)
		}
		l.mu.Unlock()
		if victim != nil {
			l.cut(victim)
			continue
		}
		select {
		case <-l.room:
		case <-l.done:
			return net.ErrClosed
		}
	}
}

// admit registers c under its address, closing the address's longest idle
// connection if it holds its share; nil: it holds its share in use.
func (l *connLimiter) admit(c net.Conn) *limitConn {
	addr := overflowAddr
	if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
		addr = addrOf(ap.Addr())
	}
	for {
		l.mu.Lock()
		a := l.addrs[addr]
		if a == nil {
			a = &addrConns{}
			l.addrs[addr] = a
		}
		if l.perAddr <= 0 || a.open < l.perAddr {
			a.open++
			l.mu.Unlock()
			return &limitConn{Conn: c, l: l, addr: addr}
		}
		victim := l.oldestIdle(addr)
		l.mu.Unlock()
		if victim == nil {
			return nil
		}
		l.cut(victim)
	}
}

// oldestIdle is addr's longest idle connection, or nil. l.mu is held.
func (l *connLimiter) oldestIdle(addr netip.Prefix) *limitConn {
	for e := l.idle.Front(); e != nil; e = e.Next() {
		if c := e.Value.(*limitConn); c.addr == addr {
			return c
		}
	}
	return nil
}

func (l *connLimiter) cut(c *limitConn) {
	l.stats.httpIdleCut.Add(1)
	c.Close()
}

// connState is the http.Server's ConnState hook: it keeps the idle list.
func (l *connLimiter) connState(nc net.Conn, st http.ConnState) {
	c, ok := nc.(*limitConn)
	if !ok {
		return
	}
	var victim *limitConn
	l.mu.Lock()
	switch st {
	case http.StateIdle:
		if c.closed || c.idleElem != nil {
			break
		}
		c.idleElem = l.idle.PushBack(c)
		a := l.addrs[c.addr]
		if a.idle++; l.idlePerAddr > 0 && a.idle > l.idlePerAddr {
			victim = l.oldestIdle(c.addr)
		}
	case http.StateActive:
		l.unidle(c)
	}
	l.mu.Unlock()
	if victim != nil {
		l.cut(victim)
	}
}

// unidle takes c off the idle list. l.mu is held.
func (l *connLimiter) unidle(c *limitConn) {
	if c.idleElem != nil {
		l.idle.Remove(c.idleElem)
		c.idleElem = nil
		l.addrs[c.addr].idle--
	}
}

// release gives c's place back. It runs once per connection.
func (l *connLimiter) release(c *limitConn) {
	l.mu.Lock()
	c.closed = true
	l.unidle(c)
	a := l.addrs[c.addr]
	if a.open--; a.open <= 0 {
		delete(l.addrs, c.addr)
	}
	l.open--
	l.mu.Unlock()
	select {
	case l.room <- struct{}{}:
	default:
	}
}

func (l *connLimiter) Close() error {
	err := l.Listener.Close()
	l.closeOnce.Do(func() { close(l.done) })
	return err
}

// limitConn gives its place back once, on the first Close.
type limitConn struct {
	net.Conn
	l    *connLimiter
	addr netip.Prefix
	once sync.Once

	// Guarded by l.mu.
	idleElem *list.Element // on l.idle while idle
	closed   bool
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c) })
	return err
}

// CloseWrite half-closes a TCP connection, as net/http does before it
// closes one with unread input (so the client gets the answer, not a reset).
func (c *limitConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
