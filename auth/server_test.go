package auth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"regexp"
	"slices"
	"strings"
	"testing"

	"mellium.im/sasl"

	"github.com/parley-xmpp/parley/storage"
)

func TestMechanisms(t *testing.T) {
	cb := ChannelBindings{TLSExporter: []byte("x")}
	all := []string{"SCRAM-SHA-512-PLUS", "SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-512", "SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"}
	for _, tc := range []struct {
		cfg    Config
		secure bool
		cb     ChannelBindings
		want   []string
	}{
		{Config{AllowPlain: true}, true, cb, all},
		{Config{AllowPlain: true}, true, ChannelBindings{TLSServerEndPoint: []byte("x")}, all},
		{Config{AllowPlain: true}, true, ChannelBindings{}, all[3:]},
		{Config{}, true, cb, all[:6]},
		{Config{AllowPlain: true}, false, ChannelBindings{}, all[3:6]},
		{Config{AllowPlain: true, RequireTLS: true}, false, ChannelBindings{}, nil},
		{Config{AllowPlain: true, RequireTLS: true}, true, ChannelBindings{}, all[3:]},
	} {
		s := NewServer(tc.cfg, &memSource{})
		if got := s.Mechanisms(tc.secure, tc.cb); !slices.Equal(got, tc.want) {
			t.Errorf("%+v secure=%v cb=%v: %v, want %v", tc.cfg, tc.secure, tc.cb.Types(), got, tc.want)
		}
	}
}

func TestStartRefusals(t *testing.T) {
	ctx := context.Background()
	cb := ChannelBindings{TLSExporter: []byte("x")}
	for _, tc := range []struct {
		cfg    Config
		mech   string
		secure bool
		cb     ChannelBindings
		cond   string
	}{
		{Config{AllowPlain: true}, "DIGEST-MD5", true, cb, CondInvalidMechanism},
		{Config{AllowPlain: true}, "", true, cb, CondInvalidMechanism},
		{Config{AllowPlain: true}, "scram-sha-256", true, cb, CondInvalidMechanism},
		{Config{AllowPlain: true}, "PLAIN", false, ChannelBindings{}, CondEncryptionRequired},
		{Config{}, "PLAIN", true, cb, CondInvalidMechanism},
		{Config{RequireTLS: true}, "SCRAM-SHA-256", false, ChannelBindings{}, CondEncryptionRequired},
		{Config{}, "SCRAM-SHA-256-PLUS", true, ChannelBindings{}, CondInvalidMechanism},
		{Config{}, "SCRAM-SHA-256-PLUS", false, cb, CondInvalidMechanism},
	} {
		s := NewServer(tc.cfg, &memSource{})
		_, err := s.Start(ctx, tc.mech, testDomain, tc.secure, tc.cb)
		wantCondition(t, err, tc.cond)
	}
}

