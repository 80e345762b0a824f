package im

import (
	"testing"

	"github.com/parley-xmpp/parley/internal/modtest"
	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/wire"
	"github.com/parley-xmpp/parley/xep"
)

// pushState returns the subscription and ask of a pushed item.
func pushState(st *wire.Stanza) string {
	it := st.Child(xep.NSRoster, "query").Child(xep.NSRoster, "item")
	s := it.AttrValue("subscription")
	if it.AttrValue("ask") == "subscribe" {
		s += "+out"
	}
	if it.AttrValue("approved") == "true" {
		s += "+approved"
	}
	return s
}

func wantPush(t *testing.T, s *modtest.Session, contact, state string) {
	t.Helper()
	p := s.Expect(t, "roster push for "+contact, rosterPush(contact))
	if got := pushState(p); got != state {
		t.Errorf("push to %s for %s: %s, want %s", s.JID(), contact, got, state)
	}
}

// subscribe makes 'from' subscribe to 'to' and 'to' approve.
func subscribe(t *testing.T, e *env, from, to *modtest.Session) {
	t.Helper()
	e.send(from, "<presence to='%s' type='subscribe'/>", to.JID().Bare())
	e.send(to, "<presence to='%s' type='subscribed'/>", from.JID().Bare())
	from.Take()
	to.Take()
}

func TestSubscriptionRequestAndApproval(t *testing.T) {
	e := setup(t, Config{})
	a := e.online(alice + "/a")
	b := e.online(bob + "/b")

	// Alice asks, addressing a full JID with odd case: normalized to the
	// bare JID.
	e.send(a, "<presence to='Bob@example.org/b' type='subscribe' id='sub1'><status>hi</status></presence>")
	wantPush(t, a, bob, "none+out")
	req := b.Expect(t, "subscription request", pres("subscribe", alice))
	if req.To != bob || req.ID != "sub1" || req.Child(wire.NSClient, "status").Text() != "hi" {
		t.Errorf("request as delivered: %s", req.Raw)
	}
	b.ExpectNone(t, "no push for a request", rosterPush(alice))
	e.wantState(alice, bob, "none+out")
	e.wantState(bob, alice, "absent+in")

	// Bob approves.
	e.send(b, "<presence to='%s' type='subscribed'/>", alice)
	wantPush(t, b, alice, "from")
	wantPush(t, a, bob, "to")
	a.Expect(t, "approval", pres("subscribed", bob))
	if p := a.Expect(t, "bob's presence after approval", pres("", b.JID().String())); p.To != alice {
		t.Errorf("presence after approval: %s", p.Raw)
	}
	e.wantState(alice, bob, "to")
	e.wantState(bob, alice, "from")

	// And the other way round: both.
	e.send(b, "<presence to='%s' type='subscribe'/>", alice)
	wantPush(t, b, alice, "from+out")
	a.Expect(t, "request from bob", pres("subscribe", bob))
	e.wantState(alice, bob, "to+in")
	e.send(a, "<presence to='%s' type='subscribed'/>", bob)
	wantPush(t, a, bob, "both")
	wantPush(t, b, alice, "both")
	b.Expect(t, "approval from alice", pres("subscribed", alice))
	b.Expect(t, "alice's presence", pres("", a.JID().String()))
	e.wantState(alice, bob, "both")
	e.wantState(bob, alice, "both")

	// A repeated request is answered by bob's server without bothering
	// bob; alice's server ignores the answer, as she has no request
	// outstanding (RFC 6121 A.3.3).
	e.send(a, "<presence to='%s' type='subscribe'/>", bob)
	b.ExpectNone(t, "repeated request", pres("subscribe", alice))
	a.ExpectNone(t, "answer to the repeated request", pres("subscribed", bob))
	// A repeated approval is not routed.
	e.send(a, "<presence to='%s' type='subscribed'/>", bob)
	b.ExpectNone(t, "repeated approval", pres("subscribed", alice))
	e.wantState(alice, bob, "both")
	e.wantState(bob, alice, "both")
}

