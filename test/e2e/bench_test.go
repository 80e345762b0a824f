package e2e

import (
	"strconv"
	"testing"

	"github.com/parley-xmpp/parley/internal/testserver"
	"github.com/parley-xmpp/parley/server"
	"github.com/parley-xmpp/parley/wire"
)

// BenchmarkMessageOverSockets measures one chat message from one client to
// another through the whole server (TLS, parse, stamp, hooks incl. the
// archive, routing, delivery), one message in flight at a time: ns/op is
// the end-to-end latency.
func BenchmarkMessageOverSockets(b *testing.B) {
	ts := testserver.Start(b)
	ts.AddUser("alice", "pw1")
	ts.AddUser("bob", "pw2")
	a := ts.Login("alice", "pw1", "a")
	r := ts.Login("bob", "pw2", "b")
	r.Send("<presence/>")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		id := strconv.Itoa(i)
		a.Send("<message to='bob@localhost/b' type='chat' id='%s'><body>hello %s</body></message>", id, id)
		r.Expect("message", func(s *wire.Stanza) bool { return s.Name == "message" && s.ID == id })
	}
}

// BenchmarkSASL2Login measures whole logins over loopback sockets, one at
// a time, with the production PBKDF2 iteration count: TCP connect,
// STARTTLS, SASL2 with a Bind2 request, <success/> and the features.
// SCRAM-SHA-256 derives the password on the client (PBKDF2) and takes two
// round trips; HT-SHA-256-NONE (XEP-0484 FAST) is one HMAC and one round
// trip. ns/op is the time of one login, so logins/s = 1e9 / ns/op for
// this client and server sharing the machine.
func BenchmarkSASL2Login(b *testing.B) {
	ts := testserver.Start(b, func(c *server.Config) { c.Auth.Iterations = server.DefaultConfig().Auth.Iterations })
	ts.AddUser("alice", "pw1")
	const ua = "d4565fa7-4d72-4749-b3d3-740edbf87770"
	c := ts.Connect()
	c.Features()
	st, err := c.AuthenticateSASL2(testserver.SASL2{Mech: "SCRAM-SHA-256", User: "alice", Password: "pw1", UserAgent: ua,
		Extra: "<request-token xmlns='urn:xmpp:fast:0' mechanism='HT-SHA-256-NONE'/>"})
	if err != nil {
		b.Fatal(err)
	}
	token := st.Child(testserver.NSFAST, "token").AttrValue("token")
	c.Close()
	for _, o := range []testserver.SASL2{
		{Mech: "SCRAM-SHA-256", User: "alice", Password: "pw1", UserAgent: ua},
		{Mech: "HT-SHA-256-NONE", User: "alice", Token: token, UserAgent: ua},
	} {
		o.Extra = "<bind xmlns='urn:xmpp:bind:0'><tag>bench</tag></bind>"
		b.Run(o.Mech, func(b *testing.B) {
			for b.Loop() {
				c := ts.Connect()
				c.Features()
				if _, err := c.AuthenticateSASL2(o); err != nil {
					b.Fatal(err)
				}
				c.Features()
				c.Close()
			}
		})
	}
}