// TestSCRAMMellium runs every mechanism mellium.im/sasl implements against
// the server, with and without channel binding.
func TestSCRAMMellium(t *testing.T) {
	srv, _ := newTestServer(t, Config{})
	for _, m := range []sasl.Mechanism{sasl.ScramSha1, sasl.ScramSha256} {
		neg, err := runMellium(t, srv, m, "user", testPass, false, ChannelBindings{})
		if err != nil {
			t.Fatalf("%s: %v", m.Name, err)
		}
		if neg.Username() != "user" {
			t.Fatalf("Username %q", neg.Username())
		}
	}
	// mellium picks tls-exporter on TLS 1.3.
	ccs, scs, leaf := tlsPair(t, tls.VersionTLS13)
	cb := serverBindings(scs, leaf)
	for _, m := range []sasl.Mechanism{sasl.ScramSha1Plus, sasl.ScramSha256Plus, sasl.ScramSha1, sasl.ScramSha256} {
		_, err := runMellium(t, srv, m, "user", testPass, true, cb,
			sasl.TLSState(ccs), sasl.RemoteMechanisms(srv.Mechanisms(true, cb)...))
		if err != nil {
			t.Fatalf("%s over TLS 1.3: %v", m.Name, err)
		}
	}
	// On TLS 1.2 it uses tls-unique, which the extended master secret
	// (negotiated by crypto/tls) makes safe to offer.
	ccs, scs, leaf = tlsPair(t, tls.VersionTLS12)
	cb = serverBindings(scs, leaf)
	for _, m := range []sasl.Mechanism{sasl.ScramSha1Plus, sasl.ScramSha256Plus} {
		if _, err := runMellium(t, srv, m, "user", testPass, true, cb,
			sasl.TLSState(ccs), sasl.RemoteMechanisms(srv.Mechanisms(true, cb)...)); err != nil {
			t.Fatalf("%s over TLS 1.2 (tls-unique): %v", m.Name, err)
		}
	}
	// tls-unique of another connection is a channel binding mismatch.
	other, _, _ := tlsPair(t, tls.VersionTLS12)
	_, err := runMellium(t, srv, sasl.ScramSha256Plus, "user", testPass, true, cb,
		sasl.TLSState(other), sasl.RemoteMechanisms(srv.Mechanisms(true, cb)...))
	wantCondition(t, err, CondNotAuthorized)
}

// TestSCRAMAllHashes uses the independent test client for all three
// hashes and both binding types.
func TestSCRAMAllHashes(t *testing.T) {
	srv, _ := newTestServer(t, Config{})
	ccs, scs, leaf := tlsPair(t, tls.VersionTLS13)
	cb := serverBindings(scs, leaf)
	exporter, err := ccs.ExportKeyingMaterial("EXPORTER-Channel-Binding", nil, 32)
	if err != nil {
		t.Fatal(err)
	}
	// The client computes tls-server-end-point from the certificate it saw.
	endPoint := ServerEndPoint(ccs.PeerCertificates[0])
	for _, h := range []string{"SHA-1", "SHA-256", "SHA-512"} {
		mech := "SCRAM-" + h
		for _, tc := range []struct {
			mech, gs2 string
			cbData    []byte
			secure    bool
			cb        ChannelBindings
		}{
			{mech, "n,,", nil, false, ChannelBindings{}},
			{mech, "n,,", nil, true, cb},
			{mech, "y,,", nil, true, ChannelBindings{}},
			// A client that knows only tls-unique falls back with y although
			// we offered -PLUS (slixmpp does): accepted, see scram.go.
			{mech, "y,,", nil, true, cb},
			{mech, "n,a=user@example.net,", nil, false, ChannelBindings{}},
			{mech + "-PLUS", "p=tls-exporter,,", exporter, true, cb},
			{mech + "-PLUS", "p=tls-server-end-point,,", endPoint, true, cb},
			{mech + "-PLUS", "p=tls-server-end-point,a=USER@Example.NET,", endPoint, true, cb},
		} {
			c := newTestClient(h, "User", testPass, tc.gs2, tc.cbData)
			neg, err := runTestClient(t, srv, tc.mech, c, tc.secure, tc.cb)
			if err != nil {
				t.Fatalf("%s %s: %v", tc.mech, tc.gs2, err)
			}
			if neg.Username() != "user" {
				t.Fatalf("Username %q, want the normalised localpart", neg.Username())
			}
		}
	}
}

func TestSCRAMWrongPassword(t *testing.T) {
	srv, _ := newTestServer(t, Config{})
	for _, m := range []sasl.Mechanism{sasl.ScramSha1, sasl.ScramSha256} {
		neg, err := runMellium(t, srv, m, "user", "pencil2", false, ChannelBindings{})
		wantCondition(t, err, CondNotAuthorized)
		if neg.Username() != "user" {
			t.Fatalf("Username after failure %q, want the attempted account", neg.Username())
		}
	}
	c := newTestClient("SHA-512", "user", "Pencil", "n,,", nil)
	_, err := runTestClient(t, srv, "SCRAM-SHA-512", c, false, ChannelBindings{})
	wantCondition(t, err, CondNotAuthorized)
}

