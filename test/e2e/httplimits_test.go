package e2e

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/internal/testserver"
	"github.com/parley-xmpp/parley/server"
)

// HTTP limits (issue 16, finding 6): the HTTP servers had only a header
// timeout, so an idle keep-alive connection and a stalled request body
// were held forever, and connections per address were not limited.

// closedWithin reports how long the server took to close c (reads ending
// in EOF or a reset rather than the test's own deadline), or fails.
func closedWithin(t *testing.T, c net.Conn, d time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	_ = c.SetReadDeadline(start.Add(d))
	_, err := io.Copy(io.Discard, c)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the server still holds the connection after %v", d)
	}
	return time.Since(start)
}

// TestHTTPIdleKeepAliveClosed: a keep-alive connection with no further
// request is closed after http.idle_timeout.
func TestHTTPIdleKeepAliveClosed(t *testing.T) {
	t.Parallel()
	ts := testserver.Start(t, func(c *server.Config) { c.HTTP.IdleTimeout = 500 * time.Millisecond })
	c, err := net.Dial("tcp", ts.Addr("http"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = io.WriteString(c, "GET /.well-known/host-meta HTTP/1.1\r\nHost: localhost\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("host-meta: %v %v", resp, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	t.Logf("idle connection closed after %v", closedWithin(t, c, 5*time.Second))
}

// TestHTTPStalledBodyClosed: a request whose body stops arriving is
// dropped after http.body_timeout, also when the handler does not read it
// (the server then reads what is left to keep the connection).
func TestHTTPStalledBodyClosed(t *testing.T) {
	t.Parallel()
	ts := testserver.Start(t, func(c *server.Config) { c.HTTP.BodyTimeout = 500 * time.Millisecond })
	for _, path := range []string{"/upload/slot-that-does-not-exist/file.bin", "/.well-known/host-meta"} {
		c, err := net.Dial("tcp", ts.Addr("http"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		// 10 of 100,000 announced bytes, then nothing.
		_, _ = io.WriteString(c, "PUT "+path+" HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100000\r\n\r\n0123456789")
		t.Logf("%s: stalled body dropped after %v", path, closedWithin(t, c, 5*time.Second))
	}
}

// TestHTTPConnectionsPerAddress: connections beyond
// http.connections_per_address from one address get 429; a reverse proxy
// in http.trusted_proxies is not limited.
func TestHTTPConnectionsPerAddress(t *testing.T) {
	t.Parallel()
	ts := testserver.Start(t, func(c *server.Config) {
		c.HTTP.ConnectionsPerAddress = 2
		c.HTTP.TrustedProxies = nil
	})
	for i := 0; i < 2; i++ {
		c, err := net.Dial("tcp", ts.Addr("http"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	resp, err := http.Get("http://" + ts.Addr("http") + "/.well-known/host-meta")
	if err != nil {
		t.Fatalf("third connection: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("third connection: status %d, want 429", resp.StatusCode)
	}

	proxied := testserver.Start(t, func(c *server.Config) { c.HTTP.ConnectionsPerAddress = 2 }) // trusts 127.0.0.0/8
	var open []net.Conn
	for i := 0; i < 5; i++ {
		c, err := net.Dial("tcp", proxied.Addr("http"))
		if err != nil {
			t.Fatal(err)
		}
		open = append(open, c)
	}
	defer func() {
		for _, c := range open {
			c.Close()
		}
	}()
	resp, err = http.Get("http://" + proxied.Addr("http") + "/.well-known/host-meta")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("through a trusted proxy: %v %v", resp, err)
	}
	resp.Body.Close()
	if !strings.Contains(resp.Header.Get("Content-Type"), "xrd") {
		t.Fatalf("content type %q", resp.Header.Get("Content-Type"))
	}
}
