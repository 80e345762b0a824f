package omemo

import (
	"context"
	"strings"
	"testing"

	"github.com/parley-xmpp/parley/internal/modtest"
	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/router"
	"github.com/parley-xmpp/parley/wire"
)

func TestNodeDefaults(t *testing.T) {
	for _, n := range []string{NodeLegacyDevices, NodeDevices, NodeBundles, NodeLegacyBundlesPrefix + "12345"} {
		d := NodeDefaults(n)
		if d["pubsub#access_model"] != "open" || d["pubsub#persist_items"] != "true" || d["pubsub#max_items"] == "" {
			t.Errorf("NodeDefaults(%q) = %v", n, d)
		}
	}
	if d := NodeDefaults(NodeBundles); d["pubsub#max_items"] != "max" {
		t.Errorf("OMEMO 2 bundles keep one item per device: %v", d)
	}
	for _, n := range []string{"urn:xmpp:bookmarks:1", NodeLegacyBundlesPrefix, "urn:xmpp:omemo:2:devicesx"} {
		if d := NodeDefaults(n); d != nil {
			t.Errorf("NodeDefaults(%q) = %v, want nil", n, d)
		}
	}
}

// session stands in for a c2s session (the module test kit's).
type session = modtest.Session

func TestRequireE2E(t *testing.T) {
	ctx := context.Background()
	r := router.New(router.Config{Domains: []string{"strict.example", "lax.example"}})
	reg := module.NewRegistry([]string{"strict.example", "lax.example"}, r.Sender(), r)
	if err := New(Config{Settings: Settings{RequireE2E: []string{"Strict.example"}}}).Register(reg); err != nil {
		t.Fatal(err)
	}
	r.SetRegistry(reg)
	bind := func(full string) *session {
		s := modtest.NewSession(full).Available(0)
		if _, err := r.Bind(s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	a, b, c := bind("a@strict.example/x"), bind("b@lax.example/y"), bind("c@lax.example/z")
	send := func(from *session, raw string) {
		st := wire.MustParse(raw).WithAttr("from", from.JID().String())
		r.Route(ctx, st, module.Origin{Kind: module.FromClient, Session: from})
	}

	// Plain chat from a strict domain is refused with an explanation.
	send(a, "<message type='chat' to='b@lax.example' id='m1'><body>hi</body></message>")
	if got := b.Take(); len(got) != 0 {
		t.Fatalf("plain message delivered: %s", got[0].Raw)
	}
	got := a.Take()
	if len(got) != 1 || got[0].Type != "error" || got[0].ID != "m1" {
		t.Fatalf("sender got %v", got)
	}
	e := got[0].Child(wire.NSClient, "error")
	if e.Child(wire.NSStanzas, wire.ErrPolicyViolation) == nil || !strings.Contains(e.ChildText(wire.NSStanzas, "text"), "OMEMO") {
		t.Fatalf("error: %s", got[0].Raw)
	}

	// Encrypted (with fallback body) passes byte for byte.
	enc := "<message type='chat' to='b@lax.example/y' id='m2'><encrypted xmlns='eu.siacs.conversations.axolotl'><header sid='27183'><key rid='31415'>BASE64ENCODED=</key><iv>BASE64IV=</iv></header><payload>BASE64PAYLOAD=</payload></encrypted><body>I sent you an OMEMO encrypted message</body></message>"
	send(a, enc)
	got = b.Take()
	want := wire.MustParse(enc).WithAttr("from", "a@strict.example/x")
	if len(got) != 1 || string(got[0].Raw) != string(want.Raw) {
		t.Fatalf("encrypted message: got %v", got)
	}
	// OMEMO 2 too; chat states and groupchat are not affected.
	send(a, "<message type='chat' to='b@lax.example/y'><encrypted xmlns='urn:xmpp:omemo:2'><header sid='1'/><payload>x</payload></encrypted><body>fallback</body></message>")
	send(a, "<message type='chat' to='b@lax.example/y'><active xmlns='http://jabber.org/protocol/chatstates'/></message>")
	if got := b.Take(); len(got) != 2 {
		t.Fatalf("want 2 delivered, got %d", len(got))
	}
	// Other domains are not affected.
	send(c, "<message type='chat' to='b@lax.example/y'><body>plain</body></message>")
	if got := b.Take(); len(got) != 1 {
		t.Fatalf("lax domain message not delivered: %v", got)
	}
}
