package basic

import (
	"context"
	"sync"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/router"
	"github.com/parley-xmpp/parley/storage/sqlite"
	"github.com/parley-xmpp/parley/wire"
)

const domain = "example.org"

// session is a module.Session standing in for a client connection: it
// records what it is sent.
type session struct {
	j   jid.JID
	mu  sync.Mutex
	got []*wire.Stanza
}

func (s *session) JID() jid.JID { return s.j }
func (s *session) Send(st *wire.Stanza) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, st)
	return nil
}
func (s *session) Presence() *wire.Stanza           { return nil }
func (s *session) SetPresence(*wire.Stanza)         {}
func (s *session) Priority() int                    { return 0 }
func (s *session) Flags() module.Flags              { return 0 }
func (s *session) SetFlags(set, clear module.Flags) {}
func (s *session) Close(*wire.StreamError)          {}
func (s *session) ConnID() string                   { return "test-" + s.j.String() }

// take returns and forgets what the session received.
func (s *session) take() []*wire.Stanza {
	s.mu.Lock()
	defer s.mu.Unlock()
	got := s.got
	s.got = nil
	return got
}

type env struct {
	t      *testing.T
	router *router.Router
	reg    *module.Registry
	store  *sqlite.Store
	mod    *Module
}

// setup wires the module (and extra modules registered after it) into a
// real router over a real SQLite store.
func setup(t *testing.T, cfg Config, extra ...module.Module) *env {
	t.Helper()
	ctx := context.Background()
	store, err := sqlite.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	r := router.New(router.Config{Domains: []string{domain}, UserExists: func(ctx context.Context, bare string) (bool, error) {
		return store.AccountExists(ctx, bare)
	}})
	reg := module.NewRegistry([]string{domain}, r.Sender(), r)
	m := New(cfg, store)
	for _, mod := range append([]module.Module{m}, extra...) {
		if err := mod.Register(reg); err != nil {
			t.Fatal(err)
		}
	}
	r.SetRegistry(reg)
	return &env{t: t, router: r, reg: reg, store: store, mod: m}
}

// login creates the account (if needed) and binds a session for full.
func (e *env) login(full string) *session {
	e.t.Helper()
	j := jid.MustParse(full)
	ctx := context.Background()
	if ok, _ := e.store.AccountExists(ctx, j.Bare().String()); !ok {
		if err := e.store.CreateAccount(ctx, j.Bare().String(), nil); err != nil {
			e.t.Fatal(err)
		}
	}
	s := &session{j: j}
	if _, err := e.router.Bind(s); err != nil {
		e.t.Fatal(err)
	}
	return s
}

// iq sends the request from s (stamping 'from' as c2s does) and returns
// the single stanza s receives in reply.
func (e *env) iq(s *session, xml string) *wire.Stanza {
	e.t.Helper()
	st := wire.MustParse(xml).WithAttr("from", s.j.String())
	if err := e.router.Route(context.Background(), st, module.Origin{Kind: module.FromClient, Session: s}); err != nil {
		e.t.Fatal(err)
	}
	got := s.take()
	if len(got) != 1 {
		e.t.Fatalf("%s: got %d replies, want 1", xml, len(got))
	}
	if got[0].ID != st.ID {
		e.t.Fatalf("reply id %q, want %q: %s", got[0].ID, st.ID, got[0].Raw)
	}
	return got[0]
}

// expect checks the exact serialization of a reply.
func (e *env) expect(s *session, req, want string) {
	e.t.Helper()
	if got := string(e.iq(s, req).Raw); got != want {
		e.t.Errorf("%s:\n got %s\nwant %s", req, got, want)
	}
}

func errCondition(st *wire.Stanza) string {
	if st.Type != "error" {
		return ""
	}
	if e := st.Child(wire.NSClient, "error").FirstElement(); e != nil {
		return e.Name.Local
	}
	return "?"
}
