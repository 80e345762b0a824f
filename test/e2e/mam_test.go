package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/internal/testserver"
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
	ts := testserver.Start(t)
	alice := ts.AddUser("alice", "pw1")
	ts.AddUser("mallory", "pw3")
	a := ts.Login("alice", "pw1", "")
	m := ts.Login("mallory", "pw3", "")
	a.Send("<presence/>")
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
	time.Sleep(100 * time.Millisecond)
	b.Send("<message to='%s' type='chat' id='e2'>"+enc+"</message>", alice)
	time.Sleep(200 * time.Millisecond)
	a2 := ts.Login("alice", "pw1", "")
	a2.Send("<presence/>")
	m = a2.Expect("offline encrypted message", func(s *wire.Stanza) bool { return s.ID == "e2" })
	if !strings.Contains(string(m.Raw), enc) {
		t.Fatalf("offline payload changed: %s", m.Raw)
	}
}
