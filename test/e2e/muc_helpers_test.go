package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/parley-xmpp/parley/internal/testserver"
	"github.com/parley-xmpp/parley/wire"
)

const (
	nsMUC        = "http://jabber.org/protocol/muc"
	nsMUCUser    = nsMUC + "#user"
	nsMUCAdmin   = nsMUC + "#admin"
	nsMUCOwner   = nsMUC + "#owner"
	nsOccupantID = "urn:xmpp:occupant-id:0"
	nsDiscoItems = "http://jabber.org/protocol/disco#items"
	mucService   = "conference." + testserver.Domain
)

// roomJID is a room on the test server's MUC service.
func roomJID(name string) string { return name + "@" + mucService }

// statuses returns the muc#user status codes of a stanza.
func statuses(st *wire.Stanza) []string {
	var out []string
	for _, x := range st.Tree().ChildrenNamed(nsMUCUser, "x") {
		for _, s := range x.ChildrenNamed(nsMUCUser, "status") {
			out = append(out, s.AttrValue("code"))
		}
	}
	return out
}

func hasStatus(st *wire.Stanza, code string) bool { return slices.Contains(statuses(st), code) }

// mucItem returns the muc#user <item/> of a presence.
func mucItem(st *wire.Stanza) *wire.Element {
	return st.Child(nsMUCUser, "x").Child(nsMUCUser, "item")
}

// fromOccupant matches a presence of type typ from room/nick.
func fromOccupant(room, nick, typ string) func(*wire.Stanza) bool {
	return func(s *wire.Stanza) bool {
		return s.Name == "presence" && s.From == room+"/"+nick && s.Type == typ
	}
}

// selfPresence matches the joining session's own presence (status 110).
func selfPresence(room, nick string) func(*wire.Stanza) bool {
	return func(s *wire.Stanza) bool {
		return s.Name == "presence" && s.From == room+"/"+nick && s.Type == "" && hasStatus(s, "110")
	}
}

// subjectFrom matches the subject message that ends a join.
func subjectFrom(room string) func(*wire.Stanza) bool {
	return func(s *wire.Stanza) bool {
		return s.Name == "message" && strings.HasPrefix(s.From, room) && s.Child(wire.NSClient, "subject") != nil &&
			s.Child(wire.NSClient, "body") == nil
	}
}

// groupchat matches a groupchat message with a body from room.
func groupchat(room, body string) func(*wire.Stanza) bool {
	return func(s *wire.Stanza) bool {
		return s.Name == "message" && s.Type == "groupchat" && strings.HasPrefix(s.From, room) &&
			s.Child(wire.NSClient, "body").Text() == body
	}
}

// join enters a room that exists, with extra inside <x xmlns='…muc'/>,
// and waits for the own presence and the subject.
func join(t testing.TB, c *testserver.Client, room, nick, extra string) *wire.Stanza {
	t.Helper()
	c.Send("<presence to='%s/%s'><x xmlns='%s'>%s</x></presence>", room, nick, nsMUC, extra)
	self := c.Expect("own presence in "+room, selfPresence(room, nick))
	c.Expect("subject of "+room, subjectFrom(room))
	return self
}

// joinError sends a join and returns the error presence.
func joinError(t testing.TB, c *testserver.Client, room, nick, extra string) *wire.Stanza {
	t.Helper()
	c.Send("<presence to='%s/%s'><x xmlns='%s'>%s</x></presence>", room, nick, nsMUC, extra)
	st := c.Expect("join error from "+room, fromOccupant(room, nick, "error"))
	// As XEP-0045's examples (§7.2.6-§7.2.11): slixmpp's join_muc_wait
	// recognises a refused join only by the <x/>.
	if x := st.Child(nsMUC, "x"); x == nil || len(x.Elements()) != 0 || st.Child(wire.NSClient, "error").AttrValue("by") != room {
		t.Fatalf("join error without an empty <x xmlns='%s'/> or by='%s': %s", nsMUC, room, st.Raw)
	}
	return st
}

// createRoom creates a room as an instant room (§10.1.2) with the form
// fields given (var → value), and waits until it is unlocked.
func createRoom(t testing.TB, c *testserver.Client, room, nick string, fields map[string]string) {
	t.Helper()
	c.Send("<presence to='%s/%s'><x xmlns='%s'/></presence>", room, nick, nsMUC)
	self := c.Expect("own presence in the new room", selfPresence(room, nick))
	if !hasStatus(self, "201") {
		t.Fatalf("new room without status 201: %s", self.Raw)
	}
	if it := mucItem(self); it.AttrValue("affiliation") != "owner" || it.AttrValue("role") != "moderator" {
		t.Fatalf("creator is not a moderating owner: %s", self.Raw)
	}
	configure(t, c, room, fields)
}

// configure submits the room configuration form.
func configure(t testing.TB, c *testserver.Client, room string, fields map[string]string) {
	t.Helper()
	var b strings.Builder
	b.WriteString("<field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field>")
	for k, v := range fields {
		b.WriteString(fmt.Sprintf("<field var='%s'><value>%s</value></field>", k, v))
	}
	id := "cfg" + fmt.Sprint(len(fields))
	r := c.IQ(id, "<iq type='set' id='%s' to='%s'><query xmlns='%s'><x xmlns='jabber:x:data' type='submit'>%s</x></query></iq>",
		id, room, nsMUCOwner, b.String())
	if r.Type != "result" {
		t.Fatalf("configuring %s: %s", room, r.Raw)
	}
}

// setAffiliation changes an affiliation through muc#admin.
func setAffiliation(t *testing.T, c *testserver.Client, room, who, aff string) *wire.Stanza {
	t.Helper()
	id := "aff-" + aff
	return c.IQ(id, "<iq type='set' id='%s' to='%s'><query xmlns='%s'><item jid='%s' affiliation='%s'/></query></iq>",
		id, room, nsMUCAdmin, who, aff)
}

// errCond returns the defined condition of an error stanza.
func errCond(st *wire.Stanza) string {
	e := st.Child(wire.NSClient, "error")
	if e == nil {
		return ""
	}
	for _, c := range e.Elements() {
		if c.Name.Space == "urn:ietf:params:xml:ns:xmpp-stanzas" && c.Name.Local != "text" {
			return c.Name.Local
		}
	}
	return ""
}

func wantCond(t *testing.T, what string, st *wire.Stanza, cond string) {
	t.Helper()
	if st.Type != "error" || errCond(st) != cond {
		t.Fatalf("%s: want error %s, got %s", what, cond, st.Raw)
	}
}

// formField returns the values of a field of the owner's configuration
// form in an iq result.
func formField(iq *wire.Stanza, name string) []string {
	var out []string
	x := iq.Child(nsMUCOwner, "query").Child("jabber:x:data", "x")
	for _, f := range x.ChildrenNamed("jabber:x:data", "field") {
		if f.AttrValue("var") == name {
			for _, v := range f.ChildrenNamed("jabber:x:data", "value") {
				out = append(out, v.Text())
			}
		}
	}
	return out
}
