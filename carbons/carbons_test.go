package carbons

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/parley-xmpp/parley/internal/modtest"
	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/storage"
	"github.com/parley-xmpp/parley/wire"
	"github.com/parley-xmpp/parley/xep"
)

func (e *env) enable(s *modtest.Session) {
	e.T.Helper()
	_, reply := e.IQCollect(s, "<iq type='set' id='c1'><enable xmlns='urn:xmpp:carbons:2'/></iq>")
	if reply.Type != "result" || s.Flags()&module.FlagCarbons == 0 {
		e.T.Fatalf("enable: %s", reply.Raw)
	}
}

// carbon checks that st is a carbon of the given kind for s and returns
// the forwarded message.
func carbon(t *testing.T, s *modtest.Session, kind string, st *wire.Stanza) *wire.Element {
	t.Helper()
	if st.From != s.JID().Bare().String() || st.To != s.JID().String() {
		t.Fatalf("carbon from %q to %q, want from %s to %s", st.From, st.To, s.JID().Bare(), s.JID())
	}
	w := st.Child(NS, kind)
	if w == nil {
		t.Fatalf("not a %s carbon: %s", kind, st.Raw)
	}
	// A copy answers from the name of its one child until its tree is
	// parsed from its bytes: both agree with a fresh parse.
	if p := wire.MustParse(string(st.Raw)); p.Tree().String() != st.Tree().String() || st.HasChild(wire.NSClient, "body") || !st.HasChild(NS, kind) {
		t.Fatalf("copy's tree %s, parsed afresh %s", st.Tree(), p.Tree())
	}
	msg := w.Child(NSForward, "forwarded").Child(wire.NSClient, "message")
	if msg == nil {
		t.Fatalf("no forwarded message: %s", st.Raw)
	}
	return msg
}

func one(t *testing.T, s *modtest.Session) *wire.Stanza {
	t.Helper()
	got := s.Take()
	if len(got) != 1 {
		var raws []string
		for _, g := range got {
			raws = append(raws, string(g.Raw))
		}
		t.Fatalf("%s got %d stanzas, want 1: %v", s.JID(), len(got), raws)
	}
	return got[0]
}

func none(t *testing.T, ss ...*modtest.Session) {
	t.Helper()
	for _, s := range ss {
		if got := s.Take(); len(got) != 0 {
			t.Fatalf("%s got %s", s.JID(), got[0].Raw)
		}
	}
}

func TestEnableDisable(t *testing.T) {
	e := setup(t, false)
	a := e.LoginAvailable("alice@example.org/a", 0)
	e.enable(a)
	e.enable(a) // again: still a plain result
	_, reply := e.IQCollect(a, "<iq type='set' id='c2'><disable xmlns='urn:xmpp:carbons:2'/></iq>")
	if reply.Type != "result" || a.Flags()&module.FlagCarbons != 0 {
		t.Fatalf("disable: %s", reply.Raw)
	}
	_, reply = e.IQCollect(a, "<iq type='set' id='c3'><disable xmlns='urn:xmpp:carbons:2'/></iq>")
	if reply.Type != "result" {
		t.Fatalf("disable again: %s", reply.Raw)
	}
	_, reply = e.IQCollect(a, "<iq type='get' id='c4'><enable xmlns='urn:xmpp:carbons:2'/></iq>")
	if modtest.ErrCondition(reply) != wire.ErrBadRequest {
		t.Fatalf("get: %s", reply.Raw)
	}
	e.LoginAvailable("bob@example.org/b", 0)
	_, reply = e.IQCollect(a, "<iq type='set' id='c5' to='bob@example.org'><enable xmlns='urn:xmpp:carbons:2'/></iq>")
	if modtest.ErrCondition(reply) != wire.ErrNotAllowed || a.Flags()&module.FlagCarbons != 0 {
		t.Fatalf("enable for another account: %s", reply.Raw)
	}
	if !slices.Contains(e.Registry.Features(), NS) {
		t.Error("feature not advertised")
	}
}

