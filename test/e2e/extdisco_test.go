package e2e

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/extdisco"
	"github.com/parley-xmpp/parley/internal/testserver"
	"github.com/parley-xmpp/parley/server"
	"github.com/parley-xmpp/parley/wire"
)

const nsExtDisco = "urn:xmpp:extdisco:2"

const turnSecret = "test-turn-secret-0123456789"

func withTURN(c *server.Config) {
	c.ExternalServices = extdisco.Settings{Secret: turnSecret, TTL: 2 * time.Hour, Services: []extdisco.Service{
		{Type: "stun", Host: "turn.example.org", Port: 3478, Transport: "udp"},
		{Type: "turn", Host: "turn.example.org", Port: 3478, Transport: "udp", Restricted: true},
		{Type: "turns", Host: "turn.example.org", Port: 5349, Transport: "tcp", Restricted: true, Name: "TLS relay"},
	}}
}

// checkTURNCredentials verifies a restricted service's credentials the
// way coturn does with use-auth-secret.
func checkTURNCredentials(t *testing.T, svc *wire.Element, user string) {
	t.Helper()
	username, password := svc.AttrValue("username"), svc.AttrValue("password")
	exp, who, ok := strings.Cut(username, ":")
	if !ok || who != user {
		t.Fatalf("username %q, want expiry:%s", username, user)
	}
	n, err := strconv.ParseInt(exp, 10, 64)
	if err != nil {
		t.Fatalf("username %q: %v", username, err)
	}
	if d := time.Until(time.Unix(n, 0)); d < 2*time.Hour-time.Minute || d > 2*time.Hour+time.Second {
		t.Fatalf("credentials valid for %v, want the configured 2h", d)
	}
	if stamp, _ := time.Parse(time.RFC3339, svc.AttrValue("expires")); stamp.Unix() != n {
		t.Fatalf("expires %q does not match the username's %d", svc.AttrValue("expires"), n)
	}
	mac := hmac.New(sha1.New, []byte(turnSecret))
	mac.Write([]byte(username))
	if password != base64.StdEncoding.EncodeToString(mac.Sum(nil)) {
		t.Fatalf("password %q is not HMAC-SHA1(secret, username)", password)
	}
}

func TestExternalServiceDiscovery(t *testing.T) {
	t.Parallel()
	ts := testserver.Start(t, withTURN)
	alice := ts.AddUser("alice", "pw1")
	a := ts.Login("alice", "pw1", "phone")
	if !hasFeature(t, a, ts.Domain, nsExtDisco) {
		t.Fatal("extdisco:2 not advertised")
	}

	r := a.IQ("s1", "<iq type='get' id='s1' to='localhost'><services xmlns='urn:xmpp:extdisco:2'/></iq>")
	svcs := r.Child(nsExtDisco, "services").ChildrenNamed(nsExtDisco, "service")
	if r.Type != "result" || len(svcs) != 3 {
		t.Fatalf("services: %s", r.Raw)
	}
	if s := svcs[0]; s.AttrValue("type") != "stun" || s.AttrValue("host") != "turn.example.org" || s.AttrValue("port") != "3478" ||
		s.AttrValue("transport") != "udp" || s.AttrValue("username") != "" || s.HasAttr("restricted") {
		t.Fatalf("stun service: %s", s)
	}
	for _, s := range svcs[1:] {
		if s.AttrValue("restricted") != "1" {
			t.Fatalf("restricted service: %s", s)
		}
		checkTURNCredentials(t, s, alice)
	}
	if svcs[2].AttrValue("name") != "TLS relay" || svcs[2].AttrValue("transport") != "tcp" {
		t.Fatalf("turns service: %s", svcs[2])
	}

	// One type only (§4.2).
	r = a.IQ("s2", "<iq type='get' id='s2' to='localhost'><services xmlns='urn:xmpp:extdisco:2' type='turns'/></iq>")
	svcs = r.Child(nsExtDisco, "services").ChildrenNamed(nsExtDisco, "service")
	if len(svcs) != 1 || svcs[0].AttrValue("type") != "turns" || r.Child(nsExtDisco, "services").AttrValue("type") != "turns" {
		t.Fatalf("services of type turns: %s", r.Raw)
	}

	// Credentials for a named service (§4.3), with and without the port.
	r = a.IQ("c1", "<iq type='get' id='c1' to='localhost'><credentials xmlns='urn:xmpp:extdisco:2'>"+
		"<service host='turn.example.org' type='turn'/></credentials></iq>")
	svcs = r.Child(nsExtDisco, "credentials").ChildrenNamed(nsExtDisco, "service")
	if r.Type != "result" || len(svcs) != 1 {
		t.Fatalf("credentials: %s", r.Raw)
	}
	checkTURNCredentials(t, svcs[0], alice)
	r = a.IQ("c2", "<iq type='get' id='c2' to='localhost'><credentials xmlns='urn:xmpp:extdisco:2'>"+
		"<service host='turn.example.org' type='turns' port='5349'/></credentials></iq>")
	if svcs = r.Child(nsExtDisco, "credentials").ChildrenNamed(nsExtDisco, "service"); len(svcs) != 1 {
		t.Fatalf("credentials with port: %s", r.Raw)
	}

	for _, tc := range []struct{ id, payload, cond string }{
		{"e1", "<credentials xmlns='urn:xmpp:extdisco:2'><service host='other.example.org' type='turn'/></credentials>", wire.ErrItemNotFound},
		{"e2", "<credentials xmlns='urn:xmpp:extdisco:2'><service host='turn.example.org' type='turn' port='9'/></credentials>", wire.ErrItemNotFound},
		{"e3", "<credentials xmlns='urn:xmpp:extdisco:2'><service type='turn'/></credentials>", wire.ErrBadRequest},
		{"e4", "<credentials xmlns='urn:xmpp:extdisco:2'/>", wire.ErrBadRequest},
	} {
		r := a.IQ(tc.id, "<iq type='get' id='%s' to='localhost'>%s</iq>", tc.id, tc.payload)
		assertStanzaError(t, r, tc.cond)
		if strings.Contains(string(r.Raw), "password") {
			t.Fatalf("%s: error leaks credentials: %s", tc.id, r.Raw)
		}
	}
	r = a.IQ("e5", "<iq type='set' id='e5' to='localhost'><services xmlns='urn:xmpp:extdisco:2'/></iq>")
	assertStanzaError(t, r, wire.ErrBadRequest)
}

