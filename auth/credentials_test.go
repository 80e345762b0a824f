package auth

import (
	"bytes"
	"context"
	"encoding/base64"
	"testing"

	"github.com/parley-xmpp/parley/storage"
)

// TestRFCVectors replays the example exchanges of RFC 5802 §5 (SCRAM-SHA-1)
// and RFC 7677 §3 (SCRAM-SHA-256) against keys derived from their salt:
// the server must accept the RFC's proof (so StoredKey is right) and answer
// with the RFC's signature (so ServerKey is right).
func TestRFCVectors(t *testing.T) {
	vectors := []struct {
		hash, salt, snonce             string
		clientFirst, serverFirst       string
		clientFinal, serverFinal, mech string
	}{{
		hash: "SHA-1", mech: "SCRAM-SHA-1", salt: "QSXCR+Q6sek8bf92", snonce: "3rfcNHYJY1ZVvWVs7j",
		clientFirst: "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
		serverFirst: "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
		clientFinal: "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
		serverFinal: "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=",
	}, {
		hash: "SHA-256", mech: "SCRAM-SHA-256", salt: "W22ZaJ0SNY7soEsUEjb6gQ==", snonce: "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
		clientFirst: "n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
		serverFirst: "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
		clientFinal: "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
		serverFinal: "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
	}}
	for _, v := range vectors {
		t.Run(v.mech, func(t *testing.T) {
			h := hashByName(v.hash)
			salt, _ := base64.StdEncoding.DecodeString(v.salt)
			stored, server, err := h.keys("pencil", salt, 4096)
			if err != nil {
				t.Fatal(err)
			}
			cred := storage.SCRAMCredential{Hash: v.hash, Salt: salt, Iterations: 4096, StoredKey: stored, ServerKey: server}
			if !VerifyPassword([]storage.SCRAMCredential{cred}, "pencil") || VerifyPassword([]storage.SCRAMCredential{cred}, "pencil ") {
				t.Fatal("VerifyPassword disagrees with the vector keys")
			}
			srv := NewServer(Config{}, &memSource{creds: map[string][]storage.SCRAMCredential{"user@" + testDomain: {cred}}})
			srv.nonce = func() string { return v.snonce }
			ctx := context.Background()
			neg, err := srv.Start(ctx, v.mech, testDomain, false, ChannelBindings{})
			if err != nil {
				t.Fatal(err)
			}
			out, done, err := neg.Step(ctx, []byte(v.clientFirst))
			if err != nil || done || string(out) != v.serverFirst {
				t.Fatalf("server-first %q, %v, %v; want %q", out, done, err, v.serverFirst)
			}
			out, done, err = neg.Step(ctx, []byte(v.clientFinal))
			if err != nil || !done || string(out) != v.serverFinal {
				t.Fatalf("server-final %q, %v, %v; want %q", out, done, err, v.serverFinal)
			}
			if neg.Username() != "user" {
				t.Fatalf("Username %q", neg.Username())
			}
		})
	}
}

func TestDeriveCredentials(t *testing.T) {
	creds, err := DeriveCredentials("correct horse", MinIterations)
	if err != nil {
		t.Fatal(err)
	}
	if len(creds) != 3 {
		t.Fatalf("%d credentials", len(creds))
	}
	seen := map[string]bool{}
	for i, c := range creds {
		h := hashByName(c.Hash)
		if h == nil || seen[c.Hash] {
			t.Fatalf("unexpected hash %q", c.Hash)
		}
		seen[c.Hash] = true
		if len(c.Salt) < 16 || c.Iterations != MinIterations || len(c.StoredKey) != h.size || len(c.ServerKey) != h.size {
			t.Fatalf("bad credential %+v", c)
		}
		for _, d := range creds[i+1:] {
			if bytes.Equal(c.Salt, d.Salt) {
				t.Fatal("salt reused across hashes")
			}
		}
		stored, server, _ := h.keys("correct horse", c.Salt, c.Iterations)
		if !bytes.Equal(stored, c.StoredKey) || !bytes.Equal(server, c.ServerKey) {
			t.Fatalf("%s keys do not match a recomputation", c.Hash)
		}
		// Each credential alone must verify, whichever PLAIN happens to use.
		if !VerifyPassword([]storage.SCRAMCredential{c}, "correct horse") {
			t.Fatalf("%s: VerifyPassword false", c.Hash)
		}
	}
	again, _ := DeriveCredentials("correct horse", MinIterations)
	if bytes.Equal(again[0].Salt, creds[0].Salt) {
		t.Fatal("salt is not random")
	}
	if !VerifyPassword(creds, "correct horse") {
		t.Fatal("right password rejected")
	}
	for _, wrong := range []string{"", "Correct horse", "correct horse ", "correct"} {
		if VerifyPassword(creds, wrong) {
			t.Fatalf("wrong password %q accepted", wrong)
		}
	}
	if VerifyPassword(nil, "correct horse") {
		t.Fatal("no credentials accepted")
	}
	if _, err := DeriveCredentials("x", MinIterations-1); err == nil {
		t.Fatal("accepted too few iterations")
	}
	if _, err := DeriveCredentials("", MinIterations); err == nil {
		t.Fatal("accepted an empty password")
	}
	if _, err := DeriveCredentials("bell\x07", MinIterations); err == nil {
		t.Fatal("accepted a control character")
	}
}

// TestPasswordPreparation: spellings that SASLprep/OpaqueString treat as
// equal must verify against each other.
func TestPasswordPreparation(t *testing.T) {
	creds, err := DeriveCredentials("I\u00a0X caf\u00e9", MinIterations)
	if err != nil {
		t.Fatal(err)
	}
	if !VerifyPassword(creds, "I X cafe\u0301") {
		t.Fatal("no-break space / decomposed é not prepared")
	}
	if VerifyPassword(creds, "i x café") {
		t.Fatal("passwords must stay case sensitive")
	}
}
