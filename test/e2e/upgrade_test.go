package e2e

import (
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/parley-xmpp/parley/auth"
	"github.com/parley-xmpp/parley/internal/testserver"
	"github.com/parley-xmpp/parley/server"
	"github.com/parley-xmpp/parley/storage"
	"github.com/parley-xmpp/parley/wire"
)

const nsUpgrade, nsSCRAMUpgrade = "urn:xmpp:sasl:upgrade:0", "urn:xmpp:scram-upgrade:0"

// addUserWithout creates an account whose credentials lack the hashes
// named (storage names: "SHA-512", …), as accounts created before those
// hashes were derived have.
func addUserWithout(t *testing.T, ts *testserver.Server, user, pw string, iterations int, without ...string) string {
	t.Helper()
	creds, err := auth.DeriveCredentials(pw, iterations)
	if err != nil {
		t.Fatal(err)
	}
	creds = slices.DeleteFunc(creds, func(c storage.SCRAMCredential) bool { return slices.Contains(without, c.Hash) })
	bare := user + "@" + ts.Domain
	if err := ts.Store().CreateAccount(context.Background(), bare, creds); err != nil {
		t.Fatal(err)
	}
	return bare
}

func credential(t *testing.T, ts *testserver.Server, bare, h string) (storage.SCRAMCredential, bool) {
	t.Helper()
	creds, err := ts.Store().Credentials(context.Background(), bare)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range creds {
		if c.Hash == h {
			return c, true
		}
	}
	return storage.SCRAMCredential{}, false
}

// scramUpgrade answers XEP-0480's <salt/> with the SaltedPassword of pw
// for the task's hash; the salt and count seen go to *seen when set.
func scramUpgrade(pw string, seen *int) func(string, *wire.Element) (string, error) {
	return func(task string, data *wire.Element) (string, error) {
		s := data.Child(nsSCRAMUpgrade, "salt")
		salt, err := base64.StdEncoding.DecodeString(s.Text())
		iter, _ := strconv.Atoi(s.AttrValue("iterations"))
		if s == nil || err != nil || len(salt) < 16 || iter < auth.MinIterations {
			return "", fmt.Errorf("bad salt for %s: %s", task, data)
		}
		if seen != nil {
			*seen = iter
		}
		h, size := sha256.New, 32
		if task == "UPGR-SCRAM-SHA-512" {
			h, size = sha512.New, 64
		}
		salted, err := pbkdf2.Key(h, pw, salt, iter, size)
		if err != nil {
			return "", err
		}
		return "<hash xmlns='" + nsSCRAMUpgrade + "'>" + base64.StdEncoding.EncodeToString(salted) + "</hash>", nil
	}
}

// scramSHA512 runs SCRAM-SHA-512 over SASL2 by hand (the scripted
// client's library has no SHA-512) and reports whether the server
// accepted the password and proved it knows the credential.
func scramSHA512(t *testing.T, ts *testserver.Server, user, pw string) (iterations int, ok bool) {
	t.Helper()
	c := ts.Connect()
	defer c.Close()
	c.Features()
	nonce := rand.Text()
	first := "n=" + user + ",r=" + nonce
	c.Send("<authenticate xmlns='urn:xmpp:sasl:2' mechanism='SCRAM-SHA-512'><initial-response>%s</initial-response></authenticate>", b64("n,,"+first))
	st := c.Next()
	if st.Name != "challenge" {
		return 0, false
	}
	sf, _ := base64.StdEncoding.DecodeString(st.Tree().Text())
	attrs := map[string]string{}
	for _, kv := range strings.Split(string(sf), ",") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			attrs[k] = v
		}
	}
	salt, _ := base64.StdEncoding.DecodeString(attrs["s"])
	iterations, _ = strconv.Atoi(attrs["i"])
	salted, err := pbkdf2.Key(sha512.New, pw, salt, iterations, 64)
	if err != nil || !strings.HasPrefix(attrs["r"], nonce) {
		t.Fatalf("server-first %q: %v", sf, err)
	}
	mac := func(key []byte, s string) []byte {
		m := hmac.New(sha512.New, key)
		m.Write([]byte(s))
		return m.Sum(nil)
	}
	sum := func(b []byte) []byte { h := sha512.Sum512(b); return h[:] }
	final := "c=" + b64("n,,") + ",r=" + attrs["r"]
	msg := first + "," + string(sf) + "," + final
	ck := mac(salted, "Client Key")
	sig := mac(sum(ck), msg)
	for i := range ck {
		ck[i] ^= sig[i]
	}
	c.Send("<response xmlns='urn:xmpp:sasl:2'>%s</response>", b64(final+",p="+base64.StdEncoding.EncodeToString(ck)))
	st = c.Next()
	if st.Name != "success" {
		return iterations, false
	}
	add, _ := base64.StdEncoding.DecodeString(st.Tree().ChildText("urn:xmpp:sasl:2", "additional-data"))
	if want := "v=" + base64.StdEncoding.EncodeToString(mac(mac(salted, "Server Key"), msg)); string(add) != want {
		t.Fatalf("server signature %q, want %q", add, want)
	}
	return iterations, true
}

