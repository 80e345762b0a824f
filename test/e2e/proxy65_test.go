package e2e

import (
	"bytes"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/internal/testserver"
	"github.com/parley-xmpp/parley/proxy65"
	"github.com/parley-xmpp/parley/server"
	"github.com/parley-xmpp/parley/wire"
)

const nsBytestreams = "http://jabber.org/protocol/bytestreams"

func withProxy(c *server.Config) {
	c.Proxy65.Listen = "127.0.0.1:0"
	c.Proxy65.Host = "127.0.0.1"
}

// socks5Connect opens a SOCKS5 connection to the proxy for the stream
// hash, as a client does (XEP-0065 §5.3).
func socks5Connect(t *testing.T, addr, hash string) net.Conn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, testserver.Timeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(testserver.Timeout))
	if err := proxy65.Connect(nc, hash); err != nil {
		t.Fatal(err)
	}
	nc.SetDeadline(time.Time{})
	return nc
}

// TestSOCKS5Proxy: two clients find the proxy, connect for one stream, the
// initiator activates it and bytes flow both ways.
func TestSOCKS5Proxy(t *testing.T) {
	ts := testserver.Start(t, withProxy)
	ts.AddUser("alice", "pw1")
	ts.AddUser("bob", "pw2")
	a := ts.Login("alice", "pw1", "desk")
	b := ts.Login("bob", "pw2", "laptop")

	r := a.IQ("i", "<iq type='get' id='i' to='localhost'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>")
	if !strings.Contains(string(r.Raw), "jid='proxy.localhost'") {
		t.Fatalf("disco#items: %s", r.Raw)
	}
	r = a.IQ("d", "<iq type='get' id='d' to='proxy.localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
	if !strings.Contains(string(r.Raw), "category='proxy'") || !strings.Contains(string(r.Raw), nsBytestreams) {
		t.Fatalf("disco#info: %s", r.Raw)
	}
	r = a.IQ("n", "<iq type='get' id='n' to='proxy.localhost'><query xmlns='%s'/></iq>", nsBytestreams)
	sh := r.Child(nsBytestreams, "query").Child(nsBytestreams, "streamhost")
	_, port, _ := net.SplitHostPort(ts.Addr("proxy65"))
	if sh == nil || sh.AttrValue("jid") != "proxy.localhost" || sh.AttrValue("host") != "127.0.0.1" || sh.AttrValue("port") != port {
		t.Fatalf("streamhost: %s", r.Raw)
	}

	hash := proxy65.DestHash("sid-1", a.JID, b.JID)
	target := socks5Connect(t, ts.Addr("proxy65"), hash)
	// Activation before the initiator connected: item-not-found.
	assertStanzaError(t, a.IQ("a0", "<iq type='set' id='a0' to='proxy.localhost'><query xmlns='%s' sid='sid-1'><activate>%s</activate></query></iq>",
		nsBytestreams, b.JID), wire.ErrItemNotFound)
	initiator := socks5Connect(t, ts.Addr("proxy65"), hash)
	// bob cannot activate alice's stream: the hash has his JID as initiator.
	assertStanzaError(t, b.IQ("a1", "<iq type='set' id='a1' to='proxy.localhost'><query xmlns='%s' sid='sid-1'><activate>%s</activate></query></iq>",
		nsBytestreams, b.JID), wire.ErrItemNotFound)
	assertStanzaError(t, a.IQ("a2", "<iq type='set' id='a2' to='proxy.localhost'><query xmlns='%s'><activate>%s</activate></query></iq>",
		nsBytestreams, b.JID), wire.ErrBadRequest)
	if r := a.IQ("a3", "<iq type='set' id='a3' to='proxy.localhost'><query xmlns='%s' sid='sid-1'><activate>%s</activate></query></iq>",
		nsBytestreams, b.JID); r.Type != "result" {
		t.Fatalf("activation: %s", r.Raw)
	}
	payload := bytes.Repeat([]byte("file data 0123456789 "), 5000)
	go initiator.Write(payload)
	got := make([]byte, len(payload))
	target.SetReadDeadline(time.Now().Add(testserver.Timeout))
	if _, err := io.ReadFull(target, got); err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("relayed %d bytes: %v", len(got), err)
	}
	target.Write([]byte("thanks"))
	back := make([]byte, 6)
	initiator.SetReadDeadline(time.Now().Add(testserver.Timeout))
	if _, err := io.ReadFull(initiator, back); err != nil || string(back) != "thanks" {
		t.Fatalf("back: %q %v", back, err)
	}
	initiator.Close()
	target.SetReadDeadline(time.Now().Add(testserver.Timeout))
	if n, err := target.Read(make([]byte, 10)); err != io.EOF {
		t.Fatalf("after the initiator closed: %d %v", n, err)
	}

	// Not SOCKS5: dropped.
	nc, err := net.Dial("tcp", ts.Addr("proxy65"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.Write([]byte("GET / HTTP/1.1\r\n\r\n"))
	nc.SetReadDeadline(time.Now().Add(testserver.Timeout))
	if b, err := io.ReadAll(nc); len(b) != 0 || (err != nil && !strings.Contains(err.Error(), "reset")) {
		t.Fatalf("garbage got %q, %v; want the connection closed", b, err)
	}
}

// TestSOCKS5ProxyLimits: a stream stops at max_bytes; users of another
// server get forbidden.
func TestSOCKS5ProxyLimits(t *testing.T) {
	ts := testserver.Start(t, withProxy, func(c *server.Config) { c.Proxy65.MaxBytes = 1 << 20 })
	ts.AddUser("alice", "pw1")
	ts.AddUser("bob", "pw2")
	a := ts.Login("alice", "pw1", "desk")
	b := ts.Login("bob", "pw2", "laptop")
	hash := proxy65.DestHash("big", a.JID, b.JID)
	target := socks5Connect(t, ts.Addr("proxy65"), hash)
	initiator := socks5Connect(t, ts.Addr("proxy65"), hash)
	if r := a.IQ("a", "<iq type='set' id='a' to='proxy.localhost'><query xmlns='%s' sid='big'><activate>%s</activate></query></iq>",
		nsBytestreams, b.JID); r.Type != "result" {
		t.Fatalf("activation: %s", r.Raw)
	}
	go initiator.Write(make([]byte, 3<<20))
	target.SetReadDeadline(time.Now().Add(2 * testserver.Timeout))
	n, err := io.Copy(io.Discard, target)
	if err != nil || n != 1<<20 {
		t.Fatalf("relayed %d bytes (%v), want exactly the 1 MiB limit", n, err)
	}

	// A user of another host of the server: forbidden.
	ts2 := testserver.Start(t, withProxy, func(c *server.Config) { c.Hosts = []string{"localhost", "other.example"} })
	ts2.AddUser("alice", "pw1")
	_ = a
	m := ts2.Login("alice", "pw1", "x")
	r := m.IQ("ok", "<iq type='get' id='ok' to='proxy.localhost'><query xmlns='%s'/></iq>", nsBytestreams)
	if r.Type != "result" {
		t.Fatalf("own proxy: %s", r.Raw)
	}
	r = m.IQ("r", "<iq type='get' id='r' to='proxy.other.example'><query xmlns='%s'/></iq>", nsBytestreams)
	assertStanzaError(t, r, wire.ErrForbidden)
}
