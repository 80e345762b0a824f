package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/internal/pgtest"
	"github.com/parley-xmpp/parley/internal/testserver"
	"github.com/parley-xmpp/parley/server"
	"github.com/parley-xmpp/parley/wire"
)

// TestPostgresOutage stops the server's PostgreSQL while clients chat:
// /readyz turns unready, new logins get a temporary failure, a message for
// an offline user is refused with resource-constraint (not silently
// dropped), and so is a live message that belongs in the archives (never
// delivered unarchived; the stream management ack counts it only as
// refused, once the refusal is queued); what needs no storage (chat
// states) keeps flowing, and once the database is back everything works
// again without a restart.
func TestPostgresOutage(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts its own PostgreSQL cluster")
	}
	pg := pgtest.Start(t)
	ts := testserver.Start(t, func(c *server.Config) {
		c.Storage.Backend = "postgres"
		c.Storage.Postgres.DSN = pg.DSN()
		c.Storage.Postgres.Schema = "parley"
	})
	ts.AddUser("alice", "pw1")
	bob := ts.AddUser("bob", "pw2")
	ts.AddUser("carol", "pw3")
	a := ts.Login("alice", "pw1", "a")
	asm, _ := enableSM(t, ts, "alice", "pw1", "sm")
	b := ts.Login("bob", "pw2", "b")
	b.Send("<presence/>")
	b.Expect("own presence", func(s *wire.Stanza) bool { return s.Name == "presence" && s.From == b.JID })
	ready := func() int {
		resp, err := http.Get("http://" + ts.Addr("admin") + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if ready() != 200 {
		t.Fatal("not ready before the outage")
	}

	pg.Stop()
	if ready() != http.StatusServiceUnavailable {
		t.Fatal("/readyz still ready with the database down")
	}
	c := ts.Connect()
	err := c.Auth(c.Features(), "SCRAM-SHA-256", "carol", "pw3")
	if err == nil || !strings.Contains(err.Error(), "temporary-auth-failure") {
		t.Fatalf("login during the outage: %v, want temporary-auth-failure", err)
	}
	a.Send("<message to='carol@localhost' id='off1' type='chat'><body>for later</body></message>")
	e := a.Expect("refusal", func(s *wire.Stanza) bool { return s.ID == "off1" })
	assertStanzaError(t, e, "resource-constraint")
	a.Send("<message to='%s' type='chat' id='live1'><body>still here?</body></message>", bob)
	e = a.Expect("refusal of a live message", func(s *wire.Stanza) bool { return s.ID == "live1" })
	assertStanzaError(t, e, "resource-constraint")
	if typ := e.Tree().Child(wire.NSClient, "error").AttrValue("type"); typ != "wait" {
		t.Errorf("refusal has error type %q, want wait: %s", typ, e.Raw)
	}
	b.ExpectNone("a message that could not be archived", 300*time.Millisecond, isMsg("still here?"))
	a.Send("<message to='%s' type='chat' id='cs1'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>", bob)
	b.Expect("chat state during the outage", func(s *wire.Stanza) bool { return s.ID == "cs1" })
	// With stream management: h counts the refused message as handled
	// only once routing has returned, i.e. once the refusal is queued to
	// the session (and so kept by stream management until acked). The
	// <a/> itself is written directly and may overtake that queue, so
	// only both arriving is checked, not their order.
	asm.Send("<message to='%s' type='chat' id='live2'><body>with sm</body></message>", bob)
	asm.Send("<r xmlns='urn:xmpp:sm:3'/>")
	if h := asm.Expect("ack", isSM("a")).Attr("h"); h != "1" {
		t.Errorf("h = %s after one refused message, want 1 (handled: refused)", h)
	}
	assertStanzaError(t, asm.Expect("refusal with stream management", func(s *wire.Stanza) bool { return s.ID == "live2" }), "resource-constraint")
	b.ExpectNone("the refused message", 300*time.Millisecond, isMsg("with sm"))

	pg.Start()
	deadline := time.Now().Add(20 * time.Second)
	for ready() != 200 {
		if time.Now().After(deadline) {
			t.Fatal("/readyz did not recover after the database came back")
		}
		time.Sleep(200 * time.Millisecond)
	}
	carol := ts.Login("carol", "pw3", "c")
	carol.Send("<presence/>")
	// Available before alice writes, or the message goes offline.
	carol.Expect("own presence", func(s *wire.Stanza) bool { return s.Name == "presence" && s.From == carol.JID })
	a.Send("<message to='carol@localhost' type='chat'><body>after</body></message>")
	carol.Expect("message after recovery", isMsg("after"))
	a.Send("<message to='%s' type='chat'><body>back again</body></message>", bob)
	got := b.Expect("live message after recovery", isMsg("back again"))
	if got.Tree().Child("urn:xmpp:sid:0", "stanza-id") == nil {
		t.Errorf("message after recovery delivered without stanza-id: %s", got.Raw)
	}
}
