package e2e

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/internal/testserver"
	"github.com/parley-xmpp/parley/server"
	"github.com/parley-xmpp/parley/wire"
)

// TestMUCJoinErrors: every refusal of §7.2 with its condition, and what
// makes the same join succeed.
func TestMUCJoinErrors(t *testing.T) {
	t.Parallel()
	ts, a, b, c := mucTrio(t)
	room := roomJID("guarded")

	// A locked room (created, not yet configured) is not there for others.
	a.Send("<presence to='%s/Alice'><x xmlns='%s'/></presence>", room, nsMUC)
	a.Expect("creation", selfPresence(room, "Alice"))
	wantCond(t, "join of a locked room", joinError(t, b, room, "Bob", ""), "item-not-found")
	configure(t, a, room, map[string]string{"muc#roomconfig_passwordprotectedroom": "1",
		"muc#roomconfig_roomsecret": "s3cret", "muc#roomconfig_maxusers": "2"})

	// No nick.
	b.Send("<presence to='%s'><x xmlns='%s'/></presence>", room, nsMUC)
	e := b.Expect("no-nick error", func(s *wire.Stanza) bool { return s.Name == "presence" && s.Type == "error" && s.From == room })
	wantCond(t, "join without nick", e, "jid-malformed")
	// Password.
	wantCond(t, "join without password", joinError(t, b, room, "Bob", ""), "not-authorized")
	wantCond(t, "join with a wrong password", joinError(t, b, room, "Bob", "<password>nope</password>"), "not-authorized")
	// Nick in use by someone else.
	wantCond(t, "join with alice's nick", joinError(t, b, room, "Alice", "<password>s3cret</password>"), "conflict")
	join(t, b, room, "Bob", "<password>s3cret</password>")
	// Full (max 2 occupants).
	wantCond(t, "join of a full room", joinError(t, c, room, "Carol", "<password>s3cret</password>"), "service-unavailable")

	// Banned: forbidden, and removed with 301.
	if r := setAffiliation(t, a, room, "carol@"+testserver.Domain, "outcast"); r.Type != "result" {
		t.Fatalf("ban: %s", r.Raw)
	}
	b.Send("<presence to='%s/Bob' type='unavailable'/>", room)
	b.Expect("left", fromOccupant(room, "Bob", "unavailable"))
	wantCond(t, "join of a banned user", joinError(t, c, room, "Carol", "<password>s3cret</password>"), "forbidden")

	// Members-only: registration-required until made a member.
	members := roomJID("members")
	createRoom(t, a, members, "Alice", map[string]string{"muc#roomconfig_membersonly": "1"})
	wantCond(t, "non-member joining", joinError(t, b, members, "Bob", ""), "registration-required")
	if r := setAffiliation(t, a, members, "bob@"+testserver.Domain, "member"); r.Type != "result" {
		t.Fatalf("grant membership: %s", r.Raw)
	}
	join(t, b, members, "Bob", "")

	// Creation is for local users; with room_creation: admins only for admins.
	ts2 := testserver.Start(t, func(c *server.Config) {
		c.MUC.RoomCreation = "admins"
		c.Admins = []string{"root@" + testserver.Domain}
	})
	ts2.AddUser("root", "root-pw")
	ts2.AddUser("dave", "dave-pw")
	root := ts2.Login("root", "root-pw", "r")
	dave := ts2.Login("dave", "dave-pw", "d")
	wantCond(t, "creation by a non-admin", joinError(t, dave, roomJID("new"), "Dave", ""), "not-allowed")
	createRoom(t, root, roomJID("new"), "Root", nil)
	join(t, dave, roomJID("new"), "Dave", "")
	_ = ts
}

