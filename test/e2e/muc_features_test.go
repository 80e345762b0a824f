package e2e

import (
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/internal/testserver"
	"github.com/parley-xmpp/parley/wire"
)

// TestMUCNickChangeAndSessions: §7.6 nick change (303 with the new nick,
// then available under it; conflicts refused), several devices of one
// user under one nick (each gets everything; one leaving does not make
// the user leave), and an occupant whose session ends without a word
// removed (its server's unavailable presence).
func TestMUCNickChangeAndSessions(t *testing.T) {
	t.Parallel()
	ts, a, b, c := mucTrio(t)
	room := roomJID("nicks")
	createRoom(t, a, room, "Alice", nil)
	join(t, b, room, "Bob", "")
	join(t, c, room, "Carol", "")

	b.Send("<presence to='%s/Carol'/>", room)
	wantCond(t, "nick of another occupant", b.Expect("conflict", fromOccupant(room, "Carol", "error")), "conflict")
	b.Send("<presence to='%s/Robert'/>", room)
	old := b.Expect("303 self", fromOccupant(room, "Bob", "unavailable"))
	if !hasStatus(old, "303") || !hasStatus(old, "110") || mucItem(old).AttrValue("nick") != "Robert" {
		t.Fatalf("nick change as bob sees it: %s", old.Raw)
	}
	b.Expect("new nick self", selfPresence(room, "Robert"))
	old = c.Expect("303 others", fromOccupant(room, "Bob", "unavailable"))
	if !hasStatus(old, "303") || hasStatus(old, "110") || mucItem(old).AttrValue("nick") != "Robert" {
		t.Fatalf("nick change as carol sees it: %s", old.Raw)
	}
	c.Expect("robert available", fromOccupant(room, "Robert", ""))
	b.Send("<message to='%s' type='groupchat'><body>call me Robert</body></message>", room)
	m := c.Expect("message under the new nick", groupchat(room, "call me Robert"))
	if m.From != room+"/Robert" {
		t.Fatalf("from %s", m.From)
	}

	// Alice's second device joins under her nick: no conflict, it gets
	// the room; the others see no new occupant.
	a2 := ts.Login("alice", "alice-pw", "tablet")
	a2.Send("<presence/>")
	join(t, a2, room, "Alice", "")
	c.Send("<message to='%s' type='groupchat'><body>both devices?</body></message>", room)
	a.Expect("on the phone", groupchat(room, "both devices?"))
	a2.Expect("on the tablet", groupchat(room, "both devices?"))
	c.Send("<message to='%s/Alice' type='chat'><body>private to both</body></message>", room)
	a.Expect("PM on the phone", isMsg("private to both"))
	a2.Expect("PM on the tablet", isMsg("private to both"))
	// Another user may not take the nick.
	wantCond(t, "another user under alice's nick", joinError(t, c, room, "Alice", ""), "conflict")
	// The tablet leaves: only it hears so; alice stays.
	a2.Send("<presence to='%s/Alice' type='unavailable'/>", room)
	a2.Expect("tablet left", fromOccupant(room, "Alice", "unavailable"))
	c.ExpectNone("alice leaving", 200*time.Millisecond, fromOccupant(room, "Alice", "unavailable"))
	b.Send("<message to='%s' type='groupchat'><body>still there?</body></message>", room)
	a.Expect("phone still in", groupchat(room, "still there?"))

	// An error bouncing from an occupant's address makes the room drop
	// the ghost (status 333).
	a2.Send("<presence to='%s/Ghost'/>", room)
	a2.Expect("tablet back", selfPresence(room, "Ghost"))
	a2.Send("<message to='%s' type='error' id='gone'><error type='cancel'><recipient-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>", room)
	g := b.Expect("ghost removed", fromOccupant(room, "Ghost", "unavailable"))
	if !hasStatus(g, "333") {
		t.Fatalf("ghost removal without 333: %s", g.Raw)
	}

	// Carol's connection drops (no stream management): her server tells
	// the room, and she is gone for the others.
	c.Drop()
	b.Expect("carol gone", fromOccupant(room, "Carol", "unavailable"))
}

