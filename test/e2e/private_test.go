package e2e

import (
	"strings"
	"testing"

	"github.com/parley-xmpp/parley/internal/testserver"
)

const nsPrivate = "jabber:iq:private"

// requirePrivate skips unless the private module is wired.
func requirePrivate(t *testing.T, c *testserver.Client, bare string) {
	t.Helper()
	r := c.IQ("disco-priv", "<iq type='get' id='disco-priv' to='%s'><query xmlns='%s'/></iq>", bare, nsDiscoInfo)
	for _, f := range r.Child(nsDiscoInfo, "query").ChildrenNamed(nsDiscoInfo, "feature") {
		if f.AttrValue("var") == nsPrivate {
			return
		}
	}
	t.Skip("private module not wired into server/modules.go")
}

func TestPrivateXMLStorage(t *testing.T) {
	t.Parallel()
	s := testserver.Start(t)
	juliet := s.AddUser("juliet", "pw1")
	s.AddUser("romeo", "pw2")
	c := s.Login("juliet", "pw1", "balcony")
	requirePrivate(t, c, juliet)

	r := c.IQ("s1", "<iq type='set' id='s1'><query xmlns='%s'><exodus xmlns='exodus:prefs'><defaultnick>Hamlet</defaultnick></exodus></query></iq>", nsPrivate)
	if r.Type != "result" {
		t.Fatalf("set: %s", r.Raw)
	}
	r = c.IQ("g1", "<iq type='get' id='g1'><query xmlns='%s'><exodus xmlns='exodus:prefs'/></query></iq>", nsPrivate)
	if r.Type != "result" || r.Child(nsPrivate, "query").Child("exodus:prefs", "exodus").ChildText("exodus:prefs", "defaultnick") != "Hamlet" {
		t.Fatalf("get: %s", r.Raw)
	}
	r = c.IQ("s2", "<iq type='set' id='s2'><query xmlns='%s'><foo xmlns='jabber:iq:private'/></query></iq>", nsPrivate)
	if r.Type != "error" || !strings.Contains(string(r.Raw), "not-acceptable") {
		t.Fatalf("reserved namespace: %s", r.Raw)
	}

	romeo := s.Login("romeo", "pw2", "garden")
	r = romeo.IQ("g2", "<iq type='get' id='g2' to='%s'><query xmlns='%s'><exodus xmlns='exodus:prefs'/></query></iq>", juliet, nsPrivate)
	if r.Type != "error" || !strings.Contains(string(r.Raw), "forbidden") || strings.Contains(string(r.Raw), "Hamlet") {
		t.Fatalf("other account get: %s", r.Raw)
	}
	r = romeo.IQ("s3", "<iq type='set' id='s3' to='%s'><query xmlns='%s'><exodus xmlns='exodus:prefs'/></query></iq>", juliet, nsPrivate)
	if r.Type != "error" || !strings.Contains(string(r.Raw), "forbidden") {
		t.Fatalf("other account set: %s", r.Raw)
	}
}

func TestBookmarksCompat(t *testing.T) {
	t.Parallel()
	s := testserver.Start(t)
	juliet := s.AddUser("juliet", "pw1")
	c := s.Login("juliet", "pw1", "balcony")
	requirePrivate(t, c, juliet)
	r := c.IQ("d", "<iq type='get' id='d' to='%s'><query xmlns='%s'/></iq>", juliet, nsDiscoInfo)
	if !strings.Contains(string(r.Raw), "urn:xmpp:bookmarks:1#compat") {
		t.Skip("bookmarks sync not wired (private Config.PEP)")
	}

	// Legacy set → PEP item.
	r = c.IQ("s1", "<iq type='set' id='s1'><query xmlns='%s'><storage xmlns='storage:bookmarks'>"+
		"<conference name='Council' autojoin='true' jid='council@conference.example'><nick>Jules</nick></conference>"+
		"</storage></query></iq>", nsPrivate)
	if r.Type != "result" {
		t.Fatalf("set bookmarks: %s", r.Raw)
	}
	r = c.IQ("i1", "<iq type='get' id='i1' to='%s'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='urn:xmpp:bookmarks:1'/></pubsub></iq>", juliet)
	if r.Type != "result" || !strings.Contains(string(r.Raw), "council@conference.example") || !strings.Contains(string(r.Raw), "Jules") {
		t.Fatalf("PEP bookmarks after legacy set: %s", r.Raw)
	}

	// PEP publish (XEP-0402 §3.2 publish options) → legacy copy.
	r = c.IQ("p1", "<iq type='set' id='p1' to='%s'><pubsub xmlns='http://jabber.org/protocol/pubsub'>"+
		"<publish node='urn:xmpp:bookmarks:1'><item id='orchard@conference.example'>"+
		"<conference xmlns='urn:xmpp:bookmarks:1' name='Orchard' autojoin='true'><nick>J</nick></conference></item></publish>"+
		"<publish-options><x xmlns='jabber:x:data' type='submit'>"+
		"<field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>"+
		"<field var='pubsub#persist_items'><value>true</value></field>"+
		"<field var='pubsub#max_items'><value>max</value></field>"+
		"<field var='pubsub#send_last_published_item'><value>never</value></field>"+
		"<field var='pubsub#access_model'><value>whitelist</value></field>"+
		"</x></publish-options></pubsub></iq>", juliet)
	if r.Type != "result" {
		t.Fatalf("publish bookmark: %s", r.Raw)
	}
	r = c.IQ("g1", "<iq type='get' id='g1'><query xmlns='%s'><storage xmlns='storage:bookmarks'/></query></iq>", nsPrivate)
	raw := string(r.Raw)
	if r.Type != "result" || !strings.Contains(raw, "orchard@conference.example") || !strings.Contains(raw, "council@conference.example") {
		t.Fatalf("legacy bookmarks after PEP publish: %s", raw)
	}

	// PEP retract → removed from the legacy copy.
	r = c.IQ("r1", "<iq type='set' id='r1' to='%s'><pubsub xmlns='http://jabber.org/protocol/pubsub'>"+
		"<retract node='urn:xmpp:bookmarks:1'><item id='council@conference.example'/></retract></pubsub></iq>", juliet)
	if r.Type != "result" {
		t.Fatalf("retract: %s", r.Raw)
	}
	r = c.IQ("g2", "<iq type='get' id='g2'><query xmlns='%s'><storage xmlns='storage:bookmarks'/></query></iq>", nsPrivate)
	if raw := string(r.Raw); strings.Contains(raw, "council@") || !strings.Contains(raw, "orchard@") {
		t.Fatalf("legacy bookmarks after retract: %s", raw)
	}
}
