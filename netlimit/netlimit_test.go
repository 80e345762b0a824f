package netlimit

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"
)

func TestAddrKey(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.7:5222":              "192.0.2.7",
		"[2001:db8:1:2:3:4:5:6]:5222": "2001:db8:1:2::/64",
		"[2001:db8:1:2:ffff::1]:1":    "2001:db8:1:2::/64",
		"[::ffff:192.0.2.7]:5222":     "192.0.2.7",
		"2001:db8:1:3::1":             "2001:db8:1:3::/64",
		"192.0.2.7":                   "192.0.2.7",
		"2001:db8:1:2:ffff::1":        "2001:db8:1:2::/64",
		"[fe80::1%eth0]:5222":         "fe80::/64",
		"not an address":              "not an address",
		"":                            "",
	} {
		if got := AddrKey(in); got != want {
			t.Errorf("AddrKey(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPerAddress(t *testing.T) {
	p := NewPerAddress(2)
	r1, ok1 := p.Acquire("[2001:db8::1]:1")
	_, ok2 := p.Acquire("[2001:db8::2]:2") // same /64
	if !ok1 || !ok2 {
		t.Fatal("refused below the maximum")
	}
	if _, ok := p.Acquire("[2001:db8::3]:3"); ok {
		t.Fatal("third connection from one /64 accepted with max 2")
	}
	if _, ok := p.Acquire("[2001:db8:0:1::3]:3"); !ok {
		t.Fatal("another /64 refused")
	}
	r1()
	r1() // releasing twice counts once
	if p.Count("[2001:db8::9]:1") != 1 {
		t.Fatalf("count = %d", p.Count("[2001:db8::9]:1"))
	}
	if _, ok := p.Acquire("[2001:db8::3]:3"); !ok {
		t.Fatal("refused after a release")
	}
	proxy := NewPerAddress(1, netip.MustParsePrefix("10.0.0.0/8"))
	for i := 0; i < 3; i++ {
		if _, ok := proxy.Acquire("10.1.2.3:80"); !ok {
			t.Fatal("an exempt address was limited")
		}
	}
	proxy.Acquire("192.0.2.1:1")
	if _, ok := proxy.Acquire("192.0.2.1:2"); ok {
		t.Fatal("the exemption spread to other addresses")
	}
	var unlimited *PerAddress
	if _, ok := unlimited.Acquire("x"); !ok {
		t.Fatal("nil limit refused")
	}
}

func TestBucket(t *testing.T) {
	b := NewBucket(10, 20)
	if !b.Take(20) {
		t.Fatal("burst refused")
	}
	if b.Take(1) {
		t.Fatal("empty bucket gave a token")
	}
	b.last = b.last.Add(-time.Second) // ten tokens later (less the one owed)
	if !b.Take(8) {
		t.Fatal("refill not counted")
	}
	var none *Bucket
	if !none.Take(1e9) {
		t.Fatal("nil bucket refused")
	}
}

func TestListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rejected := make(chan struct{}, 4)
	l := Listener(ln, NewPerAddress(1), func(c net.Conn) net.Conn {
		rejected <- struct{}{}
		_ = c.Close()
		return nil
	})
	defer l.Close()
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	c1, _ := net.Dial("tcp", ln.Addr().String())
	defer c1.Close()
	s1 := <-accepted
	c2, _ := net.Dial("tcp", ln.Addr().String())
	defer c2.Close()
	select {
	case <-rejected:
	case <-time.After(5 * time.Second):
		t.Fatal("second connection from one address not rejected")
	}
	_ = c2.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c2.Read(make([]byte, 1)); err == nil {
		t.Fatal("rejected connection still open")
	}
	s1.Close()
	c3, _ := net.Dial("tcp", ln.Addr().String())
	defer c3.Close()
	select {
	case s3 := <-accepted:
		s3.Close()
	case <-time.After(5 * time.Second):
		t.Fatal("refused after the first connection closed")
	}
}

// TestListenerHandsOutRefused: a connection that refused returns is
// accepted anyway, uncounted, so the server can answer it.
func TestListenerHandsOutRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	type marked struct{ net.Conn }
	p := NewPerAddress(1)
	l := Listener(ln, p, func(c net.Conn) net.Conn { return marked{c} })
	defer l.Close()
	for i := 0; i < 2; i++ {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		s, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if _, isRefused := s.(marked); isRefused != (i == 1) {
			t.Fatalf("connection %d: refused %v", i+1, isRefused)
		}
	}
	if n := p.Count("127.0.0.1:1"); n != 1 {
		t.Fatalf("count = %d, want 1 (the refused connection is not counted)", n)
	}
}

func TestLockSoon(t *testing.T) {
	var mu sync.Mutex
	if !LockSoon(&mu) {
		t.Fatal("free mutex not locked")
	}
	go func() {
		time.Sleep(5 * time.Millisecond)
		mu.Unlock()
	}()
	if !LockSoon(&mu) {
		t.Fatal("a short hold was not waited for")
	}
	start := time.Now()
	if LockSoon(&mu) {
		t.Fatal("locked a mutex that stays held")
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("waited %v for a held mutex", d)
	}
}

