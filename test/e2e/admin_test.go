package e2e

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/admin"
	"github.com/parley-xmpp/parley/internal/testserver"
	"github.com/parley-xmpp/parley/server"
	"github.com/parley-xmpp/parley/wire"
)

const (
	nsCommands = "http://jabber.org/protocol/commands"
	nsAdmin    = "http://jabber.org/protocol/admin"
)

var iqSeq atomic.Int64

// command runs an ad-hoc command on the server: execute, then (when the
// command answers with a form) submit fields. It returns the final reply.
func command(t *testing.T, c *testserver.Client, node string, fields map[string][]string) *wire.Stanza {
	t.Helper()
	id := fmt.Sprintf("cmd%d", iqSeq.Add(1))
	r := c.IQ(id, "<iq type='set' id='%s' to='localhost'><command xmlns='%s' node='%s' action='execute'/></iq>", id, nsCommands, node)
	if r.Type != "result" {
		return r
	}
	cmd := r.Child(nsCommands, "command")
	if cmd.AttrValue("status") != "executing" {
		return r
	}
	if cmd.Child(nsXData, "x") == nil || cmd.AttrValue("sessionid") == "" {
		t.Fatalf("%s: executing without form or session: %s", node, r.Raw)
	}
	return submit(t, c, node, cmd.AttrValue("sessionid"), fields)
}

// submit sends the form of session sid.
func submit(t *testing.T, c *testserver.Client, node, sid string, fields map[string][]string) *wire.Stanza {
	t.Helper()
	var b strings.Builder
	for k, vs := range fields {
		fmt.Fprintf(&b, "<field var='%s'>", wire.EscapeAttr(k))
		for _, v := range vs {
			fmt.Fprintf(&b, "<value>%s</value>", wire.EscapeText(v))
		}
		b.WriteString("</field>")
	}
	id := fmt.Sprintf("cmd%d", iqSeq.Add(1))
	return c.IQ(id, "<iq type='set' id='%s' to='localhost'><command xmlns='%s' node='%s' sessionid='%s' action='complete'>"+
		"<x xmlns='%s' type='submit'>%s</x></command></iq>", id, nsCommands, node, wire.EscapeAttr(sid), nsXData, b.String())
}

func completed(t *testing.T, r *wire.Stanza) *wire.Element {
	t.Helper()
	cmd := r.Child(nsCommands, "command")
	if r.Type != "result" || cmd == nil || cmd.AttrValue("status") != "completed" {
		t.Fatalf("command not completed: %s", r.Raw)
	}
	return cmd
}

func stanzaErr(t *testing.T, r *wire.Stanza, cond string) {
	t.Helper()
	if r.Type != "error" || r.Child(wire.NSClient, "error").Child(wire.NSStanzas, cond) == nil {
		t.Fatalf("want error %s, got %s", cond, r.Raw)
	}
}

func fieldValues(cmd *wire.Element, name string) []string {
	x := cmd.Child(nsXData, "x")
	if x == nil {
		return nil
	}
	for _, f := range x.ChildrenNamed(nsXData, "field") {
		if f.AttrValue("var") == name {
			var out []string
			for _, v := range f.ChildrenNamed(nsXData, "value") {
				out = append(out, v.Text())
			}
			return out
		}
	}
	return nil
}

func commandNodes(t *testing.T, c *testserver.Client) []string {
	t.Helper()
	id := fmt.Sprintf("items%d", iqSeq.Add(1))
	r := c.IQ(id, "<iq type='get' id='%s' to='localhost'><query xmlns='http://jabber.org/protocol/disco#items' node='%s'/></iq>", id, nsCommands)
	if r.Type != "result" {
		t.Fatalf("disco#items commands: %s", r.Raw)
	}
	var nodes []string
	for _, it := range r.Tree().FirstElement().Elements() {
		nodes = append(nodes, it.AttrValue("node"))
	}
	return nodes
}

