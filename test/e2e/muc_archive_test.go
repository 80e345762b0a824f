package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/internal/testserver"
	"github.com/parley-xmpp/parley/server"
	"github.com/parley-xmpp/parley/wire"
)

const (
	nsRetract  = "urn:xmpp:message-retract:1"
	nsModerate = "urn:xmpp:message-moderate:1"
)

// roomStanzaID returns the room's stanza-id of a groupchat message.
func roomStanzaID(t *testing.T, m *wire.Stanza, room string) string {
	t.Helper()
	for _, sid := range m.Tree().ChildrenNamed(nsSID, "stanza-id") {
		if sid.AttrValue("by") == room {
			return sid.AttrValue("id")
		}
	}
	t.Fatalf("no stanza-id by %s: %s", room, m.Raw)
	return ""
}

// TestMUCArchive: XEP-0313 on the room JID. Live stanza-ids are the
// archive ids; members of a non-anonymous room see the senders' real
// JIDs in results, strangers of a semi-anonymous one do not; chat states
// are not archived; the preference is the room's archiving switch.
func TestMUCArchive(t *testing.T) {
	t.Parallel()
	_, a, b, c := mucTrio(t)
	room := roomJID("archived")
	createRoom(t, a, room, "Alice", nil)
	join(t, b, room, "Bob", "")
	var ids []string
	for _, body := range []string{"one", "two"} {
		b.Send("<message to='%s' type='groupchat'><body>%s</body></message>", room, body)
		ids = append(ids, roomStanzaID(t, a.Expect("live", groupchat(room, body)), room))
	}
	b.Send("<message to='%s' type='groupchat'><active xmlns='http://jabber.org/protocol/chatstates'/></message>", room)
	a.Expect("chat state", func(s *wire.Stanza) bool {
		return s.Name == "message" && s.Child("http://jabber.org/protocol/chatstates", "active") != nil
	})
	// Carol has never been in the room (an open one): she may read it,
	// without real JIDs.
	got := roomArchive(t, c, room)
	if len(got) != 2 {
		t.Fatalf("archive: %d messages, want 2 (no chat state)", len(got))
	}
	for i, m := range got {
		if m.AttrValue("from") != room+"/Bob" || m.ChildText(wire.NSClient, "body") != []string{"one", "two"}[i] ||
			m.Child(nsMUCUser, "x") != nil {
			t.Fatalf("archived message %d as carol reads it: %s", i, m.String())
		}
	}
	// Alice, a moderator, sees the JID.
	got = roomArchive(t, a, room)
	if it := got[0].Child(nsMUCUser, "x").Child(nsMUCUser, "item"); it.AttrValue("jid") != "bob@"+testserver.Domain {
		t.Fatalf("moderator's archive view lacks the real JID: %s", got[0].String())
	}
	// The result ids are the live stanza-ids.
	r := a.IQ("q2", "<iq type='set' id='q2' to='%s'><query xmlns='urn:xmpp:mam:2' queryid='q2'><x xmlns='jabber:x:data' type='submit'>"+
		"<field var='FORM_TYPE'><value>urn:xmpp:mam:2</value></field><field var='after-id'><value>%s</value></field></x></query></iq>", room, ids[0])
	if r.Type != "result" || !strings.Contains(string(r.Raw), ids[1]) {
		t.Fatalf("after-id query: %s", r.Raw)
	}
	// Preferences: the owner stops archiving; a member may not.
	r = b.IQ("p1", "<iq type='set' id='p1' to='%s'><prefs xmlns='urn:xmpp:mam:2' default='never'/></iq>", room)
	wantCond(t, "participant changing the archiving", r, "forbidden")
	r = a.IQ("p2", "<iq type='set' id='p2' to='%s'><prefs xmlns='urn:xmpp:mam:2' default='never'/></iq>", room)
	if r.Type != "result" || r.Child("urn:xmpp:mam:2", "prefs").AttrValue("default") != "never" {
		t.Fatalf("prefs: %s", r.Raw)
	}
	b.Expect("171 notice", func(s *wire.Stanza) bool { return s.Name == "message" && s.From == room && hasStatus(s, "171") })
	b.Send("<message to='%s' type='groupchat'><body>off the record</body></message>", room)
	m := a.Expect("unarchived message", groupchat(room, "off the record"))
	if m.Child(nsSID, "stanza-id") != nil {
		t.Fatalf("a message the room does not archive has a stanza-id: %s", m.Raw)
	}
	if got := roomArchive(t, a, room); len(got) != 2 {
		t.Fatalf("archive after archiving stopped: %d messages", len(got))
	}
}

