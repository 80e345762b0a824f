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
// dropped), live chat keeps flowing, and once the database is back
// everything works again without a restart.
func TestPostgresOutage(t *testing.T) {
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
	a.Send("<message to='%s' type='chat'><body>still here</body></message>", bob)
	b.Expect("live message during the outage", isMsg("still here"))

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
	a.Send("<message to='carol@localhost' type='chat'><body>after</body></message>")
	carol.Expect("message after recovery", isMsg("after"))
}
