package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/internal/testserver"
	"github.com/parley-xmpp/parley/wire"
)

func publishNick(t *testing.T, c *testserver.Client, id, nick string) {
	t.Helper()
	r := c.IQ(id, "<iq type='set' id='%s'><pubsub xmlns='%s'><publish node='%s'><item id='current'><nick xmlns='%s'>%s</nick></item></publish></pubsub></iq>",
		id, nsPubSub, nsNick, nsNick, nick)
	if r.Type != "result" {
		t.Fatalf("publish nick %s: %s", nick, r.Raw)
	}
}

func isNickEvent(nick string) func(*wire.Stanza) bool {
	match := isEvent(nsNick, "current")
	return func(s *wire.Stanza) bool { return match(s) && strings.Contains(string(s.Raw), ">"+nick+"<") }
}

// TestFederationPEP: PEP between a.test and b.test. Alice's server learns
// bob's +notify interest by asking his full JID across s2s for the
// disco#info behind his entity caps, sends him the last item on his
// presence and every new one; a stranger on b.test who sent directed
// presence gets nothing from the presence-access node, and both can fetch
// an open OMEMO bundle by IQ across domains.
func TestFederationPEP(t *testing.T) {
	t.Parallel()
	_, b, ac, bc := federatedContacts(t)
	b.AddUser("eve", "pw3")
	const alice, bob = fedAlice, fedBob

	// Published before bob says what he wants: nothing yet.
	publishNick(t, ac, "n1", "Alice One")
	bc.ExpectNone("a nick event before caps", 200*time.Millisecond, isEvent(nsNick, ""))

	// Bob advertises nick+notify. His own server and alice's both ask
	// him what the caps mean; alice's query crosses s2s to his full JID.
	capsB, featB := pepCaps(nsNick, nodeDevices)
	bc.Send("<presence>%s</presence>", capsB)
	answerCapsQueryFrom(bc, alice, featB)
	answerCapsQueryFrom(bc, bob, featB)
	// send_last_published_item on presence.
	last := bc.Expect("last nick on caps", isNickEvent("Alice One"))
	if last.From != alice || last.Child("urn:xmpp:delay", "delay") == nil {
		t.Fatalf("last published item: %s", last.Raw)
	}
	// A new publish is notified across domains.
	publishNick(t, ac, "n2", "Alice Two")
	n := bc.Expect("nick notification", isNickEvent("Alice Two"))
	if n.From != alice || n.To != bc.JID {
		t.Fatalf("notification addressing: %s", n.Raw)
	}

	// An open node: its items go to anyone interested whose presence
	// alice's server sees.
	if r := ac.IQ("dl", "<iq type='set' id='dl'>%s</iq>", publishOpen(nodeDevices, "current", deviceList("4242"))); r.Type != "result" {
		t.Fatalf("publish device list: %s", r.Raw)
	}
	bc.Expect("device list notification", isEvent(nodeDevices, "current"))

	// A stranger on b.test with the same interests, known to alice's
	// server only through directed presence: the last item of the open
	// node (which shows her presence and caps were seen), never the
	// presence-access nick.
	ec := b.Login("eve", "pw3", "x")
	ec.Send("<presence to='%s'>%s</presence>", alice, capsB)
	if dl := ec.Expect("open device list on directed presence", isEvent(nodeDevices, "current")); dl.From != alice {
		t.Fatalf("device list: %s", dl.Raw)
	}
	ec.ExpectNone("the presence-access nick on directed presence", 200*time.Millisecond, isEvent(nsNick, ""))
	publishNick(t, ac, "n3", "Alice Three")
	bc.Expect("nick notification 3", isNickEvent("Alice Three"))
	ec.ExpectNone("a presence-access nick event", 300*time.Millisecond, isEvent(nsNick, ""))
	expectPubSubError(t, getItems(ec, "e-nick", alice, nsNick), "item-not-found", "")
	if r := getItems(bc, "b-nick", alice, nsNick); r.Type != "result" || !strings.Contains(string(r.Raw), "Alice Three") {
		t.Fatalf("contact fetching the nick across domains: %s", r.Raw)
	}

	// Bob goes offline and comes back: the last item on his presence
	// (caps already known on both sides, so no query this time).
	bc.Close()
	ac.Expect("bob unavailable", testserver.PresenceFrom(bob, "unavailable"))
	bc = b.Login("bob", "pw2", "laptop")
	bc.Send("<presence>%s</presence>", capsB)
	last = bc.Expect("last nick on coming online", isNickEvent("Alice Three"))
	if last.Child("urn:xmpp:delay", "delay") == nil {
		t.Fatalf("no delay on the last published item: %s", last.Raw)
	}

	// An open OMEMO bundle is fetched by IQ across domains, by the
	// contact and by the stranger.
	bundle := "<bundle xmlns='" + nsAxolotl + "'><signedPreKeyPublic signedPreKeyId='1'>U1BL</signedPreKeyPublic>" +
		"<signedPreKeySignature>U0lH</signedPreKeySignature><identityKey>SUs=</identityKey>" +
		"<prekeys><preKeyPublic preKeyId='1'>UEsx</preKeyPublic></prekeys></bundle>"
	if r := ac.IQ("bun", "<iq type='set' id='bun'>%s</iq>", publishOpen(nodeAxolotlBundles("4242"), "current", bundle)); r.Type != "result" {
		t.Fatalf("publish bundle: %s", r.Raw)
	}
	for _, c := range []*testserver.Client{bc, ec} {
		r := getItems(c, "get-bundle", alice, nodeAxolotlBundles("4242"))
		if r.Type != "result" || r.From != alice || !strings.Contains(string(r.Raw), "<identityKey>SUs=</identityKey>") {
			t.Fatalf("%s fetching alice's open bundle: %s", c.JID, r.Raw)
		}
	}
}