// TestMUCModeration: XEP-0425 (both versions) and XEP-0424 in a room: a
// moderator retracts anyone's message, an occupant only their own; every
// occupant is told; the archive keeps a tombstone without the text.
func TestMUCModeration(t *testing.T) {
	t.Parallel()
	_, a, b, c := mucTrio(t)
	room := roomJID("moderated")
	createRoom(t, a, room, "Alice", nil)
	join(t, b, room, "Bob", "")
	join(t, c, room, "Carol", "")
	send := func(cl *testserver.Client, body string) string {
		t.Helper()
		cl.Send("<message to='%s' type='groupchat'><body>%s</body></message>", room, body)
		return roomStanzaID(t, c.Expect(body, groupchat(room, body)), room)
	}
	spam := send(b, "buy potions")
	r := c.IQ("m0", "<iq type='set' id='m0' to='%s'><moderate xmlns='%s' id='%s'><retract xmlns='%s'/></moderate></iq>", room, nsModerate, spam, nsRetract)
	wantCond(t, "participant moderating", r, "forbidden")
	r = a.IQ("m1", "<iq type='set' id='m1' to='%s'><moderate xmlns='%s' id='%s'><retract xmlns='%s'/><reason>spam</reason></moderate></iq>", room, nsModerate, spam, nsRetract)
	if r.Type != "result" {
		t.Fatalf("moderation: %s", r.Raw)
	}
	for _, cl := range []*testserver.Client{a, b, c} {
		n := cl.Expect("retraction", func(s *wire.Stanza) bool { return s.Name == "message" && s.Child(nsRetract, "retract") != nil })
		rt := n.Child(nsRetract, "retract")
		mod := rt.Child(nsModerate, "moderated")
		if n.From != room || rt.AttrValue("id") != spam || mod.AttrValue("by") != room+"/Alice" || mod.Child(nsOccupantID, "occupant-id") == nil ||
			rt.ChildText(nsRetract, "reason") != "spam" || n.Child("urn:xmpp:fasten:0", "apply-to").AttrValue("id") != spam {
			t.Fatalf("retraction notice: %s", n.Raw)
		}
	}
	r = a.IQ("m2", "<iq type='set' id='m2' to='%s'><moderate xmlns='%s' id='%s'><retract xmlns='%s'/></moderate></iq>", room, nsModerate, spam, nsRetract)
	wantCond(t, "moderating twice", r, "item-not-found")

	// The 0.2 protocol (Conversations, Gajim).
	spam2 := send(b, "more potions")
	r = a.IQ("m3", "<iq type='set' id='m3' to='%s'><apply-to xmlns='urn:xmpp:fasten:0' id='%s'><moderate xmlns='urn:xmpp:message-moderate:0'>"+
		"<retract xmlns='urn:xmpp:message-retract:0'/><reason>again</reason></moderate></apply-to></iq>", room, spam2)
	if r.Type != "result" {
		t.Fatalf("legacy moderation: %s", r.Raw)
	}
	n := c.Expect("legacy notice", func(s *wire.Stanza) bool {
		at := s.Child("urn:xmpp:fasten:0", "apply-to")
		return s.Name == "message" && at != nil && at.AttrValue("id") == spam2
	})
	if n.Child("urn:xmpp:fasten:0", "apply-to").Child("urn:xmpp:message-moderate:0", "moderated").Child("urn:xmpp:message-retract:0", "retract") == nil {
		t.Fatalf("legacy notice: %s", n.Raw)
	}

	// XEP-0424: own messages only.
	oops := send(c, "typo")
	b.Send("<message to='%s' type='groupchat' id='r1'><retract xmlns='%s' id='%s'/><body>retracted</body></message>", room, nsRetract, oops)
	wantCond(t, "retracting another's message", b.Expect("error", func(s *wire.Stanza) bool { return s.ID == "r1" }), "forbidden")
	c.Send("<message to='%s' type='groupchat' id='r2'><retract xmlns='%s' id='%s'/><body>/me retracted a message</body></message>", room, nsRetract, oops)
	b.Expect("self retraction", func(s *wire.Stanza) bool {
		return s.Name == "message" && s.ID == "r2" && s.Child(nsRetract, "retract").AttrValue("id") == oops
	})

	// The archive: tombstones instead of the texts.
	got := roomArchive(t, a, room)
	var raw []byte
	for _, m := range got {
		raw = append(raw, m.Bytes()...)
	}
	for _, text := range []string{"buy potions", "more potions", "typo"} {
		if bytes.Contains(raw, []byte(text)) {
			t.Fatalf("the archive still holds %q: %s", text, raw)
		}
	}
	tombs := 0
	for _, m := range got {
		if rd := m.Child(nsRetract, "retracted"); rd != nil {
			tombs++
			if m.Child(nsOccupantID, "occupant-id") == nil {
				t.Fatalf("tombstone without the author's occupant id: %s", m.String())
			}
		}
	}
	if tombs != 3 {
		t.Fatalf("%d tombstones, want 3:\n%s", tombs, raw)
	}
}

