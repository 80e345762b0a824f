package e2e

import (
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/component"
	"github.com/parley-xmpp/parley/internal/testserver"
	"github.com/parley-xmpp/parley/server"
	"github.com/parley-xmpp/parley/wire"
)

const compSecret = "component-secret-0123456789"

func withComponent(c *server.Config) {
	c.Listen.Component = "127.0.0.1:0"
	c.Components = []component.Component{{Domain: "irc.localhost", Secret: compSecret}}
}

// rawComponent is a component speaking XEP-0114 over a raw socket.
type rawComponent struct {
	t  *testing.T
	nc net.Conn
	rd *wire.Reader
}

func (c *rawComponent) send(format string, args ...any) {
	c.t.Helper()
	_ = c.nc.SetWriteDeadline(time.Now().Add(testserver.Timeout))
	if _, err := fmt.Fprintf(c.nc, format, args...); err != nil {
		c.t.Fatal(err)
	}
}

// next reads the next element; nil and the error when the stream ended.
func (c *rawComponent) next() (*wire.Stanza, error) {
	_ = c.nc.SetReadDeadline(time.Now().Add(testserver.Timeout))
	return c.rd.Next()
}

func (c *rawComponent) expect(what string, match func(*wire.Stanza) bool) *wire.Stanza {
	c.t.Helper()
	for {
		st, err := c.next()
		if err != nil {
			c.t.Fatalf("component waiting for %s: %v", what, err)
		}
		if match(st) {
			return st
		}
	}
}

// dialComponent opens a component stream for domain with the namespace
// ns; it returns after the server's header, with the stream id.
func dialComponent(t *testing.T, ts *testserver.Server, domain, ns string) (*rawComponent, string) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", ts.Addr("component"), testserver.Timeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	c := &rawComponent{t: t, nc: nc, rd: wire.NewReader(nc, wire.Limits{MaxStanzaBytes: 1 << 20})}
	c.send("<stream:stream xmlns='%s' xmlns:stream='http://etherx.jabber.org/streams' to='%s'>", ns, domain)
	_ = nc.SetReadDeadline(time.Now().Add(testserver.Timeout))
	h, err := c.rd.ReadHeader()
	if err != nil {
		t.Fatal(err)
	}
	return c, h.ID
}

func handshakeFor(id, secret string) string {
	d := sha1.Sum([]byte(id + secret))
	return hex.EncodeToString(d[:])
}

// connectComponent completes the handshake.
func connectComponent(t *testing.T, ts *testserver.Server) *rawComponent {
	t.Helper()
	c, id := dialComponent(t, ts, "irc.localhost", "jabber:component:accept")
	c.send("<handshake>%s</handshake>", handshakeFor(id, compSecret))
	if st, err := c.next(); err != nil || st.Name != "handshake" {
		t.Fatalf("handshake answer: %v %v", st, err)
	}
	return c
}

func streamErrorOf(t *testing.T, c *rawComponent) string {
	t.Helper()
	for {
		st, err := c.next()
		if err != nil {
			if se, ok := wire.AsStreamError(err); ok {
				return se.Condition
			}
			t.Fatalf("stream ended without a stream error: %v", err)
		}
		if st.Name == "error" && st.NS == wire.NSStream {
			return st.Tree().FirstElement().Name.Local
		}
	}
}

