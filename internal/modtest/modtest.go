// Package modtest is the shared scaffolding of the feature modules' tests:
// a real router and module registry over a real SQLite store (Env),
// recording sessions standing in for c2s connections (Session), and
// helpers to send stanzas and check the replies. Tests only.
//
// A typical test wires its module and logs users in:
//
//	e := modtest.New(t)
//	m := mymodule.New(cfg, e.Store)
//	e.Register(m)
//	a := e.Login("alice@example.org/a")
//	reply := e.IQ(a, "<iq type='get' id='1'>...</iq>")
package modtest

import (
	"context"
	"strings"
	"testing"

	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/router"
	"github.com/parley-xmpp/parley/storage/sqlite"
	"github.com/parley-xmpp/parley/wire"
)

// Domain is the one virtual host an Env serves.
const Domain = "example.org"

// Env is a router serving Domain, its module registry and the SQLite store
// whose accounts are the router's users.
type Env struct {
	T        testing.TB
	Ctx      context.Context // context.Background()
	Store    *sqlite.Store
	Router   *router.Router
	Registry *module.Registry
}

// New opens a store in t.TempDir() (closed when the test ends) and builds
// the router and an empty registry. Register then adds the modules.
func New(t testing.TB) *Env {
	t.Helper()
	ctx := context.Background()
	store, err := sqlite.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	r := router.New(router.Config{Domains: []string{Domain}})
	reg := module.NewRegistry([]string{Domain}, r.Sender(), r)
	reg.SetAccounts(store)
	return &Env{T: t, Ctx: ctx, Store: store, Router: r, Registry: reg}
}

// Register registers mods in order (which is the order their hooks run)
// and installs the registry in the router; it fails the test if a module
// refuses to register.
func (e *Env) Register(mods ...module.Module) {
	e.T.Helper()
	for _, m := range mods {
		if err := m.Register(e.Registry); err != nil {
			e.T.Fatal(err)
		}
	}
	e.Router.SetRegistry(e.Registry)
}

// Account creates the account bare (with no credentials) unless it exists.
func (e *Env) Account(bare string) {
	e.T.Helper()
	if ok, _ := e.Store.AccountExists(e.Ctx, bare); !ok {
		if err := e.Store.CreateAccount(e.Ctx, bare, nil); err != nil {
			e.T.Fatal(err)
		}
	}
}

// Bind binds s in the router as c2s does after resource binding.
func (e *Env) Bind(s module.Session) {
	e.T.Helper()
	if _, err := e.Router.Bind(s); err != nil {
		e.T.Fatal(err)
	}
}

// Connect binds a new unavailable session for full without touching the
// accounts (see Login).
func (e *Env) Connect(full string) *Session {
	e.T.Helper()
	s := NewSession(full)
	e.Bind(s)
	return s
}

// Login creates the account of full if needed and binds a new unavailable
// session for it.
func (e *Env) Login(full string) *Session {
	e.T.Helper()
	s := NewSession(full)
	e.Account(s.JID().Bare().String())
	e.Bind(s)
	return s
}

// LoginAvailable is Login for a session that is already available with
// the given priority when it is bound (see Session.Available).
func (e *Env) LoginAvailable(full string, priority int) *Session {
	e.T.Helper()
	s := NewSession(full).Available(priority)
	e.Account(s.JID().Bare().String())
	e.Bind(s)
	return s
}

// Logout ends s as c2s does when a stream closes: if s is still bound, it
// unbinds it and fires the unbound hooks. It reports whether s was bound.
func (e *Env) Logout(s module.Session) bool {
	if !e.Router.Unbind(s) {
		return false
	}
	e.Registry.FireUnbound(e.Ctx, s)
	return true
}

// RouteFrom routes st from s as c2s does: 'from' is stamped with s's full
// JID and the origin is the client session s.
func (e *Env) RouteFrom(s module.Session, st *wire.Stanza) error {
	st = st.WithAttr("from", s.JID().String())
	e.Router.Route(e.Ctx, st, module.Origin{Kind: module.FromClient, Session: s})
	return nil
}

// Send parses xml and routes it from s (see RouteFrom), failing the test
// if routing fails.
func (e *Env) Send(s module.Session, xml string) {
	e.T.Helper()
	if err := e.RouteFrom(s, wire.MustParse(xml)); err != nil {
		e.T.Fatal(err)
	}
}

// Remote parses xml and routes it as if it arrived over s2s, failing the
// test if routing fails; it returns the parsed stanza.
func (e *Env) Remote(xml string) *wire.Stanza {
	e.T.Helper()
	st := wire.MustParse(xml)
	e.Router.Route(e.Ctx, st, module.Origin{Kind: module.FromServer})
	return st
}

// IQ sends the request xml from s and returns the reply, which must be
// the one stanza s receives (and carry the request's id).
func (e *Env) IQ(s *Session, xml string) *wire.Stanza {
	e.T.Helper()
	id := wire.MustParse(xml).ID
	e.Send(s, xml)
	got := s.Take()
	if len(got) != 1 {
		e.T.Fatalf("%s: got %d replies, want 1", xml, len(got))
	}
	if got[0].ID != id {
		e.T.Fatalf("reply id %q, want %q: %s", got[0].ID, id, got[0].Raw)
	}
	return got[0]
}

// IQCollect sends the request xml from s and returns everything s
// received: the reply, which must come last, and what came before it
// (e.g. query results).
func (e *Env) IQCollect(s *Session, xml string) (before []*wire.Stanza, reply *wire.Stanza) {
	e.T.Helper()
	id := wire.MustParse(xml).ID
	e.Send(s, xml)
	got := s.Take()
	if len(got) == 0 {
		e.T.Fatalf("%s: no reply", xml)
	}
	reply = got[len(got)-1]
	if reply.Name != "iq" || reply.ID != id {
		e.T.Fatalf("%s: last stanza is not the reply: %s", xml, reply.Raw)
	}
	return got[:len(got)-1], reply
}

// IQFind sends the request xml from s and removes and returns the reply
// (the result or error with its id) from what s received, leaving the
// other stanzas in place.
func (e *Env) IQFind(s *Session, xml string) *wire.Stanza {
	e.T.Helper()
	st := wire.MustParse(xml)
	e.Send(s, xml)
	res := s.Find(func(r *wire.Stanza) bool {
		return r.Name == "iq" && r.ID == st.ID && (r.Type == "result" || r.Type == "error")
	})
	if res == nil {
		e.T.Fatalf("no response to %s; got %s", st.Raw, Dump(s.Take()))
	}
	return res
}

// ExpectReply sends the request req from s (see IQ) and checks the exact
// serialization of the reply.
func (e *Env) ExpectReply(s *Session, req, want string) {
	e.T.Helper()
	if got := string(e.IQ(s, req).Raw); got != want {
		e.T.Errorf("%s:\n got %s\nwant %s", req, got, want)
	}
}

// ErrCondition returns the defined condition of an error stanza (e.g.
// "item-not-found"), "?" for an error without one, and "" when st is nil
// or not an error.
func ErrCondition(st *wire.Stanza) string {
	if st == nil || st.Type != "error" {
		return ""
	}
	if c := st.Child(wire.NSClient, "error").FirstElement(); c != nil {
		return c.Name.Local
	}
	return "?"
}

// Dump renders stanzas one a line, for failure messages.
func Dump(sts []*wire.Stanza) string {
	var b strings.Builder
	b.WriteString("[")
	for _, st := range sts {
		b.WriteString("\n  " + string(st.Raw))
	}
	b.WriteString("\n]")
	return b.String()
}