func TestSentCarbons(t *testing.T) {
	e := setup(t, true)
	a := e.LoginAvailable("alice@example.org/a", 0)
	b := e.LoginAvailable("alice@example.org/b", 0)
	c := e.LoginAvailable("alice@example.org/c", 0) // carbons not enabled
	bob := e.LoginAvailable("bob@example.org/desk", 0)
	e.enable(a)
	e.enable(b)

	e.Send(a, "<message to='bob@example.org' type='chat' id='m1'><body>hi</body></message>")
	orig := one(t, bob)
	if _, ok := xepIDs(orig)["alice@example.org"]; ok {
		t.Fatalf("the contact sees the sender's archive id: %s", orig.Raw)
	}
	msg := carbon(t, b, "sent", one(t, b))
	if msg.AttrValue("from") != "alice@example.org/a" || msg.AttrValue("to") != "bob@example.org" || msg.ChildText(wire.NSClient, "body") != "hi" {
		t.Fatalf("forwarded %s", msg.String())
	}
	// The copy names the sender's archive entry (XEP-0313 §3.3).
	arch := archive(t, e, "alice@example.org")
	if sid := msg.Child(xep.NSSID, "stanza-id"); sid == nil || sid.AttrValue("by") != "alice@example.org" || sid.AttrValue("id") != arch[0].ID {
		t.Fatalf("sent carbon stanza-id: %s (archive %s)", msg.String(), arch[0].ID)
	}
	none(t, a, c)

	// Normal messages with a body, receipts and chat states are copied;
	// body-less normal messages, errors, groupchat and headlines are not.
	for payload, copied := range map[string]bool{
		"<message to='bob@example.org' id='x'><body>hi</body></message>":                                                                                       true,
		"<message to='bob@example.org' type='chat' id='x'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>":                                true,
		"<message to='bob@example.org/desk' id='x'><received xmlns='urn:xmpp:receipts' id='m1'/></message>":                                                    true,
		"<message to='bob@example.org' id='x'><encrypted xmlns='urn:xmpp:omemo:2'/></message>":                                                                 true,
		"<message to='bob@example.org' id='x'><x xmlns='jabber:x:conference' jid='room@muc.example.org'/></message>":                                           true,
		"<message to='bob@example.org' id='x'><thread>t</thread></message>":                                                                                    false,
		"<message to='room@muc.example.org' type='groupchat' id='x'><body>hi</body></message>":                                                                 false,
		"<message to='bob@example.org' type='headline' id='x'><body>hi</body></message>":                                                                       false,
		"<message to='bob@example.org/desk' type='error' id='x'><error type='cancel'><gone xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>":    false,
		"<message to='bob@example.org' type='chat' id='x'><body>secret</body><private xmlns='urn:xmpp:carbons:2'/><no-copy xmlns='urn:xmpp:hints'/></message>": false,
		"<message to='bob@example.org' type='chat' id='x'><body>secret</body><private xmlns='urn:xmpp:carbons:2'/></message>":                                  false,
		"<message to='bob@example.org' type='chat' id='x'><body>secret</body><no-copy xmlns='urn:xmpp:hints'/></message>":                                      false,
	} {
		e.Send(a, payload)
		got := b.Take()
		if copied != (len(got) == 1) {
			t.Errorf("%s: %d copies, want copied=%v", payload, len(got), copied)
		}
		if copied && len(got) == 1 {
			if fwd := carbon(t, b, "sent", got[0]); fwd.AttrValue("id") != "x" {
				t.Errorf("forwarded %s", fwd.String())
			}
		}
		a.Take()
		c.Take()
		bob.Take()
	}
}

