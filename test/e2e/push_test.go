package e2e

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/internal/testserver"
	"github.com/parley-xmpp/parley/server"
	"github.com/parley-xmpp/parley/wire"
)

const (
	nsPush     = "urn:xmpp:push:0"
	nsPubSub   = "http://jabber.org/protocol/pubsub"
	nsXData    = "jabber:x:data"
	pushSecret = "eruio234vzxc2kla-91"
	pushForm   = "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>" +
		"<field var='secret'><value>" + pushSecret + "</value></field></x>"
)

// requirePush checks that the account advertises XEP-0357.
func requirePush(t *testing.T, c *testserver.Client, bare string) {
	t.Helper()
	r := c.IQ("disco", "<iq type='get' id='disco' to='%s'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>", bare)
	for _, f := range r.Child("http://jabber.org/protocol/disco#info", "query").ChildrenNamed("", "feature") {
		if f.AttrValue("var") == nsPush {
			return
		}
	}
	t.Fatalf("disco#info of %s lacks %s: %s", bare, nsPush, r.Raw)
}

func isPushNotification(s *wire.Stanza) bool {
	return s.Name == "iq" && s.Type == "set" && s.Child(nsPubSub, "pubsub") != nil
}

// checkNotification checks a publish from bare to node carrying the
// summary form (count 1, sender), the publish options and no body.
func checkNotification(t *testing.T, iq *wire.Stanza, bare, node, sender, body string) {
	t.Helper()
	if iq.From != bare {
		t.Fatalf("notification from %q, want the user's bare JID: %s", iq.From, iq.Raw)
	}
	ps := iq.Child(nsPubSub, "pubsub")
	pub := ps.Child(nsPubSub, "publish")
	x := pub.Child(nsPubSub, "item").Child(nsPush, "notification").Child(nsXData, "x")
	if pub.AttrValue("node") != node || x == nil {
		t.Fatalf("not a publish to %s with a notification form: %s", node, iq.Raw)
	}
	fields := map[string]string{}
	for _, f := range x.ChildrenNamed(nsXData, "field") {
		fields[f.AttrValue("var")] = f.ChildText(nsXData, "value")
	}
	if fields["FORM_TYPE"] != "urn:xmpp:push:summary" || fields["message-count"] != "1" || fields["last-message-sender"] != sender {
		t.Fatalf("summary fields %v: %s", fields, iq.Raw)
	}
	if _, ok := fields["last-message-body"]; ok || strings.Contains(string(iq.Raw), body) {
		t.Fatalf("the notification carries the body: %s", iq.Raw)
	}
	opts := ps.Child(nsPubSub, "publish-options").Child(nsXData, "x")
	if opts == nil || !strings.Contains(opts.String(), pushSecret) {
		t.Fatalf("publish-options missing: %s", iq.Raw)
	}
}

func TestPushNotificationWhenOffline(t *testing.T) {
	t.Parallel()
	ts := testserver.Start(t)
	alice := ts.AddUser("alice", "pw1")
	bob := ts.AddUser("bob", "pw2")
	ts.AddUser("pushsvc", "pw3")
	app := ts.Login("pushsvc", "pw3", "app")
	a := ts.Login("alice", "pw1", "phone")
	requirePush(t, a, alice)

	r := a.IQ("e1", "<iq type='set' id='e1'><enable xmlns='urn:xmpp:push:0' jid='%s' node='node-1'>%s</enable></iq>", app.JID, pushForm)
	if r.Type != "result" {
		t.Fatalf("enable: %s", r.Raw)
	}
	a.Close()
	ts.WaitOffline(alice)

	b := ts.Login("bob", "pw2", "desk")
	b.Send("<message to='%s' type='chat' id='m1'><body>top secret words</body></message>", alice)
	iq := expectPushWithin(t, app, time.Second)
	checkNotification(t, iq, alice, "node-1", b.JID, "top secret words")
	app.Send("<iq type='result' id='%s' to='%s'/>", iq.ID, iq.From)
	b.ExpectNone("an error", 300*time.Millisecond, func(s *wire.Stanza) bool { return s.Type == "error" })

	// Push did not take the message: it waits in offline storage.
	a2 := ts.Login("alice", "pw1", "phone")
	a2.Send("<presence/>")
	a2.Expect("offline message", isMsg("top secret words"))

	// Disabled: no more notifications.
	disablePush(t, a2, app.JID, "")
	a2.Close()
	ts.WaitOffline(alice)
	expectNoPush(t, app, b, alice, "again")
	_ = bob
}