// TestAdHocServiceAdministration: XEP-0050 commands with XEP-0133 service
// administration for the admins list, tried by a second, non-admin account
// too; and the commands every user has on their own account.
func TestAdHocServiceAdministration(t *testing.T) {
	t.Parallel()
	ts := testserver.Start(t, func(c *server.Config) { c.Admins = []string{"boss@localhost"} })
	ts.AddUser("boss", "pw-boss")
	ts.AddUser("bob", "pw-bob")
	boss := ts.Login("boss", "pw-boss", "desk")
	bob := ts.Login("bob", "pw-bob", "phone")

	adminNodes := commandNodes(t, boss)
	for _, n := range []string{nsAdmin + "#add-user", nsAdmin + "#delete-user", nsAdmin + "#announce", nsAdmin + "#set-welcome",
		"urn:xmpp:invite#create-account", "urn:parley:cmd:change-password"} {
		if !slices.Contains(adminNodes, n) {
			t.Errorf("admin does not see %s in %q", n, adminNodes)
		}
	}
	bobNodes := commandNodes(t, bob)
	if slices.ContainsFunc(bobNodes, func(n string) bool { return strings.HasPrefix(n, nsAdmin) || strings.HasPrefix(n, "urn:xmpp:invite") }) {
		t.Errorf("non-admin sees admin commands: %q", bobNodes)
	}
	if !slices.Contains(bobNodes, "urn:parley:cmd:sessions") {
		t.Errorf("user does not see own commands: %q", bobNodes)
	}

	// Every admin command is refused to bob, at start and with a form.
	for _, n := range adminNodes {
		if strings.HasPrefix(n, nsAdmin) || strings.HasPrefix(n, "urn:xmpp:invite") {
			stanzaErr(t, command(t, bob, n, nil), "forbidden")
		}
	}
	r := boss.IQ("s1", "<iq type='set' id='s1' to='localhost'><command xmlns='%s' node='%s#add-user' action='execute'/></iq>", nsCommands, nsAdmin)
	sid := r.Child(nsCommands, "command").AttrValue("sessionid")
	stanzaErr(t, submit(t, bob, nsAdmin+"#add-user", sid, map[string][]string{"accountjid": {"evil@localhost"}, "password": {"x"}, "password-verify": {"x"}}), "forbidden")
	// Another resource of the admin cannot take over the session either.
	boss2 := ts.Login("boss", "pw-boss", "laptop")
	if r := submit(t, boss2, nsAdmin+"#add-user", sid, map[string][]string{"accountjid": {"x@localhost"}}); r.Type != "error" ||
		r.Child(wire.NSClient, "error").Child(nsCommands, "bad-sessionid") == nil {
		t.Fatalf("session of another resource: %s", r.Raw)
	}
	// A remote-looking or unknown node.
	stanzaErr(t, command(t, boss, nsAdmin+"#no-such-thing", nil), "item-not-found")

	// Welcome message, then add a user: it is waiting for them.
	completed(t, command(t, boss, nsAdmin+"#set-welcome", map[string][]string{"welcome": {"Welcome to Parley!", "Have fun."}}))
	// The form shows the current message.
	r = boss.IQ("w1", "<iq type='set' id='w1' to='localhost'><command xmlns='%s' node='%s#set-welcome'/></iq>", nsCommands, nsAdmin)
	if got := fieldValues(r.Child(nsCommands, "command"), "welcome"); !slices.Equal(got, []string{"Welcome to Parley!", "Have fun."}) {
		t.Fatalf("welcome form: %s", r.Raw)
	}
	completed(t, command(t, boss, nsAdmin+"#add-user", map[string][]string{
		"accountjid": {"carol@localhost"}, "password": {"pw-carol"}, "password-verify": {"pw-carol"}}))
	stanzaErr(t, command(t, boss, nsAdmin+"#add-user", map[string][]string{
		"accountjid": {"carol@localhost"}, "password": {"x"}, "password-verify": {"x"}}), "conflict")
	stanzaErr(t, command(t, boss, nsAdmin+"#add-user", map[string][]string{
		"accountjid": {"dan@localhost"}, "password": {"a"}, "password-verify": {"b"}}), "not-acceptable")
	stanzaErr(t, command(t, boss, nsAdmin+"#add-user", map[string][]string{
		"accountjid": {"dan@elsewhere.example"}, "password": {"a"}, "password-verify": {"a"}}), "not-acceptable")
	carol := ts.Login("carol", "pw-carol", "")
	carol.Send("<presence/>")
	carol.Expect("welcome message", MessageContaining("Welcome to Parley!\nHave fun."))

	// Registered and online lists, statistics.
	cmd := completed(t, command(t, boss, nsAdmin+"#get-registered-users-list", map[string][]string{"max_items": {"none"}}))
	if got := fieldValues(cmd, "registereduserjids"); !slices.Equal(got, []string{"bob@localhost", "boss@localhost", "carol@localhost"}) {
		t.Fatalf("registered users: %q", got)
	}
	cmd = completed(t, command(t, boss, nsAdmin+"#get-online-users-list", map[string][]string{"max_items": {"25"}}))
	if got := fieldValues(cmd, "onlineuserjids"); !slices.Contains(got, "bob@localhost/phone") || !slices.Contains(got, "carol@localhost/"+strings.SplitN(carol.JID, "/", 2)[1]) {
		t.Fatalf("online users: %q", got)
	}
	cmd = completed(t, command(t, boss, nsAdmin+"#get-online-users-num", nil))
	if got := fieldValues(cmd, "onlineusersnum"); !slices.Equal(got, []string{"4"}) {
		t.Fatalf("online users num: %q", got)
	}
	cmd = completed(t, command(t, boss, nsAdmin+"#user-stats", map[string][]string{"accountjid": {"bob@localhost"}}))
	if got := fieldValues(cmd, "onlineresources"); !slices.Equal(got, []string{"bob@localhost/phone"}) {
		t.Fatalf("user stats: %s", cmd.String())
	}

	// Announcement reaches every online user.
	completed(t, command(t, boss, nsAdmin+"#announce", map[string][]string{"subject": {"Maintenance"}, "announcement": {"Back at 6."}}))
	for _, c := range []*testserver.Client{bob, carol} {
		m := c.Expect("announcement", MessageContaining("Back at 6."))
		if m.From != "localhost" || m.Type != "headline" {
			t.Fatalf("announcement: %s", m.Raw)
		}
	}

	// Change a user's password; the old one stops working.
	completed(t, command(t, boss, nsAdmin+"#change-user-password", map[string][]string{"accountjid": {"carol@localhost"}, "password": {"new-carol"}}))
	if c := ts.Connect(); c.Auth(c.Features(), "SCRAM-SHA-256", "carol", "pw-carol") == nil {
		t.Fatal("old password still works")
	}
	ts.Login("carol", "new-carol", "check")

	// End a user's sessions.
	cmd = completed(t, command(t, boss, nsAdmin+"#end-user-session", map[string][]string{"accountjids": {"carol@localhost"}}))
	if se := carol.StreamError(); se == nil {
		t.Fatal("carol's session was not ended")
	}

	// Disable a user: the session ends, login is refused, nothing is
	// deleted; re-enabled, the same password works.
	carol = ts.Login("carol", "new-carol", "again")
	completed(t, command(t, boss, nsAdmin+"#disable-user", map[string][]string{"accountjids": {"carol@localhost"}, "reason": {"spam"}}))
	if se := carol.StreamError(); se == nil {
		t.Fatal("disabled user's session was not ended")
	}
	if c := ts.Connect(); c.Auth(c.Features(), "SCRAM-SHA-256", "carol", "new-carol") == nil {
		t.Fatal("disabled user can log in")
	}
	cmd = completed(t, command(t, boss, nsAdmin+"#get-disabled-users-list", map[string][]string{"max_items": {"none"}}))
	if got := fieldValues(cmd, "disableduserjids"); !slices.Equal(got, []string{"carol@localhost"}) {
		t.Fatalf("disabled users: %q", got)
	}
	completed(t, command(t, boss, nsAdmin+"#reenable-user", map[string][]string{"accountjids": {"carol@localhost"}}))
	stanzaErr(t, command(t, boss, nsAdmin+"#reenable-user", map[string][]string{"accountjids": {"carol@localhost"}}), "bad-request")
	ts.Login("carol", "new-carol", "back")

	// Delete a user: gone, cannot log in.
	completed(t, command(t, boss, nsAdmin+"#delete-user", map[string][]string{"accountjids": {"carol@localhost"}}))
	stanzaErr(t, command(t, boss, nsAdmin+"#delete-user", map[string][]string{"accountjids": {"carol@localhost"}}), "item-not-found")
	if c := ts.Connect(); c.Auth(c.Features(), "SCRAM-SHA-256", "carol", "new-carol") == nil {
		t.Fatal("deleted user can log in")
	}

	// Cancelling a session; an unknown session id.
	r = boss.IQ("c1", "<iq type='set' id='c1' to='localhost'><command xmlns='%s' node='%s#announce' action='execute'/></iq>", nsCommands, nsAdmin)
	sid = r.Child(nsCommands, "command").AttrValue("sessionid")
	r = boss.IQ("c2", "<iq type='set' id='c2' to='localhost'><command xmlns='%s' node='%s#announce' sessionid='%s' action='cancel'/></iq>", nsCommands, nsAdmin, sid)
	if r.Child(nsCommands, "command").AttrValue("status") != "canceled" {
		t.Fatalf("cancel: %s", r.Raw)
	}
	stanzaErr(t, submit(t, boss, nsAdmin+"#announce", sid, map[string][]string{"announcement": {"x"}}), "bad-request")

	// Per-user commands: own sessions, own password, own account.
	cmd = completed(t, command(t, bob, "urn:parley:cmd:sessions", nil))
	if got := fieldValues(cmd, "sessions"); !slices.Equal(got, []string{"bob@localhost/phone"}) {
		t.Fatalf("own sessions: %q", got)
	}
	stanzaErr(t, command(t, bob, "urn:parley:cmd:change-password", map[string][]string{"password": {"a"}, "password-verify": {"b"}}), "not-acceptable")
	completed(t, command(t, bob, "urn:parley:cmd:change-password", map[string][]string{"password": {"bob-2"}, "password-verify": {"bob-2"}}))
	bob2 := ts.Login("bob", "bob-2", "tablet")
	stanzaErr(t, command(t, bob2, "urn:parley:cmd:delete-account", map[string][]string{"confirm": {"0"}}), "not-acceptable")
	completed(t, command(t, bob2, "urn:parley:cmd:delete-account", map[string][]string{"confirm": {"1"}}))
	for _, c := range []*testserver.Client{bob, bob2} {
		if se := c.StreamError(); se == nil || se.Condition != "not-authorized" {
			t.Fatalf("session after own deletion: %v", se)
		}
	}
	if ok, _ := ts.Store().AccountExists(t.Context(), "bob@localhost"); ok {
		t.Fatal("bob's account still exists")
	}
}

