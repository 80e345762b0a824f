package interop

import (
	"strings"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/internal/testserver"
)

// TestSlixmppChannelBinding: a stock slixmpp 1.8 knows only the
// tls-unique channel binding. On TLS 1.2 (with the extended master
// secret) the server has it and slixmpp's first choice, SCRAM-SHA-512-PLUS,
// succeeds at once. TLS 1.3 has no tls-unique (RFC 9266), so there its
// three -PLUS attempts fail with a clear error before SCRAM-SHA-512 with
// the 'y' flag succeeds (README: SASL and older clients).
func TestSlixmppChannelBinding(t *testing.T) {
	slixmpp.available(t)
	ts := testserver.Start(t)
	alice := ts.AddUser("alice", "alice-pw")

	tls12 := slixmpp
	tls12.connect = func(ts *testserver.Server, cfg map[string]any) {
		slixmpp.connect(ts, cfg)
		cfg["tls_max"] = "1.2"
	}
	for _, tc := range []struct {
		name     string
		l        lib
		mech     string
		gs2      string
		failures int
	}{
		{"TLS 1.2", tls12, "SCRAM-SHA-512-PLUS", "p=tls-unique,,", 0},
		{"TLS 1.3", slixmpp, "SCRAM-SHA-512", "y,,", 3},
	} {
		p := start(t, ts, tc.l, alice+"/cb", "alice-pw", op("ping"))
		evs := finish(t, p)[0]
		checkLogin(t, tc.l, alice+"/cb", evs)
		login, _ := find(evs, func(e event) bool { return e.Event == "login" })
		if login.Mechanism != tc.mech || login.GS2Header != tc.gs2 {
			t.Errorf("%s: logged in with %s, gs2 header %q; want %s, %q", tc.name, login.Mechanism, login.GS2Header, tc.mech, tc.gs2)
		}
		var failures []string
		for _, e := range evs {
			if e.Event == "auth_failure" {
				failures = append(failures, e.Raw)
				if !strings.Contains(e.Raw, "malformed-request") || !strings.Contains(e.Raw, "unsupported channel binding type") {
					t.Errorf("%s: failure without the reason: %s", tc.name, e.Raw)
				}
			}
		}
		if len(failures) != tc.failures {
			t.Errorf("%s: %d failed attempts before the login, want %d: %v", tc.name, len(failures), tc.failures, failures)
		}
	}
}

// TestXMPPJSSASL2: xmpp.js logs in with SASL2 and Bind2, enables stream
// management inline, gets a FAST token, logs in again with the token
// instead of its password, and resumes its session inline after losing
// the network — over TCP and WebSocket.
func TestXMPPJSSASL2(t *testing.T) {
	for _, l := range []lib{xmppjsTCP, xmppjsWS} {
		t.Run(l.name, func(t *testing.T) {
			l.available(t)
			ts := testserver.Start(t)
			alice := ts.AddUser("alice", "alice-pw")
			bob := ts.AddUser("bob", "bob-pw")
			req := alice + "/js"
			full := boundJID(ts, l, req)
			b := ts.Login("bob", "bob-pw", "desk")
			b.Send("<presence/>")

			a := start(t, ts, l, req, "alice-pw",
				op("presence"),
				op("wait_message", "body", "first login"),
				op("reconnect"),
				op("presence"),
				op("wait_message", "body", "token login"),
				op("drop_resume", "timeout", 20),
				op("send", "to", bob, "body", "after resumption"),
				op("ping"),
			)
			a.waitEvents("login", 1, 20*time.Second)
			b.Send("<message to='%s' type='chat'><body>first login</body></message>", full)
			a.waitEvents("login", 2, 20*time.Second)
			b.Send("<message to='%s' type='chat'><body>token login</body></message>", full)
			evs := finish(t, a)[0]

			var logins []event
			var tokens []event
			for _, e := range evs {
				switch e.Event {
				case "login":
					logins = append(logins, e)
				case "fast_token":
					tokens = append(tokens, e)
				}
			}
			if len(logins) != 2 {
				t.Fatalf("%d logins:\n%s", len(logins), a.transcript())
			}
			checkLogin(t, l, full, logins[:1])
			if logins[1].Mechanism != "HT-SHA-256-NONE" || !logins[1].SASL2 || logins[1].JID != full {
				t.Errorf("second login: %+v, want HT-SHA-256-NONE over SASL2 bound to %s", logins[1], full)
			}
			if len(tokens) == 0 || tokens[0].Length < 80 || tokens[0].Mechanism != "HT-SHA-256-NONE" {
				t.Errorf("FAST token events %+v", tokens)
			}
			r, ok := find(evs, func(e event) bool { return e.Event == "resumed" })
			if !ok || r.JID != full || !r.SASL2 || r.Mechanism != "HT-SHA-256-NONE" {
				t.Errorf("no inline resumption: %+v:\n%s", r, a.transcript())
			}
			b.Expect("message after resumption", testserver.MessageWithBody("after resumption"))
		})
	}
}
