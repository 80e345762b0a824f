package register

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/internal/modtest"
	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/wire"
)

const (
	addr1 = "192.0.2.1:40000"
	addr2 = "198.51.100.7:40000"
)

func reg(id, user, password string) string {
	return fmt.Sprintf("<iq type='set' id='%s'><query xmlns='jabber:iq:register'><username>%s</username><password>%s</password></query></iq>", id, user, password)
}

func TestStreamFeature(t *testing.T) {
	for _, open := range []bool{true, false} {
		e := setup(t, Config{Settings: Settings{Open: open}})
		fs := e.Registry.StreamFeatures()
		if len(fs) != 1 {
			t.Fatalf("%d stream features", len(fs))
		}
		if f := fs[0](true); f != nil {
			t.Errorf("open=%v: offered after authentication: %s", open, f)
		}
		f := fs[0](false)
		switch {
		case open && (f == nil || f.String() != "<register xmlns='http://jabber.org/features/iq-register'/>"):
			t.Errorf("open: feature %v", f)
		case !open && f != nil:
			t.Errorf("closed: feature %s", f)
		}
	}
}

func TestPreAuthGet(t *testing.T) {
	e := setup(t, Config{Settings: Settings{Open: true}})
	e.expectPre("<iq type='get' id='g1'><query xmlns='jabber:iq:register'/></iq>", addr1, true,
		"<iq type='result' id='g1'><query xmlns='jabber:iq:register'><instructions>"+Instructions+"</instructions><username/><password/></query></iq>")
	e.expectPre("<iq type='get' id='g2' to='example.org'><query xmlns='jabber:iq:register'/></iq>", addr1, true,
		"<iq from='example.org' type='result' id='g2'><query xmlns='jabber:iq:register'><instructions>"+Instructions+"</instructions><username/><password/></query></iq>")
	// No TLS: refused, the password would travel in clear text.
	e.expectPre("<iq type='get' id='g3'><query xmlns='jabber:iq:register'/></iq>", addr1, false,
		"<iq type='error' id='g3'><error type='auth'><not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"+
			"<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas' xml:lang='en'>registration requires an encrypted connection (STARTTLS)</text></error></iq>")
	// Addressed to someone else, or a client-supplied 'from'.
	if res := e.preAuth("<iq type='get' id='g4' to='other.example'><query xmlns='jabber:iq:register'/></iq>", addr1, true); modtest.ErrCondition(res) != "service-unavailable" {
		t.Errorf("to other domain: %s", res.Raw)
	}
	e.expectPre("<iq type='get' id='g5' from='admin@example.org/x'><query xmlns='jabber:iq:register'/></iq>", addr1, true,
		"<iq type='result' id='g5'><query xmlns='jabber:iq:register'><instructions>"+Instructions+"</instructions><username/><password/></query></iq>")
	// Responses from the client are not answered.
	if res := e.preAuth("<iq type='result' id='g6'><query xmlns='jabber:iq:register'/></iq>", addr1, true); res != nil {
		t.Errorf("answered a result: %s", res.Raw)
	}
	// A domain we do not serve.
	res := e.mod.PreAuth(context.Background(), wire.MustParse("<iq type='get' id='g7'><query xmlns='jabber:iq:register'/></iq>"), "other.example", addr1, true)
	if modtest.ErrCondition(res) != "service-unavailable" {
		t.Errorf("unknown domain: %s", res.Raw)
	}

	closed := setup(t, Config{Settings: Settings{Open: false}})
	closed.expectPre("<iq type='get' id='c1'><query xmlns='jabber:iq:register'/></iq>", addr1, true,
		"<iq type='error' id='c1'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>")
}

