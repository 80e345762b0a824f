package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/parley-xmpp/parley/internal/testserver"
	"github.com/parley-xmpp/parley/storage"
	"github.com/parley-xmpp/parley/wire"
)

// prefixedMsg declares prefixes on the message's own start tag: the
// payload uses one, and a prefixed attribute has the local name of a
// plain one.
const prefixedMsg = "<message to='%s' type='chat' id='%s' xmlns:x='urn:example:a' xmlns:y='urn:example:b' y:type='custom'>" +
	"<body>%s</body><x:payload x:level='3'><x:item>data</x:item></x:payload></message>"

func checkPrefixed(t *testing.T, m *wire.Element, body string) {
	t.Helper()
	if m.ChildText(wire.NSClient, "body") != body {
		t.Fatalf("body %q, want %q", m.ChildText(wire.NSClient, "body"), body)
	}
	p := m.Child("urn:example:a", "payload")
	if p == nil || p.Child("urn:example:a", "item").Text() != "data" {
		t.Fatalf("payload lost: %s", m.Bytes())
	}
	var level, custom string
	for _, a := range p.Attr {
		if a.Name.Space == "urn:example:a" && a.Name.Local == "level" {
			level = a.Value
		}
	}
	for _, a := range m.Attr {
		if a.Name.Space == "urn:example:b" && a.Name.Local == "type" {
			custom = a.Value
		}
	}
	if level != "3" || custom != "custom" || m.AttrValue("type") != "chat" {
		t.Fatalf("attributes changed (level %q, y:type %q, type %q): %s", level, custom, m.AttrValue("type"), m.Bytes())
	}
}

