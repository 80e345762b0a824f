package testserver

import (
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mellium.im/sasl"

	"github.com/parley-xmpp/parley/wire"
	"github.com/parley-xmpp/parley/xep"
)

// Timeout bounds every wait in scripted clients.
const Timeout = 5 * time.Second

// Client is a scripted XMPP client over a real socket. A background
// goroutine reads stanzas into a backlog; Expect takes the first matching
// one, so unrelated stanzas (e.g. presence) never make a test flaky.
type Client struct {
	t      testing.TB
	conn   net.Conn
	domain string
	JID    string // full JID after bind

	mu      sync.Mutex
	backlog []*wire.Stanza
	err     error // read error that ended the stream (e.g. a *wire.StreamError)
	notify  chan struct{}
	rd      *wire.Reader
	header  wire.Header
	reading bool
	syncN   int // pings sent by Sync
	tap     atomic.Pointer[func(*wire.Stanza) bool]
}

// Dial opens a raw TCP connection to the STARTTLS port without speaking.
func (s *Server) Dial() net.Conn {
	s.t.Helper()
	c, err := net.DialTimeout("tcp", s.Addr("c2s"), Timeout)
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { c.Close() })
	return c
}

// DialFrom is Dial from another loopback source address (e.g.
// "127.0.0.7"), for tests of per-address limits.
func (s *Server) DialFrom(ip string) net.Conn {
	s.t.Helper()
	d := net.Dialer{Timeout: Timeout, LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	c, err := d.Dial("tcp", s.Addr("c2s"))
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { c.Close() })
	return c
}

// ConnectFrom is Connect from another loopback source address.
func (s *Server) ConnectFrom(ip string) *Client {
	s.t.Helper()
	return startTLS(s.t, s.DialFrom(ip), s.Domain)
}

// Connect opens a stream and negotiates STARTTLS; it stops before SASL.
func (s *Server) Connect() *Client {
	s.t.Helper()
	return startTLS(s.t, s.Dial(), s.Domain)
}

// ConnectTo is Connect for any server's STARTTLS port at addr serving
// domain (interop tests with third-party servers). The certificate is not
// verified.
func ConnectTo(t testing.TB, addr, domain string) *Client {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, Timeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return startTLS(t, conn, domain)
}

// ConnectTLS is Connect with the client's TLS settings in cfg (e.g. a
// maximum version); the certificate is not verified.
func (s *Server) ConnectTLS(cfg *tls.Config) *Client {
	s.t.Helper()
	return startTLSWith(s.t, s.Dial(), s.Domain, cfg)
}

func startTLS(t testing.TB, conn net.Conn, domain string) *Client {
	t.Helper()
	return startTLSWith(t, conn, domain, &tls.Config{})
}

