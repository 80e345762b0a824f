package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/auth"
	"github.com/parley-xmpp/parley/internal/testserver"
	"github.com/parley-xmpp/parley/server"
	"github.com/parley-xmpp/parley/wire"
)

// fastToken logs in with a password over SASL2, asks for a token for mech
// and returns it.
func fastToken(t *testing.T, ts *testserver.Server, user, pw, ua, mech string) string {
	t.Helper()
	c := ts.Connect()
	c.Features()
	st, err := c.AuthenticateSASL2(testserver.SASL2{Mech: "SCRAM-SHA-256", User: user, Password: pw, UserAgent: ua,
		Extra: "<request-token xmlns='urn:xmpp:fast:0' mechanism='" + mech + "'/>"})
	if err != nil {
		t.Fatal(err)
	}
	tok := st.Child(nsFAST, "token")
	if tok == nil || len(tok.AttrValue("token")) < 80 {
		t.Fatalf("no token in %s", st.Raw)
	}
	exp, err := time.Parse(time.RFC3339, tok.AttrValue("expiry"))
	if err != nil || exp.Before(time.Now().Add(20*24*time.Hour)) || exp.After(time.Now().Add(22*24*time.Hour)) {
		t.Fatalf("expiry %q: want three weeks from now", tok.AttrValue("expiry"))
	}
	c.Close()
	return tok.AttrValue("token")
}

// fastLogin authenticates with a token; extra goes inside <authenticate/>.
func fastLogin(t *testing.T, ts *testserver.Server, user, ua, mech, token, extra string) (*testserver.Client, *wire.Stanza, error) {
	t.Helper()
	c := ts.Connect()
	c.Features()
	st, err := c.AuthenticateSASL2(testserver.SASL2{Mech: mech, User: user, Token: token, UserAgent: ua,
		Extra: "<fast xmlns='urn:xmpp:fast:0'/>" + extra})
	return c, st, err
}

