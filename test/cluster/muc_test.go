package cluster

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/internal/testserver"
	"github.com/parley-xmpp/parley/server"
	"github.com/parley-xmpp/parley/wire"
)

const (
	nsMUC      = "http://jabber.org/protocol/muc"
	nsMUCUser  = nsMUC + "#user"
	nsMUCAdmin = nsMUC + "#admin"
	nsMUCOwner = nsMUC + "#owner"
	mucHost    = "conference.localhost"
)

// mucCodes returns the muc#user status codes of a presence.
func mucCodes(st *wire.Stanza) []string {
	var out []string
	for _, s := range st.Child(nsMUCUser, "x").ChildrenNamed(nsMUCUser, "status") {
		out = append(out, s.AttrValue("code"))
	}
	return out
}

// occupantPresence matches available (typ "") or unavailable presence of
// room/nick.
func occupantPresence(room, nick, typ string) func(*wire.Stanza) bool {
	return func(s *wire.Stanza) bool { return s.Name == "presence" && s.From == room+"/"+nick && s.Type == typ }
}

// roomMessage matches a groupchat message with body from room/nick.
func roomMessage(room, nick, body string) func(*wire.Stanza) bool {
	return func(s *wire.Stanza) bool {
		return s.Name == "message" && s.Type == "groupchat" && s.From == room+"/"+nick &&
			s.Child(wire.NSClient, "body").Text() == body
	}
}

// enter joins room as nick and waits for the own presence (status 110)
// and the subject that ends the join; it returns the own presence.
func enter(t *testing.T, c *testserver.Client, room, nick string) *wire.Stanza {
	t.Helper()
	c.Send("<presence to='%s/%s'><x xmlns='%s'><history maxstanzas='0'/></x></presence>", room, nick, nsMUC)
	self := c.Expect("own presence in "+room, func(s *wire.Stanza) bool {
		return s.Name == "presence" && s.From == room+"/"+nick && s.Type == "" && slices.Contains(mucCodes(s), "110")
	})
	c.Expect("subject of "+room, func(s *wire.Stanza) bool {
		return s.Name == "message" && s.From != "" && strings.HasPrefix(s.From, room) && s.Child(wire.NSClient, "subject") != nil
	})
	return self
}

// createPersistentRoom creates room with c as owner (nick) and configures
// it persistent and public.
func createPersistentRoom(t *testing.T, c *testserver.Client, room, nick string) {
	t.Helper()
	self := enter(t, c, room, nick)
	if !slices.Contains(mucCodes(self), "201") {
		t.Fatalf("%s existed already: %s", room, self.Raw)
	}
	r := c.IQ("cfg", "<iq type='set' id='cfg' to='%s'><query xmlns='%s'><x xmlns='jabber:x:data' type='submit'>"+
		"<field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field>"+
		"<field var='muc#roomconfig_persistentroom'><value>1</value></field>"+
		"<field var='muc#roomconfig_publicroom'><value>1</value></field>"+
		"</x></query></iq>", room, nsMUCOwner)
	if r.Type != "result" {
		t.Fatalf("configuring %s: %s", room, r.Raw)
	}
}

// selfPing sends a XEP-0410 self-ping and returns the answer.
func selfPing(c *testserver.Client, room, nick, id string) *wire.Stanza {
	return c.IQ(id, "<iq type='get' id='%s' to='%s/%s'><ping xmlns='urn:xmpp:ping'/></iq>", id, room, nick)
}