// MessageContaining matches a message whose body contains text.
func MessageContaining(text string) func(*wire.Stanza) bool {
	return func(s *wire.Stanza) bool {
		return s.Name == "message" && strings.Contains(s.Child(wire.NSClient, "body").Text(), text)
	}
}

var preauthRe = regexp.MustCompile(`preauth=([A-Za-z0-9]+)`)

func tokenOf(t *testing.T, uri string) string {
	t.Helper()
	m := preauthRe.FindStringSubmatch(uri)
	if m == nil {
		t.Fatalf("no preauth token in %q", uri)
	}
	return m[1]
}

// register connects and registers with an XEP-0445 token (sent as the
// preauth IQ first when viaIQ) and returns the reply to the registration.
func registerWithToken(t *testing.T, ts *testserver.Server, token, user, password string, viaIQ bool) *wire.Stanza {
	t.Helper()
	c := ts.Connect()
	f := c.Features()
	if f.Child("urn:xmpp:ibr-token:0", "register") == nil {
		t.Fatalf("ibr-token feature not offered: %s", f.Raw)
	}
	pre := ""
	if viaIQ {
		c.Send("<iq type='set' id='pa' to='localhost'><preauth xmlns='urn:xmpp:pars:0' token='%s'/></iq>", wire.EscapeAttr(token))
		if r := c.Next(); r.Type != "result" {
			return r
		}
		c.Send("<iq type='get' id='g'><query xmlns='jabber:iq:register'/></iq>")
		if r := c.Next(); r.Type != "result" {
			t.Fatalf("registration form with a token: %s", r.Raw)
		}
	} else {
		pre = fmt.Sprintf("<preauth xmlns='urn:xmpp:pars:0' token='%s'/>", wire.EscapeAttr(token))
	}
	c.Send("<iq type='set' id='reg'><query xmlns='jabber:iq:register'><username>%s</username><password>%s</password>%s</query></iq>",
		wire.EscapeText(user), wire.EscapeText(password), pre)
	return c.Next()
}

