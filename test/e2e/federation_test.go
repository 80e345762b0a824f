package e2e

import (
	"net"
	"testing"

	"github.com/parley-xmpp/parley/internal/testserver"
	"github.com/parley-xmpp/parley/server"
	"github.com/parley-xmpp/parley/wire"
)

// freePort reserves a port on ip for a server started right after.
func freePort(t *testing.T, ip string) string {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Skipf("cannot listen on %s (loopback alias missing?): %v", ip, err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// The accounts federatedPair creates: alice@a.test (password pw1) and
// bob@b.test (pw2).
const fedAlice, fedBob = "alice@a.test", "bob@b.test"

// federatedPair starts two full servers for a.test (127.0.0.2) and b.test
// (127.0.0.3) that route to each other over real s2s sockets, with the
// accounts fedAlice and fedBob.
// opts apply to both servers.
func federatedPair(t *testing.T, opts ...testserver.Option) (a, b *testserver.Server) {
	t.Helper()
	aS2S, bS2S := freePort(t, "127.0.0.2"), freePort(t, "127.0.0.3")
	mk := func(domain, ip, s2sAddr, peer, peerAddr string) *testserver.Server {
		return testserver.Start(t, append([]testserver.Option{func(c *server.Config) {
			c.Hosts = []string{domain}
			c.Listen = server.ListenConfig{C2S: ip + ":0", S2S: s2sAddr}
			c.S2S.Routes = []string{peer + "=" + peerAddr}
		}}, opts...)...)
	}
	a, b = mk("a.test", "127.0.0.2", aS2S, "b.test", bS2S), mk("b.test", "127.0.0.3", bS2S, "a.test", aS2S)
	a.AddUser("alice", "pw1")
	b.AddUser("bob", "pw2")
	return a, b
}

// federatedContacts is federatedPair with alice (resource phone) and bob
// (laptop) online and mutually subscribed.
func federatedContacts(t *testing.T) (a, b *testserver.Server, ac, bc *testserver.Client) {
	t.Helper()
	a, b = federatedPair(t)
	ac, bc = a.Login("alice", "pw1", "phone"), b.Login("bob", "pw2", "laptop")
	ac.Send("<presence/>")
	bc.Send("<presence/>")
	subscribe(t, ac, bc, fedAlice, fedBob)
	return a, b, ac, bc
}

// TestFederationBetweenTwoParleys: two full servers for different
// domains on 127.0.0.2 and 127.0.0.3 (self-signed certificates, so they
// verify each other with dialback) chat and subscribe both ways, and MAM
// archives on each side.
func TestFederationBetweenTwoParleys(t *testing.T) {
	t.Parallel()
	_, _, alice, bob := federatedContacts(t)
	alice.Send("<message to='bob@b.test' type='chat' id='f1'><body>hello from a.test</body></message>")
	m := bob.Expect("federated message", isMsg("hello from a.test"))
	if m.From != "alice@a.test/phone" {
		t.Fatalf("from = %s", m.From)
	}
	if sid := m.Child(nsSID, "stanza-id"); sid == nil || sid.AttrValue("by") != "bob@b.test" {
		t.Fatalf("no stanza-id by the receiving server: %s", m.Raw)
	}
	bob.Send("<message to='alice@a.test/phone' type='chat'><body>hi back</body></message>")
	alice.Expect("reply", isMsg("hi back"))
	// Presence flows after the subscription.
	bob.Send("<presence><show>away</show></presence>")
	alice.Expect("bob's presence", func(s *wire.Stanza) bool {
		return s.Name == "presence" && s.From == bob.JID && s.Child(wire.NSClient, "show").Text() == "away"
	})
	// IQ across servers: a remote user's vCard.
	res := alice.IQ("v", "<iq type='get' id='v' to='bob@b.test'><vCard xmlns='vcard-temp'/></iq>")
	if res.Type != "result" {
		t.Fatalf("remote vcard: %s", res.Raw)
	}
	// An unknown remote domain bounces quickly.
	alice.Send("<message to='nobody@unreachable.invalid' id='u1' type='chat'><body>x</body></message>")
	e := alice.Expect("bounce", func(s *wire.Stanza) bool { return s.ID == "u1" })
	if e.Type != "error" {
		t.Fatalf("no bounce: %s", e.Raw)
	}
}
