package router_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/parley-xmpp/parley/internal/modtest"
	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/router"
	"github.com/parley-xmpp/parley/wire"
)

// onlyCarol is an account directory with one account, carol@example.org
// (others exist while they have a bound session).
type onlyCarol struct{}

func (onlyCarol) AccountExists(_ context.Context, bare string) (bool, error) {
	return bare == "carol@example.org", nil
}

func (onlyCarol) DeleteAccount(context.Context, string) error {
	return errors.New("not in these tests")
}

func newTestRouter(t testing.TB) *router.Router {
	r := router.New(router.Config{Domains: []string{"example.org"}})
	reg := module.NewRegistry([]string{"example.org"}, r.Sender(), r)
	reg.SetAccounts(onlyCarol{})
	r.SetRegistry(reg)
	return r
}

// online binds an available session for full with priority prio.
func online(r *router.Router, full string, prio int) *modtest.Session {
	s := modtest.NewSession(full).Available(prio)
	r.Bind(s)
	return s
}

func TestDeliveryRules(t *testing.T) {
	r := newTestRouter(t)
	ctx := context.Background()
	alice := online(r, "alice@example.org/a", 0)
	b1 := online(r, "bob@example.org/one", 5)
	b2 := online(r, "bob@example.org/two", -1)
	b3 := online(r, "bob@example.org/three", 0)
	route := func(s string) {
		r.Route(ctx, wire.MustParse(s), module.Origin{Kind: module.FromClient, Session: alice})
	}
	route("<message from='alice@example.org/a' to='bob@example.org' type='chat'><body>x</body></message>")
	if len(b1.Received()) != 1 || len(b3.Received()) != 1 || len(b2.Received()) != 0 {
		t.Fatalf("bare chat: one=%d two=%d three=%d", len(b1.Received()), len(b2.Received()), len(b3.Received()))
	}
	// Full JID reaches even a negative-priority resource.
	route("<message from='alice@example.org/a' to='bob@example.org/two' type='chat'><body>x</body></message>")
	if len(b2.Received()) != 1 {
		t.Fatal("full JID delivery failed")
	}
	// Unknown resource: chat falls back to the bare JID.
	route("<message from='alice@example.org/a' to='bob@example.org/gone' type='chat'><body>x</body></message>")
	if len(b1.Received()) != 2 {
		t.Fatal("fallback to bare failed")
	}
	// Unknown user: service-unavailable back to the sender.
	route("<message from='alice@example.org/a' to='nobody@example.org' id='e1' type='chat'><body>x</body></message>")
	if len(alice.Received()) != 1 || alice.Received()[0].Type != "error" || alice.Received()[0].Child(wire.NSClient, "error").Child(wire.NSStanzas, "service-unavailable") == nil {
		t.Fatalf("unknown user: %s", alice.Received()[0].Raw)
	}
	// IQ to an unavailable full JID: service-unavailable.
	route("<iq from='alice@example.org/a' to='bob@example.org/gone' id='q' type='get'><query xmlns='urn:x'/></iq>")
	if len(alice.Received()) != 2 || alice.Received()[1].Child(wire.NSClient, "error").Child(wire.NSStanzas, "service-unavailable") == nil {
		t.Fatalf("iq: %s", alice.Received()[1].Raw)
	}
}

// TestIQToNonexistentAccount: an IQ get or set to the bare JID of an
// account that does not exist is answered service-unavailable (RFC 6121
// §8.5.1) by the router, whoever sent it (a local client or a remote
// server), and never reaches the account's IQ handlers.
func TestIQToNonexistentAccount(t *testing.T) {
	r := router.New(router.Config{Domains: []string{"example.org"}})
	reg := module.NewRegistry([]string{"example.org"}, r.Sender(), r)
	reg.SetAccounts(onlyCarol{})
	called := 0
	reg.IQ("urn:xmpp:ping", "ping", module.TargetAccount, func(ctx context.Context, ev *module.Event) (*wire.Element, error) {
		called++
		return nil, nil
	})
	r.SetRegistry(reg)
	ctx := context.Background()
	alice := online(r, "alice@example.org/a", 0)
	route := func(s string) {
		r.Route(ctx, wire.MustParse(s), module.Origin{Kind: module.FromClient, Session: alice})
	}
	route("<iq from='alice@example.org/a' to='nobody@example.org' id='q1' type='get'><ping xmlns='urn:xmpp:ping'/></iq>")
	got := alice.Received()
	if len(got) != 1 || got[0].Type != "error" || got[0].From != "nobody@example.org" ||
		got[0].Child(wire.NSClient, "error").Child(wire.NSStanzas, "service-unavailable") == nil || called != 0 {
		t.Fatalf("iq to a nonexistent account: called=%d %v", called, got)
	}
	// Existing accounts, online or not, reach the handler.
	route("<iq from='alice@example.org/a' to='carol@example.org' id='q2' type='get'><ping xmlns='urn:xmpp:ping'/></iq>")
	route("<iq from='alice@example.org/a' to='alice@example.org' id='q3' type='get'><ping xmlns='urn:xmpp:ping'/></iq>")
	if got := alice.Received(); called != 2 || len(got) != 3 || got[1].Type != "result" || got[2].Type != "result" {
		t.Fatalf("iq to existing accounts: called=%d %v", called, got)
	}
}