// TestFederationPresenceProbes: bob's server probes alice's when he comes
// online and alice's server answers with her current presence; after
// both unsubscribe no presence flows either way, probes included.
func TestFederationPresenceProbes(t *testing.T) {
	t.Parallel()
	_, b, ac, bc := federatedContacts(t)
	const alice, bob = fedAlice, fedBob
	// The approvals bring each other's current presence.
	ac.Expect("bob's presence on approval", testserver.PresenceFrom(bob, ""))
	bc.Expect("alice's presence on approval", testserver.PresenceFrom(alice, ""))
	ac.Send("<presence><show>dnd</show><status>in a meeting</status></presence>")
	bc.Expect("alice's dnd", func(s *wire.Stanza) bool {
		return s.Name == "presence" && s.From == ac.JID && s.Child(wire.NSClient, "show").Text() == "dnd"
	})
	bc.Close()
	ac.Expect("bob unavailable", testserver.PresenceFrom(bob, "unavailable"))

	// Bob comes back: the probe's answer is alice's current presence.
	bc = b.Login("bob", "pw2", "laptop")
	bc.Send("<presence/>")
	p := bc.Expect("probe answer", testserver.PresenceFrom(alice, ""))
	if p.From != ac.JID || p.Child(wire.NSClient, "show").Text() != "dnd" || p.Child(wire.NSClient, "status").Text() != "in a meeting" {
		t.Fatalf("probe answer: %s", p.Raw)
	}
	ac.Expect("bob available again", testserver.PresenceFrom(bob, ""))

	// Both directions end.
	bc.Send("<presence to='%s' type='unsubscribe'/>", alice)
	ac.Expect("bob's unsubscribe", testserver.PresenceFrom(bob, "unsubscribe"))
	bc.Expect("alice unavailable after unsubscribe", testserver.PresenceFrom(alice, "unavailable"))
	bc.Send("<presence to='%s' type='unsubscribed'/>", alice)
	ac.Expect("bob's unsubscribed", testserver.PresenceFrom(bob, "unsubscribed"))
	ac.Expect("bob unavailable after unsubscribed", testserver.PresenceFrom(bob, "unavailable"))
	ac.Send("<presence><show>away</show></presence>")
	bc.Send("<presence><show>xa</show></presence>")
	anyPresenceFrom := func(bare string) func(*wire.Stanza) bool {
		return func(s *wire.Stanza) bool {
			return s.Name == "presence" && (s.Type == "" || s.Type == "unavailable") && strings.HasPrefix(s.From, bare)
		}
	}
	bc.ExpectNone("alice's presence after unsubscribe", 300*time.Millisecond, anyPresenceFrom(alice))
	ac.ExpectNone("bob's presence after unsubscribed", 10*time.Millisecond, anyPresenceFrom(bob))
	// No probe answer either when bob comes back.
	bc.Close()
	bc = b.Login("bob", "pw2", "laptop")
	bc.Send("<presence/>")
	bc.ExpectNone("a probe answer after unsubscribe", 500*time.Millisecond, anyPresenceFrom(alice))
	ac.ExpectNone("bob's presence after unsubscribed", 10*time.Millisecond, anyPresenceFrom(bob))
}

