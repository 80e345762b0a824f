package pep

import (
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/wire"
	"github.com/parley-xmpp/parley/xep"
)

const (
	alice = "alice@" + domain
	bob   = "bob@" + domain
	eve   = "eve@" + domain
	tune  = "http://jabber.org/protocol/tune"
)

func TestCapsVerification(t *testing.T) {
	// XEP-0115 §5.2 simple generation example.
	q := wire.MustParse(`<query xmlns='http://jabber.org/protocol/disco#info'>
		<identity category='client' name='Exodus 0.9.1' type='pc'/>
		<feature var='http://jabber.org/protocol/caps'/>
		<feature var='http://jabber.org/protocol/disco#info'/>
		<feature var='http://jabber.org/protocol/disco#items'/>
		<feature var='http://jabber.org/protocol/muc'/></query>`).Tree()
	if !verifyCaps("sha-1", "QgayPKawpkPSDYmwT/WM94uAlu0=", q) {
		s, _ := capsString(q)
		t.Fatalf("simple example does not verify; S = %q", s)
	}
	if verifyCaps("sha-1", "AAAAPKawpkPSDYmwT/WM94uAlu0=", q) || verifyCaps("md5", "QgayPKawpkPSDYmwT/WM94uAlu0=", q) {
		t.Fatal("a wrong ver or unknown hash verified")
	}
	// §5.3 complex example, with an extended form.
	q = wire.MustParse(`<query xmlns='http://jabber.org/protocol/disco#info'>
		<identity xml:lang='en' category='client' name='Psi 0.11' type='pc'/>
		<identity xml:lang='el' category='client' name='Ψ 0.11' type='pc'/>
		<feature var='http://jabber.org/protocol/caps'/>
		<feature var='http://jabber.org/protocol/disco#info'/>
		<feature var='http://jabber.org/protocol/disco#items'/>
		<feature var='http://jabber.org/protocol/muc'/>
		<x xmlns='jabber:x:data' type='result'>
		<field var='FORM_TYPE' type='hidden'><value>urn:xmpp:dataforms:softwareinfo</value></field>
		<field var='ip_version'><value>ipv4</value><value>ipv6</value></field>
		<field var='os'><value>Mac</value></field>
		<field var='os_version'><value>10.5.1</value></field>
		<field var='software'><value>Psi</value></field>
		<field var='software_version'><value>0.11</value></field></x></query>`).Tree()
	if !verifyCaps("sha-1", "q07IKJEyjvHSyhy//CH0CxmKi8w=", q) {
		s, _ := capsString(q)
		t.Fatalf("complex example does not verify; S = %q", s)
	}
	dup := wire.MustParse(`<query xmlns='http://jabber.org/protocol/disco#info'><feature var='a'/><feature var='a'/></query>`).Tree()
	if _, ok := capsString(dup); ok {
		t.Fatal("duplicate features accepted")
	}
}