// TestSASL2Upgrade: XEP-0480 upgrade tasks. An account without a
// SCRAM-SHA-512 credential gets one during a SCRAM-SHA-256 login over
// SASL2 (<continue/>, <next/>, the salt, the client's SaltedPassword),
// after which SCRAM-SHA-512 works; tasks that would not improve anything
// are skipped; a token survives.
func TestSASL2Upgrade(t *testing.T) {
	ts := testserver.Start(t)
	bare := addUserWithout(t, ts, "alice", "pw1", ts.Cfg.Auth.Iterations, "SHA-512")

	c := ts.Connect()
	f := c.Features().Tree().Child("urn:xmpp:sasl:2", "authentication")
	var offered []string
	for _, u := range f.ChildrenNamed(nsUpgrade, "upgrade") {
		offered = append(offered, u.Text())
	}
	if !slices.Contains(offered, "UPGR-SCRAM-SHA-512") || !slices.Contains(offered, "UPGR-SCRAM-SHA-256") {
		t.Fatalf("upgrades offered %v in %s", offered, f)
	}
	if _, ok := scramSHA512(t, ts, "alice", "pw1"); ok {
		t.Fatal("SCRAM-SHA-512 worked before the account had the credential")
	}

	continues := 0
	iter := 0
	st, err := c.AuthenticateSASL2(testserver.SASL2{Mech: "SCRAM-SHA-256", User: "alice", Password: "pw1", UserAgent: ua1,
		Extra: "<upgrade xmlns='" + nsUpgrade + "'>UPGR-SCRAM-SHA-512</upgrade>" +
			"<upgrade xmlns='" + nsUpgrade + "'>UPGR-SCRAM-SHA-256</upgrade>" +
			"<request-token xmlns='urn:xmpp:fast:0' mechanism='HT-SHA-256-NONE'/>",
		Task:      scramUpgrade("pw1", &iter),
		Continued: func(*wire.Stanza) { continues++ }})
	if err != nil {
		t.Fatal(err)
	}
	// SHA-256 already had this count: one task ran, not two.
	if continues != 1 || iter != ts.Cfg.Auth.Iterations {
		t.Fatalf("%d continues, %d iterations", continues, iter)
	}
	if st.Tree().ChildText("urn:xmpp:sasl:2", "authorization-identifier") != bare {
		t.Fatalf("success %s", st.Raw)
	}
	token := st.Child(nsFAST, "token").AttrValue("token")
	c.Features()
	c.Close()

	if _, ok := credential(t, ts, bare, "SHA-512"); !ok {
		t.Fatal("no SHA-512 credential stored")
	}
	if _, ok := scramSHA512(t, ts, "alice", "pw1"); !ok {
		t.Fatal("SCRAM-SHA-512 login after the upgrade failed")
	}
	if _, ok := scramSHA512(t, ts, "alice", "wrong"); ok {
		t.Fatal("SCRAM-SHA-512 accepted a wrong password")
	}
	// PLAIN checks the strongest credential, now the new one.
	pc := ts.Connect()
	pc.Features()
	if _, err := pc.AuthenticateSASL2(testserver.SASL2{Mech: "PLAIN", User: "alice", Password: "pw1"}); err != nil {
		t.Fatalf("PLAIN after the upgrade: %v", err)
	}
	pc.Close()
	// Upgrading is not a password change: the token issued alongside works.
	fc, _, err := fastLogin(t, ts, "alice", ua1, "HT-SHA-256-NONE", token, "")
	if err != nil {
		t.Fatalf("FAST after the upgrade: %v", err)
	}
	fc.Close()

	// Nothing left to improve: the same request succeeds at once.
	c = ts.Connect()
	c.Features()
	if _, err := c.AuthenticateSASL2(testserver.SASL2{Mech: "SCRAM-SHA-256", User: "alice", Password: "pw1",
		Extra: "<upgrade xmlns='" + nsUpgrade + "'>UPGR-SCRAM-SHA-512</upgrade>"}); err != nil {
		t.Fatalf("no upgrade needed, yet: %v", err)
	}
	c.Close()

	// A token login proves no password: no task runs.
	bob := addUserWithout(t, ts, "bob", "pw2", ts.Cfg.Auth.Iterations, "SHA-512")
	tok := fastToken(t, ts, "bob", "pw2", ua1, "HT-SHA-256-NONE")
	fc, _, err = fastLogin(t, ts, "bob", ua1, "HT-SHA-256-NONE", tok, "<upgrade xmlns='"+nsUpgrade+"'>UPGR-SCRAM-SHA-512</upgrade>")
	if err != nil {
		t.Fatalf("FAST login with an upgrade request: %v", err)
	}
	fc.Close()
	if _, ok := credential(t, ts, bob, "SHA-512"); ok {
		t.Fatal("a token login stored a credential")
	}
}