// TestMUCRejoinResyncs: a join presence (with <x xmlns='…muc'/>) from a
// session that is already in the room is a full synchronization request
// (XEP-0045 §17.3.3): it gets the others' presence, its own with 110, the
// history and the subject again, as on its first join (slixmpp's
// join_muc_wait, and clients after a failed self-ping, wait for the
// subject). A presence without <x/> stays a plain presence update.
func TestMUCRejoinResyncs(t *testing.T) {
	t.Parallel()
	_, a, b, _ := mucTrio(t)
	room := roomJID("resync")
	createRoom(t, a, room, "Alice", nil)
	a.Send("<message to='%s' type='groupchat'><subject>Resync</subject></message>", room)
	a.Expect("subject set", subjectFrom(room))
	a.Send("<message to='%s' type='groupchat'><body>said before</body></message>", room)
	a.Expect("own message", groupchat(room, "said before"))
	join(t, b, room, "Bob", "")
	b.Expect("history on the first join", groupchat(room, "said before"))
	b.Expect("alice on the first join", fromOccupant(room, "Alice", ""))

	b.Send("<presence to='%s/Bob'><show>away</show></presence>", room)
	b.Expect("own presence update", selfPresence(room, "Bob"))
	b.ExpectNone("history after a presence update", 200*time.Millisecond, groupchat(room, "said before"))

	b.Send("<presence to='%s/Bob'><x xmlns='%s'/></presence>", room, nsMUC)
	b.Expect("alice again", fromOccupant(room, "Alice", ""))
	if self := b.Expect("own presence again", selfPresence(room, "Bob")); mucItem(self).AttrValue("role") != "participant" {
		t.Fatalf("own presence on the resync: %s", self.Raw)
	}
	if h := b.Expect("history again", groupchat(room, "said before")); h.Child("urn:xmpp:delay", "delay") == nil {
		t.Fatalf("history without delay: %s", h.Raw)
	}
	if s := b.Expect("subject again", subjectFrom(room)); s.Child(wire.NSClient, "subject").Text() != "Resync" {
		t.Fatalf("subject: %s", s.Raw)
	}
	a.Expect("bob's presence for the others", fromOccupant(room, "Bob", ""))
}

// TestMUCPresenceBroadcast: muc#roomconfig_presencebroadcast (every role
// by default) limits whose presence the others get; an occupant always
// gets its own, hidden occupants are not in a joining user's list, a
// role that becomes shown or hidden is announced as a join or a leave,
// and a hidden occupant leaves silently.
func TestMUCPresenceBroadcast(t *testing.T) {
	t.Parallel()
	_, a, b, c := mucTrio(t)
	room := roomJID("stage")
	createRoom(t, a, room, "Alice", nil)
	form := a.IQ("form", "<iq type='get' id='form' to='%s'><query xmlns='%s'/></iq>", room, nsMUCOwner)
	if vals := formField(form, "muc#roomconfig_presencebroadcast"); !slices.Equal(vals, []string{"moderator", "participant", "visitor"}) {
		t.Fatalf("default presencebroadcast %v: %s", vals, form.Raw)
	}
	configure(t, a, room, map[string]string{"muc#roomconfig_presencebroadcast": "moderator"})
	form = a.IQ("form2", "<iq type='get' id='form2' to='%s'><query xmlns='%s'/></iq>", room, nsMUCOwner)
	if vals := formField(form, "muc#roomconfig_presencebroadcast"); !slices.Equal(vals, []string{"moderator"}) {
		t.Fatalf("presencebroadcast after the change %v", vals)
	}

	join(t, b, room, "Bob", "")
	b.Expect("the moderator's presence", fromOccupant(room, "Alice", ""))
	join(t, c, room, "Carol", "")
	c.Expect("the moderator's presence", fromOccupant(room, "Alice", ""))
	a.ExpectNone("a participant's presence", 200*time.Millisecond, fromOccupant(room, "Bob", ""))
	c.ExpectNone("a participant's presence", 0, fromOccupant(room, "Bob", ""))
	b.ExpectNone("a participant's presence", 0, fromOccupant(room, "Carol", ""))

	// Bob becomes a moderator: shown; back to participant: gone.
	a.IQ("mod", "<iq type='set' id='mod' to='%s'><query xmlns='%s'><item nick='Bob' role='moderator'/></query></iq>", room, nsMUCAdmin)
	c.Expect("bob shown as a moderator", fromOccupant(room, "Bob", ""))
	a.IQ("unmod", "<iq type='set' id='unmod' to='%s'><query xmlns='%s'><item nick='Bob' role='participant'/></query></iq>", room, nsMUCAdmin)
	c.Expect("bob hidden again", fromOccupant(room, "Bob", "unavailable"))
	b.Expect("bob's own new role", func(s *wire.Stanza) bool {
		return selfPresence(room, "Bob")(s) && mucItem(s).AttrValue("role") == "participant"
	})

	// Carol leaves unseen; showing only participants shows bob and hides
	// alice.
	c.Send("<presence to='%s/Carol' type='unavailable'/>", room)
	c.Expect("carol's own leave", fromOccupant(room, "Carol", "unavailable"))
	configure(t, a, room, map[string]string{"muc#roomconfig_presencebroadcast": "participant"})
	a.Expect("bob shown by the new configuration", fromOccupant(room, "Bob", ""))
	a.ExpectNone("carol's leave", 200*time.Millisecond, fromOccupant(room, "Carol", "unavailable"))
	b.ExpectNone("carol's leave", 0, fromOccupant(room, "Carol", "unavailable"))
	b.Expect("alice hidden by the new configuration", fromOccupant(room, "Alice", "unavailable"))
}