func TestPublishAutoCreateAndRetrieve(t *testing.T) {
	e := setup(t, Config{})
	a := e.login(alice + "/phone")
	r := e.ok(a, "%s", publishXML("p1", tune, "", "<tune xmlns='"+tune+"'><title>One</title></tune>", ""))
	id := r.Child(NSPubSub, "pubsub").Child(NSPubSub, "publish").Child(NSPubSub, "item").AttrValue("id")
	if id == "" {
		t.Fatalf("no generated item id: %s", r.Raw)
	}
	r = e.ok(a, "<iq type='get' id='g1'><pubsub xmlns='%s'><items node='%s'/></pubsub></iq>", NSPubSub, tune)
	if got := itemsOf(r); !slices.Equal(got, []string{id}) {
		t.Fatalf("items = %v, want [%s]: %s", got, id, r.Raw)
	}
	if !strings.Contains(string(r.Raw), "<title>One</title>") {
		t.Fatalf("payload missing: %s", r.Raw)
	}
	// Default max_items is 1: a second publish replaces the first.
	e.ok(a, "%s", publishXML("p2", tune, "second", "<tune xmlns='"+tune+"'><title>Two</title></tune>", ""))
	r = e.ok(a, "<iq type='get' id='g2'><pubsub xmlns='%s'><items node='%s'/></pubsub></iq>", NSPubSub, tune)
	if got := itemsOf(r); !slices.Equal(got, []string{"second"}) {
		t.Fatalf("items = %v, want [second]", got)
	}
	// Errors.
	e.fail(a, wire.ErrItemNotFound, "", "<iq type='get' id='g3'><pubsub xmlns='%s'><items node='nope'/></pubsub></iq>", NSPubSub)
	e.fail(a, wire.ErrBadRequest, "payload-required", "<iq type='set' id='p3'><pubsub xmlns='%s'><publish node='x'><item/></publish></pubsub></iq>", NSPubSub)
	e.fail(a, wire.ErrBadRequest, "invalid-payload", "<iq type='set' id='p4'><pubsub xmlns='%s'><publish node='x'><item><a xmlns='a'/><b xmlns='b'/></item></publish></pubsub></iq>", NSPubSub)
	e.fail(a, wire.ErrBadRequest, "nodeid-required", "<iq type='set' id='p5'><pubsub xmlns='%s'><publish><item><a xmlns='a'/></item></publish></pubsub></iq>", NSPubSub)
	e.fail(a, wire.ErrFeatureNotImplemented, "unsupported", "<iq type='set' id='s1'><pubsub xmlns='%s'><subscribe node='%s' jid='%s'/></pubsub></iq>", NSPubSub, tune, alice)

	// Only the owner publishes and configures.
	b := e.login(bob + "/pc")
	e.fail(b, wire.ErrForbidden, "", "<iq type='set' id='p6' to='%s'>%s</iq>", alice, strings.TrimSuffix(strings.TrimPrefix(publishXML("x", tune, "", "<tune xmlns='"+tune+"'/>", ""), "<iq type='set' id='x'>"), "</iq>"))
	e.fail(b, wire.ErrForbidden, "", "<iq type='set' id='d1' to='%s'><pubsub xmlns='%s'><delete node='%s'/></pubsub></iq>", alice, nsOwner, tune)
	e.fail(b, wire.ErrForbidden, "", "<iq type='set' id='r1' to='%s'><pubsub xmlns='%s'><retract node='%s'><item id='second'/></retract></pubsub></iq>", alice, NSPubSub, tune)
}

