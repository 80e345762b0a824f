package e2e

import (
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/internal/testserver"
	"github.com/parley-xmpp/parley/wire"
)

const (
	nsPubSubOwner = "http://jabber.org/protocol/pubsub#owner"
	nsPubSubEvent = "http://jabber.org/protocol/pubsub#event"
	nsDiscoInfo   = "http://jabber.org/protocol/disco#info"
	nsAxolotl     = "eu.siacs.conversations.axolotl"
	nodeDevices   = "eu.siacs.conversations.axolotl.devicelist"
)

// requirePEP checks that the account advertises PEP.
func requirePEP(t *testing.T, c *testserver.Client, bare string) {
	t.Helper()
	r := c.IQ("disco-pep", "<iq type='get' id='disco-pep' to='%s'><query xmlns='%s'/></iq>", bare, nsDiscoInfo)
	q := r.Child(nsDiscoInfo, "query")
	for _, id := range q.ChildrenNamed(nsDiscoInfo, "identity") {
		if id.AttrValue("category") == "pubsub" && id.AttrValue("type") == "pep" {
			return
		}
	}
	t.Fatalf("disco#info of %s lacks the pubsub/pep identity (is the pep module wired?): %s", bare, r.Raw)
}

// pepCaps returns a client's XEP-0115 <c/> element and its disco#info
// features, asking for notifications of the given nodes.
func pepCaps(notify ...string) (c string, features []string) {
	features = []string{nsDiscoInfo, "eu.siacs.conversations.axolotl"}
	for _, n := range notify {
		features = append(features, n+"+notify")
	}
	slices.Sort(features)
	s := "client/phone//Test<"
	for _, f := range features {
		s += f + "<"
	}
	sum := sha1.Sum([]byte(s))
	ver := base64.StdEncoding.EncodeToString(sum[:])
	return fmt.Sprintf("<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='https://parley.test' ver='%s'/>", ver), features
}

// answerCapsQuery waits for the server's disco#info query to c and
// answers it with the features.
func answerCapsQuery(c *testserver.Client, features []string) { answerCapsQueryFrom(c, "", features) }

// answerCapsQueryFrom is answerCapsQuery for the query from a given JID
// ("": any), such as a remote server asking for one of its users.
func answerCapsQueryFrom(c *testserver.Client, from string, features []string) {
	q := c.Expect("caps disco#info query from "+from, func(s *wire.Stanza) bool {
		return s.Name == "iq" && s.Type == "get" && (from == "" || s.From == from) && s.Child(nsDiscoInfo, "query") != nil
	})
	var b strings.Builder
	b.WriteString("<identity category='client' type='phone' name='Test'/>")
	for _, f := range features {
		fmt.Fprintf(&b, "<feature var='%s'/>", f)
	}
	c.Send("<iq type='result' id='%s' to='%s'><query xmlns='%s' node='%s'>%s</query></iq>",
		wire.EscapeAttr(q.ID), wire.EscapeAttr(q.From), nsDiscoInfo,
		wire.EscapeAttr(q.Child(nsDiscoInfo, "query").AttrValue("node")), b.String())
}

func isEvent(node, itemID string) func(*wire.Stanza) bool {
	return func(s *wire.Stanza) bool {
		its := s.Child(nsPubSubEvent, "event").Child(nsPubSubEvent, "items")
		if s.Name != "message" || its == nil || its.AttrValue("node") != node {
			return false
		}
		for _, it := range its.ChildrenNamed(nsPubSubEvent, "item") {
			if itemID == "" || it.AttrValue("id") == itemID {
				return true
			}
		}
		return false
	}
}

func publishOpen(node, itemID, payload string) string {
	return "<pubsub xmlns='" + nsPubSub + "'><publish node='" + node + "'><item id='" + itemID + "'>" + payload + "</item></publish>" +
		"<publish-options><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>" +
		"<field var='pubsub#access_model'><value>open</value></field></x></publish-options></pubsub>"
}

func deviceList(ids ...string) string {
	s := "<list xmlns='" + nsAxolotl + "'>"
	for _, id := range ids {
		s += "<device id='" + id + "'/>"
	}
	return s + "</list>"
}

// encryptedPart returns the <encrypted …>…</encrypted> bytes of a raw
// message.
func encryptedPart(raw string) string {
	i := strings.Index(raw, "<encrypted")
	j := strings.Index(raw, "</encrypted>")
	if i < 0 || j < i {
		return ""
	}
	return raw[i : j+len("</encrypted>")]
}

