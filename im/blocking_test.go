package im

import (
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/parley-xmpp/parley/internal/modtest"
	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/wire"
	"github.com/parley-xmpp/parley/xep"
)

func TestBlockSetMatching(t *testing.T) {
	set := blockSet{
		"full@example.com/res": true,
		"bare@example.com":     true,
		"example.net/res":      true,
		"evil.example":         true,
	}
	for j, want := range map[string]bool{
		"full@example.com/res":   true,
		"full@example.com/other": false,
		"full@example.com":       false,
		"bare@example.com":       true,
		"bare@example.com/any":   true,
		"example.net/res":        true,
		"example.net":            false,
		"user@example.net/res":   false,
		"evil.example":           true,
		"x@evil.example/r":       true,
		"evil.example/r":         true,
		"sub.evil.example":       false,
		"other@example.com":      false,
	} {
		if got := set.matches(jid.MustParse(j)); got != want {
			t.Errorf("matches(%s) = %v, want %v", j, got, want)
		}
	}
	if (blockSet)(nil).matchesString("a@b") {
		t.Error("empty set matches")
	}
}

func blockItemsOf(st *wire.Stanza, op string) []string {
	var out []string
	for _, it := range st.Child(xep.NSBlocking, op).ChildrenNamed(xep.NSBlocking, "item") {
		out = append(out, it.AttrValue("jid"))
	}
	return out
}

func isBlockPush(op string) func(*wire.Stanza) bool {
	return func(st *wire.Stanza) bool {
		return st.Name == "iq" && st.Type == "set" && st.Child(xep.NSBlocking, op) != nil
	}
}

func TestBlocking(t *testing.T) {
	e := setup(t, Config{})
	a := e.online(alice + "/a")
	a2 := e.online(alice + "/a2") // does not request the block list
	b := e.online(bob + "/b")
	subscribe(t, e, b, a) // bob sees alice's presence
	subscribe(t, e, a, b)

	res := e.iq(a, "<iq type='get' id='bl1'><blocklist xmlns='urn:xmpp:blocking'/></iq>")
	if bl := res.Child(xep.NSBlocking, "blocklist"); bl == nil || len(bl.Elements()) != 0 {
		t.Fatalf("empty block list: %s", res.Raw)
	}
	// Warm the cache with the empty list, to check invalidation.
	e.send(b, "<message to='%s' type='chat'><body>before</body></message>", alice)
	a.Expect(t, "message before blocking", msg("before"))
	a.Take()
	a2.Take()

	res = e.iq(a, "<iq type='set' id='blk'><block xmlns='urn:xmpp:blocking'><item jid='Bob@example.org'/></block></iq>")
	if res.Type != "result" {
		t.Fatalf("block: %s", res.Raw)
	}
	push := a.Expect(t, "block push", isBlockPush("block"))
	if got := blockItemsOf(push, "block"); len(got) != 1 || got[0] != bob || push.To != a.JID().String() {
		t.Errorf("block push: %s", push.Raw)
	}
	a2.ExpectNone(t, "block push to a resource that did not ask", isBlockPush("block"))
	// Bob sees alice go offline (both her resources).
	b.Expect(t, "unavailable from a", pres("unavailable", a.JID().String()))
	b.Expect(t, "unavailable from a2", pres("unavailable", a2.JID().String()))

	res = e.iq(a, "<iq type='get' id='bl2'><blocklist xmlns='urn:xmpp:blocking'/></iq>")
	if got := blockItemsOf(res, "blocklist"); len(got) != 1 || got[0] != bob {
		t.Errorf("block list: %s", res.Raw)
	}

	// Inbound from bob: message bounced, presence dropped, IQ refused.
	e.send(b, "<message to='%s' type='chat' id='m1'><body>hello?</body></message>", alice)
	a.ExpectNone(t, "message from blocked", msg("hello?"))
	a2.ExpectNone(t, "message from blocked", msg("hello?"))
	wantErr(t, b.Expect(t, "bounce", func(st *wire.Stanza) bool { return st.ID == "m1" }), wire.ErrServiceUnavailable)
	e.send(b, "<presence><show>away</show></presence>")
	a.ExpectNone(t, "presence from blocked", pres("", b.JID().String()))
	e.send(b, "<presence to='%s' type='subscribe'/>", alice)
	a.ExpectNone(t, "subscription from blocked", pres("subscribe", bob))
	res = e.iq(b, "<iq type='get' id='q1' to='%s'><query xmlns='jabber:iq:version'/></iq>", a.JID())
	wantErr(t, res, wire.ErrServiceUnavailable)
	a.ExpectNone(t, "iq from blocked", func(st *wire.Stanza) bool { return st.ID == "q1" })
	if got := append(a.Take(), a2.Take()...); len(got) != 0 {
		t.Errorf("alice received from blocked bob: %s", modtest.Dump(got))
	}
	b.Take()

	// Outbound to bob: not-acceptable with <blocked/>; presence dropped.
	e.send(a, "<message to='%s' type='chat' id='m2'><body>hi</body></message>", bob)
	st := a.Expect(t, "blocked error", func(st *wire.Stanza) bool { return st.ID == "m2" })
	wantErr(t, st, wire.ErrNotAcceptable)
	if st.Child(wire.NSClient, "error").Child(xep.NSBlockingErr, "blocked") == nil || st.From != bob {
		t.Errorf("blocked error: %s", st.Raw)
	}
	b.ExpectNone(t, "message to blocked", msg("hi"))
	e.send(a, "<presence to='%s'/>", bob)
	e.send(a, "<presence><show>xa</show></presence>")
	b.ExpectNone(t, "presence to blocked", pres("", a.JID().String()))
	a.ExpectNone(t, "error for presence", func(st *wire.Stanza) bool { return st.Type == "error" })

	// Unblock: pushes, and bob gets alice's current presence again.
	res = e.iq(a, "<iq type='set' id='ub'><unblock xmlns='urn:xmpp:blocking'><item jid='bob@example.org'/></unblock></iq>")
	if res.Type != "result" {
		t.Fatalf("unblock: %s", res.Raw)
	}
	push = a.Expect(t, "unblock push", isBlockPush("unblock"))
	if got := blockItemsOf(push, "unblock"); len(got) != 1 || got[0] != bob {
		t.Errorf("unblock push: %s", push.Raw)
	}
	if p := b.Expect(t, "presence after unblock", pres("", a.JID().String())); p.Child(wire.NSClient, "show").Text() != "xa" {
		t.Errorf("presence after unblock: %s", p.Raw)
	}
	e.send(b, "<message to='%s' type='chat'><body>after</body></message>", alice)
	a.Expect(t, "message after unblock", msg("after"))
}

