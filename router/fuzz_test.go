package router_test

import (
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/parley-xmpp/parley/internal/modtest"
	"github.com/parley-xmpp/parley/router"
	"github.com/parley-xmpp/parley/wire"
)

// FuzzJID: the addresses the router parses (a 'to' of any stanza kind).
// A JID that parses keeps its meaning when written out and read again,
// and routing to any address gets the sender a well-formed answer (an
// error for what cannot be delivered), never a panic.
func FuzzJID(f *testing.F) {
	for _, s := range []string{
		"bob@example.org", "bob@example.org/phone", "example.org", "Bob@EXAMPLE.org/ Phone ",
		"juliet@capulet.example/balcony/window", "@example.org", "bob@", "bob@example.org/", "ß@straße.example",
		"\u0130@example.org", "a@[::1]", "a@127.0.0.1:5222", "x@y\u200b.example", "",
	} {
		f.Add(s)
	}
	e := modtest.New(f)
	e.Register()
	a := e.LoginAvailable("alice@example.org/fuzz", 0)
	e.LoginAvailable("bob@example.org/phone", 0)
	f.Fuzz(func(t *testing.T, s string) {
		if j, err := router.ParseJID(s); err == nil {
			// The second parse comes from the cache.
			if j2, err := router.ParseJID(s); err != nil || !j2.Equal(j) || j2.String() != j.String() {
				t.Fatalf("%q parses to %q, then to %q (%v)", s, j, j2, err)
			}
			again, err := jid.Parse(j.String())
			if err != nil || !again.Equal(j) || again.String() != j.String() {
				t.Fatalf("%q parses to %q, which reads back as %q (%v)", s, j, again, err)
			}
			if j.Domainpart() == "" || j.Bare().String() != jid.MustParse(j.Bare().String()).String() {
				t.Fatalf("%q: domain %q, bare %q", s, j.Domainpart(), j.Bare())
			}
		}
		to := wire.EscapeAttr(s)
		for _, st := range []string{
			"<message to='" + to + "' type='chat' id='fz'><body>x</body></message>",
			"<presence to='" + to + "' type='subscribe' id='fz'/>",
			"<iq to='" + to + "' type='get' id='fz'><ping xmlns='urn:xmpp:ping'/></iq>",
		} {
			p, err := wire.Parse([]byte(st), wire.Limits{})
			if err != nil {
				return // not a valid attribute value (a control character)
			}
			if err := e.RouteFrom(a, p); err != nil {
				t.Fatalf("routing %s: %v", st, err)
			}
		}
		for _, r := range a.Take() {
			if _, err := wire.Parse(r.Raw, wire.Limits{MaxStanzaBytes: len(r.Raw) + 1}); err != nil {
				t.Fatalf("malformed answer to %q: %s", s, r.Raw)
			}
		}
	})
}