// TestOMEMOSetupAsConversations: device list and bundle publishing with
// publish-options, bundle fetch by a non-contact, device-list notification
// to a contact after mutual subscription and caps, then encrypted chat
// delivered byte for byte.
func TestOMEMOSetupAsConversations(t *testing.T) {
	t.Parallel()
	ts := testserver.Start(t)
	alice := ts.AddUser("alice", "pw1")
	bob := ts.AddUser("bob", "pw2")
	ts.AddUser("eve", "pw3")
	a := ts.Login("alice", "pw1", "conversations")
	requirePEP(t, a, alice)

	capsA, featA := pepCaps(nodeDevices)
	a.Send("<presence>%s</presence>", capsA)
	answerCapsQuery(a, featA)

	r := a.IQ("dl1", "<iq type='set' id='dl1'>%s</iq>", publishOpen(nodeDevices, "current", deviceList("1111")))
	if r.Type != "result" {
		t.Fatalf("publish device list: %s", r.Raw)
	}
	a.Expect("own device-list notification", isEvent(nodeDevices, "current"))
	bundle := "<bundle xmlns='" + nsAxolotl + "'><signedPreKeyPublic signedPreKeyId='1'>BASE64SPK=</signedPreKeyPublic>" +
		"<signedPreKeySignature>BASE64SIG=</signedPreKeySignature><identityKey>BASE64IK=</identityKey>" +
		"<prekeys><preKeyPublic preKeyId='1'>PK1=</preKeyPublic><preKeyPublic preKeyId='2'>PK2=</preKeyPublic></prekeys></bundle>"
	r = a.IQ("b1", "<iq type='set' id='b1'>%s</iq>", publishOpen(nodeAxolotlBundles("1111"), "current", bundle))
	if r.Type != "result" {
		t.Fatalf("publish bundle: %s", r.Raw)
	}

	// A non-contact fetches the bundle and the device list.
	e := ts.Login("eve", "pw3", "phone")
	r = e.IQ("f1", "<iq type='get' id='f1' to='%s'><pubsub xmlns='%s'><items node='%s' max_items='1'/></pubsub></iq>", alice, nsPubSub, nodeAxolotlBundles("1111"))
	if r.Type != "result" || !strings.Contains(string(r.Raw), "<identityKey>BASE64IK=</identityKey>") {
		t.Fatalf("stranger bundle fetch: %s", r.Raw)
	}
	r = e.IQ("f2", "<iq type='get' id='f2' to='%s'><pubsub xmlns='%s'><items node='%s'/></pubsub></iq>", alice, nsPubSub, nodeDevices)
	if r.Type != "result" || !strings.Contains(string(r.Raw), "<device id='1111'/>") {
		t.Fatalf("stranger device-list fetch: %s", r.Raw)
	}

	// Bob becomes a contact, comes online with caps and learns the list.
	b := ts.Login("bob", "pw2", "conversations")
	capsB, featB := pepCaps(nodeDevices, "urn:xmpp:avatar:metadata") // differs from alice's: not cached
	b.Send("<presence>%s</presence>", capsB)
	subscribe(t, a, b, alice, bob)
	answerCapsQuery(b, featB)
	b.Expect("device list of alice", func(s *wire.Stanza) bool { return isEvent(nodeDevices, "current")(s) && s.From == alice })

	// A new device is announced to the contact.
	r = a.IQ("dl2", "<iq type='set' id='dl2'>%s</iq>", publishOpen(nodeDevices, "current", deviceList("1111", "2222")))
	if r.Type != "result" {
		t.Fatalf("republish device list: %s", r.Raw)
	}
	n := b.Expect("device-list update", func(s *wire.Stanza) bool {
		return isEvent(nodeDevices, "current")(s) && strings.Contains(string(s.Raw), "<device id='2222'/>")
	})
	if n.From != alice || n.Type != "headline" {
		t.Fatalf("notification: %s", n.Raw)
	}

	// Encrypted messages both ways arrive byte for byte.
	for i, pair := range []struct {
		from, to *testserver.Client
		toBare   string
	}{{a, b, bob}, {b, a, alice}} {
		enc := fmt.Sprintf("<encrypted xmlns='%s'><header sid='%d'><key rid='31415' prekey='true'>MwohBQ+Lk/BT+i6xRo0=/kZ</key>"+
			"<iv>aGVsbG8gd29ybGQ=</iv></header><payload>ZXhhbXBsZSBwYXlsb2Fk+/==</payload></encrypted>", nsAxolotl, 1111+i)
		body := fmt.Sprintf("fallback %d", i)
		pair.from.Send("<message to='%s' type='chat' id='enc%d'>%s<body>%s</body><store xmlns='urn:xmpp:hints'/></message>", pair.toBare, i, enc, body)
		m := pair.to.Expect("encrypted message", isMsg(body))
		if got := encryptedPart(string(m.Raw)); got != enc {
			t.Fatalf("encrypted payload changed:\n got %s\nwant %s", got, enc)
		}
	}
}