// TestComponent: a component authenticates with its secret, receives
// every stanza to its domain (IQs to the domain itself included) and
// sends from JIDs at its domain to users, who answer.
func TestComponent(t *testing.T) {
	t.Parallel()
	ts := testserver.Start(t, withComponent)
	ts.AddUser("alice", "pw1")
	a := ts.Login("alice", "pw1", "phone")

	// Not connected yet: service-unavailable.
	r := a.IQ("q0", "<iq type='get' id='q0' to='irc.localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
	assertStanzaError(t, r, wire.ErrServiceUnavailable)

	c := connectComponent(t, ts)
	// The server lists the component.
	r = a.IQ("i", "<iq type='get' id='i' to='localhost'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>")
	if !strings.Contains(string(r.Raw), "jid='irc.localhost'") {
		t.Fatalf("disco#items without the component: %s", r.Raw)
	}

	// User → component: a message to a JID at its domain and an IQ to the
	// domain itself.
	a.Send("<message to='#chan@irc.localhost' type='groupchat' id='m1'><body>hello irc</body></message>")
	m := c.expect("message", func(s *wire.Stanza) bool { return s.Name == "message" })
	if m.From != a.JID || m.To != "#chan@irc.localhost" || m.Child(wire.NSClient, "body").Text() != "hello irc" {
		t.Fatalf("component got %s", m.Raw)
	}
	a.Send("<iq type='get' id='q1' to='irc.localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
	q := c.expect("iq", func(s *wire.Stanza) bool { return s.Name == "iq" && s.ID == "q1" })
	c.send("<iq type='result' id='q1' from='irc.localhost' to='%s'><query xmlns='http://jabber.org/protocol/disco#info'>"+
		"<identity category='gateway' type='irc' name='IRC'/></query></iq>", q.From)
	r = a.Expect("disco#info from the component", func(s *wire.Stanza) bool { return s.ID == "q1" })
	if r.Type != "result" || !strings.Contains(string(r.Raw), "gateway") || r.From != "irc.localhost" {
		t.Fatalf("answer: %s", r.Raw)
	}

	// Component → user: from any JID at its domain, and the user's answer.
	c.send("<message from='bot@irc.localhost/x' to='%s' type='chat' xmlns='jabber:component:accept'><body>hi from irc</body></message>", a.JID)
	got := a.Expect("message from the component", isMsg("hi from irc"))
	if got.From != "bot@irc.localhost/x" || strings.Contains(string(got.Raw), "component:accept") {
		t.Fatalf("delivered %s", got.Raw)
	}
	c.send("<iq type='get' id='c1' from='irc.localhost' to='%s'><ping xmlns='urn:xmpp:ping'/></iq>", "alice@localhost")
	if pong := c.expect("ping answer", func(s *wire.Stanza) bool { return s.ID == "c1" }); pong.Type != "result" {
		t.Fatalf("ping answer: %s", pong.Raw)
	}

	// A second connection for the domain: conflict; the first goes on.
	c2, id := dialComponent(t, ts, "irc.localhost", "jabber:component:accept")
	c2.send("<handshake>%s</handshake>", handshakeFor(id, compSecret))
	if cond := streamErrorOf(t, c2); cond != "conflict" {
		t.Fatalf("second component: %s", cond)
	}
	a.Send("<message to='x@irc.localhost' id='m2'><body>still there</body></message>")
	c.expect("message after the conflict", func(s *wire.Stanza) bool { return s.ID == "m2" })

	// Sending from another domain ends the stream.
	c.send("<message from='alice@localhost' to='%s'><body>spoofed</body></message>", a.JID)
	if cond := streamErrorOf(t, c); cond != "invalid-from" {
		t.Fatalf("spoofed from: %s", cond)
	}
	a.ExpectNone("spoofed message", 300*time.Millisecond, isMsg("spoofed"))
	// Gone: service-unavailable again.
	testserver.Eventually(t, "the component to be detached", func() bool {
		r := a.IQ("q2", "<iq type='get' id='q2' to='irc.localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
		return r.Type == "error" && strings.Contains(string(r.Raw), "service-unavailable")
	})
}

// TestComponentRefused: a wrong secret, an unknown domain, another
// namespace and a missing 'to' end the stream with the XEP-0114 error.
func TestComponentRefused(t *testing.T) {
	t.Parallel()
	ts := testserver.Start(t, withComponent)
	c, _ := dialComponent(t, ts, "irc.localhost", "jabber:component:accept")
	c.send("<handshake>%s</handshake>", handshakeFor("other-id", compSecret))
	if cond := streamErrorOf(t, c); cond != "not-authorized" {
		t.Fatalf("wrong handshake: %s", cond)
	}
	c, _ = dialComponent(t, ts, "other.localhost", "jabber:component:accept")
	if cond := streamErrorOf(t, c); cond != "host-unknown" {
		t.Fatalf("unknown domain: %s", cond)
	}
	c, _ = dialComponent(t, ts, "irc.localhost", "jabber:client")
	if cond := streamErrorOf(t, c); cond != "invalid-namespace" {
		t.Fatalf("jabber:client: %s", cond)
	}
	c, _ = dialComponent(t, ts, "irc.localhost", "jabber:component:accept")
	c.send("<message from='bot@irc.localhost'><body>x</body></message>")
	if cond := streamErrorOf(t, c); cond != "not-authorized" {
		t.Fatalf("stanza before the handshake: %s", cond)
	}
	c = connectComponent(t, ts)
	c.send("<message from='bot@irc.localhost'><body>nowhere</body></message>")
	if cond := streamErrorOf(t, c); cond != "improper-addressing" {
		t.Fatalf("no 'to': %s", cond)
	}
}
