package im

import (
	"fmt"
	"testing"

	"github.com/parley-xmpp/parley/internal/modtest"
	"github.com/parley-xmpp/parley/storage"
	"github.com/parley-xmpp/parley/wire"
	"github.com/parley-xmpp/parley/xep"
)

const domain = modtest.Domain

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
	*modtest.Env
	mod *Module
}

// setup wires the module into a real router over a real SQLite store.
func setup(t *testing.T, cfg Config) *env {
	t.Helper()
	me := modtest.New(t)
	m := New(cfg, me.Store, me.Store, me.Store)
	me.Register(m)
	return &env{Env: me, mod: m}
}

// online logs in, fetches the roster (becoming interested) and sends
// initial presence; it then forgets what the session received.
func (e *env) online(full string) *modtest.Session {
	e.T.Helper()
	s := e.Login(full)
	e.iq(s, "<iq type='get' id='r0'><query xmlns='jabber:iq:roster'/></iq>")
	e.send(s, "<presence/>")
	s.Take()
	return s
}

// send routes a stanza from s, stamping 'from' as c2s does; format and
// args are as for fmt.Sprintf.
func (e *env) send(s *modtest.Session, format string, args ...any) {
	e.T.Helper()
	e.Send(s, fmt.Sprintf(format, args...))
}

// iq sends an IQ request from s and returns the response, leaving other
// received stanzas in place; format and args are as for fmt.Sprintf.
func (e *env) iq(s *modtest.Session, format string, args ...any) *wire.Stanza {
	e.T.Helper()
	return e.IQFind(s, fmt.Sprintf(format, args...))
}

// item returns owner's roster item for contact (zero value when absent).
func (e *env) item(owner, contact string) storage.RosterItem {
	e.T.Helper()
	it, err := e.Store.RosterItem(e.Ctx, owner, contact)
	if err != nil && err != storage.ErrNotFound {
		e.T.Fatal(err)
	}
	return it
}

// state renders a roster item's state like RFC 6121 Appendix A.
func (e *env) state(owner, contact string) string {
	e.T.Helper()
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
	ps, err := e.Store.PendingIn(e.Ctx, owner)
	if err != nil {
		e.T.Fatal(err)
	}
	for _, p := range ps {
		if p.From == contact {
			st += "+in"
		}
	}
	return st
}

func (e *env) wantState(owner, contact, want string) {
	e.T.Helper()
	if got := e.state(owner, contact); got != want {
		e.T.Errorf("%s's item for %s: %s, want %s", owner, contact, got, want)
	}
}

func wantErr(t *testing.T, st *wire.Stanza, cond string) {
	t.Helper()
	if got := modtest.ErrCondition(st); got != cond {
		t.Fatalf("got %q, want error %s: %s", got, cond, st.Raw)
	}
}