// TestFAST: a token obtained with the password logs in again in one round
// trip, with or without channel binding, straight into a bound session;
// it is tied to its account, client and mechanism; invalidation and a
// password change end it.
func TestFAST(t *testing.T) {
	t.Parallel()
	// Every refused token counts as a failed login from 127.0.0.1.
	ts := testserver.Start(t, func(c *server.Config) { c.Auth.MaxFailures = 100 })
	alice := ts.AddUser("alice", "pw1")
	ts.AddUser("bob", "pw2")
	for _, mech := range []string{auth.MechHTNone, auth.MechHTExpr, auth.MechHTEndP} {
		tok := fastToken(t, ts, "alice", "pw1", ua1, mech)
		for i := range 2 { // the token is not used up by a login
			c, st, err := fastLogin(t, ts, "alice", ua1, mech, tok, "<bind xmlns='urn:xmpp:bind:0'><tag>fast</tag></bind>")
			if err != nil {
				t.Fatalf("%s login %d: %v", mech, i, err)
			}
			if st.Child(nsFAST, "token") != nil {
				t.Fatalf("%s: a fresh token was rotated: %s", mech, st.Raw)
			}
			jid := st.Tree().ChildText(nsSASL2, "authorization-identifier")
			if !strings.HasPrefix(jid, alice+"/fast/") || bound(t, st) == nil {
				t.Fatalf("%s: bound %q", mech, jid)
			}
			c.Features()
			c.StartReader()
			if r := c.IQ("p", "<iq type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>"); r.Type != "result" {
				t.Fatalf("%s: %s", mech, r.Raw)
			}
			c.Close()
		}
	}

	tok := fastToken(t, ts, "alice", "pw1", ua1, auth.MechHTNone)
	bobTok := fastToken(t, ts, "bob", "pw2", ua1, auth.MechHTNone)
	for _, tc := range []struct {
		name, user, ua, mech, token, cond string
	}{
		{"bob's token as alice", "alice", ua1, auth.MechHTNone, bobTok, "not-authorized"},
		{"alice's token as bob", "bob", ua1, auth.MechHTNone, tok, "not-authorized"},
		{"another client's token", "alice", ua2, auth.MechHTNone, tok, "not-authorized"},
		{"another mechanism", "alice", ua1, auth.MechHTExpr, tok, "not-authorized"},
		{"unknown account", "nobody", ua1, auth.MechHTNone, tok, "not-authorized"},
		{"made-up token", "alice", ua1, auth.MechHTNone, strings.Repeat("A", 88), "not-authorized"},
	} {
		_, st, err := fastLogin(t, ts, tc.user, tc.ua, tc.mech, tc.token, "")
		if got := sasl2Failure(t, st, err); got != tc.cond {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.cond)
		}
	}

	// Log out: invalidate, then the token is dead.
	c, st, err := fastLogin(t, ts, "alice", ua1, auth.MechHTNone, tok, "")
	if err != nil || st.Child(nsFAST, "token") != nil {
		t.Fatal(err)
	}
	c.Close()
	c = ts.Connect()
	c.Features()
	if _, err := c.AuthenticateSASL2(testserver.SASL2{Mech: auth.MechHTNone, User: "alice", Token: tok, UserAgent: ua1,
		Extra: "<fast xmlns='urn:xmpp:fast:0' invalidate='true'/>"}); err != nil {
		t.Fatalf("invalidating login: %v", err)
	}
	c.Close()
	_, st, err = fastLogin(t, ts, "alice", ua1, auth.MechHTNone, tok, "")
	if got := sasl2Failure(t, st, err); got != "not-authorized" {
		t.Fatalf("invalidated token: %s", got)
	}

	// A password change ends every token.
	tok = fastToken(t, ts, "alice", "pw1", ua1, auth.MechHTNone)
	creds, err := auth.DeriveCredentials("pw-new", ts.Cfg.Auth.Iterations)
	if err != nil {
		t.Fatal(err)
	}
	if err := ts.Store().SetCredentials(context.Background(), "alice@localhost", creds); err != nil {
		t.Fatal(err)
	}
	_, st, err = fastLogin(t, ts, "alice", ua1, auth.MechHTNone, tok, "")
	if got := sasl2Failure(t, st, err); got != "not-authorized" {
		t.Fatalf("token after a password change: %s", got)
	}

	// The token is stored as a digest, never as itself.
	tok = fastToken(t, ts, "alice", "pw-new", ua1, auth.MechHTNone)
	fc, err := ts.Store().FASTClient(context.Background(), "alice@localhost", ua1)
	if err != nil || fc.New == nil || strings.Contains(string(fc.New.Digest), tok) || len(fc.New.Digest) != 32 {
		t.Fatalf("stored %+v %v", fc, err)
	}
	if fc.Software != "parley testserver" || fc.Device != "loopback" {
		t.Fatalf("user agent not remembered: %+v", fc)
	}
}

// TestFASTChannelBindingReplay: an -EXPR token proves the TLS connection
// too, so its proof from one connection fails on another.
func TestFASTChannelBindingReplay(t *testing.T) {
	t.Parallel()
	ts := testserver.Start(t)
	ts.AddUser("alice", "pw1")
	tok := fastToken(t, ts, "alice", "pw1", ua1, auth.MechHTExpr)
	// A proof made without this connection's exporter (as a replay of
	// another connection's would be) is refused.
	c := ts.Connect()
	c.Features()
	st, err := c.AuthenticateSASL2(testserver.SASL2{Mech: auth.MechHTNone, User: "alice", Token: tok, UserAgent: ua1})
	if got := sasl2Failure(t, st, err); got != "not-authorized" {
		t.Fatalf("-EXPR token used as -NONE: %s", got)
	}
	c.Send("<authenticate xmlns='urn:xmpp:sasl:2' mechanism='HT-SHA-256-EXPR'><initial-response>%s</initial-response>"+
		"<user-agent id='%s'/></authenticate>", b64("alice\x00"+strings.Repeat("\x01", 32)), ua1)
	st = c.Next()
	if got := sasl2Failure(t, st, errNotSuccess(st)); got != "not-authorized" {
		t.Fatalf("forged proof: %s", got)
	}
}