// TestMUCAcrossNodes: a room runs on the node where it was first
// addressed; occupants on two other nodes join, see each other's
// presence, chat, send private messages and IQs, and are moderated from
// a node that does not run the room.
func TestMUCAcrossNodes(t *testing.T) {
	nodes := testserver.StartCluster(t, 3)
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]
	alice := n1.AddUser("alice", "pw")
	bob := n1.AddUser("bob", "pw")
	n1.AddUser("carol", "pw")
	a := n1.Login("alice", "pw", "a")
	b := n2.Login("bob", "pw", "b")
	c := n3.Login("carol", "pw", "c")
	room := "lobby@" + mucHost

	createPersistentRoom(t, a, room, "Alice")
	for i, n := range nodes {
		if h := n.Cluster().LeaseHolder(room); h != "n1" {
			// The lease write reaches the other nodes' copies through
			// their watch: wait for it.
			deadline := time.Now().Add(5 * time.Second)
			for h != "n1" && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
				h = n.Cluster().LeaseHolder(room)
			}
			if h != "n1" {
				t.Fatalf("node %d sees the room on %q, want n1", i+1, h)
			}
		}
	}

	enter(t, b, room, "Bob")
	a.Expect("bob's presence (n2) on n1", occupantPresence(room, "Bob", ""))
	enter(t, c, room, "Carol")
	for _, x := range []*testserver.Client{a, b} {
		x.Expect("carol's presence (n3)", occupantPresence(room, "Carol", ""))
	}
	// The room ran only on n1.
	for _, n := range []*testserver.Server{n2, n3} {
		if slices.Contains(n.Cluster().HeldEntities(), room) {
			t.Fatalf("%s holds the room too", n.Cluster().Node())
		}
	}

	// Messages from every node reach every occupant, in order.
	for i, x := range []*testserver.Client{a, b, c} {
		nick := []string{"Alice", "Bob", "Carol"}[i]
		for j := range 3 {
			x.Send("<message to='%s' type='groupchat'><body>%s-%d</body></message>", room, nick, j)
		}
		for _, y := range []*testserver.Client{a, b, c} {
			for j := range 3 {
				y.Expect(fmt.Sprintf("%s-%d", nick, j), roomMessage(room, nick, fmt.Sprintf("%s-%d", nick, j)))
			}
		}
	}

	// A private message from n3 to the occupant on n2.
	c.Send("<message to='%s/Bob' type='chat'><body>psst</body><x xmlns='%s'/></message>", room, nsMUCUser)
	b.Expect("private message", func(s *wire.Stanza) bool {
		return s.Name == "message" && s.From == room+"/Carol" && s.Child(wire.NSClient, "body").Text() == "psst"
	})

	// IQs from other nodes: disco#info of the room, a self-ping, a
	// version query to an occupant on a third node and its answer back.
	if r := c.IQ("di", "<iq type='get' id='di' to='%s'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>", room); r.Type != "result" ||
		!strings.Contains(string(r.Raw), "muc_persistent") {
		t.Fatalf("disco#info from n3: %s", r.Raw)
	}
	if r := selfPing(b, room, "Bob", "sp1"); r.Type != "result" {
		t.Fatalf("self-ping from n2: %s", r.Raw)
	}
	b.Send("<iq type='get' id='v1' to='%s/Carol'><query xmlns='jabber:iq:version'/></iq>", room)
	q := c.Expect("version query through the room", func(s *wire.Stanza) bool { return s.Name == "iq" && s.Type == "get" })
	if q.From != room+"/Bob" {
		t.Fatalf("query from %s", q.From)
	}
	c.Send("<iq type='result' id='%s' to='%s'><query xmlns='jabber:iq:version'><name>x</name></query></iq>", q.ID, q.From)
	if r := b.Expect("version answer", func(s *wire.Stanza) bool { return s.Name == "iq" && s.ID == "v1" }); r.Type != "result" || r.From != room+"/Carol" {
		t.Fatalf("answer: %s", r.Raw)
	}

	// Moderation from n2: the owner (n1) makes bob an admin, bob kicks
	// carol.
	if r := a.IQ("adm", "<iq type='set' id='adm' to='%s'><query xmlns='%s'><item jid='%s' affiliation='admin'/></query></iq>",
		room, nsMUCAdmin, bob); r.Type != "result" {
		t.Fatalf("admin: %s", r.Raw)
	}
	b.Expect("bob's new affiliation", occupantPresence(room, "Bob", ""))
	if r := b.IQ("kick", "<iq type='set' id='kick' to='%s'><query xmlns='%s'><item nick='Carol' role='none'/></query></iq>",
		room, nsMUCAdmin); r.Type != "result" {
		t.Fatalf("kick from n2: %s", r.Raw)
	}
	k := c.Expect("carol kicked", occupantPresence(room, "Carol", "unavailable"))
	if !slices.Contains(mucCodes(k), "307") {
		t.Fatalf("kick presence without 307: %s", k.Raw)
	}
	a.Expect("carol left (seen on n1)", occupantPresence(room, "Carol", "unavailable"))
	// carol is no occupant any more: her self-ping says so.
	if r := selfPing(c, room, "Carol", "sp2"); r.Type != "error" || stanzaError(r) != "not-acceptable" {
		t.Fatalf("self-ping after the kick: %s", r.Raw)
	}

	// Bob's stream ends on n2: the room (n1) learns it through his
	// directed presence, everyone sees him leave.
	b.Close()
	a.Expect("bob gone", occupantPresence(room, "Bob", "unavailable"))
	_ = alice
}

