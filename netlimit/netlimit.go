// Package netlimit holds the connection limits the listeners share:
// connections per client address, token buckets for rates, and a
// connection wrapper that puts a deadline on every write and a byte budget
// on reads. It has no dependencies, so c2s, s2s and the HTTP server use
// the same rules.
package netlimit

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// AddrKey is the key connections from addr are counted under: the IPv4
// address, or the /64 prefix of an IPv6 address (one subscriber usually
// gets a whole /64, so counting single IPv6 addresses limits nothing).
// addr may carry a port.
func AddrKey(addr string) string {
	ip, ok := parseIP(addr)
	if !ok {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return addr
		}
		return host
	}
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}

// parseIP is the IP address of addr (with or without a port), unmapped.
func parseIP(addr string) (netip.Addr, bool) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, false
	}
	return ip.Unmap(), true
}

// PerAddress counts open connections per address key against a maximum.
// The zero value and a nil *PerAddress allow everything.
type PerAddress struct {
	max    int
	exempt []netip.Prefix
	mu     sync.Mutex
	n      map[string]int
}

// NewPerAddress allows max connections per address key; max <= 0 allows
// any number. Addresses in exempt (a reverse proxy that many clients
// share) are not limited.
func NewPerAddress(max int, exempt ...netip.Prefix) *PerAddress {
	return &PerAddress{max: max, exempt: exempt, n: map[string]int{}}
}