// disablePush disables the registrations of service on node ("": all).
func disablePush(t *testing.T, c *testserver.Client, service, node string) {
	t.Helper()
	attr := ""
	if node != "" {
		attr = " node='" + node + "'"
	}
	if r := c.IQ("d1", "<iq type='set' id='d1'><disable xmlns='urn:xmpp:push:0' jid='%s'%s/></iq>", service, attr); r.Type != "result" {
		t.Fatalf("disable: %s", r.Raw)
	}
}

// expectNoPush has from send a message to to and checks that app gets no
// notification for longer than the coalescing window (2s), so that one
// counted into an open window would show too.
func expectNoPush(t *testing.T, app, from *testserver.Client, to, body string) {
	t.Helper()
	from.Send("<message to='%s' type='chat'><body>%s</body></message>", to, body)
	app.ExpectNone("notification after disable", 3*time.Second, isPushNotification)
}

// expectPushWithin takes the next notification and fails unless it came
// within d.
func expectPushWithin(t *testing.T, app *testserver.Client, d time.Duration) *wire.Stanza {
	t.Helper()
	start := time.Now()
	iq := app.Expect("push notification", isPushNotification)
	if took := time.Since(start); took > d {
		t.Fatalf("push notification after %v, want within %v", took, d)
	}
	return iq
}

func TestPushNotificationForHibernatedSession(t *testing.T) {
	t.Parallel()
	ts := testserver.Start(t)
	alice := ts.AddUser("alice", "pw1")
	ts.AddUser("bob", "pw2")
	ts.AddUser("pushsvc", "pw3")
	app := ts.Login("pushsvc", "pw3", "app")
	a, id := enableSM(t, ts, "alice", "pw1", "phone")
	a.Send("<presence/>")
	r := a.IQ("e1", "<iq type='set' id='e1'><enable xmlns='urn:xmpp:push:0' jid='%s' node='node-1'>%s</enable></iq>", app.JID, pushForm)
	if r.Type != "result" {
		t.Fatalf("enable: %s", r.Raw)
	}
	// The phone loses its network: the session hibernates.
	a.Drop()
	ts.WaitConnections(1) // the push service's

	b := ts.Login("bob", "pw2", "desk")
	b.Send("<message to='%s' type='chat'><body>wake up</body></message>", alice)
	iq := expectPushWithin(t, app, time.Second)
	checkNotification(t, iq, alice, "node-1", b.JID, "wake up")
	app.Send("<iq type='result' id='%s' to='%s'/>", iq.ID, iq.From)

	// The phone resumes and disables push: no notification any more,
	// whether the session hibernates again or ends.
	a2 := ts.Authenticate("alice", "pw1")
	a2.Send("<resume xmlns='urn:xmpp:sm:3' previd='%s' h='0'/>", id)
	if r := a2.Next(); r.Name != "resumed" {
		t.Fatalf("resume: %s", r.Raw)
	}
	a2.StartReader()
	a2.Expect("queued message", isMsg("wake up"))
	disablePush(t, a2, app.JID, "node-1")
	a2.Drop()
	ts.WaitConnections(2) // the push service's and bob's
	expectNoPush(t, app, b, alice, "while hibernated, disabled")
}

// smCounted wraps a scripted client with stream management enabled and
// counts the stanzas it received, for <a h=/>: those it took from its
// backlog and those still waiting there.
type smCounted struct {
	*testserver.Client
	t     *testing.T
	taken int
}

func (c *smCounted) take(what string, match func(*wire.Stanza) bool) *wire.Stanza {
	c.t.Helper()
	st := c.Expect(what, match)
	if st.IsStanza() {
		c.taken++
	}
	return st
}

// ack acknowledges every stanza received so far.
func (c *smCounted) ack() {
	waiting := map[*wire.Stanza]bool{}
	c.ExpectNone("nothing (counting the backlog)", 100*time.Millisecond, func(s *wire.Stanza) bool {
		if s.IsStanza() {
			waiting[s] = true
		}
		return false
	})
	c.Send("<a xmlns='urn:xmpp:sm:3' h='%d'/>", c.taken+len(waiting))
}

