package e2e

import (
	"testing"
	"time"

	"github.com/parley-xmpp/parley/internal/testserver"
	"github.com/parley-xmpp/parley/server"
	"github.com/parley-xmpp/parley/wire"
)

// TestFederationDomainPolicy (issue 16, abuse tooling): a domain on
// s2s.blocked_domains, or missing from a non-empty s2s.allowed_domains,
// gets no federation in either direction: messages to it bounce with
// not-allowed, and its stream is refused, so its users' messages never
// arrive.
func TestFederationDomainPolicy(t *testing.T) {
	t.Parallel()
	for name, policy := range map[string]func(c *server.Config){
		"blocked": func(c *server.Config) { c.S2S.BlockedDomains = []string{"b.test"} },
		"allowed": func(c *server.Config) { c.S2S.AllowedDomains = []string{"c.test"} },
	} {
		t.Run(name, func(t *testing.T) {
			a, b := federatedPair(t, func(c *server.Config) {
				if c.Hosts[0] == "a.test" {
					policy(c)
				}
			})
			alice, bob := a.Login("alice", "pw1", "phone"), b.Login("bob", "pw2", "laptop")
			alice.Send("<presence/>")
			bob.Send("<presence/>")
			alice.Send("<message to='%s' type='chat' id='out1'><body>to a blocked domain</body></message>", fedBob)
			e := alice.Expect("bounce", func(s *wire.Stanza) bool { return s.ID == "out1" })
			assertStanzaError(t, e, "not-allowed")
			bob.Send("<message to='%s' type='chat' id='in1'><body>from a blocked domain</body></message>", fedAlice)
			if e := bob.ExpectWithin("bounce from b.test's side", 3*testserver.Timeout, func(s *wire.Stanza) bool { return s.ID == "in1" }); e.Type != "error" {
				t.Fatalf("message to a server that refuses us: %s", e.Raw)
			}
			alice.ExpectNone("message from a blocked domain", 200*time.Millisecond, isMsg("from a blocked domain"))
		})
	}
}
