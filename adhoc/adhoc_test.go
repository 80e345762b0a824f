package adhoc

import (
	"context"
	"fmt"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/parley-xmpp/parley/internal/modtest"
	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/wire"
	"github.com/parley-xmpp/parley/xep"
)

// echo registers a command with a form that answers its field back.
type echo struct{}

func (echo) Name() string { return "echo" }
func (echo) Register(r *module.Registry) error {
	r.Command(module.Command{Node: "echo", Name: "Echo",
		Allowed: func(_ context.Context, j jid.JID) bool { return j.Localpart() != "mallory" },
		Form: func(context.Context, jid.JID) (*wire.Element, error) {
			return xep.Form("form", "", "Echo").Add(xep.FormField("text", "text-single", "")), nil
		},
		Run: func(_ context.Context, _ jid.JID, v module.FormValues) (*module.CommandResult, error) {
			if v.Get("text") == "fail" {
				return nil, module.Errorf(wire.ErrNotAcceptable, "no")
			}
			return &module.CommandResult{Note: "you said " + v.Get("text")}, nil
		}})
	return nil
}

func start(t *testing.T, e *modtest.Env, s *modtest.Session, id string) string {
	t.Helper()
	r := e.IQ(s, "<iq type='set' id='"+id+"' to='"+modtest.Domain+"'><command xmlns='"+xep.NSCommands+"' node='echo' action='execute'/></iq>")
	c := r.Child(xep.NSCommands, "command")
	if r.Type != "result" || c.AttrValue("status") != "executing" || c.AttrValue("sessionid") == "" {
		t.Fatalf("execute: %s", r.Raw)
	}
	return c.AttrValue("sessionid")
}

func complete(e *modtest.Env, s *modtest.Session, sid, text string) *wire.Stanza {
	return e.IQ(s, "<iq type='set' id='c' to='"+modtest.Domain+"'><command xmlns='"+xep.NSCommands+"' node='echo' sessionid='"+
		sid+"' action='complete'><x xmlns='jabber:x:data' type='submit'><field var='text'><value>"+text+"</value></field></x></command></iq>")
}

func appCond(st *wire.Stanza) string {
	if el := st.Child(wire.NSClient, "error"); el != nil {
		for _, c := range el.Elements() {
			if c.Name.Space == xep.NSCommands {
				return c.Name.Local
			}
		}
	}
	return ""
}

func TestSessions(t *testing.T) {
	e := modtest.New(t)
	m := New(nil)
	e.Register(m, echo{})
	alice := e.Login("alice@" + modtest.Domain + "/a")
	other := e.Login("alice@" + modtest.Domain + "/b")
	mallory := e.Login("mallory@" + modtest.Domain + "/m")

	sid := start(t, e, alice, "s1")
	if r := complete(e, other, sid, "hi"); modtest.ErrCondition(r) != "bad-request" || appCond(r) != "bad-sessionid" {
		t.Fatalf("another resource used the session: %s", r.Raw)
	}
	r := complete(e, alice, sid, "hi")
	if c := r.Child(xep.NSCommands, "command"); c.AttrValue("status") != "completed" || c.ChildText(xep.NSCommands, "note") != "you said hi" {
		t.Fatalf("complete: %s", r.Raw)
	}
	if r := complete(e, alice, sid, "again"); appCond(r) != "bad-sessionid" {
		t.Fatalf("a completed session was reused: %s", r.Raw)
	}
	if r := complete(e, alice, start(t, e, alice, "s2"), "fail"); modtest.ErrCondition(r) != "not-acceptable" {
		t.Fatalf("command error: %s", r.Raw)
	}
	// Not allowed: forbidden at start.
	r = e.IQ(mallory, "<iq type='set' id='m' to='"+modtest.Domain+"'><command xmlns='"+xep.NSCommands+"' node='echo'/></iq>")
	if modtest.ErrCondition(r) != "forbidden" {
		t.Fatalf("mallory: %s", r.Raw)
	}
	// Bad requests.
	for xml, want := range map[string]string{
		"<iq type='get' id='g' to='" + modtest.Domain + "'><command xmlns='" + xep.NSCommands + "' node='echo'/></iq>":                "bad-request",
		"<iq type='set' id='n' to='" + modtest.Domain + "'><command xmlns='" + xep.NSCommands + "' node='nope'/></iq>":                "item-not-found",
		"<iq type='set' id='p' to='" + modtest.Domain + "'><command xmlns='" + xep.NSCommands + "' node='echo' action='prev'/></iq>":  "bad-request",
		"<iq type='set' id='x' to='" + modtest.Domain + "'><command xmlns='" + xep.NSCommands + "' node='echo' sessionid='zz'/></iq>": "bad-request",
	} {
		if r := e.IQ(alice, xml); modtest.ErrCondition(r) != want {
			t.Errorf("%s: %s", xml, r.Raw)
		}
	}
	// A session without a form submitted.
	sid = start(t, e, alice, "s3")
	r = e.IQ(alice, "<iq type='set' id='nf' to='"+modtest.Domain+"'><command xmlns='"+xep.NSCommands+"' node='echo' sessionid='"+sid+"' action='complete'/></iq>")
	if appCond(r) != "bad-payload" {
		t.Fatalf("no form: %s", r.Raw)
	}

	// Expiry.
	now := time.Now()
	m.now = func() time.Time { return now }
	sid = start(t, e, alice, "s4")
	m.now = func() time.Time { return now.Add(SessionTTL + time.Second) }
	if r := complete(e, alice, sid, "late"); modtest.ErrCondition(r) != "not-allowed" || appCond(r) != "session-expired" {
		t.Fatalf("expired session: %s", r.Raw)
	}
	m.now = time.Now

	// Bounded per user: cancel frees a slot.
	var sids []string
	for i := range MaxSessionsPerUser + 1 {
		r := e.IQ(alice, fmt.Sprintf("<iq type='set' id='b%d' to='%s'><command xmlns='%s' node='echo'/></iq>", i, modtest.Domain, xep.NSCommands))
		if i < MaxSessionsPerUser {
			sids = append(sids, r.Child(xep.NSCommands, "command").AttrValue("sessionid"))
			continue
		}
		if modtest.ErrCondition(r) != "resource-constraint" {
			t.Fatalf("session %d beyond the bound: %s", i, r.Raw)
		}
	}
	r = e.IQ(alice, "<iq type='set' id='cx' to='"+modtest.Domain+"'><command xmlns='"+xep.NSCommands+"' node='echo' sessionid='"+sids[0]+"' action='cancel'/></iq>")
	if r.Child(xep.NSCommands, "command").AttrValue("status") != "canceled" {
		t.Fatalf("cancel: %s", r.Raw)
	}
	start(t, e, alice, "again")
}
