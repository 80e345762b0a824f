package federation

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/internal/testserver"
	"github.com/parley-xmpp/parley/server"
	"github.com/parley-xmpp/parley/wire"
)

const (
	nsMUC     = "http://jabber.org/protocol/muc"
	nsMUCUser = nsMUC + "#user"
	slowFirst = 20 * time.Second // first contact includes s2s setup
)

// startParleyFor starts a full Parley for a.test (with conference.a.test)
// on 127.0.0.2 with a certificate from ca for both, routing peers to
// peerS2S, with the account alice.
func startParleyFor(t *testing.T, ca *testCA, s2sPort int, peerS2S string, peers ...string) *testserver.Server {
	t.Helper()
	dir := t.TempDir()
	caPath, crtPath, keyPath := writePEMFiles(t, dir, ca, ca.issue(t, "a.test", "a.test", "conference.a.test"))
	var routes []string
	for _, p := range peers {
		routes = append(routes, p+"="+peerS2S)
	}
	p := testserver.Start(t, func(c *server.Config) {
		c.Hosts = []string{"a.test"}
		c.Listen = server.ListenConfig{C2S: "127.0.0.2:0", S2S: "127.0.0.2:" + strconv.Itoa(s2sPort)}
		c.TLS = server.TLSConfig{Cert: crtPath, Key: keyPath}
		c.S2S.CAFile = caPath
		c.S2S.Routes = routes
	})
	p.AddUser("alice", "alice-pw")
	return p
}

func selfIn(room, nick string) func(*wire.Stanza) bool {
	return func(s *wire.Stanza) bool {
		if s.Name != "presence" || s.From != room+"/"+nick || s.Type != "" {
			return false
		}
		for _, st := range s.Child(nsMUCUser, "x").ChildrenNamed(nsMUCUser, "status") {
			if st.AttrValue("code") == "110" {
				return true
			}
		}
		return false
	}
}

func occupantIn(room, nick string) func(*wire.Stanza) bool {
	return func(s *wire.Stanza) bool { return s.Name == "presence" && s.From == room+"/"+nick && s.Type == "" }
}

func groupchatIn(room, body string) func(*wire.Stanza) bool {
	return func(s *wire.Stanza) bool {
		return s.Name == "message" && s.Type == "groupchat" && strings.HasPrefix(s.From, room+"/") &&
			s.Child(wire.NSClient, "body").Text() == body
	}
}

// createInstantRoom joins (creating) room and accepts the default
// configuration, whatever the server.
func createInstantRoom(t *testing.T, c *testserver.Client, room, nick string) {
	t.Helper()
	c.Send("<presence to='%s/%s'><x xmlns='%s'/></presence>", room, nick, nsMUC)
	c.ExpectWithin("own presence in "+room, slowFirst, selfIn(room, nick))
	c.Send("<iq type='set' id='instant' to='%s'><query xmlns='%s#owner'><x xmlns='jabber:x:data' type='submit'/></query></iq>", room, nsMUC)
	r := c.ExpectWithin("instant room", slowFirst, func(s *wire.Stanza) bool { return s.Name == "iq" && s.ID == "instant" })
	if r.Type != "result" {
		t.Fatalf("instant room %s: %s", room, r.Raw)
	}
}