// TestMUCGetMemberList: muc#roomconfig_getmemberlist says which roles
// may read the member list: by default moderators, and every role where
// real JIDs are public; admins and owners always.
func TestMUCGetMemberList(t *testing.T) {
	t.Parallel()
	_, a, b, _ := mucTrio(t)
	room := roomJID("members")
	createRoom(t, a, room, "Alice", nil)
	form := a.IQ("form", "<iq type='get' id='form' to='%s'><query xmlns='%s'/></iq>", room, nsMUCOwner)
	if vals := formField(form, "muc#roomconfig_getmemberlist"); !slices.Equal(vals, []string{"moderator"}) {
		t.Fatalf("default getmemberlist of a semi-anonymous room %v: %s", vals, form.Raw)
	}
	join(t, b, room, "Bob", "")
	list := func(id string) *wire.Stanza {
		return b.IQ(id, "<iq type='get' id='%s' to='%s'><query xmlns='%s'><item affiliation='member'/></query></iq>", id, room, nsMUCAdmin)
	}
	wantCond(t, "a participant reads the member list", list("l1"), "forbidden")
	configure(t, a, room, map[string]string{"muc#roomconfig_getmemberlist": "participant"})
	if r := list("l2"); r.Type != "result" {
		t.Fatalf("a participant with getmemberlist=participant: %s", r.Raw)
	}
	configure(t, a, room, map[string]string{"muc#roomconfig_getmemberlist": "moderator"})
	wantCond(t, "a participant after getmemberlist=moderator", list("l3"), "forbidden")
	if r := a.IQ("l4", "<iq type='get' id='l4' to='%s'><query xmlns='%s'><item affiliation='member'/></query></iq>", room, nsMUCAdmin); r.Type != "result" {
		t.Fatalf("the owner: %s", r.Raw)
	}

	open := roomJID("open-members")
	createRoom(t, a, open, "Alice", map[string]string{"muc#roomconfig_whois": "anyone"})
	form = a.IQ("form2", "<iq type='get' id='form2' to='%s'><query xmlns='%s'/></iq>", open, nsMUCOwner)
	if vals := formField(form, "muc#roomconfig_getmemberlist"); !slices.Equal(vals, []string{"moderator", "participant", "visitor"}) {
		t.Fatalf("default getmemberlist of a non-anonymous room %v", vals)
	}
	join(t, b, open, "Bob", "")
	if r := b.IQ("l5", "<iq type='get' id='l5' to='%s'><query xmlns='%s'><item affiliation='member'/></query></iq>", open, nsMUCAdmin); r.Type != "result" {
		t.Fatalf("a participant of a non-anonymous room: %s", r.Raw)
	}
}

// TestMUCPrivateMessages: §7.5 with the room's private message setting.
func TestMUCPrivateMessages(t *testing.T) {
	t.Parallel()
	_, a, b, c := mucTrio(t)
	room := roomJID("pms")
	createRoom(t, a, room, "Alice", nil)
	join(t, b, room, "Bob", "")
	join(t, c, room, "Carol", "")

	b.Send("<message to='%s/Carol' type='chat' id='p1'><body>hi carol</body></message>", room)
	m := c.Expect("PM", isMsg("hi carol"))
	if m.From != room+"/Bob" || m.Type != "chat" || m.Child(nsMUCUser, "x") == nil {
		t.Fatalf("private message as carol gets it: %s", m.Raw)
	}
	if strings.Contains(string(m.Raw), "bob@") {
		t.Fatalf("a private message in a semi-anonymous room reveals the sender: %s", m.Raw)
	}
	c.Send("<message to='%s/Bob' type='chat'><body>hi bob</body></message>", room)
	b.Expect("reply", isMsg("hi bob"))
	b.Send("<message to='%s/Nobody' type='chat' id='p2'><body>?</body></message>", room)
	wantCond(t, "PM to nobody", b.Expect("error", func(s *wire.Stanza) bool { return s.ID == "p2" }), "item-not-found")
	b.Send("<message to='%s/Carol' type='groupchat' id='p3'><body>?</body></message>", room)
	wantCond(t, "groupchat to an occupant", b.Expect("error", func(s *wire.Stanza) bool { return s.ID == "p3" }), "bad-request")

	configure(t, a, room, map[string]string{"muc#roomconfig_allowpm": "moderators"})
	b.Send("<message to='%s/Carol' type='chat' id='p4'><body>blocked</body></message>", room)
	wantCond(t, "PM when only moderators may", b.Expect("error", func(s *wire.Stanza) bool { return s.ID == "p4" }), "forbidden")
	a.Send("<message to='%s/Carol' type='chat'><body>from the moderator</body></message>", room)
	c.Expect("moderator's PM", isMsg("from the moderator"))
	configure(t, a, room, map[string]string{"muc#roomconfig_allowpm": "none"})
	a.Send("<message to='%s/Carol' type='chat' id='p5'><body>none</body></message>", room)
	wantCond(t, "PM when disabled", a.Expect("error", func(s *wire.Stanza) bool { return s.ID == "p5" }), "not-allowed")
	c.ExpectNone("blocked PMs", 100*time.Millisecond, func(s *wire.Stanza) bool {
		return s.Name == "message" && (s.Child(wire.NSClient, "body").Text() == "blocked" || s.Child(wire.NSClient, "body").Text() == "none")
	})
}

