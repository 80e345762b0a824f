// Package e2e holds end-to-end tests: real Parley servers on loopback and
// scripted clients over real sockets.
package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/internal/testserver"
	"github.com/parley-xmpp/parley/wire"
)

func isMsg(body string) func(*wire.Stanza) bool { return testserver.MessageWithBody(body) }

// subscribe makes a and b mutually subscribed (testserver.Subscribe).
func subscribe(t *testing.T, a, b *testserver.Client, aBare, bBare string) {
	t.Helper()
	testserver.Subscribe(t, a, b, aBare, bBare)
}

func TestChatBothWaysFullAndBare(t *testing.T) {
	t.Parallel()
	ts := testserver.Start(t)
	alice := ts.AddUser("alice", "alice-pw")
	bob := ts.AddUser("bob", "bob-pw")
	a := ts.Login("alice", "alice-pw", "phone")
	b := ts.Login("bob", "bob-pw", "laptop")
	if a.JID != alice+"/phone" || b.JID != bob+"/laptop" {
		t.Fatalf("bound JIDs %s %s", a.JID, b.JID)
	}
	a.Send("<presence/>")
	b.Send("<presence/>")

	// Full JID.
	a.Send("<message to='%s' type='chat' id='m1'><body>hello bob</body></message>", b.JID)
	m := b.Expect("message from alice", isMsg("hello bob"))
	if m.From != a.JID || m.To != b.JID || m.Type != "chat" || m.ID != "m1" {
		t.Fatalf("delivered %s", m.Raw)
	}
	// Bare JID, the other way.
	b.Send("<message to='%s' type='chat'><body>hi alice &amp; co</body></message>", alice)
	m = a.Expect("message from bob", isMsg("hi alice & co"))
	if m.From != b.JID {
		t.Fatalf("from = %s", m.From)
	}
	// A forged 'from' is rewritten to the sender's full JID.
	a.Send("<message to='%s' from='bob@localhost/evil'><body>forged</body></message>", bob)
	m = b.Expect("forged message", isMsg("forged"))
	if m.From != a.JID {
		t.Fatalf("forged from not rewritten: %s", m.From)
	}
	// Unknown user: service-unavailable.
	res := a.IQ("u1", "<iq type='get' id='u1' to='nobody@localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
	_ = res
	a.Send("<message to='nobody@localhost' id='nb' type='chat'><body>anyone?</body></message>")
	e := a.Expect("error for unknown user", func(s *wire.Stanza) bool { return s.Name == "message" && s.ID == "nb" })
	assertStanzaError(t, e, "service-unavailable")
}

func TestSubscriptionAndPresence(t *testing.T) {
	t.Parallel()
	ts := testserver.Start(t)
	alice := ts.AddUser("alice", "pw1")
	bob := ts.AddUser("bob", "pw2")
	a := ts.Login("alice", "pw1", "a1")
	b := ts.Login("bob", "pw2", "b1")
	a.IQ("r0", "<iq type='get' id='r0'><query xmlns='jabber:iq:roster'/></iq>")
	b.IQ("r0", "<iq type='get' id='r0'><query xmlns='jabber:iq:roster'/></iq>")
	a.Send("<presence/>")
	b.Send("<presence/>")
	subscribe(t, a, b, alice, bob)

	roster := a.IQ("r1", "<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>")
	item := roster.Child("jabber:iq:roster", "query").Child("jabber:iq:roster", "item")
	if item == nil || item.AttrValue("jid") != bob || item.AttrValue("subscription") != "both" {
		t.Fatalf("alice's roster: %s", roster.Raw)
	}
	// After mutual subscription, presence changes are broadcast.
	b.Send("<presence><show>away</show><status>lunch</status></presence>")
	p := a.Expect("bob's away presence", func(s *wire.Stanza) bool {
		return s.Name == "presence" && s.From == b.JID && s.Child(wire.NSClient, "show").Text() == "away"
	})
	if p.Child(wire.NSClient, "status").Text() != "lunch" {
		t.Fatalf("presence %s", p.Raw)
	}
	// A new resource of alice gets bob's presence (probe) on login.
	a2 := ts.Login("alice", "pw1", "a2")
	a2.Send("<presence/>")
	a2.Expect("bob's presence via probe", func(s *wire.Stanza) bool { return s.Name == "presence" && s.From == b.JID && s.Type == "" })
	// Disconnect: unavailable is broadcast.
	b.Close()
	a.Expect("bob unavailable", func(s *wire.Stanza) bool { return s.Name == "presence" && s.From == b.JID && s.Type == "unavailable" })
}

func TestOfflineDelivery(t *testing.T) {
	t.Parallel()
	ts := testserver.Start(t)
	ts.AddUser("alice", "pw1")
	bob := ts.AddUser("bob", "pw2")
	a := ts.Login("alice", "pw1", "")
	a.Send("<message to='%s' type='chat' id='o1'><body>while you were out</body></message>", bob)
	a.Send("<message to='%s' type='chat' id='o2'><body>second</body></message>", bob)
	// The server stores both before bob arrives.
	ts.WaitOfflineMessages(bob, 2)
	b := ts.Login("bob", "pw2", "")
	b.ExpectNone("offline before presence", 200*time.Millisecond, isMsg("while you were out"))
	b.Send("<presence/>")
	m1 := b.Expect("first offline message", isMsg("while you were out"))
	m2 := b.Expect("second offline message", isMsg("second"))
	for _, m := range []*wire.Stanza{m1, m2} {
		d := m.Child("urn:xmpp:delay", "delay")
		if d == nil || d.AttrValue("stamp") == "" {
			t.Fatalf("offline message without delay: %s", m.Raw)
		}
	}
	if m1.From != a.JID {
		t.Fatalf("from = %s", m1.From)
	}
	// Delivered once: a new session gets nothing.
	b2 := ts.Login("bob", "pw2", "other")
	b2.Send("<presence/>")
	b2.ExpectNone("offline message again", 300*time.Millisecond, isMsg("second"))
}

func TestAuthorization(t *testing.T) {
	t.Parallel()
	ts := testserver.Start(t)
	alice := ts.AddUser("alice", "pw1")
	ts.AddUser("mallory", "pw3")
	a := ts.Login("alice", "pw1", "")
	m := ts.Login("mallory", "pw3", "")
	a.IQ("s1", "<iq type='set' id='s1'><query xmlns='jabber:iq:roster'><item jid='friend@localhost' name='Friend'/></query></iq>")
	a.IQ("v1", "<iq type='set' id='v1'><vCard xmlns='vcard-temp'><FN>Alice</FN></vCard></iq>")

	res := m.IQ("x1", "<iq type='get' id='x1' to='%s'><query xmlns='jabber:iq:roster'/></iq>", alice)
	assertStanzaError(t, res, "forbidden")
	res = m.IQ("x2", "<iq type='set' id='x2' to='%s'><query xmlns='jabber:iq:roster'><item jid='mallory@localhost'/></query></iq>", alice)
	assertStanzaError(t, res, "forbidden")
	res = m.IQ("x3", "<iq type='set' id='x3' to='%s'><vCard xmlns='vcard-temp'><FN>Pwned</FN></vCard></iq>", alice)
	assertStanzaError(t, res, "forbidden")
	// vCards are public to read, and unchanged.
	res = m.IQ("x4", "<iq type='get' id='x4' to='%s'><vCard xmlns='vcard-temp'/></iq>", alice)
	if res.Type != "result" || res.Child("vcard-temp", "vCard").ChildText("vcard-temp", "FN") != "Alice" {
		t.Fatalf("vcard read: %s", res.Raw)
	}
	roster := a.IQ("s2", "<iq type='get' id='s2'><query xmlns='jabber:iq:roster'/></iq>")
	if strings.Contains(string(roster.Raw), "mallory") {
		t.Fatalf("mallory changed alice's roster: %s", roster.Raw)
	}
}

func TestResourceConflictReplacesOldSession(t *testing.T) {
	t.Parallel()
	ts := testserver.Start(t)
	ts.AddUser("alice", "pw1")
	old := ts.Login("alice", "pw1", "same")
	newer := ts.Login("alice", "pw1", "same")
	if se := old.StreamError(); se == nil || se.Condition != "conflict" {
		t.Fatalf("old session got %v, want conflict", se)
	}
	res := newer.IQ("p", "<iq type='get' id='p' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
	if res.Type != "result" {
		t.Fatal(string(res.Raw))
	}
}

func TestServerQueries(t *testing.T) {
	t.Parallel()
	ts := testserver.Start(t)
	ts.AddUser("alice", "pw1")
	a := ts.Login("alice", "pw1", "")
	info := a.IQ("d1", "<iq type='get' id='d1' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
	q := info.Child("http://jabber.org/protocol/disco#info", "query")
	features := map[string]bool{}
	for _, f := range q.ChildrenNamed("http://jabber.org/protocol/disco#info", "feature") {
		features[f.AttrValue("var")] = true
	}
	for _, want := range []string{"http://jabber.org/protocol/disco#info", "urn:xmpp:ping", "jabber:iq:version", "urn:xmpp:time", "vcard-temp", "urn:xmpp:blocking", "msgoffline"} {
		if !features[want] {
			t.Errorf("disco#info lacks %s: %s", want, info.Raw)
		}
	}
	if id := q.Child("http://jabber.org/protocol/disco#info", "identity"); id == nil || id.AttrValue("category") != "server" {
		t.Errorf("no server identity: %s", info.Raw)
	}
	v := a.IQ("v1", "<iq type='get' id='v1' to='localhost'><query xmlns='jabber:iq:version'/></iq>")
	if v.Child("jabber:iq:version", "query").ChildText("jabber:iq:version", "name") != "Parley" {
		t.Errorf("version: %s", v.Raw)
	}
	tm := a.IQ("t1", "<iq type='get' id='t1' to='localhost'><time xmlns='urn:xmpp:time'/></iq>")
	if utc := tm.Child("urn:xmpp:time", "time").ChildText("urn:xmpp:time", "utc"); !strings.HasSuffix(utc, "Z") {
		t.Errorf("time: %s", tm.Raw)
	}
	p := a.IQ("p1", "<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
	if p.Type != "result" || p.From != "localhost" {
		t.Errorf("ping: %s", p.Raw)
	}
}
