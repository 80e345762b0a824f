package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/internal/testserver"
	"github.com/parley-xmpp/parley/server"
	"github.com/parley-xmpp/parley/wire"
)

const (
	nsMAM     = "urn:xmpp:mam:2"
	nsSID     = "urn:xmpp:sid:0"
	nsCarbons = "urn:xmpp:carbons:2"
	nsForward = "urn:xmpp:forward:0"
)

// TestMultiDeviceSync: a phone and a laptop see the same conversation:
// stanza-ids on delivery, carbons for the other device, and the archive
// returns the history (including a message that arrived while a device
// was off) in order, once.
func TestMultiDeviceSync(t *testing.T) {
	t.Parallel()
	ts := testserver.Start(t)
	alice := ts.AddUser("alice", "pw1")
	ts.AddUser("bob", "pw2")
	phone := ts.Login("alice", "pw1", "phone")
	laptop := ts.Login("alice", "pw1", "laptop")
	b := ts.Login("bob", "pw2", "desk")
	for _, c := range []*testserver.Client{phone, laptop, b} {
		c.Send("<presence/>")
	}
	for _, c := range []*testserver.Client{phone, laptop} {
		if r := c.IQ("c1", "<iq type='set' id='c1'><enable xmlns='urn:xmpp:carbons:2'/></iq>"); r.Type != "result" {
			t.Fatalf("carbons enable: %s", r.Raw)
		}
	}
	// Bob writes to alice's phone: the laptop gets a received carbon.
	b.Send("<message to='%s' type='chat' id='b1'><body>one</body><origin-id xmlns='urn:xmpp:sid:0' id='o-1'/></message>", phone.JID)
	m := phone.Expect("message one", isMsg("one"))
	sid := m.Child(nsSID, "stanza-id")
	if sid == nil || sid.AttrValue("by") != alice || sid.AttrValue("id") == "" {
		t.Fatalf("no stanza-id by alice: %s", m.Raw)
	}
	c := laptop.Expect("received carbon", func(s *wire.Stanza) bool { return s.Child(nsCarbons, "received") != nil })
	if c.From != alice {
		t.Fatalf("carbon from %s", c.From)
	}
	inner := c.Child(nsCarbons, "received").Child(nsForward, "forwarded").Child(wire.NSClient, "message")
	if inner == nil || inner.ChildText(wire.NSClient, "body") != "one" || inner.Child(nsSID, "stanza-id").AttrValue("id") != sid.AttrValue("id") {
		t.Fatalf("carbon content: %s", c.Raw)
	}
	// The phone replies: the laptop gets a sent carbon.
	phone.Send("<message to='bob@localhost' type='chat' id='a1'><body>two</body></message>")
	b.Expect("message two", isMsg("two"))
	laptop.Expect("sent carbon", func(s *wire.Stanza) bool { return s.Child(nsCarbons, "sent") != nil })
	// Resent with the same origin-id (e.g. a stream management resend): archived once.
	b.Send("<message to='%s' type='chat' id='b1'><body>one</body><origin-id xmlns='urn:xmpp:sid:0' id='o-1'/></message>", phone.JID)
	// The laptop goes away; a message arrives; a new device syncs from the archive.
	laptop.Close()
	b.Send("<message to='%s' type='chat'><body>three</body></message>", alice)
	phone.Expect("message three", isMsg("three"))

	tablet := ts.Login("alice", "pw1", "tablet")
	tablet.Send("<iq type='set' id='q1'><query xmlns='urn:xmpp:mam:2' queryid='f27'/></iq>")
	var bodies []string
	for len(bodies) < 3 {
		r := tablet.Expect("mam result", func(s *wire.Stanza) bool { return s.Child(nsMAM, "result") != nil })
		res := r.Child(nsMAM, "result")
		if res.AttrValue("queryid") != "f27" || res.AttrValue("id") == "" {
			t.Fatalf("result: %s", r.Raw)
		}
		fwd := res.Child(nsForward, "forwarded")
		if fwd.Child("urn:xmpp:delay", "delay") == nil {
			t.Fatalf("no delay in result: %s", r.Raw)
		}
		bodies = append(bodies, fwd.Child(wire.NSClient, "message").ChildText(wire.NSClient, "body"))
	}
	fin := tablet.Expect("mam fin", func(s *wire.Stanza) bool { return s.ID == "q1" })
	if fin.Type != "result" || fin.Child(nsMAM, "fin").AttrValue("complete") != "true" {
		t.Fatalf("fin: %s", fin.Raw)
	}
	if got := bodies[0] + "," + bodies[1] + "," + bodies[2]; got != "one,two,three" {
		t.Fatalf("archive order/dedup: %s", got)
	}
	tablet.ExpectNone("duplicate archive entry", 200*time.Millisecond, func(s *wire.Stanza) bool { return s.Child(nsMAM, "result") != nil })

	// Paging: the last page of size 1 is "three".
	tablet.Send("<iq type='set' id='q2'><query xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'><max>1</max><before/></set></query></iq>")
	r := tablet.Expect("last page", func(s *wire.Stanza) bool { return s.Child(nsMAM, "result") != nil })
	if body := r.Child(nsMAM, "result").Child(nsForward, "forwarded").Child(wire.NSClient, "message").ChildText(wire.NSClient, "body"); body != "three" {
		t.Fatalf("last page: %s", r.Raw)
	}
	tablet.Expect("fin q2", func(s *wire.Stanza) bool { return s.ID == "q2" })

	// Another user's archive is off limits.
	res := b.IQ("q3", "<iq type='set' id='q3' to='%s'><query xmlns='urn:xmpp:mam:2'/></iq>", alice)
	assertStanzaError(t, res, "forbidden")
}

