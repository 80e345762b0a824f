package push

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/parley-xmpp/parley/internal/modtest"
	"github.com/parley-xmpp/parley/storage"
	"github.com/parley-xmpp/parley/wire"
)

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}

func fastRetries(cfg Config) Config {
	cfg.Timeout = 200 * time.Millisecond
	cfg.Backoff = []time.Duration{30 * time.Millisecond, 60 * time.Millisecond}
	cfg.PollInterval = 10 * time.Millisecond
	return cfg
}

func waitError(iq *wire.Stanza) *wire.Stanza {
	return wire.MustParse("<iq type='error' id='" + iq.ID + "' to='" + iq.From + "'><error type='wait'><resource-constraint xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>")
}

func (e *env) pendingJobs() []storage.PushJob {
	e.T.Helper()
	js, err := e.Store.DuePushJobs(context.Background(), time.Now().Add(24*time.Hour), 100)
	if err != nil {
		e.T.Fatal(err)
	}
	return js
}

func TestDurableRetryThenDelivered(t *testing.T) {
	e := setup(t, fastRetries(Config{MaxAttempts: 5}))
	var n atomic.Int32
	app := e.app(func(iq *wire.Stanza) *wire.Stanza {
		if n.Add(1) <= 2 {
			return waitError(iq)
		}
		return nil
	})
	a := e.login(alice + "/phone")
	e.enable(a, "n1", "")
	e.offline(a)
	bob := e.login("bob@example.org/desk")
	e.Send(bob, "<message to='alice@example.org' type='chat'><body>x</body></message>")
	var first summary
	for i := range 3 {
		s := parseSummary(t, app.expectPush(t))
		if i == 0 {
			first = s
		} else if s != first {
			t.Fatalf("retry %d differs: %+v vs %+v", i, s, first)
		}
	}
	if first.count != "1" || first.sender != "bob@example.org/desk" {
		t.Fatalf("notification %+v", first)
	}
	eventually(t, "job deleted after delivery", func() bool { return len(e.pendingJobs()) == 0 })
	app.expectNoPush(t, 200*time.Millisecond)
	if got := len(e.pushes(alice)); got != 1 {
		t.Fatalf("%d registrations, want 1 (transient errors keep it)", got)
	}
}

func TestDurableDroppedAfterRetries(t *testing.T) {
	before := counterValue(droppedRetries)
	e := setup(t, fastRetries(Config{MaxAttempts: 3}))
	app := e.app(waitError)
	a := e.login(alice + "/phone")
	e.enable(a, "n1", "")
	e.offline(a)
	bob := e.login("bob@example.org/desk")
	e.Send(bob, "<message to='alice@example.org' type='chat'><body>x</body></message>")
	for range 3 {
		app.expectPush(t)
	}
	app.expectNoPush(t, 300*time.Millisecond)
	if js := e.pendingJobs(); len(js) != 0 {
		t.Fatalf("jobs left after giving up: %+v", js)
	}
	if got := counterValue(droppedRetries) - before; got != 1 {
		t.Fatalf(`parley_push_dropped_total{reason="retries"} grew by %v, want 1`, got)
	}
	if got := len(e.pushes(alice)); got != 1 {
		t.Fatalf("%d registrations, want 1", got)
	}
}

func TestDurablePermanentErrorDisables(t *testing.T) {
	e := setup(t, fastRetries(Config{MaxAttempts: 5}))
	app := e.app(func(iq *wire.Stanza) *wire.Stanza {
		return wire.MustParse("<iq type='error' id='" + iq.ID + "' to='" + iq.From + "'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>")
	})
	a := e.login(alice + "/phone")
	e.enable(a, "n1", "")
	e.offline(a)
	bob := e.login("bob@example.org/desk")
	e.Send(bob, "<message to='alice@example.org' type='chat'><body>x</body></message>")
	app.expectPush(t)
	eventually(t, "registration disabled", func() bool { return len(e.pushes(alice)) == 0 })
	eventually(t, "job deleted", func() bool { return len(e.pendingJobs()) == 0 })
	app.expectNoPush(t, 200*time.Millisecond)
}

// A job stored by an earlier run (or left when the server stopped) is sent
// by the next module started on the same store.
func TestDurableSurvivesRestart(t *testing.T) {
	me := modtest.New(t)
	cfg := fastRetries(Config{})
	reg := storage.PushRegistration{JID: appJID, Node: "n1", Created: time.Now().UTC().Truncate(time.Microsecond)}
	me.Account(alice)
	if err := me.Store.AddPush(me.Ctx, alice, reg); err != nil {
		t.Fatal(err)
	}
	// The first run: it stored the job, then stopped before it was sent.
	first := NewDurable(cfg, me.Store, me.Store)
	iq := first.notification(alice, reg, 3, msgInfo{sender: "bob@example.org/desk"})
	now := time.Now().UTC()
	if _, err := me.Store.EnqueuePushJob(me.Ctx, storage.PushJob{Owner: alice, JID: reg.JID, Node: reg.Node, RegCreated: reg.Created,
		Payload: iq.Raw, Due: now, Created: now}); err != nil {
		t.Fatal(err)
	}
	if err := first.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}

	m := New(cfg, me.Store)
	e := &env{Env: me, mod: m}
	me.Register(m, tail{e})
	app := e.app(nil)
	if err := m.Start(me.Ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Stop(context.Background()) })
	s := parseSummary(t, app.expectPush(t))
	if s.count != "3" || s.sender != "bob@example.org/desk" || s.node != "n1" {
		t.Fatalf("notification %+v", s)
	}
	eventually(t, "job deleted after delivery", func() bool { return len(e.pendingJobs()) == 0 })
	app.expectNoPush(t, 100*time.Millisecond)
}
