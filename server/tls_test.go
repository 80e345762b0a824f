package server

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func tlsTestConfig(t *testing.T, hosts ...string) Config {
	t.Helper()
	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	if len(hosts) > 0 {
		cfg.Hosts = hosts
	}
	return cfg
}

func TestSelfSignedGeneratedOnceAndReused(t *testing.T) {
	cfg := tlsTestConfig(t, "localhost", "example.org")
	cert, err := LoadOrCreateCertificate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	leaf := cert.Leaf
	if leaf == nil {
		t.Fatal("Leaf not set")
	}
	pub, ok := leaf.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		t.Fatalf("key is %T, want ECDSA P-256", leaf.PublicKey)
	}
	for _, name := range []string{"localhost", "*.localhost", "example.org", "*.example.org"} {
		if !slices.Contains(leaf.DNSNames, name) {
			t.Errorf("DNSNames %v lacks %q", leaf.DNSNames, name)
		}
	}
	for _, ip := range []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")} {
		if !slices.ContainsFunc(leaf.IPAddresses, ip.Equal) {
			t.Errorf("IPAddresses %v lacks %v", leaf.IPAddresses, ip)
		}
	}
	for _, h := range []string{"localhost", "example.org", "conference.example.org", "127.0.0.1", "::1"} {
		if err := leaf.VerifyHostname(h); err != nil {
			t.Errorf("VerifyHostname(%q): %v", h, err)
		}
	}

	certFile, keyFile := SelfSignedPaths(cfg.DataDir)
	for file, want := range map[string]os.FileMode{keyFile: 0o600, filepath.Dir(keyFile): 0o700} {
		fi, err := os.Stat(file)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s mode %v, want %v", file, got, want)
		}
	}
	if _, err := os.Stat(certFile); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(certFile)); len(entries) != 2 {
		t.Errorf("tls dir holds %d entries, want 2 (no leftover temp files)", len(entries))
	}

	again, err := LoadOrCreateCertificate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if again.Leaf.SerialNumber.Cmp(leaf.SerialNumber) != 0 {
		t.Error("certificate regenerated on second start; want reuse")
	}

	// A subset of the hosts is still covered: reuse.
	cfg.Hosts = []string{"example.org"}
	sub, err := LoadOrCreateCertificate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if sub.Leaf.SerialNumber.Cmp(leaf.SerialNumber) != 0 {
		t.Error("certificate regenerated for a subset of hosts")
	}
}

func TestSelfSignedRegeneratedForNewHost(t *testing.T) {
	cfg := tlsTestConfig(t, "localhost")
	first, err := LoadOrCreateCertificate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Hosts = []string{"localhost", "new.example"}
	second, err := LoadOrCreateCertificate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if second.Leaf.SerialNumber.Cmp(first.Leaf.SerialNumber) == 0 {
		t.Fatal("certificate not regenerated for a new host")
	}
	if err := second.Leaf.VerifyHostname("new.example"); err != nil {
		t.Error(err)
	}
}

func TestSelfSignedRegeneratedWhenExpiredOrDamaged(t *testing.T) {
	cfg := tlsTestConfig(t, "localhost")
	certFile, keyFile := SelfSignedPaths(cfg.DataDir)
	if err := os.MkdirAll(filepath.Dir(certFile), 0o700); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	certPEM, keyPEM, err := generateSelfSigned(cfg.Hosts, now.Add(-48*time.Hour), now.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, certFile, certPEM)
	writeTestFile(t, keyFile, keyPEM)
	cert, err := LoadOrCreateCertificate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !cert.Leaf.NotAfter.After(now.Add(365 * 24 * time.Hour)) {
		t.Errorf("expired certificate reused (NotAfter %v)", cert.Leaf.NotAfter)
	}

	writeTestFile(t, certFile, []byte("garbage"))
	cert, err = LoadOrCreateCertificate(cfg)
	if err != nil {
		t.Fatalf("damaged self-signed certificate not replaced: %v", err)
	}
	if len(cert.Certificate) == 0 {
		t.Fatal("empty certificate")
	}

	if err := os.Remove(keyFile); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateCertificate(cfg); err != nil {
		t.Fatalf("missing key not regenerated: %v", err)
	}
	if _, err := os.Stat(keyFile); err != nil {
		t.Fatal(err)
	}
}

