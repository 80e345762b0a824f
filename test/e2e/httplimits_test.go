package e2e

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"math/rand/v2"
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
	// The refusal answers the request (a response before the request is
	// one a client takes as unsolicited), also one with a body (BOSH).
	for method, body := range map[string]string{http.MethodGet: "", http.MethodPost: strings.Repeat("x", 64<<10)} {
		req, err := http.NewRequest(method, "http://"+ts.Addr("http")+"/.well-known/host-meta", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("third connection, %s: %v", method, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || !resp.Close {
			t.Fatalf("third connection, %s: status %d, Retry-After %q, close %v; want 429, a Retry-After and close",
				method, resp.StatusCode, resp.Header.Get("Retry-After"), resp.Close)
		}
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
	resp, err := http.Get("http://" + proxied.Addr("http") + "/.well-known/host-meta")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("through a trusted proxy: %v %v", resp, err)
	}
	resp.Body.Close()
	if !strings.Contains(resp.Header.Get("Content-Type"), "xrd") {
		t.Fatalf("content type %q", resp.Header.Get("Content-Type"))
	}
}

// TestHTTPStalledDownloadClosed: a client that asks for a large file and
// stops reading the response is dropped after http.write_timeout without
// progress (it held the connection, its goroutine and the open file
// forever before the write deadlines). Seen from outside: the address's
// only connection slot (http.connections_per_address 1) comes free.
func TestHTTPStalledDownloadClosed(t *testing.T) {
	t.Parallel()
	const writeTimeout = time.Second
	ts := testserver.Start(t, func(c *server.Config) {
		c.HTTP.WriteTimeout = writeTimeout
		c.HTTP.ConnectionsPerAddress = 1
		c.HTTP.TrustedProxies = nil
	})
	ts.AddUser("alice", "pw1")
	a := ts.Login("alice", "pw1", "phone")
	// More than the socket buffers of both ends hold on loopback.
	data := make([]byte, 32<<20)
	_, _ = rand.NewChaCha8([32]byte{5}).Read(data)
	getURL := uploadFile(t, ts, a, "big.bin", "application/octet-stream", data)
	status := func() int {
		c := uploadClient(ts)
		defer c.CloseIdleConnections()
		resp, err := c.Get("https://" + ts.Addr("https") + "/.well-known/host-meta")
		if err != nil {
			return 0 // https refuses with a closed connection
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	// The slot is free once the connections before are closed (the
	// server notices that a moment after the client closed them).
	var c *tls.Conn
	var err error
	waitUntil(t, 20*time.Second, "a connection of our own", func() bool {
		c, err = tls.Dial("tcp", ts.Addr("https"), &tls.Config{InsecureSkipVerify: true, ServerName: "localhost"})
		return err == nil
	})
	defer c.Close()
	path := getURL[strings.Index(getURL[len("https://"):], "/")+len("https://"):]
	if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: localhost\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	head := make([]byte, 512)
	if _, err := io.ReadAtLeast(c, head, len(head)); err != nil || !bytes.HasPrefix(head, []byte("HTTP/1.1 200")) {
		t.Fatalf("download: %q %v", head, err)
	}
	// Now the client reads no more. Its connection holds the address's
	// one slot until the server gives up on the write.
	if s := status(); s == http.StatusOK {
		t.Fatal("a second connection was served: the limit is not under test")
	}
	took := waitUntil(t, writeTimeout+20*time.Second, "the stalled download dropped", func() bool { return status() == http.StatusOK })
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	n, _ := io.Copy(io.Discard, c)
	if n+int64(len(head)) >= int64(len(data)) {
		t.Fatalf("the whole file arrived (%d bytes) although the connection was dropped", n)
	}
	t.Logf("stalled download dropped %v after the client stopped reading (%d of %d bytes sent)", took.Round(time.Millisecond), n+int64(len(head)), len(data))
}
