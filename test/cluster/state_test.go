package cluster

import (
	"testing"
	"time"

	"github.com/parley-xmpp/parley/internal/testserver"
	"github.com/parley-xmpp/parley/server"
	"github.com/parley-xmpp/parley/wire"
)

// resumeOn drops c's connection and resumes its session (id) on ts,
// acknowledging h stanzas.
func resumeOn(t *testing.T, c *testserver.Client, ts *testserver.Server, user, id string, h int) *testserver.Client {
	t.Helper()
	c.Drop()
	c2 := resumeAt(t, ts, user, id, h)
	c2.JID = c.JID
	return c2
}

// resumeAt logs in as user (password "pw") on ts and resumes session id,
// acknowledging h stanzas.
func resumeAt(t *testing.T, ts *testserver.Server, user, id string, h int) *testserver.Client {
	t.Helper()
	c := ts.Authenticate(user, "pw")
	c.Send("<resume xmlns='urn:xmpp:sm:3' previd='%s' h='%d'/>", id, h)
	if r := c.Next(); r.Name != "resumed" {
		t.Fatalf("resume on %s: %s", ts.Cluster().Node(), r.Raw)
	}
	c.StartReader()
	return c
}

// TestDirectedPresenceAcrossNodes: what im remembers of a session (the
// contacts that got directed presence from it) is known on every node
// and moves with the session: a probe from such a contact on another node
// is answered, also after the session resumed on a third node, and the
// contact learns that the session went offline when it ends there.
func TestDirectedPresenceAcrossNodes(t *testing.T) {
	nodes := testserver.StartCluster(t, 3)
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]
	n1.AddUser("alice", "pw")
	carol := n1.AddUser("carol", "pw")
	a, id := enableSM(t, n1, "alice", "pw", "phone")
	c := n2.Login("carol", "pw", "c")
	c.Send("<presence/>")
	c.Expect("carol's own presence", testserver.PresenceFrom(c.JID, ""))
	a.Send("<presence><status>here</status></presence>")
	a.Expect("own presence", testserver.PresenceFrom(a.JID, ""))
	// No subscription: directed presence only.
	a.Send("<presence to='%s'><status>just for carol</status></presence>", carol)
	c.Expect("directed presence", testserver.PresenceFrom(a.JID, ""))

	probe := func(what string) {
		t.Helper()
		c.Send("<presence type='probe' to='alice@localhost'/>")
		p := c.Expect(what, testserver.PresenceFrom(a.JID, ""))
		if p.Child(wire.NSClient, "status").Text() != "here" {
			t.Fatalf("%s: %s", what, p.Raw)
		}
	}
	// The probe is handled on carol's node (n2), the session is on n1.
	probe("answer to a probe from another node")

	// The session moves to n3; what it sent moves with it.
	a = resumeOn(t, a, n3, "alice", id, 1)
	probe("answer to a probe after the session moved")

	// It ends on n3: carol, who only had directed presence, learns it.
	a.Close()
	c.Expect("unavailable to the directed-presence recipient", testserver.PresenceFrom(a.JID, "unavailable"))
	c.ExpectNone("a second unavailable", 300*time.Millisecond, testserver.PresenceFrom(a.JID, "unavailable"))
}