// mamEntry is one MAM result: the archive id and the forwarded message.
type mamEntry struct {
	id, from, to, body string
}

// mamAll fetches a whole (small) archive.
func mamAll(t *testing.T, c *testserver.Client, qid string) []mamEntry {
	t.Helper()
	c.Send("<iq type='set' id='%s'><query xmlns='%s' queryid='%s'/></iq>", qid, nsMAM, qid)
	var out []mamEntry
	for {
		s := c.Expect("mam result or fin "+qid, func(s *wire.Stanza) bool {
			return s.ID == qid || (s.Child(nsMAM, "result") != nil && s.Child(nsMAM, "result").AttrValue("queryid") == qid)
		})
		if s.ID == qid {
			if s.Type != "result" || s.Child(nsMAM, "fin").AttrValue("complete") != "true" {
				t.Fatalf("mam %s: %s", qid, s.Raw)
			}
			return out
		}
		res := s.Child(nsMAM, "result")
		msg := res.Child(nsForward, "forwarded").Child(wire.NSClient, "message")
		out = append(out, mamEntry{id: res.AttrValue("id"), from: msg.AttrValue("from"), to: msg.AttrValue("to"),
			body: msg.ChildText(wire.NSClient, "body")})
	}
}

// ownStanzaID returns the id of m's stanza-id by bare, failing unless
// there is exactly one stanza-id and it is by bare.
func ownStanzaID(t *testing.T, m *wire.Stanza, bare string) string {
	t.Helper()
	sids := m.Tree().ChildrenNamed(nsSID, "stanza-id")
	if len(sids) != 1 || sids[0].AttrValue("by") != bare || sids[0].AttrValue("id") == "" {
		t.Fatalf("want exactly one stanza-id by %s: %s", bare, m.Raw)
	}
	return sids[0].AttrValue("id")
}

// TestFederationMAMStanzaIDs: each side archives a federated conversation
// in its user's archive; the stanza-ids the live messages carried are the
// ids MAM returns, and a forged stanza-id for the recipient's archive
// coming over s2s is stripped.
func TestFederationMAMStanzaIDs(t *testing.T) {
	t.Parallel()
	_, _, ac, bc := federatedContacts(t)
	const alice, bob = fedAlice, fedBob

	ac.Send("<message to='%s' type='chat' id='m1'><body>one from a</body></message>", bob)
	bobSID := ownStanzaID(t, bc.Expect("one", isMsg("one from a")), bob)
	bc.Send("<message to='%s' type='chat' id='m2'><body>two from b</body></message>", alice)
	aliceSID2 := ownStanzaID(t, ac.Expect("two", isMsg("two from b")), alice)
	// A forged stanza-id claiming to be from alice's archive.
	bc.Send("<message to='%s' type='chat' id='m3'><body>three forged</body><stanza-id xmlns='%s' by='%s' id='forged'/></message>",
		alice, nsSID, alice)
	m3 := ac.Expect("three", isMsg("three forged"))
	aliceSID3 := ownStanzaID(t, m3, alice)
	if aliceSID3 == "forged" || strings.Contains(string(m3.Raw), "forged'") || strings.Contains(string(m3.Raw), `"forged"`) {
		t.Fatalf("forged stanza-id delivered: %s", m3.Raw)
	}

	check := func(c *testserver.Client, qid string, want []mamEntry) {
		t.Helper()
		got := mamAll(t, c, qid)
		if len(got) != len(want) {
			t.Fatalf("%s archive: %d entries %+v, want %d", c.JID, len(got), got, len(want))
		}
		for i := range want {
			if got[i].body != want[i].body || !strings.HasPrefix(got[i].from, want[i].from) || (want[i].id != "" && got[i].id != want[i].id) || got[i].id == "" {
				t.Fatalf("%s archive entry %d = %+v, want %+v", c.JID, i, got[i], want[i])
			}
		}
	}
	check(ac, "qa", []mamEntry{{from: alice, body: "one from a"}, {id: aliceSID2, from: bob, body: "two from b"},
		{id: aliceSID3, from: bob, body: "three forged"}})
	check(bc, "qb", []mamEntry{{id: bobSID, from: alice, body: "one from a"}, {from: bob, body: "two from b"},
		{from: bob, body: "three forged"}})
}