func TestSubscriptionDenied(t *testing.T) {
	e := setup(t, Config{})
	a := e.online(alice + "/a")
	b := e.online(bob + "/b")
	e.send(a, "<presence to='%s' type='subscribe'/>", bob)
	a.Take()
	b.Take()
	e.send(b, "<presence to='%s' type='unsubscribed'/>", alice)
	a.Expect(t, "denial", pres("unsubscribed", bob))
	wantPush(t, a, bob, "none")
	b.ExpectNone(t, "no presence from bob to alice", pres("", b.JID().String()))
	e.wantState(alice, bob, "none")
	e.wantState(bob, alice, "absent")
	// An unsolicited 'subscribed' later changes nothing and is not
	// delivered.
	e.send(b, "<presence to='%s' type='subscribed'/>", alice)
	a.ExpectNone(t, "unsolicited subscribed", pres("subscribed", bob))
	e.wantState(alice, bob, "none")
}

func TestPreApproval(t *testing.T) {
	e := setup(t, Config{})
	a := e.online(alice + "/a")
	b := e.online(bob + "/b")

	// Bob pre-approves alice: nothing is sent to her.
	e.send(b, "<presence to='%s' type='subscribed'/>", alice)
	wantPush(t, b, alice, "none+approved")
	a.ExpectNone(t, "pre-approval is not routed", pres("subscribed", bob))
	e.wantState(bob, alice, "none+approved")

	// Alice's request is approved at once.
	e.send(a, "<presence to='%s' type='subscribe'/>", bob)
	b.ExpectNone(t, "pre-approved request", pres("subscribe", alice))
	wantPush(t, b, alice, "from")
	a.Expect(t, "automatic approval", pres("subscribed", bob))
	a.Expect(t, "bob's presence", pres("", b.JID().String()))
	e.wantState(alice, bob, "to")
	e.wantState(bob, alice, "from")

	// Cancelling a pre-approval is local too.
	e.send(b, "<presence to='%s' type='subscribed'/>", carol)
	e.wantState(bob, carol, "none+approved")
	c := e.online(carol + "/c")
	e.send(b, "<presence to='%s' type='unsubscribed'/>", carol)
	c.ExpectNone(t, "pre-approval cancellation", pres("unsubscribed", bob))
	e.wantState(bob, carol, "none")
	e.send(c, "<presence to='%s' type='subscribe'/>", bob)
	b.Expect(t, "request after cancelled pre-approval", pres("subscribe", carol))
	e.wantState(bob, carol, "none+in")
}

func TestUnsubscribeAndCancel(t *testing.T) {
	e := setup(t, Config{})
	a := e.online(alice + "/a")
	b := e.online(bob + "/b")
	subscribe(t, e, a, b)
	subscribe(t, e, b, a)
	e.wantState(alice, bob, "both")

	// Alice unsubscribes from bob's presence.
	e.send(a, "<presence to='%s' type='unsubscribe'/>", bob)
	wantPush(t, a, bob, "from")
	wantPush(t, b, alice, "to")
	b.Expect(t, "unsubscribe", pres("unsubscribe", alice))
	a.Expect(t, "bob goes offline for alice", pres("unavailable", b.JID().String()))
	b.ExpectNone(t, "alice still sends presence", pres("unavailable", a.JID().String()))
	e.wantState(alice, bob, "from")
	e.wantState(bob, alice, "to")

	// Alice cancels bob's subscription to her.
	e.send(a, "<presence to='%s' type='unsubscribed'/>", bob)
	wantPush(t, a, bob, "none")
	wantPush(t, b, alice, "none")
	b.Expect(t, "cancellation", pres("unsubscribed", alice))
	b.Expect(t, "alice goes offline for bob", pres("unavailable", a.JID().String()))
	e.wantState(alice, bob, "none")
	e.wantState(bob, alice, "none")

	// Presence is no longer broadcast either way.
	e.send(a, "<presence><show>away</show></presence>")
	b.ExpectNone(t, "broadcast after cancel", pres("", a.JID().String()))
}