// TestMUCOwnerNodeKilled: the node running a persistent room is killed
// with SIGKILL. Another node takes the room over (its lease) once the
// owner is declared dead and loads it from PostgreSQL; the occupants on
// the surviving nodes learn through a XEP-0410 self-ping that they are no
// longer joined (not-acceptable), join again, and the room works: its
// configuration and affiliations survived, the occupant of the dead node
// is not in it.
func TestMUCOwnerNodeKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("kills a node and waits for its detection")
	}
	spec := testserver.NewClusterSpec(t)
	n1 := testserver.Start(t, spec.Node("n1", "127.0.0.2"))
	victim := startProc(t, spec, "n2", "127.0.0.3", "heartbeat: 200ms", "dead_after: 2s")
	n3 := testserver.Start(t, spec.Node("n3", "127.0.0.4"))
	for _, u := range []string{"alice", "bob", "carol", "dave"} {
		n1.AddUser(u, "pw")
	}
	room := "ops@" + mucHost

	// The room is created on the victim, which runs it from then on.
	a := victim.login(t, "alice", "pw", "a")
	createPersistentRoom(t, a, room, "Alice")
	d := victim.login(t, "dave", "pw", "d")
	enter(t, d, room, "Dave")
	b := n1.Login("bob", "pw", "b")
	enter(t, b, room, "Bob")
	b.Expect("dave's presence at the first join", occupantPresence(room, "Dave", ""))
	c := n3.Login("carol", "pw", "c")
	enter(t, c, room, "Carol")
	if h := n1.Cluster().LeaseHolder(room); h != "n2" {
		t.Fatalf("room runs on %q, want n2", h)
	}
	b.Send("<message to='%s' type='groupchat'><body>before</body></message>", room)
	c.Expect("message before the kill", roomMessage(room, "Bob", "before"))

	victim.kill()
	killed := time.Now()

	// Until the victim is declared dead the room cannot answer; then the
	// node that takes it over answers bob's self-ping: not joined.
	// A ping forwarded to the victim in its last moments gets no answer
	// (the bus is at-most-once): as a client would, ping again after a
	// while.
	var ping *wire.Stanza
	for i := 0; ; i++ {
		id := fmt.Sprint("p", i)
		b.Send("<iq type='get' id='%s' to='%s/Bob'><ping xmlns='urn:xmpp:ping'/></iq>", id, room)
		ping, _ = b.Wait(time.Second, func(s *wire.Stanza) bool { return s.Name == "iq" && s.ID == id })
		if ping == nil {
			ping = wire.MustParse("<iq type='timeout'/>")
		}
		if ping.Type == "error" && stanzaError(ping) == "not-acceptable" {
			break
		}
		if ping.Type == "result" && time.Since(killed) > 500*time.Millisecond {
			// The result may come from the victim before it died; later
			// ones cannot.
			t.Fatalf("self-ping answered as joined %s after the kill", time.Since(killed))
		}
		if time.Since(killed) > 15*time.Second {
			t.Fatalf("the room was not taken over within 15s; last answer %s", ping.Raw)
		}
		time.Sleep(100 * time.Millisecond)
	}
	detected := time.Since(killed)
	newOwner := n1.Cluster().LeaseHolder(room)
	if newOwner != "n1" && newOwner != "n3" {
		t.Fatalf("room taken over by %q", newOwner)
	}

	// Bob and Carol join again (their clients would after the self-ping).
	self := enter(t, b, room, "Bob")
	if slices.Contains(mucCodes(self), "201") {
		t.Fatalf("the room was created anew instead of loaded from storage: %s", self.Raw)
	}
	t.Logf("owner killed: room taken over by %s and joinable again %s after SIGKILL",
		newOwner, time.Since(killed).Round(10*time.Millisecond))
	if r := selfPing(c, room, "Carol", "pc"); r.Type != "error" || stanzaError(r) != "not-acceptable" {
		t.Fatalf("carol's self-ping: %s", r.Raw)
	}
	enter(t, c, room, "Carol")
	b.Expect("carol back", occupantPresence(room, "Carol", ""))
	b.ExpectNone("dave (on the dead node) in the room", 300*time.Millisecond, occupantPresence(room, "Dave", ""))

	// The room works again across the two surviving nodes.
	c.Send("<message to='%s' type='groupchat'><body>after</body></message>", room)
	for _, x := range []*testserver.Client{b, c} {
		x.Expect("message after the take-over", roomMessage(room, "Carol", "after"))
	}
	// Stored state: still persistent, alice is still its owner.
	if r := c.IQ("di", "<iq type='get' id='di' to='%s'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>", room); !strings.Contains(string(r.Raw), "muc_persistent") {
		t.Fatalf("disco#info after the take-over: %s", r.Raw)
	}
	a2 := n3.Login("alice", "pw", "a2")
	if it := enter(t, a2, room, "Alice").Child(nsMUCUser, "x").Child(nsMUCUser, "item"); it.AttrValue("affiliation") != "owner" {
		t.Fatalf("alice's affiliation after the take-over: %s", it.AttrValue("affiliation"))
	}
	t.Logf("detected through self-ping %s after SIGKILL", detected.Round(10*time.Millisecond))
}