// TestMUCInvitations: mediated invitations (§7.8.2) in a members-only
// room make the invitee a member; declines reach the inviter; XEP-0249
// direct invitations pass between users unchanged.
func TestMUCInvitations(t *testing.T) {
	t.Parallel()
	_, a, b, c := mucTrio(t)
	room := roomJID("private")
	createRoom(t, a, room, "Alice", map[string]string{"muc#roomconfig_membersonly": "1", "muc#roomconfig_whois": "anyone"})
	a.Send("<message to='%s'><x xmlns='%s'><invite to='bob@%s'><reason>join us</reason></invite></x></message>", room, nsMUCUser, testserver.Domain)
	inv := b.Expect("invitation", func(s *wire.Stanza) bool { return s.Name == "message" && s.From == room })
	i := inv.Child(nsMUCUser, "x").Child(nsMUCUser, "invite")
	if i.AttrValue("from") != a.JID || i.ChildText(nsMUCUser, "reason") != "join us" {
		t.Fatalf("invitation: %s", inv.Raw)
	}
	join(t, b, room, "Bob", "") // a member now
	// A member may not invite unless the room allows it.
	b.Send("<message to='%s' id='i2'><x xmlns='%s'><invite to='carol@%s'/></x></message>", room, nsMUCUser, testserver.Domain)
	wantCond(t, "member inviting", b.Expect("error", func(s *wire.Stanza) bool { return s.ID == "i2" }), "forbidden")
	configure(t, a, room, map[string]string{"muc#roomconfig_allowinvites": "1"})
	b.Send("<message to='%s'><x xmlns='%s'><invite to='carol@%s'/></x></message>", room, nsMUCUser, testserver.Domain)
	c.Expect("invitation from bob", func(s *wire.Stanza) bool { return s.Name == "message" && s.From == room })
	c.Send("<message to='%s'><x xmlns='%s'><decline to='%s'><reason>busy</reason></decline></x></message>", room, nsMUCUser, b.JID)
	d := b.Expect("decline", func(s *wire.Stanza) bool {
		return s.Name == "message" && s.From == room && s.Child(nsMUCUser, "x").Child(nsMUCUser, "decline") != nil
	})
	if dd := d.Child(nsMUCUser, "x").Child(nsMUCUser, "decline"); dd.AttrValue("from") != "carol@"+testserver.Domain || dd.ChildText(nsMUCUser, "reason") != "busy" {
		t.Fatalf("decline: %s", d.Raw)
	}
	// XEP-0249 goes from user to user.
	a.Send("<message to='carol@%s'><x xmlns='jabber:x:conference' jid='%s' reason='direct'/></message>", testserver.Domain, room)
	dm := c.Expect("direct invitation", func(s *wire.Stanza) bool { return s.Child("jabber:x:conference", "x") != nil })
	if dm.From != a.JID || dm.Child("jabber:x:conference", "x").AttrValue("jid") != room {
		t.Fatalf("direct invitation: %s", dm.Raw)
	}
	join(t, c, room, "Carol", "")
}