// TestStanzaIDSpoofing: a client cannot inject a stanza-id claiming to be
// from the recipient's archive.
func TestStanzaIDSpoofing(t *testing.T) {
	t.Parallel()
	ts := testserver.Start(t)
	alice := ts.AddUser("alice", "pw1")
	ts.AddUser("mallory", "pw3")
	a := ts.Login("alice", "pw1", "")
	m := ts.Login("mallory", "pw3", "")
	a.Send("<presence/>")
	// Alice is available once her own presence comes back; before that a
	// message to her bare JID would go to offline storage.
	a.Expect("own presence", testserver.PresenceFrom(a.JID, ""))
	m.Send("<message to='%s' type='chat'><body>hi</body><stanza-id xmlns='urn:xmpp:sid:0' by='%s' id='forged'/></message>", alice, alice)
	got := a.Expect("message", isMsg("hi"))
	for _, s := range got.Tree().ChildrenNamed(nsSID, "stanza-id") {
		if s.AttrValue("id") == "forged" {
			t.Fatalf("forged stanza-id delivered: %s", got.Raw)
		}
	}
}

// TestEncryptedPayloadByteForByte: OMEMO payloads reach the recipient
// exactly as sent (live with a stanza-id added, and from offline storage),
// even with character references a re-serialization would rewrite.
func TestEncryptedPayloadByteForByte(t *testing.T) {
	t.Parallel()
	ts := testserver.Start(t)
	alice := ts.AddUser("alice", "pw1")
	ts.AddUser("bob", "pw2")
	const enc = `<encrypted xmlns="eu.siacs.conversations.axolotl"><header sid="123"><key rid="456">a2V5&#x2F;Zm9v</key><iv>aXY=</iv></header><payload>cGF5&#43;bG9hZA==</payload></encrypted>`
	b := ts.Login("bob", "pw2", "")
	a := ts.Login("alice", "pw1", "")
	a.Send("<presence/>")
	a.Expect("own presence", func(s *wire.Stanza) bool { return s.Name == "presence" && s.From == a.JID })
	b.Send("<message to='%s' type='chat' id='e1'>"+enc+"<store xmlns='urn:xmpp:hints'/></message>", alice)
	m := a.Expect("encrypted message", func(s *wire.Stanza) bool { return s.ID == "e1" })
	if !strings.Contains(string(m.Raw), enc) || m.Child(nsSID, "stanza-id") == nil {
		t.Fatalf("payload changed or no stanza-id: %s", m.Raw)
	}
	a.Close()
	ts.WaitOffline(alice)
	b.Send("<message to='%s' type='chat' id='e2'>"+enc+"</message>", alice)
	ts.WaitOfflineMessages(alice, 1)
	a2 := ts.Login("alice", "pw1", "")
	a2.Send("<presence/>")
	m = a2.Expect("offline encrypted message", func(s *wire.Stanza) bool { return s.ID == "e2" })
	if !strings.Contains(string(m.Raw), enc) {
		t.Fatalf("offline payload changed: %s", m.Raw)
	}
}

// mamPage runs a MAM query and returns the bodies of its results and its
// <fin/>.
func mamPage(t *testing.T, c *testserver.Client, id, inner string) ([]string, *wire.Element) {
	t.Helper()
	c.Send("<iq type='set' id='%s'><query xmlns='urn:xmpp:mam:2' queryid='%s'>%s</query></iq>", id, id, inner)
	var bodies []string
	for {
		s := c.Expect("mam result or fin "+id, func(s *wire.Stanza) bool {
			return s.ID == id || (s.Child(nsMAM, "result") != nil && s.Child(nsMAM, "result").AttrValue("queryid") == id)
		})
		if s.ID == id {
			if s.Type != "result" {
				t.Fatalf("query %s: %s", id, s.Raw)
			}
			return bodies, s.Child(nsMAM, "fin")
		}
		msg := s.Child(nsMAM, "result").Child(nsForward, "forwarded").Child(wire.NSClient, "message")
		bodies = append(bodies, msg.ChildText(wire.NSClient, "body"))
	}
}