func TestAccessModels(t *testing.T) {
	e := setup(t, Config{})
	a := e.login(alice + "/phone")
	b := e.login(bob + "/pc")
	s := e.login(eve + "/x")
	get := func(who *session, id string) *wire.Stanza {
		return e.iq(who, "<iq type='get' id='%s' to='%s'><pubsub xmlns='%s'><items node='%s'/></pubsub></iq>", id, alice, NSPubSub, tune)
	}
	e.ok(a, "%s", publishXML("p1", tune, "1", "<tune xmlns='"+tune+"'/>", ""))

	// presence (default): bob with a 'from' subscription reads; eve does not.
	e.rosterItem(alice, bob, "from", "Friends")
	if r := get(b, "b1"); r.Type != "result" {
		t.Fatalf("subscribed contact denied: %s", r.Raw)
	}
	e.fail(s, wire.ErrItemNotFound, "", "<iq type='get' id='e1' to='%s'><pubsub xmlns='%s'><items node='%s'/></pubsub></iq>", alice, NSPubSub, tune)
	e.rosterItem(alice, bob, "to", "Friends")
	if r := get(b, "b2"); r.Type != "error" {
		t.Fatalf("contact without 'from' read a presence node: %s", r.Raw)
	}

	configure := func(id, fields string) {
		e.ok(a, "<iq type='set' id='%s'><pubsub xmlns='%s'><configure node='%s'><x xmlns='jabber:x:data' type='submit'>"+
			"<field var='FORM_TYPE' type='hidden'><value>%s</value></field>%s</x></configure></pubsub></iq>", id, nsOwner, tune, nsNodeConfig, fields)
	}
	// roster: groups decide.
	configure("c1", field(fAccessModel, AccessRoster)+field(fRosterGroups, "Friends"))
	if r := get(b, "b3"); r.Type != "result" {
		t.Fatalf("contact in an allowed group denied: %s", r.Raw)
	}
	e.fail(s, wire.ErrItemNotFound, "", "<iq type='get' id='e2' to='%s'><pubsub xmlns='%s'><items node='%s'/></pubsub></iq>", alice, NSPubSub, tune)
	configure("c2", field(fRosterGroups, "Family"))
	if r := get(b, "b4"); r.Type != "error" {
		t.Fatalf("contact outside allowed groups read: %s", r.Raw)
	}
	// whitelist: nobody but the owner.
	configure("c3", field(fAccessModel, AccessWhitelist))
	e.fail(b, wire.ErrItemNotFound, "", "<iq type='get' id='b5' to='%s'><pubsub xmlns='%s'><items node='%s'/></pubsub></iq>", alice, NSPubSub, tune)
	e.ok(a, "<iq type='get' id='a1'><pubsub xmlns='%s'><items node='%s'/></pubsub></iq>", NSPubSub, tune)
	// disco#items shows only accessible nodes.
	if items, _ := e.mod.discoItems(e.ctx, alice, eve); len(items) != 0 {
		t.Fatalf("stranger sees nodes %v", items)
	}
	if items, _ := e.mod.discoItems(e.ctx, alice, alice); len(items) != 1 || items[0].Node != tune {
		t.Fatalf("owner sees nodes %v", items)
	}
	// open: anyone.
	configure("c4", field(fAccessModel, AccessOpen))
	if r := get(s, "e3"); r.Type != "result" || !slices.Equal(itemsOf(r), []string{"1"}) {
		t.Fatalf("open node denied: %s", r.Raw)
	}
	// The configuration form reflects it.
	r := e.ok(a, "<iq type='get' id='cf'><pubsub xmlns='%s'><configure node='%s'/></pubsub></iq>", nsOwner, tune)
	if !strings.Contains(string(r.Raw), "<field var='pubsub#access_model' type='list-single'") || !strings.Contains(string(r.Raw), "<value>open</value></field>") {
		t.Fatalf("configure form: %s", r.Raw)
	}
	e.fail(a, wire.ErrNotAcceptable, "", "<iq type='set' id='c5'><pubsub xmlns='%s'><configure node='%s'><x xmlns='jabber:x:data' type='submit'>%s</x></configure></pubsub></iq>", nsOwner, tune, field(fAccessModel, "authorize"))
}

