package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/internal/testserver"
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
	time.Sleep(200 * time.Millisecond)

	b := ts.Login("bob", "pw2", "desk")
	b.Send("<message to='%s' type='chat' id='m1'><body>top secret words</body></message>", alice)
	iq := app.Expect("push notification", isPushNotification)
	checkNotification(t, iq, alice, "node-1", b.JID, "top secret words")
	app.Send("<iq type='result' id='%s' to='%s'/>", iq.ID, iq.From)
	b.ExpectNone("an error", 300*time.Millisecond, func(s *wire.Stanza) bool { return s.Type == "error" })

	// Push did not take the message: it waits in offline storage.
	a2 := ts.Login("alice", "pw1", "phone")
	a2.Send("<presence/>")
	a2.Expect("offline message", isMsg("top secret words"))

	// Disabled: no more notifications.
	if r := a2.IQ("d1", "<iq type='set' id='d1'><disable xmlns='urn:xmpp:push:0' jid='%s'/></iq>", app.JID); r.Type != "result" {
		t.Fatalf("disable: %s", r.Raw)
	}
	a2.Close()
	time.Sleep(200 * time.Millisecond)
	b.Send("<message to='%s' type='chat'><body>again</body></message>", alice)
	app.ExpectNone("notification after disable", 500*time.Millisecond, isPushNotification)
	_ = bob
}

func TestPushNotificationForHibernatedSession(t *testing.T) {
	ts := testserver.Start(t)
	alice := ts.AddUser("alice", "pw1")
	ts.AddUser("bob", "pw2")
	ts.AddUser("pushsvc", "pw3")
	app := ts.Login("pushsvc", "pw3", "app")
	a, _ := enableSM(t, ts, "alice", "pw1", "phone")
	a.Send("<presence/>")
	r := a.IQ("e1", "<iq type='set' id='e1'><enable xmlns='urn:xmpp:push:0' jid='%s' node='node-1'>%s</enable></iq>", app.JID, pushForm)
	if r.Type != "result" {
		t.Fatalf("enable: %s", r.Raw)
	}
	// The phone loses its network: the session hibernates.
	a.Drop()
	time.Sleep(300 * time.Millisecond)

	b := ts.Login("bob", "pw2", "desk")
	b.Send("<message to='%s' type='chat'><body>wake up</body></message>", alice)
	iq := app.Expect("push notification", isPushNotification)
	checkNotification(t, iq, alice, "node-1", b.JID, "wake up")
	app.Send("<iq type='result' id='%s' to='%s'/>", iq.ID, iq.From)
}
