package push

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/internal/modtest"
	"github.com/parley-xmpp/parley/wire"
)

const (
	secretForm = "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/pubsub#publish-options</value></field><field var='secret'><value>eruio234vzxc2kla-91</value></field></x>"
	omemo      = "<encrypted xmlns='eu.siacs.conversations.axolotl'><header sid='1'><key rid='2'>a2V5</key><iv>aXY=</iv></header><payload>cGF5bG9hZA==</payload></encrypted>"
)

// offline ends s's session as c2s does when a client disconnects.
func (e *env) offline(s *modtest.Session) {
	e.T.Helper()
	if !e.Logout(s) {
		e.T.Fatalf("%s was not bound", s.JID())
	}
}

func TestFeatures(t *testing.T) {
	e := setup(t, Config{})
	if !slices.Contains(e.Registry.AccountFeatures(), NS) || !slices.Contains(e.Registry.Features(), NS) {
		t.Fatalf("features %v / account features %v lack %s", e.Registry.Features(), e.Registry.AccountFeatures(), NS)
	}
}

func TestEnableDisable(t *testing.T) {
	e := setup(t, Config{})
	a := e.login(alice + "/phone")
	e.login("bob@example.org/desk")

	before := time.Now().Add(-time.Second)
	e.enable(a, "n1", secretForm)
	regs := e.pushes(alice)
	if len(regs) != 1 || regs[0].JID != appJID || regs[0].Node != "n1" || regs[0].Created.Before(before) {
		t.Fatalf("registrations %+v", regs)
	}
	stored, err := wire.Parse(regs[0].Form, wire.Limits{})
	if err != nil || stored.Tree().Name.Space != "jabber:x:data" ||
		!strings.Contains(string(regs[0].Form), "<value>eruio234vzxc2kla-91</value>") {
		t.Fatalf("stored form %q (%v)", regs[0].Form, err)
	}

	// Same jid and node: replaced (the form goes away); other nodes add.
	e.enable(a, "n1", "")
	e.enable(a, "n2", "")
	reply := e.iq(a, "<iq type='set' id='e3'><enable xmlns='urn:xmpp:push:0' jid='push.other.example' node='n1'/></iq>")
	if reply.Type != "result" {
		t.Fatalf("enable: %s", reply.Raw)
	}
	regs = e.pushes(alice)
	if len(regs) != 3 {
		t.Fatalf("registrations %+v", regs)
	}
	for _, r := range regs {
		if r.Form != nil {
			t.Fatalf("form kept after re-enabling without one: %+v", r)
		}
	}
	if regs := e.pushes("bob@example.org"); len(regs) != 0 {
		t.Fatalf("bob has registrations %+v", regs)
	}

	// disable with node: that one; without: every node of the jid.
	if r := e.iq(a, "<iq type='set' id='d1'><disable xmlns='urn:xmpp:push:0' jid='"+appJID+"' node='n2'/></iq>"); r.Type != "result" {
		t.Fatalf("disable: %s", r.Raw)
	}
	if regs := e.pushes(alice); len(regs) != 2 {
		t.Fatalf("after disabling n2: %+v", regs)
	}
	e.enable(a, "n3", "")
	if r := e.iq(a, "<iq type='set' id='d2'><disable xmlns='urn:xmpp:push:0' jid='"+appJID+"'/></iq>"); r.Type != "result" {
		t.Fatalf("disable: %s", r.Raw)
	}
	regs = e.pushes(alice)
	if len(regs) != 1 || regs[0].JID != "push.other.example" {
		t.Fatalf("after disabling %s: %+v", appJID, regs)
	}
	// Disabling what is not enabled is fine; to the account's bare JID too.
	if r := e.iq(a, "<iq type='set' id='d3' to='alice@example.org'><disable xmlns='urn:xmpp:push:0' jid='nothing.example'/></iq>"); r.Type != "result" {
		t.Fatalf("disable: %s", r.Raw)
	}
}