func TestReceivedCarbons(t *testing.T) {
	e := setup(t, true)
	a := e.LoginAvailable("alice@example.org/a", 0)
	b := e.LoginAvailable("alice@example.org/b", 5)
	c := e.LoginAvailable("alice@example.org/c", 0)  // carbons not enabled
	n := e.LoginAvailable("alice@example.org/n", -1) // negative priority: no bare-JID delivery
	bob := e.LoginAvailable("bob@example.org/desk", 0)
	e.enable(a)
	e.enable(b)
	e.enable(n)

	// To a full JID: every other enabled resource gets a copy.
	e.Send(bob, "<message to='alice@example.org/a' type='chat' id='m1'><body>hi</body></message>")
	orig := one(t, a)
	arch := archive(t, e, "alice@example.org")
	sid := xepIDs(orig)["alice@example.org"]
	if len(arch) != 1 || sid != arch[0].ID {
		t.Fatalf("delivered stanza-id %q, archive %v", sid, arch)
	}
	for _, s := range []*modtest.Session{b, n} {
		msg := carbon(t, s, "received", one(t, s))
		if msg.AttrValue("to") != "alice@example.org/a" || msg.AttrValue("from") != "bob@example.org/desk" {
			t.Fatalf("forwarded %s", msg.String())
		}
		// The copy is the stanza as delivered, archive id included.
		if got := msg.Child(xep.NSSID, "stanza-id"); got == nil || got.AttrValue("id") != arch[0].ID {
			t.Fatalf("received carbon without the archive's stanza-id: %s", msg.String())
		}
	}
	none(t, c, bob)

	// To the bare JID: the available non-negative resources get the
	// message; only the negative-priority enabled one gets a copy.
	e.Send(bob, "<message to='alice@example.org' type='chat' id='m2'><body>all</body></message>")
	for _, s := range []*modtest.Session{a, b, c} {
		if got := one(t, s); got.Child(NS, "received") != nil {
			t.Fatalf("%s got a carbon instead of the message", s.JID())
		}
	}
	carbon(t, n, "received", one(t, n))

	// To an unbound resource: delivered as to the bare JID.
	e.Send(bob, "<message to='alice@example.org/gone' type='chat' id='m3'><body>x</body></message>")
	a.Take()
	b.Take()
	c.Take()
	carbon(t, n, "received", one(t, n))

	// Private messages are not copied.
	e.Send(bob, "<message to='alice@example.org/a' type='chat' id='m4'><body>x</body><private xmlns='urn:xmpp:carbons:2'/><no-copy xmlns='urn:xmpp:hints'/></message>")
	one(t, a)
	none(t, b, c, n)

	// Errors from a full JID (an answer to one client) and groupchat
	// are not copied.
	e.Send(bob, "<message to='alice@example.org/a' type='error' id='m5'><error type='cancel'><gone xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>")
	one(t, a)
	none(t, b, n)
	// An error answering a message alice sent (and that was copied) is
	// copied; one with an id she never used is not.
	// Here the test server bounces it (no federation): the bounce reaches
	// a, and b and n get the sent copy and then a copy of the bounce.
	e.Send(a, "<message to='nobody@other.example' type='chat' id='m5b'><body>are you there?</body></message>")
	if got := one(t, a); got.Type != "error" || got.ID != "m5b" {
		t.Fatalf("bounce: %s", got.Raw)
	}
	for _, s := range []*modtest.Session{b, n} {
		got := s.Take()
		if len(got) != 2 {
			t.Fatalf("%s got %d stanzas, want the sent copy and the bounce copy", s.JID(), len(got))
		}
		carbon(t, s, "sent", got[0])
		if msg := carbon(t, s, "received", got[1]); msg.AttrValue("type") != "error" || msg.AttrValue("id") != "m5b" {
			t.Fatalf("error carbon: %s", msg.String())
		}
	}
	none(t, c)
	e.Remote("<message from='nobody@other.example' to='alice@example.org/a' type='error' id='other'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>")
	one(t, a)
	none(t, b, n)
	e.Remote("<message from='room@muc.other.example/bob' to='alice@example.org/a' type='groupchat' id='m6'><body>x</body></message>")
	one(t, a)
	none(t, b, n)
	// A private message from a MUC occupant: the room copies it itself.
	e.Remote("<message from='room@muc.other.example/bob' to='alice@example.org/a' type='chat' id='m7'><body>x</body><x xmlns='http://jabber.org/protocol/muc#user'/></message>")
	one(t, a)
	none(t, b, n)

	// After disable, no more copies.
	_, reply := e.IQCollect(b, "<iq type='set' id='d1'><disable xmlns='urn:xmpp:carbons:2'/></iq>")
	if reply.Type != "result" {
		t.Fatal(reply.Raw)
	}
	e.Send(bob, "<message to='alice@example.org/a' type='chat' id='m8'><body>x</body></message>")
	one(t, a)
	none(t, b)
	carbon(t, n, "received", one(t, n))
}