func TestLoadSelfSignedDoesNotWrite(t *testing.T) {
	cfg := tlsTestConfig(t)
	cert, err := LoadSelfSigned(cfg.DataDir, cfg.Hosts)
	if err != nil || cert != nil {
		t.Fatalf("LoadSelfSigned on empty dir = %v, %v; want nil, nil", cert, err)
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "tls")); !os.IsNotExist(err) {
		t.Fatalf("LoadSelfSigned created files: %v", err)
	}
	if _, err := LoadOrCreateCertificate(cfg); err != nil {
		t.Fatal(err)
	}
	if cert, err := LoadSelfSigned(cfg.DataDir, cfg.Hosts); err != nil || cert == nil {
		t.Fatalf("LoadSelfSigned after creation = %v, %v", cert, err)
	}
}

func TestLoadConfiguredKeyPair(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	certPEM, keyPEM, err := generateSelfSigned([]string{"example.org"}, now.Add(-time.Hour), now.Add(90*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	_, otherKey, err := generateSelfSigned([]string{"example.org"}, now.Add(-time.Hour), now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	certFile := filepath.Join(dir, "cert.pem")
	keyFile := filepath.Join(dir, "key.pem")
	otherKeyFile := filepath.Join(dir, "other.pem")
	garbage := filepath.Join(dir, "garbage.pem")
	writeTestFile(t, certFile, certPEM)
	writeTestFile(t, keyFile, keyPEM)
	writeTestFile(t, otherKeyFile, otherKey)
	writeTestFile(t, garbage, []byte("not pem\n"))

	cfg := tlsTestConfig(t, "example.org")
	cfg.TLS = TLSConfig{Cert: certFile, Key: keyFile}
	cert, err := LoadOrCreateCertificate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if cert.Leaf == nil || cert.Leaf.VerifyHostname("example.org") != nil {
		t.Fatal("loaded certificate lacks Leaf or host")
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "tls")); !os.IsNotExist(err) {
		t.Error("self-signed certificate generated although tls.cert/tls.key are set")
	}

	for _, tc := range []struct {
		name      string
		cert, key string
		want      []string
	}{
		{"missing cert", filepath.Join(dir, "nope.pem"), keyFile, []string{"tls.cert", "nope.pem", "no such file"}},
		{"missing key", certFile, filepath.Join(dir, "nokey.pem"), []string{"tls.key", "nokey.pem", "no such file"}},
		{"cert not pem", garbage, keyFile, []string{"tls.cert", "garbage.pem", "no PEM"}},
		{"key not pem", certFile, garbage, []string{"tls.key", "garbage.pem", "no PEM private key"}},
		{"key is a cert", certFile, certFile, []string{"tls.key", "cert.pem"}},
		{"mismatched key", certFile, otherKeyFile, []string{"cert.pem", "other.pem", "cannot be used together"}},
		{"cert without key", certFile, "", []string{"tls.key", "not set"}},
		{"key without cert", "", keyFile, []string{"tls.cert", "not set"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg.TLS = TLSConfig{Cert: tc.cert, Key: tc.key}
			_, err := LoadOrCreateCertificate(cfg)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestCheckCertificate(t *testing.T) {
	now := time.Now()
	mk := func(hosts []string, from, to time.Time) *tls.Certificate {
		t.Helper()
		c, k, err := generateSelfSigned(hosts, from, to)
		if err != nil {
			t.Fatal(err)
		}
		cert, err := tls.X509KeyPair(c, k)
		if err != nil {
			t.Fatal(err)
		}
		return &cert
	}
	has := func(problems []string, sub string) bool {
		return slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, sub) })
	}

	good := mk([]string{"example.org", "localhost"}, now.Add(-time.Hour), now.Add(365*24*time.Hour))
	p := CheckCertificate(good, []string{"example.org", "localhost", "127.0.0.1"}, now)
	if len(p) != 1 || !strings.Contains(p[0], "self-signed") {
		t.Errorf("good self-signed cert: problems %q, want only the self-signed note", p)
	}

	p = CheckCertificate(good, []string{"example.org", "other.example"}, now)
	if !has(p, `does not cover host "other.example"`) || !has(p, "*.example.org") || has(p, `"example.org"`) {
		t.Errorf("uncovered host: %q", p)
	}

	p = CheckCertificate(good, []string{"example.org"}, now.Add(360*24*time.Hour))
	if !has(p, "expires in 4 days") {
		t.Errorf("expiring soon: %q", p)
	}

	p = CheckCertificate(good, []string{"example.org"}, now.Add(400*24*time.Hour))
	if !has(p, "expired on") || has(p, "expires in") {
		t.Errorf("expired: %q", p)
	}

	p = CheckCertificate(good, []string{"example.org"}, now.Add(-2*time.Hour))
	if !has(p, "not valid before") {
		t.Errorf("not yet valid: %q", p)
	}

	probs := CertificateProblems(good, []string{"other.example"}, now)
	var fail, warn int
	for _, pr := range probs {
		switch pr.Severity {
		case CertFail:
			fail++
		case CertWarn:
			warn++
		}
	}
	if fail != 1 || warn != 1 {
		t.Errorf("severities: %d fail, %d warn; want 1 and 1 (%v)", fail, warn, probs)
	}

	if p := CheckCertificate(nil, []string{"example.org"}, now); len(p) != 1 {
		t.Errorf("nil cert: %q", p)
	}

	// Not self-signed: a leaf signed by a separate CA gets no note.
	leaf := signedByCA(t, "example.org", now)
	if p := CheckCertificate(leaf, []string{"example.org"}, now); len(p) != 0 {
		t.Errorf("CA-signed cert: problems %q, want none", p)
	}
}

func signedByCA(t *testing.T, host string, now time.Time) *tls.Certificate {
	t.Helper()
	caPEM, caKeyPEM, err := generateSelfSigned([]string{"ca.invalid"}, now.Add(-time.Hour), now.Add(48*time.Hour*365))
	if err != nil {
		t.Fatal(err)
	}
	ca, err := tls.X509KeyPair(caPEM, caKeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(ca.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	caCert.IsCA = true
	caCert.KeyUsage |= x509.KeyUsageCertSign
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: caCert.SerialNumber,
		Subject:      caCert.Subject,
		DNSNames:     []string{host},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(90 * 24 * time.Hour),
	}
	tmpl.Subject.CommonName = host
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, ca.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func writeTestFile(t *testing.T, name string, data []byte) {
	t.Helper()
	if err := os.WriteFile(name, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestSelfSignedNotice: a server on its generated certificate says where
// the file is and its SHA-256 fingerprint (what apps show to compare);
// with a configured certificate it says nothing.
func TestSelfSignedNotice(t *testing.T) {
	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	cert, err := LoadOrCreateCertificate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	msg, attrs := selfSignedNotice(cfg, cert)
	certFile, _ := SelfSignedPaths(cfg.DataDir)
	sum := sha256.Sum256(cert.Certificate[0])
	want := strings.ToUpper(hex.EncodeToString(sum[:]))
	if msg == "" || len(attrs) != 4 || attrs[1] != certFile || strings.ReplaceAll(attrs[3].(string), ":", "") != want {
		t.Fatalf("notice %q %v, want file %s and fingerprint %s", msg, attrs, certFile, want)
	}
	cfg.TLS.Cert, cfg.TLS.Key = certFile, certFile
	if msg, _ := selfSignedNotice(cfg, cert); msg != "" {
		t.Fatalf("notice with tls.cert set: %q", msg)
	}
}
