package federation

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/wire"
)

// rawPeer is a hand-driven remote server for attack tests.
type rawPeer struct {
	t     *testing.T
	conn  net.Conn
	tc    *tls.Conn
	rd    *wire.Reader
	from  string
	to    string
	id    string
	feats *wire.Stanza
}

func (p *rawPeer) write(s string) {
	p.t.Helper()
	var w io.Writer = p.conn
	if p.tc != nil {
		w = p.tc
	}
	if _, err := w.Write([]byte(s)); err != nil {
		p.t.Fatalf("raw peer write: %v", err)
	}
}

func (p *rawPeer) open() {
	p.t.Helper()
	p.write("<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' from='" +
		p.from + "' to='" + p.to + "' version='1.0'>")
	h, err := p.rd.ReadHeader()
	if err != nil {
		p.t.Fatalf("raw peer: header: %v", err)
	}
	p.id = h.ID
	p.feats = p.next()
	if p.feats.Name != "features" {
		p.t.Fatalf("raw peer: want features, got %s", p.feats.Raw)
	}
}

func (p *rawPeer) next() *wire.Stanza {
	p.t.Helper()
	_ = p.conn.SetReadDeadline(time.Now().Add(waitFor))
	st, err := p.rd.Next()
	if err != nil {
		p.t.Fatalf("raw peer: read: %v", err)
	}
	return st
}

// dialPlain opens a stream to addr as 'from' without TLS (dialback
// verification needs none) and reads the features.
func dialPlain(t *testing.T, addr, from, to string) *rawPeer {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	p := &rawPeer{t: t, conn: c, rd: wire.NewReader(c, wire.Limits{}), from: from, to: to}
	p.open()
	return p
}