func TestMessageToOwnResource(t *testing.T) {
	e := setup(t, true)
	a := e.LoginAvailable("alice@example.org/a", 0)
	b := e.LoginAvailable("alice@example.org/b", 0)
	c := e.LoginAvailable("alice@example.org/c", 0)
	for _, s := range []*modtest.Session{a, b, c} {
		e.enable(s)
	}
	e.Send(a, "<message to='alice@example.org/b' type='chat' id='m1'><body>note</body></message>")
	one(t, b)
	// c learns of it once (a received copy), a gets nothing back.
	carbon(t, c, "received", one(t, c))
	none(t, a)
	if arch := archive(t, e, "alice@example.org"); len(arch) != 1 {
		t.Fatalf("archived %d times", len(arch))
	}
}

func TestForgedCarbonsDropped(t *testing.T) {
	e := setup(t, false)
	a := e.LoginAvailable("alice@example.org/a", 0)
	e.enable(a)
	forged := "<received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'>" +
		"<message xmlns='jabber:client' from='juliet@capulet.example/balcony' to='alice@example.org/a' type='chat'><body>meet me</body></message>" +
		"</forwarded></received>"
	e.Remote("<message from='tybalt@capulet.example/home' to='alice@example.org' type='chat' id='f1'>" + forged + "</message>")
	e.Remote("<message from='alice@example.org' to='alice@example.org/a' type='chat' id='f2'>" + forged + "</message>")
	mallory := e.LoginAvailable("mallory@example.org/m", 0)
	e.Send(mallory, "<message to='alice@example.org/a' type='chat' id='f3'>"+strings.ReplaceAll(forged, "received", "sent")+"</message>")
	// Even the user's own client cannot inject one into another resource.
	b := e.LoginAvailable("alice@example.org/b", 0)
	e.Send(b, "<message to='alice@example.org/a' type='chat' id='f4'>"+forged+"</message>")
	none(t, a)
}

func TestWrapKeepsBytes(t *testing.T) {
	st := wire.MustParse("<message from='a@x/r' to='b@y' type='chat' id='1'><body>&lt;&#x41;\u00e9</body><encrypted xmlns=\"urn:xmpp:omemo:2\"><payload>QQ==</payload></encrypted></message>")
	w := wrap("received", "b@y", "b@y/r", st)
	want := "<message xmlns='jabber:client'" + strings.TrimPrefix(string(st.Raw), "<message")
	if !bytes.Contains(w.Raw, []byte(want)) {
		t.Fatalf("wrapped %s\ndoes not contain %s", w.Raw, want)
	}
	if w.Type != "chat" || w.From != "b@y" || w.To != "b@y/r" ||
		w.Child(NS, "received").Child(NSForward, "forwarded").Child(wire.NSClient, "message").ChildText(wire.NSClient, "body") != "<Aé" {
		t.Fatalf("wrapped %s", w.Raw)
	}
	// The tree built without parsing is the one the bytes say.
	parsed, err := wire.Parse(w.Raw, wire.Limits{})
	if err != nil {
		t.Fatalf("wrapped bytes do not parse: %v", err)
	}
	if got, want := w.Tree().String(), parsed.Tree().String(); got != want {
		t.Fatalf("composed tree\n%s\nparsed tree\n%s", got, want)
	}
	if s := w.WithAttr("to", "b@y/other"); !bytes.HasSuffix(s.Raw, w.Raw[bytes.IndexByte(w.Raw, '>')+1:]) {
		t.Fatalf("re-addressed copy %s", s.Raw)
	}
}

func xepIDs(st *wire.Stanza) map[string]string {
	out := map[string]string{}
	for _, e := range st.Tree().ChildrenNamed(xep.NSSID, "stanza-id") {
		out[e.AttrValue("by")] = e.AttrValue("id")
	}
	return out
}

func archive(t *testing.T, e *env, owner string) []storage.ArchivedMessage {
	t.Helper()
	p, err := e.Store.QueryArchive(context.Background(), owner, storage.ArchiveQuery{Max: 100})
	if err != nil {
		t.Fatal(err)
	}
	return p.Messages
}