// TestPrefixedPayloadIntact is finding 2 of issue 16: namespace prefixes
// declared on a message's start tag were dropped when the server stamped
// 'from' (and y:type became a second plain type), so the recipient's
// stream broke and the archived and offline copies were unreadable. Such
// a message now reaches an online recipient, offline storage and both
// archives intact, and the recipient's stream goes on.
func TestPrefixedPayloadIntact(t *testing.T) {
	t.Parallel()
	ts := testserver.Start(t)
	alice := ts.AddUser("alice", "pw1")
	bob := ts.AddUser("bob", "pw2")
	a := ts.Login("alice", "pw1", "phone")
	b := ts.Login("bob", "pw2", "desk")
	a.Send("<presence/>")
	b.Send("<presence/>")
	b.Expect("own presence", func(s *wire.Stanza) bool { return s.Name == "presence" && s.From == b.JID })

	a.Send(prefixedMsg, bob, "p1", "live")
	m := b.Expect("prefixed message", isMsg("live"))
	if m.From != a.JID {
		t.Fatalf("from = %q", m.From)
	}
	checkPrefixed(t, m.Tree(), "live")
	if r := b.IQ("ping1", "<iq type='get' id='ping1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>"); r.Type != "result" {
		t.Fatalf("recipient's stream after the message: %s", r.Raw)
	}

	b.Close()
	// Offline for the server too, so that the message is stored.
	bj, _ := jid.Parse(bob)
	for deadline := time.Now().Add(testserver.Timeout); len(ts.Router().Resources(bj)) > 0; {
		if time.Now().After(deadline) {
			t.Fatal("bob's session did not end")
		}
		time.Sleep(10 * time.Millisecond)
	}
	a.Send(prefixedMsg, bob, "p2", "offline")
	a.IQ("ping2", "<iq type='get' id='ping2' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
	b = ts.Login("bob", "pw2", "desk")
	b.Send("<presence/>")
	checkPrefixed(t, b.Expect("offline prefixed message", isMsg("offline")).Tree(), "offline")

	for _, c := range []struct {
		cl   *testserver.Client
		name string
	}{{a, alice}, {b, bob}} {
		id := "mam-" + c.name[:3]
		c.cl.Send("<iq type='set' id='%s'><query xmlns='urn:xmpp:mam:2' queryid='%s'/></iq>", id, id)
		var got []string
		for {
			s := c.cl.Expect("mam "+id, func(s *wire.Stanza) bool {
				return s.ID == id || (s.Child(nsMAM, "result") != nil && s.Child(nsMAM, "result").AttrValue("queryid") == id)
			})
			if s.ID == id {
				break
			}
			msg := s.Child(nsMAM, "result").Child(nsForward, "forwarded").Child(wire.NSClient, "message")
			body := msg.ChildText(wire.NSClient, "body")
			checkPrefixed(t, msg, body)
			got = append(got, body)
		}
		if strings.Join(got, ",") != "live,offline" {
			t.Fatalf("%s's archive: %q", c.name, got)
		}
	}
}

// TestUnreadableRowsReported: a stored row that does not parse (as the
// old start-tag rewrite produced) is reported, not skipped: offline
// delivery hands it over as text in a stand-in, and a MAM page keeps its
// place with a stand-in result under the row's id.
func TestUnreadableRowsReported(t *testing.T) {
	t.Parallel()
	ts := testserver.Start(t)
	ts.AddUser("alice", "pw1")
	bob := ts.AddUser("bob", "pw2")
	broken := []byte("<message to='bob@localhost' type='chat' from='alice@localhost/phone'><body>lost?</body><x:payload/></message>")
	ctx := context.Background()
	now := time.Now()
	if _, err := ts.Store().StoreOffline(ctx, bob, broken, now, 0); err != nil {
		t.Fatal(err)
	}
	id, err := ts.Store().AppendArchive(ctx, bob, storage.ArchivedMessage{With: "alice@localhost", WithResource: "phone",
		Timestamp: now, FromFull: "alice@localhost/phone", Raw: broken})
	if err != nil {
		t.Fatal(err)
	}
	b := ts.Login("bob", "pw2", "desk")
	b.Send("<presence/>")
	m := b.Expect("stand-in for the unreadable offline message", func(s *wire.Stanza) bool {
		return s.Name == "message" && strings.Contains(s.Child(wire.NSClient, "body").Text(), "<body>lost?</body><x:payload/>")
	})
	if m.Child("urn:xmpp:delay", "delay") == nil {
		t.Fatalf("stand-in without its stored time: %s", m.Raw)
	}
	b.Send("<iq type='set' id='q'><query xmlns='urn:xmpp:mam:2' queryid='q'/></iq>")
	r := b.Expect("stand-in result", func(s *wire.Stanza) bool { return s.Child(nsMAM, "result") != nil })
	res := r.Child(nsMAM, "result")
	msg := res.Child(nsForward, "forwarded").Child(wire.NSClient, "message")
	if res.AttrValue("id") != id || msg.AttrValue("from") != "alice@localhost/phone" ||
		!strings.Contains(msg.ChildText(wire.NSClient, "body"), "lost?") {
		t.Fatalf("MAM result for the unreadable row: %s", r.Raw)
	}
	if fin := b.Expect("fin", func(s *wire.Stanza) bool { return s.ID == "q" }); fin.Type != "result" {
		t.Fatalf("query: %s", fin.Raw)
	}
}

// TestPrefixedPayloadFederated: the same message over s2s between two
// Parleys reaches the remote recipient intact (the stamped start tag is
// written into a jabber:server stream).
func TestPrefixedPayloadFederated(t *testing.T) {
	t.Parallel()
	_, _, alice, bob := federatedContacts(t)
	alice.Send(prefixedMsg, fedBob, "fp1", "over s2s")
	m := bob.ExpectWithin("federated prefixed message", 2*testserver.Timeout, isMsg("over s2s"))
	checkPrefixed(t, m.Tree(), "over s2s")
	bob.Send(prefixedMsg, fedAlice, "fp2", "and back")
	checkPrefixed(t, alice.ExpectWithin("prefixed reply", 2*testserver.Timeout, isMsg("and back")).Tree(), "and back")
}
