package mam

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/parley-xmpp/parley/internal/modtest"
	"github.com/parley-xmpp/parley/storage"
)

// countingPrefs counts preference reads.
type countingPrefs struct {
	storage.Archive
	reads *atomic.Int32
}

func (c countingPrefs) ArchivePrefs(ctx context.Context, owner string) (storage.ArchivePrefs, error) {
	c.reads.Add(1)
	return c.Archive.ArchivePrefs(ctx, owner)
}

// Preferences are read once per account, not per message; set with an IQ
// they apply to the next message; set elsewhere (another node) they apply
// once the cached copy is older than prefsTTL; a deleted and re-created
// account starts from the defaults again.
func TestPrefsCached(t *testing.T) {
	me := modtest.New(t)
	var reads atomic.Int32
	m := New(Config{}, countingPrefs{me.Store, &reads}, me.Store)
	me.Register(m)
	e := &env{Env: me, mod: m}
	now := time.Now()
	m.now = func() time.Time { return now }
	alice := e.login("alice@example.org/phone")
	e.login("bob@example.org/desk")
	for i := range 5 {
		e.Send(alice, "<message to='bob@example.org' type='chat' id='m"+string(rune('0'+i))+"'><body>hi</body></message>")
	}
	if n := reads.Load(); n != 2 {
		t.Fatalf("%d preference reads for 5 messages between two accounts, want 2", n)
	}
	if n := len(e.archive("bob@example.org")); n != 5 {
		t.Fatalf("bob's archive has %d messages", n)
	}

	// Set with an IQ: applies to the next message.
	e.IQ(alice, "<iq type='set' id='p1'><prefs xmlns='urn:xmpp:mam:2' default='never'/></iq>")
	e.Send(alice, "<message to='bob@example.org' type='chat' id='n1'><body>not kept</body></message>")
	if n := len(e.archive("alice@example.org")); n != 5 {
		t.Fatalf("alice's archive has %d messages after default=never, want 5", n)
	}

	// Set in the store directly, as another node would: applies after prefsTTL.
	if err := me.Store.SetArchivePrefs(e.Ctx, "bob@example.org", storage.ArchivePrefs{Default: storage.ArchiveNever}); err != nil {
		t.Fatal(err)
	}
	e.Send(alice, "<message to='bob@example.org' type='chat' id='n2'><body>cached always</body></message>")
	if n := len(e.archive("bob@example.org")); n != 7 {
		t.Fatalf("bob's archive has %d messages, want 7 (the cached preferences)", n)
	}
	now = now.Add(prefsTTL)
	e.Send(alice, "<message to='bob@example.org' type='chat' id='n3'><body>never now</body></message>")
	if n := len(e.archive("bob@example.org")); n != 7 {
		t.Fatalf("bob's archive has %d messages after the TTL, want 7", n)
	}

	// Account deletion forgets the cached preferences.
	if err := e.Registry.DeleteAccount(e.Ctx, jid.MustParse("alice@example.org")); err != nil {
		t.Fatal(err)
	}
	alice = e.login("alice@example.org/phone")
	if err := me.Store.SetArchivePrefs(e.Ctx, "bob@example.org", storage.ArchivePrefs{Default: storage.ArchiveAlways}); err != nil {
		t.Fatal(err)
	}
	now = now.Add(prefsTTL)
	e.Send(alice, "<message to='bob@example.org' type='chat' id='r1'><body>kept again</body></message>")
	if n := len(e.archive("alice@example.org")); n != 1 {
		t.Fatalf("re-created alice's archive has %d messages, want 1 (default always)", n)
	}
}
