// Package cluster holds end-to-end tests of several Parley nodes on one
// NATS and one PostgreSQL: in-process nodes on 127.0.0.2–127.0.0.4 for
// routing, and child processes of the parley binary where a node must die
// (SIGKILL).
package cluster

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/parley-xmpp/parley/internal/testserver"
	"github.com/parley-xmpp/parley/wire"
)

func isMsg(body string) func(*wire.Stanza) bool { return testserver.MessageWithBody(body) }

// subscribe makes a and b mutually subscribed (testserver.Subscribe).
func subscribe(t *testing.T, a, b *testserver.Client, aBare, bBare string) {
	t.Helper()
	testserver.Subscribe(t, a, b, aBare, bBare)
}

func stanzaError(st *wire.Stanza) string {
	e := st.Child(wire.NSClient, "error")
	if e == nil {
		return ""
	}
	for _, c := range e.Elements() {
		if c.Name.Space == wire.NSStanzas {
			return c.Name.Local
		}
	}
	return ""
}

func TestLoginOnDifferentNodesAndChat(t *testing.T) {
	nodes := testserver.StartCluster(t, 3)
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]
	alice := n1.AddUser("alice", "pw")
	bob := n1.AddUser("bob", "pw")
	a := n1.Login("alice", "pw", "phone")
	b := n2.Login("bob", "pw", "laptop")
	a.IQ("r0", "<iq type='get' id='r0'><query xmlns='jabber:iq:roster'/></iq>")
	b.IQ("r0", "<iq type='get' id='r0'><query xmlns='jabber:iq:roster'/></iq>")
	a.Send("<presence/>")
	b.Send("<presence/>")
	subscribe(t, a, b, alice, bob)
	// Presence across nodes after the subscription (RFC 6121 §3.1.5).
	a.Expect("bob's presence", testserver.PresenceFrom(b.JID, ""))
	b.Expect("alice's presence", testserver.PresenceFrom(a.JID, ""))

	// Full JID, n1 → n2.
	a.Send("<message to='%s' type='chat' id='m1'><body>hello bob</body></message>", b.JID)
	m := b.Expect("message from alice", isMsg("hello bob"))
	if m.From != a.JID || m.To != b.JID || m.ID != "m1" {
		t.Fatalf("delivered %s", m.Raw)
	}
	// Bare JID, n2 → n1.
	b.Send("<message to='%s' type='chat'><body>hi alice</body></message>", alice)
	m = a.Expect("message from bob", isMsg("hi alice"))
	if m.From != b.JID {
		t.Fatalf("from = %s", m.From)
	}
	// IQ to a full JID on another node and its result back.
	b.Send("<iq type='get' id='v1' to='%s'><query xmlns='jabber:iq:version'/></iq>", a.JID)
	q := a.Expect("iq from bob", func(s *wire.Stanza) bool { return s.Name == "iq" && s.ID == "v1" })
	a.Send("<iq type='result' id='v1' to='%s'><query xmlns='jabber:iq:version'><name>test</name></query></iq>", q.From)
	r := b.Expect("iq result", func(s *wire.Stanza) bool { return s.Name == "iq" && s.ID == "v1" })
	if r.Type != "result" || r.From != a.JID {
		t.Fatalf("result %s", r.Raw)
	}

	// A third resource of bob on n3 with negative priority gets no
	// message to the bare JID; one with priority gets it as well.
	b3 := n3.Login("bob", "pw", "tablet")
	b3.Send("<presence><priority>-1</priority></presence>")
	b.Expect("own presence of the tablet", testserver.PresenceFrom(b3.JID, ""))
	a.Expect("bob's tablet presence", testserver.PresenceFrom(b3.JID, ""))
	a.Send("<message to='%s' type='chat'><body>to bare 1</body></message>", bob)
	b.Expect("bare message on laptop", isMsg("to bare 1"))
	b3.ExpectNone("bare message on tablet (priority -1)", 300*time.Millisecond, isMsg("to bare 1"))
	b3.Send("<presence><priority>5</priority></presence>")
	a.Expect("bob's tablet presence, priority 5", func(s *wire.Stanza) bool {
		return s.Name == "presence" && s.From == b3.JID && strings.Contains(string(s.Raw), ">5<")
	})
	a.Send("<message to='%s' type='chat'><body>to bare 2</body></message>", bob)
	b.Expect("bare message on laptop", isMsg("to bare 2"))
	b3.Expect("bare message on tablet", isMsg("to bare 2"))

	// Going offline on n3 reaches alice on n1.
	b3.Send("<presence type='unavailable'/>")
	a.Expect("tablet unavailable", testserver.PresenceFrom(b3.JID, "unavailable"))
}

func TestResourceConflictAcrossNodes(t *testing.T) {
	nodes := testserver.StartCluster(t, 2)
	n1, n2 := nodes[0], nodes[1]
	n1.AddUser("carol", "pw")
	c1 := n1.Login("carol", "pw", "desk")
	c1.Send("<presence/>")
	c1.Expect("own presence", testserver.PresenceFrom(c1.JID, ""))
	c2 := n2.Login("carol", "pw", "desk")
	if c2.JID != c1.JID {
		t.Fatalf("bound %s, want %s", c2.JID, c1.JID)
	}
	if se := c1.StreamError(); se == nil || se.Condition != wire.CondConflict {
		t.Fatalf("old session: stream error %v, want conflict", se)
	}
	// The new session is the one the cluster routes to.
	n1.AddUser("dave", "pw")
	d := n1.Login("dave", "pw", "x")
	d.Send("<message to='%s' type='chat'><body>which one?</body></message>", c2.JID)
	c2.Expect("message to the new session", isMsg("which one?"))
}