// TestPushWhenAckOverdue: with push.ack_overdue, a client that enabled
// push and leaves the server's <r/> unanswered (connection alive, device
// asleep) is notified about the messages it has not acknowledged, within
// a second of the ack becoming overdue; a client that answers is not, nor
// is a slow client that did not enable push.
func TestPushWhenAckOverdue(t *testing.T) {
	t.Parallel()
	const overdue = 300 * time.Millisecond
	ts := testserver.Start(t, func(c *server.Config) { c.Push.AckOverdue = overdue })
	alice := ts.AddUser("alice", "pw1")
	ts.AddUser("bob", "pw2")
	ts.AddUser("pushsvc", "pw4")
	app := ts.Login("pushsvc", "pw4", "app")
	b := ts.Login("bob", "pw2", "desk")
	login := func(res string, push bool) *smCounted {
		t.Helper()
		c, _ := enableSM(t, ts, "alice", "pw1", res)
		a := &smCounted{Client: c, t: t}
		a.Send("<presence/>")
		if push {
			a.Send("<iq type='set' id='e1'><enable xmlns='urn:xmpp:push:0' jid='%s' node='%s'>%s</enable></iq>", app.JID, res, pushForm)
			if r := a.take("enable result", func(s *wire.Stanza) bool { return s.Name == "iq" && s.ID == "e1" }); r.Type != "result" {
				t.Fatalf("enable: %s", r.Raw)
			}
		}
		return a
	}
	burst := func(a *smCounted, prefix string) {
		t.Helper()
		for i := range 5 {
			b.Send("<message to='%s' type='chat'><body>%s %d</body></message>", a.JID, prefix, i)
			a.take("message", isMsg(prefix+" "+strconv.Itoa(i)))
		}
	}

	t.Run("answers", func(t *testing.T) {
		a := login("awake", true)
		burst(a, "awake")
		a.Expect("ack request", isSM("r"))
		a.ack()
		app.ExpectNone("a push for a client that acknowledges", 3*overdue, isPushNotification)
		disablePush(t, a.Client, app.JID, "")
		a.Close()
	})

	t.Run("ignores", func(t *testing.T) {
		desk := login("desk", false)
		a := login("phone", true)
		burst(desk, "desk")
		desk.Expect("ack request", isSM("r"))
		app.ExpectNone("a push for a slow client that did not enable push", 3*overdue, isPushNotification)

		burst(a, "asleep")
		a.Expect("ack request", isSM("r"))
		asked := time.Now()
		iq := app.Expect("push for unacknowledged messages", isPushNotification)
		if d := time.Since(asked); d > overdue+time.Second {
			t.Fatalf("push %v after <r/>, want within %v", d, overdue+time.Second)
		}
		checkNotification(t, iq, alice, "phone", b.JID, "asleep")
		app.Send("<iq type='result' id='%s' to='%s'/>", iq.ID, iq.From)
		// The rest of the burst is coalesced into one more notification.
		iq = app.Expect("coalesced push", isPushNotification)
		app.Send("<iq type='result' id='%s' to='%s'/>", iq.ID, iq.From)
		if n := summaryField(iq, "message-count"); n != "4" {
			t.Errorf("coalesced notification counts %q messages, want 4: %s", n, iq.Raw)
		}
		app.ExpectNone("another push", 2500*time.Millisecond, isPushNotification)

		// Still overdue: a new message wakes the device again.
		b.Send("<message to='%s' type='chat'><body>asleep again</body></message>", a.JID)
		a.take("message", isMsg("asleep again"))
		iq = app.Expect("push for a message sent while overdue", isPushNotification)
		app.Send("<iq type='result' id='%s' to='%s'/>", iq.ID, iq.From)
		checkNotification(t, iq, alice, "phone", b.JID, "asleep again")

		// The client answers: live messages wake nobody any more.
		a.ack()
		time.Sleep(2500 * time.Millisecond) // the coalescing window closes
		b.Send("<message to='%s' type='chat'><body>awake now</body></message>", a.JID)
		a.take("message", isMsg("awake now"))
		app.ExpectNone("a push after the client answered", 3*overdue, isPushNotification)
	})
}

func summaryField(iq *wire.Stanza, name string) string {
	x := iq.Child(nsPubSub, "pubsub").Child(nsPubSub, "publish").Child(nsPubSub, "item").Child(nsPush, "notification").Child(nsXData, "x")
	for _, f := range x.ChildrenNamed(nsXData, "field") {
		if f.AttrValue("var") == name {
			return f.ChildText(nsXData, "value")
		}
	}
	return ""
}
