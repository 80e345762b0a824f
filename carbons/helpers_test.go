package carbons

import (
	"context"
	"sync"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/parley-xmpp/parley/mam"
	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/router"
	"github.com/parley-xmpp/parley/storage/sqlite"
	"github.com/parley-xmpp/parley/wire"
)

const domain = "example.org"

// session is a module.Session standing in for a client connection: it
// records what it is sent.
type session struct {
	j         jid.JID
	priority  int
	available bool
	onSend    func(st *wire.Stanza)

	mu    sync.Mutex
	got   []*wire.Stanza
	flags module.Flags
}

func (s *session) JID() jid.JID { return s.j }
func (s *session) Send(st *wire.Stanza) error {
	if s.onSend != nil {
		s.onSend(st)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, st)
	return nil
}
func (s *session) Presence() *wire.Stanza {
	if !s.available {
		return nil
	}
	return wire.MustParse("<presence/>")
}
func (s *session) SetPresence(*wire.Stanza) {}
func (s *session) Priority() int            { return s.priority }
func (s *session) Flags() module.Flags {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.flags
}
func (s *session) SetFlags(set, clear module.Flags) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.flags = s.flags&^clear | set
}
func (s *session) Close(*wire.StreamError) {}
func (s *session) ConnID() string          { return "test-" + s.j.String() }

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
	mam    *mam.Module
}

// setup wires the module into a real router over a real SQLite store,
// after the mam module when withMAM (the production order).
func setup(t *testing.T, withMAM bool) *env {
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
	m := New(Config{})
	var mods []module.Module
	var archive *mam.Module
	if withMAM {
		archive = mam.New(mam.Config{}, store, store, store)
		mods = append(mods, archive)
	}
	for _, mod := range append(mods, m) {
		if err := mod.Register(reg); err != nil {
			t.Fatal(err)
		}
	}
	r.SetRegistry(reg)
	return &env{t: t, router: r, reg: reg, store: store, mod: m, mam: archive}
}

// account creates an account without binding a session.
func (e *env) account(bare string) {
	e.t.Helper()
	ctx := context.Background()
	if ok, _ := e.store.AccountExists(ctx, bare); !ok {
		if err := e.store.CreateAccount(ctx, bare, nil); err != nil {
			e.t.Fatal(err)
		}
	}
}

// login creates the account (if needed) and binds an available session
// with the given priority.
func (e *env) login(full string, priority int) *session {
	e.t.Helper()
	j := jid.MustParse(full)
	e.account(j.Bare().String())
	s := &session{j: j, priority: priority, available: true}
	if _, err := e.router.Bind(s); err != nil {
		e.t.Fatal(err)
	}
	return s
}

// send routes xml from s as c2s does (stamping 'from').
func (e *env) send(s *session, xml string) {
	e.t.Helper()
	st := wire.MustParse(xml).WithAttr("from", s.j.String())
	if err := e.router.Route(context.Background(), st, module.Origin{Kind: module.FromClient, Session: s}); err != nil {
		e.t.Fatal(err)
	}
}

// remote routes xml as if it arrived over s2s.
func (e *env) remote(xml string) *wire.Stanza {
	e.t.Helper()
	st := wire.MustParse(xml)
	if err := e.router.Route(context.Background(), st, module.Origin{Kind: module.FromServer}); err != nil {
		e.t.Fatal(err)
	}
	return st
}

// iq sends a request from s and returns everything s received; the last
// stanza must be the reply.
func (e *env) iq(s *session, xml string) (results []*wire.Stanza, reply *wire.Stanza) {
	e.t.Helper()
	st := wire.MustParse(xml)
	e.send(s, xml)
	got := s.take()
	if len(got) == 0 {
		e.t.Fatalf("%s: no reply", xml)
	}
	reply = got[len(got)-1]
	if reply.Name != "iq" || reply.ID != st.ID {
		e.t.Fatalf("%s: last stanza is not the reply: %s", xml, reply.Raw)
	}
	return got[:len(got)-1], reply
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