// BenchmarkRouteLocal measures one-to-one routing of a chat message between
// two local sessions (hook chains empty, delivery to one queue).
func BenchmarkRouteLocal(b *testing.B) {
	r := newTestRouter(b)
	alice := online(r, "alice@example.org/a", 0)
	bob := online(r, "bob@example.org/b", 0)
	bob.Take()
	st := wire.MustParse("<message from='alice@example.org/a' to='bob@example.org/b' type='chat' id='x'><body>hello</body></message>")
	ctx := context.Background()
	origin := module.Origin{Kind: module.FromClient, Session: alice}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r.Route(ctx, st, origin)
	}
}

// TestServiceHostDispatch: IQ requests to a service host and to bare JIDs
// under it reach the handlers registered with HostIQ (per host and
// target), with the router's replies; everything else reaches the host's
// Handler, or is answered service-unavailable when it has none.
func TestServiceHostDispatch(t *testing.T) {
	r := router.New(router.Config{Domains: []string{"example.org"}})
	reg := module.NewRegistry([]string{"example.org"}, r.Sender(), r)
	var got []string
	handler := func(name string) module.IQHandler {
		return func(ctx context.Context, ev *module.Event) (*wire.Element, error) {
			got = append(got, name+" "+ev.To.String())
			if ev.Stanza.Type == "set" {
				return nil, module.Err(wire.ErrNotAllowed)
			}
			return wire.NewElement("urn:x", "answer"), nil
		}
	}
	reg.AddHost(module.Host{Domain: "muc.example.org", Parent: "example.org", Handler: func(ctx context.Context, ev *module.Event) module.Verdict {
		got = append(got, "handler "+ev.Stanza.Name+" "+ev.To.String())
		return module.Handled
	}})
	reg.AddHost(module.Host{Domain: "up.example.org", Parent: "example.org"})
	reg.HostIQ("muc.example.org", "urn:x", "q", module.TargetHost, handler("host"))
	reg.HostIQ("muc.example.org", "urn:x", "q", module.TargetHostEntity, handler("entity"))
	reg.HostIQ("up.example.org", "urn:x", "q", module.TargetHost, handler("up"))
	r.SetRegistry(reg)
	ctx := context.Background()
	alice := online(r, "alice@example.org/a", 0)
	route := func(s string) {
		r.Route(ctx, wire.MustParse(s), module.Origin{Kind: module.FromClient, Session: alice})
	}
	cond := func(st *wire.Stanza) string {
		if e := st.Child(wire.NSClient, "error"); e != nil {
			return e.FirstElement().Name.Local
		}
		return ""
	}

	route("<iq from='alice@example.org/a' to='muc.example.org' id='1' type='get'><q xmlns='urn:x'/></iq>")
	route("<iq from='alice@example.org/a' to='room@muc.example.org' id='2' type='get'><q xmlns='urn:x'/></iq>")
	route("<iq from='alice@example.org/a' to='room@muc.example.org' id='3' type='set'><q xmlns='urn:x'/></iq>")
	route("<iq from='alice@example.org/a' to='up.example.org' id='4' type='get'><q xmlns='urn:x'/></iq>")
	route("<iq from='alice@example.org/a' to='room@up.example.org' id='5' type='get'><q xmlns='urn:x'/></iq>")
	route("<iq from='alice@example.org/a' to='muc.example.org' id='6' type='get'><other xmlns='urn:x'/></iq>")
	route("<iq from='alice@example.org/a' to='room@muc.example.org/nick' id='7' type='get'><q xmlns='urn:x'/></iq>")
	route("<message from='alice@example.org/a' to='room@muc.example.org' id='8' type='groupchat'><body>x</body></message>")
	route("<message from='alice@example.org/a' to='up.example.org' id='9'><body>x</body></message>")
	route("<iq from='alice@example.org/a' to='room@muc.example.org' id='10' type='result'/>")

	want := []string{"host muc.example.org", "entity room@muc.example.org", "entity room@muc.example.org",
		"up up.example.org", "handler iq room@muc.example.org/nick", "handler message room@muc.example.org",
		"handler iq room@muc.example.org"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("dispatch:\n got %q\nwant %q", got, want)
	}
	replies := alice.Received()
	wantReplies := []struct{ id, typ, cond, from string }{
		{"1", "result", "", "muc.example.org"}, {"2", "result", "", "room@muc.example.org"},
		{"3", "error", "not-allowed", "room@muc.example.org"}, {"4", "result", "", "up.example.org"},
		{"5", "error", "service-unavailable", "room@up.example.org"}, {"6", "error", "service-unavailable", "muc.example.org"},
		{"9", "error", "service-unavailable", "up.example.org"},
	}
	if len(replies) != len(wantReplies) {
		t.Fatalf("replies: %v", replies)
	}
	for i, w := range wantReplies {
		st := replies[i]
		if st.ID != w.id || st.Type != w.typ || cond(st) != w.cond || st.From != w.from {
			t.Errorf("reply %d: %s, want id=%s type=%s cond=%s from=%s", i, st.Raw, w.id, w.typ, w.cond, w.from)
		}
	}
}
