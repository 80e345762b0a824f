package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/internal/testserver"
	"github.com/parley-xmpp/parley/wire"
)

const (
	nsPubSubErrors = "http://jabber.org/protocol/pubsub#errors"
	nsNick         = "http://jabber.org/protocol/nick"
	nodeMDS        = "urn:xmpp:mds:displayed:0"
	nsStanzas      = "urn:ietf:params:xml:ns:xmpp-stanzas"
)

// expectPubSubError checks an error reply's condition and pubsub#errors
// application condition ("" for none).
func expectPubSubError(t *testing.T, r *wire.Stanza, cond, app string) {
	t.Helper()
	e := r.Child(wire.NSClient, "error")
	if r.Type != "error" || e.Child(nsStanzas, cond) == nil || (app != "" && e.Child(nsPubSubErrors, app) == nil) {
		t.Fatalf("want error %s/%s, got %s", cond, app, r.Raw)
	}
}

func getItems(c *testserver.Client, id, owner, node string) *wire.Stanza {
	return c.IQ(id, "<iq type='get' id='%s' to='%s'><pubsub xmlns='%s'><items node='%s'/></pubsub></iq>", id, owner, nsPubSub, node)
}

func publishOptions(fields ...[2]string) string {
	s := "<publish-options><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>"
	for _, f := range fields {
		s += "<field var='" + f[0] + "'><value>" + f[1] + "</value></field>"
	}
	return s + "</x></publish-options>"
}

// configValue returns a field of the owner's node configuration.
func configValue(t *testing.T, c *testserver.Client, node, field string) string {
	t.Helper()
	r := c.IQ("cfg-"+node, "<iq type='get' id='cfg-%s'><pubsub xmlns='%s'><configure node='%s'/></pubsub></iq>", node, nsPubSubOwner, node)
	if r.Type != "result" {
		t.Fatalf("configure get %s: %s", node, r.Raw)
	}
	for _, f := range r.Child(nsPubSubOwner, "pubsub").Child(nsPubSubOwner, "configure").Child("jabber:x:data", "x").ChildrenNamed("jabber:x:data", "field") {
		if f.AttrValue("var") == field {
			return f.ChildText("jabber:x:data", "value")
		}
	}
	return ""
}

// TestPEPNick: XEP-0172 nickname on the default presence access model:
// contacts are notified and may read it, strangers may not; a nick in a
// subscription request reaches the contact, online or later from storage.
func TestPEPNick(t *testing.T) {
	t.Parallel()
	ts := testserver.Start(t)
	alice := ts.AddUser("alice", "pw1")
	bob := ts.AddUser("bob", "pw2")
	ts.AddUser("eve", "pw3")
	dave := ts.AddUser("dave", "pw4")
	a := ts.Login("alice", "pw1", "phone")
	b := ts.Login("bob", "pw2", "pc")
	e := ts.Login("eve", "pw3", "x")
	requirePEP(t, a, alice)
	a.Send("<presence/>")
	capsB, featB := pepCaps(nsNick)
	b.Send("<presence>%s</presence>", capsB)
	subscribe(t, a, b, alice, bob)
	answerCapsQuery(b, featB)

	r := a.IQ("n1", "<iq type='set' id='n1'><pubsub xmlns='%s'><publish node='%s'><item><nick xmlns='%s'>Ally</nick></item></publish></pubsub></iq>", nsPubSub, nsNick, nsNick)
	if r.Type != "result" {
		t.Fatalf("publish nick: %s", r.Raw)
	}
	n := b.Expect("nick notification", func(s *wire.Stanza) bool { return isEvent(nsNick, "")(s) && s.From == alice })
	if !strings.Contains(string(n.Raw), ">Ally</nick>") {
		t.Fatalf("notification: %s", n.Raw)
	}
	if got := configValue(t, a, nsNick, "pubsub#access_model"); got != "presence" {
		t.Fatalf("nick access model %q", got)
	}
	if r := getItems(b, "bn", alice, nsNick); r.Type != "result" || !strings.Contains(string(r.Raw), ">Ally</nick>") {
		t.Fatalf("contact read: %s", r.Raw)
	}
	expectPubSubError(t, getItems(e, "en", alice, nsNick), "item-not-found", "")
	e.ExpectNone("nick notification to a stranger", 100*time.Millisecond, isEvent(nsNick, ""))

	// Nick in subscription requests (XEP-0172 §4.1), delivered live…
	e.Send("<presence type='subscribe' to='%s'><nick xmlns='%s'>Evie</nick></presence>", alice, nsNick)
	p := a.Expect("subscribe with nick", testserver.PresenceFrom("eve@localhost", "subscribe"))
	if p.Child(nsNick, "nick").Text() != "Evie" {
		t.Fatalf("subscription request lost the nick: %s", p.Raw)
	}
	// …and from storage when the contact comes online.
	e.Send("<presence type='subscribe' to='%s'><nick xmlns='%s'>Evie</nick></presence>", dave, nsNick)
	testserver.Eventually(t, "the subscription request stored for dave", func() bool {
		p, err := ts.Store().PendingIn(context.Background(), dave)
		return err == nil && len(p) == 1
	})
	d := ts.Login("dave", "pw4", "d")
	d.Send("<presence/>")
	p = d.Expect("stored subscribe with nick", testserver.PresenceFrom("eve@localhost", "subscribe"))
	if p.Child(nsNick, "nick").Text() != "Evie" {
		t.Fatalf("stored subscription request lost the nick: %s", p.Raw)
	}
}