func TestEnableErrors(t *testing.T) {
	cases := []struct {
		name, xml, cond string
	}{
		{"get", "<iq type='get' id='x'><enable xmlns='urn:xmpp:push:0' jid='push.example' node='n'/></iq>", "bad-request"},
		{"no jid", "<iq type='set' id='x'><enable xmlns='urn:xmpp:push:0' node='n'/></iq>", "bad-request"},
		{"bad jid", "<iq type='set' id='x'><enable xmlns='urn:xmpp:push:0' jid='a@b@c' node='n'/></iq>", "bad-request"},
		{"empty localpart", "<iq type='set' id='x'><enable xmlns='urn:xmpp:push:0' jid='@push.example' node='n'/></iq>", "bad-request"},
		{"no node", "<iq type='set' id='x'><enable xmlns='urn:xmpp:push:0' jid='push.example'/></iq>", "bad-request"},
		{"empty node", "<iq type='set' id='x'><enable xmlns='urn:xmpp:push:0' jid='push.example' node=''/></iq>", "bad-request"},
		{"two forms", "<iq type='set' id='x'><enable xmlns='urn:xmpp:push:0' jid='push.example' node='n'>" + secretForm + secretForm + "</enable></iq>", "bad-request"},
		{"huge form", "<iq type='set' id='x'><enable xmlns='urn:xmpp:push:0' jid='push.example' node='n'><x xmlns='jabber:x:data' type='submit'><field var='a'><value>" + strings.Repeat("z", 9000) + "</value></field></x></enable></iq>", "not-acceptable"},
		{"long node", "<iq type='set' id='x'><enable xmlns='urn:xmpp:push:0' jid='push.example' node='" + strings.Repeat("n", 1025) + "'/></iq>", "not-acceptable"},
		{"other account", "<iq type='set' id='x' to='bob@example.org'><enable xmlns='urn:xmpp:push:0' jid='push.example' node='n'/></iq>", "forbidden"},
		{"disable other account", "<iq type='set' id='x' to='bob@example.org'><disable xmlns='urn:xmpp:push:0' jid='push.example'/></iq>", "forbidden"},
		{"disable no jid", "<iq type='set' id='x'><disable xmlns='urn:xmpp:push:0' node='n'/></iq>", "bad-request"},
		{"disable bad jid", "<iq type='set' id='x'><disable xmlns='urn:xmpp:push:0' jid='a@b@c'/></iq>", "bad-request"},
		{"disable get", "<iq type='get' id='x'><disable xmlns='urn:xmpp:push:0' jid='push.example'/></iq>", "bad-request"},
		{"to the server", "<iq type='set' id='x' to='example.org'><enable xmlns='urn:xmpp:push:0' jid='push.example' node='n'/></iq>", "service-unavailable"},
	}
	e := setup(t, Config{})
	a := e.login(alice + "/phone")
	e.login("bob@example.org/desk")
	e.enable(a, "kept", "")
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := modtest.ErrCondition(e.iq(a, c.xml)); got != c.cond {
				t.Fatalf("condition %q, want %q", got, c.cond)
			}
		})
	}
	if regs := e.pushes(alice); len(regs) != 1 || regs[0].Node != "kept" {
		t.Fatalf("registrations changed by failed requests: %+v", regs)
	}
	if regs := e.pushes("bob@example.org"); len(regs) != 0 {
		t.Fatalf("bob has registrations %+v", regs)
	}

	t.Run("remote user", func(t *testing.T) {
		e.Remote("<iq type='set' id='r1' from='mallory@evil.example/x' to='alice@example.org'><enable xmlns='urn:xmpp:push:0' jid='evil.example' node='n'/></iq>")
		if regs := e.pushes(alice); len(regs) != 1 {
			t.Fatalf("remote enable stored: %+v", regs)
		}
	})
}

func TestMaxRegistrations(t *testing.T) {
	e := setup(t, Config{MaxRegistrations: 2})
	a := e.login(alice + "/phone")
	e.enable(a, "n1", "")
	e.enable(a, "n2", "")
	if got := modtest.ErrCondition(e.iq(a, "<iq type='set' id='x'><enable xmlns='urn:xmpp:push:0' jid='"+appJID+"' node='n3'/></iq>")); got != "policy-violation" {
		t.Fatalf("third registration: %q", got)
	}
	e.enable(a, "n2", secretForm) // replacing is not adding
}

