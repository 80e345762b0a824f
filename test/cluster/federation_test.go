package cluster

import (
	"testing"

	"github.com/parley-xmpp/parley/internal/testserver"
	"github.com/parley-xmpp/parley/server"
	"github.com/parley-xmpp/parley/wire"
)

// TestFederationAcrossNodes: a two-node cluster for a.test federates with
// a single server for b.test (self-signed certificates, so the servers
// verify each other with dialback). b.test knows only n2 as a.test's
// server: a stream n1 opens to b.test is verified by asking n2 about a
// key n1 made (the nodes share the dialback secret), and what b.test
// sends to a user on n1 arrives at n2 and is routed on to n1. Users on
// both nodes chat with the remote user both ways, full and bare JID, and
// exchange presence after subscribing.
func TestFederationAcrossNodes(t *testing.T) {
	spec := testserver.NewClusterSpec(t)
	n1S2S, n2S2S, bS2S := freeAddr(t, "127.0.0.2"), freeAddr(t, "127.0.0.3"), freeAddr(t, "127.0.0.4")
	node := func(name, ip, s2s string) *testserver.Server {
		return testserver.Start(t, spec.Node(name, ip), func(c *server.Config) {
			c.Hosts = []string{"a.test"}
			c.Listen.S2S = s2s
			c.S2S.Routes = []string{"b.test=" + bS2S}
		})
	}
	n1, n2 := node("n1", "127.0.0.2", n1S2S), node("n2", "127.0.0.3", n2S2S)
	b := testserver.Start(t, func(c *server.Config) {
		c.Hosts = []string{"b.test"}
		c.Listen = server.ListenConfig{C2S: "127.0.0.4:0", S2S: bS2S}
		c.S2S.Routes = []string{"a.test=" + n2S2S}
	})
	alice := n1.AddUser("alice", "pw")
	carol := n1.AddUser("carol", "pw")
	bob := b.AddUser("bob", "pw")
	a := n1.Login("alice", "pw", "phone")
	c := n2.Login("carol", "pw", "desk")
	bc := b.Login("bob", "pw", "laptop")
	for _, cl := range []*testserver.Client{a, c, bc} {
		cl.Send("<presence/>")
		cl.Expect("own presence", testserver.PresenceFrom(cl.JID, ""))
	}

	// n1 → b.test: n1's own stream, verified through n2.
	a.Send("<message to='%s' type='chat' id='f1'><body>from n1</body></message>", bob)
	if m := bc.Expect("message from alice on n1", isMsg("from n1")); m.From != a.JID {
		t.Fatalf("from = %s", m.From)
	}
	// b.test → a user on n1, through n2 (b.test's only route).
	bc.Send("<message to='%s' type='chat'><body>to n1 full</body></message>", a.JID)
	a.Expect("message to alice's full JID", isMsg("to n1 full"))
	bc.Send("<message to='%s' type='chat'><body>to n1 bare</body></message>", alice)
	a.Expect("message to alice's bare JID", isMsg("to n1 bare"))
	// n2 → b.test and back.
	c.Send("<message to='%s' type='chat'><body>from n2</body></message>", bob)
	if m := bc.Expect("message from carol on n2", isMsg("from n2")); m.From != c.JID {
		t.Fatalf("from = %s", m.From)
	}
	bc.Send("<message to='%s' type='chat'><body>to n2</body></message>", carol)
	c.Expect("message to carol", isMsg("to n2"))

	// Subscription and presence between alice (n1) and bob.
	testserver.Subscribe(t, a, bc, alice, bob)
	a.Expect("bob's presence", testserver.PresenceFrom(bc.JID, ""))
	bc.Expect("alice's presence", testserver.PresenceFrom(a.JID, ""))
	// An IQ from bob to alice's full JID on n1 and its result back.
	bc.Send("<iq type='get' id='v1' to='%s'><query xmlns='jabber:iq:version'/></iq>", a.JID)
	q := a.Expect("iq from bob", func(s *wire.Stanza) bool { return s.Name == "iq" && s.ID == "v1" })
	a.Send("<iq type='result' id='v1' to='%s'><query xmlns='jabber:iq:version'><name>x</name></query></iq>", q.From)
	if r := bc.Expect("iq result", func(s *wire.Stanza) bool { return s.Name == "iq" && s.ID == "v1" }); r.Type != "result" {
		t.Fatalf("result %s", r.Raw)
	}
}