// TestMUCRolesAndAffiliations exercises §8-§10: member lists, voice in a
// moderated room, kick (307), moderator status, admin and owner grants,
// the permission rules, membership revoked in a members-only room (321),
// the last owner.
func TestMUCRolesAndAffiliations(t *testing.T) {
	t.Parallel()
	_, a, b, c := mucTrio(t)
	bob, carol := "bob@"+testserver.Domain, "carol@"+testserver.Domain
	room := roomJID("council")
	createRoom(t, a, room, "Alice", map[string]string{"muc#roomconfig_moderatedroom": "1"})
	bSelf := join(t, b, room, "Bob", "")
	if mucItem(bSelf).AttrValue("role") != "visitor" {
		t.Fatalf("a stranger in a moderated room is no visitor: %s", bSelf.Raw)
	}
	join(t, c, room, "Carol", "")
	b.Send("<message to='%s' type='groupchat' id='v1'><body>may I?</body></message>", room)
	wantCond(t, "visitor speaking", b.Expect("error", func(s *wire.Stanza) bool { return s.ID == "v1" }), "forbidden")

	// Voice (§8.3): the moderator grants it; everyone sees the new role.
	r := a.IQ("voice", "<iq type='set' id='voice' to='%s'><query xmlns='%s'><item nick='Bob' role='participant'/></query></iq>", room, nsMUCAdmin)
	if r.Type != "result" {
		t.Fatalf("grant voice: %s", r.Raw)
	}
	p := c.Expect("bob's new role", func(s *wire.Stanza) bool {
		return s.Name == "presence" && s.From == room+"/Bob" && mucItem(s).AttrValue("role") == "participant"
	})
	if mucItem(p).HasAttr("jid") {
		t.Fatalf("carol sees bob's JID in a semi-anonymous room: %s", p.Raw)
	}
	b.Send("<message to='%s' type='groupchat'><body>thank you</body></message>", room)
	c.Expect("bob speaking", groupchat(room, "thank you"))

	// A participant may not change roles or affiliations, nor list them.
	r = b.IQ("kick1", "<iq type='set' id='kick1' to='%s'><query xmlns='%s'><item nick='Carol' role='none'/></query></iq>", room, nsMUCAdmin)
	wantCond(t, "participant kicking", r, "forbidden")
	wantCond(t, "participant banning", setAffiliation(t, b, room, carol, "outcast"), "forbidden")
	r = b.IQ("list1", "<iq type='get' id='list1' to='%s'><query xmlns='%s'><item affiliation='outcast'/></query></iq>", room, nsMUCAdmin)
	wantCond(t, "participant listing outcasts", r, "forbidden")

	// Admin (owner grants); an admin is a moderator and may kick.
	if r := setAffiliation(t, a, room, bob, "admin"); r.Type != "result" {
		t.Fatalf("grant admin: %s", r.Raw)
	}
	p = b.Expect("bob as admin", func(s *wire.Stanza) bool {
		return s.Name == "presence" && s.From == room+"/Bob" && hasStatus(s, "110") && mucItem(s).AttrValue("affiliation") == "admin"
	})
	if mucItem(p).AttrValue("role") != "moderator" {
		t.Fatalf("an admin is no moderator: %s", p.Raw)
	}
	// An admin may not touch owners or make admins.
	wantCond(t, "admin demoting an owner", setAffiliation(t, b, room, "alice@"+testserver.Domain, "member"), "not-allowed")
	wantCond(t, "admin making an admin", setAffiliation(t, b, room, carol, "admin"), "not-allowed")
	r = b.IQ("kick2", "<iq type='set' id='kick2' to='%s'><query xmlns='%s'><item nick='Alice' role='none'/></query></iq>", room, nsMUCAdmin)
	wantCond(t, "kicking an owner", r, "not-allowed")
	// Kick (§8.2) with a reason: 307, actor nick.
	r = b.IQ("kick3", "<iq type='set' id='kick3' to='%s'><query xmlns='%s'><item nick='Carol' role='none'><reason>calm down</reason></item></query></iq>", room, nsMUCAdmin)
	if r.Type != "result" {
		t.Fatalf("kick: %s", r.Raw)
	}
	k := c.Expect("carol kicked", fromOccupant(room, "Carol", "unavailable"))
	it := mucItem(k)
	if !hasStatus(k, "307") || !hasStatus(k, "110") || it.ChildText(nsMUCUser, "reason") != "calm down" ||
		it.Child(nsMUCUser, "actor").AttrValue("nick") != "Bob" {
		t.Fatalf("kick as carol sees it: %s", k.Raw)
	}
	k = a.Expect("carol kicked (others)", fromOccupant(room, "Carol", "unavailable"))
	if !hasStatus(k, "307") || hasStatus(k, "110") {
		t.Fatalf("kick as alice sees it: %s", k.Raw)
	}

	// Lists (§9.5, §10.5): members, admins, owners.
	setAffiliation(t, a, room, carol, "member")
	r = a.IQ("list2", "<iq type='get' id='list2' to='%s'><query xmlns='%s'><item affiliation='member'/></query></iq>", room, nsMUCAdmin)
	items := r.Child(nsMUCAdmin, "query").ChildrenNamed(nsMUCAdmin, "item")
	if len(items) != 1 || items[0].AttrValue("jid") != carol {
		t.Fatalf("member list: %s", r.Raw)
	}
	r = a.IQ("list3", "<iq type='get' id='list3' to='%s'><query xmlns='%s'><item role='moderator'/></query></iq>", room, nsMUCAdmin)
	var mods []string
	for _, it := range r.Child(nsMUCAdmin, "query").ChildrenNamed(nsMUCAdmin, "item") {
		mods = append(mods, it.AttrValue("nick"))
	}
	if !slices.Equal(mods, []string{"Alice", "Bob"}) {
		t.Fatalf("moderators: %v (%s)", mods, r.Raw)
	}

	// The last owner stays (§10.9: conflict); a second owner makes it possible.
	wantCond(t, "last owner leaving ownership", setAffiliation(t, a, room, "alice@"+testserver.Domain, "admin"), "conflict")
	if r := setAffiliation(t, a, room, bob, "owner"); r.Type != "result" {
		t.Fatalf("grant owner: %s", r.Raw)
	}
	if r := setAffiliation(t, a, room, "alice@"+testserver.Domain, "admin"); r.Type != "result" {
		t.Fatalf("owner stepping down: %s", r.Raw)
	}

	// Members-only: revoking membership removes (321); switching to
	// members-only removes non-members (322).
	join(t, c, room, "Carol", "")
	configure(t, b, room, map[string]string{"muc#roomconfig_membersonly": "1"})
	setAffiliation(t, b, room, carol, "none")
	k = c.Expect("carol removed", fromOccupant(room, "Carol", "unavailable"))
	if !hasStatus(k, "321") {
		t.Fatalf("membership revoked without 321: %s", k.Raw)
	}
	room2 := roomJID("opened")
	createRoom(t, a, room2, "Alice", nil)
	join(t, c, room2, "Carol", "")
	configure(t, a, room2, map[string]string{"muc#roomconfig_membersonly": "1"})
	k = c.Expect("carol removed by members-only", fromOccupant(room2, "Carol", "unavailable"))
	if !hasStatus(k, "322") {
		t.Fatalf("members-only switch without 322: %s", k.Raw)
	}
}

