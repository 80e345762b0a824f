package e2e

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/internal/testserver"
	"github.com/parley-xmpp/parley/server"
)

// TestBanAfterRepeatedAbuse (issue 16, abuse tooling): an address that
// keeps sending broken XML is banned for a while; its next connections
// are closed at once (TCP) or refused with 403 (WebSocket), while other
// addresses are served.
func TestBanAfterRepeatedAbuse(t *testing.T) {
	t.Parallel()
	ts := testserver.Start(t, func(c *server.Config) {
		c.Bans = server.BansConfig{MaxStrikes: 3, Window: time.Minute, Duration: time.Hour}
		c.HTTP.TrustedProxies = nil
		c.Listen.S2S = "127.0.0.1:0"
	})
	ts.AddUser("alice", "pw1")
	const offender = "127.0.0.9"
	for i := range 3 {
		c := ts.DialFrom(offender)
		c.SetDeadline(time.Now().Add(testserver.Timeout))
		_, _ = c.Write([]byte(streamOpen + "<message><unclosed></message>"))
		buf := make([]byte, 4096)
		got := ""
		for {
			n, err := c.Read(buf)
			got += string(buf[:n])
			if err != nil || strings.Contains(got, "not-well-formed") {
				break
			}
		}
		if !strings.Contains(got, "not-well-formed") {
			t.Fatalf("offence %d: %q", i, got)
		}
		c.Close()
	}
	// Banned: the connection is closed before any stream header.
	c := ts.DialFrom(offender)
	c.SetDeadline(time.Now().Add(testserver.Timeout))
	_, _ = c.Write([]byte(streamOpen))
	n, err := c.Read(make([]byte, 100))
	if n != 0 || err == nil {
		t.Fatalf("banned address got %d bytes, err %v", n, err)
	}
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(offender)}}
		return d.DialContext(ctx, network, addr)
	}}}
	req, _ := http.NewRequest("GET", "http://"+ts.Addr("http")+"/xmpp-websocket", nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Protocol", "xmpp")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("WebSocket from a banned address: %d", resp.StatusCode)
	}
	// The same for a server that keeps breaking its s2s streams.
	const badPeer = "127.0.0.11"
	for i := range 4 {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(badPeer)}, Timeout: testserver.Timeout}
		c, err := d.Dial("tcp", ts.Addr("s2s"))
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(testserver.Timeout))
		_, _ = c.Write([]byte("<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' " +
			"to='localhost' version='1.0'><message><unclosed></message>"))
		got := ""
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			got += string(buf[:n])
			if err != nil || strings.Contains(got, "</stream:stream>") {
				break
			}
		}
		c.Close()
		if i < 3 && !strings.Contains(got, "<not-well-formed") && !strings.Contains(got, "policy-violation") {
			t.Fatalf("s2s offence %d: %q", i, got)
		}
		if i == 3 && got != "" {
			t.Fatalf("banned server address got %q", got)
		}
	}
	// Everyone else is served.
	a := ts.ConnectFrom("127.0.0.10")
	a.LoginWith(a.Features(), "SCRAM-SHA-256", "alice", "pw1", "r")
	if l := ts.Bans().List(); len(l) != 2 || l[0].Addr != offender || l[1].Addr != badPeer {
		t.Fatalf("bans: %+v", ts.Bans().List())
	}
}