// ownerContactStranger starts a server with alice (two resources), bob
// (her contact-to-be) and eve (a stranger), all logged in.
func ownerContactStranger(t *testing.T) (alice, bob string, a1, a2, b, e *testserver.Client) {
	t.Helper()
	ts := testserver.Start(t)
	alice, bob = ts.AddUser("alice", "pw1"), ts.AddUser("bob", "pw2")
	ts.AddUser("eve", "pw3")
	a1, a2 = ts.Login("alice", "pw1", "phone"), ts.Login("alice", "pw1", "laptop")
	b, e = ts.Login("bob", "pw2", "pc"), ts.Login("eve", "pw3", "x")
	requirePEP(t, a1, alice)
	return alice, bob, a1, a2, b, e
}

// TestPEPMDS: XEP-0490 displayed states with the publish options the XEP
// requires: every publish succeeds, the owner's other resources are
// notified, nobody else sees or gets anything.
func TestPEPMDS(t *testing.T) {
	t.Parallel()
	alice, bob, a1, a2, b, e := ownerContactStranger(t)

	caps1, feat1 := pepCaps(nodeMDS)
	a1.Send("<presence>%s</presence>", caps1)
	answerCapsQuery(a1, feat1)
	a2.Send("<presence/>")
	capsB, featB := pepCaps(nodeMDS, "urn:example:b")
	b.Send("<presence>%s</presence>", capsB)
	subscribe(t, a1, b, alice, bob)
	answerCapsQuery(b, featB)
	capsE, featE := pepCaps(nodeMDS, "urn:example:e")
	e.Send("<presence to='%s'>%s</presence>", alice, capsE)
	answerCapsQuery(e, featE)

	opts := publishOptions([2]string{"pubsub#persist_items", "true"}, [2]string{"pubsub#max_items", "max"},
		[2]string{"pubsub#send_last_published_item", "never"}, [2]string{"pubsub#access_model", "whitelist"})
	displayed := func(id string) string {
		return "<displayed xmlns='" + nodeMDS + "'><stanza-id xmlns='urn:xmpp:sid:0' by='" + alice + "' id='" + id + "'/></displayed>"
	}
	for i, chat := range []string{bob, "room@conference.localhost", bob} {
		id := "mds" + string(rune('0'+i))
		r := a2.IQ(id, "<iq type='set' id='%s'><pubsub xmlns='%s'><publish node='%s'><item id='%s'>%s</item></publish>%s</pubsub></iq>",
			id, nsPubSub, nodeMDS, chat, displayed("sid-"+id), opts)
		if r.Type != "result" {
			t.Fatalf("publish %d with the XEP's options: %s", i, r.Raw)
		}
		n := a1.Expect("own resource notified", isEvent(nodeMDS, chat))
		if n.From != alice || !strings.Contains(string(n.Raw), "sid-"+id) {
			t.Fatalf("notification: %s", n.Raw)
		}
	}
	r := getItems(a1, "catchup", alice, nodeMDS)
	if r.Type != "result" || len(r.Child(nsPubSub, "pubsub").Child(nsPubSub, "items").ChildrenNamed(nsPubSub, "item")) != 2 ||
		!strings.Contains(string(r.Raw), "sid-mds2") || strings.Contains(string(r.Raw), "sid-mds0") {
		t.Fatalf("catch-up: %s", r.Raw)
	}
	for f, want := range map[string]string{"pubsub#access_model": "whitelist", "pubsub#max_items": "max",
		"pubsub#send_last_published_item": "never", "pubsub#persist_items": "1"} {
		if got := configValue(t, a1, nodeMDS, f); got != want {
			t.Errorf("%s = %q, want %q", f, got, want)
		}
	}
	// Conflicting options are refused.
	r = a2.IQ("bad", "<iq type='set' id='bad'><pubsub xmlns='%s'><publish node='%s'><item id='x@localhost'>%s</item></publish>%s</pubsub></iq>",
		nsPubSub, nodeMDS, displayed("x"), publishOptions([2]string{"pubsub#access_model", "presence"}))
	expectPubSubError(t, r, "conflict", "precondition-not-met")

	// Neither a contact nor a stranger gets or reads anything.
	expectPubSubError(t, getItems(b, "b-mds", alice, nodeMDS), "item-not-found", "")
	expectPubSubError(t, getItems(e, "e-mds", alice, nodeMDS), "item-not-found", "")
	b.ExpectNone("mds notification to a contact", 100*time.Millisecond, isEvent(nodeMDS, ""))
	e.ExpectNone("mds notification to a stranger", 10*time.Millisecond, isEvent(nodeMDS, ""))

	// Implicit creation without options still gets the private
	// configuration (XEP-0490 security considerations).
	b2 := b
	r = b2.IQ("bm", "<iq type='set' id='bm'><pubsub xmlns='%s'><publish node='%s'><item id='%s'>%s</item></publish></pubsub></iq>",
		nsPubSub, nodeMDS, alice, displayed("b1"))
	if r.Type != "result" {
		t.Fatalf("publish without options: %s", r.Raw)
	}
	if got := configValue(t, b2, nodeMDS, "pubsub#access_model"); got != "whitelist" {
		t.Fatalf("implicitly created node has access model %q", got)
	}
	expectPubSubError(t, getItems(a1, "a-mds", bob, nodeMDS), "item-not-found", "")
}

