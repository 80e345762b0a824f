package push

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/internal/modtest"
	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/storage"
	"github.com/parley-xmpp/parley/wire"
)

const (
	appJID  = "pushsvc@example.org/app"
	alice   = "alice@example.org"
	waitFor = 3 * time.Second
)

// appServer is a bound session playing an App Server: it answers every iq
// set with answer(iq) (nil: an empty result) and hands the request to the
// test through requests; it records the other stanzas it is sent.
type appServer struct {
	*modtest.Session
	e        *env
	answer   func(iq *wire.Stanza) *wire.Stanza
	requests chan *wire.Stanza
}

func (s *appServer) Send(st *wire.Stanza) error {
	if st.Name == "iq" && st.Type == "set" {
		s.requests <- st
		reply := wire.IQResult(st, nil)
		if s.answer != nil {
			if a := s.answer(st); a != nil {
				reply = a
			}
		}
		// Answer from the app's own goroutine, as a client would.
		go func() { _ = s.e.RouteFrom(s, reply) }()
		return nil
	}
	return s.Session.Send(st)
}

type env struct {
	*modtest.Env
	mod *Module
	// reached counts undeliverable messages that got past push's hook.
	mu      sync.Mutex
	reached []*wire.Stanza
}

// tail is a module registered after push that records what reaches the
// end of the undeliverable chain (im's offline storage in the server).
type tail struct{ e *env }

func (tail) Name() string { return "tail" }
func (t tail) Register(r *module.Registry) error {
	r.Undeliverable(func(ctx context.Context, ev *module.Event) module.Verdict {
		t.e.mu.Lock()
		defer t.e.mu.Unlock()
		t.e.reached = append(t.e.reached, ev.Stanza)
		return module.Handled
	})
	return nil
}

// setup wires the module into a real router over a real SQLite store and
// starts it.
func setup(t *testing.T, cfg Config) *env {
	t.Helper()
	me := modtest.New(t)
	m := New(cfg, me.Store)
	e := &env{Env: me, mod: m}
	me.Register(m, tail{e})
	if err := m.Start(me.Ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := m.Stop(ctx); err != nil {
			t.Error(err)
		}
	})
	return e
}

// login creates the account if needed and binds an available session.
func (e *env) login(full string) *modtest.Session {
	e.T.Helper()
	return e.LoginAvailable(full, 0)
}

// app binds an App Server session at appJID.
func (e *env) app(answer func(iq *wire.Stanza) *wire.Stanza) *appServer {
	e.T.Helper()
	s := &appServer{Session: modtest.NewSession(appJID).Available(0), e: e, answer: answer, requests: make(chan *wire.Stanza, 100)}
	e.Account(s.JID().Bare().String())
	e.Bind(s)
	return s
}

// iq sends a request from s and returns its reply; what else s received
// is dropped.
func (e *env) iq(s *modtest.Session, xml string) *wire.Stanza {
	e.T.Helper()
	reply := e.IQFind(s, xml)
	s.Take()
	return reply
}

func (e *env) pushes(owner string) []storage.PushRegistration {
	e.T.Helper()
	regs, err := e.Store.Pushes(context.Background(), owner)
	if err != nil {
		e.T.Fatal(err)
	}
	return regs
}

// enable enables push for owner's session s at appJID with node.
func (e *env) enable(s *modtest.Session, node, form string) {
	e.T.Helper()
	reply := e.iq(s, "<iq type='set' id='en'><enable xmlns='urn:xmpp:push:0' jid='"+appJID+"' node='"+node+"'>"+form+"</enable></iq>")
	if reply.Type != "result" {
		e.T.Fatalf("enable: %s", reply.Raw)
	}
}

// expectPush waits for the next notification the App Server receives.
func (a *appServer) expectPush(t *testing.T) *wire.Stanza {
	t.Helper()
	select {
	case st := <-a.requests:
		return st
	case <-time.After(waitFor):
		t.Fatal("the app server received no notification")
		return nil
	}
}

func (a *appServer) expectNoPush(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case st := <-a.requests:
		t.Fatalf("unexpected notification: %s", st.Raw)
	case <-time.After(d):
	}
}

// summary is a parsed notification.
type summary struct {
	node, formType, count, sender, body string
	hasBody                             bool
	options                             *wire.Element
}

func parseSummary(t *testing.T, iq *wire.Stanza) summary {
	t.Helper()
	pub := iq.Child(NSPubSub, "pubsub").Child(NSPubSub, "publish")
	x := pub.Child(NSPubSub, "item").Child(NS, "notification").Child("jabber:x:data", "x")
	if iq.Type != "set" || x == nil {
		t.Fatalf("not a notification: %s", iq.Raw)
	}
	s := summary{node: pub.AttrValue("node"), options: iq.Child(NSPubSub, "pubsub").Child(NSPubSub, "publish-options")}
	for _, f := range x.ChildrenNamed("jabber:x:data", "field") {
		v := f.ChildText("jabber:x:data", "value")
		switch f.AttrValue("var") {
		case "FORM_TYPE":
			s.formType = v
		case "message-count":
			s.count = v
		case "last-message-sender":
			s.sender = v
		case "last-message-body":
			s.body, s.hasBody = v, true
		default:
			t.Fatalf("unexpected field %s in %s", f.AttrValue("var"), iq.Raw)
		}
	}
	return s
}

// eventually polls cond until it holds or fails the test.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: timed out", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