// TestMUCSubject: §8.1 (moderators, or participants when allowed), and the
// subject a later occupant gets, with who set it.
func TestMUCSubject(t *testing.T) {
	t.Parallel()
	_, a, b, c := mucTrio(t)
	room := roomJID("topics")
	createRoom(t, a, room, "Alice", nil)
	join(t, b, room, "Bob", "")
	b.Send("<message to='%s' type='groupchat' id='s1'><subject>mine</subject></message>", room)
	wantCond(t, "participant changing the subject", b.Expect("error", func(s *wire.Stanza) bool { return s.ID == "s1" }), "forbidden")
	a.Send("<message to='%s' type='groupchat'><subject>Plans &amp; ideas</subject></message>", room)
	s := b.Expect("new subject", subjectFrom(room))
	if s.From != room+"/Alice" || s.Tree().ChildText(wire.NSClient, "subject") != "Plans & ideas" {
		t.Fatalf("subject: %s", s.Raw)
	}
	configure(t, a, room, map[string]string{"muc#roomconfig_changesubject": "1"})
	b.Send("<message to='%s' type='groupchat'><subject>Bob's turn</subject></message>", room)
	a.Expect("bob's subject", func(s *wire.Stanza) bool {
		return subjectFrom(room)(s) && s.Tree().ChildText(wire.NSClient, "subject") == "Bob's turn"
	})
	c.Send("<presence to='%s/Carol'><x xmlns='%s'/></presence>", room, nsMUC)
	s = c.Expect("subject on join", subjectFrom(room))
	if s.From != room+"/Bob" || s.Tree().ChildText(wire.NSClient, "subject") != "Bob's turn" || s.Child("urn:xmpp:delay", "delay") == nil {
		t.Fatalf("subject on join: %s", s.Raw)
	}
}

// TestMUCConfigurationAndDisco: the owner form (§10.2) with every field,
// the 104/172 notices, disco#info features and muc#roominfo, public and
// hidden rooms in the service's list, with RSM paging.
func TestMUCConfigurationAndDisco(t *testing.T) {
	t.Parallel()
	_, a, b, _ := mucTrio(t)
	room := roomJID("configured")
	createRoom(t, a, room, "Alice", nil)
	r := a.IQ("form", "<iq type='get' id='form' to='%s'><query xmlns='%s'/></iq>", room, nsMUCOwner)
	var vars []string
	for _, f := range r.Child(nsMUCOwner, "query").Child(nsXData, "x").ChildrenNamed(nsXData, "field") {
		vars = append(vars, f.AttrValue("var"))
	}
	for _, want := range []string{"muc#roomconfig_roomname", "muc#roomconfig_roomdesc", "muc#roomconfig_persistentroom",
		"muc#roomconfig_publicroom", "muc#roomconfig_membersonly", "muc#roomconfig_moderatedroom",
		"muc#roomconfig_passwordprotectedroom", "muc#roomconfig_roomsecret", "muc#roomconfig_whois", "muc#roomconfig_maxusers",
		"muc#maxhistoryfetch", "muc#roomconfig_allowpm", "muc#roomconfig_changesubject", "muc#roomconfig_allowinvites",
		"muc#roomconfig_enablearchiving", "muc#roomconfig_lang", "muc#roomconfig_roomowners", "muc#roomconfig_roomadmins",
		"{urn:parley:muc:0}notify"} {
		if !slices.Contains(vars, want) {
			t.Errorf("configuration form lacks %s", want)
		}
	}
	join(t, b, room, "Bob", "")
	configure(t, a, room, map[string]string{"muc#roomconfig_roomname": "The Room", "muc#roomconfig_roomdesc": "a place",
		"muc#roomconfig_whois": "anyone", "muc#roomconfig_persistentroom": "1", "muc#roomconfig_lang": "en"})
	n := b.Expect("configuration notice", func(s *wire.Stanza) bool { return s.Name == "message" && s.From == room && hasStatus(s, "104") })
	if !hasStatus(n, "172") {
		t.Fatalf("JIDs now public without 172: %s", n.Raw)
	}
	r = configureErr(a, room, "muc#roomconfig_maxusers", "100000")
	wantCond(t, "more occupants than the service allows", r, "not-acceptable")
	r = configureErr(b, room, "muc#roomconfig_roomname", "hijack")
	wantCond(t, "participant configuring", r, "forbidden")

	r = b.IQ("info", "<iq type='get' id='info' to='%s'><query xmlns='%s'/></iq>", room, nsDiscoInfo)
	q := r.Child(nsDiscoInfo, "query")
	var feats []string
	for _, f := range q.ChildrenNamed(nsDiscoInfo, "feature") {
		feats = append(feats, f.AttrValue("var"))
	}
	for _, want := range []string{nsMUC, "muc_persistent", "muc_public", "muc_open", "muc_unmoderated", "muc_unsecured",
		"muc_nonanonymous", "urn:xmpp:mam:2", nsOccupantID, "urn:xmpp:message-moderate:1", "http://jabber.org/protocol/muc#self-ping-optimization"} {
		if !slices.Contains(feats, want) {
			t.Errorf("room disco#info lacks %s: %v", want, feats)
		}
	}
	if q.Child(nsDiscoInfo, "identity").AttrValue("name") != "The Room" {
		t.Fatalf("identity: %s", r.Raw)
	}
	info := map[string]string{}
	for _, f := range q.Child(nsXData, "x").ChildrenNamed(nsXData, "field") {
		info[f.AttrValue("var")] = f.ChildText(nsXData, "value")
	}
	if info["FORM_TYPE"] != "http://jabber.org/protocol/muc#roominfo" || info["muc#roominfo_description"] != "a place" ||
		info["muc#roominfo_occupants"] != "2" || info["muc#roominfo_lang"] != "en" {
		t.Fatalf("roominfo: %v", info)
	}
	// The service lists public rooms, pages with RSM, and hides hidden ones.
	for i := range 3 {
		createRoom(t, a, roomJID(fmt.Sprintf("pub%d", i)), "Alice", nil)
	}
	createRoom(t, a, roomJID("hidden"), "Alice", map[string]string{"muc#roomconfig_publicroom": "0"})
	r = b.IQ("list", "<iq type='get' id='list' to='%s'><query xmlns='%s'/></iq>", mucService, nsDiscoItems)
	var listed []string
	for _, it := range r.Child(nsDiscoItems, "query").ChildrenNamed(nsDiscoItems, "item") {
		listed = append(listed, it.AttrValue("jid"))
	}
	if !slices.Contains(listed, room) || !slices.Contains(listed, roomJID("pub2")) || slices.Contains(listed, roomJID("hidden")) {
		t.Fatalf("room list: %v", listed)
	}
	r = b.IQ("page", "<iq type='get' id='page' to='%s'><query xmlns='%s'><set xmlns='http://jabber.org/protocol/rsm'><max>2</max></set></query></iq>", mucService, nsDiscoItems)
	if items := r.Child(nsDiscoItems, "query").ChildrenNamed(nsDiscoItems, "item"); len(items) != 2 ||
		r.Child(nsDiscoItems, "query").Child("http://jabber.org/protocol/rsm", "set").ChildText("http://jabber.org/protocol/rsm", "count") != fmt.Sprint(len(listed)) {
		t.Fatalf("RSM page: %s", r.Raw)
	}
}

