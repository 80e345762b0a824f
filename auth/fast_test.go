package auth

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/storage"
	"github.com/parley-xmpp/parley/storage/sqlite"
)

// TestSSDPVector checks the hash input against XEP-0474's example.
func TestSSDPVector(t *testing.T) {
	s := ssdpList([]string{"SCRAM-SHA-1-PLUS", "SCRAM-SHA-1"}, []string{"tls-server-end-point", "tls-exporter"})
	if s != "SCRAM-SHA-1\x1eSCRAM-SHA-1-PLUS\x1ftls-exporter\x1etls-server-end-point" {
		t.Fatalf("list %q", s)
	}
	d := sha1.Sum([]byte(s))
	if got := base64.StdEncoding.EncodeToString(d[:]); got != "G6k/rBLDqgOhRRaCuuatSDFkJ08=" {
		t.Fatalf("hash %s, want the XEP's G6k/rBLDqgOhRRaCuuatSDFkJ08=", got)
	}
	if ssdpList([]string{"PLAIN", "SCRAM-SHA-256"}, nil) != "PLAIN\x1eSCRAM-SHA-256" {
		t.Fatal("without XEP-0440 there is no 0x1F part")
	}
}

// TestSSDPInExchange: the server-first-message carries h, and a client
// whose AuthMessage includes it (as RFC 5802 says for any attribute) logs
// in; mellium, which ignores h, too.
func TestSSDPInExchange(t *testing.T) {
	srv, _ := newTestServer(t, Config{AllowPlain: true})
	ctx := context.Background()
	mechs := srv.Mechanisms(true, ChannelBindings{})
	neg, err := srv.Start(ctx, "SCRAM-SHA-256", testDomain, true, ChannelBindings{})
	if err != nil {
		t.Fatal(err)
	}
	neg.ProtectDowngrade(mechs, nil)
	c := newTestClient("SHA-256", "user", testPass, "n,,", nil)
	out, _, err := neg.Step(ctx, c.clientFirst())
	if err != nil {
		t.Fatal(err)
	}
	d := sha256.Sum256([]byte(ssdpList(mechs, nil)))
	if !strings.HasSuffix(string(out), ",h="+base64.StdEncoding.EncodeToString(d[:])) {
		t.Fatalf("server-first without the SSDP hash: %s", out)
	}
	final, err := c.clientFinal(out)
	if err != nil {
		t.Fatal(err)
	}
	out, done, err := neg.Step(ctx, final)
	if err != nil || !done || c.checkServerFinal(out) != nil {
		t.Fatalf("login with SSDP: %v %v", err, c.checkServerFinal(out))
	}
	// PLAIN has nothing to sign.
	p, err := srv.Start(ctx, "PLAIN", testDomain, true, ChannelBindings{})
	if err != nil {
		t.Fatal(err)
	}
	p.ProtectDowngrade(mechs, nil)
	if _, done, err := p.Step(ctx, []byte("\x00user\x00"+testPass)); err != nil || !done {
		t.Fatalf("PLAIN: %v", err)
	}
}

// TestHTKeyEquivalence is what storing only the digest relies on: HMAC
// hashes keys longer than its block, so the digest verifies the token.
func TestHTKeyEquivalence(t *testing.T) {
	for range 20 {
		tok, err := (&FAST{cfg: FASTConfig{Lifetime: time.Hour}}).newToken()
		if err != nil {
			t.Fatal(err)
		}
		if len(tok) <= sha256.BlockSize {
			t.Fatalf("token of %d bytes is not longer than the HMAC block", len(tok))
		}
		m := hmac.New(sha256.New, []byte(tok))
		m.Write([]byte("Initiator"))
		if !bytes.Equal(m.Sum(nil), htMAC(tokenDigest(tok), "Initiator", nil)) {
			t.Fatal("HMAC with the digest differs from HMAC with the token")
		}
	}
}

const testUA = "d4565fa7-4d72-4749-b3d3-740edbf87770"