func nodeAxolotlBundles(id string) string { return "eu.siacs.conversations.axolotl.bundles:" + id }

// TestPEPAccessModels: a stranger cannot read presence, roster or
// whitelist nodes; a contact reads the presence node; when the owner opens
// the node the stranger can read it.
func TestPEPAccessModels(t *testing.T) {
	t.Parallel()
	ts := testserver.Start(t)
	alice := ts.AddUser("alice", "pw1")
	bob := ts.AddUser("bob", "pw2")
	ts.AddUser("eve", "pw3")
	a := ts.Login("alice", "pw1", "phone")
	b := ts.Login("bob", "pw2", "pc")
	e := ts.Login("eve", "pw3", "x")
	requirePEP(t, a, alice)
	a.Send("<presence/>")
	b.Send("<presence/>")
	subscribe(t, a, b, alice, bob)

	form := func(fields string) string {
		return "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#node_config</value></field>" + fields + "</x>"
	}
	for _, n := range []struct{ node, fields string }{
		{"urn:example:presence", ""},
		{"urn:example:roster", "<field var='pubsub#access_model'><value>roster</value></field><field var='pubsub#roster_groups_allowed'><value>Friends</value></field>"},
		{"urn:example:whitelist", "<field var='pubsub#access_model'><value>whitelist</value></field>"},
	} {
		r := a.IQ("c-"+n.node, "<iq type='set' id='c-%s'><pubsub xmlns='%s'><create node='%s'/><configure>%s</configure></pubsub></iq>", n.node, nsPubSub, n.node, form(n.fields))
		if r.Type != "result" {
			t.Fatalf("create %s: %s", n.node, r.Raw)
		}
		r = a.IQ("p-"+n.node, "<iq type='set' id='p-%s'><pubsub xmlns='%s'><publish node='%s'><item id='1'><secret xmlns='urn:example'>42</secret></item></publish></pubsub></iq>", n.node, nsPubSub, n.node)
		if r.Type != "result" {
			t.Fatalf("publish %s: %s", n.node, r.Raw)
		}
		r = e.IQ("e-"+n.node, "<iq type='get' id='e-%s' to='%s'><pubsub xmlns='%s'><items node='%s'/></pubsub></iq>", n.node, alice, nsPubSub, n.node)
		if r.Type != "error" || strings.Contains(string(r.Raw), "42") {
			t.Fatalf("stranger read %s: %s", n.node, r.Raw)
		}
	}
	get := func(c *testserver.Client, id, node string) *wire.Stanza {
		return c.IQ(id, "<iq type='get' id='%s' to='%s'><pubsub xmlns='%s'><items node='%s'/></pubsub></iq>", id, alice, nsPubSub, node)
	}
	if r := get(b, "b1", "urn:example:presence"); r.Type != "result" || !strings.Contains(string(r.Raw), "42") {
		t.Fatalf("contact read of the presence node: %s", r.Raw)
	}
	if r := get(b, "b2", "urn:example:roster"); r.Type != "error" {
		t.Fatalf("contact outside the allowed group read the roster node: %s", r.Raw)
	}
	// The stranger does not even see the nodes.
	r := e.IQ("items", "<iq type='get' id='items' to='%s'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>", alice)
	if strings.Contains(string(r.Raw), "urn:example") {
		t.Fatalf("stranger sees nodes: %s", r.Raw)
	}

	r = a.IQ("open", "<iq type='set' id='open'><pubsub xmlns='%s'><configure node='urn:example:whitelist'>%s</configure></pubsub></iq>",
		nsPubSubOwner, form("<field var='pubsub#access_model'><value>open</value></field>"))
	if r.Type != "result" {
		t.Fatalf("configure: %s", r.Raw)
	}
	if r := get(e, "e-open", "urn:example:whitelist"); r.Type != "result" || !strings.Contains(string(r.Raw), "42") {
		t.Fatalf("stranger read of the opened node: %s", r.Raw)
	}
	// And closed again.
	r = a.IQ("close", "<iq type='set' id='close'><pubsub xmlns='%s'><configure node='urn:example:whitelist'>%s</configure></pubsub></iq>",
		nsPubSubOwner, form("<field var='pubsub#access_model'><value>presence</value></field>"))
	if r.Type != "result" {
		t.Fatalf("configure: %s", r.Raw)
	}
	if r := get(e, "e-closed", "urn:example:whitelist"); r.Type != "error" {
		t.Fatalf("stranger read of the closed node: %s", r.Raw)
	}
	e.ExpectNone("notifications", 100*time.Millisecond, func(s *wire.Stanza) bool { return s.Child(nsPubSubEvent, "event") != nil })
}
