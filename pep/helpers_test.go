package pep

import (
	"context"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/parley-xmpp/parley/internal/modtest"
	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/router"
	"github.com/parley-xmpp/parley/storage"
	"github.com/parley-xmpp/parley/storage/sqlite"
	"github.com/parley-xmpp/parley/wire"
	"github.com/parley-xmpp/parley/xep"
)

const domain = "example.org"

// session stands in for a c2s session (the module test kit's).
type session = modtest.Session

// none fails if a matching stanza arrives at s within d.
func none(t *testing.T, s *session, desc string, d time.Duration, pred func(*wire.Stanza) bool) {
	t.Helper()
	time.Sleep(d)
	s.ExpectNone(t, desc, pred)
}

// event matches a notification for node carrying item id (or any item
// when id is "").
func event(node, child, id string) func(*wire.Stanza) bool {
	return func(st *wire.Stanza) bool {
		if st.Name != "message" || st.Type != "headline" {
			return false
		}
		ev := st.Child(nsEvent, "event")
		if ev == nil {
			return false
		}
		switch child {
		case "delete", "purge":
			c := ev.Child(nsEvent, child)
			return c != nil && c.AttrValue("node") == node
		}
		its := ev.Child(nsEvent, "items")
		if its == nil || its.AttrValue("node") != node {
			return false
		}
		for _, it := range its.ChildrenNamed(nsEvent, child) {
			if id == "" || it.AttrValue("id") == id {
				return true
			}
		}
		return false
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

func setup(t *testing.T, cfg Config) *env {
	t.Helper()
	ctx := context.Background()
	store, err := sqlite.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	r := router.New(router.Config{Domains: []string{domain}})
	reg := module.NewRegistry([]string{domain}, r.Sender(), r)
	reg.SetAccounts(store)
	cfg.DiscoTimeout = 2 * time.Second
	m := New(cfg, store, store, store)
	if err := m.Register(reg); err != nil {
		t.Fatal(err)
	}
	r.SetRegistry(reg)
	t.Cleanup(func() { m.Stop(context.Background()) })
	return &env{t: t, ctx: ctx, router: r, reg: reg, store: store, mod: m}
}

func (e *env) login(full string) *session {
	e.t.Helper()
	j := jid.MustParse(full)
	if ok, _ := e.store.AccountExists(e.ctx, j.Bare().String()); !ok {
		if err := e.store.CreateAccount(e.ctx, j.Bare().String(), nil); err != nil {
			e.t.Fatal(err)
		}
	}
	s := modtest.NewSession(full)
	if _, err := e.router.Bind(s); err != nil {
		e.t.Fatal(err)
	}
	return s
}

func (e *env) send(s *session, format string, args ...any) {
	e.t.Helper()
	st := wire.MustParse(fmt.Sprintf(format, args...)).WithAttr("from", s.JID().String())
	e.router.Route(e.ctx, st, module.Origin{Kind: module.FromClient, Session: s})
}

// iq sends an IQ request from s and returns the response.
func (e *env) iq(s *session, format string, args ...any) *wire.Stanza {
	e.t.Helper()
	st := wire.MustParse(fmt.Sprintf(format, args...))
	e.send(s, format, args...)
	return s.Await(e.t, "response to "+st.ID, func(r *wire.Stanza) bool {
		return r.Name == "iq" && r.ID == st.ID && (r.Type == "result" || r.Type == "error")
	})
}

func (e *env) ok(s *session, format string, args ...any) *wire.Stanza {
	e.t.Helper()
	r := e.iq(s, format, args...)
	if r.Type != "result" {
		e.t.Fatalf("want a result, got %s", r.Raw)
	}
	return r
}

func (e *env) fail(s *session, cond, app string, format string, args ...any) *wire.Stanza {
	e.t.Helper()
	r := e.iq(s, format, args...)
	er := r.Child(wire.NSClient, "error")
	if r.Type != "error" || er.Child(wire.NSStanzas, cond) == nil || (app != "" && er.Child(nsErrors, app) == nil) {
		e.t.Fatalf("want error %s/%s, got %s", cond, app, r.Raw)
	}
	return r
}

// rosterItem sets owner's roster item for contact.
func (e *env) rosterItem(owner, contact, sub string, groups ...string) {
	e.t.Helper()
	if _, err := e.store.UpsertRosterItem(e.ctx, owner, storage.RosterItem{JID: contact, Subscription: sub, Groups: groups}); err != nil {
		e.t.Fatal(err)
	}
}

// caps returns a <c/> element and the disco#info features for a client
// interested in the given nodes.
func caps(notify ...string) (c string, info string) {
	q := wire.NewElement(xep.NSDiscoInfo, "query")
	q.Add(wire.NewElement(xep.NSDiscoInfo, "identity", "category", "client", "type", "phone", "name", "Test"))
	q.Add(wire.NewElement(xep.NSDiscoInfo, "feature", "var", xep.NSDiscoInfo))
	for _, n := range notify {
		q.Add(wire.NewElement(xep.NSDiscoInfo, "feature", "var", n+"+notify"))
	}
	s, _ := capsString(q)
	sum := sha1.Sum([]byte(s))
	ver := base64.StdEncoding.EncodeToString(sum[:])
	var inner strings.Builder
	for _, el := range q.Elements() {
		inner.Write(el.Bytes())
	}
	return fmt.Sprintf("<c xmlns='%s' hash='sha-1' node='https://test.example' ver='%s'/>", xep.NSCaps, ver),
		fmt.Sprintf("<query xmlns='%s' node='https://test.example#%s'>%s</query>", xep.NSDiscoInfo, ver, inner.String())
}

// answerCaps waits for the caps disco#info query to s and answers it.
func (e *env) answerCaps(s *session, info string) {
	e.t.Helper()
	_, rest, _ := strings.Cut(info, "test.example#")
	ver, _, _ := strings.Cut(rest, "'")
	e.mod.mu.Lock()
	_, known := e.mod.caps["sha-1 "+ver]
	e.mod.mu.Unlock()
	if known {
		return // cached: no query
	}
	q := s.Await(e.t, "caps query", func(st *wire.Stanza) bool {
		return st.Name == "iq" && st.Type == "get" && st.Child(xep.NSDiscoInfo, "query") != nil
	})
	e.send(s, "<iq type='result' id='%s' to='%s'>%s</iq>", q.ID, q.From, info)
}

// ownOnline sends s's initial presence with caps (as c2s and im would keep
// it) and answers the caps query.
func (e *env) ownOnline(s *session, notify ...string) {
	e.t.Helper()
	c, info := caps(notify...)
	p := "<presence>" + c + "</presence>"
	s.SetPresence(wire.MustParse(p).WithAttr("from", s.JID().String()))
	e.send(s, "%s", p)
	e.answerCaps(s, info)
}

// contactOnline makes contact's session s send available presence with
// caps to owner, as im's broadcast would route it, and answers the caps
// query. answer false leaves caps known from an earlier query.
func (e *env) contactOnline(s *session, owner string, answer bool, notify ...string) {
	e.t.Helper()
	c, info := caps(notify...)
	p := wire.MustParse("<presence>"+c+"</presence>").WithFromTo(s.JID().String(), owner)
	s.SetPresence(p)
	e.router.Route(e.ctx, p, module.Origin{Kind: module.FromLocal})
	if answer {
		e.answerCaps(s, info)
	}
}

func itemsOf(r *wire.Stanza) []string {
	var ids []string
	for _, it := range r.Child(NSPubSub, "pubsub").Child(NSPubSub, "items").ChildrenNamed(NSPubSub, "item") {
		ids = append(ids, it.AttrValue("id"))
	}
	return ids
}

func publishXML(id, node, itemID, payload, opts string) string {
	item := "<item>" + payload + "</item>"
	if itemID != "" {
		item = "<item id='" + itemID + "'>" + payload + "</item>"
	}
	po := ""
	if opts != "" {
		po = "<publish-options><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>" + nsPublishOptions + "</value></field>" + opts + "</x></publish-options>"
	}
	return "<iq type='set' id='" + id + "'><pubsub xmlns='" + NSPubSub + "'><publish node='" + node + "'>" + item + "</publish>" + po + "</pubsub></iq>"
}

func field(name, value string) string {
	return "<field var='" + name + "'><value>" + value + "</value></field>"
}