var serverFirstShape = regexp.MustCompile(`^r=([!-+\--~]+),s=([A-Za-z0-9+/]{22}==),i=([0-9]+)$`)

// serverFirst returns the salt and iteration count shown for user.
func serverFirstFor(t *testing.T, srv *Server, mech, user string) (salt, iter string) {
	t.Helper()
	ctx := context.Background()
	neg, err := srv.Start(ctx, mech, testDomain, false, ChannelBindings{})
	if err != nil {
		t.Fatal(err)
	}
	out, _, err := neg.Step(ctx, []byte("n,,n="+user+",r=abcdef"))
	if err != nil {
		t.Fatalf("client-first for %q: %v", user, err)
	}
	m := serverFirstShape.FindStringSubmatch(string(out))
	if m == nil || !strings.HasPrefix(m[1], "abcdef") || len(m[1]) != len("abcdef")+32 {
		t.Fatalf("server-first %q has an unexpected shape", out)
	}
	return m[2], m[3]
}

// TestUnknownUser: an unknown account gets a server-first message of the
// same shape, a stable salt and the real iteration count, and fails only
// with not-authorized at the end.
func TestUnknownUser(t *testing.T) {
	srv, _ := newTestServer(t, Config{})
	for _, m := range []sasl.Mechanism{sasl.ScramSha1, sasl.ScramSha256} {
		_, err := runMellium(t, srv, m, "ghost", testPass, false, ChannelBindings{})
		wantCondition(t, err, CondNotAuthorized)
	}
	c := newTestClient("SHA-512", "ghost", testPass, "n,,", nil)
	_, err := runTestClient(t, srv, "SCRAM-SHA-512", c, false, ChannelBindings{})
	wantCondition(t, err, CondNotAuthorized)

	realSalt, realIter := serverFirstFor(t, srv, "SCRAM-SHA-256", "user")
	salt1, iter1 := serverFirstFor(t, srv, "SCRAM-SHA-256", "ghost")
	salt2, _ := serverFirstFor(t, srv, "SCRAM-SHA-256", "Ghost")
	salt3, _ := serverFirstFor(t, srv, "SCRAM-SHA-256", "phantom")
	salt4, _ := serverFirstFor(t, srv, "SCRAM-SHA-1", "ghost")
	if iter1 != realIter {
		t.Errorf("unknown user shown i=%s, real users i=%s", iter1, realIter)
	}
	if salt1 != salt2 {
		t.Error("fake salt changes between attempts or spellings")
	}
	if salt1 == salt3 || salt1 == salt4 || salt1 == realSalt {
		t.Error("fake salts should differ per user and hash")
	}
	// A name that cannot be a localpart is treated the same way.
	serverFirstFor(t, srv, "SCRAM-SHA-256", "a/b")

	// A configured secret and iteration count make fakes stable across
	// restarts and nodes.
	cfg := Config{Secret: []byte("0123456789abcdef"), Iterations: 12345}
	a, _ := newTestServer(t, cfg)
	b, _ := newTestServer(t, cfg)
	sa, ia := serverFirstFor(t, a, "SCRAM-SHA-256", "ghost")
	sb, _ := serverFirstFor(t, b, "SCRAM-SHA-256", "ghost")
	if sa != sb || ia != "12345" {
		t.Errorf("configured fakes: %s/%s vs %s", sa, ia, sb)
	}
}

func TestAccountWithoutHash(t *testing.T) {
	srv, src := newTestServer(t, Config{})
	var only256 []storage.SCRAMCredential
	for _, c := range userCreds {
		if c.Hash == "SHA-256" {
			only256 = append(only256, c)
		}
	}
	src.creds["old@"+testDomain] = only256
	_, err := runMellium(t, srv, sasl.ScramSha1, "old", testPass, false, ChannelBindings{})
	wantCondition(t, err, CondNotAuthorized)
	if _, err := runMellium(t, srv, sasl.ScramSha256, "old", testPass, false, ChannelBindings{}); err != nil {
		t.Fatal(err)
	}
}

