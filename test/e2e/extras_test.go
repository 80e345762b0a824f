package e2e

import (
	"testing"
	"time"

	"github.com/parley-xmpp/parley/internal/testserver"
	"github.com/parley-xmpp/parley/server"
	"github.com/parley-xmpp/parley/wire"
)

// TestServerPingsIdleClients: a silent client is pinged (XEP-0199); one
// that answers stays, one that does not is disconnected.
func TestServerPingsIdleClients(t *testing.T) {
	t.Parallel()
	ts := testserver.Start(t, func(c *server.Config) {
		c.C2S.PingInterval = 300 * time.Millisecond
		c.C2S.PingTimeout = 300 * time.Millisecond
	})
	ts.AddUser("alice", "pw1")
	ts.AddUser("bob", "pw2")
	a := ts.Login("alice", "pw1", "")
	b := ts.Login("bob", "pw2", "")
	for i := 0; i < 2; i++ {
		p := a.Expect("server ping", func(s *wire.Stanza) bool {
			return s.Name == "iq" && s.Type == "get" && s.Child("urn:xmpp:ping", "ping") != nil
		})
		if p.From != "localhost" {
			t.Fatalf("ping from %s", p.From)
		}
		a.Send("<iq type='result' id='%s' to='localhost'/>", wire.EscapeAttr(p.ID))
	}
	// bob never answers.
	if se := b.StreamError(); se == nil || se.Condition != "connection-timeout" {
		t.Fatalf("silent client: %v", se)
	}
	res := a.IQ("p", "<iq type='get' id='p' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
	if res.Type != "result" {
		t.Fatalf("answering client was dropped: %s", res.Raw)
	}
}

// TestInBandRegistration over a real socket (XEP-0077).
func TestInBandRegistration(t *testing.T) {
	t.Parallel()
	ts := testserver.Start(t, func(c *server.Config) { c.Registration.Open = true })
	c := ts.Connect()
	f := c.Features()
	if f.Child("http://jabber.org/features/iq-register", "register") == nil {
		t.Fatalf("register feature not offered: %s", f.Raw)
	}
	c.Send("<iq type='set' id='r1'><query xmlns='jabber:iq:register'><username>newbie</username><password>s3cret!</password></query></iq>")
	if r := c.Next(); r.Type != "result" || r.ID != "r1" {
		t.Fatalf("register: %s", r.Raw)
	}
	c.Send("<iq type='set' id='r2'><query xmlns='jabber:iq:register'><username>newbie</username><password>other</password></query></iq>")
	if r := c.Next(); r.Type != "error" || r.Child(wire.NSClient, "error").Child(wire.NSStanzas, "conflict") == nil {
		t.Fatalf("duplicate: %s", r.Raw)
	}
	n := ts.Login("newbie", "s3cret!", "")
	if n.JID == "" {
		t.Fatal("cannot log in with the new account")
	}
	// Removing the account answers, then ends every session of it.
	other := ts.Login("newbie", "s3cret!", "other")
	if r := n.IQ("rm", "<iq type='set' id='rm'><query xmlns='jabber:iq:register'><remove/></query></iq>"); r.Type != "result" {
		t.Fatalf("remove: %s", r.Raw)
	}
	for _, c := range []*testserver.Client{n, other} {
		if se := c.StreamError(); se == nil || se.Condition != "not-authorized" {
			t.Fatalf("session after removal: %v", se)
		}
	}
	gone := ts.Connect()
	if err := gone.Auth(gone.Features(), "SCRAM-SHA-256", "newbie", "s3cret!"); err == nil {
		t.Fatal("removed account can still log in")
	}
	// Closed by default.
	ts2 := testserver.Start(t)
	c2 := ts2.Connect()
	c2.Features()
	c2.Send("<iq type='set' id='r3'><query xmlns='jabber:iq:register'><username>x</username><password>y</password></query></iq>")
	if r := c2.Next(); r.Type != "error" {
		t.Fatalf("closed registration accepted: %s", r.Raw)
	}
}

// TestBlocking over real sockets (XEP-0191).
func TestBlocking(t *testing.T) {
	t.Parallel()
	ts := testserver.Start(t)
	alice := ts.AddUser("alice", "pw1")
	ts.AddUser("spammer", "pw2")
	a := ts.Login("alice", "pw1", "")
	s := ts.Login("spammer", "pw2", "")
	a.Send("<presence/>")
	a.IQ("bl0", "<iq type='get' id='bl0'><blocklist xmlns='urn:xmpp:blocking'/></iq>")
	if r := a.IQ("b1", "<iq type='set' id='b1'><block xmlns='urn:xmpp:blocking'><item jid='spammer@localhost'/></block></iq>"); r.Type != "result" {
		t.Fatalf("block: %s", r.Raw)
	}
	s.Send("<message to='%s' type='chat'><body>buy now</body></message>", alice)
	a.ExpectNone("blocked message", 300*time.Millisecond, isMsg("buy now"))
	a.Send("<message to='spammer@localhost' id='out1' type='chat'><body>stop</body></message>")
	e := a.Expect("error sending to blocked", func(st *wire.Stanza) bool { return st.ID == "out1" })
	if e.Type != "error" || e.Child(wire.NSClient, "error").Child("urn:xmpp:blocking:errors", "blocked") == nil {
		t.Fatalf("outbound to blocked: %s", e.Raw)
	}
	s.ExpectNone("message through block", 200*time.Millisecond, isMsg("stop"))
	list := a.IQ("b2", "<iq type='get' id='b2'><blocklist xmlns='urn:xmpp:blocking'/></iq>")
	if it := list.Child("urn:xmpp:blocking", "blocklist").Child("urn:xmpp:blocking", "item"); it == nil || it.AttrValue("jid") != "spammer@localhost" {
		t.Fatalf("blocklist: %s", list.Raw)
	}
	a.IQ("b3", "<iq type='set' id='b3'><unblock xmlns='urn:xmpp:blocking'/></iq>")
	s.Send("<message to='%s' type='chat'><body>hello again</body></message>", alice)
	a.Expect("unblocked message", isMsg("hello again"))
}

// TestAuthenticationTimeout: a connection that does not finish logging in
// within auth.timeout is closed with connection-timeout.
func TestAuthenticationTimeout(t *testing.T) {
	t.Parallel()
	ts := testserver.Start(t, func(c *server.Config) { c.Auth.Timeout = 300 * time.Millisecond })
	c := ts.Connect()
	c.Features()
	if se := c.StreamError(); se == nil || se.Condition != "connection-timeout" {
		t.Fatalf("got %v, want connection-timeout", se)
	}
}
