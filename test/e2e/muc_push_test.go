package e2e

import (
	"testing"
	"time"

	"github.com/parley-xmpp/parley/internal/testserver"
	"github.com/parley-xmpp/parley/server"
	"github.com/parley-xmpp/parley/wire"
)

// enablePushTo registers app as c's push service on node.
func enablePushTo(t *testing.T, c *testserver.Client, app, node string) {
	t.Helper()
	r := c.IQ("enable-"+node, "<iq type='set' id='enable-%s'><enable xmlns='urn:xmpp:push:0' jid='%s' node='%s'>%s</enable></iq>", node, app, node, pushForm)
	if r.Type != "result" {
		t.Fatalf("enable push: %s", r.Raw)
	}
}

// pushFor matches a notification published for owner.
func pushFor(owner string) func(*wire.Stanza) bool {
	return func(s *wire.Stanza) bool { return isPushNotification(s) && s.From == owner }
}

// TestMUCAwayMemberNotifications: a member who left the room (offline,
// or online without joining) gets a push for a mention of their nick,
// not for other messages, unless they chose every message in the room's
// registration form; a member whose phone hibernated while joined gets
// one for a mention too. Notifications carry no text.
func TestMUCAwayMemberNotifications(t *testing.T) {
	t.Parallel()
	// No coalescing: every notification is sent at once.
	ts, a, b, _ := mucTrio(t, func(c *server.Config) { c.Push.Coalesce = 0 })
	bob, carol := "bob@"+testserver.Domain, "carol@"+testserver.Domain
	ts.AddUser("pushsvc", "push-pw")
	app := ts.Login("pushsvc", "push-pw", "app")
	room := roomJID("team")
	createRoom(t, a, room, "Alice", map[string]string{"muc#roomconfig_membersonly": "1"})
	setAffiliation(t, a, room, bob, "member")
	setAffiliation(t, a, room, carol, "member")

	// Bob joins once as "Bobster" (the nick mentions will use), enables
	// push, and leaves: he is away from the room.
	join(t, b, room, "Bobster", "")
	enablePushTo(t, b, app.JID, "bob-node")
	b.Send("<presence to='%s/Bobster' type='unavailable'/>", room)
	b.Expect("left", fromOccupant(room, "Bobster", "unavailable"))

	a.Send("<message to='%s' type='groupchat'><body>nothing for anyone</body></message>", room)
	a.Expect("reflection", groupchat(room, "nothing for anyone"))
	app.ExpectNone("notification without mention", time.Second, pushFor(bob))
	a.Send("<message to='%s' type='groupchat'><body>hey bobster, the build is red</body></message>", room)
	iq := app.Expect("notification for the mention", pushFor(bob))
	checkNotification(t, iq, bob, "bob-node", room+"/Alice", "the build is red")
	app.Send("<iq type='result' id='%s' to='%s'/>", iq.ID, iq.From)
	// An XEP-0372 reference counts too.
	a.Send("<message to='%s' type='groupchat'><body>look</body><reference xmlns='urn:xmpp:reference:0' type='mention' uri='xmpp:%s' begin='0' end='4'/></message>", room, bob)
	iq = app.Expect("notification for the reference", pushFor(bob))
	app.Send("<iq type='result' id='%s' to='%s'/>", iq.ID, iq.From)

	// Every message, by bob's own choice (registration form).
	r := b.IQ("reg", "<iq type='set' id='reg' to='%s'><query xmlns='jabber:iq:register'><x xmlns='jabber:x:data' type='submit'>"+
		"<field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#register</value></field>"+
		"<field var='muc#register_roomnick'><value>Bobster</value></field>"+
		"<field var='{http://tigase.org/protocol/muc}offline'><value>1</value></field></x></query></iq>", room)
	if r.Type != "result" {
		t.Fatalf("registration: %s", r.Raw)
	}
	a.Send("<message to='%s' type='groupchat'><body>small talk</body></message>", room)
	iq = app.Expect("notification for every message", pushFor(bob))
	app.Send("<iq type='result' id='%s' to='%s'/>", iq.ID, iq.From)

	// Carol joins from a phone with stream management and push, then
	// loses the network: her session hibernates, still in the room.
	cph, _ := enableSM(t, ts, "carol", "carol-pw", "phone")
	cph.Send("<presence/>")
	enablePushTo(t, cph, app.JID, "carol-node")
	join(t, cph, room, "Carol", "")
	cph.Drop()
	// Mention her until the server noticed the drop (bounded).
	var got *wire.Stanza
	for i := 0; i < 20 && got == nil; i++ {
		a.Send("<message to='%s' type='groupchat'><body>Carol: are you there? (%d)</body></message>", room, i)
		if st, ok := waitFor(app, 500*time.Millisecond, pushFor(carol)); ok {
			got = st
		}
	}
	if got == nil {
		t.Fatal("no notification for a mention of an occupant whose session hibernated")
	}
	checkNotification(t, got, carol, "carol-node", room+"/Alice", "are you there")
}

// waitFor takes a matching stanza if one arrives within d.
func waitFor(c *testserver.Client, d time.Duration, match func(*wire.Stanza) bool) (*wire.Stanza, bool) {
	var got *wire.Stanza
	c.ExpectNone("", d, func(s *wire.Stanza) bool {
		if got == nil && match(s) {
			got = s
		}
		return false
	})
	return got, got != nil
}