func TestPreAuthRegister(t *testing.T) {
	e := setup(t, Config{Settings: Settings{Open: true}})
	e.expectPre(reg("r1", "alice", "correct horse"), addr1, true, "<iq type='result' id='r1'/>")
	if !e.exists("alice@example.org") || !e.passwordIs("alice@example.org", "correct horse") {
		t.Fatal("account not created with the password")
	}
	// Conflict, also after case mapping (UsernameCaseMapped).
	for _, user := range []string{"alice", "ALICE", "Alice"} {
		res := e.preAuth(reg("r2", user, "other"), addr2, true)
		if modtest.ErrCondition(res) != "conflict" || errText(res) != "this username is taken" {
			t.Errorf("%s: %s", user, res.Raw)
		}
	}
	if !e.passwordIs("alice@example.org", "correct horse") {
		t.Fatal("conflicting registration changed the password")
	}
	// A mapped username is stored in its canonical form.
	e.expectPre(reg("r3", "Bob", "pw"), addr1, true, "<iq type='result' id='r3'/>")
	if !e.exists("bob@example.org") {
		t.Fatal("Bob not stored as bob")
	}
	// With to='domain' the answer comes from the domain.
	e.expectPre("<iq type='set' id='r4' to='example.org'><query xmlns='jabber:iq:register'><username>carol</username><password>pw</password></query></iq>", addr2, true,
		"<iq from='example.org' type='result' id='r4'/>")

	for _, tc := range []struct{ name, req string }{
		{"space", reg("n1", "al ice", "pw")},
		{"at sign", reg("n2", "a@b", "pw")},
		{"slash", reg("n3", "a/b", "pw")},
		{"empty username", reg("n4", "", "pw")},
		{"empty password", reg("n5", "dave", "")},
		{"no password", "<iq type='set' id='n6'><query xmlns='jabber:iq:register'><username>dave</username></query></iq>"},
		{"no username", "<iq type='set' id='n7'><query xmlns='jabber:iq:register'><password>pw</password></query></iq>"},
		{"control character in password", reg("n8", "dave", "p\u0085w")},
		{"too long", reg("n9", strings.Repeat("a", 1100), "pw")},
	} {
		res := e.preAuth(tc.req, addr1, true)
		if modtest.ErrCondition(res) != "not-acceptable" {
			t.Errorf("%s: %s", tc.name, res.Raw)
		}
		if res != nil && strings.Contains(string(res.Raw), "<password") {
			t.Errorf("%s: the error echoes the request: %s", tc.name, res.Raw)
		}
	}
	if e.exists("dave@example.org") {
		t.Error("dave created despite errors")
	}
	// Removing an account needs authentication.
	res := e.preAuth("<iq type='set' id='x1'><query xmlns='jabber:iq:register'><remove/></query></iq>", addr1, true)
	if modtest.ErrCondition(res) != "unexpected-request" || !e.exists("alice@example.org") {
		t.Errorf("pre-auth remove: %s", res.Raw)
	}
	// No TLS.
	e.expectPre(reg("x2", "erin", "pw"), addr1, false,
		"<iq type='error' id='x2'><error type='auth'><not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"+
			"<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas' xml:lang='en'>registration requires an encrypted connection (STARTTLS)</text></error></iq>")
	if e.exists("erin@example.org") {
		t.Error("registered without TLS")
	}
}

func TestPreAuthClosed(t *testing.T) {
	e := setup(t, Config{Settings: Settings{Open: false}})
	e.expectPre(reg("c1", "alice", "pw"), addr1, true,
		"<iq type='error' id='c1'><error type='cancel'><not-allowed xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"+
			"<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas' xml:lang='en'>registration is closed on this server</text></error></iq>")
	if e.exists("alice@example.org") {
		t.Fatal("registered while closed")
	}
}

func TestRateLimit(t *testing.T) {
	e := setup(t, Config{Settings: Settings{Open: true, PerAddressPerHour: 2}})
	rateErr := "<iq type='error' id='%s'><error type='wait'><resource-constraint xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>" +
		"<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas' xml:lang='en'>too many registrations from your address; try again later</text></error></iq>"
	e.expectPre(reg("a", "u1", "pw"), "192.0.2.1:1000", true, "<iq type='result' id='a'/>")
	// Failures do not use up the allowance.
	if res := e.preAuth(reg("b", "u1", "pw"), "192.0.2.1:1001", true); modtest.ErrCondition(res) != "conflict" {
		t.Fatalf("conflict: %s", res.Raw)
	}
	e.clock = e.clock.Add(30 * time.Minute)
	e.expectPre(reg("c", "u2", "pw"), "192.0.2.1:1002", true, "<iq type='result' id='c'/>")
	// The third within the hour, whatever the port.
	e.expectPre(reg("d", "u3", "pw"), "192.0.2.1:1003", true, fmt.Sprintf(rateErr, "d"))
	if e.exists("u3@example.org") {
		t.Fatal("u3 created over the limit")
	}
	// Another address is not affected; an IPv4-mapped IPv6 form of the
	// limited one is the same address.
	e.expectPre(reg("e", "u4", "pw"), addr2, true, "<iq type='result' id='e'/>")
	e.expectPre(reg("f", "u5", "pw"), "[::ffff:192.0.2.1]:1004", true, fmt.Sprintf(rateErr, "f"))
	// An hour after the first, one slot is free again.
	e.clock = e.clock.Add(30 * time.Minute)
	e.expectPre(reg("g", "u3", "pw"), "192.0.2.1:1005", true, "<iq type='result' id='g'/>")
	e.expectPre(reg("h", "u6", "pw"), "192.0.2.1:1006", true, fmt.Sprintf(rateErr, "h"))

	// IPv6: one /64 is one address.
	e.expectPre(reg("i", "v1", "pw"), "[2001:db8:1:2::1]:5222", true, "<iq type='result' id='i'/>")
	e.expectPre(reg("j", "v2", "pw"), "[2001:db8:1:2:ffff::9]:5222", true, "<iq type='result' id='j'/>")
	e.expectPre(reg("k", "v3", "pw"), "[2001:db8:1:2::77]:5222", true, fmt.Sprintf(rateErr, "k"))
	e.expectPre(reg("l", "v3", "pw"), "[2001:db8:1:3::1]:5222", true, "<iq type='result' id='l'/>")
}