// TestPEPAccessModelsFromOtherAccounts: each access model decides both
// retrieval and notification, checked from a contact (in the allowed
// roster group) and a stranger that sent directed presence with caps.
func TestPEPAccessModelsFromOtherAccounts(t *testing.T) {
	t.Parallel()
	alice, bob, a, a2, b, e := ownerContactStranger(t)

	nodes := []struct{ node, model string }{
		{"urn:example:open", "open"}, {"urn:example:presence", "presence"},
		{"urn:example:roster", "roster"}, {"urn:example:whitelist", "whitelist"},
	}
	var names []string
	for _, n := range nodes {
		names = append(names, n.node)
	}
	a.Send("<presence/>")
	caps2, feat2 := pepCaps(names...)
	a2.Send("<presence>%s</presence>", caps2)
	answerCapsQuery(a2, feat2)
	capsB, featB := pepCaps(append(names, "urn:example:b")...)
	b.Send("<presence>%s</presence>", capsB)
	subscribe(t, a, b, alice, bob)
	answerCapsQuery(b, featB)
	r := a.IQ("rs", "<iq type='set' id='rs'><query xmlns='jabber:iq:roster'><item jid='%s'><group>Friends</group></item></query></iq>", bob)
	if r.Type != "result" {
		t.Fatalf("roster set: %s", r.Raw)
	}
	capsE, featE := pepCaps(append(names, "urn:example:e")...)
	e.Send("<presence to='%s'>%s</presence>", alice, capsE)
	answerCapsQuery(e, featE)

	for _, n := range nodes {
		opts := [][2]string{{"pubsub#access_model", n.model}}
		if n.model == "roster" {
			opts = append(opts, [2]string{"pubsub#roster_groups_allowed", "Friends"})
		}
		r := a.IQ("p-"+n.model, "<iq type='set' id='p-%s'><pubsub xmlns='%s'><publish node='%s'><item id='1'><secret xmlns='urn:example'>%s</secret></item></publish>%s</pubsub></iq>",
			n.model, nsPubSub, n.node, n.model, publishOptions(opts...))
		if r.Type != "result" {
			t.Fatalf("publish %s: %s", n.node, r.Raw)
		}
	}
	// Notifications: the owner's other resource gets all four, the
	// contact all but whitelist, the stranger only open.
	for _, n := range nodes {
		a2.Expect("own notification "+n.model, isEvent(n.node, "1"))
		if n.model != "whitelist" {
			b.Expect("contact notification "+n.model, isEvent(n.node, "1"))
		}
	}
	e.Expect("stranger notification open", isEvent("urn:example:open", "1"))
	b.ExpectNone("contact notification whitelist", 150*time.Millisecond, isEvent("urn:example:whitelist", ""))
	// The open node may notify eve twice: once as the last item when the
	// server learns her +notify interest from her caps (which can finish
	// after the publish) and once live. Nothing else may reach her.
	e.ExpectNone("stranger notification", 10*time.Millisecond, func(s *wire.Stanza) bool {
		ev := s.Child(nsPubSubEvent, "event")
		return ev != nil && ev.Child(nsPubSubEvent, "items").AttrValue("node") != "urn:example:open"
	})

	// Retrieval.
	for _, c := range []struct {
		who       *testserver.Client
		node      string
		cond, app string
	}{
		{b, "urn:example:open", "", ""},
		{b, "urn:example:presence", "", ""},
		{b, "urn:example:roster", "", ""},
		{b, "urn:example:whitelist", "item-not-found", ""},
		{e, "urn:example:open", "", ""},
		{e, "urn:example:presence", "item-not-found", ""},
		{e, "urn:example:roster", "item-not-found", ""},
		{e, "urn:example:whitelist", "item-not-found", ""},
		{a2, "urn:example:whitelist", "", ""},
	} {
		r := getItems(c.who, "g-"+c.node, alice, c.node)
		if c.cond == "" {
			if r.Type != "result" || !strings.Contains(string(r.Raw), "<secret") {
				t.Errorf("%s reading %s: %s", c.who.JID, c.node, r.Raw)
			}
			continue
		}
		if strings.Contains(string(r.Raw), "<secret") {
			t.Errorf("%s read %s: %s", c.who.JID, c.node, r.Raw)
		}
		expectPubSubError(t, r, c.cond, c.app)
	}
	// Out of the allowed group: the roster node closes for bob.
	r = a.IQ("rs2", "<iq type='set' id='rs2'><query xmlns='jabber:iq:roster'><item jid='%s'><group>Work</group></item></query></iq>", bob)
	if r.Type != "result" {
		t.Fatalf("roster set: %s", r.Raw)
	}
	expectPubSubError(t, getItems(b, "b-roster2", alice, "urn:example:roster"), "item-not-found", "")
	r = a.IQ("p2", "<iq type='set' id='p2'><pubsub xmlns='%s'><publish node='urn:example:roster'><item id='2'><secret xmlns='urn:example'>x</secret></item></publish></pubsub></iq>", nsPubSub)
	if r.Type != "result" {
		t.Fatalf("publish: %s", r.Raw)
	}
	a2.Expect("own notification", isEvent("urn:example:roster", "2"))
	b.ExpectNone("roster notification outside the group", 150*time.Millisecond, isEvent("urn:example:roster", "2"))
}