func TestStorageError(t *testing.T) {
	srv, src := newTestServer(t, Config{AllowPlain: true})
	boom := errors.New("database down")
	src.err = boom
	_, err := runMellium(t, srv, sasl.ScramSha256, "user", testPass, false, ChannelBindings{})
	wantCondition(t, err, CondTemporaryAuthFailure)
	if !errors.Is(err, boom) {
		t.Fatal("storage error not wrapped")
	}
	_, err = runMellium(t, srv, sasl.Plain, "user", testPass, true, ChannelBindings{})
	wantCondition(t, err, CondTemporaryAuthFailure)
}

// step1 runs a client-first message and returns the error (nil when the
// server answered with server-first).
func step1(t *testing.T, srv *Server, mech string, secure bool, cb ChannelBindings, msg string) error {
	t.Helper()
	ctx := context.Background()
	neg, err := srv.Start(ctx, mech, testDomain, secure, cb)
	if err != nil {
		t.Fatal(err)
	}
	_, done, err := neg.Step(ctx, []byte(msg))
	if done {
		t.Fatal("done after client-first")
	}
	return err
}

func TestClientFirstErrors(t *testing.T) {
	srv, src := newTestServer(t, Config{})
	cb := ChannelBindings{TLSExporter: []byte("exporter")}
	const s256, plus = "SCRAM-SHA-256", "SCRAM-SHA-256-PLUS"
	for _, tc := range []struct {
		mech   string
		secure bool
		cb     ChannelBindings
		msg    string
		cond   string
	}{
		{s256, false, ChannelBindings{}, "", CondMalformedRequest},
		{s256, false, ChannelBindings{}, "n", CondMalformedRequest},
		{s256, false, ChannelBindings{}, "n,,", CondMalformedRequest},
		{s256, false, ChannelBindings{}, "x,,n=user,r=abc", CondMalformedRequest},
		{s256, false, ChannelBindings{}, "n=user,r=abc", CondMalformedRequest},
		{s256, false, ChannelBindings{}, "n,n=user,r=abc", CondMalformedRequest},
		{s256, false, ChannelBindings{}, "n,,r=abc", CondMalformedRequest},
		{s256, false, ChannelBindings{}, "n,,r=abc,n=user", CondMalformedRequest},
		{s256, false, ChannelBindings{}, "n,,n=user", CondMalformedRequest},
		{s256, false, ChannelBindings{}, "n,,n=user,r=", CondMalformedRequest},
		{s256, false, ChannelBindings{}, "n,,n=user,r=a b", CondMalformedRequest},
		{s256, false, ChannelBindings{}, "n,,n=,r=abc", CondMalformedRequest},
		{s256, false, ChannelBindings{}, "n,,n=us=er,r=abc", CondMalformedRequest},
		{s256, false, ChannelBindings{}, "n,,n=us=2,r=abc", CondMalformedRequest},
		{s256, false, ChannelBindings{}, "n,,n=us\x00er,r=abc", CondMalformedRequest},
		{s256, false, ChannelBindings{}, "n,,m=x,n=user,r=abc", CondMalformedRequest},
		{s256, false, ChannelBindings{}, "n,,n=user,r=abc,,", CondMalformedRequest},
		{s256, false, ChannelBindings{}, "n,,n=user,r=abc,\xff=1", CondMalformedRequest},
		{s256, false, ChannelBindings{}, "n,,n=\xff\xfe,r=abc", CondMalformedRequest},
		{s256, false, ChannelBindings{}, "n,b=user,n=user,r=abc", CondMalformedRequest},
		{s256, false, ChannelBindings{}, "n,a=,n=user,r=abc", CondMalformedRequest},
		{s256, false, ChannelBindings{}, "p=,,n=user,r=abc", CondMalformedRequest},
		{s256, false, ChannelBindings{}, "n,,n=user,r=" + strings.Repeat("a", maxMessage), CondMalformedRequest},
		// Authorization identity of someone else, or with a resource.
		{s256, false, ChannelBindings{}, "n,a=other@example.net,n=user,r=abc", CondInvalidAuthzid},
		{s256, false, ChannelBindings{}, "n,a=user@example.org,n=user,r=abc", CondInvalidAuthzid},
		{s256, false, ChannelBindings{}, "n,a=user@example.net/res,n=user,r=abc", CondInvalidAuthzid},
		{s256, false, ChannelBindings{}, "n,a=example.net,n=user,r=abc", CondInvalidAuthzid},
		{s256, false, ChannelBindings{}, "n,a=a/b@example.net,n=a/b,r=abc", CondInvalidAuthzid},
		// Channel binding flag versus mechanism.
		{s256, true, cb, "p=tls-exporter,,n=user,r=abc", CondMalformedRequest},
		{plus, true, cb, "n,,n=user,r=abc", CondMalformedRequest},
		{plus, true, cb, "y,,n=user,r=abc", CondMalformedRequest},
		{plus, true, cb, "p=tls-unique,,n=user,r=abc", CondMalformedRequest},
		{plus, true, cb, "p=tls-server-end-point,,n=user,r=abc", CondMalformedRequest},
		{plus, true, cb, "p=tls_exporter,,n=user,r=abc", CondMalformedRequest},
	} {
		err := step1(t, srv, tc.mech, tc.secure, tc.cb, tc.msg)
		if err == nil {
			t.Errorf("%s %q accepted", tc.mech, tc.msg)
			continue
		}
		var f *Failure
		if !errors.As(err, &f) || f.Condition != tc.cond {
			t.Errorf("%s %q: %v, want %s", tc.mech, tc.msg, err, tc.cond)
		}
	}
	// Escaped names and extensions are fine.
	src.creds["a,b=c@"+testDomain] = userCreds
	for _, msg := range []string{
		"n,,n=a=2Cb=3Dc,r=abc",
		"n,,n=user,r=abc,x=ext",
		"n,a=user@example.net,n=user,r=abc",
		"y,,n=user,r=abc",
	} {
		if err := step1(t, srv, s256, false, ChannelBindings{}, msg); err != nil {
			t.Errorf("%q: %v", msg, err)
		}
	}
}