// configureErr submits one field and returns the answer.
func configureErr(c *testserver.Client, room, field, value string) *wire.Stanza {
	return c.IQ("cfgerr", "<iq type='set' id='cfgerr' to='%s'><query xmlns='%s'><x xmlns='jabber:x:data' type='submit'>"+
		"<field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field>"+
		"<field var='%s'><value>%s</value></field></x></query></iq>", room, nsMUCOwner, field, value)
}

// TestMUCOccupantIDAndSelfPing: XEP-0421 ids are stable for a user in a
// room (across rejoins and devices), differ between users and rooms;
// XEP-0410 self-ping is answered by the room while joined, not after;
// other IQs to an occupant reach the occupant and their answer returns.
func TestMUCOccupantIDAndSelfPing(t *testing.T) {
	t.Parallel()
	ts, a, b, _ := mucTrio(t)
	room, room2 := roomJID("ids"), roomJID("ids2")
	createRoom(t, a, room, "Alice", nil)
	createRoom(t, a, room2, "Alice", nil)
	id1 := join(t, b, room, "Bob", "").Child(nsOccupantID, "occupant-id").AttrValue("id")
	b.Send("<presence to='%s/Bob' type='unavailable'/>", room)
	b.Expect("left", fromOccupant(room, "Bob", "unavailable"))
	b2 := ts.Login("bob", "bob-pw", "other")
	id2 := join(t, b2, room, "Bobby", "").Child(nsOccupantID, "occupant-id").AttrValue("id")
	id3 := join(t, b, room2, "Bob", "").Child(nsOccupantID, "occupant-id").AttrValue("id")
	aliceID := b2.Expect("alice", fromOccupant(room, "Alice", "")).Child(nsOccupantID, "occupant-id").AttrValue("id")
	if id1 == "" || id1 != id2 || id1 == id3 || id1 == aliceID {
		t.Fatalf("occupant ids: rejoin %q/%q, other room %q, alice %q", id1, id2, id3, aliceID)
	}

	r := b2.IQ("sp", "<iq type='get' id='sp' to='%s/Bobby'><ping xmlns='urn:xmpp:ping'/></iq>", room)
	if r.Type != "result" || r.From != room+"/Bobby" {
		t.Fatalf("self-ping while joined: %s", r.Raw)
	}
	r = b.IQ("sp2", "<iq type='get' id='sp2' to='%s/Bobby'><ping xmlns='urn:xmpp:ping'/></iq>", room)
	wantCond(t, "self-ping from a device that is not joined", r, "not-acceptable")
	// A version query to another occupant is passed on and answered.
	b2.Send("<iq type='get' id='ver' to='%s/Alice'><query xmlns='jabber:iq:version'/></iq>", room)
	fwd := a.Expect("forwarded IQ", func(s *wire.Stanza) bool { return s.Name == "iq" && s.Type == "get" && s.From == room+"/Bobby" })
	a.Send("<iq type='result' id='%s' to='%s'><query xmlns='jabber:iq:version'><name>AliceClient</name></query></iq>", fwd.ID, fwd.From)
	ans := b2.Expect("answer", func(s *wire.Stanza) bool { return s.Name == "iq" && s.ID == "ver" })
	if ans.Type != "result" || ans.From != room+"/Alice" || !strings.Contains(string(ans.Raw), "AliceClient") {
		t.Fatalf("forwarded answer: %s", ans.Raw)
	}
}

