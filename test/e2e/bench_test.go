package e2e

import (
	"strconv"
	"testing"

	"github.com/parley-xmpp/parley/internal/testserver"
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