func TestBlockDomainAndUnblockAll(t *testing.T) {
	e := setup(t, Config{Limits: Limits{MaxBlockItems: 3}})
	a := e.online(alice + "/a")
	e.iq(a, "<iq type='get' id='bl'><blocklist xmlns='urn:xmpp:blocking'/></iq>")
	res := e.iq(a, "<iq type='set' id='b1'><block xmlns='urn:xmpp:blocking'><item jid='evil.example'/><item jid='example.org/bot'/></block></iq>")
	if res.Type != "result" {
		t.Fatalf("block: %s", res.Raw)
	}
	a.Take()
	remote := func(from string) {
		st := wire.MustParse("<message from='" + from + "' to='alice@example.org' type='chat'><body>spam</body></message>")
		e.Router.Route(e.Ctx, st, module.Origin{Kind: module.FromServer})
	}
	remote("x@evil.example/r")
	remote("evil.example")
	a.ExpectNone(t, "message from blocked domain", msg("spam"))
	remote("x@good.example/r")
	a.Expect(t, "message from other domain", msg("spam"))

	// The user's own server is never blocked, even when blocked by name.
	res = e.iq(a, "<iq type='set' id='b2'><block xmlns='urn:xmpp:blocking'><item jid='example.org'/></block></iq>")
	if res.Type != "result" {
		t.Fatalf("block own domain: %s", res.Raw)
	}
	if res := e.iq(a, "<iq type='get' id='bl2'><blocklist xmlns='urn:xmpp:blocking'/></iq>"); res.Type != "result" {
		t.Errorf("IQ to own account after blocking own domain: %s", res.Raw)
	}

	// Limit.
	res = e.iq(a, "<iq type='set' id='b3'><block xmlns='urn:xmpp:blocking'><item jid='one.example'/></block></iq>")
	wantErr(t, res, wire.ErrNotAllowed)
	// Errors.
	wantErr(t, e.iq(a, "<iq type='set' id='b4'><block xmlns='urn:xmpp:blocking'/></iq>"), wire.ErrBadRequest)
	wantErr(t, e.iq(a, "<iq type='set' id='b5'><block xmlns='urn:xmpp:blocking'><item jid='a@b@c'/></block></iq>"), wire.ErrBadRequest)
	wantErr(t, e.iq(a, "<iq type='set' id='b6'><unblock xmlns='urn:xmpp:blocking'><item jid=''/></unblock></iq>"), wire.ErrBadRequest)
	a.Take()

	// Unblock all.
	res = e.iq(a, "<iq type='set' id='ua'><unblock xmlns='urn:xmpp:blocking'/></iq>")
	if res.Type != "result" {
		t.Fatalf("unblock all: %s", res.Raw)
	}
	push := a.Expect(t, "unblock-all push", isBlockPush("unblock"))
	if len(blockItemsOf(push, "unblock")) != 0 {
		t.Errorf("unblock-all push: %s", push.Raw)
	}
	if list, _ := e.Store.BlockList(e.Ctx, alice); len(list) != 0 {
		t.Errorf("block list after unblock all: %v", list)
	}
	remote("x@evil.example/r")
	a.Expect(t, "message after unblock all", msg("spam"))
}
