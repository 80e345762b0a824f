package proxy65

import (
	"context"
	"io"
	"net"
	"testing"
	"time"
)

// TestConnectionsCapped: connections that never send their SOCKS5
// request count against the cap like the others, so a flood of idle
// connections costs a bounded number of goroutines; one beyond the cap is
// closed at once.
func TestConnectionsCapped(t *testing.T) {
	t.Parallel()
	m, ln := startProxy(t, func(m *Module) { m.maxConns = 3 })
	dial := func() net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	for range m.maxConns {
		dial() // says nothing
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		m.mu.Lock()
		n := len(m.all)
		m.mu.Unlock()
		if n == m.maxConns {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d connections accepted, want %d", n, m.maxConns)
		}
		time.Sleep(5 * time.Millisecond)
	}
	c := dial()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("a connection beyond the cap: read %v, want EOF (closed by the proxy)", err)
	}
}

// startProxy runs a proxy for example.org on a loopback port, with mod
// applied before it serves; it is shut down when the test ends.
func startProxy(t *testing.T, mod func(*Module)) (*Module, net.Listener) {
	t.Helper()
	s := DefaultSettings()
	s.Listen = "127.0.0.1:0"
	m := New(Config{Settings: s, Domains: []string{"example.org"}})
	mod(m)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go m.Serve(ln)
	t.Cleanup(func() {
		ln.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		m.Shutdown(ctx)
	})
	return m, ln
}

// TestStalledTargetEndsRelay: a target that stops reading while the
// initiator keeps sending ends the stream once the relay's write has made
// no progress for the idle time: the relay's goroutines, both connections
// and the stream's place in the caps are freed instead of held while the
// target stays connected.
func TestStalledTargetEndsRelay(t *testing.T) {
	t.Parallel()
	const idle = 300 * time.Millisecond
	m, ln := startProxy(t, func(m *Module) { m.idle = idle })
	hash := DestHash("sid", "a@example.org/r", "b@example.org/r")
	var conns []net.Conn
	for range 2 { // target, then initiator
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if err := Connect(c, hash); err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Time{})
		conns = append(conns, c)
	}
	if err := m.activate(hash, "a@example.org"); err != nil {
		t.Fatal(err)
	}
	// The target never reads; the initiator writes until the proxy
	// closes its connection.
	start := time.Now()
	ended := make(chan error, 1)
	go func() {
		chunk := make([]byte, 64<<10)
		for {
			_ = conns[1].SetWriteDeadline(time.Now().Add(30 * time.Second))
			if _, err := conns[1].Write(chunk); err != nil {
				ended <- err
				return
			}
		}
	}()
	select {
	case <-ended:
	case <-time.After(20 * time.Second):
		t.Fatal("the relay still holds the stream")
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		m.mu.Lock()
		active, n := m.active, len(m.all)
		m.mu.Unlock()
		if active == 0 && n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d streams, %d connections left", active, n)
		}
	}
	t.Logf("stream ended %v after the target stopped reading", time.Since(start).Round(time.Millisecond))
}