// TestMUCOMEMOGroup follows what Conversations does for an encrypted
// group chat: a private (members-only, non-anonymous, persistent, hidden)
// room; members fetch the member list and every member's device list from
// PEP; an encrypted groupchat message reaches occupants and the archive
// byte for byte.
func TestMUCOMEMOGroup(t *testing.T) {
	t.Parallel()
	_, a, b, c := mucTrio(t)
	room := roomJID("omemo")
	createRoom(t, a, room, "Alice", map[string]string{"muc#roomconfig_membersonly": "1", "muc#roomconfig_whois": "anyone",
		"muc#roomconfig_persistentroom": "1", "muc#roomconfig_publicroom": "0"})
	for _, u := range []string{"bob", "carol"} {
		if r := setAffiliation(t, a, room, u+"@"+testserver.Domain, "member"); r.Type != "result" {
			t.Fatalf("member %s: %s", u, r.Raw)
		}
	}
	// Device lists, as Conversations publishes them (open access).
	for i, cl := range []*testserver.Client{a, b, c} {
		id := "dl" + string(rune('0'+i))
		r := cl.IQ(id, "<iq type='set' id='%s'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='eu.siacs.conversations.axolotl.devicelist'>"+
			"<item id='current'><list xmlns='eu.siacs.conversations.axolotl'><device id='%d'/></list></item></publish>"+
			"<publish-options><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>"+
			"<field var='pubsub#access_model'><value>open</value></field></x></publish-options></pubsub></iq>", id, 1000+i)
		if r.Type != "result" {
			t.Fatalf("device list: %s", r.Raw)
		}
	}
	self := join(t, b, room, "Bob", "")
	if !hasStatus(self, "100") {
		t.Fatalf("a non-anonymous room without status 100: %s", self.Raw)
	}
	if p := b.Expect("alice", fromOccupant(room, "Alice", "")); mucItem(p).AttrValue("jid") != a.JID {
		t.Fatalf("bob does not see alice's JID: %s", p.Raw)
	}
	// Bob (a member) lists members, admins and owners, and fetches each
	// one's device list.
	var everyone []string
	for _, aff := range []string{"member", "admin", "owner"} {
		r := b.IQ("l"+aff, "<iq type='get' id='l%s' to='%s'><query xmlns='%s'><item affiliation='%s'/></query></iq>", aff, room, nsMUCAdmin, aff)
		if r.Type != "result" {
			t.Fatalf("member listing %ss: %s", aff, r.Raw)
		}
		for _, it := range r.Child(nsMUCAdmin, "query").ChildrenNamed(nsMUCAdmin, "item") {
			everyone = append(everyone, it.AttrValue("jid"))
		}
	}
	if len(everyone) != 3 {
		t.Fatalf("affiliated users as bob sees them: %v", everyone)
	}
	for _, j := range everyone {
		r := b.IQ("d-"+j, "<iq type='get' id='d-%s' to='%s'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='eu.siacs.conversations.axolotl.devicelist'/></pubsub></iq>", j, j)
		if r.Type != "result" || !strings.Contains(string(r.Raw), "<device id=") {
			t.Fatalf("device list of %s: %s", j, r.Raw)
		}
	}
	enc := "<encrypted xmlns='eu.siacs.conversations.axolotl'><header sid='1000'><key rid='1001'>MwohBYT+Tdo0OTM1NyLD8hA==</key>" +
		"<key prekey='true' rid='1002'>Mwoh\nBQ+/+sg==</key><iv>mRd3VTm9IPd5WJxf</iv></header><payload>SGVsbG8gd29ybGQ=</payload></encrypted>"
	a.Send("<message to='%s' type='groupchat' id='e1'>%s<body>I sent you an OMEMO encrypted message but your client doesn’t seem to support that.</body>"+
		"<store xmlns='urn:xmpp:hints'/><encryption xmlns='urn:xmpp:eme:0' namespace='eu.siacs.conversations.axolotl' name='OMEMO'/></message>", room, enc)
	m := b.Expect("encrypted message", func(s *wire.Stanza) bool { return s.Name == "message" && s.ID == "e1" })
	if !bytes.Contains(m.Raw, []byte(enc)) {
		t.Fatalf("the encrypted element changed on the way:\n got %s\nwant %s", m.Raw, enc)
	}
	got := roomArchive(t, b, room)
	if len(got) != 1 || !strings.Contains(got[0].String(), "SGVsbG8gd29ybGQ=") {
		t.Fatalf("archive: %v", got)
	}
	// The archived bytes (as stored, before the result wrapping) hold the
	// element unchanged.
	b.Send("<iq type='set' id='raw' to='%s'><query xmlns='urn:xmpp:mam:2' queryid='raw'/></iq>", room)
	res := b.Expect("raw result", func(s *wire.Stanza) bool { return s.Name == "message" && s.Child("urn:xmpp:mam:2", "result") != nil })
	if !bytes.Contains(res.Raw, []byte(enc)) {
		t.Fatalf("archived encrypted element changed:\n%s", res.Raw)
	}
	if it := got[0].Child(nsMUCUser, "x").Child(nsMUCUser, "item"); it.AttrValue("jid") != "alice@"+testserver.Domain {
		t.Fatalf("archive result without the sender's JID (needed to decrypt): %s", got[0].String())
	}
}

