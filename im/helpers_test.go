package im

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/router"
	"github.com/parley-xmpp/parley/storage"
	"github.com/parley-xmpp/parley/storage/sqlite"
	"github.com/parley-xmpp/parley/wire"
	"github.com/parley-xmpp/parley/xep"
)

const domain = "example.org"

// session is a module.Session standing in for a client connection: it
// records what it is sent and keeps presence, priority and flags the way
// c2s does.
type session struct {
	j     jid.JID
	mu    sync.Mutex
	got   []*wire.Stanza
	pres  *wire.Stanza
	prio  int
	flags module.Flags
}

func (s *session) JID() jid.JID { return s.j }
func (s *session) Send(st *wire.Stanza) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, st)
	return nil
}
func (s *session) Presence() *wire.Stanza {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pres
}
func (s *session) SetPresence(st *wire.Stanza) {
	prio := 0
	if st != nil {
		if v, err := strconv.Atoi(st.Child(wire.NSClient, "priority").Text()); err == nil {
			prio = v
		}
	}
	s.mu.Lock()
	s.pres, s.prio = st, prio
	s.mu.Unlock()
}
func (s *session) Priority() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.prio
}
func (s *session) Flags() module.Flags {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.flags
}
func (s *session) SetFlags(set, clear module.Flags) {
	s.mu.Lock()
	s.flags = (s.flags | set) &^ clear
	s.mu.Unlock()
}
func (s *session) Close(*wire.StreamError) {}
func (s *session) ConnID() string          { return "test-" + s.j.String() }

// take returns and forgets everything the session received.
func (s *session) take() []*wire.Stanza {
	s.mu.Lock()
	defer s.mu.Unlock()
	got := s.got
	s.got = nil
	return got
}

// find removes and returns the first received stanza matching pred.
func (s *session) find(pred func(*wire.Stanza) bool) *wire.Stanza {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, st := range s.got {
		if pred(st) {
			s.got = append(s.got[:i:i], s.got[i+1:]...)
			return st
		}
	}
	return nil
}

// expect fails unless the session received a stanza matching pred.
func (s *session) expect(t *testing.T, desc string, pred func(*wire.Stanza) bool) *wire.Stanza {
	t.Helper()
	st := s.find(pred)
	if st == nil {
		t.Fatalf("%s: %s did not receive it; got %s", desc, s.j, dump(s.take()))
	}
	return st
}

// expectNone fails if the session received a stanza matching pred.
func (s *session) expectNone(t *testing.T, desc string, pred func(*wire.Stanza) bool) {
	t.Helper()
	if st := s.find(pred); st != nil {
		t.Fatalf("%s: %s unexpectedly received %s", desc, s.j, st.Raw)
	}
}

func dump(sts []*wire.Stanza) string {
	out := "["
	for _, st := range sts {
		out += "\n  " + string(st.Raw)
	}
	return out + "\n]"
}

// pres matches a presence by type and from.
func pres(typ, from string) func(*wire.Stanza) bool {
	return func(st *wire.Stanza) bool { return st.Name == "presence" && st.Type == typ && st.From == from }
}

// rosterPush matches a roster push for contact.
func rosterPush(contact string) func(*wire.Stanza) bool {
	return func(st *wire.Stanza) bool {
		if st.Name != "iq" || st.Type != "set" {
			return false
		}
		it := st.Child(xep.NSRoster, "query").Child(xep.NSRoster, "item")
		return it != nil && it.AttrValue("jid") == contact
	}
}

// msg matches a message with the given body.
func msg(body string) func(*wire.Stanza) bool {
	return func(st *wire.Stanza) bool {
		return st.Name == "message" && st.Child(wire.NSClient, "body").Text() == body
	}
}

type env struct {
	t      *testing.T
	ctx    context.Context
	router *router.Router
	reg    *module.Registry
	store  *sqlite.Store
	mod    *Module
}

