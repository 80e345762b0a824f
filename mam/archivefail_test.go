package mam

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/internal/modtest"
	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/storage"
	"github.com/parley-xmpp/parley/wire"
	"github.com/parley-xmpp/parley/xep"
)

// failingArchive fails AppendArchive for one owner, as a database that is
// down (or a group-commit batch that failed) does.
type failingArchive struct {
	storage.Archive
	owner string
}

var errArchiveDown = errors.New("archive down")

func (f failingArchive) AppendArchive(ctx context.Context, owner string, msg storage.ArchivedMessage) (string, error) {
	if owner == f.owner {
		return "", errArchiveDown
	}
	return f.Archive.AppendArchive(ctx, owner, msg)
}

func setupFailing(t *testing.T, owner string) *env {
	t.Helper()
	me := modtest.New(t)
	m := New(Config{}, failingArchive{me.Store, owner}, me.Store)
	me.Register(m)
	return &env{Env: me, mod: m}
}

// isWaitResourceConstraint reports whether st is a wait-type
// resource-constraint error for the message with id.
func isWaitResourceConstraint(st *wire.Stanza, id string) bool {
	if st.Name != "message" || st.Type != "error" || st.ID != id {
		return false
	}
	e := st.Child(wire.NSClient, "error")
	return e != nil && e.AttrValue("type") == "wait" && e.Child(wire.NSStanzas, "resource-constraint") != nil
}

// A message whose archive write fails — the recipient's (inbound) or the
// sender's own (outbound, then before it is routed at all) — is not
// delivered, with or without a stanza-id: the sender gets a wait-type
// resource-constraint error. What needs no archive still flows.
func TestArchiveFailureRefuses(t *testing.T) {
	for _, failing := range []string{"bob@example.org", "alice@example.org"} {
		t.Run(failing, func(t *testing.T) {
			e := setupFailing(t, failing)
			alice := e.login("alice@example.org/phone")
			bob := e.login("bob@example.org/desk")
			e.Send(alice, "<message to='bob@example.org' type='chat' id='m1'><body>hi</body></message>")
			if got := bob.Take(); len(got) != 0 {
				t.Fatalf("bob got %d stanzas although an archive failed: %s", len(got), got[0].Raw)
			}
			if a := e.archive("bob@example.org"); len(a) != 0 {
				t.Fatalf("bob's archive has %d messages of a refused message", len(a))
			}
			got := alice.Take()
			if len(got) != 1 || !isWaitResourceConstraint(got[0], "m1") {
				t.Fatalf("alice got %d stanzas, want one wait resource-constraint error: %v", len(got), got)
			}
			e.Send(alice, "<message to='bob@example.org' type='chat' id='m2'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>")
			if got := bob.Take(); len(got) != 1 || got[0].ID != "m2" {
				t.Fatalf("chat state: bob got %v", got)
			}
		})
	}
}

// failingSubmitter queues writes like the stores do (storage.ArchiveSubmitter)
// and fails those for some owners when they "commit", after a delay.
type failingSubmitter struct {
	storage.Archive
	fail map[string]bool
}

type doneWrite struct {
	done chan struct{}
	err  error
}

func (d *doneWrite) Done() <-chan struct{} { return d.done }
func (d *doneWrite) Err() error            { return d.err }

func (f failingSubmitter) SubmitArchive(ctx context.Context, owner string, msg storage.ArchivedMessage, then func(error)) (string, storage.Completion, error) {
	d := &doneWrite{done: make(chan struct{})}
	var id string
	if f.fail[owner] {
		id = storage.NewArchiveID(time.Now())
		d.err = errArchiveDown
	} else {
		var err error
		if id, err = f.Archive.AppendArchive(ctx, owner, msg); err != nil {
			return "", nil, err
		}
	}
	go func() {
		time.Sleep(20 * time.Millisecond) // routing goes on meanwhile
		close(d.done)
		if then != nil {
			then(d.err)
		}
	}()
	return id, d, nil
}

// routeHeld routes xml from s as a pipelining c2s stream does (with a
// module.Hold) and returns the hold.
func routeHeld(t *testing.T, e *env, s *modtest.Session, xml string) *module.Hold {
	t.Helper()
	h := module.NewHold()
	st := wire.MustParse(xml).WithAttr("from", s.JID().String())
	e.Router.Route(e.Ctx, st, module.Origin{Kind: module.FromClient, Session: s, Hold: h})
	return h
}