func TestNotificationWhenOffline(t *testing.T) {
	e := setup(t, Config{})
	app := e.app(nil)
	a := e.login(alice + "/phone")
	e.enable(a, "n1", secretForm)
	e.offline(a)
	bob := e.login("bob@example.org/desk")

	e.Send(bob, "<message to='alice@example.org' type='chat' id='m1'><body>secret words</body></message>")
	iq := app.expectPush(t)
	if iq.From != alice || iq.To != appJID || iq.ID == "" {
		t.Fatalf("notification addressing: %s", iq.Raw)
	}
	s := parseSummary(t, iq)
	if s.node != "n1" || s.formType != NSSummary || s.count != "1" || s.sender != "bob@example.org/desk" || s.hasBody {
		t.Fatalf("summary %+v in %s", s, iq.Raw)
	}
	if bytes.Contains(iq.Raw, []byte("secret words")) {
		t.Fatalf("the body leaked: %s", iq.Raw)
	}
	opts := s.options.Child("jabber:x:data", "x")
	if opts == nil || !strings.Contains(opts.String(), "<value>eruio234vzxc2kla-91</value>") {
		t.Fatalf("publish-options missing: %s", iq.Raw)
	}
	// The chain continued to offline storage.
	e.mu.Lock()
	reached := len(e.reached)
	e.mu.Unlock()
	if reached != 1 {
		t.Fatalf("%d messages reached the next undeliverable hook", reached)
	}
	// The App Server's result is consumed by the server, not bounced.
	if got := bob.Take(); len(got) != 0 {
		t.Fatalf("bob got %s", got[0].Raw)
	}
	eventually(t, "registration kept", func() bool { return len(e.pushes(alice)) == 1 })
}

func TestNoNotification(t *testing.T) {
	cases := []struct{ name, xml string }{
		{"chat state", "<message to='alice@example.org' type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>"},
		{"receipt", "<message to='alice@example.org' type='chat'><received xmlns='urn:xmpp:receipts' id='x'/></message>"},
		{"marker", "<message to='alice@example.org' type='chat'><displayed xmlns='urn:xmpp:chat-markers:0' id='x'/></message>"},
		{"headline", "<message to='alice@example.org' type='headline'><body>news</body></message>"},
		{"no-store hint", "<message to='alice@example.org' type='chat'><body>x</body><no-store xmlns='urn:xmpp:hints'/></message>"},
		{"presence", "<presence to='alice@example.org' type='subscribe'/>"},
		{"to a full JID of nobody", "<message to='alice@example.org/gone' type='headline'><body>x</body></message>"},
	}
	e := setup(t, Config{})
	app := e.app(nil)
	a := e.login(alice + "/phone")
	e.enable(a, "n1", "")
	e.offline(a)
	bob := e.login("bob@example.org/desk")
	carol := e.login("carol@example.org/x")
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e.Send(bob, c.xml)
			app.expectNoPush(t, 100*time.Millisecond)
		})
	}
	t.Run("user without registrations", func(t *testing.T) {
		e.offline(carol)
		e.Send(bob, "<message to='carol@example.org' type='chat'><body>x</body></message>")
		app.expectNoPush(t, 100*time.Millisecond)
	})
	t.Run("user online", func(t *testing.T) {
		e.login(alice + "/tablet")
		e.Send(bob, "<message to='alice@example.org' type='chat'><body>x</body></message>")
		app.expectNoPush(t, 100*time.Millisecond)
	})
}

func TestBody(t *testing.T) {
	cases := []struct {
		name        string
		includeBody bool
		payload     string
		wantBody    string // "-": no body field
	}{
		{"default", false, "<body>hello</body>", "-"},
		{"included", true, "<body>hello &amp; &lt;bye&gt;</body>", "hello & <bye>"},
		{"omemo with fallback body", true, "<body>I sent you an OMEMO encrypted message</body>" + omemo, "-"},
		{"omemo 2", true, "<encrypted xmlns='urn:xmpp:omemo:2'><header sid='1'/><payload>QUJD</payload></encrypted><body>fallback</body>", "-"},
		{"omemo without body", false, omemo, "-"},
		{"long body cut", true, "<body>" + strings.Repeat("é", 600) + "</body>", strings.Repeat("é", 512) + "…"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := setup(t, Config{Settings: Settings{IncludeBody: c.includeBody}})
			app := e.app(nil)
			a := e.login(alice + "/phone")
			e.enable(a, "n1", "")
			e.offline(a)
			bob := e.login("bob@example.org/desk")
			e.Send(bob, "<message to='alice@example.org' type='chat'>"+c.payload+"</message>")
			iq := app.expectPush(t)
			s := parseSummary(t, iq)
			if c.wantBody == "-" {
				if s.hasBody {
					t.Fatalf("body %q included: %s", s.body, iq.Raw)
				}
			} else if s.body != c.wantBody {
				t.Fatalf("body %q, want %q", s.body, c.wantBody)
			}
			if s.count != "1" || s.sender != "bob@example.org/desk" {
				t.Fatalf("summary %+v", s)
			}
			if strings.Contains(string(iq.Raw), "payload") || strings.Contains(string(iq.Raw), "fallback") {
				t.Fatalf("encrypted content leaked: %s", iq.Raw)
			}
		})
	}
}