// mucBothWays: peerUser (on the other server) joins alice's room on
// conference.a.test, and alice joins a room the peer's own MUC service
// hosts, created by peerUser; messages flow both ways in both.
func mucBothWays(t *testing.T, alice, peerUser *testserver.Client, peerRoom string) {
	t.Helper()
	room := "lounge@conference.a.test"
	createInstantRoom(t, alice, room, "Alice")

	peerUser.Send("<presence to='%s/Peer'><x xmlns='%s'/></presence>", room, nsMUC)
	peerUser.ExpectWithin("own presence in the Parley room", slowFirst, selfIn(room, "Peer"))
	peerUser.ExpectWithin("alice in the Parley room", slowFirst, occupantIn(room, "Alice"))
	alice.Expect("peer joined", occupantIn(room, "Peer"))
	peerUser.Send("<message to='%s' type='groupchat'><body>hello parley room</body></message>", room)
	m := alice.Expect("peer's message", groupchatIn(room, "hello parley room"))
	if sid := m.Child("urn:xmpp:sid:0", "stanza-id"); sid == nil || sid.AttrValue("by") != room {
		t.Fatalf("no stanza-id by the room: %s", m.Raw)
	}
	alice.Send("<message to='%s' type='groupchat'><body>hello from alice</body></message>", room)
	peerUser.ExpectWithin("alice's message", slowFirst, groupchatIn(room, "hello from alice"))

	createInstantRoom(t, peerUser, peerRoom, "Peer")
	alice.Send("<presence to='%s/Alice'><x xmlns='%s'/></presence>", peerRoom, nsMUC)
	alice.ExpectWithin("own presence in the peer's room", slowFirst, selfIn(peerRoom, "Alice"))
	alice.Expect("peer in its room", occupantIn(peerRoom, "Peer"))
	peerUser.ExpectWithin("alice joined the peer's room", slowFirst, occupantIn(peerRoom, "Alice"))
	alice.Send("<message to='%s' type='groupchat'><body>parley speaking</body></message>", peerRoom)
	peerUser.ExpectWithin("alice's message in the peer's room", slowFirst, groupchatIn(peerRoom, "parley speaking"))
	alice.ExpectWithin("reflection from the peer's room", slowFirst, groupchatIn(peerRoom, "parley speaking"))
	peerUser.Send("<message to='%s' type='groupchat'><body>peer speaking</body></message>", peerRoom)
	alice.ExpectWithin("peer's message in its room", slowFirst, groupchatIn(peerRoom, "peer speaking"))
	alice.Send("<presence to='%s/Alice' type='unavailable'/>", peerRoom)
	alice.ExpectWithin("left the peer's room", slowFirst, func(s *wire.Stanza) bool {
		return s.Name == "presence" && s.From == peerRoom+"/Alice" && s.Type == "unavailable"
	})
}

// TestProsodyMUC: a Parley user joins a room on Prosody's MUC and a
// Prosody user joins a room on Parley's, over real s2s.
func TestProsodyMUC(t *testing.T) {
	ca := newCA(t)
	s2sPort := freePortOn(t, "127.0.0.2")
	aAddr := "127.0.0.2:" + strconv.Itoa(s2sPort)
	pS2S, pC2S := startProsody(t, ca, ca.issue(t, "p.test", "p.test", "conference.p.test"),
		prosodyOpts{secureAuth: true, chat: true, routes: []string{"conference.a.test"}}, aAddr)
	p := startParleyFor(t, ca, s2sPort, pS2S, "p.test", "conference.p.test")
	alice := p.Login("alice", "alice-pw", "phone")
	alice.Send("<presence/>")
	paul := c2sLogin(t, pC2S, "p.test", "paul", "paul-pw", "laptop", true)
	paul.Send("<presence/>")
	mucBothWays(t, alice, paul, "hall@conference.p.test")
	t.Log("parley <-> prosody multi-user chat works both ways")
}

// TestEjabberdMUC: the same with ejabberd's mod_muc.
func TestEjabberdMUC(t *testing.T) {
	ca := newCA(t)
	s2sPort := freePortOn(t, "127.0.0.2")
	e := startEjabberd(t, ca, ca.issue(t, "e.test", "e.test", "conference.e.test"), s2sPort)
	p := startParleyFor(t, ca, s2sPort, e.s2s, "e.test", "conference.e.test")
	alice := p.Login("alice", "alice-pw", "phone")
	alice.Send("<presence/>")
	eve := c2sLogin(t, e.c2s, "e.test", "eve", "eve-pw", "tablet", true)
	eve.Send("<presence/>")
	mucBothWays(t, alice, eve, "hall@conference.e.test")
	t.Log("parley <-> ejabberd multi-user chat works both ways")
}