// Exempt reports whether addr (with or without a port) is in prefixes.
func Exempt(addr string, prefixes []netip.Prefix) bool {
	ip, ok := parseIP(addr)
	if !ok {
		return false
	}
	for _, p := range prefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// Acquire counts a connection from addr. It reports false (and counts
// nothing) when the address is at its maximum; otherwise the caller must
// call the returned release exactly once when the connection ends.
func (p *PerAddress) Acquire(addr string) (release func(), ok bool) {
	if p == nil || p.max <= 0 || Exempt(addr, p.exempt) {
		return func() {}, true
	}
	k := AddrKey(addr)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.n[k] >= p.max {
		return nil, false
	}
	p.n[k]++
	var once sync.Once
	return func() {
		once.Do(func() {
			p.mu.Lock()
			if p.n[k]--; p.n[k] <= 0 {
				delete(p.n, k)
			}
			p.mu.Unlock()
		})
	}, true
}

// Count is the number of connections counted for addr's key.
func (p *PerAddress) Count(addr string) int {
	if p == nil {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n[AddrKey(addr)]
}

// Bucket is a token bucket: Rate tokens per second up to Burst. It has no
// lock: one goroutine (a connection's reader) uses it.
type Bucket struct {
	rate, burst, tokens float64
	last                time.Time
}

// NewBucket returns a full bucket, or nil (no limit) when perSecond <= 0.
func NewBucket(perSecond, burst int) *Bucket {
	if perSecond <= 0 {
		return nil
	}
	burst = max(burst, perSecond)
	return &Bucket{rate: float64(perSecond), burst: float64(burst), tokens: float64(burst), last: time.Now()}
}

// Take spends n tokens and reports whether there were enough. A nil
// bucket always has enough.
func (b *Bucket) Take(n float64) bool {
	if b == nil {
		return true
	}
	now := time.Now()
	b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	b.last = now
	b.tokens -= n
	return b.tokens >= 0
}

// Listener wraps ln so that connections beyond max per address are not
// counted and are handed to refused as soon as they are accepted. refused
// (which must not block) either closes the connection and returns nil, or
// returns a connection for Accept to return anyway, uncounted, so that
// the server can read the client's request and answer it with a refusal
// (a response written before the request arrives is one the client does
// not expect). A nil refused closes them. The count is released when the
// connection is closed.
func Listener(ln net.Listener, p *PerAddress, refused func(net.Conn) net.Conn) net.Listener {
	return &listener{Listener: ln, p: p, refused: refused}
}

type listener struct {
	net.Listener
	p       *PerAddress
	refused func(net.Conn) net.Conn
}

func (l *listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		release, ok := l.p.Acquire(c.RemoteAddr().String())
		if ok {
			return &countedConn{Conn: c, release: release}, nil
		}
		if l.refused == nil {
			_ = c.Close()
		} else if rc := l.refused(c); rc != nil {
			return rc, nil
		}
	}
}

type countedConn struct {
	net.Conn
	release func()
}

func (c *countedConn) Close() error {
	c.release()
	return c.Conn.Close()
}

// ErrBudget is the read error of a Conn whose byte budget ran out.
var ErrBudget = errors.New("netlimit: too much input before authentication")

// Conn is a connection whose every write gets a deadline, so a peer that
// stops reading fails the write (and the connection) after writeTimeout
// instead of blocking the writer forever. Reads record the time of the
// last input and are charged to a byte budget while one is set.
type Conn struct {
	net.Conn
	writeTimeout time.Duration
	onTimeout    func()
	last         atomic.Int64
	budget       atomic.Pointer[Bucket]
	// armed is when Write last set the write deadline (Unix ns; 0: not
	// since a deadline was set otherwise).
	armed atomic.Int64
	raw   syscall.RawConn // the connection's, when it has a descriptor (TCP): see ReadIdle
	// waited is a byte Wait read that the next Read returns first (only
	// the reading goroutine touches these two).
	waited    [1]byte
	hasWaited bool
}

// NewConn wraps c. onTimeout (may be nil) is called when a write fails on
// its deadline.
func NewConn(c net.Conn, writeTimeout time.Duration, onTimeout func()) *Conn {
	nc := &Conn{Conn: c, writeTimeout: writeTimeout, onTimeout: onTimeout}
	nc.last.Store(time.Now().UnixNano())
	if sc, ok := c.(syscall.Conn); ok {
		nc.raw, _ = sc.SyscallConn()
	}
	return nc
}

// SetBudget charges further input to b (nil: no limit). Only the goroutine
// that reads may use b otherwise.
func (c *Conn) SetBudget(b *Bucket) { c.budget.Store(b) }

// LastRead is when input last arrived.
func (c *Conn) LastRead() time.Time { return time.Unix(0, c.last.Load()) }

// Wait blocks until input arrives or reading fails, without a buffer of
// the caller's: the byte it reads is returned first by the next Read. An
// idle connection's reader waits here on a short goroutine stack, below
// any TLS layer, so it holds neither buffers nor the deeper stack that
// reading through TLS and the XML decoder needs (see docs/memory.md).
// Only the goroutine that reads may call it.
func (c *Conn) Wait() error {
	if c.hasWaited {
		return nil
	}
	n, err := c.Conn.Read(c.waited[:])
	if n == 1 {
		c.hasWaited = true
		c.last.Store(time.Now().UnixNano())
		if b := c.budget.Load(); b != nil && !b.Take(1) {
			return ErrBudget
		}
		// An error that came with the byte comes again from the next
		// Read of the connection.
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

func (c *Conn) Read(p []byte) (int, error) {
	if c.hasWaited && len(p) > 0 {
		p[0] = c.waited[0]
		c.hasWaited = false
		return 1, nil
	}
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.last.Store(time.Now().UnixNano())
		if b := c.budget.Load(); b != nil && !b.Take(float64(n)) {
			return n, ErrBudget
		}
	}
	return n, err
}

// ReadIdle waits for input holding no buffer and reads it into
// buf.Take(); when the read finds nothing after all (the wait goes on),
// buf.Give() takes the buffer back. A reader that waits between messages
// (wire.Reader) so reads a message with one read once it arrives, where
// waiting in a one-byte Read took two. ok is false, and nothing was done,
// for a connection without a descriptor.
func (c *Conn) ReadIdle(buf interface {
	Take() []byte
	Give()
}) (n int, ok bool, err error) {
	if c.raw == nil {
		return 0, false, nil
	}
	if c.hasWaited {
		p := buf.Take()
		p[0], c.hasWaited = c.waited[0], false
		return 1, true, nil
	}
	var rerr error
	err = c.raw.Read(func(fd uintptr) bool {
		p := buf.Take()
		for {
			n, rerr = syscall.Read(int(fd), p)
			if rerr != syscall.EINTR {
				break
			}
		}
		if rerr == syscall.EAGAIN {
			buf.Give()
			return false
		}
		return true
	})
	n = max(n, 0)
	switch {
	case err != nil:
	case rerr != nil:
		err = &net.OpError{Op: "read", Net: c.LocalAddr().Network(), Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: os.NewSyscallError("read", rerr)}
	case n == 0:
		err = io.EOF
	}
	if n > 0 {
		c.last.Store(time.Now().UnixNano())
		if b := c.budget.Load(); b != nil && !b.Take(float64(n)) {
			return n, true, ErrBudget
		}
	}
	return n, true, err
}

// Write writes with a deadline of about writeTimeout: it is moved only
// when an eighth of it has passed since it was last set, so a write may
// get as little as 7/8 of writeTimeout (never more). Moving a deadline
// changes a runtime timer under a lock: 2.6 % of the server's CPU at
// 20,000 msg/s when every stanza written moved it.
func (c *Conn) Write(p []byte) (int, error) {
	if c.writeTimeout > 0 {
		now := time.Now()
		ns := now.UnixNano()
		if d := ns - c.armed.Load(); d < 0 || d >= int64(c.writeTimeout/8) {
			_ = c.Conn.SetWriteDeadline(now.Add(c.writeTimeout))
			c.armed.Store(ns)
		}
	}
	n, err := c.Conn.Write(p)
	if err != nil && c.onTimeout != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		c.onTimeout()
	}
	return n, err
}

// Serve accepts connections on ln and hands each to handle (which must
// not block: it starts the connection's goroutine) until ln is closed,
// then returns nil. A failure to accept that is temporary (out of file
// descriptors reports a timeout) is retried after a pause that doubles
// from 5 ms to 1 s while it lasts, so the loop neither spins nor gives up;
// any other failure is returned.
func Serve(ln net.Listener, handle func(net.Conn)) error {
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				delay = min(max(delay*2, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		handle(c)
	}
}

// Refusals tells refused connections why without blocking the accept
// loop: a few at a time, each in a goroutine; beyond that a refused
// connection is closed at once (a flood of them costs no goroutines).
type Refusals struct{ slots chan struct{} }

// NewRefusals allows n refusals being told at once.
func NewRefusals(n int) *Refusals { return &Refusals{slots: make(chan struct{}, n)} }

// Refuse runs tell(c) through spawn (which starts a goroutine the caller
// tracks) when a slot is free, else closes c at once. tell must bound its
// writes and close c, or have it closed shortly.
func (r *Refusals) Refuse(c net.Conn, spawn func(func()), tell func(net.Conn)) {
	select {
	case r.slots <- struct{}{}:
	default:
		_ = c.Close()
		return
	}
	spawn(func() {
		defer func() { <-r.slots }()
		tell(c)
	})
}

// lockWait is how long LockSoon waits for a write in progress.
const lockWait = 50 * time.Millisecond

// LockSoon locks mu unless another goroutine keeps it for longer than a
// write in progress takes (50 ms): closing a stream uses it so that a
// writer blocked on a peer that does not read (until its deadline) is not
// waited for; the caller closes the connection instead, which fails that
// write at once.
func LockSoon(mu *sync.Mutex) bool {
	if mu.TryLock() {
		return true
	}
	for deadline := time.Now().Add(lockWait); time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
		if mu.TryLock() {
			return true
		}
	}
	return false
}

// SetDeadline and SetWriteDeadline replace the deadline Write keeps: the
// next Write sets its own again.
func (c *Conn) SetDeadline(t time.Time) error {
	c.armed.Store(0)
	return c.Conn.SetDeadline(t)
}

func (c *Conn) SetWriteDeadline(t time.Time) error {
	c.armed.Store(0)
	return c.Conn.SetWriteDeadline(t)
}

// CloseWrite half-closes a TCP connection (the peer reads the end of the
// stream); it does nothing on other connections.
func (c *Conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
