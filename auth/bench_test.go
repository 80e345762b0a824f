package auth

import (
	"context"
	"testing"

	"mellium.im/sasl"

	"github.com/parley-xmpp/parley/storage"
)

const benchIterations = 10000

// BenchmarkSCRAMSHA256Login is a whole login as a client sees it, both ends
// in-process: the client's PBKDF2 dominates.
func BenchmarkSCRAMSHA256Login(b *testing.B) {
	creds, err := DeriveCredentials(testPass, benchIterations)
	if err != nil {
		b.Fatal(err)
	}
	src := &memSource{}
	src.creds = map[string][]storage.SCRAMCredential{"user@" + testDomain: creds}
	srv := NewServer(Config{}, src)
	ctx := context.Background()
	cred := sasl.Credentials(func() ([]byte, []byte, []byte) { return []byte("user"), []byte(testPass), nil })
	for b.Loop() {
		client := sasl.NewClient(sasl.ScramSha256, cred)
		neg, err := srv.Start(ctx, "SCRAM-SHA-256", testDomain, false, ChannelBindings{})
		if err != nil {
			b.Fatal(err)
		}
		_, msg, _ := client.Step(nil)
		for done := false; !done; {
			var out []byte
			if out, done, err = neg.Step(ctx, msg); err != nil {
				b.Fatal(err)
			}
			if _, msg, err = client.Step(out); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkSCRAMSHA256Server is the server's share of the same login: no
// PBKDF2, just the lookup and a few HMACs.
func BenchmarkSCRAMSHA256Server(b *testing.B) {
	creds, err := DeriveCredentials(testPass, benchIterations)
	if err != nil {
		b.Fatal(err)
	}
	src := &memSource{creds: map[string][]storage.SCRAMCredential{"user@" + testDomain: creds}}
	srv := NewServer(Config{}, src)
	srv.nonce = func() string { return "fixed-server-nonce-for-the-benchmark" }
	ctx := context.Background()
	c := newTestClient("SHA-256", "user", testPass, "n,,", nil)
	first := c.clientFirst()
	neg, _ := srv.Start(ctx, "SCRAM-SHA-256", testDomain, false, ChannelBindings{})
	out, _, err := neg.Step(ctx, first)
	if err != nil {
		b.Fatal(err)
	}
	final, err := c.clientFinal(out)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		neg, _ := srv.Start(ctx, "SCRAM-SHA-256", testDomain, false, ChannelBindings{})
		if _, _, err := neg.Step(ctx, first); err != nil {
			b.Fatal(err)
		}
		if _, done, err := neg.Step(ctx, final); err != nil || !done {
			b.Fatal(err)
		}
	}
}

// BenchmarkFASTLogin is a whole XEP-0484 token login, both ends in-process,
// against a real SQLite store: one HMAC on the client, a lookup, two HMACs
// and the bookkeeping write on the server. Compare with
// BenchmarkSCRAMSHA256Login: the client's PBKDF2 is what a token saves.
func BenchmarkFASTLogin(b *testing.B) {
	e := newFASTEnvB(b)
	tok := e.passwordLogin("user", testUA, MechHTNone)
	ctx := context.Background()
	ua := UserAgent{ID: testUA}
	for b.Loop() {
		neg, err := e.tokenLogin("user", testUA, MechHTNone, tok, ChannelBindings{}, nil)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := e.fast.Complete(ctx, neg, "user@"+testDomain, ua, "", false); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFASTServer is the server's share of a token login without the
// bookkeeping write (lookup and HMACs), next to BenchmarkSCRAMSHA256Server.
func BenchmarkFASTServer(b *testing.B) {
	e := newFASTEnvB(b)
	tok := e.passwordLogin("user", testUA, MechHTNone)
	ctx := context.Background()
	msg := append([]byte("user\x00"), htMAC(tokenDigest(tok), "Initiator", nil)...)
	for b.Loop() {
		neg, err := e.fast.Start(e.srv, MechHTNone, testDomain, testUA, true, ChannelBindings{})
		if err != nil {
			b.Fatal(err)
		}
		if _, done, err := neg.Step(ctx, msg); err != nil || !done {
			b.Fatal(err)
		}
	}
}