func TestCoalesce(t *testing.T) {
	const window = 600 * time.Millisecond
	e := setup(t, Config{Settings: Settings{Coalesce: window}})
	app := e.app(nil)
	a := e.login(alice + "/phone")
	e.enable(a, "n1", "")
	e.enable(a, "n2", "")
	e.offline(a)
	bob := e.login("bob@example.org/desk")
	carol := e.login("carol@example.org/x")

	// Each registration gets the first message at once.
	start := time.Now()
	e.Send(bob, "<message to='alice@example.org' type='chat'><body>1</body></message>")
	nodes := map[string]summary{}
	for range 2 {
		s := parseSummary(t, app.expectPush(t))
		nodes[s.node] = s
	}
	if time.Since(start) > window/2 {
		t.Fatalf("first notification took %v", time.Since(start))
	}
	for _, n := range []string{"n1", "n2"} {
		if nodes[n].count != "1" || nodes[n].sender != "bob@example.org/desk" {
			t.Fatalf("first notification to %s: %+v", n, nodes[n])
		}
	}
	// The rest of the burst: one notification per registration when the
	// window ends, counting the four and naming the last sender.
	for i := range 4 {
		from := bob
		if i == 3 {
			from = carol
		}
		e.Send(from, "<message to='alice@example.org' type='chat'><body>more</body></message>")
	}
	app.expectNoPush(t, window/4)
	nodes = map[string]summary{}
	for range 2 {
		s := parseSummary(t, app.expectPush(t))
		nodes[s.node] = s
	}
	if d := time.Since(start); d < window*3/4 {
		t.Fatalf("coalesced notification after %v, before the window ended", d)
	}
	for _, n := range []string{"n1", "n2"} {
		if nodes[n].count != "4" || nodes[n].sender != "carol@example.org/x" {
			t.Fatalf("coalesced notification to %s: %+v", n, nodes[n])
		}
	}
	// Quiet: nothing more; then a new burst starts at once again.
	app.expectNoPush(t, window*3/2)
	e.Send(bob, "<message to='alice@example.org' type='chat'><body>later</body></message>")
	start = time.Now()
	for range 2 {
		if s := parseSummary(t, app.expectPush(t)); s.count != "1" {
			t.Fatalf("after a quiet period: %+v", s)
		}
	}
	if time.Since(start) > window/2 {
		t.Fatalf("notification after a quiet period took %v", time.Since(start))
	}
}

