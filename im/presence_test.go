package im

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/internal/modtest"
	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/storage"
	"github.com/parley-xmpp/parley/wire"
	"github.com/parley-xmpp/parley/xep"
)

func TestInitialPresenceBroadcastAndProbes(t *testing.T) {
	e := setup(t, Config{})
	a := e.online(alice + "/a")
	b := e.online(bob + "/b")
	subscribe(t, e, a, b)
	subscribe(t, e, b, a)
	e.send(b, "<presence><show>away</show><status>lunch</status><priority>5</priority></presence>")
	a.Expect(t, "bob's update", func(st *wire.Stanza) bool {
		return st.Name == "presence" && st.From == b.JID().String() && st.Child(wire.NSClient, "show").Text() == "away"
	})
	b.Expect(t, "echo of bob's own presence", pres("", b.JID().String()))

	// A second resource of alice comes online.
	a2 := e.Login(alice + "/a2")
	e.send(a2, "<presence><status>second</status></presence>")
	if a2.Presence() == nil || a2.Flags()&module.FlagInitialPresenceSent == 0 {
		t.Fatal("initial presence not recorded on the session")
	}
	// Bob (subscribed from) gets it from the full JID.
	p := b.Expect(t, "a2's initial presence", pres("", a2.JID().String()))
	if p.To != bob || p.Child(wire.NSClient, "status").Text() != "second" {
		t.Errorf("broadcast: %s", p.Raw)
	}
	// Alice's first resource gets it too, and a2 gets a's presence.
	if p := a.Expect(t, "a2's presence at a", pres("", a2.JID().String())); p.To != a.JID().String() {
		t.Errorf("to own resource: %s", p.Raw)
	}
	if p := a2.Expect(t, "a's presence at a2", pres("", a.JID().String())); p.To != a2.JID().String() {
		t.Errorf("own resource's presence: %s", p.Raw)
	}
	// The probe answer: bob's last presence, from his full JID.
	p = a2.Expect(t, "bob's presence via probe", pres("", b.JID().String()))
	if p.Child(wire.NSClient, "show").Text() != "away" {
		t.Errorf("probe answer is not bob's last presence: %s", p.Raw)
	}
	a2.Expect(t, "echo", pres("", a2.JID().String()))
	// Probes are never delivered to clients.
	for _, s := range []*modtest.Session{a, a2, b} {
		s.ExpectNone(t, "probe", func(st *wire.Stanza) bool { return st.Type == "probe" })
	}

	// Unavailable: contacts, own resources and the sender itself.
	e.send(a2, "<presence type='unavailable'><status>bye</status></presence>")
	if a2.Presence() != nil {
		t.Error("presence not cleared")
	}
	if p := b.Expect(t, "a2 unavailable at bob", pres("unavailable", a2.JID().String())); p.Child(wire.NSClient, "status").Text() != "bye" {
		t.Errorf("unavailable: %s", p.Raw)
	}
	a.Expect(t, "a2 unavailable at a", pres("unavailable", a2.JID().String()))

	// Session end without unavailable presence.
	e.Logout(b)
	a.Expect(t, "bob gone", pres("unavailable", b.JID().String()))
}

func TestNoBroadcastWithoutSubscription(t *testing.T) {
	e := setup(t, Config{})
	a := e.online(alice + "/a")
	b := e.online(bob + "/b")
	subscribe(t, e, a, b) // alice sees bob; bob does not see alice
	e.send(a, "<presence><show>dnd</show></presence>")
	b.ExpectNone(t, "alice's presence without subscription", pres("", a.JID().String()))
	e.send(b, "<presence><show>chat</show></presence>")
	a.Expect(t, "bob's presence", pres("", b.JID().String()))
}

