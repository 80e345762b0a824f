package federation

import (
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/wire"
)

// c2sClient is a minimal scripted XMPP client for a third-party server
// (STARTTLS, optional XEP-0077 registration, SASL PLAIN, bind). A reader
// goroutine keeps a backlog; expect takes the first matching stanza.
type c2sClient struct {
	t      *testing.T
	conn   net.Conn
	rd     *wire.Reader
	domain string
	jid    string

	mu      sync.Mutex
	backlog []*wire.Stanza
	err     error
	notify  chan struct{}
}

func (c *c2sClient) write(s string) {
	c.t.Helper()
	_ = c.conn.SetWriteDeadline(time.Now().Add(waitFor))
	if _, err := c.conn.Write([]byte(s)); err != nil {
		c.t.Fatalf("c2s client write: %v", err)
	}
}

func (c *c2sClient) send(format string, args ...any) {
	c.t.Helper()
	c.write(fmt.Sprintf(format, args...))
}

func (c *c2sClient) next() *wire.Stanza {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(waitFor))
	st, err := c.rd.Next()
	if err != nil {
		c.t.Fatalf("c2s client read: %v", err)
	}
	return st
}

// open starts a stream and returns its features.
func (c *c2sClient) open() *wire.Stanza {
	c.t.Helper()
	c.write("<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='" +
		c.domain + "' version='1.0' xml:lang='en'>")
	c.rd = wire.NewReader(c.conn, wire.Limits{MaxStanzaBytes: 1 << 20})
	_ = c.conn.SetReadDeadline(time.Now().Add(waitFor))
	if _, err := c.rd.ReadHeader(); err != nil {
		c.t.Fatalf("c2s client: stream header: %v", err)
	}
	f := c.next()
	if f.Name != "features" {
		c.t.Fatalf("c2s client: want features, got %s", f.Raw)
	}
	return f
}

// c2sLogin connects to addr for user@domain; with register the account
// is created in-band first (XEP-0077).
func c2sLogin(t *testing.T, addr, domain, user, password, resource string, register bool) *c2sClient {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, waitFor)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	c := &c2sClient{t: t, conn: conn, domain: domain, notify: make(chan struct{}, 1)}
	if f := c.open(); f.Child("urn:ietf:params:xml:ns:xmpp-tls", "starttls") == nil {
		t.Fatalf("no STARTTLS: %s", f.Raw)
	}
	c.write("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
	if st := c.next(); st.Name != "proceed" {
		t.Fatalf("want proceed, got %s", st.Raw)
	}
	tc := tls.Client(conn, &tls.Config{InsecureSkipVerify: true, ServerName: domain})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	c.conn = tc
	c.open()
	if register {
		c.send("<iq type='set' id='reg1'><query xmlns='jabber:iq:register'><username>%s</username><password>%s</password></query></iq>",
			user, password)
		if st := c.next(); st.Name != "iq" || st.Type != "result" {
			t.Fatalf("in-band registration of %s: %s", user, st.Raw)
		}
	}
	c.write("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" +
		base64.StdEncoding.EncodeToString([]byte("\x00"+user+"\x00"+password)) + "</auth>")
	if st := c.next(); st.Name != "success" {
		t.Fatalf("SASL PLAIN for %s: %s", user, st.Raw)
	}
	c.open()
	c.send("<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>%s</resource></bind></iq>", resource)
	st := c.next()
	if st.Type != "result" {
		t.Fatalf("bind: %s", st.Raw)
	}
	c.jid = st.Child("urn:ietf:params:xml:ns:xmpp-bind", "bind").ChildText("urn:ietf:params:xml:ns:xmpp-bind", "jid")
	_ = c.conn.SetReadDeadline(time.Time{})
	go c.read()
	return c
}

func (c *c2sClient) read() {
	for {
		st, err := c.rd.Next()
		c.mu.Lock()
		if err != nil {
			c.err = err
		} else {
			c.backlog = append(c.backlog, st)
		}
		c.mu.Unlock()
		select {
		case c.notify <- struct{}{}:
		default:
		}
		if err != nil {
			return
		}
	}
}

// expect waits for the first stanza satisfying match.
func (c *c2sClient) expect(what string, d time.Duration, match func(*wire.Stanza) bool) *wire.Stanza {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for {
		c.mu.Lock()
		for i, s := range c.backlog {
			if match(s) {
				c.backlog = append(c.backlog[:i:i], c.backlog[i+1:]...)
				c.mu.Unlock()
				return s
			}
		}
		err := c.err
		var seen []string
		for _, s := range c.backlog {
			seen = append(seen, string(s.Raw))
		}
		c.mu.Unlock()
		if err != nil || time.Now().After(deadline) {
			c.t.Fatalf("%s: did not receive %s within %v (stream: %v); backlog:\n%s", c.jid, what, d, err, strings.Join(seen, "\n"))
		}
		select {
		case <-c.notify:
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// presenceFrom matches presence of type typ from a bare JID or one of its
// full JIDs.
func presenceFrom(from, typ string) func(*wire.Stanza) bool {
	return func(s *wire.Stanza) bool {
		return s.Name == "presence" && s.Type == typ && (s.From == from || strings.HasPrefix(s.From, from+"/"))
	}
}

func messageWithBody(body string) func(*wire.Stanza) bool {
	return func(s *wire.Stanza) bool {
		return s.Name == "message" && s.Child(wire.NSClient, "body").Text() == body
	}
}