// TestMUCRegistrationAndAvatar: §7.10 nick registration (member, reserved
// nick, the notification choice, removal) and the room avatar
// (XEP-0486: owners set the vCard; occupants learn the hash).
func TestMUCRegistrationAndAvatar(t *testing.T) {
	t.Parallel()
	_, a, b, c := mucTrio(t)
	room := roomJID("club")
	createRoom(t, a, room, "Alice", nil)
	r := b.IQ("rf", "<iq type='get' id='rf' to='%s'><query xmlns='jabber:iq:register'/></iq>", room)
	if !strings.Contains(string(r.Raw), "muc#register_roomnick") || !strings.Contains(string(r.Raw), "{urn:parley:muc:0}notify") {
		t.Fatalf("registration form: %s", r.Raw)
	}
	r = b.IQ("rs", "<iq type='set' id='rs' to='%s'><query xmlns='jabber:iq:register'><x xmlns='jabber:x:data' type='submit'>"+
		"<field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#register</value></field>"+
		"<field var='muc#register_roomnick'><value>Bobby</value></field>"+
		"<field var='{urn:parley:muc:0}notify'><value>all</value></field></x></query></iq>", room)
	if r.Type != "result" {
		t.Fatalf("registration: %s", r.Raw)
	}
	r = b.IQ("rg", "<iq type='get' id='rg' to='%s'><query xmlns='jabber:iq:register'/></iq>", room)
	if q := r.Child("jabber:iq:register", "query"); q.Child("jabber:iq:register", "registered") == nil || q.ChildText("jabber:iq:register", "username") != "Bobby" {
		t.Fatalf("registered state: %s", r.Raw)
	}
	r = a.IQ("ml", "<iq type='get' id='ml' to='%s'><query xmlns='%s'><item affiliation='member'/></query></iq>", room, nsMUCAdmin)
	if it := r.Child(nsMUCAdmin, "query").Child(nsMUCAdmin, "item"); it.AttrValue("jid") != "bob@"+testserver.Domain || it.AttrValue("nick") != "Bobby" {
		t.Fatalf("registration did not make bob a member with his nick: %s", r.Raw)
	}
	wantCond(t, "joining under a nick registered by someone else", joinError(t, c, room, "Bobby", ""), "conflict")
	r = c.IQ("rc", "<iq type='set' id='rc' to='%s'><query xmlns='jabber:iq:register'><x xmlns='jabber:x:data' type='submit'>"+
		"<field var='muc#register_roomnick'><value>bobby</value></field></x></query></iq>", room)
	wantCond(t, "registering a taken nick", r, "conflict")
	join(t, b, room, "Bobby", "")
	join(t, c, room, "Carol", "")

	// Avatar.
	png := base64.StdEncoding.EncodeToString(testPNG(t, 8, 8, 3))
	r = b.IQ("av1", "<iq type='set' id='av1' to='%s'><vCard xmlns='vcard-temp'><PHOTO><TYPE>image/png</TYPE><BINVAL>%s</BINVAL></PHOTO></vCard></iq>", room, png)
	wantCond(t, "member setting the avatar", r, "forbidden")
	r = a.IQ("av2", "<iq type='set' id='av2' to='%s'><vCard xmlns='vcard-temp'><PHOTO><TYPE>image/png</TYPE><BINVAL>%s</BINVAL></PHOTO></vCard></iq>", room, png)
	if r.Type != "result" {
		t.Fatalf("owner setting the avatar: %s", r.Raw)
	}
	raw, _ := base64.StdEncoding.DecodeString(png)
	hash := sha1Hex(raw)
	c.Expect("104 notice", func(s *wire.Stanza) bool { return s.Name == "message" && s.From == room && hasStatus(s, "104") })
	p := c.Expect("avatar presence", func(s *wire.Stanza) bool { return s.Name == "presence" && s.From == room })
	if got, _ := photoHash(p); got != hash {
		t.Fatalf("avatar hash in presence %q, want %q: %s", got, hash, p.Raw)
	}
	r = c.IQ("info", "<iq type='get' id='info' to='%s'><query xmlns='%s'/></iq>", room, nsDiscoInfo)
	if !strings.Contains(string(r.Raw), "muc#roominfo_avatarhash") || !strings.Contains(string(r.Raw), hash) {
		t.Fatalf("roominfo without the avatar hash: %s", r.Raw)
	}
	vc := getVCard(t, c, "gv", room)
	if img, _ := vcardImage(t, vc); string(img) != string(raw) {
		t.Fatal("the room vCard does not hold the avatar")
	}
	// Unregistering: bob is no member any more.
	r = b.IQ("un", "<iq type='set' id='un' to='%s'><query xmlns='jabber:iq:register'><remove/></query></iq>", room)
	if r.Type != "result" {
		t.Fatalf("unregister: %s", r.Raw)
	}
	r = a.IQ("ml2", "<iq type='get' id='ml2' to='%s'><query xmlns='%s'><item affiliation='member'/></query></iq>", room, nsMUCAdmin)
	if r.Child(nsMUCAdmin, "query").Child(nsMUCAdmin, "item") != nil {
		t.Fatalf("still a member after unregistering: %s", r.Raw)
	}
}