func TestDirectedPresence(t *testing.T) {
	e := setup(t, Config{})
	a := e.online(alice + "/a")
	b := e.online(bob + "/b")
	c := e.online(carol + "/c")
	subscribe(t, e, b, a) // bob gets alice's presence

	e.send(a, "<presence to='%s'><status>psst</status></presence>", carol)
	if p := c.Expect(t, "directed presence", pres("", a.JID().String())); p.Child(wire.NSClient, "status").Text() != "psst" {
		t.Errorf("directed: %s", p.Raw)
	}
	// Directed to a subscribed contact: covered by the subscription.
	e.send(a, "<presence to='%s'/>", b.JID())
	b.Expect(t, "directed to contact", pres("", a.JID().String()))

	// Carol, who got directed presence, may probe alice.
	st := wire.MustParse("<presence type='probe' from='carol@example.org/c' to='alice@example.org'/>")
	e.Router.Route(e.Ctx, st, module.Origin{Kind: module.FromLocal})
	c.Expect(t, "probe answer to directed-presence recipient", pres("", a.JID().String()))

	e.Logout(a)
	c.Expect(t, "unavailable to directed-presence recipient", pres("unavailable", a.JID().String()))
	b.Expect(t, "unavailable to contact", pres("unavailable", a.JID().String()))
	b.ExpectNone(t, "only one unavailable", pres("unavailable", a.JID().String()))

	// Directed unavailable withdraws it: no second unavailable at logout.
	a = e.Login(alice + "/a")
	e.send(a, "<presence to='%s'/>", carol)
	e.send(a, "<presence to='%s' type='unavailable'/>", carol)
	c.Take()
	e.Logout(a)
	c.ExpectNone(t, "unavailable after directed unavailable", pres("unavailable", a.JID().String()))
}

func TestProbeFromUnsubscribed(t *testing.T) {
	e := setup(t, Config{})
	e.online(alice + "/a")
	c := e.online(carol + "/c")
	probe := func(from string) {
		st := wire.MustParse("<presence type='probe' from='" + from + "' to='alice@example.org'/>")
		e.Router.Route(e.Ctx, st, module.Origin{Kind: module.FromLocal})
	}
	// Carol's side wrongly believes she is subscribed to alice.
	if _, err := e.Store.UpsertRosterItem(e.Ctx, carol, storage.RosterItem{JID: alice, Subscription: storage.SubTo}); err != nil {
		t.Fatal(err)
	}
	// A server probe (bare JID) without subscription: unsubscribed, which
	// brings carol's side back in line.
	probe(carol)
	c.Expect(t, "unsubscribed", pres("unsubscribed", alice))
	c.ExpectNone(t, "presence leak", pres("", alice+"/a"))
	e.wantState(carol, alice, "none")
	wantPush(t, c, alice, "none")
	// A client's probe (full JID) is ignored.
	probe(carol + "/c")
	if got := c.Take(); len(got) != 0 {
		t.Errorf("answer to a client probe: %s", modtest.Dump(got))
	}
}

func TestPresenceTypeErrors(t *testing.T) {
	e := setup(t, Config{})
	a := e.online(alice + "/a")
	e.send(a, "<presence type='bogus' id='p1'/>")
	st := a.Expect(t, "error", func(st *wire.Stanza) bool { return st.Type == "error" && st.ID == "p1" })
	wantErr(t, st, wire.ErrBadRequest)
	// A presence error from a client is routed like directed presence.
	b := e.online(bob + "/b")
	e.send(a, "<presence type='error' to='%s'><error type='cancel'><not-acceptable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></presence>", b.JID())
	b.Expect(t, "presence error", pres("error", a.JID().String()))
}

