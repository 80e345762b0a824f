package e2e

import (
	"context"
	"strings"
	"testing"

	"github.com/parley-xmpp/parley/internal/testserver"
	"github.com/parley-xmpp/parley/wire"
)

const nsPrivateQ = "jabber:iq:private"

func pepItems(t *testing.T, c *testserver.Client, id, owner, node string) string {
	t.Helper()
	r := c.IQ(id, "<iq type='get' id='%s' to='%s'><pubsub xmlns='%s'><items node='%s'/></pubsub></iq>", id, owner, nsPubSub, node)
	if r.Type != "result" {
		t.Fatalf("items of %s: %s", node, r.Raw)
	}
	return string(r.Raw)
}

// TestBookmarksCompatPEP: the three places bookmarks live — private XML
// (XEP-0049), the XEP-0048 PEP node storage:bookmarks and the XEP-0402
// node urn:xmpp:bookmarks:1 — stay equal whichever a client writes, and
// clients interested in the XEP-0048 node are notified of changes made
// through private XML (XEP-0411 §3).
func TestBookmarksCompatPEP(t *testing.T) {
	t.Parallel()
	ts := testserver.Start(t)
	juliet := ts.AddUser("juliet", "pw1")
	ts.AddUser("romeo", "pw2")
	old := ts.Login("juliet", "pw1", "legacy")
	watcher := ts.Login("juliet", "pw1", "watcher")
	romeo := ts.Login("romeo", "pw2", "x")

	r := old.IQ("d", "<iq type='get' id='d' to='%s'><query xmlns='%s'/></iq>", juliet, nsDiscoInfo)
	for _, f := range []string{"urn:xmpp:bookmarks:1#compat", "urn:xmpp:bookmarks:1#compat-pep",
		"urn:xmpp:bookmarks-conversion:0", "http://jabber.org/protocol/pubsub#config-node-max"} {
		if !strings.Contains(string(r.Raw), "var='"+f+"'") {
			t.Errorf("account does not advertise %s: %s", f, r.Raw)
		}
	}
	caps, features := pepCaps("storage:bookmarks", "urn:xmpp:bookmarks:1")
	watcher.Send("<presence>%s</presence>", caps)
	answerCapsQuery(watcher, features)
	watcher.Sync()

	// Private XML → both PEP nodes, and a notification for each.
	r = old.IQ("s1", "<iq type='set' id='s1'><query xmlns='%s'><storage xmlns='storage:bookmarks'>"+
		"<conference name='Council' autojoin='true' jid='council@conference.example'><nick>Jules</nick></conference>"+
		"</storage></query></iq>", nsPrivateQ)
	if r.Type != "result" {
		t.Fatalf("private set: %s", r.Raw)
	}
	n := watcher.Expect("XEP-0048 PEP notification", isEvent("storage:bookmarks", "current"))
	if !strings.Contains(string(n.Raw), "council@conference.example") {
		t.Fatalf("notification: %s", n.Raw)
	}
	watcher.Expect("XEP-0402 notification", isEvent("urn:xmpp:bookmarks:1", "council@conference.example"))
	if raw := pepItems(t, old, "i1", juliet, "storage:bookmarks"); !strings.Contains(raw, "id='current'") || !strings.Contains(raw, "Jules") {
		t.Fatalf("XEP-0048 node after a private XML set: %s", raw)
	}

	// A XEP-0048 client publishes to the PEP node, with its publish options.
	r = old.IQ("p1", "<iq type='set' id='p1'><pubsub xmlns='%s'><publish node='storage:bookmarks'><item id='current'>"+
		"<storage xmlns='storage:bookmarks'><conference name='Orchard' autojoin='true' jid='orchard@conference.example'/></storage>"+
		"</item></publish><publish-options><x xmlns='jabber:x:data' type='submit'>"+
		"<field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>"+
		"<field var='pubsub#persist_items'><value>true</value></field>"+
		"<field var='pubsub#access_model'><value>whitelist</value></field>"+
		"</x></publish-options></pubsub></iq>", nsPubSub)
	if r.Type != "result" {
		t.Fatalf("XEP-0048 PEP publish: %s", r.Raw)
	}
	r = old.IQ("g1", "<iq type='get' id='g1'><query xmlns='%s'><storage xmlns='storage:bookmarks'/></query></iq>", nsPrivateQ)
	if raw := string(r.Raw); !strings.Contains(raw, "orchard@") || strings.Contains(raw, "council@") {
		t.Fatalf("private XML after a XEP-0048 PEP publish: %s", raw)
	}
	raw := pepItems(t, old, "i2", juliet, "urn:xmpp:bookmarks:1")
	if !strings.Contains(raw, "id='orchard@conference.example'") || strings.Contains(raw, "council@") {
		t.Fatalf("XEP-0402 node after a XEP-0048 PEP publish: %s", raw)
	}
	watcher.Expect("retraction of the dropped room", func(s *wire.Stanza) bool {
		return isRetract(s, "urn:xmpp:bookmarks:1", "council@conference.example")
	})

	// A XEP-0402 client adds a room → XEP-0048 node and private XML.
	r = old.IQ("p2", "<iq type='set' id='p2'><pubsub xmlns='%s'><publish node='urn:xmpp:bookmarks:1'>"+
		"<item id='balcony@conference.example'><conference xmlns='urn:xmpp:bookmarks:1' name='Balcony'/></item>"+
		"</publish></pubsub></iq>", nsPubSub)
	if r.Type != "result" {
		t.Fatalf("XEP-0402 publish: %s", r.Raw)
	}
	if raw := pepItems(t, old, "i3", juliet, "storage:bookmarks"); !strings.Contains(raw, "balcony@") || !strings.Contains(raw, "orchard@") {
		t.Fatalf("XEP-0048 node after a XEP-0402 publish: %s", raw)
	}
	watcher.Expect("XEP-0048 notification of the XEP-0402 publish", func(s *wire.Stanza) bool {
		return isEvent("storage:bookmarks", "current")(s) && strings.Contains(string(s.Raw), "balcony@")
	})

	// The nodes are private: romeo gets nothing.
	for _, node := range []string{"storage:bookmarks", "urn:xmpp:bookmarks:1"} {
		r := romeo.IQ("x", "<iq type='get' id='x' to='%s'><pubsub xmlns='%s'><items node='%s'/></pubsub></iq>", juliet, nsPubSub, node)
		if r.Type != "error" || strings.Contains(string(r.Raw), "conference") {
			t.Fatalf("romeo read %s: %s", node, r.Raw)
		}
	}
}