// TestMUCVoiceRequest: a visitor asks for voice (§7.13); the moderator
// gets the form and approves it (§8.6).
func TestMUCVoiceRequest(t *testing.T) {
	t.Parallel()
	_, a, b, _ := mucTrio(t)
	room := roomJID("stage")
	createRoom(t, a, room, "Alice", map[string]string{"muc#roomconfig_moderatedroom": "1"})
	join(t, b, room, "Bob", "")
	b.Send("<message to='%s'><x xmlns='jabber:x:data' type='submit'>"+
		"<field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#request</value></field>"+
		"<field var='muc#role'><value>participant</value></field></x></message>", room)
	req := a.Expect("voice request", func(s *wire.Stanza) bool {
		return s.Name == "message" && s.From == room && s.Child(nsXData, "x") != nil
	})
	if !strings.Contains(string(req.Raw), "muc#request_allow") || !strings.Contains(string(req.Raw), "<value>Bob</value>") {
		t.Fatalf("voice request form: %s", req.Raw)
	}
	a.Send("<message to='%s'><x xmlns='jabber:x:data' type='submit'>"+
		"<field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#request</value></field>"+
		"<field var='muc#role'><value>participant</value></field>"+
		"<field var='muc#roomnick'><value>Bob</value></field>"+
		"<field var='muc#request_allow'><value>true</value></field></x></message>", room)
	b.Expect("voice granted", func(s *wire.Stanza) bool {
		return s.Name == "presence" && s.From == room+"/Bob" && hasStatus(s, "110") && mucItem(s).AttrValue("role") == "participant"
	})
}

// TestMUCHistoryRequests: §7.2.14 maxchars, seconds, since, and none.
func TestMUCHistoryRequests(t *testing.T) {
	t.Parallel()
	_, a, b, _ := mucTrio(t)
	room := roomJID("history")
	createRoom(t, a, room, "Alice", nil)
	for i := range 5 {
		a.Send("<message to='%s' type='groupchat'><body>m%d</body></message>", room, i)
		a.Expect("reflection", groupchat(room, fmt.Sprintf("m%d", i)))
	}
	history := func(extra string) []string {
		t.Helper()
		b.Send("<presence to='%s/Bob'><x xmlns='%s'>%s</x></presence>", room, nsMUC, extra)
		b.Expect("self", selfPresence(room, "Bob"))
		var got []string
		for {
			s := b.Expect("history or subject", func(s *wire.Stanza) bool { return s.Name == "message" && strings.HasPrefix(s.From, room) })
			if s.Child(wire.NSClient, "subject") != nil {
				break
			}
			got = append(got, s.Tree().ChildText(wire.NSClient, "body"))
		}
		b.Send("<presence to='%s/Bob' type='unavailable'/>", room)
		b.Expect("left", fromOccupant(room, "Bob", "unavailable"))
		return got
	}
	if got := history(""); !slices.Equal(got, []string{"m0", "m1", "m2", "m3", "m4"}) {
		t.Fatalf("default history: %v", got)
	}
	if got := history("<history maxstanzas='0'/>"); len(got) != 0 {
		t.Fatalf("maxstanzas=0: %v", got)
	}
	if got := history("<history maxchars='0'/>"); len(got) != 0 {
		t.Fatalf("maxchars=0: %v", got)
	}
	if got := history("<history maxstanzas='2'/>"); !slices.Equal(got, []string{"m3", "m4"}) {
		t.Fatalf("maxstanzas=2: %v", got)
	}
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	if got := history("<history since='" + future + "'/>"); len(got) != 0 {
		t.Fatalf("since the future: %v", got)
	}
	if got := history("<history seconds='3600'/>"); len(got) != 5 {
		t.Fatalf("seconds=3600: %v", got)
	}
}
