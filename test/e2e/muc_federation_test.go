package e2e

import (
	"testing"
	"time"

	"github.com/parley-xmpp/parley/internal/testserver"
	"github.com/parley-xmpp/parley/server"
	"github.com/parley-xmpp/parley/wire"
)

// TestMUCFederation: bob@b.test, on a second Parley, joins a room on
// conference.a.test over real server-to-server sockets: presence, history,
// messages both ways with the room's stanza-ids, private messages, the
// archive, leaving; he may not create rooms there.
func TestMUCFederation(t *testing.T) {
	t.Parallel()
	aS2S, bS2S := freePort(t, "127.0.0.2"), freePort(t, "127.0.0.3")
	mk := func(domain, ip, s2sAddr string, routes ...string) *testserver.Server {
		return testserver.Start(t, func(c *server.Config) {
			c.Hosts = []string{domain}
			c.Listen = server.ListenConfig{C2S: ip + ":0", S2S: s2sAddr}
			c.S2S.Routes = routes
		})
	}
	as := mk("a.test", "127.0.0.2", aS2S, "b.test="+bS2S, "conference.b.test="+bS2S)
	bs := mk("b.test", "127.0.0.3", bS2S, "a.test="+aS2S, "conference.a.test="+aS2S)
	as.AddUser("alice", "pw1")
	bs.AddUser("bob", "pw2")
	a, b := as.Login("alice", "pw1", "phone"), bs.Login("bob", "pw2", "laptop")
	a.Send("<presence/>")
	b.Send("<presence/>")
	room := "lounge@conference.a.test"

	// Creation is for local users.
	b.Send("<presence to='new@conference.a.test/Bob'><x xmlns='%s'/></presence>", nsMUC)
	e := b.ExpectWithin("creation refused", 15*time.Second, fromOccupant("new@conference.a.test", "Bob", "error"))
	wantCond(t, "remote user creating a room", e, "not-allowed")

	createRoom(t, a, room, "Alice", nil)
	a.Send("<message to='%s' type='groupchat'><body>before bob</body></message>", room)
	a.Expect("reflection", groupchat(room, "before bob"))

	b.Send("<presence to='%s/Bob'><x xmlns='%s'/></presence>", room, nsMUC)
	self := b.ExpectWithin("own presence over s2s", 15*time.Second, selfPresence(room, "Bob"))
	if mucItem(self).AttrValue("jid") != b.JID {
		t.Fatalf("remote occupant's own presence: %s", self.Raw)
	}
	b.Expect("alice", fromOccupant(room, "Alice", ""))
	b.Expect("history", groupchat(room, "before bob"))
	b.Expect("subject", subjectFrom(room))
	if p := a.Expect("bob joined", fromOccupant(room, "Bob", "")); mucItem(p).AttrValue("jid") != "bob@b.test/laptop" {
		t.Fatalf("remote occupant as the moderator sees him: %s", p.Raw)
	}

	b.Send("<message to='%s' type='groupchat' id='fb'><body>hello from b.test</body></message>", room)
	m := a.Expect("remote message", groupchat(room, "hello from b.test"))
	sid := roomStanzaID(t, m, room)
	if m.From != room+"/Bob" {
		t.Fatalf("from %s", m.From)
	}
	if got := roomStanzaID(t, b.Expect("reflection to b.test", groupchat(room, "hello from b.test")), room); got != sid {
		t.Fatalf("stanza-id differs across servers: %s vs %s", got, sid)
	}
	a.Send("<message to='%s' type='groupchat'><body>welcome, bob</body></message>", room)
	b.Expect("message to b.test", groupchat(room, "welcome, bob"))
	a.Send("<message to='%s/Bob' type='chat'><body>a private word</body></message>", room)
	pm := b.Expect("PM over s2s", isMsg("a private word"))
	if pm.From != room+"/Alice" || pm.Child(nsMUCUser, "x") == nil {
		t.Fatalf("PM: %s", pm.Raw)
	}
	if got := roomArchive(t, b, room); len(got) != 3 {
		t.Fatalf("remote occupant reading the archive: %d messages", len(got))
	}
	r := b.IQ("sp", "<iq type='get' id='sp' to='%s/Bob'><ping xmlns='urn:xmpp:ping'/></iq>", room)
	if r.Type != "result" {
		t.Fatalf("self-ping over s2s: %s", r.Raw)
	}
	b.Send("<presence to='%s/Bob' type='unavailable'/>", room)
	b.Expect("left", fromOccupant(room, "Bob", "unavailable"))
	a.Expect("bob left", func(s *wire.Stanza) bool { return fromOccupant(room, "Bob", "unavailable")(s) })
}