// TestPEPMDSServerAssist: XEP-0490 §5: a <displayed/> in a message updates
// the node, and neither the contact, nor the sender's carbon copy, nor
// the archive sees it.
func TestPEPMDSServerAssist(t *testing.T) {
	t.Parallel()
	alice, bob, a1, a2, b, _ := ownerContactStranger(t)
	if !hasFeature(t, a1, alice, "urn:xmpp:mds:server-assist:0") {
		t.Fatal("the account does not advertise urn:xmpp:mds:server-assist:0")
	}
	caps1, feat1 := pepCaps(nodeMDS)
	a1.Send("<presence>%s</presence>", caps1)
	answerCapsQuery(a1, feat1)
	if r := a1.IQ("cb", "<iq type='set' id='cb'><enable xmlns='urn:xmpp:carbons:2'/></iq>"); r.Type != "result" {
		t.Fatalf("carbons: %s", r.Raw)
	}
	a2.Send("<presence/>")
	b.Send("<presence/>")
	subscribe(t, a2, b, alice, bob)

	a2.Send("<message to='%s' type='chat' id='m1'><body>seen it</body><displayed xmlns='%s'><stanza-id xmlns='urn:xmpp:sid:0' by='%s' id='sid-42'/></displayed></message>",
		bob, nodeMDS, alice)
	m := b.Expect("message", isMsg("seen it"))
	if strings.Contains(string(m.Raw), nodeMDS) || strings.Contains(string(m.Raw), "sid-42") {
		t.Fatalf("the contact got the displayed element: %s", m.Raw)
	}
	n := a1.Expect("displayed notification", isEvent(nodeMDS, bob))
	if !strings.Contains(string(n.Raw), "sid-42") {
		t.Fatalf("notification: %s", n.Raw)
	}
	c := a1.Expect("carbon copy", func(s *wire.Stanza) bool {
		return s.Name == "message" && strings.Contains(string(s.Raw), "seen it")
	})
	if strings.Contains(string(c.Raw), "sid-42") {
		t.Fatalf("the carbon copy has the displayed element: %s", c.Raw)
	}
	r := getItems(a1, "mds-items", alice, nodeMDS)
	if it := r.Child(nsPubSub, "pubsub").Child(nsPubSub, "items").Child(nsPubSub, "item"); it.AttrValue("id") != bob {
		t.Fatalf("items: %s", r.Raw)
	}
	if got := configValue(t, a1, nodeMDS, "pubsub#access_model"); got != "whitelist" {
		t.Fatalf("server-created node has access model %q", got)
	}
	if r = a1.IQ("mam", "<iq type='set' id='mam'><query xmlns='urn:xmpp:mam:2' queryid='q1'/></iq>"); r.Type != "result" {
		t.Fatalf("mam query: %s", r.Raw)
	}
	a1.Expect("mam result", func(s *wire.Stanza) bool {
		if s.Name != "message" || !strings.Contains(string(s.Raw), "seen it") {
			return false
		}
		if strings.Contains(string(s.Raw), "sid-42") {
			t.Errorf("the archive has the displayed element: %s", s.Raw)
		}
		return true
	})
}