// TestMUCBanAndDestroy: a ban removes the occupant (301) and keeps them
// out; destroy (§10.9) tells every occupant, with the alternate venue
// and reason, and the room is gone with its archive.
func TestMUCBanAndDestroy(t *testing.T) {
	t.Parallel()
	_, a, b, c := mucTrio(t)
	room := roomJID("doomed")
	createRoom(t, a, room, "Alice", nil)
	join(t, b, room, "Bob", "")
	join(t, c, room, "Carol", "")
	a.Send("<message to='%s' type='groupchat'><body>archived</body></message>", room)
	b.Expect("message", groupchat(room, "archived"))

	r := a.IQ("ban", "<iq type='set' id='ban' to='%s'><query xmlns='%s'><item jid='carol@%s' affiliation='outcast'><reason>spam</reason></item></query></iq>",
		room, nsMUCAdmin, testserver.Domain)
	if r.Type != "result" {
		t.Fatalf("ban: %s", r.Raw)
	}
	k := c.Expect("banned", fromOccupant(room, "Carol", "unavailable"))
	if !hasStatus(k, "301") || mucItem(k).AttrValue("affiliation") != "outcast" || mucItem(k).ChildText(nsMUCUser, "reason") != "spam" {
		t.Fatalf("ban as carol sees it: %s", k.Raw)
	}
	b.Expect("carol banned (others)", func(s *wire.Stanza) bool {
		return s.Name == "presence" && s.From == room+"/Carol" && hasStatus(s, "301")
	})
	r = a.IQ("outcasts", "<iq type='get' id='outcasts' to='%s'><query xmlns='%s'><item affiliation='outcast'/></query></iq>", room, nsMUCAdmin)
	if it := r.Child(nsMUCAdmin, "query").Child(nsMUCAdmin, "item"); it.AttrValue("jid") != "carol@"+testserver.Domain || it.ChildText(nsMUCAdmin, "reason") != "spam" {
		t.Fatalf("outcast list: %s", r.Raw)
	}

	// Only owners destroy.
	r = b.IQ("d1", "<iq type='set' id='d1' to='%s'><query xmlns='%s'><destroy/></query></iq>", room, nsMUCOwner)
	wantCond(t, "participant destroying", r, "forbidden")
	r = a.IQ("d2", "<iq type='set' id='d2' to='%s'><query xmlns='%s'><destroy jid='%s'><reason>moved</reason></destroy></query></iq>",
		room, nsMUCOwner, roomJID("elsewhere"))
	if r.Type != "result" {
		t.Fatalf("destroy: %s", r.Raw)
	}
	for _, cl := range []*testserver.Client{a, b} {
		u := cl.Expect("destroy notice", func(s *wire.Stanza) bool {
			return s.Name == "presence" && s.Type == "unavailable" && strings.HasPrefix(s.From, room+"/") && s.Child(nsMUCUser, "x").Child(nsMUCUser, "destroy") != nil
		})
		d := u.Child(nsMUCUser, "x").Child(nsMUCUser, "destroy")
		if d.AttrValue("jid") != roomJID("elsewhere") || d.ChildText(nsMUCUser, "reason") != "moved" {
			t.Fatalf("destroy notice: %s", u.Raw)
		}
	}
	r = b.IQ("gone", "<iq type='get' id='gone' to='%s'><query xmlns='%s'/></iq>", room, nsDiscoInfo)
	wantCond(t, "disco of a destroyed room", r, "item-not-found")
	// A new room of the same name starts empty: no archive, no bans.
	createRoom(t, b, room, "Bob", nil)
	if res := roomArchive(t, b, room); len(res) != 0 {
		t.Fatalf("the archive survived the room: %d messages", len(res))
	}
	join(t, c, room, "Carol", "")
}

