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
	s := DefaultSettings()
	s.Listen = "127.0.0.1:0"
	m := New(Config{Settings: s, Domains: []string{"example.org"}})
	m.maxConns = 3
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