func TestClientFinalErrors(t *testing.T) {
	srv, _ := newTestServer(t, Config{})
	ctx := context.Background()
	cb := ChannelBindings{TLSExporter: []byte("exporter-data"), TLSServerEndPoint: []byte("end-point-data")}
	// tamper edits a correct client-final message.
	for _, tc := range []struct {
		name   string
		mech   string
		gs2    string
		cbData string
		tamper func(final string) string
		cond   string
	}{
		{"ok", "SCRAM-SHA-256", "n,,", "", func(s string) string { return s }, ""},
		{"too few attributes", "SCRAM-SHA-256", "n,,", "", func(s string) string { return "c=biws" }, CondMalformedRequest},
		{"empty", "SCRAM-SHA-256", "n,,", "", func(s string) string { return "" }, CondMalformedRequest},
		{"no proof", "SCRAM-SHA-256", "n,,", "", func(s string) string { return s[:strings.Index(s, ",p=")] + ",x=1" }, CondMalformedRequest},
		{"proof not last", "SCRAM-SHA-256", "n,,", "", func(s string) string { return s + ",x=1" }, CondMalformedRequest},
		{"proof not base64", "SCRAM-SHA-256", "n,,", "", func(s string) string { return s[:strings.Index(s, ",p=")] + ",p=!!!!" }, CondMalformedRequest},
		{"short proof", "SCRAM-SHA-256", "n,,", "", func(s string) string { return s[:strings.Index(s, ",p=")] + ",p=AAAA" }, CondMalformedRequest},
		{"wrong order", "SCRAM-SHA-256", "n,,", "", func(s string) string {
			a := strings.Split(s, ",")
			a[0], a[1] = a[1], a[0]
			return strings.Join(a, ",")
		}, CondMalformedRequest},
		{"c not base64", "SCRAM-SHA-256", "n,,", "", func(s string) string { return "c=%%" + s[strings.Index(s, ","):] }, CondMalformedRequest},
		{"nonce mismatch", "SCRAM-SHA-256", "n,,", "", func(s string) string { return strings.Replace(s, ",r=", ",r=x", 1) }, CondNotAuthorized},
		{"gs2 header changed", "SCRAM-SHA-256", "n,,", "", func(s string) string { return "c=eSws" + s[strings.Index(s, ","):] }, CondNotAuthorized},
		{"bit flipped proof", "SCRAM-SHA-256", "n,,", "", flipProof, CondNotAuthorized},
		{"plus ok", "SCRAM-SHA-256-PLUS", "p=tls-exporter,,", "exporter-data", func(s string) string { return s }, ""},
		{"plus endpoint ok", "SCRAM-SHA-512-PLUS", "p=tls-server-end-point,,", "end-point-data", func(s string) string { return s }, ""},
		{"plus wrong binding data", "SCRAM-SHA-256-PLUS", "p=tls-exporter,,", "someone-elses-tls", func(s string) string { return s }, CondNotAuthorized},
		{"plus other type's data", "SCRAM-SHA-1-PLUS", "p=tls-exporter,,", "end-point-data", func(s string) string { return s }, CondNotAuthorized},
		{"plus binding data missing", "SCRAM-SHA-256-PLUS", "p=tls-exporter,,", "", func(s string) string { return s }, CondNotAuthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hashName := strings.TrimSuffix(strings.TrimPrefix(tc.mech, "SCRAM-"), "-PLUS")
			c := newTestClient(hashName, "user", testPass, tc.gs2, []byte(tc.cbData))
			neg, err := srv.Start(ctx, tc.mech, testDomain, true, cb)
			if err != nil {
				t.Fatal(err)
			}
			out, _, err := neg.Step(ctx, c.clientFirst())
			if err != nil {
				t.Fatal(err)
			}
			final, err := c.clientFinal(out)
			if err != nil {
				t.Fatal(err)
			}
			out, done, err := neg.Step(ctx, []byte(tc.tamper(string(final))))
			if tc.cond == "" {
				if err != nil || !done || c.checkServerFinal(out) != nil {
					t.Fatalf("%q %v %v", out, done, err)
				}
			} else {
				wantCondition(t, err, tc.cond)
			}
			// Whatever happened, the negotiation is over.
			_, _, err = neg.Step(ctx, final)
			wantCondition(t, err, CondMalformedRequest)
		})
	}
}