// TestMUCMentionPushAcrossNodes: carol's phone (stream management, push
// enabled) joins a room that runs on n1 from n2, then loses its network:
// her session hibernates on n2. A mention of her nick in the room (on n1)
// is queued for her on n2, which tells the room's node, and her push app
// server gets a notification; a message without a mention does not
// notify her.
func TestMUCMentionPushAcrossNodes(t *testing.T) {
	nodes := testserver.StartCluster(t, 2, func(c *server.Config) { c.Push.Coalesce = 0 })
	n1, n2 := nodes[0], nodes[1]
	n1.AddUser("alice", "pw")
	n1.AddUser("carol", "pw")
	n1.AddUser("pushsvc", "pw")
	a := n1.Login("alice", "pw", "a")
	app := n1.Login("pushsvc", "pw", "app")
	room := "team@" + mucHost
	createPersistentRoom(t, a, room, "Alice")

	c, _ := enableSM(t, n2, "carol", "pw", "phone")
	c.Send("<presence/>")
	r := c.IQ("push", "<iq type='set' id='push'><enable xmlns='urn:xmpp:push:0' jid='%s' node='carol-node'/></iq>", app.JID)
	if r.Type != "result" {
		t.Fatalf("enable push: %s", r.Raw)
	}
	enter(t, c, room, "Carol")
	a.Expect("carol joined from n2", occupantPresence(room, "Carol", ""))
	c.Drop()

	isPush := func(s *wire.Stanza) bool {
		return s.Name == "iq" && s.Type == "set" && s.From == "carol@localhost" && s.Child("http://jabber.org/protocol/pubsub", "pubsub") != nil
	}
	// Mention her until n2 noticed the drop and queued (bounded).
	var got *wire.Stanza
	for i := 0; i < 20 && got == nil; i++ {
		a.Send("<message to='%s' type='groupchat'><body>Carol, the build (%d)</body></message>", room, i)
		got, _ = app.Wait(500*time.Millisecond, isPush)
	}
	if got == nil {
		t.Fatal("no push for a mention of an occupant hibernated on another node")
	}
	app.Send("<iq type='result' id='%s' to='%s'/>", got.ID, got.From)
	a.Send("<message to='%s' type='groupchat'><body>nothing for anyone</body></message>", room)
	if st, ok := app.Wait(time.Second, isPush); ok {
		t.Fatalf("a message without mention notified carol: %s", st.Raw)
	}
}