// setup wires the module into a real router over a real SQLite store.
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
	m := New(cfg, store, store, store)
	if err := m.Register(reg); err != nil {
		t.Fatal(err)
	}
	r.SetRegistry(reg)
	return &env{t: t, ctx: ctx, router: r, reg: reg, store: store, mod: m}
}

// account creates an account if needed.
func (e *env) account(bare string) {
	e.t.Helper()
	if ok, _ := e.store.AccountExists(e.ctx, bare); !ok {
		if err := e.store.CreateAccount(e.ctx, bare, nil); err != nil {
			e.t.Fatal(err)
		}
	}
}

// login creates the account (if needed) and binds a session for full.
func (e *env) login(full string) *session {
	e.t.Helper()
	j := jid.MustParse(full)
	e.account(j.Bare().String())
	s := &session{j: j}
	if _, err := e.router.Bind(s); err != nil {
		e.t.Fatal(err)
	}
	return s
}

// online logs in, fetches the roster (becoming interested) and sends
// initial presence; it then forgets what the session received.
func (e *env) online(full string) *session {
	e.t.Helper()
	s := e.login(full)
	e.iq(s, "<iq type='get' id='r0'><query xmlns='jabber:iq:roster'/></iq>")
	e.send(s, "<presence/>")
	s.take()
	return s
}

// logout ends a session as c2s does.
func (e *env) logout(s *session) {
	if e.router.Unbind(s) {
		e.reg.FireUnbound(e.ctx, s)
	}
}

// send routes a stanza from s, stamping 'from' as c2s does.
func (e *env) send(s *session, format string, args ...any) {
	e.t.Helper()
	st := wire.MustParse(fmt.Sprintf(format, args...)).WithAttr("from", s.j.String())
	if err := e.router.Route(e.ctx, st, module.Origin{Kind: module.FromClient, Session: s}); err != nil {
		e.t.Fatal(err)
	}
}

// iq sends an IQ request from s and returns the response, leaving other
// received stanzas in place.
func (e *env) iq(s *session, format string, args ...any) *wire.Stanza {
	e.t.Helper()
	st := wire.MustParse(fmt.Sprintf(format, args...))
	e.send(s, format, args...)
	res := s.find(func(r *wire.Stanza) bool {
		return r.Name == "iq" && r.ID == st.ID && (r.Type == "result" || r.Type == "error")
	})
	if res == nil {
		e.t.Fatalf("no response to %s; got %s", st.Raw, dump(s.take()))
	}
	return res
}

// item returns owner's roster item for contact (zero value when absent).
func (e *env) item(owner, contact string) storage.RosterItem {
	e.t.Helper()
	it, err := e.store.RosterItem(e.ctx, owner, contact)
	if err != nil && err != storage.ErrNotFound {
		e.t.Fatal(err)
	}
	return it
}

// state renders a roster item's state like RFC 6121 Appendix A.
func (e *env) state(owner, contact string) string {
	e.t.Helper()
	it := e.item(owner, contact)
	if it.JID == "" {
		it.Subscription = "absent"
	}
	st := it.Subscription
	if it.Ask {
		st += "+out"
	}
	if it.Approved {
		st += "+approved"
	}
	ps, err := e.store.PendingIn(e.ctx, owner)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, p := range ps {
		if p.From == contact {
			st += "+in"
		}
	}
	return st
}

func (e *env) wantState(owner, contact, want string) {
	e.t.Helper()
	if got := e.state(owner, contact); got != want {
		e.t.Errorf("%s's item for %s: %s, want %s", owner, contact, got, want)
	}
}

func errCondition(st *wire.Stanza) string {
	if st.Type != "error" {
		return ""
	}
	if c := st.Child(wire.NSClient, "error").FirstElement(); c != nil {
		return c.Name.Local
	}
	return "?"
}

func wantErr(t *testing.T, st *wire.Stanza, cond string) {
	t.Helper()
	if got := errCondition(st); got != cond {
		t.Fatalf("got %q, want error %s: %s", got, cond, st.Raw)
	}
}