func startTLSWith(t testing.TB, conn net.Conn, domain string, cfg *tls.Config) *Client {
	t.Helper()
	c := &Client{t: t, conn: conn, notify: make(chan struct{}, 1), domain: domain}
	c.startStream()
	f := c.Features()
	if f.Child(xep.NSTLS, "starttls") == nil {
		t.Fatalf("no starttls offered: %s", f.Raw)
	}
	c.write("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
	if p := c.next(); p.Name != "proceed" {
		t.Fatalf("expected proceed, got %s", p.Raw)
	}
	cfg = cfg.Clone()
	cfg.InsecureSkipVerify, cfg.ServerName = true, c.domain
	tc := tls.Client(c.conn, cfg)
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	c.conn = tc
	c.startStream()
	return c
}

// Login connects and authenticates with SCRAM-SHA-256 and binds resource
// (empty: server-generated). It does not send initial presence.
func (s *Server) Login(user, password, resource string) *Client {
	s.t.Helper()
	c := s.Connect()
	c.LoginWith(c.Features(), "SCRAM-SHA-256", user, password, resource)
	return c
}

// LoginWith authenticates a connected client with mech, restarts the
// stream, binds resource and starts background reading.
func (c *Client) LoginWith(features *wire.Stanza, mech, user, password, resource string) {
	c.t.Helper()
	if err := c.Auth(features, mech, user, password); err != nil {
		c.t.Fatalf("login %s: %v", user, err)
	}
	c.startStream()
	c.Features()
	c.Bind(resource)
	c.startReader()
}

// Authenticate connects and authenticates but does not bind, for stream
// management resumption tests; call StartReader before Expect.
func (s *Server) Authenticate(user, password string) *Client {
	s.t.Helper()
	c := s.Connect()
	if err := c.Auth(c.Features(), "SCRAM-SHA-256", user, password); err != nil {
		s.t.Fatalf("login %s: %v", user, err)
	}
	c.startStream()
	c.Features()
	return c
}

// Tap makes the background reader call f with every stanza as it
// arrives (on the reader goroutine); those for which f returns true are
// consumed and never reach the backlog (load tools measure arrival
// times with it). nil removes the tap.
func (c *Client) Tap(f func(*wire.Stanza) bool) {
	if f == nil {
		c.tap.Store(nil)
		return
	}
	c.tap.Store(&f)
}

// StartReader switches the client to background reading (Expect).
func (c *Client) StartReader() { c.startReader() }

// Next reads one element synchronously (before StartReader).
func (c *Client) Next() *wire.Stanza { return c.next() }

// Drop closes the TCP connection without ending the stream, like a phone
// losing its network.
func (c *Client) Drop() { _ = c.conn.Close() }

func (c *Client) startStream() {
	c.write("<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='" + c.domain + "' version='1.0'>")
	c.rd = wire.NewReader(c.conn, wire.Limits{MaxStanzaBytes: 1 << 20})
	h, err := c.rd.ReadHeader()
	if err != nil {
		c.t.Fatalf("reading stream header: %v", err)
	}
	c.header = h
}

// Features reads a <stream:features/> element.
func (c *Client) Features() *wire.Stanza {
	f := c.next()
	if f.Name != "features" {
		c.t.Fatalf("expected features, got %s", f.Raw)
	}
	return f
}

// next reads synchronously (only during negotiation).
func (c *Client) next() *wire.Stanza {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(Timeout))
	defer c.conn.SetReadDeadline(time.Time{})
	st, err := c.rd.Next()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return st
}

