package auth

import (
	"context"
	"errors"
	"testing"

	"github.com/parley-xmpp/parley/storage"
)

// FuzzStep feeds arbitrary client messages to every kind of negotiation.
// Besides not panicking, every error must be a *Failure with an RFC 6120
// condition, and only a correct proof may succeed.
func FuzzStep(f *testing.F) {
	// One PBKDF2 iteration keeps PLAIN cheap enough to fuzz; the format of
	// the stored keys is all that matters here.
	var creds []storage.SCRAMCredential
	for _, h := range hashes {
		salt := []byte("fuzz-salt-" + h.name)
		stored, server, err := h.keys(testPass, salt, 1)
		if err != nil {
			f.Fatal(err)
		}
		creds = append(creds, storage.SCRAMCredential{Hash: h.name, Salt: salt, Iterations: 1, StoredKey: stored, ServerKey: server})
	}
	src := &memSource{creds: map[string][]storage.SCRAMCredential{"user@" + testDomain: creds}}
	srv := NewServer(Config{AllowPlain: true, Iterations: 1}, src)
	cb := ChannelBindings{TLSExporter: []byte("exporter"), TLSServerEndPoint: []byte("end-point")}
	mechs := srv.Mechanisms(true, cb)

	f.Add(uint8(4), []byte("n,,n=user,r=abc"), []byte("c=biws,r=abc,p=AAAA"))
	f.Add(uint8(1), []byte("p=tls-exporter,a=user@example.net,n=user,r=abc"), []byte("c=cD10bHMtZXhwb3J0ZXIsLGV4cG9ydGVy,r=abc,x=y,p="))
	f.Add(uint8(3), []byte("y,,n=a=2Cb,r=abc,e=x"), []byte("c=eSws,r=abcdef,p=AAAAAAAAAAAAAAAAAAAAAAAAAAA="))
	f.Add(uint8(6), []byte("\x00user\x00pencil"), []byte(nil))
	f.Add(uint8(6), []byte("user@example.net\x00user\x00pencil"), []byte(nil))
	f.Add(uint8(5), []byte("n,,m=x,n=ghost,r=,"), []byte(",,,"))

	valid := map[string]bool{}
	for _, c := range []string{CondAborted, CondAccountDisabled, CondCredentialsExpired, CondEncryptionRequired,
		CondIncorrectEncoding, CondInvalidAuthzid, CondInvalidMechanism, CondMalformedRequest,
		CondMechanismTooWeak, CondNotAuthorized, CondTemporaryAuthFailure} {
		valid[c] = true
	}
	f.Fuzz(func(t *testing.T, mech uint8, first, final []byte) {
		ctx := context.Background()
		neg, err := srv.Start(ctx, mechs[int(mech)%len(mechs)], testDomain, true, cb)
		if err != nil {
			t.Fatal(err)
		}
		for i, in := range [][]byte{first, final, first} {
			out, done, err := neg.Step(ctx, in)
			if err != nil {
				var fl *Failure
				if !errors.As(err, &fl) || !valid[fl.Condition] {
					t.Fatalf("step %d: bad error %v", i, err)
				}
				return
			}
			if done {
				// The SCRAM nonce is random, so a fuzzer cannot forge a proof;
				// only PLAIN with the real password can get here.
				if neg.Mechanism() != "PLAIN" || neg.Username() != "user" || out != nil {
					t.Fatalf("unexpected success: %s %q %q", neg.Mechanism(), first, final)
				}
				return
			}
		}
		t.Fatal("negotiation did not finish in two client messages")
	})
}