// TestSASL2UpgradeIterations: a credential derived with fewer iterations
// than auth.iterations asks for is re-derived with the configured count.
func TestSASL2UpgradeIterations(t *testing.T) {
	ts := testserver.Start(t, func(cfg *server.Config) { cfg.Auth.Iterations = 5000 })
	bare := addUserWithout(t, ts, "alice", "pw1", auth.MinIterations)
	c := ts.Connect()
	c.Features()
	iter := 0
	if _, err := c.AuthenticateSASL2(testserver.SASL2{Mech: "SCRAM-SHA-256", User: "alice", Password: "pw1",
		Extra: "<upgrade xmlns='" + nsUpgrade + "'>UPGR-SCRAM-SHA-512</upgrade>",
		Task:  scramUpgrade("pw1", &iter)}); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if cr, _ := credential(t, ts, bare, "SHA-512"); iter != 5000 || cr.Iterations != 5000 {
		t.Fatalf("offered %d iterations, stored %d; want 5000", iter, cr.Iterations)
	}
	if cr, _ := credential(t, ts, bare, "SHA-256"); cr.Iterations != auth.MinIterations {
		t.Fatalf("SHA-256 credential changed to %d iterations", cr.Iterations)
	}
	if i, ok := scramSHA512(t, ts, "alice", "pw1"); !ok || i != 5000 {
		t.Fatalf("SCRAM-SHA-512 after the upgrade: ok %v, %d iterations", ok, i)
	}
}

// TestSASL2UpgradeFailures: out-of-order or malformed task elements fail
// the authentication and store nothing.
func TestSASL2UpgradeFailures(t *testing.T) {
	ts := testserver.Start(t)
	bare := addUserWithout(t, ts, "alice", "pw1", ts.Cfg.Auth.Iterations, "SHA-512")
	upgr := "<upgrade xmlns='" + nsUpgrade + "'>UPGR-SCRAM-SHA-512</upgrade>"
	for _, tc := range []struct {
		name string
		// answer is what the client sends on the <continue/>; ok is whether
		// <next/> is sent first (the salt then comes).
		next, answer string
	}{
		{"next names another task", "UPGR-SCRAM-SHA-256", ""},
		{"task-data before next", "", "<task-data xmlns='urn:xmpp:sasl:2'><hash xmlns='" + nsSCRAMUpgrade + "'>" + b64(strings.Repeat("x", 64)) + "</hash></task-data>"},
		{"response after the mechanism", "", "<response xmlns='urn:xmpp:sasl:2'>AAAA</response>"},
		{"no hash", "UPGR-SCRAM-SHA-512", "<task-data xmlns='urn:xmpp:sasl:2'/>"},
		{"hash not base64", "UPGR-SCRAM-SHA-512", "<task-data xmlns='urn:xmpp:sasl:2'><hash xmlns='" + nsSCRAMUpgrade + "'>%%%</hash></task-data>"},
		{"hash of the wrong length", "UPGR-SCRAM-SHA-512", "<task-data xmlns='urn:xmpp:sasl:2'><hash xmlns='" + nsSCRAMUpgrade + "'>" + b64(strings.Repeat("x", 32)) + "</hash></task-data>"},
		{"second next", "UPGR-SCRAM-SHA-512", "<next xmlns='urn:xmpp:sasl:2' task='UPGR-SCRAM-SHA-512'/>"},
	} {
		c := ts.Connect()
		c.Features()
		st, err := c.AuthenticateSASL2(testserver.SASL2{Mech: "SCRAM-SHA-256", User: "alice", Password: "pw1", Extra: upgr})
		if st == nil || st.Name != "continue" {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if tc.next != "" {
			c.Send("<next xmlns='urn:xmpp:sasl:2' task='%s'/>", tc.next)
			if tc.next == "UPGR-SCRAM-SHA-512" {
				if st := c.Next(); st.Name != "task-data" || st.Child(nsSCRAMUpgrade, "salt") == nil {
					t.Fatalf("%s: %s", tc.name, st.Raw)
				}
			}
		}
		if tc.answer != "" {
			c.Send("%s", tc.answer)
		}
		st = c.Next()
		if got := sasl2Failure(t, st, errNotSuccess(st)); got != "malformed-request" {
			t.Errorf("%s: condition %s: %s", tc.name, got, st.Raw)
		}
		c.Send("<iq type='get' id='x'><ping xmlns='urn:xmpp:ping'/></iq>")
		if se := c.StreamError(); se == nil || se.Condition != "not-authorized" {
			t.Errorf("%s: after the failure a stanza got %v, want not-authorized", tc.name, se)
		}
	}
	if _, ok := credential(t, ts, bare, "SHA-512"); ok {
		t.Fatal("a failed task stored a credential")
	}
}
