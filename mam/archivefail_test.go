package mam

import (
	"context"
	"errors"
	"testing"

	"github.com/parley-xmpp/parley/internal/modtest"
	"github.com/parley-xmpp/parley/storage"
	"github.com/parley-xmpp/parley/wire"
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