func TestPublishOptions(t *testing.T) {
	e := setup(t, Config{})
	a := e.login(alice + "/phone")
	const node = "urn:xmpp:bookmarks:1"
	opts := field(fPersistItems, "true") + field(fAccessModel, "whitelist") + field(fMaxItems, "max")
	for i, id := range []string{"room1@muc", "room2@muc", "room3@muc"} {
		e.ok(a, "%s", publishXML("p"+id, node, id, "<conference xmlns='urn:xmpp:bookmarks:1' name='"+id+"'/>", opts))
		if i == 0 {
			r := e.ok(a, "<iq type='get' id='cf'><pubsub xmlns='%s'><configure node='%s'/></pubsub></iq>", nsOwner, node)
			if !strings.Contains(string(r.Raw), "<value>whitelist</value></field>") {
				t.Fatalf("node not created with the publish options: %s", r.Raw)
			}
		}
	}
	r := e.ok(a, "<iq type='get' id='g'><pubsub xmlns='%s'><items node='%s'/></pubsub></iq>", NSPubSub, node)
	if got := itemsOf(r); len(got) != 3 {
		t.Fatalf("max_items=max kept %v", got)
	}
	// Precondition not met.
	e.fail(a, wire.ErrConflict, "precondition-not-met", "%s", publishXML("bad", node, "x", "<conference xmlns='urn:xmpp:bookmarks:1'/>", field(fAccessModel, "open")))
	e.fail(a, wire.ErrBadRequest, "invalid-options", "<iq type='set' id='bad2'><pubsub xmlns='%s'><publish node='%s'><item><x xmlns='y'/></item></publish><publish-options><x xmlns='jabber:x:data' type='submit'>%s</x></publish-options></pubsub></iq>", NSPubSub, node, field(fAccessModel, "open"))
	// max_items: a number equal to the limit matches "max".
	e.ok(a, "%s", publishXML("ok2", node, "room4@muc", "<conference xmlns='urn:xmpp:bookmarks:1'/>", field(fMaxItems, "256")+field(fPersistItems, "1")))

	// by id, max_items, retract, purge, delete.
	r = e.ok(a, "<iq type='get' id='g2'><pubsub xmlns='%s'><items node='%s' max_items='2'/></pubsub></iq>", NSPubSub, node)
	if got := itemsOf(r); !slices.Equal(got, []string{"room3@muc", "room4@muc"}) {
		t.Fatalf("max_items=2 = %v", got)
	}
	r = e.ok(a, "<iq type='get' id='g3'><pubsub xmlns='%s'><items node='%s'><item id='room1@muc'/></items></pubsub></iq>", NSPubSub, node)
	if got := itemsOf(r); !slices.Equal(got, []string{"room1@muc"}) {
		t.Fatalf("by id = %v", got)
	}
	e.ok(a, "<iq type='set' id='r1'><pubsub xmlns='%s'><retract node='%s' notify='true'><item id='room1@muc'/></retract></pubsub></iq>", NSPubSub, node)
	e.fail(a, wire.ErrItemNotFound, "", "<iq type='set' id='r2'><pubsub xmlns='%s'><retract node='%s'><item id='room1@muc'/></retract></pubsub></iq>", NSPubSub, node)
	e.ok(a, "<iq type='set' id='pu'><pubsub xmlns='%s'><purge node='%s'/></pubsub></iq>", nsOwner, node)
	r = e.ok(a, "<iq type='get' id='g4'><pubsub xmlns='%s'><items node='%s'/></pubsub></iq>", NSPubSub, node)
	if got := itemsOf(r); len(got) != 0 {
		t.Fatalf("after purge = %v", got)
	}
	e.ok(a, "<iq type='set' id='de'><pubsub xmlns='%s'><delete node='%s'/></pubsub></iq>", nsOwner, node)
	e.fail(a, wire.ErrItemNotFound, "", "<iq type='get' id='g5'><pubsub xmlns='%s'><items node='%s'/></pubsub></iq>", NSPubSub, node)
	// Lowering max_items trims.
	e.ok(a, "<iq type='set' id='cr'><pubsub xmlns='%s'><create node='n'/><configure><x xmlns='jabber:x:data' type='submit'>%s</x></configure></pubsub></iq>", NSPubSub, field(fMaxItems, "10"))
	e.fail(a, wire.ErrConflict, "", "<iq type='set' id='cr2'><pubsub xmlns='%s'><create node='n'/></pubsub></iq>", NSPubSub)
	for _, id := range []string{"1", "2", "3"} {
		e.ok(a, "%s", publishXML("n"+id, "n", id, "<x xmlns='y'/>", ""))
	}
	e.ok(a, "<iq type='set' id='c'><pubsub xmlns='%s'><configure node='n'><x xmlns='jabber:x:data' type='submit'>%s</x></configure></pubsub></iq>", nsOwner, field(fMaxItems, "1"))
	r = e.ok(a, "<iq type='get' id='g6'><pubsub xmlns='%s'><items node='n'/></pubsub></iq>", NSPubSub)
	if got := itemsOf(r); !slices.Equal(got, []string{"3"}) {
		t.Fatalf("after lowering max_items = %v", got)
	}
}