func isRetract(s *wire.Stanza, node, id string) bool {
	its := s.Child(nsPubSubEvent, "event").Child(nsPubSubEvent, "items")
	if s.Name != "message" || its == nil || its.AttrValue("node") != node {
		return false
	}
	for _, r := range its.ChildrenNamed(nsPubSubEvent, "retract") {
		if r.AttrValue("id") == id {
			return true
		}
	}
	return false
}

// TestBookmarksStoredBeforeMirroring: bookmarks in private XML that were
// never mirrored (older data, a copied store) are in both PEP nodes by the
// time the user's client can ask.
func TestBookmarksStoredBeforeMirroring(t *testing.T) {
	t.Parallel()
	ts := testserver.Start(t)
	juliet := ts.AddUser("juliet", "pw1")
	if err := ts.Store().SetPrivateXML(context.Background(), juliet, "storage:bookmarks",
		[]byte("<storage xmlns='storage:bookmarks'><conference jid='old@conference.example' name='Old'/></storage>")); err != nil {
		t.Fatal(err)
	}
	c := ts.Login("juliet", "pw1", "gajim")
	if raw := pepItems(t, c, "i1", juliet, "storage:bookmarks"); !strings.Contains(raw, "old@conference.example") {
		t.Fatalf("XEP-0048 node: %s", raw)
	}
	if raw := pepItems(t, c, "i2", juliet, "urn:xmpp:bookmarks:1"); !strings.Contains(raw, "id='old@conference.example'") {
		t.Fatalf("XEP-0402 node: %s", raw)
	}
}
