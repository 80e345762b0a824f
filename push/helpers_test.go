package push

import (
	"context"
	"sync"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/router"
	"github.com/parley-xmpp/parley/storage"
	"github.com/parley-xmpp/parley/storage/sqlite"
	"github.com/parley-xmpp/parley/wire"
)

const (
	domain  = "example.org"
	appJID  = "pushsvc@example.org/app"
	alice   = "alice@example.org"
	waitFor = 3 * time.Second
)

// session is a module.Session standing in for a client connection: it
// records what it is sent. A session with answer set plays an App Server:
// it answers every iq set with answer(iq) (nil: an empty result).
type session struct {
	j        jid.JID
	e        *env
	answer   func(iq *wire.Stanza) *wire.Stanza
	offline  bool // no presence: not eligible for messages to the bare JID
	requests chan *wire.Stanza

	mu  sync.Mutex
	got []*wire.Stanza
}

func (s *session) JID() jid.JID { return s.j }
func (s *session) Send(st *wire.Stanza) error {
	if s.requests != nil && st.Name == "iq" && st.Type == "set" {
		s.requests <- st
		reply := wire.IQResult(st, nil)
		if s.answer != nil {
			if a := s.answer(st); a != nil {
				reply = a
			}
		}
		// Answer from the app's own goroutine, as a client would.
		go s.e.route(s, reply)
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, st)
	return nil
}
func (s *session) Presence() *wire.Stanza {
	if s.offline {
		return nil
	}
	return wire.MustParse("<presence/>")
}
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
	m := New(cfg, store)
	e := &env{t: t, router: r, reg: reg, store: store, mod: m}
	for _, mod := range []module.Module{m, tail{e}} {
		if err := mod.Register(reg); err != nil {
			t.Fatal(err)
		}
	}
	r.SetRegistry(reg)
	if err := m.Start(ctx); err != nil {
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

func (e *env) account(bare string) {
	e.t.Helper()
	ctx := context.Background()
	if ok, _ := e.store.AccountExists(ctx, bare); !ok {
		if err := e.store.CreateAccount(ctx, bare, nil); err != nil {
			e.t.Fatal(err)
		}
	}
}

// login creates the account if needed and binds a session.
func (e *env) login(full string) *session {
	e.t.Helper()
	j := jid.MustParse(full)
	e.account(j.Bare().String())
	s := &session{j: j, e: e}
	if _, err := e.router.Bind(s); err != nil {
		e.t.Fatal(err)
	}
	return s
}

// app binds an App Server session at appJID.
func (e *env) app(answer func(iq *wire.Stanza) *wire.Stanza) *session {
	e.t.Helper()
	s := e.login(appJID)
	s.answer = answer
	s.requests = make(chan *wire.Stanza, 100)
	return s
}

// route routes xml from s as c2s does (stamping 'from').
func (e *env) route(s *session, st *wire.Stanza) {
	st = st.WithAttr("from", s.j.String())
	_ = e.router.Route(context.Background(), st, module.Origin{Kind: module.FromClient, Session: s})
}

func (e *env) send(s *session, xml string) {
	e.t.Helper()
	e.route(s, wire.MustParse(xml))
}

// iq sends a request from s and returns its reply.
func (e *env) iq(s *session, xml string) *wire.Stanza {
	e.t.Helper()
	st := wire.MustParse(xml)
	e.send(s, xml)
	for _, g := range s.take() {
		if g.Name == "iq" && g.ID == st.ID {
			return g
		}
	}
	e.t.Fatalf("%s: no reply", xml)
	return nil
}

// remote routes xml as if it arrived over s2s.
func (e *env) remote(xml string) {
	e.t.Helper()
	if err := e.router.Route(context.Background(), wire.MustParse(xml), module.Origin{Kind: module.FromServer}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) pushes(owner string) []storage.PushRegistration {
	e.t.Helper()
	regs, err := e.store.Pushes(context.Background(), owner)
	if err != nil {
		e.t.Fatal(err)
	}
	return regs
}

// enable enables push for owner's session s at appJID with node.
func (e *env) enable(s *session, node, form string) {
	e.t.Helper()
	reply := e.iq(s, "<iq type='set' id='en'><enable xmlns='urn:xmpp:push:0' jid='"+appJID+"' node='"+node+"'>"+form+"</enable></iq>")
	if reply.Type != "result" {
		e.t.Fatalf("enable: %s", reply.Raw)
	}
}

// expectPush waits for the next notification the App Server receives.
func (a *session) expectPush(t *testing.T) *wire.Stanza {
	t.Helper()
	select {
	case st := <-a.requests:
		return st
	case <-time.After(waitFor):
		t.Fatal("the app server received no notification")
		return nil
	}
}

func (a *session) expectNoPush(t *testing.T, d time.Duration) {
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

func errCondition(st *wire.Stanza) string {
	if st.Type != "error" {
		return ""
	}
	if e := st.Child(wire.NSClient, "error").FirstElement(); e != nil {
		return e.Name.Local
	}
	return "?"
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