func TestNodeDefaultsHook(t *testing.T) {
	e := setup(t, Config{NodeDefaults: func(node string) map[string]string {
		if node == "open-node" {
			return map[string]string{fAccessModel: AccessOpen, fMaxItems: "max", "bogus": "x"}
		}
		return nil
	}})
	a := e.login(alice + "/phone")
	s := e.login(eve + "/x")
	e.ok(a, "%s", publishXML("p1", "open-node", "1", "<x xmlns='y'/>", ""))
	e.ok(a, "%s", publishXML("p2", "open-node", "2", "<x xmlns='y'/>", ""))
	r := e.ok(s, "<iq type='get' id='g' to='%s'><pubsub xmlns='%s'><items node='open-node'/></pubsub></iq>", alice, NSPubSub)
	if got := itemsOf(r); !slices.Equal(got, []string{"1", "2"}) {
		t.Fatalf("items = %v", got)
	}
	e.ok(a, "%s", publishXML("p3", "other", "1", "<x xmlns='y'/>", ""))
	e.fail(s, wire.ErrItemNotFound, "", "<iq type='get' id='g2' to='%s'><pubsub xmlns='%s'><items node='other'/></pubsub></iq>", alice, NSPubSub)
}

func TestNotifications(t *testing.T) {
	e := setup(t, Config{})
	a := e.login(alice + "/phone")
	a2 := e.login(alice + "/laptop") // no caps interest in tune
	b := e.login(bob + "/pc")
	s := e.login(eve + "/x")
	e.rosterItem(alice, bob, "both")
	e.rosterItem(bob, alice, "both")

	e.ownOnline(a, tune)
	e.ownOnline(a2, "urn:other")
	e.contactOnline(b, alice, true, tune)
	e.contactOnline(s, alice, true, tune) // directed presence from a stranger

	e.ok(a, "%s", publishXML("p1", tune, "t1", "<tune xmlns='"+tune+"'><title>Finzi</title></tune>", ""))
	n := b.Await(t, "contact notification", event(tune, "item", "t1"))
	if n.From != alice || n.To != bob+"/pc" || !strings.Contains(string(n.Raw), "<title>Finzi</title>") {
		t.Fatalf("notification: %s", n.Raw)
	}
	a.Await(t, "own notification", event(tune, "item", "t1"))
	none(t, a2, "uninterested own resource", 50*time.Millisecond, event(tune, "item", ""))
	none(t, s, "stranger on a presence node", 0, event(tune, "item", ""))

	// Opening the node lets the stranger's interest count.
	e.ok(a, "%s", publishXML("p2", tune, "t2", "<tune xmlns='"+tune+"'/>", field(fAccessModel, AccessPresence)))
	b.Await(t, "second", event(tune, "item", "t2"))
	e.ok(a, "<iq type='set' id='c'><pubsub xmlns='%s'><configure node='%s'><x xmlns='jabber:x:data' type='submit'>%s</x></configure></pubsub></iq>", nsOwner, tune, field(fAccessModel, AccessOpen))
	e.ok(a, "%s", publishXML("p3", tune, "t3", "<tune xmlns='"+tune+"'/>", ""))
	s.Await(t, "stranger on an open node", event(tune, "item", "t3"))

	// Retract notifies; blocked contacts get nothing.
	e.ok(a, "<iq type='set' id='r'><pubsub xmlns='%s'><retract node='%s' notify='1'><item id='t3'/></retract></pubsub></iq>", NSPubSub, tune)
	b.Await(t, "retract", event(tune, "retract", "t3"))
	if err := e.store.Block(e.ctx, alice, []string{bob}); err != nil {
		t.Fatal(err)
	}
	e.ok(a, "%s", publishXML("p4", tune, "t4", "<tune xmlns='"+tune+"'/>", ""))
	a.Await(t, "own after block", event(tune, "item", "t4"))
	none(t, b, "blocked contact", 50*time.Millisecond, event(tune, "item", "t4"))
	if err := e.store.Unblock(e.ctx, alice, nil); err != nil {
		t.Fatal(err)
	}

	// Unavailable contacts get nothing.
	p := wire.MustParse("<presence type='unavailable'/>").WithFromTo(bob+"/pc", alice)
	e.router.Route(e.ctx, p, module.Origin{Kind: module.FromLocal})
	e.ok(a, "%s", publishXML("p5", tune, "t5", "<tune xmlns='"+tune+"'/>", ""))
	none(t, b, "offline contact", 50*time.Millisecond, event(tune, "item", "t5"))

	// Delete notifies.
	e.contactOnline(b, alice, false, tune)
	b.Await(t, "last item on presence", event(tune, "item", "t5"))
	e.ok(a, "<iq type='set' id='d'><pubsub xmlns='%s'><delete node='%s'/></pubsub></iq>", nsOwner, tune)
	b.Await(t, "delete", event(tune, "delete", ""))
}