// TestExternalServiceDiscoveryStrangers: users of another local host and
// of a remote server get forbidden, and nothing that could be used.
func TestExternalServiceDiscoveryStrangers(t *testing.T) {
	t.Parallel()
	ts := testserver.Start(t, withTURN, func(c *server.Config) { c.Hosts = []string{"localhost", "other.example"} })
	ts.AddUser("alice", "pw1")
	a := ts.Login("alice", "pw1", "phone")
	for _, payload := range []string{"<services xmlns='urn:xmpp:extdisco:2'/>",
		"<credentials xmlns='urn:xmpp:extdisco:2'><service host='turn.example.org' type='turn'/></credentials>"} {
		r := a.IQ("x", "<iq type='get' id='x' to='other.example'>%s</iq>", payload)
		assertStanzaError(t, r, wire.ErrForbidden)
		if strings.Contains(string(r.Raw), "username") {
			t.Fatalf("credentials leaked to another host's user: %s", r.Raw)
		}
	}

	// A remote user asking over federation.
	a2, b := federatedPair(t, withTURN)
	_ = a2
	bc := b.Login("bob", "pw2", "laptop")
	for _, payload := range []string{"<services xmlns='urn:xmpp:extdisco:2'/>",
		"<credentials xmlns='urn:xmpp:extdisco:2'><service host='turn.example.org' type='turn'/></credentials>"} {
		bc.Send("<iq type='get' id='r' to='a.test'>%s</iq>", payload)
		r := bc.ExpectWithin("answer from a.test", 15*time.Second, func(s *wire.Stanza) bool { return s.Name == "iq" && s.ID == "r" })
		assertStanzaError(t, r, wire.ErrForbidden)
		if strings.Contains(string(r.Raw), "username") || strings.Contains(string(r.Raw), "password") {
			t.Fatalf("credentials leaked over federation: %s", r.Raw)
		}
	}

	// Unconfigured: not advertised, not answered.
	plain := testserver.Start(t)
	plain.AddUser("alice", "pw1")
	p := plain.Login("alice", "pw1", "phone")
	if hasFeature(t, p, plain.Domain, nsExtDisco) {
		t.Fatal("extdisco advertised without services")
	}
	assertStanzaError(t, p.IQ("u", "<iq type='get' id='u' to='localhost'><services xmlns='urn:xmpp:extdisco:2'/></iq>"),
		wire.ErrServiceUnavailable)
}