// TestInvitations: XEP-0401 commands, XEP-0445 pre-authenticated
// registration while registration is closed, XEP-0379 mutual roster
// subscription, single use, expiry, forged tokens and reserved names.
func TestInvitations(t *testing.T) {
	t.Parallel()
	ts := testserver.Start(t, func(c *server.Config) {
		c.Admins = []string{"boss@localhost"}
		c.Invites.UsersCanInvite = true
	})
	ts.AddUser("boss", "pw-boss")
	ts.AddUser("romeo", "pw-romeo")
	boss := ts.Login("boss", "pw-boss", "desk")
	romeo := ts.Login("romeo", "pw-romeo", "phone")
	romeo.IQ("roster", "<iq type='get' id='roster'><query xmlns='jabber:iq:roster'/></iq>")

	// A user's contact invitation (XEP-0401 §3.1).
	cmd := completed(t, command(t, romeo, "urn:xmpp:invite#invite", nil))
	uri := fieldValues(cmd, "uri")
	if len(uri) != 1 || !strings.HasPrefix(uri[0], "xmpp:romeo@localhost?roster;preauth=") || !strings.HasSuffix(uri[0], ";ibr=y") {
		t.Fatalf("invitation uri: %s", cmd.String())
	}
	if l := fieldValues(cmd, "landing-url"); len(l) != 1 || !strings.Contains(l[0], "/invite/"+tokenOf(t, uri[0])) {
		t.Fatalf("landing-url: %q", l)
	}
	if e := fieldValues(cmd, "expire"); len(e) != 1 {
		t.Fatalf("expire: %q", e)
	} else if exp, err := time.Parse(time.RFC3339, e[0]); err != nil || exp.Before(time.Now().Add(6*24*time.Hour)) {
		t.Fatalf("expire %q", e[0])
	}
	token := tokenOf(t, uri[0])

	// Registration is closed, a forged token is refused, the real one works.
	c := ts.Connect()
	c.Features()
	c.Send("<iq type='set' id='r0'><query xmlns='jabber:iq:register'><username>juliet</username><password>pw</password></query></iq>")
	stanzaErr(t, c.Next(), "not-allowed")
	stanzaErr(t, registerWithToken(t, ts, "FORGED"+token[6:], "juliet", "pw-juliet", true), "item-not-found")
	if r := registerWithToken(t, ts, token, "juliet", "pw-juliet", true); r.Type != "result" {
		t.Fatalf("registration with token: %s", r.Raw)
	}
	// Used: refused with a clear error.
	r := registerWithToken(t, ts, token, "juliet2", "pw", false)
	stanzaErr(t, r, "item-not-found")
	if !strings.Contains(string(r.Raw), "invalid or expired") {
		t.Fatalf("used token error has no text: %s", r.Raw)
	}
	// Romeo learns about his new contact by a roster push (XEP-0401 §4).
	push := romeo.Expect("roster push", func(s *wire.Stanza) bool {
		q := s.Child("jabber:iq:roster", "query")
		return s.Name == "iq" && s.Type == "set" && q != nil && q.Child("jabber:iq:roster", "item").AttrValue("jid") == "juliet@localhost"
	})
	if sub := push.Child("jabber:iq:roster", "query").Child("jabber:iq:roster", "item").AttrValue("subscription"); sub != "both" {
		t.Fatalf("roster push: %s", push.Raw)
	}
	juliet := ts.Login("juliet", "pw-juliet", "balcony")
	rr := juliet.IQ("jr", "<iq type='get' id='jr'><query xmlns='jabber:iq:roster'/></iq>")
	item := rr.Child("jabber:iq:roster", "query").Child("jabber:iq:roster", "item")
	if item.AttrValue("jid") != "romeo@localhost" || item.AttrValue("subscription") != "both" {
		t.Fatalf("juliet's roster: %s", rr.Raw)
	}
	// Mutual presence works right away.
	romeo.Send("<presence/>")
	juliet.Send("<presence/>")
	romeo.Expect("juliet's presence", testserver.PresenceFrom("juliet@localhost", ""))

	// Admin account invitation for a reserved name (XEP-0401 §3.2).
	cmd = completed(t, command(t, boss, "urn:xmpp:invite#create-account", map[string][]string{"username": {"Nurse"}, "ttl": {"2h"}}))
	uri = fieldValues(cmd, "uri")
	if len(uri) != 1 || !strings.HasPrefix(uri[0], "xmpp:nurse@localhost?register;preauth=") {
		t.Fatalf("account invitation: %s", cmd.String())
	}
	nurseToken := tokenOf(t, uri[0])
	// Users cannot create account invitations.
	stanzaErr(t, command(t, romeo, "urn:xmpp:invite#create-account", map[string][]string{"username": {"x"}}), "forbidden")
	// The name is reserved: another token cannot take it.
	cmd = completed(t, command(t, boss, "urn:xmpp:invite#create-account", map[string][]string{"uses": {"2"}}))
	multi := tokenOf(t, fieldValues(cmd, "uri")[0])
	stanzaErr(t, registerWithToken(t, ts, multi, "nurse", "pw", true), "conflict")
	stanzaErr(t, registerWithToken(t, ts, nurseToken, "tybalt", "pw", true), "not-allowed")
	if r := registerWithToken(t, ts, nurseToken, "nurse", "pw-nurse", true); r.Type != "result" {
		t.Fatalf("reserved registration: %s", r.Raw)
	}
	ts.Login("nurse", "pw-nurse", "")
	// A two-use token: two accounts, then refused.
	for _, u := range []string{"mercutio", "benvolio"} {
		if r := registerWithToken(t, ts, multi, u, "pw-"+u, false); r.Type != "result" {
			t.Fatalf("multi-use registration %s: %s", u, r.Raw)
		}
	}
	stanzaErr(t, registerWithToken(t, ts, multi, "paris", "pw", false), "item-not-found")

	// An expired token.
	inv, err := ts.Admin().CreateInvite(t.Context(), adminInvite("localhost", time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	exp := time.Now().Add(2 * time.Minute)
	ts.Admin().SetClock(func() time.Time { return exp })
	stanzaErr(t, registerWithToken(t, ts, inv.Token, "late", "pw", true), "item-not-found")
	ts.Admin().SetClock(time.Now)

	// Without users_can_invite, only admins invite.
	ts2 := testserver.Start(t)
	ts2.AddUser("u", "pw")
	u := ts2.Login("u", "pw", "")
	stanzaErr(t, command(t, u, "urn:xmpp:invite#invite", nil), "forbidden")
}

func adminInvite(domain string, ttl time.Duration) admin.InviteRequest {
	return admin.InviteRequest{Domain: domain, TTL: ttl}
}

// TestContactInvitationExistingAccount: XEP-0379 from the invitee's side
// when they already have an account: their subscription request carries
// the token, the server approves it for the inviter and asks back; with
// the invitee's pre-approval both end up with a mutual subscription. A
// forged token leaves the request to the inviter.
func TestContactInvitationExistingAccount(t *testing.T) {
	t.Parallel()
	ts := testserver.Start(t, func(c *server.Config) { c.Invites.UsersCanInvite = true })
	ts.AddUser("romeo", "pw-r")
	ts.AddUser("juliet", "pw-j")
	ts.AddUser("paris", "pw-p")
	romeo := ts.Login("romeo", "pw-r", "")
	romeo.IQ("rr", "<iq type='get' id='rr'><query xmlns='jabber:iq:roster'/></iq>")
	romeo.Send("<presence/>")
	cmd := completed(t, command(t, romeo, "urn:xmpp:invite#invite", nil))
	token := tokenOf(t, fieldValues(cmd, "uri")[0])

	juliet := ts.Login("juliet", "pw-j", "")
	juliet.IQ("jr", "<iq type='get' id='jr'><query xmlns='jabber:iq:roster'/></iq>")
	// XEP-0379 §3.4: the invitee pre-approves, then asks with the token.
	juliet.Send("<presence to='romeo@localhost' type='subscribed'/>")
	juliet.Send("<presence to='romeo@localhost' type='subscribe'><preauth xmlns='urn:xmpp:pars:0' token='%s'/></presence>", token)
	both := func(c *testserver.Client, contact string) bool {
		id := "q" + contact[:1]
		r := c.IQ(id, "<iq type='get' id='%s'><query xmlns='jabber:iq:roster'/></iq>", id)
		for _, it := range r.Child("jabber:iq:roster", "query").Elements() {
			if it.AttrValue("jid") == contact {
				return it.AttrValue("subscription") == "both"
			}
		}
		return false
	}
	deadline := time.Now().Add(5 * time.Second)
	for !both(juliet, "romeo@localhost") || !both(romeo, "juliet@localhost") {
		if time.Now().After(deadline) {
			t.Fatal("no mutual subscription after the invitation")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The token was used: paris's request waits for romeo.
	paris := ts.Login("paris", "pw-p", "")
	paris.Send("<presence to='romeo@localhost' type='subscribe'><preauth xmlns='urn:xmpp:pars:0' token='%s'/></presence>", token)
	romeo.Expect("paris's request", testserver.PresenceFrom("paris@localhost", "subscribe"))
	paris.ExpectNone("automatic approval", 300*time.Millisecond, testserver.PresenceFrom("romeo@localhost", "subscribed"))
}