// TestPushAfterResumeOnAnotherNode: the push registrations a session
// enabled move with it. After it resumed on another node, an overdue ack
// (push.ack_overdue) still wakes the device, and messages queued while it
// hibernates there go to its own registration only.
func TestPushAfterResumeOnAnotherNode(t *testing.T) {
	nodes := testserver.StartCluster(t, 2, func(c *server.Config) {
		c.Push.AckOverdue = 300 * time.Millisecond
		c.Push.Coalesce = 0
	})
	n1, n2 := nodes[0], nodes[1]
	alice := n1.AddUser("alice", "pw")
	n1.AddUser("bob", "pw")
	n1.AddUser("pushsvc", "pw")
	app := n1.Login("pushsvc", "pw", "app")
	b := n2.Login("bob", "pw", "desk")
	form := "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>" +
		"<field var='secret'><value>s3cret</value></field></x>"
	enable := func(c *testserver.Client, node string) {
		t.Helper()
		if r := c.IQ("e-"+node, "<iq type='set' id='e-%s'><enable xmlns='urn:xmpp:push:0' jid='%s' node='%s'>%s</enable></iq>",
			node, app.JID, node, form); r.Type != "result" {
			t.Fatalf("enable: %s", r.Raw)
		}
	}
	isPush := func(s *wire.Stanza) bool {
		return s.Name == "iq" && s.Type == "set" && s.Child("http://jabber.org/protocol/pubsub", "pubsub") != nil
	}
	pushNode := func(iq *wire.Stanza) string {
		return iq.Child("http://jabber.org/protocol/pubsub", "pubsub").Child("http://jabber.org/protocol/pubsub", "publish").AttrValue("node")
	}
	// Another device of alice's enabled push too, on n1.
	laptop, _ := enableSM(t, n1, "alice", "pw", "laptop")
	enable(laptop, "laptop")

	a, id := enableSM(t, n1, "alice", "pw", "phone")
	a.Send("<presence/>")
	enable(a, "phone")
	// The IQ result and the own presence were counted: acknowledge them.
	a = resumeOn(t, a, n2, "alice", id, 2)

	// The client leaves the server's <r/> unanswered.
	for i := range 5 {
		b.Send("<message to='%s/phone' type='chat'><body>m%d</body></message>", alice, i)
		a.Expect("message", isMsg("m"+string(rune('0'+i))))
	}
	a.Expect("ack request", isSM("r"))
	iq := app.ExpectWithin("push for the overdue ack after the move", 3*time.Second, isPush)
	if iq.From != alice || pushNode(iq) != "phone" {
		t.Fatalf("push: %s", iq.Raw)
	}
	app.Send("<iq type='result' id='%s' to='%s'/>", iq.ID, iq.From)
	for {
		// The rest of the burst may wake it too; only its own node.
		more, ok := app.Wait(500*time.Millisecond, isPush)
		if !ok {
			break
		}
		if pushNode(more) != "phone" {
			t.Fatalf("push to another device's registration: %s", more.Raw)
		}
		app.Send("<iq type='result' id='%s' to='%s'/>", more.ID, more.From)
	}

	// Hibernated on n2: a queued message wakes the phone, not the laptop.
	a.Drop()
	b.Send("<message to='%s/phone' type='chat'><body>queued</body></message>", alice)
	iq = app.ExpectWithin("push for a message queued on n2", 3*time.Second, isPush)
	if pushNode(iq) != "phone" {
		t.Fatalf("queued-message push to %q: %s", pushNode(iq), iq.Raw)
	}
	app.Send("<iq type='result' id='%s' to='%s'/>", iq.ID, iq.From)
	app.ExpectNone("a push to the laptop's registration", 500*time.Millisecond, func(s *wire.Stanza) bool {
		return isPush(s) && pushNode(s) == "laptop"
	})
}

// TestBlockPushToAnotherNode: a session that asked for the block list
// gets the block pushes (XEP-0191) caused by another resource of the
// account on another node.
func TestBlockPushToAnotherNode(t *testing.T) {
	nodes := testserver.StartCluster(t, 2)
	n1, n2 := nodes[0], nodes[1]
	n1.AddUser("alice", "pw")
	laptop := n1.Login("alice", "pw", "laptop")
	phone := n2.Login("alice", "pw", "phone")
	if r := laptop.IQ("bl", "<iq type='get' id='bl'><blocklist xmlns='urn:xmpp:blocking'/></iq>"); r.Type != "result" {
		t.Fatalf("blocklist: %s", r.Raw)
	}
	if r := phone.IQ("b1", "<iq type='set' id='b1'><block xmlns='urn:xmpp:blocking'><item jid='spam@example.net'/></block></iq>"); r.Type != "result" {
		t.Fatalf("block: %s", r.Raw)
	}
	push := laptop.Expect("block push on the other node", func(s *wire.Stanza) bool {
		return s.Name == "iq" && s.Type == "set" && s.Child("urn:xmpp:blocking", "block") != nil
	})
	if it := push.Child("urn:xmpp:blocking", "block").Child("urn:xmpp:blocking", "item"); it.AttrValue("jid") != "spam@example.net" {
		t.Fatalf("push: %s", push.Raw)
	}
}