// fastEnv is a FAST service on a real SQLite store with user@example.net.
type fastEnv struct {
	t     testing.TB
	srv   *Server
	fast  *FAST
	store *sqlite.Store
	now   time.Time
}

func newFASTEnv(t *testing.T) *fastEnv { return newFASTEnvB(t) }

func newFASTEnvB(t testing.TB) *fastEnv {
	t.Helper()
	st, err := sqlite.Open(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	creds, _ := DeriveCredentials(testPass, MinIterations)
	for _, u := range []string{"user@" + testDomain, "other@" + testDomain} {
		if err := st.CreateAccount(t.Context(), u, creds); err != nil {
			t.Fatal(err)
		}
	}
	e := &fastEnv{t: t, srv: NewServer(Config{}, st), store: st, now: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
	e.fast = NewFAST(FASTConfig{Lifetime: 14 * 24 * time.Hour}, st)
	e.fast.now = func() time.Time { return e.now }
	return e
}

// passwordLogin stands for a successful SCRAM login that requests a token.
func (e *fastEnv) passwordLogin(user, ua, mech string) string {
	e.t.Helper()
	c := newTestClient("SHA-256", user, testPass, "n,,", nil)
	neg, err := runTestClient(e.t, e.srv, "SCRAM-SHA-256", c, true, ChannelBindings{})
	if err != nil {
		e.t.Fatal(err)
	}
	tok, err := e.fast.Complete(e.t.Context(), neg, user+"@"+testDomain, UserAgent{ID: ua, Software: "test"}, mech, false)
	if err != nil || tok == nil {
		e.t.Fatalf("token request: %v %v", tok, err)
	}
	if !tok.Expiry.Equal(e.now.Add(14 * 24 * time.Hour)) {
		e.t.Fatalf("expiry %v", tok.Expiry)
	}
	return tok.Token
}

// tokenLogin runs an HT exchange; it returns the negotiation (for
// Complete) or the failure.
func (e *fastEnv) tokenLogin(user, ua, mech, token string, cb ChannelBindings, clientCB []byte) (*Negotiation, error) {
	e.t.Helper()
	neg, err := e.fast.Start(e.srv, mech, testDomain, ua, true, cb)
	if err != nil {
		return nil, err
	}
	m := hmac.New(sha256.New, []byte(token))
	m.Write([]byte("Initiator"))
	m.Write(clientCB)
	out, done, err := neg.Step(e.t.Context(), append([]byte(user+"\x00"), m.Sum(nil)...))
	if err != nil {
		return nil, err
	}
	r := hmac.New(sha256.New, []byte(token))
	r.Write([]byte("Responder"))
	r.Write(clientCB)
	if !done || !hmac.Equal(out, r.Sum(nil)) {
		e.t.Fatalf("server answer %x does not prove the token", out)
	}
	return neg, nil
}

func TestFASTLifecycle(t *testing.T) {
	e := newFASTEnv(t)
	ctx := t.Context()
	bare := "user@" + testDomain
	ua := UserAgent{ID: testUA}
	tok1 := e.passwordLogin("user", testUA, MechHTNone)

	// A token logs in, and using it moves it to the current slot.
	neg, err := e.tokenLogin("user", testUA, MechHTNone, tok1, ChannelBindings{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if neg.Username() != "user" {
		t.Fatalf("Username %q", neg.Username())
	}
	if tok, err := e.fast.Complete(ctx, neg, bare, ua, "", false); err != nil || tok != nil {
		t.Fatalf("fresh token rotated: %v %v", tok, err)
	}
	if c, _ := e.store.FASTClient(ctx, bare, testUA); c.New != nil || c.Current == nil {
		t.Fatalf("slots after use: %+v", c)
	}

	// Someone else's token, name, client or mechanism: not-authorized.
	other := e.passwordLogin("other", testUA, MechHTNone)
	for _, tc := range []struct{ user, ua, mech, token string }{
		{"user", testUA, MechHTNone, other},
		{"other", testUA, MechHTNone, tok1},
		{"user", "4a0f9c3e-0d6f-4b43-9c4e-1c2a2f4f8f11", MechHTNone, tok1},
		{"nobody", testUA, MechHTNone, tok1},
		{"user", testUA, MechHTNone, tok1[:len(tok1)-1] + "x"},
	} {
		_, err := e.tokenLogin(tc.user, tc.ua, tc.mech, tc.token, ChannelBindings{}, nil)
		wantCondition(t, err, CondNotAuthorized)
	}

	// Rotation: once RotateAfter has passed, a login hands out a new token;
	// the old one stays valid until the new one is used, then is dead.
	e.now = e.now.Add(25 * time.Hour)
	neg, err = e.tokenLogin("user", testUA, MechHTNone, tok1, ChannelBindings{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	rot, err := e.fast.Complete(ctx, neg, bare, ua, "", false)
	if err != nil || rot == nil || rot.Token == tok1 {
		t.Fatalf("no rotation after a day: %v %v", rot, err)
	}
	// Connection lost before the client saw it: the old token still works,
	// and no second new token is made while one waits.
	neg, err = e.tokenLogin("user", testUA, MechHTNone, tok1, ChannelBindings{}, nil)
	if err != nil {
		t.Fatalf("old token before the new one was used: %v", err)
	}
	if tok, _ := e.fast.Complete(ctx, neg, bare, ua, "", false); tok != nil {
		t.Fatal("rotated again while a new token waits")
	}
	neg, err = e.tokenLogin("user", testUA, MechHTNone, rot.Token, ChannelBindings{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.fast.Complete(ctx, neg, bare, ua, "", false); err != nil {
		t.Fatal(err)
	}
	_, err = e.tokenLogin("user", testUA, MechHTNone, tok1, ChannelBindings{}, nil)
	wantCondition(t, err, CondNotAuthorized) // replayed after its successor was used

	// Expired: credentials-expired, so the client falls back to its password.
	e.now = e.now.Add(15 * 24 * time.Hour)
	_, err = e.tokenLogin("user", testUA, MechHTNone, rot.Token, ChannelBindings{}, nil)
	wantCondition(t, err, CondCredentialsExpired)

	// Invalidation (log out): the token dies, nothing new is issued.
	tok2 := e.passwordLogin("user", testUA, MechHTNone)
	neg, err = e.tokenLogin("user", testUA, MechHTNone, tok2, ChannelBindings{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tok, err := e.fast.Complete(ctx, neg, bare, ua, "", true); err != nil || tok != nil {
		t.Fatalf("invalidate: %v %v", tok, err)
	}
	_, err = e.tokenLogin("user", testUA, MechHTNone, tok2, ChannelBindings{}, nil)
	wantCondition(t, err, CondNotAuthorized)

	// A password change ends every token.
	tok3 := e.passwordLogin("user", testUA, MechHTNone)
	creds, _ := DeriveCredentials("new password", MinIterations)
	if err := e.store.SetCredentials(ctx, bare, creds); err != nil {
		t.Fatal(err)
	}
	_, err = e.tokenLogin("user", testUA, MechHTNone, tok3, ChannelBindings{}, nil)
	wantCondition(t, err, CondNotAuthorized)
}

func TestFASTChannelBinding(t *testing.T) {
	e := newFASTEnv(t)
	ccs, scs, leaf := tlsPair(t, tls.VersionTLS13)
	cb := serverBindings(scs, leaf)
	if got := e.fast.Mechanisms(cb); strings.Join(got, " ") != "HT-SHA-256-EXPR HT-SHA-256-ENDP HT-SHA-256-NONE" {
		t.Fatalf("TLS 1.3 mechanisms %v", got)
	}
	_, scs12, _ := tlsPair(t, tls.VersionTLS12)
	if got := e.fast.Mechanisms(BindingsFromTLS(&scs12)); strings.Join(got, " ") != "HT-SHA-256-EXPR HT-SHA-256-UNIQ HT-SHA-256-NONE" {
		t.Fatalf("TLS 1.2 mechanisms %v", got)
	}
	exporter, _ := ccs.ExportKeyingMaterial("EXPORTER-Channel-Binding", nil, 32)
	tok := e.passwordLogin("user", testUA, MechHTExpr)
	if _, err := e.tokenLogin("user", testUA, MechHTExpr, tok, cb, exporter); err != nil {
		t.Fatal(err)
	}
	// Another connection's binding data, or none: refused.
	other, _, _ := tlsPair(t, tls.VersionTLS13)
	otherExp, _ := other.ExportKeyingMaterial("EXPORTER-Channel-Binding", nil, 32)
	_, err := e.tokenLogin("user", testUA, MechHTExpr, tok, cb, otherExp)
	wantCondition(t, err, CondNotAuthorized)
	// The token is bound to -EXPR: -NONE and -ENDP do not take it.
	_, err = e.tokenLogin("user", testUA, MechHTNone, tok, cb, nil)
	wantCondition(t, err, CondNotAuthorized)
	_, err = e.tokenLogin("user", testUA, MechHTEndP, tok, cb, ServerEndPoint(leaf))
	wantCondition(t, err, CondNotAuthorized)
	// A mechanism whose binding the connection lacks is not offered.
	_, err = e.fast.Start(e.srv, MechHTExpr, testDomain, testUA, true, ChannelBindings{})
	wantCondition(t, err, CondInvalidMechanism)
}

func TestFASTMalformed(t *testing.T) {
	e := newFASTEnv(t)
	ctx := t.Context()
	_, err := e.fast.Start(e.srv, MechHTNone, testDomain, "", true, ChannelBindings{})
	wantCondition(t, err, CondMalformedRequest) // no user-agent id
	_, err = e.fast.Start(e.srv, MechHTNone, testDomain, testUA, false, ChannelBindings{})
	wantCondition(t, err, CondEncryptionRequired)
	_, err = e.fast.Start(e.srv, "HT-MD5-NONE", testDomain, testUA, true, ChannelBindings{})
	wantCondition(t, err, CondInvalidMechanism)
	var none *FAST
	if none.Mechanisms(ChannelBindings{}) != nil {
		t.Fatal("a disabled service offers mechanisms")
	}
	_, err = none.Start(e.srv, MechHTNone, testDomain, testUA, true, ChannelBindings{})
	wantCondition(t, err, CondInvalidMechanism)
	for _, in := range []string{"", "user", "user\x00", "user\x00short", "\x00" + strings.Repeat("x", 32),
		"us\x00er\x00" + strings.Repeat("x", 31), strings.Repeat("x", maxMessage+1)} {
		neg, err := e.fast.Start(e.srv, MechHTNone, testDomain, testUA, true, ChannelBindings{})
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = neg.Step(ctx, []byte(in))
		wantCondition(t, err, CondMalformedRequest)
	}
	// No token for an account that exists or not: the same answer.
	for _, user := range []string{"user", "nobody", "bad@name"} {
		neg, _ := e.fast.Start(e.srv, MechHTNone, testDomain, testUA, true, ChannelBindings{})
		_, _, err := neg.Step(ctx, []byte(user+"\x00"+strings.Repeat("x", 32)))
		wantCondition(t, err, CondNotAuthorized)
	}
	// A client without a user-agent id gets no token.
	c := newTestClient("SHA-256", "user", testPass, "n,,", nil)
	neg, err := runTestClient(t, e.srv, "SCRAM-SHA-256", c, true, ChannelBindings{})
	if err != nil {
		t.Fatal(err)
	}
	if tok, err := e.fast.Complete(ctx, neg, "user@"+testDomain, UserAgent{}, MechHTNone, false); tok != nil || err != nil {
		t.Fatalf("token without a client id: %v %v", tok, err)
	}
	if list, _ := e.store.FASTClients(ctx, "user@"+testDomain); len(list) != 0 {
		t.Fatalf("stored %+v", list)
	}
	var _ storage.FASTTokens = e.store
}