// dialRaw connects to addr as 'from' and negotiates STARTTLS, presenting
// cert (if not nil) as client certificate.
func dialRaw(t *testing.T, addr, from, to string, cert *tls.Certificate) *rawPeer {
	t.Helper()
	p := dialPlain(t, addr, from, to)
	c := p.conn
	if p.feats.Child("urn:ietf:params:xml:ns:xmpp-tls", "starttls") == nil {
		t.Fatalf("no STARTTLS offered: %s", p.feats.Raw)
	}
	p.write("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
	if st := p.next(); st.Name != "proceed" {
		t.Fatalf("want proceed, got %s", st.Raw)
	}
	cfg := &tls.Config{InsecureSkipVerify: true, ServerName: to}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	p.tc = tls.Client(c, cfg)
	if err := p.tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	p.rd.Reset(p.tc)
	p.open()
	return p
}

func (p *rawPeer) saslExternal() {
	p.t.Helper()
	p.write("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>" + base64.StdEncoding.EncodeToString([]byte(p.from)) + "</auth>")
	if st := p.next(); st.Name != "success" {
		p.t.Fatalf("want SASL success, got %s", st.Raw)
	}
	p.rd.Reset(p.tc)
	p.open()
}

// expectStreamError reads until a stream error and checks its condition.
func (p *rawPeer) expectStreamError(cond string) {
	p.t.Helper()
	for {
		_ = p.conn.SetReadDeadline(time.Now().Add(waitFor))
		st, err := p.rd.Next()
		if err != nil {
			p.t.Fatalf("want stream error %s, got %v", cond, err)
		}
		if st.NS == wire.NSStream && st.Name == "error" {
			if st.Child(wire.NSStreams, cond) == nil {
				p.t.Fatalf("want stream error %s, got %s", cond, st.Raw)
			}
			_ = p.conn.SetReadDeadline(time.Now().Add(waitFor))
			if _, err := p.rd.Next(); !errors.Is(err, wire.ErrStreamEnd) && !errors.Is(err, io.EOF) {
				p.t.Fatalf("want the stream closed after the error, got %v", err)
			}
			return
		}
	}
}

func TestSpoofedFromGetsInvalidFrom(t *testing.T) {
	ca := newCA(t)
	a, b := pairOf(t, ca, ca.issue(t, "a.test", "a.test"), ca.issue(t, "b.test", "b.test"), true)
	alice := a.bind(t, "alice@a.test/x")
	bob := b.bind(t, "bob@b.test/y")

	evilCert := ca.issue(t, "evil.test", "evil.test")
	p := dialRaw(t, b.addr, "evil.test", "b.test", &evilCert)
	p.saslExternal()
	// Its own domain is fine...
	p.write(message("mallory@evil.test/m", "bob@b.test/y", "e1", "hi from evil"))
	checkMessage(t, bob.expect(t, waitFor), "mallory@evil.test/m", "bob@b.test/y", "hi from evil")
	// ...another domain is not.
	p.write(message("alice@a.test/x", "bob@b.test/y", "e2", "spoofed"))
	p.expectStreamError(wire.CondInvalidFrom)
	bob.expectNone(t)

	// The genuine a.test keeps working on its own connection.
	a.sendFrom(t, alice, message("alice@a.test/x", "bob@b.test/y", "g1", "genuine"))
	checkMessage(t, bob.expect(t, waitFor), "alice@a.test/x", "bob@b.test/y", "genuine")

	// A stanza for a domain that is not served here: host-unknown.
	p2 := dialRaw(t, b.addr, "evil.test", "b.test", &evilCert)
	p2.saslExternal()
	p2.write(message("mallory@evil.test/m", "carol@c.test", "e3", "relay me"))
	p2.expectStreamError(wire.CondHostUnknown)
}

func TestSASLExternalRefusedForOtherDomain(t *testing.T) {
	ca := newCA(t)
	_, b := pairOf(t, ca, ca.issue(t, "a.test", "a.test"), ca.issue(t, "b.test", "b.test"), true)
	evilCert := ca.issue(t, "a.test", "evil.test") // CN says a.test, SAN says evil.test
	p := dialRaw(t, b.addr, "a.test", "b.test", &evilCert)
	if m := p.feats.Child("urn:ietf:params:xml:ns:xmpp-sasl", "mechanisms"); m != nil {
		t.Fatalf("EXTERNAL offered for a certificate not valid for a.test: %s", p.feats.Raw)
	}
	p.write("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>=</auth>")
	if st := p.next(); st.Name != "failure" {
		t.Fatalf("want SASL failure, got %s", st.Raw)
	}
	p.write(message("alice@a.test/x", "bob@b.test/y", "s", "unauthenticated"))
	p.expectStreamError(wire.CondNotAuthorized)
}

func TestUnsolicitedDialback(t *testing.T) {
	ca := newCA(t)
	_, b := pairOf(t, ca, ca.issue(t, "a.test", "a.test"), ca.issue(t, "b.test", "b.test"), false)

	p := dialRaw(t, b.addr, "a.test", "b.test", nil)
	p.write("<db:result from='a.test' to='b.test' type='valid'/>")
	p.expectStreamError(wire.CondNotAuthorized)

	p = dialRaw(t, b.addr, "a.test", "b.test", nil)
	p.write("<db:verify from='a.test' to='b.test' id='abc' type='valid'/>")
	p.expectStreamError("invalid-id")
}

// dialbackKey is the XEP-0185 key as a server holding secret computes it.
func dialbackKey(secret []byte, receiving, originating, id string) string {
	k := sha256.Sum256(secret)
	m := hmac.New(sha256.New, []byte(hex.EncodeToString(k[:])))
	m.Write([]byte(receiving + " " + originating + " " + id))
	return hex.EncodeToString(m.Sum(nil))
}

func TestDialbackWrongKeyRefused(t *testing.T) {
	ca := newCA(t)
	a, b := pairOf(t, ca, ca.issue(t, "a.test", "x.example"), ca.issue(t, "b.test", "y.example"), false)
	bob := b.bind(t, "bob@b.test/y")

	keys := map[string]func(id string) string{
		"garbage": func(string) string { return "deadbeef" },
		// The right HMAC (as if the secret leaked) but a.test never opened
		// that stream, so its authoritative server must still say invalid.
		"unsolicited": func(id string) string { return dialbackKey(a.secret, "b.test", "a.test", id) },
	}
	for name, key := range keys {
		t.Run(name, func(t *testing.T) {
			p := dialRaw(t, b.addr, "a.test", "b.test", nil)
			p.write("<db:result from='a.test' to='b.test'>" + key(p.id) + "</db:result>")
			st := p.next()
			if st.NS != "jabber:server:dialback" || st.Name != "result" || st.Type != "invalid" ||
				st.From != "b.test" || st.To != "a.test" {
				t.Fatalf("want db:result type=invalid, got %s", st.Raw)
			}
			p.write(message("alice@a.test/x", "bob@b.test/y", "s", "spoofed"))
			p.expectStreamError(wire.CondNotAuthorized)
		})
	}
	bob.expectNone(t)

	// Claiming to be the receiving server's own domain.
	p := dialRaw(t, b.addr, "b.test", "b.test", nil)
	p.write("<db:result from='b.test' to='b.test'>abc</db:result>")
	p.expectStreamError(wire.CondInvalidFrom)
}

func TestFederationDirectTLS(t *testing.T) {
	ca := newCA(t)
	lnA := listen(t, "127.0.0.2")
	lnB := listen(t, "127.0.0.3")
	a := startNode(t, "a.test", lnA, ca, nodeOpts{cert: ca.issue(t, "a.test", "a.test"), requireValidCerts: true, directTLS: true,
		routes: map[string][]string{"b.test": {"tls://" + lnB.Addr().String()}}})
	b := startNode(t, "b.test", lnB, ca, nodeOpts{cert: ca.issue(t, "b.test", "b.test"), requireValidCerts: true, directTLS: true,
		routes: map[string][]string{"a.test": {"tls://" + lnA.Addr().String()}}})
	roundTrip(t, a, b)
}

func TestOversizedStanzaFromPeer(t *testing.T) {
	ca := newCA(t)
	a, b := pairOf(t, ca, ca.issue(t, "a.test", "a.test"), ca.issue(t, "b.test", "b.test"), true)
	alice := a.bind(t, "alice@a.test/x")
	bob := b.bind(t, "bob@b.test/y")
	evilCert := ca.issue(t, "evil.test", "evil.test")
	p := dialRaw(t, b.addr, "evil.test", "b.test", &evilCert)
	p.saslExternal()
	big := make([]byte, 600<<10)
	for i := range big {
		big[i] = 'x'
	}
	// The server stops reading at the limit, so write in the background.
	go func() { _, _ = p.tc.Write([]byte(message("mallory@evil.test/m", "bob@b.test/y", "big", string(big)))) }()
	p.expectStreamError(wire.CondPolicyViolation)
	// Other peers are unaffected.
	a.sendFrom(t, alice, message("alice@a.test/x", "bob@b.test/y", "g1", "genuine"))
	checkMessage(t, bob.expect(t, waitFor), "alice@a.test/x", "bob@b.test/y", "genuine")
}