// TestFederationPushToRemoteAppServer: alice@a.test registers two app
// servers that are clients on b.test; while she is offline a message
// makes a.test publish the summary (no body) across s2s to both within a
// second; the one that answers with a cancel error loses its
// registration, the other keeps it.
func TestFederationPushToRemoteAppServer(t *testing.T) {
	t.Parallel()
	a, b := federatedPair(t)
	b.AddUser("appserver", "pw3")
	const alice = fedAlice
	good := b.Login("appserver", "pw3", "good")
	bad := b.Login("appserver", "pw3", "bad")
	ac := a.Login("alice", "pw1", "phone")
	requirePush(t, ac, alice)
	for i, app := range []*testserver.Client{good, bad} {
		id := fmt.Sprintf("e%d", i)
		r := ac.IQ(id, "<iq type='set' id='%s'><enable xmlns='%s' jid='%s' node='node-%d'>%s</enable></iq>", id, nsPush, app.JID, i, pushForm)
		if r.Type != "result" {
			t.Fatalf("enable: %s", r.Raw)
		}
	}
	ac.Close()
	a.WaitOffline(alice)

	bc := b.Login("bob", "pw2", "desk")
	bc.Send("<message to='%s' type='chat' id='m1'><body>secret body words</body></message>", alice)
	iq := expectPushWithin(t, good, time.Second)
	checkNotification(t, iq, alice, "node-0", bc.JID, "secret body words")
	good.Send("<iq type='result' id='%s' to='%s'/>", wire.EscapeAttr(iq.ID), wire.EscapeAttr(iq.From))
	iq = expectPushWithin(t, bad, time.Second)
	checkNotification(t, iq, alice, "node-1", bc.JID, "secret body words")
	bad.Send("<iq type='error' id='%s' to='%s'><error type='cancel'><item-not-found xmlns='%s'/></error></iq>",
		wire.EscapeAttr(iq.ID), wire.EscapeAttr(iq.From), nsStanzas)
	bc.ExpectNone("an error for the message", 200*time.Millisecond, func(s *wire.Stanza) bool { return s.Type == "error" })

	deadline := time.Now().Add(3 * time.Second)
	for {
		regs, err := a.Store().Pushes(context.Background(), alice)
		if err != nil {
			t.Fatal(err)
		}
		var jids []string
		for _, r := range regs {
			jids = append(jids, r.JID)
		}
		if len(jids) == 1 && jids[0] == good.JID {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("registrations after the remote error: %v, want only %s", jids, good.JID)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestFederationIQErrors: IQs to accounts and resources that do not exist
// on the other domain are answered with an error, never silence.
func TestFederationIQErrors(t *testing.T) {
	t.Parallel()
	a, b := federatedPair(t)
	ac := a.Login("alice", "pw1", "phone")
	bc := b.Login("bob", "pw2", "laptop")
	bc.Send("<presence/>")

	errCond := func(r *wire.Stanza) string {
		if r.Type != "error" {
			return ""
		}
		for _, c := range r.Child(wire.NSClient, "error").Elements() {
			if c.Name.Space == nsStanzas && c.Name.Local != "text" {
				return c.Name.Local
			}
		}
		return "?"
	}
	// RFC 6121 §8.5.1 and §8.5.3.2.1: service-unavailable, from the
	// address the IQ was sent to.
	for _, tc := range []struct{ id, to, payload string }{
		{"vcard-nobody", "nobody@b.test", "<vCard xmlns='vcard-temp'/>"},
		{"pubsub-nobody", "nobody@b.test", "<pubsub xmlns='" + nsPubSub + "'><items node='" + nsNick + "'/></pubsub>"},
		{"ping-nobody", "nobody@b.test", "<ping xmlns='urn:xmpp:ping'/>"},
		{"version-ghost", "bob@b.test/ghost", "<query xmlns='jabber:iq:version'/>"},
		{"unknown-ns", "bob@b.test", "<query xmlns='urn:example:nothing'/>"},
	} {
		r := ac.IQ(tc.id, "<iq type='get' id='%s' to='%s'>%s</iq>", tc.id, tc.to, tc.payload)
		if errCond(r) != "service-unavailable" || r.From != tc.to {
			t.Errorf("%s: want service-unavailable from %s, got %s", tc.id, tc.to, r.Raw)
		}
	}
	// A message to a nonexistent remote account bounces too.
	ac.Send("<message to='nobody@b.test' type='chat' id='mx'><body>anyone?</body></message>")
	if e := ac.Expect("bounce", func(s *wire.Stanza) bool { return s.ID == "mx" }); errCond(e) != "service-unavailable" {
		t.Fatalf("message to a nonexistent remote account: %s", e.Raw)
	}
}