func TestLastItemOnPresence(t *testing.T) {
	e := setup(t, Config{})
	a := e.login(alice + "/phone")
	e.rosterItem(alice, bob, "both")
	e.ok(a, "%s", publishXML("p1", tune, "t1", "<tune xmlns='"+tune+"'><title>Last</title></tune>", ""))
	e.ok(a, "%s", publishXML("p2", "urn:not-wanted", "x", "<x xmlns='y'/>", ""))

	b := e.login(bob + "/pc")
	e.contactOnline(b, alice, true, tune)
	n := b.Await(t, "last item", event(tune, "item", "t1"))
	if n.Child(xep.NSDelay, "delay") == nil || !strings.Contains(string(n.Raw), "<title>Last</title>") {
		t.Fatalf("last item: %s", n.Raw)
	}
	none(t, b, "unwanted node", 50*time.Millisecond, event("urn:not-wanted", "item", ""))
	// A subsequent presence does not resend.
	e.contactOnline(b, alice, false, tune)
	none(t, b, "second presence", 50*time.Millisecond, event(tune, "item", ""))

	// Own resource coming online gets the last item too.
	a2 := e.login(alice + "/laptop")
	e.ownOnline(a2, tune)
	a2.Await(t, "own last item", event(tune, "item", "t1"))

	// A stranger with interest gets nothing from a presence node.
	s := e.login(eve + "/x")
	e.contactOnline(s, alice, false, tune) // caps already verified and cached
	none(t, s, "stranger", 50*time.Millisecond, event(tune, "item", ""))
}

func TestWrongCapsHashNotShared(t *testing.T) {
	e := setup(t, Config{})
	a := e.login(alice + "/phone")
	e.rosterItem(alice, bob, "both")
	e.ok(a, "%s", publishXML("p1", tune, "t1", "<tune xmlns='"+tune+"'/>", ""))
	b := e.login(bob + "/pc")
	// Bob claims a ver that does not match what he answers.
	c, _ := caps("urn:other")
	_, info := caps(tune)
	p := wire.MustParse("<presence>"+c+"</presence>").WithFromTo(b.JID().String(), alice)
	e.router.Route(e.ctx, p, module.Origin{Kind: module.FromLocal})
	q := b.Await(t, "caps query", func(st *wire.Stanza) bool { return st.Name == "iq" && st.Type == "get" })
	e.send(b, "<iq type='result' id='%s' to='%s'>%s</iq>", q.ID, q.From, strings.Replace(info, "node='https://test.example#", "node='x#", 1))
	// Trusted for bob himself...
	b.Await(t, "last item", event(tune, "item", "t1"))
	// ...but not for others advertising the same ver.
	e.rosterItem(alice, eve, "both")
	s := e.login(eve + "/x")
	p = wire.MustParse("<presence>"+c+"</presence>").WithFromTo(s.JID().String(), alice)
	e.router.Route(e.ctx, p, module.Origin{Kind: module.FromLocal})
	s.Await(t, "caps query for the unverified ver", func(st *wire.Stanza) bool { return st.Name == "iq" && st.Type == "get" })
}