// TestPEPNodeExistenceHidden is finding 6 of issue 16: a stranger could
// tell a private node that exists (not-allowed, not-authorized) from one
// that does not (item-not-found). Both now get the same error, for every
// access model, so nobody learns which private nodes an account has.
func TestPEPNodeExistenceHidden(t *testing.T) {
	t.Parallel()
	ts := testserver.Start(t)
	alice := ts.AddUser("alice", "pw1")
	ts.AddUser("eve", "pw3")
	a := ts.Login("alice", "pw1", "phone")
	e := ts.Login("eve", "pw3", "x")
	for _, model := range []string{"whitelist", "presence", "roster"} {
		r := a.IQ("p-"+model, "<iq type='set' id='p-%s'><pubsub xmlns='%s'><publish node='urn:example:%s'><item id='1'><secret xmlns='urn:example'/></item></publish>%s</pubsub></iq>",
			model, nsPubSub, model, publishOptions([2]string{"pubsub#access_model", model}))
		if r.Type != "result" {
			t.Fatalf("publish: %s", r.Raw)
		}
	}
	errorOf := func(node string) string {
		r := getItems(e, "g-"+node, alice, node)
		if r.Type != "error" || strings.Contains(string(r.Raw), "secret") {
			t.Fatalf("%s: %s", node, r.Raw)
		}
		return string(r.Child(wire.NSClient, "error").Bytes())
	}
	missing := errorOf("urn:example:nothing-here")
	for _, model := range []string{"whitelist", "presence", "roster"} {
		if got := errorOf("urn:example:" + model); got != missing {
			t.Errorf("%s node: error %s, for a missing node %s", model, got, missing)
		}
	}
}