const nsRSM = "http://jabber.org/protocol/rsm"

// TestMAMFulltextSearch (XEP-0431) over a real socket: the form offers
// the field, a search finds plain messages in both directions and never
// an OMEMO message whose fallback body has the word, and RSM <index/>
// jumps within the matches with <count/> and <first index/> consistent.
func TestMAMFulltextSearch(t *testing.T) {
	t.Parallel()
	ts := testserver.Start(t, func(c *server.Config) { c.MAM.Fulltext = true })
	alice := ts.AddUser("alice", "pw1")
	ts.AddUser("bob", "pw2")
	a := ts.Login("alice", "pw1", "phone")
	b := ts.Login("bob", "pw2", "desk")
	a.Send("<presence/>")
	b.Send("<presence/>")

	r := a.IQ("d1", "<iq type='get' id='d1' to='%s'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>", alice)
	if !strings.Contains(string(r.Raw), "urn:xmpp:fulltext:0") {
		t.Fatalf("account disco lacks urn:xmpp:fulltext:0: %s", r.Raw)
	}
	r = a.IQ("f1", "<iq type='get' id='f1'><query xmlns='urn:xmpp:mam:2'/></iq>")
	if !strings.Contains(string(r.Raw), "{urn:xmpp:fulltext:0}fulltext") {
		t.Fatalf("form lacks the fulltext field: %s", r.Raw)
	}

	b.Send("<message to='%s' type='chat' id='p1'><body>Shall we picnic by the river?</body></message>", alice)
	a.Expect("p1", isMsg("Shall we picnic by the river?"))
	b.Send("<message to='%s' type='chat' id='e1'><body>I sent you an OMEMO encrypted message: picnic</body>"+
		"<encrypted xmlns='urn:xmpp:omemo:2'><header sid='1'><keys jid='%s'><key rid='2'>a2V5</key></keys></header><payload>cGljbmlj</payload></encrypted>"+
		"<store xmlns='urn:xmpp:hints'/></message>", alice, alice)
	a.Expect("e1", func(s *wire.Stanza) bool { return s.ID == "e1" })
	a.Send("<message to='bob@%s' type='chat' id='p2'><body>Yes! A picnic, RIVER side</body></message>", ts.Domain)
	b.Expect("p2", isMsg("Yes! A picnic, RIVER side"))
	b.Send("<message to='%s' type='chat' id='p3'><body>bring bread</body></message>", alice)
	a.Expect("p3", isMsg("bring bread"))

	field := func(text string) string {
		return "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field>" +
			"<field var='{urn:xmpp:fulltext:0}fulltext'><value>" + text + "</value></field></x>"
	}
	bodies, fin := mamPage(t, a, "s1", field("picnic river"))
	if strings.Join(bodies, "|") != "Shall we picnic by the river?|Yes! A picnic, RIVER side" || fin.AttrValue("complete") != "true" ||
		fin.Child(nsRSM, "set").ChildText(nsRSM, "count") != "2" {
		t.Fatalf("search: %q %s", bodies, fin.AppendXML(nil, ""))
	}
	bodies, fin = mamPage(t, a, "s2", field("omemo"))
	if len(bodies) != 0 || fin.Child(nsRSM, "set").ChildText(nsRSM, "count") != "0" {
		t.Fatalf("the encrypted message's fallback body was searchable: %q", bodies)
	}
	// Everything is still archived: 4 messages; index 2 of them is "Yes! …".
	bodies, fin = mamPage(t, a, "s3", "<set xmlns='"+nsRSM+"'><max>1</max><index>2</index></set>")
	set := fin.Child(nsRSM, "set")
	if strings.Join(bodies, "|") != "Yes! A picnic, RIVER side" || set.ChildText(nsRSM, "count") != "4" ||
		set.Child(nsRSM, "first").AttrValue("index") != "2" {
		t.Fatalf("index 2: %q %s", bodies, fin.AppendXML(nil, ""))
	}
	// Page jump within the matches.
	bodies, fin = mamPage(t, a, "s4", field("picnic")+"<set xmlns='"+nsRSM+"'><max>5</max><index>1</index></set>")
	set = fin.Child(nsRSM, "set")
	if strings.Join(bodies, "|") != "Yes! A picnic, RIVER side" || set.ChildText(nsRSM, "count") != "2" ||
		set.Child(nsRSM, "first").AttrValue("index") != "1" || fin.AttrValue("complete") != "true" {
		t.Fatalf("index within matches: %q %s", bodies, fin.AppendXML(nil, ""))
	}
	// Bob's archive has his own copies; alice's search never sees others'.
	bodies, _ = mamPage(t, b, "s5", field("bread"))
	if strings.Join(bodies, "|") != "bring bread" {
		t.Fatalf("bob's search: %q", bodies)
	}
}
