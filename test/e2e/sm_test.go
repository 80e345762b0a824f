package e2e

import (
	"strconv"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/internal/testserver"
	"github.com/parley-xmpp/parley/server"
	"github.com/parley-xmpp/parley/wire"
)

const nsSM = "urn:xmpp:sm:3"

func isSM(name string) func(*wire.Stanza) bool {
	return func(s *wire.Stanza) bool { return s.NS == nsSM && s.Name == name }
}

// enableSM binds and enables resumable stream management synchronously.
func enableSM(t *testing.T, ts *testserver.Server, user, pw, res string) (*testserver.Client, string) {
	t.Helper()
	c := ts.Authenticate(user, pw)
	c.Bind(res)
	c.Send("<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
	e := c.Next()
	if e.Name != "enabled" || e.Attr("resume") != "true" || len(e.Attr("id")) < 16 || e.Attr("max") == "" {
		t.Fatalf("enable: %s", e.Raw)
	}
	c.StartReader()
	return c, e.Attr("id")
}

func TestStreamManagementResume(t *testing.T) {
	t.Parallel()
	ts := testserver.Start(t)
	ts.AddUser("alice", "pw1")
	bob := ts.AddUser("bob", "pw2")
	a, id := enableSM(t, ts, "alice", "pw1", "phone")
	b := ts.Login("bob", "pw2", "desk")
	a.Send("<presence/>")

	for i := 1; i <= 3; i++ {
		b.Send("<message to='%s' type='chat'><body>m%d</body></message>", a.JID, i)
		a.Expect("m"+strconv.Itoa(i), isMsg("m"+strconv.Itoa(i)))
	}
	// The server asks for acks after a few stanzas; answer for 1 only.
	a.Send("<a xmlns='urn:xmpp:sm:3' h='1'/>")
	a.Send("<r xmlns='urn:xmpp:sm:3'/>")
	ack := a.Expect("ack", isSM("a"))
	if ack.Attr("h") != "1" { // one stanza (presence) handled from the client
		t.Fatalf("server h = %s, want 1", ack.Attr("h"))
	}
	a.Drop()
	ts.WaitConnections(1) // only bob's is left
	// Hibernated: messages are queued, not bounced, and no unavailable presence.
	b.Send("<message to='%s' type='chat' id='q1'><body>m4</body></message>", a.JID)
	b.Send("<message to='%s' type='chat'><body>m5</body></message>", bob)
	b.ExpectNone("bounce", 300*time.Millisecond, func(s *wire.Stanza) bool { return s.Type == "error" })

	a2 := ts.Authenticate("alice", "pw1")
	a2.Send("<resume xmlns='urn:xmpp:sm:3' previd='%s' h='1'/>", id)
	r := a2.Next()
	if r.Name != "resumed" || r.Attr("previd") != id || r.Attr("h") != "1" {
		t.Fatalf("resume: %s", r.Raw)
	}
	a2.StartReader()
	for _, body := range []string{"m2", "m3"} {
		m := a2.Expect("replayed "+body, isMsg(body))
		if m.Child("urn:xmpp:delay", "delay") == nil {
			t.Fatalf("replayed stanza without delay: %s", m.Raw)
		}
	}
	a2.Expect("queued m4", isMsg("m4"))
	// The session is the same: acks continue and new traffic flows.
	b.Send("<message to='%s' type='chat'><body>m6</body></message>", a.JID)
	a2.Expect("m6", isMsg("m6"))
	a2.Send("<r xmlns='urn:xmpp:sm:3'/>")
	if h := a2.Expect("ack", isSM("a")).Attr("h"); h != "1" {
		t.Fatalf("h after resume = %s", h)
	}
}

func TestStreamManagementTimeoutStoresOffline(t *testing.T) {
	t.Parallel()
	ts := testserver.Start(t, func(c *server.Config) { c.C2S.ResumeTimeout = time.Second })
	ts.AddUser("alice", "pw1")
	ts.AddUser("bob", "pw2")
	a, id := enableSM(t, ts, "alice", "pw1", "phone")
	b := ts.Login("bob", "pw2", "desk")
	a.Send("<presence/>")
	b.Send("<message to='%s' type='chat'><body>unacked</body></message>", a.JID)
	a.Expect("unacked", isMsg("unacked"))
	a.Drop()
	ts.WaitConnections(1) // hibernated…
	// Authenticated before the session ends: the server keeps the h of an
	// ended session for twice the resume timeout (2 s here), which a
	// login on a loaded machine could use up.
	a2 := ts.Authenticate("alice", "pw1")
	ts.WaitOffline(a.JID) // …and ended when the resume timeout ran out
	// Too late: failed with h so the client knows what the server handled.
	a2.Send("<resume xmlns='urn:xmpp:sm:3' previd='%s' h='0'/>", id)
	f := a2.Next()
	if f.Name != "failed" || f.Child(wire.NSStanzas, "item-not-found") == nil || f.Attr("h") != "1" {
		t.Fatalf("late resume: %s", f.Raw)
	}
	// The unacknowledged message went to offline storage.
	a2.Bind("new")
	a2.StartReader()
	a2.Send("<presence/>")
	m := a2.Expect("offline copy of unacked", isMsg("unacked"))
	if m.Child("urn:xmpp:delay", "delay") == nil {
		t.Fatalf("no delay: %s", m.Raw)
	}
}

func TestStreamManagementAbuse(t *testing.T) {
	t.Parallel()
	ts := testserver.Start(t)
	ts.AddUser("alice", "pw1")
	ts.AddUser("mallory", "pw3")
	a, id := enableSM(t, ts, "alice", "pw1", "phone")
	t.Run("other-account-cannot-resume", func(t *testing.T) {
		m := ts.Authenticate("mallory", "pw3")
		m.Send("<resume xmlns='urn:xmpp:sm:3' previd='%s' h='0'/>", id)
		if f := m.Next(); f.Name != "failed" || f.Child(wire.NSStanzas, "item-not-found") == nil {
			t.Fatalf("got %s", f.Raw)
		}
	})
	t.Run("enable-before-bind", func(t *testing.T) {
		m := ts.Authenticate("mallory", "pw3")
		m.Send("<enable xmlns='urn:xmpp:sm:3'/>")
		if f := m.Next(); f.Name != "failed" || f.Child(wire.NSStanzas, "unexpected-request") == nil {
			t.Fatalf("got %s", f.Raw)
		}
	})
	t.Run("h-too-high", func(t *testing.T) {
		a.Send("<a xmlns='urn:xmpp:sm:3' h='10'/>")
		se := a.StreamError()
		if se == nil || se.Condition != "undefined-condition" {
			t.Fatalf("got %v", se)
		}
	})
}

func TestClientStateIndication(t *testing.T) {
	t.Parallel()
	ts := testserver.Start(t)
	alice := ts.AddUser("alice", "pw1")
	bob := ts.AddUser("bob", "pw2")
	a := ts.Login("alice", "pw1", "phone")
	b := ts.Login("bob", "pw2", "desk")
	a.Send("<presence/>")
	b.Send("<presence/>")
	subscribe(t, a, b, alice, bob)
	a.Send("<inactive xmlns='urn:xmpp:csi:0'/>")
	a.Sync()
	b.Send("<presence><show>away</show></presence>")
	b.Send("<presence><show>dnd</show></presence>")
	b.Send("<message to='%s' type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>", alice)
	a.ExpectNone("presence while inactive", 300*time.Millisecond, func(s *wire.Stanza) bool {
		return s.From == b.JID && (s.Child(wire.NSClient, "show") != nil || s.Name == "message")
	})
	// A real message flushes what was held (only the latest presence).
	b.Send("<message to='%s' type='chat'><body>wake up</body></message>", alice)
	p := a.Expect("held presence", func(s *wire.Stanza) bool {
		return s.Name == "presence" && s.From == b.JID && s.Child(wire.NSClient, "show") != nil
	})
	if p.Child(wire.NSClient, "show").Text() != "dnd" {
		t.Fatalf("held presence not coalesced: %s", p.Raw)
	}
	a.Expect("message", isMsg("wake up"))
	a.ExpectNone("older presence", 200*time.Millisecond, func(s *wire.Stanza) bool {
		return s.Name == "presence" && s.From == b.JID && s.Child(wire.NSClient, "show").Text() == "away"
	})
}

// TestResourceConflictEndsReplacedSession: a new bind of the same full JID
// replaces the old session (RFC 6120 §7.7.2.2), and the old one ends for
// good like any other: OnUnbound runs (contacts see it go unavailable
// before the new one comes online, push forgets its registrations), what
// it did not acknowledge is stored offline instead of lost, and its
// resumption id is dead.
func TestResourceConflictEndsReplacedSession(t *testing.T) {
	t.Parallel()
	// Bob and alice/phone (stream management on) see each other online.
	setup := func(t *testing.T) (ts *testserver.Server, alice string, a, b *testserver.Client, id string) {
		t.Helper()
		ts = testserver.Start(t)
		alice = ts.AddUser("alice", "pw1")
		bob := ts.AddUser("bob", "pw2")
		ts.AddUser("pushsvc", "pw3")
		b = ts.Login("bob", "pw2", "desk")
		b.Send("<presence/>")
		a, id = enableSM(t, ts, "alice", "pw1", "phone")
		a.Send("<presence/>")
		subscribe(t, a, b, alice, bob)
		b.Expect("alice online", testserver.PresenceFrom(alice+"/phone", ""))
		return ts, alice, a, b, id
	}
	t.Run("hibernated", func(t *testing.T) {
		ts, alice, a, b, id := setup(t)
		app := ts.Login("pushsvc", "pw3", "app")
		if r := a.IQ("e1", "<iq type='set' id='e1'><enable xmlns='urn:xmpp:push:0' jid='%s' node='old-phone'>%s</enable></iq>", app.JID, pushForm); r.Type != "result" {
			t.Fatalf("enable: %s", r.Raw)
		}
		b.Send("<message to='%s/phone' type='chat'><body>never acked</body></message>", alice)
		a.Expect("message", isMsg("never acked"))
		a.Drop()              // hibernates with the message unacknowledged
		ts.WaitConnections(2) // bob's and the push service's

		a2 := ts.Login("alice", "pw1", "phone")
		// OnUnbound ran for the replaced session: im told the contacts.
		b.Expect("unavailable from the replaced session", testserver.PresenceFrom(alice+"/phone", "unavailable"))
		// The unacknowledged message went to offline storage, which
		// wakes the device once (it did not while the message was
		// delivered live, unacknowledged).
		iq := app.Expect("push for the message stored offline", isPushNotification)
		checkNotification(t, iq, alice, "old-phone", b.JID, "never acked")
		app.Send("<iq type='result' id='%s' to='%s'/>", iq.ID, iq.From)
		a2.Send("<presence/>")
		a2.Expect("rescued message", isMsg("never acked"))
		b.Expect("the new session online", testserver.PresenceFrom(alice+"/phone", ""))
		// The replaced session cannot be resumed.
		a3 := ts.Authenticate("alice", "pw1")
		a3.Send("<resume xmlns='urn:xmpp:sm:3' previd='%s' h='0'/>", id)
		if f := a3.Next(); f.Name != "failed" || f.Child(wire.NSStanzas, "item-not-found") == nil {
			t.Fatalf("resuming the replaced session: %s", f.Raw)
		}
		// Nothing is queued for the old session any more: a message to
		// the full JID reaches the new one.
		b.Send("<message to='%s/phone' type='chat'><body>to the new one</body></message>", alice)
		a2.Expect("message to the new session", isMsg("to the new one"))
		app.ExpectNone("a push for a message the new session got", 2500*time.Millisecond, isPushNotification)
	})
	t.Run("connected", func(t *testing.T) {
		ts, alice, a, b, _ := setup(t)
		if r := a.IQ("c1", "<iq type='set' id='c1'><enable xmlns='urn:xmpp:carbons:2'/></iq>"); r.Type != "result" {
			t.Fatalf("enable carbons: %s", r.Raw)
		}
		b.Send("<message to='%s/phone' type='chat'><body>unacked live</body></message>", alice)
		a.Expect("message", isMsg("unacked live"))

		a2 := ts.Login("alice", "pw1", "phone")
		if se := a.StreamError(); se == nil || se.Condition != "conflict" {
			t.Fatalf("old session got %v, want conflict", se)
		}
		b.Expect("unavailable from the replaced session", testserver.PresenceFrom(alice+"/phone", "unavailable"))
		a2.Send("<presence/>")
		a2.Expect("rescued message", isMsg("unacked live"))
		// Carbons were enabled on the old session only: a message bob
		// sends to another resource is not copied to the new session.
		a4 := ts.Login("alice", "pw1", "desk")
		a4.Send("<presence/>")
		b.Send("<message to='%s/desk' type='chat'><body>for the desk</body></message>", alice)
		a4.Expect("desk message", isMsg("for the desk"))
		a2.ExpectNone("a carbon copy", 300*time.Millisecond, func(s *wire.Stanza) bool {
			return s.Name == "message" && s.Child("urn:xmpp:carbons:2", "received") != nil
		})
	})
}
