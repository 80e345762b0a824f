// Package federation tests server-to-server federation between in-process
// Parley routers connected by real s2s.Service instances over loopback.
package federation

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/router"
	"github.com/parley-xmpp/parley/s2s"
	"github.com/parley-xmpp/parley/wire"
)

// testCA issues certificates for the test domains.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "Parley federation test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

var serial int64 = 100

// issue returns a certificate with the given dNSNames. The subject CN is
// set to cn to make sure nothing trusts it.
func (ca *testCA) issue(t *testing.T, cn string, dnsNames ...string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		DNSNames:     dnsNames,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// recSession is a fake bound client session that records what it gets.
type recSession struct {
	j  jid.JID
	ch chan *wire.Stanza
	mu sync.Mutex
	p  *wire.Stanza
}

func newSession(t *testing.T, full string) *recSession {
	return &recSession{j: jid.MustParse(full), ch: make(chan *wire.Stanza, 64)}
}

func (s *recSession) JID() jid.JID { return s.j }
func (s *recSession) Send(st *wire.Stanza) error {
	select {
	case s.ch <- st:
		return nil
	default:
		return module.ErrNoSession
	}
}
func (s *recSession) Presence() *wire.Stanza {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.p
}
func (s *recSession) SetPresence(st *wire.Stanza)    { s.mu.Lock(); s.p = st; s.mu.Unlock() }
func (s *recSession) Priority() int                  { return 0 }
func (s *recSession) Flags() module.Flags            { return 0 }
func (s *recSession) SetFlags(set, clr module.Flags) {}
func (s *recSession) Close(*wire.StreamError)        {}
func (s *recSession) ConnID() string                 { return "test-" + s.j.String() }

// expect waits for the next stanza delivered to s.
func (s *recSession) expect(t *testing.T, timeout time.Duration) *wire.Stanza {
	t.Helper()
	select {
	case st := <-s.ch:
		return st
	case <-time.After(timeout):
		t.Fatalf("%s: nothing received within %v", s.j, timeout)
		return nil
	}
}

// expectNone fails if anything (a spoofed stanza) was delivered to s.
func (s *recSession) expectNone(t *testing.T) {
	t.Helper()
	select {
	case st := <-s.ch:
		t.Fatalf("%s: spoofed stanza delivered: %s", s.j, st.Raw)
	default:
	}
}

// logBuffer collects log lines for assertions.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// node is one in-process server: a router with an s2s service.
type node struct {
	domain string
	addr   string
	ln     *countingListener
	router *router.Router
	svc    *s2s.Service
	logs   *logBuffer
	secret []byte
}

type nodeOpts struct {
	cert              tls.Certificate
	requireValidCerts bool
	routes            map[string][]string
	directTLS         bool
	idle              time.Duration
	noBidi            bool
	// limits (zero: the s2s package's defaults)
	authTimeout           time.Duration
	maxInbound            int
	connectionsPerAddress int
	maxDialbacks          int
	queueBytes            int
	queueStanzas          int
	preAuthStanzas        int
}

// listen reserves a listener on a loopback address (127.0.0.2, 127.0.0.3).
func listen(t *testing.T, ip string) *countingListener {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Skipf("cannot listen on %s (loopback aliases unavailable?): %v", ip, err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	return &countingListener{Listener: ln}
}

// countingListener counts the TCP connections it accepted.
type countingListener struct {
	net.Listener
	n atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

func (l *countingListener) accepted() int { return int(l.n.Load()) }

func startNode(t *testing.T, domain string, ln *countingListener, ca *testCA, o nodeOpts) *node {
	t.Helper()
	logs := &logBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})).With("node", domain)
	r := router.New(router.Config{Domains: []string{domain}, Logger: log})
	reg := module.NewRegistry([]string{domain}, r.Sender(), r)
	r.SetRegistry(reg)
	secret := []byte("secret of " + domain)
	svc := s2s.New(s2s.Config{
		LocalDomains:            []string{domain},
		TLS:                     &tls.Config{Certificates: []tls.Certificate{o.cert}, MinVersion: tls.VersionTLS12},
		RootCAs:                 ca.pool,
		RequireValidCerts:       o.requireValidCerts,
		Routes:                  o.routes,
		DialbackSecret:          secret,
		ConnectTimeout:          5 * time.Second,
		IdleTimeout:             o.idle,
		DisableBidi:             o.noBidi,
		AuthTimeout:             o.authTimeout,
		MaxInbound:              o.maxInbound,
		ConnectionsPerAddress:   o.connectionsPerAddress,
		MaxDialbacks:            o.maxDialbacks,
		QueueBytes:              o.queueBytes,
		QueueStanzas:            o.queueStanzas,
		PreAuthStanzasPerSecond: o.preAuthStanzas,
		Logger:                  log,
	}, r)
	r.SetRemote(svc)
	go func() { _ = svc.ServeTCP(ln, o.directTLS) }()
	n := &node{domain: domain, addr: ln.Addr().String(), ln: ln, router: r, svc: svc, logs: logs, secret: secret}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		svc.Shutdown(ctx)
		if t.Failed() {
			t.Logf("logs of %s:\n%s", domain, logs.String())
		}
	})
	return n
}

// pairOf starts a.test on 127.0.0.2 and b.test on 127.0.0.3, routed to
// each other.
func pairOf(t *testing.T, ca *testCA, certA, certB tls.Certificate, requireValid bool) (*node, *node) {
	return pairWith(t, ca, certA, certB, requireValid, true)
}

// pairWith is pairOf with bidirectional streams (XEP-0288) on or off on
// both nodes.
func pairWith(t *testing.T, ca *testCA, certA, certB tls.Certificate, requireValid, bidi bool) (*node, *node) {
	lnA := listen(t, "127.0.0.2")
	lnB := listen(t, "127.0.0.3")
	a := startNode(t, "a.test", lnA, ca, nodeOpts{cert: certA, requireValidCerts: requireValid, noBidi: !bidi,
		routes: map[string][]string{"b.test": {lnB.Addr().String()}}})
	b := startNode(t, "b.test", lnB, ca, nodeOpts{cert: certB, requireValidCerts: requireValid, noBidi: !bidi,
		routes: map[string][]string{"a.test": {lnA.Addr().String()}}})
	return a, b
}

func (n *node) bind(t *testing.T, full string) *recSession {
	t.Helper()
	s := newSession(t, full)
	if _, err := n.router.Bind(s); err != nil {
		t.Fatal(err)
	}
	return s
}

// sendFrom routes a stanza as if a local client session had sent it.
func (n *node) sendFrom(t *testing.T, s *recSession, raw string) {
	t.Helper()
	st := wire.MustParse(raw)
	n.router.Route(context.Background(), st, module.Origin{Kind: module.FromClient, Session: s})
}

func message(from, to, id, body string) string {
	return fmt.Sprintf("<message from='%s' to='%s' id='%s' type='chat'><body>%s</body></message>", from, to, id, body)
}

func checkMessage(t *testing.T, st *wire.Stanza, from, to, body string) {
	t.Helper()
	if st.Name != "message" || st.From != from || st.To != to {
		t.Fatalf("got %s, want a message from %s to %s", st.Raw, from, to)
	}
	if got := st.Child(wire.NSClient, "body").Text(); got != body {
		t.Fatalf("body = %q, want %q (%s)", got, body, st.Raw)
	}
}

func waitLog(t *testing.T, n *node, substr string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if strings.Contains(n.logs.String(), substr) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: log does not contain %q", n.domain, substr)
}

func eventually(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Errorf("not reached: %s", what)
}