func TestRosterRemoveCancelsSubscriptions(t *testing.T) {
	e := setup(t, Config{})
	a := e.online(alice + "/a")
	b := e.online(bob + "/b")
	subscribe(t, e, a, b)
	subscribe(t, e, b, a)

	e.iq(a, "<iq type='set' id='rm'><query xmlns='jabber:iq:roster'><item jid='%s' subscription='remove'/></query></iq>", bob)
	wantPush(t, a, bob, "remove")
	b.Expect(t, "unsubscribe", pres("unsubscribe", alice))
	b.Expect(t, "unsubscribed", pres("unsubscribed", alice))
	b.Expect(t, "unavailable", pres("unavailable", a.JID().String()))
	wantPush(t, b, alice, "to") // after the unsubscribe
	wantPush(t, b, alice, "none")
	e.wantState(alice, bob, "absent")
	e.wantState(bob, alice, "none")

	// Removing an item with a pending request declines the request.
	e.send(b, "<presence to='%s' type='subscribe'/>", alice)
	e.wantState(alice, bob, "absent+in")
	e.iq(a, "<iq type='set' id='add'><query xmlns='jabber:iq:roster'><item jid='%s'/></query></iq>", bob)
	b.Take()
	e.iq(a, "<iq type='set' id='rm2'><query xmlns='jabber:iq:roster'><item jid='%s' subscription='remove'/></query></iq>", bob)
	b.Expect(t, "declined", pres("unsubscribed", alice))
	e.wantState(alice, bob, "absent")
	e.wantState(bob, alice, "none")
}

func TestPendingRequestRedeliveredAndUnknownUser(t *testing.T) {
	e := setup(t, Config{})
	a := e.online(alice + "/a")
	e.Account(bob)

	e.send(a, "<presence to='%s' type='subscribe'/>", bob)
	e.wantState(bob, alice, "absent+in")
	// Bob logs in later: the request arrives with initial presence.
	b := e.Login(bob + "/b")
	b.ExpectNone(t, "request before initial presence", pres("subscribe", alice))
	e.send(b, "<presence/>")
	b.Expect(t, "stored request", pres("subscribe", alice))
	e.Logout(b)
	// Still unanswered: delivered again next time.
	b = e.Login(bob + "/b2")
	e.send(b, "<presence/>")
	b.Expect(t, "stored request again", pres("subscribe", alice))
	e.send(b, "<presence to='%s' type='subscribed'/>", alice)
	e.wantState(bob, alice, "from")
	e.Logout(b)
	b = e.Login(bob + "/b3")
	e.send(b, "<presence/>")
	b.ExpectNone(t, "answered request", pres("subscribe", alice))

	// Requests to users that do not exist are dropped silently.
	a.Take()
	e.send(a, "<presence to='nobody@example.org' type='subscribe'/>")
	e.wantState(alice, "nobody@example.org", "none+out")
	if ps, _ := e.Store.PendingIn(e.Ctx, "nobody@example.org"); len(ps) != 0 {
		t.Errorf("pending request stored for a missing user: %v", ps)
	}
	a.ExpectNone(t, "error for a missing user", func(st *wire.Stanza) bool { return st.Type == "error" })

	// Subscribing to oneself is ignored.
	e.send(a, "<presence to='%s' type='subscribe'/>", alice)
	e.wantState(alice, alice, "absent")
}

func TestSubscriptionRosterLimit(t *testing.T) {
	e := setup(t, Config{Limits: Limits{MaxRosterItems: 1}})
	a := e.online(alice + "/a")
	e.online(bob + "/b")
	e.send(a, "<presence to='%s' type='subscribe'/>", carol)
	a.Take()
	e.send(a, "<presence to='%s' type='subscribe' id='x'/>", bob)
	st := a.Expect(t, "error", func(st *wire.Stanza) bool { return st.Name == "presence" && st.Type == "error" })
	wantErr(t, st, wire.ErrNotAllowed)
	e.wantState(alice, bob, "absent")
}

// Subscription stanzas from a remote server change only the local side.
func TestInboundSubscriptionFromRemote(t *testing.T) {
	e := setup(t, Config{})
	a := e.online(alice + "/a")
	in := func(typ string) {
		st := wire.MustParse("<presence from='romeo@remote.example/home' to='alice@example.org/a' type='" + typ + "'/>")
		e.Router.Route(e.Ctx, st, module.Origin{Kind: module.FromServer})
	}
	in("subscribe")
	req := a.Expect(t, "remote request", pres("subscribe", "romeo@remote.example"))
	if req.To != alice {
		t.Errorf("request not normalized to bare JIDs: %s", req.Raw)
	}
	e.wantState(alice, "romeo@remote.example", "absent+in")
	in("unsubscribe")
	a.Expect(t, "withdrawn request", pres("unsubscribe", "romeo@remote.example"))
	e.wantState(alice, "romeo@remote.example", "absent")
	in("subscribed")
	a.ExpectNone(t, "unsolicited subscribed", pres("subscribed", "romeo@remote.example"))
	e.wantState(alice, "romeo@remote.example", "absent")
}