func flipProof(s string) string {
	i := strings.Index(s, ",p=") + 3
	p, _ := base64.StdEncoding.DecodeString(s[i:])
	p[0] ^= 1
	return s[:i] + base64.StdEncoding.EncodeToString(p)
}

func TestPlain(t *testing.T) {
	srv, _ := newTestServer(t, Config{AllowPlain: true})
	ctx := context.Background()
	neg, err := runMellium(t, srv, sasl.Plain, "User", testPass, true, ChannelBindings{})
	if err != nil {
		t.Fatal(err)
	}
	if neg.Username() != "user" {
		t.Fatalf("Username %q", neg.Username())
	}
	for _, tc := range []struct {
		msg, cond string
	}{
		{"\x00user\x00pencil", ""},
		{"user@example.net\x00user\x00pencil", ""},
		{"\x00user\x00pencil2", CondNotAuthorized},
		{"\x00ghost\x00pencil", CondNotAuthorized},
		{"\x00a/b\x00pencil", CondNotAuthorized},
		{"other@example.net\x00user\x00pencil", CondInvalidAuthzid},
		{"user\x00pencil", CondMalformedRequest},
		{"", CondMalformedRequest},
		{"\x00\x00pencil", CondMalformedRequest},
		{"\x00user\x00", CondMalformedRequest},
		{"\x00user\x00pen\x00cil", CondMalformedRequest},
		{"\x00user\x00\xffpencil", CondMalformedRequest},
	} {
		neg, err := srv.Start(ctx, "PLAIN", testDomain, true, ChannelBindings{})
		if err != nil {
			t.Fatal(err)
		}
		out, done, err := neg.Step(ctx, []byte(tc.msg))
		if tc.cond == "" {
			if err != nil || !done || out != nil {
				t.Errorf("%q: %q %v %v", tc.msg, out, done, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%q accepted", tc.msg)
			continue
		}
		var f *Failure
		if !errors.As(err, &f) || f.Condition != tc.cond {
			t.Errorf("%q: %v, want %s", tc.msg, err, tc.cond)
		}
	}
	// Never without TLS, even when allowed.
	_, err = srv.Start(ctx, "PLAIN", testDomain, false, ChannelBindings{})
	wantCondition(t, err, CondEncryptionRequired)
}

func TestBindings(t *testing.T) {
	if cb := BindingsFromTLS(nil); cb.any() || cb.Types() != nil {
		t.Fatal("bindings without TLS")
	}
	ccs, scs, leaf := tlsPair(t, tls.VersionTLS13)
	cb := BindingsFromTLS(&scs)
	want, _ := ccs.ExportKeyingMaterial("EXPORTER-Channel-Binding", nil, 32)
	if len(cb.TLSExporter) != 32 || string(cb.TLSExporter) != string(want) {
		t.Fatal("tls-exporter differs between the two ends")
	}
	if cb.TLSServerEndPoint != nil {
		t.Fatal("BindingsFromTLS must not guess the server certificate")
	}
	if got := serverBindings(scs, leaf).Types(); !slices.Equal(got, []string{"tls-exporter", "tls-server-end-point"}) {
		t.Fatalf("Types %v", got)
	}
	ccs12, scs12, leaf := tlsPair(t, tls.VersionTLS12)
	cb = serverBindings(scs12, leaf)
	if !slices.Equal(cb.Types(), []string{"tls-exporter", "tls-server-end-point", "tls-unique"}) {
		t.Fatalf("TLS 1.2 (extended master secret) bindings %v", cb.Types())
	}
	want12, _ := ccs12.ExportKeyingMaterial("EXPORTER-Channel-Binding", nil, 32)
	if !bytes.Equal(cb.TLSExporter, want12) || !bytes.Equal(cb.TLSUnique, ccs12.TLSUnique) || len(cb.TLSUnique) != 12 {
		t.Fatal("TLS 1.2 bindings differ between the two ends")
	}
	if cb := BindingsFromTLS(&tls.ConnectionState{Version: tls.VersionTLS12, TLSUnique: []byte("x")}); cb.any() {
		t.Fatal("bindings from an unfinished handshake")
	}
}

func TestServerEndPoint(t *testing.T) {
	raw := []byte("certificate bytes")
	s256 := sha256.Sum256(raw)
	s384 := sha512.Sum384(raw)
	s512 := sha512.Sum512(raw)
	for alg, want := range map[x509.SignatureAlgorithm][]byte{
		x509.MD5WithRSA:       s256[:],
		x509.SHA1WithRSA:      s256[:],
		x509.ECDSAWithSHA1:    s256[:],
		x509.SHA256WithRSA:    s256[:],
		x509.ECDSAWithSHA256:  s256[:],
		x509.SHA384WithRSA:    s384[:],
		x509.ECDSAWithSHA384:  s384[:],
		x509.SHA384WithRSAPSS: s384[:],
		x509.SHA512WithRSA:    s512[:],
		x509.ECDSAWithSHA512:  s512[:],
		x509.PureEd25519:      s256[:],
	} {
		if got := ServerEndPoint(&x509.Certificate{Raw: raw, SignatureAlgorithm: alg}); !bytes.Equal(got, want) {
			t.Errorf("%v: wrong hash", alg)
		}
	}
	if ServerEndPoint(nil) != nil {
		t.Error("nil certificate")
	}
}
