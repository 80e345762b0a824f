package router

import (
	"context"
	"sync"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/wire"
)

// recorder is a module.Session standing in for a client connection.
type recorder struct {
	j     jid.JID
	mu    sync.Mutex
	got   []*wire.Stanza
	pres  *wire.Stanza
	prio  int
	flags module.Flags
	count int
}

func (r *recorder) JID() jid.JID { return r.j }
func (r *recorder) Send(st *wire.Stanza) error {
	r.mu.Lock()
	r.count++
	if r.got != nil || r.count < 100 {
		r.got = append(r.got, st)
	}
	r.mu.Unlock()
	return nil
}
func (r *recorder) Presence() *wire.Stanza         { return r.pres }
func (r *recorder) SetPresence(st *wire.Stanza)    { r.pres = st }
func (r *recorder) Priority() int                  { return r.prio }
func (r *recorder) Flags() module.Flags            { return r.flags }
func (r *recorder) SetFlags(set, clr module.Flags) { r.flags = r.flags | set&^clr }
func (r *recorder) Close(*wire.StreamError)        {}
func (r *recorder) ConnID() string                 { return "test" }

func newTestRouter(t testing.TB) *Router {
	r := New(Config{Domains: []string{"example.org"}, UserExists: func(ctx context.Context, bare string) (bool, error) {
		return bare == "carol@example.org", nil
	}})
	r.SetRegistry(module.NewRegistry([]string{"example.org"}, r.Sender(), r))
	return r
}

func online(r *Router, full string, prio int) *recorder {
	s := &recorder{j: jid.MustParse(full), prio: prio, pres: wire.MustParse("<presence/>")}
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
	if len(b1.got) != 1 || len(b3.got) != 1 || len(b2.got) != 0 {
		t.Fatalf("bare chat: one=%d two=%d three=%d", len(b1.got), len(b2.got), len(b3.got))
	}
	// Full JID reaches even a negative-priority resource.
	route("<message from='alice@example.org/a' to='bob@example.org/two' type='chat'><body>x</body></message>")
	if len(b2.got) != 1 {
		t.Fatal("full JID delivery failed")
	}
	// Unknown resource: chat falls back to the bare JID.
	route("<message from='alice@example.org/a' to='bob@example.org/gone' type='chat'><body>x</body></message>")
	if len(b1.got) != 2 {
		t.Fatal("fallback to bare failed")
	}
	// Unknown user: service-unavailable back to the sender.
	route("<message from='alice@example.org/a' to='nobody@example.org' id='e1' type='chat'><body>x</body></message>")
	if len(alice.got) != 1 || alice.got[0].Type != "error" || alice.got[0].Child(wire.NSClient, "error").Child(wire.NSStanzas, "service-unavailable") == nil {
		t.Fatalf("unknown user: %s", alice.got[0].Raw)
	}
	// IQ to an unavailable full JID: service-unavailable.
	route("<iq from='alice@example.org/a' to='bob@example.org/gone' id='q' type='get'><query xmlns='urn:x'/></iq>")
	if len(alice.got) != 2 || alice.got[1].Child(wire.NSClient, "error").Child(wire.NSStanzas, "service-unavailable") == nil {
		t.Fatalf("iq: %s", alice.got[1].Raw)
	}
}

// BenchmarkRouteLocal measures one-to-one routing of a chat message between
// two local sessions (hook chains empty, delivery to one queue).
func BenchmarkRouteLocal(b *testing.B) {
	r := newTestRouter(b)
	alice := online(r, "alice@example.org/a", 0)
	bob := online(r, "bob@example.org/b", 0)
	bob.got = nil
	st := wire.MustParse("<message from='alice@example.org/a' to='bob@example.org/b' type='chat' id='x'><body>hello</body></message>")
	ctx := context.Background()
	origin := module.Origin{Kind: module.FromClient, Session: alice}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r.Route(ctx, st, origin)
	}
}