// TestMUCAuthorization: requests to a hidden members-only room from a
// stranger who is an occupant of another room, from an outcast and from a
// member are refused, each with its condition, and reveal nothing.
func TestMUCAuthorization(t *testing.T) {
	t.Parallel()
	ts, a, b, c := mucTrio(t)
	ts.AddUser("eve", "eve-pw")
	e := ts.Login("eve", "eve-pw", "e")
	secret, other := roomJID("secret"), roomJID("other")
	createRoom(t, a, secret, "Alice", map[string]string{"muc#roomconfig_membersonly": "1", "muc#roomconfig_publicroom": "0"})
	setAffiliation(t, a, secret, "bob@"+testserver.Domain, "member")
	setAffiliation(t, a, secret, "eve@"+testserver.Domain, "outcast")
	join(t, b, secret, "Bob", "")
	a.Send("<message to='%s' type='groupchat'><body>members only</body></message>", secret)
	b.Expect("message", groupchat(secret, "members only"))
	createRoom(t, c, other, "Carol", nil)

	errorTo := func(cl *testserver.Client, id string) *wire.Stanza {
		return cl.Expect("error "+id, func(s *wire.Stanza) bool { return s.ID == id && s.Type == "error" })
	}
	iq := func(cl *testserver.Client, id, to, payload string) *wire.Stanza {
		return cl.IQ(id, "<iq type='get' id='%s' to='%s'>%s</iq>", id, to, payload)
	}
	set := func(cl *testserver.Client, id, to, payload string) *wire.Stanza {
		return cl.IQ(id, "<iq type='set' id='%s' to='%s'>%s</iq>", id, to, payload)
	}
	// Carol, occupant of another room.
	wantCond(t, "stranger joining", joinError(t, c, secret, "Carol", ""), "registration-required")
	c.Send("<message to='%s' type='groupchat' id='g'><body>hi</body></message>", secret)
	wantCond(t, "stranger's groupchat", errorTo(c, "g"), "not-acceptable")
	c.Send("<message to='%s/Bob' type='chat' id='pm'><body>psst</body></message>", secret)
	wantCond(t, "stranger's private message", errorTo(c, "pm"), "not-acceptable")
	c.Send("<message to='%s' id='inv'><x xmlns='%s'><invite to='eve@%s'/></x></message>", secret, nsMUCUser, testserver.Domain)
	wantCond(t, "stranger's invitation", errorTo(c, "inv"), "not-acceptable")
	c.Send("<message to='%s' type='groupchat' id='subj'><subject>mine now</subject></message>", secret)
	wantCond(t, "stranger's subject", errorTo(c, "subj"), "not-acceptable")
	wantCond(t, "stranger's IQ to an occupant", iq(c, "ver", secret+"/Bob", "<query xmlns='jabber:iq:version'/>"), "not-acceptable")
	wantCond(t, "stranger's self-ping", iq(c, "ping", secret+"/Bob", "<ping xmlns='urn:xmpp:ping'/>"), "not-acceptable")
	wantCond(t, "stranger's member list", iq(c, "ml", secret, "<query xmlns='"+nsMUCAdmin+"'><item affiliation='member'/></query>"), "forbidden")
	wantCond(t, "stranger's config", iq(c, "cfg", secret, "<query xmlns='"+nsMUCOwner+"'/>"), "forbidden")
	wantCond(t, "stranger's archive query", set(c, "mam", secret, "<query xmlns='urn:xmpp:mam:2'/>"), "forbidden")
	wantCond(t, "stranger's moderation", set(c, "mod", secret, "<moderate xmlns='urn:xmpp:message-moderate:1' id='x'><retract xmlns='urn:xmpp:message-retract:1'/></moderate>"), "forbidden")
	wantCond(t, "stranger's avatar", set(c, "vc", secret, "<vCard xmlns='vcard-temp'/>"), "item-not-found")
	wantCond(t, "stranger's disco#info", iq(c, "di", secret, "<query xmlns='"+nsDiscoInfo+"'/>"), "item-not-found")
	wantCond(t, "stranger's registration", iq(c, "reg", secret, "<query xmlns='jabber:iq:register'/>"), "registration-required")
	wantCond(t, "stranger kicking", set(c, "k", secret, "<query xmlns='"+nsMUCAdmin+"'><item nick='Bob' role='none'/></query>"), "forbidden")
	r := iq(c, "items", mucService, "<query xmlns='"+nsDiscoItems+"'/>")
	if strings.Contains(string(r.Raw), secret) || !strings.Contains(string(r.Raw), other) {
		t.Fatalf("room list (hidden room must not show, public one must): %s", r.Raw)
	}
	// Eve, banned.
	wantCond(t, "outcast joining", joinError(t, e, secret, "Eve", ""), "forbidden")
	wantCond(t, "outcast's archive query", set(e, "mam", secret, "<query xmlns='urn:xmpp:mam:2'/>"), "forbidden")
	wantCond(t, "outcast's registration", iq(e, "reg", secret, "<query xmlns='jabber:iq:register'/>"), "forbidden")
	// Bob, a member: reads, but does not administer.
	if got := roomArchive(t, b, secret); len(got) != 1 {
		t.Fatalf("member reading the archive: %d messages", len(got))
	}
	wantCond(t, "member's config", iq(b, "cfg", secret, "<query xmlns='"+nsMUCOwner+"'/>"), "forbidden")
	wantCond(t, "member banning", setAffiliation(t, b, secret, "carol@"+testserver.Domain, "outcast"), "forbidden")
	wantCond(t, "member destroying", set(b, "d", secret, "<query xmlns='"+nsMUCOwner+"'><destroy/></query>"), "forbidden")
	wantCond(t, "member setting the avatar", set(b, "vc", secret, "<vCard xmlns='vcard-temp'/>"), "forbidden")
	// Nothing leaked into the room.
	b.ExpectNone("anything from carol or eve", 200*time.Millisecond, func(s *wire.Stanza) bool {
		return s.Name == "message" && (strings.Contains(string(s.Raw), "psst") || strings.Contains(string(s.Raw), "mine now"))
	})
}

