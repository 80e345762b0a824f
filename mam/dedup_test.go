package mam

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/internal/modtest"
	"github.com/parley-xmpp/parley/storage"
	"github.com/parley-xmpp/parley/wire"
	"github.com/parley-xmpp/parley/xep"
)

func TestDedupFilter(t *testing.T) {
	start := time.Now()
	d := newDedup(time.Minute, false, start)
	d.perFilter, d.maxFilters = 100, 3
	if _, maybe := d.check("k", start); !maybe {
		t.Fatal("right after start a miss must go to the database (earlier messages are unknown)")
	}
	now := start.Add(time.Minute)
	for i := range 250 {
		d.add("added"+strconv.Itoa(i), now)
	}
	for i := range 250 {
		if _, maybe := d.check("added"+strconv.Itoa(i), now); !maybe {
			t.Fatalf("an added key is certainly new")
		}
	}
	falses := 0
	for i := range 1000 {
		if _, maybe := d.check("other"+strconv.Itoa(i), now); maybe {
			falses++
		}
	}
	if falses > 100 {
		t.Errorf("%d of 1000 new keys sent to the database (filters too full?)", falses)
	}
	if len(d.filters) != 3 {
		t.Errorf("%d filters for 250 entries of 100", len(d.filters))
	}
	// A fourth filter drops the first: its entries' window makes misses
	// unsure until it has passed.
	later := now.Add(10 * time.Second)
	for i := range 60 {
		d.add("more"+strconv.Itoa(i), later)
	}
	if _, maybe := d.check("never-added", later); !maybe {
		t.Error("a miss right after a filter with live entries was dropped is certain")
	}
	if _, maybe := d.check("never-added", now.Add(time.Minute+time.Second)); maybe && len(d.filters) == 3 {
		// Possible only as a false match of a still-live filter.
		t.Log("false match after the drop window")
	}
	// Filters whose entries left the window are dropped.
	d.add("late", later.Add(5*time.Minute))
	if len(d.filters) != 1 {
		t.Errorf("%d filters after everything aged out, want 1", len(d.filters))
	}
	// In flight: known exactly, with the write to wait for.
	d.starting("q")
	if w, maybe := d.check("q", later); w.c != nil || !maybe {
		t.Error("a write being queued (id not known yet) must go to the database")
	}
	c := &doneWrite{done: make(chan struct{})}
	d.queued("q", "ID1", c)
	if w, _ := d.check("q", later); w.id != "ID1" || w.c != c {
		t.Errorf("in flight: %+v", w)
	}
	d.finished("q", true, later)
	if w, _ := d.check("q", later); w.c != nil {
		t.Error("a finished write is still in flight")
	}
	// Shared store: every miss goes to the database.
	sd := newDedup(time.Minute, true, start)
	if _, maybe := sd.check("x", start.Add(time.Hour)); !maybe {
		t.Error("shared store: a miss is never certain")
	}
}

// countingOrigin counts origin-id lookups in the database.
type countingOrigin struct {
	storage.Archive
	lookups *atomic.Int32
}

func (c countingOrigin) FindArchivedByOrigin(ctx context.Context, owner, originID, fromFull string, since time.Time) (storage.ArchivedMessage, error) {
	c.lookups.Add(1)
	return c.Archive.FindArchivedByOrigin(ctx, owner, originID, fromFull, since)
}

// New messages with origin-ids cost no database lookup once the process
// has run for the dedup window; a resend is still archived once and
// delivered with the first copy's stanza-id, whether the first copy is
// committed or still in flight.
func TestDedupWithoutLookups(t *testing.T) {
	me := modtest.New(t)
	var lookups atomic.Int32
	m := New(Config{}, countingOrigin{me.Store, &lookups}, me.Store)
	me.Register(m)
	e := &env{Env: me, mod: m}
	m.dedup.unsureUntil = time.Time{} // as if running for a while
	alice := e.login("alice@example.org/phone")
	bob := e.login("bob@example.org/desk")
	send := func(id, origin string) {
		e.Send(alice, fmt.Sprintf("<message to='bob@example.org' type='chat' id='%s'><body>hi</body><origin-id xmlns='urn:xmpp:sid:0' id='%s'/></message>", id, origin))
	}
	for i := range 20 {
		send("m"+strconv.Itoa(i), "o"+strconv.Itoa(i))
	}
	if n := lookups.Load(); n > 2 {
		t.Fatalf("%d origin-id lookups for 40 new rows, want (almost) none", n)
	}
	first := bob.Expect(t, "first copy", func(s *wire.Stanza) bool { return s.ID == "m3" })
	send("resend", "o3")
	again := bob.Expect(t, "resend", func(s *wire.Stanza) bool { return s.ID == "resend" })
	if a, b := first.Child(xep.NSSID, "stanza-id").AttrValue("id"), again.Child(xep.NSSID, "stanza-id").AttrValue("id"); a != b {
		t.Errorf("resend delivered with stanza-id %s, first copy %s", b, a)
	}
	if n := len(e.archive("bob@example.org")); n != 20 {
		t.Errorf("bob's archive has %d messages, want 20", n)
	}
	if n := len(e.archive("alice@example.org")); n != 20 {
		t.Errorf("alice's archive has %d messages, want 20", n)
	}

	// In flight: the resend reuses the queued row and waits for it.
	gate := make(chan struct{})
	me2 := modtest.New(t)
	m2 := New(Config{}, gatedSubmitter{me2.Store, gate}, me2.Store)
	me2.Register(m2)
	e2 := &env{Env: me2, mod: m2}
	m2.dedup.unsureUntil = time.Time{}
	a2 := e2.login("alice@example.org/phone")
	// bob queues like c2s, so routing does not wait for the commit.
	e2.Account("bob@example.org")
	e2.Bind(newHeldSession(modtest.NewSession("bob@example.org/desk").Available(0)))
	msg := "<message to='bob@example.org' type='chat' id='%s'><body>hi</body><origin-id xmlns='urn:xmpp:sid:0' id='same'/></message>"
	h1 := routeHeld(t, e2, a2, fmt.Sprintf(msg, "x1"))
	h2 := routeHeld(t, e2, a2, fmt.Sprintf(msg, "x2"))
	if h2.Barrier().Passed() {
		t.Fatal("the resend does not wait for the queued first copy")
	}
	close(gate)
	if h1.Wait(context.Background()) != nil || h2.Wait(context.Background()) != nil {
		t.Fatal("writes failed")
	}
	if n := len(e2.archive("bob@example.org")); n != 1 {
		t.Errorf("bob's archive has %d messages after a resend in flight, want 1", n)
	}
}