func TestOfflineMessages(t *testing.T) {
	e := setup(t, Config{Limits: Limits{MaxOfflineMessages: 2}})
	a := e.online(alice + "/a")
	e.Account(bob)

	e.send(a, "<message to='%s' type='chat' id='m1' xml:lang='en'><body>while you were out</body></message>", bob)
	e.send(a, "<message to='%s' type='chat' id='cs'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>", bob)
	e.send(a, "<message to='%s/gone' id='m2'><body>second</body></message>", bob)
	if n, _ := e.Store.CountOffline(e.Ctx, bob); n != 2 {
		t.Fatalf("%d messages stored, want 2", n)
	}
	// Quota reached.
	e.send(a, "<message to='%s' type='chat' id='m3'><body>third</body></message>", bob)
	st := a.Expect(t, "quota error", func(st *wire.Stanza) bool { return st.Name == "message" && st.Type == "error" })
	wantErr(t, st, wire.ErrResourceConstraint)
	if st.ID != "m3" || !strings.Contains(string(st.Raw), "offline storage for bob@example.org is full") {
		t.Errorf("quota error: %s", st.Raw)
	}
	a.ExpectNone(t, "errors for stored messages", func(st *wire.Stanza) bool { return st.Type == "error" })

	// Negative priority: no delivery (XEP-0160).
	b := e.Login(bob + "/neg")
	e.send(b, "<presence><priority>-1</priority></presence>")
	b.ExpectNone(t, "offline message at negative priority", msg("while you were out"))
	// Non-negative priority: delivered with delay, then deleted.
	b2 := e.Login(bob + "/b2")
	e.send(b2, "<presence/>")
	m1 := b2.Expect(t, "first offline message", msg("while you were out"))
	m2 := b2.Expect(t, "second offline message", msg("second"))
	for _, m := range []*wire.Stanza{m1, m2} {
		d := m.Child(xep.NSDelay, "delay")
		if d == nil || d.AttrValue("from") != domain {
			t.Fatalf("offline message without delay: %s", m.Raw)
		}
		ts, err := time.Parse(time.RFC3339, d.AttrValue("stamp"))
		if err != nil || time.Since(ts) > time.Minute || !strings.HasSuffix(d.AttrValue("stamp"), "Z") {
			t.Errorf("delay stamp %q: %v", d.AttrValue("stamp"), err)
		}
	}
	if m1.ID != "m1" || m1.From != a.JID().String() || m1.Type != "chat" || m1.Lang != "en" {
		t.Errorf("offline message changed: %s", m1.Raw)
	}
	if n, _ := e.Store.CountOffline(e.Ctx, bob); n != 0 {
		t.Errorf("%d messages left after delivery", n)
	}
	b3 := e.Login(bob + "/b3")
	e.send(b3, "<presence/>")
	b3.ExpectNone(t, "redelivery", msg("second"))
	b.ExpectNone(t, "delivery to the negative-priority resource", msg("second"))

	// A resource raising its priority from negative gets what was stored
	// meanwhile.
	for _, s := range []*modtest.Session{b2, b3} {
		e.send(s, "<presence><priority>-5</priority></presence>")
	}
	e.send(a, "<message to='%s' type='chat'><body>stored again</body></message>", bob)
	e.send(b, "<presence><priority>1</priority></presence>")
	b.Expect(t, "offline message after raising priority", msg("stored again"))

	// Online now: direct delivery, nothing stored.
	e.send(a, "<message to='%s' type='chat'><body>live</body></message>", bob)
	b.Expect(t, "live message", msg("live"))
	if n, _ := e.Store.CountOffline(e.Ctx, bob); n != 0 {
		t.Errorf("live message stored")
	}
}

// Many sessions coming and going at once (run with -race).
func TestConcurrentPresence(t *testing.T) {
	e := setup(t, Config{})
	a := e.online(alice + "/a")
	b := e.online(bob + "/b")
	subscribe(t, e, a, b)
	subscribe(t, e, b, a)
	done := make(chan struct{})
	for i := range 8 {
		go func() {
			defer func() { done <- struct{}{} }()
			for j := range 10 {
				s := e.Login(fmt.Sprintf("%s/r%d-%d", bob, i, j))
				e.send(s, "<presence/>")
				e.send(s, "<presence to='%s'/>", carol)
				e.send(a, "<message to='%s' type='chat'><body>x</body></message>", bob)
				e.Logout(s)
				// The end of the session consumed its directed presence
				// (carol got unavailable once).
				if v := module.Value(s, valDirected); v != nil {
					t.Errorf("%s: directed presence left after logout: %q", s.JID(), v)
				}
			}
		}()
	}
	for range 8 {
		<-done
	}
}