func TestCarbonsToResourcesOnTwoOtherNodes(t *testing.T) {
	nodes := testserver.StartCluster(t, 3)
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]
	n1.AddUser("erin", "pw")
	frank := n1.AddUser("frank", "pw")
	e1 := n1.Login("erin", "pw", "one")
	e2 := n2.Login("erin", "pw", "two")
	e3 := n3.Login("erin", "pw", "three")
	for i, c := range []*testserver.Client{e1, e2, e3} {
		c.IQ(fmt.Sprint("c", i), "<iq type='set' id='c%d'><enable xmlns='urn:xmpp:carbons:2'/></iq>", i)
		c.Send("<presence/>")
	}
	f := n2.Login("frank", "pw", "f")
	f.Send("<presence/>")
	// Sent copies: e1 on n1 writes, e2 (n2) and e3 (n3) get copies.
	e1.Send("<message to='%s' type='chat'><body>sent carbon</body></message>", frank)
	f.Expect("message", isMsg("sent carbon"))
	for _, c := range []*testserver.Client{e2, e3} {
		c.Expect("sent copy", func(s *wire.Stanza) bool {
			return s.Child("urn:xmpp:carbons:2", "sent") != nil && strings.Contains(string(s.Raw), "sent carbon")
		})
	}
	// Received copies: frank writes to e3's full JID; e1 and e2 get copies.
	f.Send("<message to='%s' type='chat'><body>received carbon</body></message>", e3.JID)
	e3.Expect("message", isMsg("received carbon"))
	for _, c := range []*testserver.Client{e1, e2} {
		c.Expect("received copy", func(s *wire.Stanza) bool {
			return s.Child("urn:xmpp:carbons:2", "received") != nil && strings.Contains(string(s.Raw), "received carbon")
		})
	}
}

// TestMaxSessionsAcrossNodes: the per-account session limit (20) counts
// the sessions on every node.
func TestMaxSessionsAcrossNodes(t *testing.T) {
	nodes := testserver.StartCluster(t, 2)
	nodes[0].AddUser("gina", "pw")
	for i := range 20 {
		nodes[i%2].Login("gina", "pw", fmt.Sprint("r", i))
	}
	c := nodes[1].Authenticate("gina", "pw")
	c.Send("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>one-too-many</resource></bind></iq>")
	r := c.Next()
	if r.Type != "error" || stanzaError(r) != "resource-constraint" {
		t.Fatalf("21st session across two nodes: %s", r.Raw)
	}
}

// TestMaxSessionsConcurrentBinds: binds racing on two nodes for the last
// free sessions of an account never overshoot the limit (20), not even
// briefly: each takes a slot with compare-and-set before it is bound.
func TestMaxSessionsConcurrentBinds(t *testing.T) {
	nodes := testserver.StartCluster(t, 2)
	bare := nodes[0].AddUser("hank", "pw")
	var kept []*testserver.Client
	for i := range 16 {
		kept = append(kept, nodes[i%2].Login("hank", "pw", fmt.Sprint("r", i)))
	}
	count := func() int { return len(nodes[0].Router().Resources(jid.MustParse(bare))) }
	race := func(round int) {
		t.Helper()
		var cs []*testserver.Client
		for i := range 8 {
			c := nodes[i%2].Authenticate("hank", "pw")
			c.StartReader()
			cs = append(cs, c)
		}
		results := make(chan *wire.Stanza, len(cs))
		start := make(chan struct{})
		for i, c := range cs {
			go func() {
				<-start
				_ = c.TrySend("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>race%d-%d</resource></bind></iq>", round, i)
				r, _ := c.Wait(10*time.Second, func(s *wire.Stanza) bool { return s.Name == "iq" && s.ID == "b" })
				results <- r
			}()
		}
		close(start)
		ok, refused := 0, 0
		for range cs {
			r := <-results
			switch {
			case r == nil:
				t.Fatal("a bind got no answer")
			case r.Type == "result":
				ok++
			case stanzaError(r) == "resource-constraint":
				refused++
			default:
				t.Fatalf("bind: %s", r.Raw)
			}
		}
		if ok != 4 || refused != 4 {
			t.Fatalf("round %d: %d binds succeeded and %d were refused, want 4 and 4", round, ok, refused)
		}
		// Node 0 learns of node 1's binds through the registry's watch, a
		// moment after they are answered: wait for the count to reach 20,
		// and fail at once should it ever pass it.
		deadline := time.Now().Add(5 * time.Second)
		for n := count(); n != 20; n = count() {
			if n > 20 || time.Now().After(deadline) {
				t.Fatalf("round %d: %d sessions bound, want 20", round, n)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	race(1)
	// Four sessions end (two per node); the next race fills them again.
	for _, c := range kept[:4] {
		c.Close()
	}
	deadline := time.Now().Add(5 * time.Second)
	for count() != 16 {
		if time.Now().After(deadline) {
			t.Fatalf("%d sessions after four ended, want 16", count())
		}
		time.Sleep(20 * time.Millisecond)
	}
	race(2)
}