func (c *Client) write(s string) {
	c.t.Helper()
	_ = c.conn.SetWriteDeadline(time.Now().Add(Timeout))
	if _, err := c.conn.Write([]byte(s)); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// melliumMechanism is the client side of a mechanism the scripted client
// can run.
func melliumMechanism(name string) (sasl.Mechanism, error) {
	switch name {
	case "SCRAM-SHA-1":
		return sasl.ScramSha1, nil
	case "SCRAM-SHA-256":
		return sasl.ScramSha256, nil
	case "SCRAM-SHA-256-PLUS":
		return sasl.ScramSha256Plus, nil
	case "PLAIN":
		return sasl.Plain, nil
	}
	return sasl.Mechanism{}, fmt.Errorf("unknown mechanism %s", name)
}

// Auth runs a SASL mechanism; it returns an error describing a <failure/>.
func (c *Client) Auth(features *wire.Stanza, mech, user, password string) error {
	m, err := melliumMechanism(mech)
	if err != nil {
		return err
	}
	var remote []string
	for _, e := range features.Child(xep.NSSASL, "mechanisms").Elements() {
		remote = append(remote, e.Text())
	}
	opts := []sasl.Option{sasl.Credentials(func() ([]byte, []byte, []byte) { return []byte(user), []byte(password), nil }),
		sasl.RemoteMechanisms(remote...)}
	if tc, ok := c.conn.(*tls.Conn); ok {
		opts = append(opts, sasl.TLSState(tc.ConnectionState()))
	}
	n := sasl.NewClient(m, opts...)
	_, resp, err := n.Step(nil)
	if err != nil {
		return err
	}
	c.write("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='" + mech + "'>" + b64(resp) + "</auth>")
	for {
		st := c.next()
		data, _ := base64.StdEncoding.DecodeString(strings.TrimSpace(st.Tree().Text()))
		switch st.Name {
		case "challenge":
			_, resp, err := n.Step(data)
			if err != nil {
				return err
			}
			c.write("<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>" + b64(resp) + "</response>")
		case "success":
			if len(data) > 0 {
				if _, _, err := n.Step(data); err != nil {
					return fmt.Errorf("server signature: %w", err)
				}
			}
			return nil
		case "failure":
			return errors.New("failure: " + string(st.Raw))
		default:
			return errors.New("unexpected: " + string(st.Raw))
		}
	}
}

func b64(b []byte) string {
	if len(b) == 0 {
		return "="
	}
	return base64.StdEncoding.EncodeToString(b)
}

// Bind binds a resource and records the full JID.
func (c *Client) Bind(resource string) {
	c.t.Helper()
	res := ""
	if resource != "" {
		res = "<resource>" + resource + "</resource>"
	}
	c.write("<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>" + res + "</bind></iq>")
	st := c.next()
	if st.Type != "result" {
		c.t.Fatalf("bind failed: %s", st.Raw)
	}
	c.JID = st.Child(xep.NSBind, "bind").ChildText(xep.NSBind, "jid")
}

func (c *Client) startReader() {
	if c.reading {
		return
	}
	c.reading = true
	go func() {
		for {
			st, err := c.rd.Next()
			if tap := c.tap.Load(); err == nil && tap != nil && (*tap)(st) {
				continue
			}
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
	}()
}

// Send writes raw XML (fmt-style).
func (c *Client) Send(format string, args ...any) {
	c.t.Helper()
	if len(args) == 0 {
		c.write(format)
		return
	}
	c.write(fmt.Sprintf(format, args...))
}

// TryWrite writes raw XML and returns the error instead of failing the
// test: for writers racing a connection that may die (fault injection).
func (c *Client) TryWrite(s string) error {
	_ = c.conn.SetWriteDeadline(time.Now().Add(Timeout))
	_, err := c.conn.Write([]byte(s))
	return err
}

// Expect waits for the first stanza satisfying match and removes it from
// the backlog; it fails the test after Timeout.
func (c *Client) Expect(what string, match func(*wire.Stanza) bool) *wire.Stanza {
	c.t.Helper()
	return c.ExpectWithin(what, Timeout, match)
}

// ExpectWithin is Expect with its own time limit (e.g. a first message
// over federation, which includes setting up the s2s stream).
func (c *Client) ExpectWithin(what string, d time.Duration, match func(*wire.Stanza) bool) *wire.Stanza {
	c.t.Helper()
	st, ok := c.wait(d, match)
	if !ok {
		c.mu.Lock()
		var seen []string
		for _, s := range c.backlog {
			seen = append(seen, string(s.Raw))
		}
		err := c.err
		c.mu.Unlock()
		c.t.Fatalf("%s: did not receive %s within %v (stream err: %v); backlog:\n%s", c.JID, what, d, err, strings.Join(seen, "\n"))
	}
	return st
}

// ExpectNone asserts no matching stanza arrives within d.
func (c *Client) ExpectNone(what string, d time.Duration, match func(*wire.Stanza) bool) {
	c.t.Helper()
	if st, ok := c.wait(d, match); ok {
		c.t.Fatalf("%s: unexpectedly received %s: %s", c.JID, what, st.Raw)
	}
}

func (c *Client) wait(d time.Duration, match func(*wire.Stanza) bool) (*wire.Stanza, bool) {
	deadline := time.Now().Add(d)
	for {
		c.mu.Lock()
		for i, s := range c.backlog {
			if match(s) {
				c.backlog = append(c.backlog[:i:i], c.backlog[i+1:]...)
				c.mu.Unlock()
				return s, true
			}
		}
		ended := c.err != nil
		c.mu.Unlock()
		left := time.Until(deadline)
		if left <= 0 || ended {
			return nil, false
		}
		select {
		case <-c.notify:
		case <-time.After(min(left, 50*time.Millisecond)):
		}
	}
}

// StreamError waits for the stream to end and returns the stream error.
func (c *Client) StreamError() *wire.StreamError {
	c.t.Helper()
	c.startReader()
	deadline := time.Now().Add(Timeout)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		err := c.err
		var se *wire.Stanza
		for _, s := range c.backlog {
			if s.Name == "error" && s.NS == wire.NSStream {
				se = s
			}
		}
		c.mu.Unlock()
		if se != nil {
			cond := se.Tree().FirstElement()
			return &wire.StreamError{Condition: cond.Name.Local, Content: cond.Text(), Text: se.Tree().ChildText(wire.NSStreams, "text")}
		}
		if err != nil {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.t.Fatalf("%s: stream did not end", c.JID)
	return nil
}

// Close ends the stream politely.
func (c *Client) Close() {
	_, _ = c.conn.Write([]byte("</stream:stream>"))
	_ = c.conn.Close()
}

// Sync pings the server and waits for the answer: everything the client
// sent before has been handled when it returns (the server reads a stream
// in order).
func (c *Client) Sync() {
	c.t.Helper()
	c.syncN++
	id := fmt.Sprintf("sync-%d", c.syncN)
	if r := c.IQ(id, "<iq type='get' id='%s'><ping xmlns='%s'/></iq>", id, xep.NSPing); r.Type != "result" {
		c.t.Fatalf("%s: ping: %s", c.JID, r.Raw)
	}
}

// IQ sends an iq and waits for its response (matched by id).
func (c *Client) IQ(id, format string, args ...any) *wire.Stanza {
	c.t.Helper()
	c.Send(format, args...)
	return c.Expect("iq response "+id, func(s *wire.Stanza) bool {
		return s.Name == "iq" && s.ID == id && (s.Type == "result" || s.Type == "error")
	})
}

// Is returns a matcher for name and type, optionally from a JID prefix.
func Is(name, typ string) func(*wire.Stanza) bool {
	return func(s *wire.Stanza) bool { return s.Name == name && (typ == "*" || s.Type == typ) }
}

// Subscribe makes a and b mutually subscribed, as two clients would: each
// asks, the other approves, and each sees the other's answer.
func Subscribe(t testing.TB, a, b *Client, aBare, bBare string) {
	t.Helper()
	a.Send("<presence to='%s' type='subscribe'/>", bBare)
	b.Expect("subscribe from a", PresenceFrom(aBare, "subscribe"))
	b.Send("<presence to='%s' type='subscribed'/>", aBare)
	a.Expect("subscribed from b", PresenceFrom(bBare, "subscribed"))
	b.Send("<presence to='%s' type='subscribe'/>", aBare)
	a.Expect("subscribe from b", PresenceFrom(bBare, "subscribe"))
	a.Send("<presence to='%s' type='subscribed'/>", bBare)
	b.Expect("subscribed from a", PresenceFrom(aBare, "subscribed"))
}

// MessageWithBody matches a message with the body text.
func MessageWithBody(body string) func(*wire.Stanza) bool {
	return func(s *wire.Stanza) bool {
		return s.Name == "message" && s.Child(wire.NSClient, "body").Text() == body
	}
}

// PresenceFrom matches presence of the type from a JID (prefix match on
// bare when from has no resource).
func PresenceFrom(from, typ string) func(*wire.Stanza) bool {
	return func(s *wire.Stanza) bool {
		if s.Name != "presence" || s.Type != typ {
			return false
		}
		return s.From == from || strings.HasPrefix(s.From, from+"/")
	}
}

// ArchiveBodies pages through the client's own archive (XEP-0313, 250
// results a page) and returns the bodies in archive order. form is the
// query's data form fields after FORM_TYPE (e.g. a start field), or "".
func (c *Client) ArchiveBodies(form string) []string {
	c.t.Helper()
	const nsMAM, nsRSM, nsForward = xep.NSMAM, xep.NSRSM, xep.NSForward
	var bodies []string
	after := ""
	for page := 0; page < 10000; page++ {
		id := fmt.Sprintf("archive-page-%d", page)
		set := "<set xmlns='" + nsRSM + "'><max>250</max>"
		if after != "" {
			set += "<after>" + wire.EscapeText(after) + "</after>"
		}
		set += "</set>"
		c.Send("<iq type='set' id='%s'><query xmlns='%s' queryid='%s'><x xmlns='jabber:x:data' type='submit'>"+
			"<field var='FORM_TYPE' type='hidden'><value>%s</value></field>%s</x>%s</query></iq>", id, nsMAM, id, nsMAM, form, set)
		for {
			st := c.Expect("archive page "+id, func(s *wire.Stanza) bool {
				return (s.Name == "iq" && s.ID == id) || (s.Child(nsMAM, "result") != nil && s.Child(nsMAM, "result").AttrValue("queryid") == id)
			})
			if st.Name == "iq" {
				if st.Type != "result" {
					c.t.Fatalf("archive query: %s", st.Raw)
				}
				fin := st.Child(nsMAM, "fin")
				if fin.AttrValue("complete") == "true" {
					return bodies
				}
				after = fin.Child(nsRSM, "set").ChildText(nsRSM, "last")
				break
			}
			msg := st.Child(nsMAM, "result").Child(nsForward, "forwarded").Child(wire.NSClient, "message")
			bodies = append(bodies, msg.ChildText(wire.NSClient, "body"))
		}
	}
	c.t.Fatal("archive query does not end")
	return nil
}