// roomArchive returns the messages of a room archive (first page).
func roomArchive(t *testing.T, c *testserver.Client, room string) []*wire.Element {
	t.Helper()
	id := "rq" + strings.ReplaceAll(time.Now().Format("150405.000000"), ".", "")
	c.Send("<iq type='set' id='%s' to='%s'><query xmlns='urn:xmpp:mam:2' queryid='%s'/></iq>", id, room, id)
	var out []*wire.Element
	for {
		st := c.Expect("archive result or fin", func(s *wire.Stanza) bool {
			res := s.Child("urn:xmpp:mam:2", "result")
			return (s.Name == "message" && res != nil && res.AttrValue("queryid") == id) || (s.Name == "iq" && s.ID == id)
		})
		if st.Name == "iq" {
			if st.Type != "result" {
				t.Fatalf("room archive query: %s", st.Raw)
			}
			return out
		}
		out = append(out, st.Child("urn:xmpp:mam:2", "result").Child("urn:xmpp:forward:0", "forwarded").Child(wire.NSClient, "message"))
	}
}

// TestMUCLimitsDefaultsAndServiceAdmins: muc.max_rooms_per_user,
// muc.messages_per_second, muc.defaults for new rooms, the server admins
// as owners of every room, a nick the service normalized (210), and 332
// to occupants when the server shuts down.
func TestMUCLimitsDefaultsAndServiceAdmins(t *testing.T) {
	ts, a, b, c := mucTrio(t, func(c *server.Config) {
		c.MUC.MaxRoomsPerUser = 1
		c.MUC.MessagesPerSecond = 1
		c.MUC.Defaults.MembersOnly = true
		c.MUC.Defaults.Persistent = true
		c.Admins = []string{"root@" + testserver.Domain}
	})
	ts.AddUser("root", "root-pw")
	root := ts.Login("root", "root-pw", "console")
	room := roomJID("one")
	createRoom(t, a, room, "Alice", nil)
	wantCond(t, "a second room over the limit", joinError(t, a, roomJID("two"), "Alice", ""), "not-allowed")
	createRoom(t, root, roomJID("two"), "Root", nil) // admins are exempt
	// Temporary rooms count too while they exist.
	createRoom(t, c, roomJID("temp"), "Carol", map[string]string{"muc#roomconfig_persistentroom": "0"})
	wantCond(t, "a second room next to a temporary one", joinError(t, c, roomJID("temp2"), "Carol", ""), "not-allowed")
	c.Send("<presence to='%s/Carol' type='unavailable'/>", roomJID("temp"))
	c.Expect("left", fromOccupant(roomJID("temp"), "Carol", "unavailable"))
	// Gone with its last occupant: she may create one again (polled: the
	// room goes once its goroutine saw it empty).
	for i := 0; ; i++ {
		c.Send("<presence to='%s/Carol'><x xmlns='%s'/></presence>", roomJID("temp3"), nsMUC)
		st := c.Expect("join answer", func(s *wire.Stanza) bool { return s.Name == "presence" && s.From == roomJID("temp3")+"/Carol" })
		if st.Type != "error" {
			break
		}
		if i == 50 {
			t.Fatalf("still over the limit after the temporary room went: %s", st.Raw)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Defaults: the new room is members-only and persistent.
	wantCond(t, "stranger in a members-only room by default", joinError(t, b, room, "Bob", ""), "registration-required")
	r := a.IQ("info", "<iq type='get' id='info' to='%s'><query xmlns='%s'/></iq>", room, nsDiscoInfo)
	if !strings.Contains(string(r.Raw), "muc_membersonly") || !strings.Contains(string(r.Raw), "muc_persistent") {
		t.Fatalf("defaults not applied: %s", r.Raw)
	}

	// Rate: a burst of twice the rate, then resource-constraint.
	for i := range 3 {
		a.Send("<message to='%s' type='groupchat' id='r%d'><body>burst %d</body></message>", room, i, i)
	}
	a.Expect("first", groupchat(room, "burst 0"))
	a.Expect("second", groupchat(room, "burst 1"))
	wantCond(t, "third message of the burst", a.Expect("refusal", func(s *wire.Stanza) bool { return s.ID == "r2" }), "resource-constraint")

	// A server admin is an owner of every room: enters the members-only
	// room, configures it and destroys it.
	self := join(t, root, room, "Root", "")
	if it := mucItem(self); it.AttrValue("affiliation") != "owner" || it.AttrValue("role") != "moderator" {
		t.Fatalf("admin in someone's room: %s", self.Raw)
	}
	configure(t, root, room, map[string]string{"muc#roomconfig_membersonly": "0"})
	join(t, b, room, "Bob", "")

	// A nick the service normalizes: 210 with the normalized nick.
	b.Send("<presence to='%s/Bob' type='unavailable'/>", room)
	b.Expect("left", fromOccupant(room, "Bob", "unavailable"))
	b.Send("<presence to='%s/e\u0301'><x xmlns='%s'/></presence>", room, nsMUC)
	self = b.Expect("own presence under the normalized nick", selfPresence(room, "\u00e9"))
	if !hasStatus(self, "210") {
		t.Fatalf("normalized nick without 210: %s", self.Raw)
	}

	// Shutdown: occupants are told (332) before their streams close.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ts.Shutdown(ctx)
	bye := b.Expect("shutdown notice", func(s *wire.Stanza) bool {
		return s.Name == "presence" && s.Type == "unavailable" && s.From == room+"/\u00e9" && hasStatus(s, "332")
	})
	if !hasStatus(bye, "110") {
		t.Fatalf("shutdown notice: %s", bye.Raw)
	}
}

// TestMUCAccountDeletion: deleting an account removes its affiliations
// and registered nick from every room, the rooms in memory included: a
// new account of the same name inherits nothing.
func TestMUCAccountDeletion(t *testing.T) {
	ts, a, b, c := mucTrio(t)
	room := roomJID("club")
	createRoom(t, a, room, "Alice", map[string]string{"muc#roomconfig_membersonly": "1", "muc#roomconfig_persistentroom": "1"})
	setAffiliation(t, a, room, "bob@"+testserver.Domain, "member")
	setAffiliation(t, a, room, "carol@"+testserver.Domain, "member")
	r := b.IQ("reg", "<iq type='set' id='reg' to='%s'><query xmlns='jabber:iq:register'><x xmlns='jabber:x:data' type='submit'>"+
		"<field var='muc#register_roomnick'><value>Bobby</value></field></x></query></iq>", room)
	if r.Type != "result" {
		t.Fatalf("registration: %s", r.Raw)
	}
	join(t, b, room, "Bobby", "")
	if r := b.IQ("rm", "<iq type='set' id='rm'><query xmlns='jabber:iq:register'><remove/></query></iq>"); r.Type != "result" {
		t.Fatalf("account removal: %s", r.Raw)
	}
	a.Expect("bob gone from the room", fromOccupant(room, "Bobby", "unavailable"))
	r = a.IQ("ml", "<iq type='get' id='ml' to='%s'><query xmlns='%s'><item affiliation='member'/></query></iq>", room, nsMUCAdmin)
	if strings.Contains(string(r.Raw), "bob@") {
		t.Fatalf("the deleted account is still a member: %s", r.Raw)
	}
	ts.AddUser("bob", "new-pw")
	nb := ts.Login("bob", "new-pw", "new")
	wantCond(t, "new account of the same name", joinError(t, nb, room, "Bob", ""), "registration-required")
	join(t, c, room, "Bobby", "") // the nick is free again
}
