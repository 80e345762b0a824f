package register

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/parley-xmpp/parley/auth"
	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/router"
	"github.com/parley-xmpp/parley/storage"
	"github.com/parley-xmpp/parley/storage/sqlite"
	"github.com/parley-xmpp/parley/wire"
)

const domain = "example.org"

func derive(password string) ([]storage.SCRAMCredential, error) {
	return auth.DeriveCredentials(password, auth.MinIterations)
}

// session is a module.Session standing in for a client connection.
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
	clock  time.Time
}

func setup(t *testing.T, cfg Config) *env {
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
	if cfg.Derive == nil {
		cfg.Derive = derive
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	m := New(cfg, store)
	if err := m.Register(reg); err != nil {
		t.Fatal(err)
	}
	r.SetRegistry(reg)
	e := &env{t: t, router: r, reg: reg, store: store, mod: m, clock: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
	m.now = func() time.Time { return e.clock }
	return e
}

// preAuth sends xml on an unauthenticated stream from addr.
func (e *env) preAuth(xml, addr string, secure bool) *wire.Stanza {
	e.t.Helper()
	return e.mod.PreAuth(context.Background(), wire.MustParse(xml), domain, addr, secure)
}

// expectPre checks the exact reply to a pre-authentication request.
func (e *env) expectPre(xml, addr string, secure bool, want string) {
	e.t.Helper()
	res := e.preAuth(xml, addr, secure)
	if res == nil {
		e.t.Fatalf("%s: no reply", xml)
	}
	if string(res.Raw) != want {
		e.t.Errorf("%s:\n got %s\nwant %s", xml, res.Raw, want)
	}
}

func (e *env) login(full string) *session {
	e.t.Helper()
	s := &session{j: jid.MustParse(full)}
	if _, err := e.router.Bind(s); err != nil {
		e.t.Fatal(err)
	}
	return s
}

// iq routes a request from s (stamping 'from' as c2s does) and returns
// the one reply s receives.
func (e *env) iq(s *session, xml string) *wire.Stanza {
	e.t.Helper()
	st := wire.MustParse(xml).WithAttr("from", s.j.String())
	if err := e.router.Route(context.Background(), st, module.Origin{Kind: module.FromClient, Session: s}); err != nil {
		e.t.Fatal(err)
	}
	got := s.take()
	if len(got) != 1 || got[0].ID != st.ID {
		e.t.Fatalf("%s: replies %v", xml, got)
	}
	return got[0]
}

func (e *env) expect(s *session, xml, want string) {
	e.t.Helper()
	if got := string(e.iq(s, xml).Raw); got != want {
		e.t.Errorf("%s:\n got %s\nwant %s", xml, got, want)
	}
}

func (e *env) exists(bare string) bool {
	e.t.Helper()
	ok, err := e.store.AccountExists(context.Background(), bare)
	if err != nil {
		e.t.Fatal(err)
	}
	return ok
}

func (e *env) passwordIs(bare, password string) bool {
	e.t.Helper()
	creds, err := e.store.Credentials(context.Background(), bare)
	if err != nil {
		e.t.Fatal(err)
	}
	return auth.VerifyPassword(creds, password)
}

func errCondition(st *wire.Stanza) string {
	if st == nil || st.Type != "error" {
		return ""
	}
	if e := st.Child(wire.NSClient, "error").FirstElement(); e != nil {
		return e.Name.Local
	}
	return "?"
}

func errText(st *wire.Stanza) string {
	return st.Child(wire.NSClient, "error").ChildText(wire.NSStanzas, "text")
}
