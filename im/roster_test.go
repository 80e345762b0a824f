package im

import (
	"strings"
	"testing"

	"github.com/parley-xmpp/parley/internal/modtest"
	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/wire"
	"github.com/parley-xmpp/parley/xep"
)

const (
	alice = "alice@example.org"
	bob   = "bob@example.org"
	carol = "carol@example.org"
)

func TestRosterGetSetRemoveAndVersioning(t *testing.T) {
	e := setup(t, Config{})
	a := e.Login(alice + "/a")
	a2 := e.Login(alice + "/a2") // never asks for the roster: no pushes

	res := e.iq(a, "<iq type='get' id='g1'><query xmlns='jabber:iq:roster' ver=''/></iq>")
	q := res.Child(xep.NSRoster, "query")
	if res.Type != "result" || q == nil || len(q.Elements()) != 0 || !q.HasAttr("ver") {
		t.Fatalf("empty roster: %s", res.Raw)
	}
	if a.Flags()&module.FlagInterested == 0 {
		t.Fatal("roster get did not mark the session interested")
	}
	ver0 := q.AttrValue("ver")

	res = e.iq(a, "<iq type='set' id='s1'><query xmlns='jabber:iq:roster'><item jid='Bob@Example.org' name='Bob' subscription='both' ask='subscribe'><group>Friends</group><group>Work</group></item></query></iq>")
	if res.Type != "result" {
		t.Fatalf("roster set: %s", res.Raw)
	}
	push := a.Expect(t, "roster push", rosterPush(bob))
	if push.From != "" || push.To != a.JID().String() {
		t.Errorf("push addresses: %s", push.Raw)
	}
	pq := push.Child(xep.NSRoster, "query")
	ver1 := pq.AttrValue("ver")
	if ver1 == "" || ver1 == ver0 {
		t.Errorf("push ver %q (before %q)", ver1, ver0)
	}
	it := pq.Child(xep.NSRoster, "item")
	// The client's subscription and ask attributes are ignored.
	if it.AttrValue("subscription") != "none" || it.HasAttr("ask") || it.AttrValue("name") != "Bob" || len(it.ChildrenNamed(xep.NSRoster, "group")) != 2 {
		t.Errorf("pushed item: %s", push.Raw)
	}
	a2.ExpectNone(t, "push to uninterested resource", rosterPush(bob))

	// Unchanged since ver1: empty result.
	res = e.iq(a, "<iq type='get' id='g2'><query xmlns='jabber:iq:roster' ver='%s'/></iq>", ver1)
	if res.Type != "result" || res.Child(xep.NSRoster, "query") != nil {
		t.Errorf("get with current ver: %s", res.Raw)
	}
	// Old version: the full roster with the current version.
	res = e.iq(a, "<iq type='get' id='g3'><query xmlns='jabber:iq:roster' ver='%s'/></iq>", ver0)
	q = res.Child(xep.NSRoster, "query")
	if q == nil || q.AttrValue("ver") != ver1 || len(q.Elements()) != 1 || q.Elements()[0].AttrValue("jid") != bob {
		t.Errorf("get with old ver: %s", res.Raw)
	}
	// No ver: full roster.
	res = e.iq(a, "<iq type='get' id='g4'><query xmlns='jabber:iq:roster'/></iq>")
	if q := res.Child(xep.NSRoster, "query"); q == nil || len(q.Elements()) != 1 {
		t.Errorf("get without ver: %s", res.Raw)
	}

	// Update: name and groups change.
	e.iq(a, "<iq type='set' id='s2'><query xmlns='jabber:iq:roster'><item jid='bob@example.org' name='Robert'/></query></iq>")
	push = a.Expect(t, "update push", rosterPush(bob))
	if it := push.Child(xep.NSRoster, "query").Child(xep.NSRoster, "item"); it.AttrValue("name") != "Robert" || len(it.Elements()) != 0 {
		t.Errorf("update push: %s", push.Raw)
	}
	if got := e.item(alice, bob); got.Name != "Robert" || len(got.Groups) != 0 {
		t.Errorf("stored item %+v", got)
	}

	// Remove.
	res = e.iq(a, "<iq type='set' id='s3'><query xmlns='jabber:iq:roster'><item jid='bob@example.org' subscription='remove'/></query></iq>")
	if res.Type != "result" {
		t.Fatalf("remove: %s", res.Raw)
	}
	push = a.Expect(t, "remove push", rosterPush(bob))
	if push.Child(xep.NSRoster, "query").Child(xep.NSRoster, "item").AttrValue("subscription") != "remove" {
		t.Errorf("remove push: %s", push.Raw)
	}
	if e.item(alice, bob).JID != "" {
		t.Error("item still stored")
	}
	res = e.iq(a, "<iq type='set' id='s4'><query xmlns='jabber:iq:roster'><item jid='bob@example.org' subscription='remove'/></query></iq>")
	wantErr(t, res, wire.ErrItemNotFound)
}