// With a pipelining origin the archive rows are queued, not waited for:
// the message is delivered once both are committed, with the recipient's
// stanza-id; when a write fails it is not delivered and the sender is
// refused once, however many of its writes failed.
func TestArchiveQueuedWrites(t *testing.T) {
	for _, tc := range []struct {
		name string
		fail map[string]bool
	}{
		{"ok", nil},
		{"recipient fails", map[string]bool{"bob@example.org": true}},
		{"both fail", map[string]bool{"bob@example.org": true, "alice@example.org": true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			me := modtest.New(t)
			m := New(Config{}, failingSubmitter{me.Store, tc.fail}, me.Store)
			me.Register(m)
			e := &env{Env: me, mod: m}
			alice := e.login("alice@example.org/phone")
			bob := e.login("bob@example.org/desk")
			h := routeHeld(t, e, alice, "<message to='bob@example.org' type='chat' id='m1'><body>hi</body></message>")
			if h.Empty() {
				t.Fatal("no write was queued in the hold")
			}
			err := h.Wait(context.Background())
			if tc.fail == nil {
				if err != nil {
					t.Fatal(err)
				}
				got := bob.Expect(t, "the message", func(s *wire.Stanza) bool { return s.ID == "m1" })
				sid := got.Child(xep.NSSID, "stanza-id")
				bobs := e.archive("bob@example.org")
				if sid == nil || len(bobs) != 1 || sid.AttrValue("id") != bobs[0].ID || len(e.archive("alice@example.org")) != 1 {
					t.Fatalf("stanza-id %v, archives bob %d alice %d", sid, len(bobs), len(e.archive("alice@example.org")))
				}
				alice.ExpectNone(t, "an error", func(s *wire.Stanza) bool { return s.Type == "error" })
				return
			}
			if err == nil {
				t.Fatal("the hold reports no failure")
			}
			bob.ExpectNone(t, "a message whose archive write failed", func(s *wire.Stanza) bool { return s.ID == "m1" })
			var refusals int
			for deadline := time.Now().Add(5 * time.Second); refusals == 0 && time.Now().Before(deadline); {
				time.Sleep(5 * time.Millisecond)
				for _, st := range alice.Received() {
					if isWaitResourceConstraint(st, "m1") {
						refusals++
					}
				}
			}
			time.Sleep(50 * time.Millisecond) // a second refusal would come now
			refusals = 0
			for _, st := range alice.Take() {
				if isWaitResourceConstraint(st, "m1") {
					refusals++
				}
			}
			if refusals != 1 {
				t.Fatalf("alice got %d refusals, want 1", refusals)
			}
		})
	}
}

// heldSession is a session that queues like c2s (module.HeldSender):
// stanzas are written in order, each once its barrier is passed.
type heldSession struct {
	*modtest.Session
	q chan heldItem
}

type heldItem struct {
	st *wire.Stanza
	b  module.Barrier
}

func newHeldSession(s *modtest.Session) *heldSession {
	h := &heldSession{Session: s, q: make(chan heldItem, 16)}
	go func() {
		for it := range h.q {
			if it.b.Wait(context.Background()) == nil {
				_ = s.Send(it.st)
			}
		}
	}()
	return h
}

func (h *heldSession) SendAfter(st *wire.Stanza, b module.Barrier) error {
	h.q <- heldItem{st, b}
	return nil
}

// Routing a message from a pipelining origin returns before its archive
// rows are committed (the stream can read on), and the recipient gets it
// only after they are.
func TestArchiveQueuedWritesDoNotBlockRouting(t *testing.T) {
	me := modtest.New(t)
	gate := make(chan struct{})
	m := New(Config{}, gatedSubmitter{me.Store, gate}, me.Store)
	me.Register(m)
	e := &env{Env: me, mod: m}
	alice := e.login("alice@example.org/phone")
	raw := modtest.NewSession("bob@example.org/desk").Available(0)
	bob := newHeldSession(raw)
	e.Bind(bob)
	h := routeHeld(t, e, alice, "<message to='bob@example.org' type='chat' id='m1'><body>hi</body></message>")
	if h.Barrier().Passed() {
		t.Fatal("routing waited for the archive commit")
	}
	if got := raw.Received(); len(got) != 0 {
		t.Fatalf("bob got %s before the archive rows were committed", got[0].Raw)
	}
	close(gate)
	if err := h.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); raw.Find(func(s *wire.Stanza) bool { return s.ID == "m1" }) == nil; {
		if time.Now().After(deadline) {
			t.Fatal("bob never got the message after the commit")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// gatedSubmitter commits queued writes only once gate is closed.
type gatedSubmitter struct {
	storage.Archive
	gate chan struct{}
}

func (g gatedSubmitter) SubmitArchive(ctx context.Context, owner string, msg storage.ArchivedMessage, then func(error)) (string, storage.Completion, error) {
	d := &doneWrite{done: make(chan struct{})}
	id := storage.NewArchiveID(time.Now())
	go func() {
		<-g.gate
		_, d.err = g.Archive.AppendArchive(context.Background(), owner, msg)
		close(d.done)
		if then != nil {
			then(d.err)
		}
	}()
	return id, d, nil
}