// A start learns from the newest archived message how long misses stay
// uncertain: not at all on an empty store or one idle for the window, a
// window after an earlier run's last message otherwise; it never makes
// them less uncertain than they are.
func TestDedupSettle(t *testing.T) {
	start := time.Now()
	for name, c := range map[string]struct {
		newest time.Time
		maybe  bool
	}{
		"empty store":            {time.Time{}, false},
		"idle for the window":    {start.Add(-2 * time.Minute), false},
		"recent earlier run":     {start.Add(-30 * time.Second), true},
		"clock went backwards":   {start.Add(time.Hour), true},
		"newest at the start":    {start, true},
		"exactly one window ago": {start.Add(-time.Minute), false},
	} {
		d := newDedup(time.Minute, false, start)
		d.settle(c.newest)
		if _, maybe := d.check("k", start.Add(time.Second)); maybe != c.maybe {
			t.Errorf("%s: maybe = %v, want %v", name, maybe, c.maybe)
		}
	}
}

// Started on an empty store, the module asks the database about no new
// origin-id; started on a store with a message archived moments before
// (an earlier run), it asks, and a resend of that message is archived
// once.
func TestDedupAfterStart(t *testing.T) {
	t.Run("EmptyStore", func(t *testing.T) {
		me := modtest.New(t)
		var lookups atomic.Int32
		m := New(Config{}, countingOrigin{me.Store, &lookups}, me.Store)
		me.Register(m)
		if err := m.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		e := &env{Env: me, mod: m}
		alice := e.login("alice@example.org/phone")
		bob := e.login("bob@example.org/desk")
		for i := range 10 {
			e.Send(alice, fmt.Sprintf("<message to='bob@example.org' type='chat' id='m%d'><body>hi</body><origin-id xmlns='urn:xmpp:sid:0' id='o%d'/></message>", i, i))
		}
		bob.Expect(t, "last message", func(s *wire.Stanza) bool { return s.ID == "m9" })
		if n := lookups.Load(); n != 0 {
			t.Errorf("%d origin-id lookups after a start on an empty store, want none", n)
		}
	})
	t.Run("EarlierRun", func(t *testing.T) {
		me := modtest.New(t)
		me.Account("alice@example.org")
		me.Account("bob@example.org")
		earlier := storage.ArchivedMessage{With: "alice@example.org", WithResource: "phone", Timestamp: time.Now().Add(-10 * time.Second),
			OriginID: "before", FromFull: "alice@example.org/phone", Raw: []byte("<message type='chat' id='m0'><body>hi</body></message>")}
		if _, err := me.Store.AppendArchive(t.Context(), "bob@example.org", earlier); err != nil {
			t.Fatal(err)
		}
		var lookups atomic.Int32
		m := New(Config{}, countingOrigin{me.Store, &lookups}, me.Store)
		me.Register(m)
		if err := m.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		e := &env{Env: me, mod: m}
		alice := e.login("alice@example.org/phone")
		bob := e.login("bob@example.org/desk")
		e.Send(alice, "<message to='bob@example.org' type='chat' id='m0'><body>hi</body><origin-id xmlns='urn:xmpp:sid:0' id='before'/></message>")
		bob.Expect(t, "resend", func(s *wire.Stanza) bool { return s.ID == "m0" })
		if lookups.Load() == 0 {
			t.Error("no origin-id lookup after a start on a store with a message of a moment ago")
		}
		if n := len(e.archive("bob@example.org")); n != 1 {
			t.Errorf("bob's archive has %d messages after the resend, want 1", n)
		}
	})
}
