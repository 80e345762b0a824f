package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"math/big"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/sasl"

	"github.com/parley-xmpp/parley/storage"
)

const (
	testDomain = "example.net"
	testPass   = "pencil"
)

// memSource is an in-memory CredentialSource.
type memSource struct {
	creds map[string][]storage.SCRAMCredential
	err   error
	calls int
}

func (m *memSource) Credentials(_ context.Context, bare string) ([]storage.SCRAMCredential, error) {
	m.calls++
	if m.err != nil {
		return nil, m.err
	}
	c, ok := m.creds[bare]
	if !ok {
		return nil, storage.ErrNotFound
	}
	return c, nil
}

var (
	userCredsOnce sync.Once
	userCreds     []storage.SCRAMCredential
)

// newTestServer serves user@example.net with password "pencil".
func newTestServer(t testing.TB, cfg Config) (*Server, *memSource) {
	t.Helper()
	userCredsOnce.Do(func() {
		var err error
		if userCreds, err = DeriveCredentials(testPass, MinIterations); err != nil {
			panic(err)
		}
	})
	src := &memSource{creds: map[string][]storage.SCRAMCredential{"user@" + testDomain: userCreds}}
	return NewServer(cfg, src), src
}

// testClient is an independent SCRAM client used where mellium.im/sasl has
// no support (SHA-512, tls-server-end-point) and to send broken messages.
type testClient struct {
	newHash  func() hash.Hash
	user     string // already escaped if the test wants it
	pass     string
	gs2      string // e.g. "n,,"
	cbData   []byte
	cnonce   string
	first    string // client-first-message-bare
	authMsg  string
	serverSg []byte
}

func newTestClient(hashName, user, pass, gs2 string, cbData []byte) *testClient {
	fns := map[string]func() hash.Hash{"SHA-1": sha1.New, "SHA-256": sha256.New, "SHA-512": sha512.New}
	b := make([]byte, 18)
	rand.Read(b)
	return &testClient{newHash: fns[hashName], user: user, pass: pass, gs2: gs2, cbData: cbData,
		cnonce: base64.RawURLEncoding.EncodeToString(b)}
}

func (c *testClient) clientFirst() []byte {
	c.first = "n=" + c.user + ",r=" + c.cnonce
	return []byte(c.gs2 + c.first)
}

func (c *testClient) clientFinal(serverFirst []byte) ([]byte, error) {
	var nonce, salt string
	iter := 0
	for _, a := range strings.Split(string(serverFirst), ",") {
		switch {
		case strings.HasPrefix(a, "r="):
			nonce = a[2:]
		case strings.HasPrefix(a, "s="):
			salt = a[2:]
		case strings.HasPrefix(a, "i="):
			iter, _ = strconv.Atoi(a[2:])
		}
	}
	if !strings.HasPrefix(nonce, c.cnonce) || len(nonce) == len(c.cnonce) || iter <= 0 {
		return nil, fmt.Errorf("bad server-first %q", serverFirst)
	}
	saltB, err := base64.StdEncoding.DecodeString(salt)
	if err != nil {
		return nil, err
	}
	size := c.newHash().Size()
	salted, err := pbkdf2.Key(c.newHash, c.pass, saltB, iter, size)
	if err != nil {
		return nil, err
	}
	mac := func(key []byte, s string) []byte {
		m := hmac.New(c.newHash, key)
		m.Write([]byte(s))
		return m.Sum(nil)
	}
	clientKey := mac(salted, "Client Key")
	h := c.newHash()
	h.Write(clientKey)
	storedKey := h.Sum(nil)
	withoutProof := "c=" + base64.StdEncoding.EncodeToString(append([]byte(c.gs2), c.cbData...)) + ",r=" + nonce
	c.authMsg = c.first + "," + string(serverFirst) + "," + withoutProof
	proof := mac(storedKey, c.authMsg)
	subtle.XORBytes(proof, proof, clientKey)
	c.serverSg = mac(mac(salted, "Server Key"), c.authMsg)
	return []byte(withoutProof + ",p=" + base64.StdEncoding.EncodeToString(proof)), nil
}

func (c *testClient) checkServerFinal(out []byte) error {
	if want := "v=" + base64.StdEncoding.EncodeToString(c.serverSg); string(out) != want {
		return fmt.Errorf("server-final %q, want %q", out, want)
	}
	return nil
}