func TestRateLimitConcurrent(t *testing.T) {
	e := setup(t, Config{Settings: Settings{Open: true, PerAddressPerHour: 3}})
	var wg sync.WaitGroup
	results := make([]*wire.Stanza, 12)
	for i := range results {
		wg.Go(func() {
			results[i] = e.mod.PreAuth(context.Background(), wire.MustParse(reg("c", fmt.Sprintf("user%d", i), "pw")), domain, "192.0.2.9:1", true)
		})
	}
	wg.Wait()
	ok := 0
	for _, r := range results {
		switch {
		case r.Type == "result":
			ok++
		case modtest.ErrCondition(r) != "resource-constraint":
			t.Errorf("unexpected reply %s", r.Raw)
		}
	}
	accounts, err := e.Store.ListAccounts(context.Background(), domain)
	if err != nil {
		t.Fatal(err)
	}
	if ok != 3 || len(accounts) != 3 {
		t.Fatalf("%d successes, %d accounts; want 3", ok, len(accounts))
	}
}

func TestLimiterBounded(t *testing.T) {
	l := newLimiter(1, 3)
	now := time.Unix(1e9, 0)
	for i := range 10 {
		if ok, _ := l.reserve(fmt.Sprint("k", i), now.Add(time.Duration(i)*time.Second)); !ok {
			t.Fatalf("k%d refused", i)
		}
		if len(l.seen) > 3 {
			t.Fatalf("%d keys tracked", len(l.seen))
		}
	}
	// The most recent keys are kept, the oldest evicted.
	if ok, _ := l.reserve("k9", now.Add(20*time.Second)); ok {
		t.Error("k9 allowed twice")
	}
	if ok, _ := l.reserve("k0", now.Add(20*time.Second)); !ok {
		t.Error("k0 should have been evicted")
	}
	// Release gives the slot back.
	l = newLimiter(1, 3)
	ok, release := l.reserve("a", now)
	if !ok {
		t.Fatal("refused")
	}
	release()
	if ok, _ := l.reserve("a", now); !ok {
		t.Error("released slot not free")
	}
	if len(l.seen) != 1 {
		t.Errorf("%d keys", len(l.seen))
	}
}

