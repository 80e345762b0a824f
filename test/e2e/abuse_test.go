package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/abuse"
	"github.com/parley-xmpp/parley/internal/testserver"
	"github.com/parley-xmpp/parley/server"
	"github.com/parley-xmpp/parley/storage"
	"github.com/parley-xmpp/parley/wire"
)

// TestSuspendAccount: a suspended account's sessions end, a login with the
// right password is refused with account-disabled and the reason (a wrong
// one still gets not-authorized: nothing tells an outsider), its data
// stays, and after unsuspending it logs in and gets what came meanwhile.
func TestSuspendAccount(t *testing.T) {
	t.Parallel()
	ts := testserver.Start(t)
	alice := ts.AddUser("alice", "alice-pw")
	mallory := ts.AddUser("mallory", "mallory-pw")
	a := ts.Login("alice", "alice-pw", "phone")
	m := ts.Login("mallory", "mallory-pw", "bot")
	a.Send("<presence/>")
	m.Send("<presence/>")
	ctx := context.Background()

	err := abuse.Suspend(ctx, ts.Store(), ts.Router(), storage.Suspension{Account: mallory, Reason: "spam", By: "admin@localhost"})
	if err != nil {
		t.Fatal(err)
	}
	if se := m.StreamError(); se == nil || se.Condition != "not-authorized" || !strings.Contains(se.Text, "suspended: spam") {
		t.Fatalf("suspended session ended with %+v", se)
	}
	c := ts.Connect()
	f := c.Features()
	if err := c.Auth(f, "SCRAM-SHA-256", "mallory", "mallory-pw"); err == nil ||
		!strings.Contains(err.Error(), "<account-disabled/>") || !strings.Contains(err.Error(), "suspended: spam") {
		t.Fatalf("login of a suspended account with its password: %v, want account-disabled with the reason", err)
	}
	c = ts.Connect()
	if err := c.Auth(c.Features(), "SCRAM-SHA-256", "mallory", "guess"); err == nil || !strings.Contains(err.Error(), "<not-authorized/>") {
		t.Fatalf("wrong password on a suspended account: %v, want not-authorized", err)
	}
	// A second account is not affected, and can still write to it: the
	// message waits offline.
	a.Send("<message to='%s' type='chat' id='w1'><body>while away</body></message>", mallory)
	a.IQ("p1", "<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
	a.ExpectNone("an error for the message to the suspended account", 300*time.Millisecond, func(s *wire.Stanza) bool { return s.ID == "w1" })
	if err := abuse.Unsuspend(ctx, ts.Store(), mallory); err != nil {
		t.Fatal(err)
	}
	if err := abuse.Unsuspend(ctx, ts.Store(), mallory); err != abuse.ErrNotSuspended {
		t.Fatalf("second Unsuspend: %v", err)
	}
	m = ts.Login("mallory", "mallory-pw", "bot")
	m.Send("<presence/>")
	m.Expect("offline message", isMsg("while away"))
	_ = alice
}

// TestSuspensionFromAnotherProcess: a suspension written to the store by
// someone else (parley user suspend, another node) ends live sessions
// within abuse.suspension_check.
func TestSuspensionFromAnotherProcess(t *testing.T) {
	t.Parallel()
	ts := testserver.Start(t, func(c *server.Config) { c.Abuse.SuspensionCheck = time.Second })
	bob := ts.AddUser("bob", "bob-pw")
	b := ts.Login("bob", "bob-pw", "r")
	err := ts.Store().SuspendAccount(context.Background(), storage.Suspension{Account: bob, Since: time.Now(), By: "cli"})
	if err != nil {
		t.Fatal(err)
	}
	if se := b.StreamError(); se == nil || se.Condition != "not-authorized" {
		t.Fatalf("session of an account suspended elsewhere ended with %+v", se)
	}
}

// TestBlockStrangers: a user who blocks strangers gets messages from
// contacts and from those they wrote to; a stranger gets
// service-unavailable, and the message reaches neither the user nor the
// archive. The setting is per user (ad-hoc command) over a server default.
func TestBlockStrangers(t *testing.T) {
	t.Parallel()
	ts := testserver.Start(t)
	alice := ts.AddUser("alice", "alice-pw")
	bob := ts.AddUser("bob", "bob-pw")
	carol := ts.AddUser("carol", "carol-pw")
	mallory := ts.AddUser("mallory", "mallory-pw")
	a := ts.Login("alice", "alice-pw", "phone")
	b := ts.Login("bob", "bob-pw", "r")
	c := ts.Login("carol", "carol-pw", "r")
	m := ts.Login("mallory", "mallory-pw", "r")
	for _, cl := range []*testserver.Client{a, b, c, m} {
		cl.Send("<presence/>")
	}
	subscribe(t, a, b, alice, bob)

	// Off by default: mallory's first message arrives.
	m.Send("<message to='%s' type='chat' id='s0'><body>hello stranger</body></message>", alice)
	a.Expect("message while the filter is off", isMsg("hello stranger"))

	r := command(t, a, "urn:parley:commands:block-strangers", map[string][]string{"block": {"1"}})
	completed(t, r)
	m.Send("<message to='%s' type='chat' id='s1'><body>buy now</body></message>", alice)
	e := m.Expect("refusal", func(s *wire.Stanza) bool { return s.ID == "s1" && s.Type == "error" })
	assertStanzaError(t, e, "service-unavailable")
	m.Send("<iq type='get' id='s2' to='%s'><query xmlns='jabber:iq:version'/></iq>", a.JID)
	e = m.Expect("refused iq", func(s *wire.Stanza) bool { return s.ID == "s2" })
	assertStanzaError(t, e, "service-unavailable")
	// A contact gets through, so does someone alice wrote to first.
	b.Send("<message to='%s' type='chat'><body>from a contact</body></message>", alice)
	a.Expect("contact's message", isMsg("from a contact"))
	a.Send("<message to='%s' type='chat'><body>hi carol</body></message>", carol)
	c.Expect("alice's message", isMsg("hi carol"))
	c.Send("<message to='%s' type='chat'><body>hi alice</body></message>", alice)
	a.Expect("reply of someone alice wrote to", isMsg("hi alice"))
	// Strangers may still ask to be added.
	m.Send("<presence to='%s' type='subscribe'/>", alice)
	a.Expect("subscription request", testserver.PresenceFrom(mallory, "subscribe"))
	a.ExpectNone("the stranger's message", 200*time.Millisecond, isMsg("buy now"))
	page, err := ts.Store().QueryArchive(context.Background(), alice, storage.ArchiveQuery{With: mallory, Max: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Messages) != 1 {
		t.Fatalf("alice's archive holds %d messages from mallory, want only the one before the filter", len(page.Messages))
	}
	// The setting is alice's alone: bob still gets mallory's messages.
	m.Send("<message to='%s' type='chat'><body>hello bob</body></message>", bob)
	b.Expect("message to a user without the filter", isMsg("hello bob"))
}

// TestBlockStrangersServerDefault: abuse.block_strangers turns it on for
// everyone; a user turns it off for themselves.
func TestBlockStrangersServerDefault(t *testing.T) {
	t.Parallel()
	ts := testserver.Start(t, func(c *server.Config) { c.Abuse.BlockStrangers = true })
	alice := ts.AddUser("alice", "alice-pw")
	ts.AddUser("mallory", "mallory-pw")
	a := ts.Login("alice", "alice-pw", "phone")
	m := ts.Login("mallory", "mallory-pw", "r")
	a.Send("<presence/>")
	m.Send("<message to='%s' type='chat' id='d1'><body>spam</body></message>", alice)
	assertStanzaError(t, m.Expect("refusal", func(s *wire.Stanza) bool { return s.ID == "d1" }), "service-unavailable")
	r := command(t, a, "urn:parley:commands:block-strangers", map[string][]string{"block": {"0"}})
	completed(t, r)
	m.Send("<message to='%s' type='chat' id='d2'><body>welcome now</body></message>", alice)
	a.Expect("message after opting out", isMsg("welcome now"))
}

// TestSpamReport: a XEP-0377 report with a block request is stored with
// the cited stanza-ids, counted, sent to abuse.report_to with the reported
// message from the reporter's archive, and the block happens as usual.
func TestSpamReport(t *testing.T) {
	t.Parallel()
	ts := testserver.Start(t, func(c *server.Config) { c.Abuse.ReportTo = []string{"desk@localhost"} })
	alice := ts.AddUser("alice", "alice-pw")
	spammer := ts.AddUser("spammer", "spammer-pw")
	ts.AddUser("desk", "desk-pw")
	a := ts.Login("alice", "alice-pw", "phone")
	s := ts.Login("spammer", "spammer-pw", "r")
	d := ts.Login("desk", "desk-pw", "r")
	a.Send("<presence/>")
	d.Send("<presence/>")

	r := a.IQ("di", "<iq type='get' id='di' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
	if !strings.Contains(string(r.Raw), "urn:xmpp:reporting:1") {
		t.Fatalf("server disco#info lacks urn:xmpp:reporting:1: %s", r.Raw)
	}
	s.Send("<message to='%s' type='chat'><body>cheap pills</body></message>", alice)
	got := a.Expect("spam", isMsg("cheap pills"))
	sid := got.Child("urn:xmpp:sid:0", "stanza-id").AttrValue("id")
	if sid == "" {
		t.Fatalf("no stanza-id: %s", got.Raw)
	}
	a.Send("<iq type='set' id='b1'><block xmlns='urn:xmpp:blocking'><item jid='%s'>"+
		"<report xmlns='urn:xmpp:reporting:1' reason='urn:xmpp:reporting:spam'>"+
		"<stanza-id xmlns='urn:xmpp:sid:0' by='%s' id='%s'/><text xml:lang='en'>pills &amp; more</text>"+
		"</report></item></block></iq>", spammer, alice, sid)
	if res := a.Expect("block result", func(st *wire.Stanza) bool { return st.ID == "b1" }); res.Type != "result" {
		t.Fatalf("block with report: %s", res.Raw)
	}
	fwd := d.Expect("forwarded report", func(st *wire.Stanza) bool {
		return st.Name == "message" && st.Child("urn:xmpp:reporting:1", "report") != nil
	})
	if body := fwd.Child(wire.NSClient, "body").Text(); !strings.Contains(body, alice+" reported "+spammer) || !strings.Contains(body, "pills & more") {
		t.Fatalf("forwarded report body: %q", body)
	}
	ev := fwd.Child("urn:xmpp:forward:0", "forwarded")
	if ev == nil || !strings.Contains(string(ev.Bytes()), "cheap pills") {
		t.Fatalf("forwarded report lacks the reported message: %s", fwd.Raw)
	}
	reports, err := ts.Store().SpamReports(context.Background(), spammer, 0)
	if err != nil || len(reports) != 1 || reports[0].Reporter != alice || reports[0].Reason != storage.ReportSpam ||
		len(reports[0].StanzaIDs) != 1 || reports[0].StanzaIDs[0] != sid || reports[0].Text != "pills & more" {
		t.Fatalf("stored reports: %+v, %v", reports, err)
	}
	// The block itself: the spammer's next message is refused.
	s.Send("<message to='%s' type='chat' id='x2'><body>more pills</body></message>", alice)
	s.Expect("refusal after the block", func(st *wire.Stanza) bool { return st.ID == "x2" && st.Type == "error" })
	// A block without a report stores nothing.
	a.IQ("b2", "<iq type='set' id='b2'><block xmlns='urn:xmpp:blocking'><item jid='other@example.net'/></block></iq>")
	if all, _ := ts.Store().SpamReports(context.Background(), "", 0); len(all) != 1 {
		t.Fatalf("%d reports after a plain block", len(all))
	}
}
