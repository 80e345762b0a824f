package federation

import (
	"crypto/tls"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/wire"
)

// With bidi (XEP-0288) the connection a.test opened carries b.test's
// stanzas back: one TCP connection in all. Without, two.
func TestFederationBidiOneConnection(t *testing.T) {
	for _, bidi := range []bool{true, false} {
		name := map[bool]string{true: "bidi", false: "no-bidi"}[bidi]
		t.Run(name, func(t *testing.T) {
			ca := newCA(t)
			a, b := pairWith(t, ca, ca.issue(t, "a.test", "a.test"), ca.issue(t, "b.test", "b.test"), true, bidi)
			roundTrip(t, a, b)
			// More traffic both ways, interleaved.
			alice, bob := a.bind(t, "alice@a.test/z"), b.bind(t, "bob@b.test/z")
			for i := range 3 {
				b.sendFrom(t, bob, message("bob@b.test/z", "alice@a.test/z", "r", strings.Repeat("b", i+1)))
				a.sendFrom(t, alice, message("alice@a.test/z", "bob@b.test/z", "r", strings.Repeat("a", i+1)))
				checkMessage(t, alice.expect(t, waitFor), "bob@b.test/z", "alice@a.test/z", strings.Repeat("b", i+1))
				checkMessage(t, bob.expect(t, waitFor), "alice@a.test/z", "bob@b.test/z", strings.Repeat("a", i+1))
			}
			conns := a.ln.accepted() + b.ln.accepted()
			want := map[bool]int{true: 1, false: 2}[bidi]
			if conns != want {
				t.Fatalf("%d TCP connections between a.test and b.test, want %d", conns, want)
			}
			sa, sb := a.svc.Stats()["b.test"], b.svc.Stats()["a.test"]
			if bidi {
				if b.ln.accepted() != 1 || sb.ConnectionsOut != 0 || sa.ConnectionsIn != 0 {
					t.Fatalf("b.test dialed a.test although a.test's stream is bidirectional: %+v %+v", sa, sb)
				}
				waitLog(t, a, "requested bidirectional stream", time.Second)
				waitLog(t, b, "peer enabled bidirectional stream", time.Second)
			}
			// The sender counts after its flush, maybe after delivery.
			eventually(t, func() bool {
				return b.svc.Stats()["a.test"].StanzasOut == 4 && a.svc.Stats()["b.test"].StanzasIn == 4
			}, "4 stanzas b.test → a.test counted on both sides")
		})
	}
}

// With dialback, the verification needs its own connection, but the
// stanzas of both directions share a.test's stream.
func TestFederationBidiDialback(t *testing.T) {
	ca := newCA(t)
	a, b := pairWith(t, ca, ca.issue(t, "a.test", "other-a.example"), ca.issue(t, "b.test", "other-b.example"), false, true)
	roundTrip(t, a, b)
	if sa, sb := a.svc.Stats()["b.test"], b.svc.Stats()["a.test"]; sb.ConnectionsOut != 0 || sa.ConnectionsIn != 0 {
		t.Fatalf("a second authenticated stream: %+v %+v", sa, sb)
	}
	waitLog(t, b, "mechanism=dialback remote=a.test", time.Second)
	if strings.Contains(a.logs.String(), "mechanism=dialback remote=b.test") {
		t.Error("b.test authenticated a stream of its own")
	}
}

// Spoofing on a bidirectional inbound stream: the peer may send only from
// the domain it authenticated, and b.test answers it on the same stream.
func TestBidiInboundSpoofedFrom(t *testing.T) {
	ca := newCA(t)
	_, b := pairOf(t, ca, ca.issue(t, "a.test", "a.test"), ca.issue(t, "b.test", "b.test"), true)
	bob := b.bind(t, "bob@b.test/y")
	evilCert := ca.issue(t, "evil.test", "evil.test")
	p := dialRaw(t, b.addr, "evil.test", "b.test", &evilCert)
	if p.feats.Child("urn:xmpp:features:bidi", "bidi") == nil {
		t.Fatalf("bidi not offered: %s", p.feats.Raw)
	}
	p.write("<bidi xmlns='urn:xmpp:bidi'/>")
	p.saslExternal()
	p.write(message("mallory@evil.test/m", "bob@b.test/y", "e1", "hi from evil"))
	checkMessage(t, bob.expect(t, waitFor), "mallory@evil.test/m", "bob@b.test/y", "hi from evil")
	// b.test has no route to evil.test: the reply can only come back on
	// the bidirectional stream.
	b.sendFrom(t, bob, message("bob@b.test/y", "mallory@evil.test/m", "r1", "hi evil"))
	checkMessage(t, p.next(), "bob@b.test/y", "mallory@evil.test/m", "hi evil")
	if n := b.svc.Stats()["evil.test"].ConnectionsOut; n != 0 {
		t.Fatalf("b.test dialed evil.test (%d)", n)
	}
	p.write(message("alice@a.test/x", "bob@b.test/y", "e2", "spoofed"))
	p.expectStreamError(wire.CondInvalidFrom)
	bob.expectNone(t)
	// An unsolicited dialback result on a bidi stream is still an attack.
	p2 := dialRaw(t, b.addr, "evil.test", "b.test", &evilCert)
	p2.write("<bidi xmlns='urn:xmpp:bidi'/>")
	p2.saslExternal()
	p2.write("<db:result from='a.test' to='b.test' type='valid'/>")
	p2.expectStreamError(wire.CondNotAuthorized)
}