// fakeListener returns the results it is given, then net.ErrClosed.
type fakeListener struct {
	net.Listener
	results []error
	conns   int
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "accept: too many open files" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func (l *fakeListener) Accept() (net.Conn, error) {
	if len(l.results) == 0 {
		return nil, net.ErrClosed
	}
	err := l.results[0]
	l.results = l.results[1:]
	if err != nil {
		return nil, err
	}
	l.conns++
	c, _ := net.Pipe()
	return c, nil
}

func TestServe(t *testing.T) {
	ln := &fakeListener{results: []error{timeoutErr{}, timeoutErr{}, nil, timeoutErr{}, nil}}
	handled := 0
	if err := Serve(ln, func(c net.Conn) { handled++; c.Close() }); err != nil {
		t.Fatalf("Serve on a closed listener: %v, want nil", err)
	}
	if handled != 2 {
		t.Fatalf("handled %d connections, want 2 (temporary failures are retried)", handled)
	}
	other := errors.New("accept: something else")
	if err := Serve(&fakeListener{results: []error{other}}, func(net.Conn) {}); err != other {
		t.Fatalf("Serve: %v, want %v", err, other)
	}
}

// lender counts what ReadIdle borrows: the buffer must be back whenever
// the wait goes on.
type lender struct {
	buf    []byte
	out    bool
	takes  int
	misses int
}

func (l *lender) Take() []byte {
	if !l.out {
		l.out = true
		l.takes++
	}
	return l.buf
}
func (l *lender) Give() { l.out = false; l.misses++ }

// TestReadIdle: on TCP, ReadIdle waits without holding the buffer, reads
// what arrives with one read, charges the budget, keeps the deadline and
// reports the end of input as io.EOF.
func TestReadIdle(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	sc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	c := NewConn(sc, time.Second, nil)
	defer c.Close()
	go func() {
		time.Sleep(50 * time.Millisecond)
		_, _ = client.Write([]byte("<message/>"))
	}()
	l := &lender{buf: make([]byte, 64)}
	n, ok, err := c.ReadIdle(l)
	if !ok || err != nil || string(l.buf[:n]) != "<message/>" || !l.out || l.takes != l.misses+1 {
		t.Fatalf("read %q ok=%v err=%v lent=%v takes=%d misses=%d", l.buf[:n], ok, err, l.out, l.takes, l.misses)
	}
	if l.misses == 0 {
		t.Log("the input was there before the first read")
	}
	c.SetBudget(NewBucket(1, 4))
	_, _ = client.Write([]byte("too much"))
	l.out = false
	if _, _, err := c.ReadIdle(l); !errors.Is(err, ErrBudget) {
		t.Fatalf("over budget: %v", err)
	}
	c.SetBudget(nil)
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	l.out = false
	if _, _, err := c.ReadIdle(l); !errors.Is(err, os.ErrDeadlineExceeded) || l.out {
		t.Fatalf("deadline: %v, buffer lent: %v", err, l.out)
	}
	_ = c.SetReadDeadline(time.Time{})
	client.Close()
	if n, _, err := c.ReadIdle(l); n != 0 || !errors.Is(err, io.EOF) {
		t.Fatalf("end: %d %v", n, err)
	}
	// Without a descriptor it does nothing.
	p1, p2 := net.Pipe()
	defer p1.Close()
	defer p2.Close()
	if _, ok, _ := NewConn(p1, time.Second, nil).ReadIdle(l); ok {
		t.Fatal("ReadIdle on a pipe")
	}
}

// TestConnWait: the byte Wait reads comes first from the next Read and is
// charged to the budget.
func TestConnWait(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	c := NewConn(b, time.Second, nil)
	go func() { _, _ = a.Write([]byte("<x/>")) }()
	if err := c.Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Wait(); err != nil { // the byte is still there
		t.Fatal(err)
	}
	buf := make([]byte, 8)
	n, err := c.Read(buf)
	if err != nil || string(buf[:n]) != "<" {
		t.Fatalf("first read %q %v", buf[:n], err)
	}
	n, err = c.Read(buf)
	if err != nil || string(buf[:n]) != "x/>" {
		t.Fatalf("second read %q %v", buf[:n], err)
	}
	c.SetBudget(NewBucket(1, 1)) // a burst of one byte
	go func() { _, _ = a.Write([]byte("ab")) }()
	if err := c.Wait(); err != nil {
		t.Fatal(err)
	}
	if n, err := c.Read(buf); n != 1 || err != nil {
		t.Fatalf("read after wait: %d %v", n, err)
	}
	if _, err := c.Read(buf); !errors.Is(err, ErrBudget) {
		t.Fatalf("over budget: %v", err)
	}
	a.Close()
	if err := c.Wait(); err == nil {
		t.Fatal("Wait on a closed connection")
	}
}