// TestNotificationWhileCapsResolve: a publish handled while a contact's
// capabilities are still being asked for reaches the contact once its
// answer says it is interested (it was lost when the answer was handled
// after the publish), and a contact whose answer says it is not gets
// nothing.
func TestNotificationWhileCapsResolve(t *testing.T) {
	e, a, b := friendsWithTune(t)
	for i, interested := range []bool{true, false} {
		notify := []string{"urn:other" + strconv.Itoa(i)}
		if interested {
			notify = append(notify, tune)
		}
		e.contactOnline(b, alice, false, notify...) // the query is left unanswered for now
		_, info := caps(notify...)
		q := b.Await(t, "caps query", func(st *wire.Stanza) bool {
			return st.Name == "iq" && st.Type == "get" && st.Child(xep.NSDiscoInfo, "query") != nil
		})
		id := "t" + strconv.Itoa(i)
		e.ok(a, "%s", publishXML("p"+id, tune, id, "<tune xmlns='"+tune+"'/>", field(fSendLast, "never")))
		a.Await(t, "own notification", event(tune, "item", id))
		e.send(b, "<iq type='result' id='%s' to='%s'>%s</iq>", q.ID, q.From, info)
		if interested {
			b.Await(t, "notification held while the caps were asked for", event(tune, "item", id))
		} else {
			none(t, b, "uninterested contact", 100*time.Millisecond, event(tune, "item", id))
		}
	}
	e.mod.mu.Lock()
	defer e.mod.mu.Unlock()
	if e.mod.deferredBytes != 0 || len(e.mod.deferred) != 0 {
		t.Fatalf("after the answers: %d bytes held in %d keys, want none", e.mod.deferredBytes, len(e.mod.deferred))
	}
}

// friendsWithTune: alice (publishing tune, online with her caps) and bob
// with mutual subscriptions, both logged in.
func friendsWithTune(t *testing.T) (e *env, a, b *session) {
	e = setup(t, Config{})
	a = e.login(alice + "/phone")
	b = e.login(bob + "/pc")
	e.rosterItem(alice, bob, "both")
	e.rosterItem(bob, alice, "both")
	e.ownOnline(a, tune)
	return e, a, b
}

// Held notifications are bounded in bytes too: beyond maxDeferredBytes a
// publish is not held (and does not reach a resource whose capabilities
// were being asked for, as before holding).
func TestNotificationHeldBoundedInBytes(t *testing.T) {
	old := maxDeferredBytes
	maxDeferredBytes = 10
	t.Cleanup(func() { maxDeferredBytes = old })
	e, a, b := friendsWithTune(t)
	e.contactOnline(b, alice, false, "urn:other-bytes", tune) // the query is left unanswered for now
	_, info := caps("urn:other-bytes", tune)
	q := b.Await(t, "caps query", func(st *wire.Stanza) bool {
		return st.Name == "iq" && st.Type == "get" && st.Child(xep.NSDiscoInfo, "query") != nil
	})
	e.ok(a, "%s", publishXML("p1", tune, "i1", "<tune xmlns='"+tune+"'/>", field(fSendLast, "never")))
	a.Await(t, "own notification", event(tune, "item", "i1"))
	e.mod.mu.Lock()
	held := e.mod.deferredBytes
	e.mod.mu.Unlock()
	if held != 0 {
		t.Fatalf("%d bytes held beyond a bound of 10", held)
	}
	e.send(b, "<iq type='result' id='%s' to='%s'>%s</iq>", q.ID, q.From, info)
	none(t, b, "a notification not held", 100*time.Millisecond, event(tune, "item", "i1"))
}