func TestRosterSetErrors(t *testing.T) {
	e := setup(t, Config{Limits: Limits{MaxRosterItems: 2}})
	a := e.Login(alice + "/a")
	long := strings.Repeat("x", MaxNameLength+1)
	for _, c := range []struct{ name, payload, cond string }{
		{"two items", "<item jid='x@example.org'/><item jid='y@example.org'/>", wire.ErrBadRequest},
		{"no items", "", wire.ErrBadRequest},
		{"no jid", "<item name='x'/>", wire.ErrBadRequest},
		{"bad jid", "<item jid='a@b@c'/>", wire.ErrJIDMalformed},
		{"duplicate group", "<item jid='x@example.org'><group>A</group><group>A</group></item>", wire.ErrBadRequest},
		{"empty group", "<item jid='x@example.org'><group></group></item>", wire.ErrNotAcceptable},
		{"long name", "<item jid='x@example.org' name='" + long + "'/>", wire.ErrNotAcceptable},
		{"long group", "<item jid='x@example.org'><group>" + long + "</group></item>", wire.ErrNotAcceptable},
	} {
		res := e.iq(a, "<iq type='set' id='e'><query xmlns='jabber:iq:roster'>%s</query></iq>", c.payload)
		if got := modtest.ErrCondition(res); got != c.cond {
			t.Errorf("%s: got %q, want %s: %s", c.name, got, c.cond, res.Raw)
		}
	}
	for _, j := range []string{"x@example.org", "y@example.org"} {
		if res := e.iq(a, "<iq type='set' id='ok'><query xmlns='jabber:iq:roster'><item jid='%s'/></query></iq>", j); res.Type != "result" {
			t.Fatalf("set %s: %s", j, res.Raw)
		}
	}
	res := e.iq(a, "<iq type='set' id='full'><query xmlns='jabber:iq:roster'><item jid='z@example.org'/></query></iq>")
	wantErr(t, res, wire.ErrNotAllowed)
	if !strings.Contains(string(res.Raw), "limited to 2 items") {
		t.Errorf("limit error text: %s", res.Raw)
	}
	// Updating an existing item is still possible at the limit.
	if res := e.iq(a, "<iq type='set' id='upd'><query xmlns='jabber:iq:roster'><item jid='x@example.org' name='X'/></query></iq>"); res.Type != "result" {
		t.Errorf("update at limit: %s", res.Raw)
	}
}

func TestOtherUsersRosterForbidden(t *testing.T) {
	e := setup(t, Config{})
	a := e.Login(alice + "/a")
	m := e.Login("mallory@example.org/m")
	e.iq(a, "<iq type='set' id='s1'><query xmlns='jabber:iq:roster'><item jid='friend@example.org'/></query></iq>")

	res := e.iq(m, "<iq type='get' id='x1' to='%s'><query xmlns='jabber:iq:roster'/></iq>", alice)
	wantErr(t, res, wire.ErrForbidden)
	if strings.Contains(string(res.Raw), "friend") {
		t.Errorf("roster leaked: %s", res.Raw)
	}
	res = e.iq(m, "<iq type='set' id='x2' to='%s'><query xmlns='jabber:iq:roster'><item jid='mallory@example.org'/></query></iq>", alice)
	wantErr(t, res, wire.ErrForbidden)
	if e.item(alice, "mallory@example.org").JID != "" {
		t.Error("mallory changed alice's roster")
	}
	res = e.iq(m, "<iq type='get' id='x3' to='%s'><blocklist xmlns='urn:xmpp:blocking'/></iq>", alice)
	wantErr(t, res, wire.ErrForbidden)
	res = e.iq(m, "<iq type='set' id='x4' to='%s'><unblock xmlns='urn:xmpp:blocking'/></iq>", alice)
	wantErr(t, res, wire.ErrForbidden)
	// The own bare JID as 'to' is fine.
	if res := e.iq(a, "<iq type='get' id='x5' to='%s'><query xmlns='jabber:iq:roster'/></iq>", alice); res.Type != "result" {
		t.Errorf("own roster with to: %s", res.Raw)
	}
}

func TestStreamFeaturesAndDisco(t *testing.T) {
	e := setup(t, Config{})
	var got []string
	for _, f := range e.Registry.StreamFeatures() {
		if el := f(false); el != nil {
			t.Errorf("feature before authentication: %s", el)
		}
		if el := f(true); el != nil {
			got = append(got, el.String())
		}
	}
	want := []string{"<ver xmlns='urn:xmpp:features:rosterver'/>", "<sub xmlns='urn:xmpp:features:pre-approval'/>"}
	if strings.Join(got, "") != strings.Join(want, "") {
		t.Errorf("stream features %v, want %v", got, want)
	}
	feats := strings.Join(e.Registry.Features(), " ")
	for _, f := range []string{xep.NSBlocking, xep.NSOffline} {
		if !strings.Contains(feats, f) {
			t.Errorf("feature %s missing from %s", f, feats)
		}
	}
}