func TestAppServerErrors(t *testing.T) {
	cases := []struct {
		name     string
		errXML   string
		disabled bool
	}{
		{"item-not-found", "<error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>", true},
		{"not-authorized", "<error type='auth'><not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>bad secret</text></error>", true},
		{"wait type", "<error type='wait'><resource-constraint xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>", false},
		{"remote server timeout", "<error type='cancel'><remote-server-timeout xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := setup(t, Config{})
			app := e.app(func(iq *wire.Stanza) *wire.Stanza {
				return wire.MustParse("<iq type='error' id='" + iq.ID + "' to='" + iq.From + "'>" + c.errXML + "</iq>")
			})
			a := e.login(alice + "/phone")
			e.enable(a, "n1", "")
			e.enable(a, "n2", "")
			e.offline(a)
			bob := e.login("bob@example.org/desk")
			e.Send(bob, "<message to='alice@example.org' type='chat'><body>x</body></message>")
			app.expectPush(t)
			app.expectPush(t)
			want := 2
			if c.disabled {
				want = 0
			}
			eventually(t, "registrations", func() bool { return len(e.pushes(alice)) == want })
			time.Sleep(50 * time.Millisecond)
			if got := len(e.pushes(alice)); got != want {
				t.Fatalf("%d registrations, want %d", got, want)
			}
			if c.disabled {
				e.Send(bob, "<message to='alice@example.org' type='chat'><body>y</body></message>")
				app.expectNoPush(t, 200*time.Millisecond)
			}
		})
	}

	t.Run("re-enabled meanwhile", func(t *testing.T) {
		e := setup(t, Config{})
		var a *modtest.Session
		app := e.app(func(iq *wire.Stanza) *wire.Stanza {
			e.enable(a, "n1", "") // the user re-enables before the error arrives
			return wire.MustParse("<iq type='error' id='" + iq.ID + "' to='" + iq.From + "'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>")
		})
		a = e.login(alice + "/phone")
		e.enable(a, "n1", "")
		a.SetPresence(nil) // no presence: not eligible for messages to the bare JID
		bob := e.login("bob@example.org/desk")
		e.Send(bob, "<message to='alice@example.org' type='chat'><body>x</body></message>")
		app.expectPush(t)
		time.Sleep(200 * time.Millisecond)
		if got := len(e.pushes(alice)); got != 1 {
			t.Fatalf("%d registrations: the fresh one was removed", got)
		}
	})
}

func TestUnansweredKeepsRegistration(t *testing.T) {
	e := setup(t, Config{Timeout: 100 * time.Millisecond})
	a := e.login(alice + "/phone")
	// A remote App Server without federation: the router bounces with
	// remote-server-not-found, which is transient.
	if r := e.iq(a, "<iq type='set' id='e'><enable xmlns='urn:xmpp:push:0' jid='push.remote.example' node='n'/></iq>"); r.Type != "result" {
		t.Fatalf("enable: %s", r.Raw)
	}
	// A local App Server that never answers: a timeout.
	silent := e.login("silent@example.org/app")
	if r := e.iq(a, "<iq type='set' id='e2'><enable xmlns='urn:xmpp:push:0' jid='silent@example.org/app' node='n'/></iq>"); r.Type != "result" {
		t.Fatalf("enable: %s", r.Raw)
	}
	e.offline(a)
	bob := e.login("bob@example.org/desk")
	e.Send(bob, "<message to='alice@example.org' type='chat'><body>x</body></message>")
	eventually(t, "silent app server asked", func() bool {
		for _, st := range silent.Take() {
			if st.Child(NSPubSub, "pubsub") != nil {
				return true
			}
		}
		return false
	})
	time.Sleep(300 * time.Millisecond)
	if got := len(e.pushes(alice)); got != 2 {
		t.Fatalf("%d registrations, want 2", got)
	}
}