// TestMUCRestart: a persistent room comes back after a restart with its
// configuration, affiliations, registered nicks, subject, avatar, history
// and archive; a temporary one does not.
func TestMUCRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	schema := "parley_test_" + strings.ToLower(rand.Text()[:12])
	same := func(c *server.Config) {
		c.DataDir = dir
		c.Storage.Postgres.Schema = schema
	}
	ts := testserver.Start(t, same)
	ts.AddUser("alice", "alice-pw")
	ts.AddUser("bob", "bob-pw")
	a := ts.Login("alice", "alice-pw", "phone")
	b := ts.Login("bob", "bob-pw", "laptop")
	room, temp := roomJID("lasting"), roomJID("fleeting")
	createRoom(t, a, room, "Alice", map[string]string{"muc#roomconfig_persistentroom": "1", "muc#roomconfig_membersonly": "1",
		"muc#roomconfig_roomname": "Lasting", "muc#roomconfig_whois": "anyone"})
	createRoom(t, a, temp, "Alice", nil)
	setAffiliation(t, a, room, "bob@"+testserver.Domain, "admin")
	a.Send("<message to='%s' type='groupchat'><subject>Still here</subject></message>", room)
	a.Expect("subject", subjectFrom(room))
	a.Send("<message to='%s' type='groupchat'><body>before the restart</body></message>", room)
	sid := roomStanzaID(t, a.Expect("message", groupchat(room, "before the restart")), room)
	a.IQ("av", "<iq type='set' id='av' to='%s'><vCard xmlns='vcard-temp'><PHOTO><TYPE>image/png</TYPE><BINVAL>iVBORw0KGgo=</BINVAL></PHOTO></vCard></iq>", room)
	_ = b

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	ts.Shutdown(ctx)
	cancel()

	ts = testserver.Start(t, same)
	a = ts.Login("alice", "alice-pw", "phone")
	b = ts.Login("bob", "bob-pw", "laptop")
	r := b.IQ("info", "<iq type='get' id='info' to='%s'><query xmlns='%s'/></iq>", room, nsDiscoInfo)
	if !strings.Contains(string(r.Raw), "muc_membersonly") || !strings.Contains(string(r.Raw), "name='Lasting'") ||
		!strings.Contains(string(r.Raw), "muc#roominfo_avatarhash") {
		t.Fatalf("room after restart: %s", r.Raw)
	}
	b.Send("<presence to='%s/Bob'><x xmlns='%s'/></presence>", room, nsMUC)
	self := b.Expect("bob back in", selfPresence(room, "Bob"))
	if it := mucItem(self); it.AttrValue("affiliation") != "admin" || it.AttrValue("role") != "moderator" {
		t.Fatalf("bob's affiliation after restart: %s", self.Raw)
	}
	h := b.Expect("history", groupchat(room, "before the restart"))
	if roomStanzaID(t, h, room) != sid {
		t.Fatalf("history stanza-id changed: %s", h.Raw)
	}
	if s := b.Expect("subject", subjectFrom(room)); s.Tree().ChildText(wire.NSClient, "subject") != "Still here" {
		t.Fatalf("subject after restart: %s", s.Raw)
	}
	if got := roomArchive(t, a, room); len(got) != 1 || got[0].ChildText(wire.NSClient, "body") != "before the restart" {
		t.Fatalf("archive after restart: %v", got)
	}
	r = a.IQ("tmp", "<iq type='get' id='tmp' to='%s'><query xmlns='%s'/></iq>", temp, nsDiscoInfo)
	wantCond(t, "temporary room after restart", r, "item-not-found")
}