// fakeReceiver is a hand-driven receiving server (evil.test) that b.test
// dials; it offers bidi and SASL EXTERNAL and then speaks on b.test's
// outbound stream.
func fakeReceiver(t *testing.T, ln net.Listener, cert tls.Certificate) <-chan *rawPeer {
	ch := make(chan *rawPeer, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		p := &rawPeer{t: t, conn: c, rd: wire.NewReader(c, wire.Limits{})}
		header := func(feats string) bool {
			if _, err := p.rd.ReadHeader(); err != nil {
				return false
			}
			_, err := p.currentWriter().Write([]byte("<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' from='evil.test' to='b.test' id='s" +
				time.Now().Format("150405.000000") + "' version='1.0'><stream:features>" + feats + "</stream:features>"))
			return err == nil
		}
		next := func() *wire.Stanza {
			_ = c.SetReadDeadline(time.Now().Add(waitFor))
			st, err := p.rd.Next()
			if err != nil {
				return nil
			}
			return st
		}
		if !header("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>") {
			return
		}
		if st := next(); st == nil || st.Name != "starttls" {
			return
		}
		_, _ = c.Write([]byte("<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"))
		p.tc = tls.Server(c, &tls.Config{Certificates: []tls.Certificate{cert}, ClientAuth: tls.RequestClientCert})
		if p.tc.Handshake() != nil {
			return
		}
		p.rd.Reset(p.tc)
		if !header("<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>EXTERNAL</mechanism></mechanisms><bidi xmlns='urn:xmpp:features:bidi'/>") {
			return
		}
		if st := next(); st == nil || st.NS != "urn:xmpp:bidi" {
			t.Errorf("b.test did not request bidi")
			return
		}
		if st := next(); st == nil || st.Name != "auth" {
			return
		}
		_, _ = p.tc.Write([]byte("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>"))
		p.rd.Reset(p.tc)
		if !header("") {
			return
		}
		ch <- p
	}()
	return ch
}

func (p *rawPeer) currentWriter() interface{ Write([]byte) (int, error) } {
	if p.tc != nil {
		return p.tc
	}
	return p.conn
}

// Spoofing on a bidirectional outbound stream: the peer b.test dialed may
// send only from the domain b.test authenticated (evil.test); claiming
// a.test needs dialback, and a.test's authoritative server says no.
func TestBidiOutboundSpoofedFrom(t *testing.T) {
	ca := newCA(t)
	lnA := listen(t, "127.0.0.2")
	lnB := listen(t, "127.0.0.3")
	lnE := listen(t, "127.0.0.5")
	a := startNode(t, "a.test", lnA, ca, nodeOpts{cert: ca.issue(t, "a.test", "a.test"),
		routes: map[string][]string{"b.test": {lnB.Addr().String()}}})
	b := startNode(t, "b.test", lnB, ca, nodeOpts{cert: ca.issue(t, "b.test", "b.test"),
		routes: map[string][]string{"a.test": {lnA.Addr().String()}, "evil.test": {lnE.Addr().String()}}})
	_ = a
	bob := b.bind(t, "bob@b.test/y")
	peers := fakeReceiver(t, lnE, ca.issue(t, "evil.test", "evil.test"))
	b.sendFrom(t, bob, message("bob@b.test/y", "mallory@evil.test/m", "o1", "hello evil"))
	var p *rawPeer
	select {
	case p = <-peers:
	case <-time.After(waitFor):
		t.Fatal("b.test did not connect to evil.test")
	}
	checkMessage(t, p.next(), "bob@b.test/y", "mallory@evil.test/m", "hello evil")
	// evil.test's own domain may answer on b.test's stream...
	p.write(message("mallory@evil.test/m", "bob@b.test/y", "o2", "hello bob"))
	checkMessage(t, bob.expect(t, waitFor), "mallory@evil.test/m", "bob@b.test/y", "hello bob")
	// ...a.test needs dialback first, which a.test refuses to confirm...
	p.write("<db:result from='a.test' to='b.test'>" + dialbackKey([]byte("secret of a.test"), "b.test", "a.test", "x") + "</db:result>")
	st := p.next()
	if st.Name != "result" || st.Type == "valid" {
		t.Fatalf("want a failed dialback for a.test, got %s", st.Raw)
	}
	// ...so a stanza from a.test ends the stream.
	p.write(message("alice@a.test/x", "bob@b.test/y", "o3", "spoofed"))
	p.expectStreamError(wire.CondInvalidFrom)
	bob.expectNone(t)
}