func TestHibernatedSession(t *testing.T) {
	e := setup(t, Config{})
	app := e.app(nil)
	phone := e.login(alice + "/phone")
	tablet := e.login(alice + "/tablet")
	laptop := e.login(alice + "/laptop")
	e.enable(phone, "phone-node", "")
	e.enable(tablet, "tablet-node", "")
	ctx := context.Background()
	queue := func(s *modtest.Session, xml string) { e.Registry.FireStanzaQueued(ctx, s, wire.MustParse(xml)) }

	// The phone's stream dropped; c2s queues a message and fires the event:
	// only the phone's own registration is woken.
	queue(phone, "<message from='bob@example.org/desk' to='alice@example.org' type='chat'><body>hi</body></message>")
	s := parseSummary(t, app.expectPush(t))
	if s.node != "phone-node" || s.sender != "bob@example.org/desk" || s.count != "1" {
		t.Fatalf("summary %+v", s)
	}
	app.expectNoPush(t, 100*time.Millisecond)

	// A received carbon is judged by the message inside.
	queue(phone, "<message from='alice@example.org' to='alice@example.org/phone'><received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'>"+
		"<message xmlns='jabber:client' from='carol@example.org/x' to='alice@example.org/laptop' type='chat'><body>c</body></message></forwarded></received></message>")
	if s := parseSummary(t, app.expectPush(t)); s.node != "phone-node" || s.sender != "carol@example.org/x" {
		t.Fatalf("carbon summary %+v", s)
	}
	// Not worth waking for: sent carbons, chat states, IQs, presence, MAM results.
	for _, xml := range []string{
		"<message from='alice@example.org' to='alice@example.org/phone'><sent xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'>" +
			"<message xmlns='jabber:client' from='alice@example.org/laptop' to='bob@example.org' type='chat'><body>mine</body></message></forwarded></sent></message>",
		"<message from='bob@example.org/desk' to='alice@example.org/phone' type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>",
		"<iq from='bob@example.org/desk' to='alice@example.org/phone' type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>",
		"<presence from='bob@example.org/desk' to='alice@example.org/phone'/>",
		"<message from='alice@example.org' to='alice@example.org/phone'><result xmlns='urn:xmpp:mam:2' id='1'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' from='bob@example.org/desk' type='chat'><body>old</body></message></forwarded></result></message>",
	} {
		queue(phone, xml)
	}
	app.expectNoPush(t, 150*time.Millisecond)

	// A hibernated session that enabled nothing wakes every registration.
	queue(laptop, "<message from='bob@example.org/desk' to='alice@example.org/laptop' type='chat'>"+omemo+"</message>")
	got := map[string]bool{}
	for range 2 {
		got[parseSummary(t, app.expectPush(t)).node] = true
	}
	if !got["phone-node"] || !got["tablet-node"] {
		t.Fatalf("notified %v", got)
	}

	// After the phone's session ended for good, its registrations are no
	// longer tied to a session; disabling forgets them too.
	e.offline(phone)
	e.iq(tablet, "<iq type='set' id='d'><disable xmlns='urn:xmpp:push:0' jid='"+appJID+"' node='tablet-node'/></iq>")
	queue(tablet, "<message from='bob@example.org/desk' to='alice@example.org/tablet' type='chat'><body>t</body></message>")
	if s := parseSummary(t, app.expectPush(t)); s.node != "phone-node" {
		t.Fatalf("summary %+v", s)
	}
	app.expectNoPush(t, 100*time.Millisecond)
}

func TestRemoteDisable(t *testing.T) {
	e := setup(t, Config{})
	a := e.login(alice + "/phone")
	e.enable(a, "n1", "")
	e.enable(a, "n2", "")
	if r := e.iq(a, "<iq type='set' id='e'><enable xmlns='urn:xmpp:push:0' jid='push.remote.example' node='n1'/></iq>"); r.Type != "result" {
		t.Fatalf("enable: %s", r.Raw)
	}
	// Someone else cannot disable the registration.
	e.Remote("<message from='mallory@evil.example' to='alice@example.org'><pubsub xmlns='http://jabber.org/protocol/pubsub' node='n1'><affiliation jid='alice@example.org' affiliation='none'/></pubsub></message>")
	// The service itself can (XEP-0357 §8).
	e.Remote("<message from='push.remote.example' to='alice@example.org'><pubsub xmlns='http://jabber.org/protocol/pubsub' node='n1'><affiliation jid='alice@example.org' affiliation='none'/></pubsub></message>")
	eventually(t, "remote registration removed", func() bool { return len(e.pushes(alice)) == 2 })
	// An affiliation of someone else changes nothing.
	e.Remote("<message from='push.remote.example' to='alice@example.org'><pubsub xmlns='http://jabber.org/protocol/pubsub' node='n2'><affiliation jid='bob@example.org' affiliation='none'/></pubsub></message>")
	time.Sleep(100 * time.Millisecond)
	for _, r := range e.pushes(alice) {
		if r.JID != appJID {
			t.Fatalf("left %+v", e.pushes(alice))
		}
	}
	if n := len(e.pushes(alice)); n != 2 {
		t.Fatalf("%d registrations left, want 2", n)
	}
}

func TestStopAbandonsPending(t *testing.T) {
	e := setup(t, Config{Settings: Settings{Coalesce: time.Hour}})
	app := e.app(nil)
	a := e.login(alice + "/phone")
	e.enable(a, "n1", "")
	e.offline(a)
	bob := e.login("bob@example.org/desk")
	e.Send(bob, "<message to='alice@example.org' type='chat'><body>1</body></message>")
	app.expectPush(t)
	e.Send(bob, "<message to='alice@example.org' type='chat'><body>2</body></message>")
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := e.mod.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.mod.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	app.expectNoPush(t, 100*time.Millisecond)
}