// runTestClient drives a whole exchange and checks the server signature.
func runTestClient(t testing.TB, srv *Server, mech string, c *testClient, secure bool, cb ChannelBindings) (*Negotiation, error) {
	t.Helper()
	ctx := context.Background()
	neg, err := srv.Start(ctx, mech, testDomain, secure, cb)
	if err != nil {
		return nil, err
	}
	out, done, err := neg.Step(ctx, c.clientFirst())
	if err != nil {
		return neg, err
	}
	if done {
		t.Fatalf("%s: done after client-first", mech)
	}
	final, err := c.clientFinal(out)
	if err != nil {
		t.Fatalf("%s: %v", mech, err)
	}
	out, done, err = neg.Step(ctx, final)
	if err != nil {
		return neg, err
	}
	if !done {
		t.Fatalf("%s: not done after client-final", mech)
	}
	if err := c.checkServerFinal(out); err != nil {
		t.Fatalf("%s: %v", mech, err)
	}
	return neg, nil
}

// runMellium drives a whole exchange with the mellium.im/sasl client, which
// also verifies the server signature.
func runMellium(t *testing.T, srv *Server, mech sasl.Mechanism, user, pass string, secure bool, cb ChannelBindings, opts ...sasl.Option) (*Negotiation, error) {
	t.Helper()
	ctx := context.Background()
	opts = append(opts, sasl.Credentials(func() ([]byte, []byte, []byte) {
		return []byte(user), []byte(pass), nil
	}))
	client := sasl.NewClient(mech, opts...)
	neg, err := srv.Start(ctx, mech.Name, testDomain, secure, cb)
	if err != nil {
		return nil, err
	}
	_, resp, err := client.Step(nil)
	if err != nil {
		t.Fatalf("client start: %v", err)
	}
	for {
		out, done, err := neg.Step(ctx, resp)
		if err != nil {
			return neg, err
		}
		if done && mech.Name == "PLAIN" {
			return neg, nil
		}
		_, resp, err = client.Step(out)
		if err != nil {
			t.Fatalf("%s: client rejected server message %q: %v", mech.Name, out, err)
		}
		if done {
			return neg, nil
		}
	}
}

func wantCondition(t *testing.T, err error, cond string) {
	t.Helper()
	var f *Failure
	if !errors.As(err, &f) {
		t.Fatalf("error %v (%T), want *Failure %s", err, err, cond)
	}
	if f.Condition != cond {
		t.Fatalf("condition %q (%v), want %q", f.Condition, f, cond)
	}
}

var (
	certOnce sync.Once
	testCert tls.Certificate
)

func selfSigned(t testing.TB) tls.Certificate {
	certOnce.Do(func() {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(1),
			Subject:      pkix.Name{CommonName: testDomain},
			DNSNames:     []string{testDomain},
			NotBefore:    time.Now().Add(-time.Hour),
			NotAfter:     time.Now().Add(time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
			ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			IsCA:         true, BasicConstraintsValid: true,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			panic(err)
		}
		leaf, err := x509.ParseCertificate(der)
		if err != nil {
			panic(err)
		}
		testCert = tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
	})
	return testCert
}

// tlsPair completes a real TLS handshake over a pipe and returns both
// sides' connection states.
func tlsPair(t testing.TB, version uint16) (client, server tls.ConnectionState, leaf *x509.Certificate) {
	t.Helper()
	cert := selfSigned(t)
	pool := x509.NewCertPool()
	pool.AddCert(cert.Leaf)
	c1, c2 := net.Pipe()
	defer c1.Close()
	defer c2.Close()
	srv := tls.Server(c2, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: version, MaxVersion: version})
	errc := make(chan error, 1)
	go func() { errc <- srv.Handshake() }()
	cl := tls.Client(c1, &tls.Config{RootCAs: pool, ServerName: testDomain, MinVersion: version, MaxVersion: version})
	if err := cl.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	return cl.ConnectionState(), srv.ConnectionState(), cert.Leaf
}

// serverBindings is what c2s computes for a connection.
func serverBindings(cs tls.ConnectionState, leaf *x509.Certificate) ChannelBindings {
	cb := BindingsFromTLS(&cs)
	cb.TLSServerEndPoint = ServerEndPoint(leaf)
	return cb
}