func TestAddressKey(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1:5222":               "192.0.2.1",
		"192.0.2.1":                    "192.0.2.1",
		"[::ffff:192.0.2.1]:1":         "192.0.2.1",
		"[2001:db8::1]:5222":           "2001:db8::/64",
		"[fe80::1%eth0]:5222":          "fe80::/64",
		"2001:db8:0:0:1234:5678:9:abc": "2001:db8::/64",
		"not an address":               "not an address",
	} {
		if got := addressKey(in); got != want {
			t.Errorf("addressKey(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestAuthenticated(t *testing.T) {
	e := setup(t, Config{Settings: Settings{Open: false}}) // account management works while registration is closed
	ctx := context.Background()
	for _, u := range []string{"alice", "mallory"} {
		creds, _ := derive("old")
		if err := e.Store.CreateAccount(ctx, u+"@example.org", creds); err != nil {
			t.Fatal(err)
		}
	}
	a := e.Connect("alice@example.org/a")
	m := e.Connect("mallory@example.org/m")

	registered := "<query xmlns='jabber:iq:register'><registered/><username>alice</username></query></iq>"
	e.ExpectReply(a, "<iq type='get' id='g1'><query xmlns='jabber:iq:register'/></iq>",
		"<iq to='alice@example.org/a' type='result' id='g1'>"+registered)
	e.ExpectReply(a, "<iq type='get' id='g2' to='example.org'><query xmlns='jabber:iq:register'/></iq>",
		"<iq from='example.org' to='alice@example.org/a' type='result' id='g2'>"+registered)

	// Password change, with no 'to' and to the server (XEP-0077 §3.3).
	e.ExpectReply(a, reg("p1", "alice", "new one"), "<iq to='alice@example.org/a' type='result' id='p1'/>")
	if !e.passwordIs("alice@example.org", "new one") {
		t.Fatal("password not changed")
	}
	e.ExpectReply(a, "<iq type='set' id='p2' to='example.org'><query xmlns='jabber:iq:register'><username>Alice</username><password>newer</password></query></iq>",
		"<iq from='example.org' to='alice@example.org/a' type='result' id='p2'/>")
	if !e.passwordIs("alice@example.org", "newer") {
		t.Fatal("password not changed via the domain")
	}
	// Empty password: kept (XEP-0077 §3.3).
	if res := e.IQ(a, reg("p3", "alice", "")); modtest.ErrCondition(res) != "bad-request" {
		t.Errorf("empty password: %s", res.Raw)
	}
	if res := e.IQ(a, "<iq type='set' id='p4'><query xmlns='jabber:iq:register'><password>x</password></query></iq>"); modtest.ErrCondition(res) != "bad-request" {
		t.Errorf("no username: %s", res.Raw)
	}
	if !e.passwordIs("alice@example.org", "newer") {
		t.Fatal("password changed by a rejected request")
	}

	// Mallory cannot change alice's password nor remove her account, in
	// any addressing.
	for _, req := range []string{
		reg("m1", "alice", "pwned"),
		"<iq type='set' id='m2' to='example.org'><query xmlns='jabber:iq:register'><username>alice</username><password>pwned</password></query></iq>",
		"<iq type='set' id='m3' to='alice@example.org'><query xmlns='jabber:iq:register'><username>alice</username><password>pwned</password></query></iq>",
		"<iq type='set' id='m4' to='alice@example.org'><query xmlns='jabber:iq:register'><remove/></query></iq>",
		"<iq type='get' id='m5' to='alice@example.org'><query xmlns='jabber:iq:register'/></iq>",
	} {
		if res := e.IQ(m, req); modtest.ErrCondition(res) != "forbidden" {
			t.Errorf("%s: %s", req, res.Raw)
		}
	}
	if !e.passwordIs("alice@example.org", "newer") || !e.exists("alice@example.org") {
		t.Fatal("mallory changed alice's account")
	}
	// A remote entity cannot use the server's registration.
	forged := wire.MustParse("<iq type='set' id='f1' from='eve@remote.example/x' to='example.org'><query xmlns='jabber:iq:register'><username>alice</username><password>pwned</password></query></iq>")
	e.Router.Route(ctx, forged, module.Origin{Kind: module.FromServer})
	if !e.passwordIs("alice@example.org", "newer") {
		t.Fatal("remote entity changed alice's password")
	}

	// Remove: <remove/> must be alone.
	if res := e.IQ(m, "<iq type='set' id='r1'><query xmlns='jabber:iq:register'><remove/><username>mallory</username></query></iq>"); modtest.ErrCondition(res) != "bad-request" {
		t.Errorf("remove with extras: %s", res.Raw)
	}
	e.ExpectReply(m, "<iq type='set' id='r2'><query xmlns='jabber:iq:register'><remove/></query></iq>",
		"<iq to='mallory@example.org/m' type='result' id='r2'/>")
	if e.exists("mallory@example.org") {
		t.Fatal("mallory still exists")
	}
	e.ExpectReply(a, "<iq type='set' id='r3' to='example.org'><query xmlns='jabber:iq:register'><remove/></query></iq>",
		"<iq from='example.org' to='alice@example.org/a' type='result' id='r3'/>")
	if e.exists("alice@example.org") {
		t.Fatal("alice still exists")
	}
	// A second remove (the session outlived its account).
	if res := e.IQ(a, "<iq type='set' id='r4'><query xmlns='jabber:iq:register'><remove/></query></iq>"); modtest.ErrCondition(res) != "item-not-found" {
		t.Errorf("second remove: %s", res.Raw)
	}
}

func TestDeriveRequired(t *testing.T) {
	m := New(Config{Settings: Settings{Open: true}}, nil)
	if err := m.Register(module.NewRegistry([]string{domain}, nil, nil)); err == nil {
		t.Fatal("Register without Derive succeeded")
	}
}
