package e2e

import (
	"slices"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/internal/testserver"
	"github.com/parley-xmpp/parley/wire"
)

// mucTrio starts a server with alice, bob and carol logged in and
// available.
func mucTrio(t *testing.T, opts ...testserver.Option) (ts *testserver.Server, a, b, c *testserver.Client) {
	t.Helper()
	ts = testserver.Start(t, opts...)
	for _, u := range []string{"alice", "bob", "carol"} {
		ts.AddUser(u, u+"-pw")
	}
	a = ts.Login("alice", "alice-pw", "phone")
	b = ts.Login("bob", "bob-pw", "laptop")
	c = ts.Login("carol", "carol-pw", "desk")
	for _, cl := range []*testserver.Client{a, b, c} {
		cl.Send("<presence/>")
	}
	return ts, a, b, c
}

// TestMUCServiceDiscovery: the service is found through disco#items of
// the host, with identity conference/text and the MUC features.
func TestMUCServiceDiscovery(t *testing.T) {
	t.Parallel()
	_, a, _, _ := mucTrio(t)
	r := a.IQ("items", "<iq type='get' id='items' to='%s'><query xmlns='%s'/></iq>", testserver.Domain, nsDiscoItems)
	found := false
	for _, it := range r.Child(nsDiscoItems, "query").ChildrenNamed(nsDiscoItems, "item") {
		found = found || it.AttrValue("jid") == mucService
	}
	if !found {
		t.Fatalf("%s not in disco#items of %s: %s", mucService, testserver.Domain, r.Raw)
	}
	r = a.IQ("info", "<iq type='get' id='info' to='%s'><query xmlns='%s'/></iq>", mucService, nsDiscoInfo)
	q := r.Child(nsDiscoInfo, "query")
	id := q.Child(nsDiscoInfo, "identity")
	if id.AttrValue("category") != "conference" || id.AttrValue("type") != "text" {
		t.Fatalf("identity: %s", r.Raw)
	}
	var feats []string
	for _, f := range q.ChildrenNamed(nsDiscoInfo, "feature") {
		feats = append(feats, f.AttrValue("var"))
	}
	for _, want := range []string{nsMUC, nsOccupantID, "urn:xmpp:mam:2", "urn:xmpp:message-moderate:1", "vcard-temp",
		"http://jabber.org/protocol/muc#self-ping-optimization"} {
		if !slices.Contains(feats, want) {
			t.Errorf("service lacks feature %s: %v", want, feats)
		}
	}
}

// TestMUCJoinMessageLeave follows §7.1-§7.4 and §7.14: creating an
// instant room, a second user joining (presence exchange with roles,
// affiliations, JIDs only for moderators in a semi-anonymous room,
// occupant ids), groupchat with stanza-id and occupant-id reflected to
// everyone, history for a later occupant, leaving.
func TestMUCJoinMessageLeave(t *testing.T) {
	t.Parallel()
	_, a, b, c := mucTrio(t)
	room := roomJID("lobby")
	createRoom(t, a, room, "Alice", nil)

	bSelf := join(t, b, room, "Bob", "")
	if it := mucItem(bSelf); it.AttrValue("affiliation") != "none" || it.AttrValue("role") != "participant" ||
		it.AttrValue("jid") != b.JID || !hasStatus(bSelf, "170") || hasStatus(bSelf, "100") {
		t.Fatalf("bob's own presence: %s", bSelf.Raw)
	}
	bobID := bSelf.Child(nsOccupantID, "occupant-id").AttrValue("id")
	if len(bobID) < 20 {
		t.Fatalf("no occupant id in %s", bSelf.Raw)
	}
	// Bob saw alice before himself, without her JID (he is no moderator).
	aliceP := b.Expect("alice's presence", fromOccupant(room, "Alice", ""))
	if it := mucItem(aliceP); it.AttrValue("role") != "moderator" || it.AttrValue("affiliation") != "owner" || it.HasAttr("jid") {
		t.Fatalf("alice as bob sees her: %s", aliceP.Raw)
	}
	// Alice, a moderator, sees bob's JID.
	bobP := a.Expect("bob's presence", fromOccupant(room, "Bob", ""))
	if mucItem(bobP).AttrValue("jid") != b.JID || bobP.Child(nsOccupantID, "occupant-id").AttrValue("id") != bobID {
		t.Fatalf("bob as alice sees him: %s", bobP.Raw)
	}

	a.Send("<message to='%s' type='groupchat' id='g1'><body>welcome</body><occupant-id xmlns='%s' id='forged'/></message>", room, nsOccupantID)
	var ids []string
	for _, cl := range []*testserver.Client{a, b} {
		m := cl.Expect("groupchat", groupchat(room, "welcome"))
		sid := m.Child(nsSID, "stanza-id")
		if m.From != room+"/Alice" || m.ID != "g1" || sid.AttrValue("by") != room || sid.AttrValue("id") == "" {
			t.Fatalf("groupchat as received: %s", m.Raw)
		}
		oids := m.Tree().ChildrenNamed(nsOccupantID, "occupant-id")
		if len(oids) != 1 || oids[0].AttrValue("id") == "forged" || oids[0].AttrValue("id") == bobID {
			t.Fatalf("occupant-id not the room's own: %s", m.Raw)
		}
		ids = append(ids, sid.AttrValue("id"))
	}
	if ids[0] != ids[1] {
		t.Fatalf("stanza-ids differ: %v", ids)
	}
	b.Send("<message to='%s' type='groupchat'><body>thanks</body></message>", room)
	a.Expect("bob's message", groupchat(room, "thanks"))
	b.Expect("bob's message reflected", groupchat(room, "thanks"))

	// Carol joins later and gets the last message only (maxstanzas=1),
	// with a delay, before the subject.
	c.Send("<presence to='%s/Carol'><x xmlns='%s'><history maxstanzas='1'/></x></presence>", room, nsMUC)
	c.Expect("carol's own presence", selfPresence(room, "Carol"))
	h := c.Expect("history", groupchat(room, "thanks"))
	if d := h.Child("urn:xmpp:delay", "delay"); d == nil || d.AttrValue("from") != room {
		t.Fatalf("history without delay: %s", h.Raw)
	}
	c.Expect("subject", subjectFrom(room))
	c.ExpectNone("older history", 200*time.Millisecond, groupchat(room, "welcome"))

	// Leaving (§7.14).
	b.Send("<presence to='%s/Bob' type='unavailable'><status>bye</status></presence>", room)
	left := b.Expect("own unavailable", fromOccupant(room, "Bob", "unavailable"))
	if !hasStatus(left, "110") {
		t.Fatalf("own unavailable without 110: %s", left.Raw)
	}
	seen := a.Expect("bob leaving", fromOccupant(room, "Bob", "unavailable"))
	if hasStatus(seen, "110") || seen.Child(wire.NSClient, "status").Text() != "bye" {
		t.Fatalf("bob leaving as alice sees it: %s", seen.Raw)
	}
	// Gone: messages from bob are refused.
	b.Send("<message to='%s' type='groupchat' id='late'><body>still here?</body></message>", room)
	e := b.Expect("error", func(s *wire.Stanza) bool { return s.Name == "message" && s.ID == "late" })
	wantCond(t, "message from a non-occupant", e, "not-acceptable")
}
