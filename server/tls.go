package server

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

const (
	// selfSignedValidity is how long a generated certificate is valid. It is
	// regenerated on the next start after it expires.
	selfSignedValidity = 2 * 365 * 24 * time.Hour
	// selfSignedRenewBefore: a generated certificate this close to expiry
	// is treated as expired, so a start never picks up one that dies
	// within the day.
	selfSignedRenewBefore = 24 * time.Hour
	// expiryWarning is when CheckCertificate starts warning.
	expiryWarning = 14 * 24 * time.Hour
)

// SelfSignedPaths returns where the self-signed certificate and key live for
// a data directory: data_dir/tls/selfsigned.crt and .key.
func SelfSignedPaths(dataDir string) (certFile, keyFile string) {
	dir := filepath.Join(dataDir, "tls")
	return filepath.Join(dir, "selfsigned.crt"), filepath.Join(dir, "selfsigned.key")
}

// LoadOrCreateCertificate returns the server certificate. With tls.cert and
// tls.key set it loads them. With both empty it uses a self-signed ECDSA
// P-256 certificate in data_dir/tls, generating it when it is missing,
// expired, unreadable as a certificate, or does not cover every configured
// host (each host, *.host, and 127.0.0.1/::1 for localhost).
func LoadOrCreateCertificate(cfg Config) (*tls.Certificate, error) {
	if cfg.TLS.Cert != "" || cfg.TLS.Key != "" {
		return loadKeyPair(cfg.TLS.Cert, cfg.TLS.Key)
	}
	if cfg.DataDir == "" {
		return nil, errors.New("tls: no tls.cert/tls.key and no data_dir to keep a self-signed certificate in")
	}
	certFile, keyFile := SelfSignedPaths(cfg.DataDir)
	cert, err := loadSelfSigned(certFile, keyFile, cfg.Hosts, time.Now())
	if err != nil {
		return nil, err
	}
	if cert != nil {
		return cert, nil
	}
	return createSelfSigned(certFile, keyFile, cfg.Hosts, time.Now())
}

// selfSignedNotice is what a new admin needs to know when the server runs
// on its generated certificate: clients verifying certificates (the
// default of slixmpp, xmpp.js, most apps) refuse it until they are told
// to trust that file, and apps that ask show its fingerprint to compare.
// It returns "" with a configured or ACME certificate.
func selfSignedNotice(cfg Config, cert *tls.Certificate) (string, []any) {
	if cfg.TLS.Cert != "" || cfg.TLS.ACME.Email != "" || cfg.TLS.ACME.Directory != "" || cfg.TLS.ACME.Agree ||
		cert == nil || len(cert.Certificate) == 0 {
		return "", nil
	}
	certFile, _ := SelfSignedPaths(cfg.DataDir)
	sum := sha256.Sum256(cert.Certificate[0])
	fp := make([]string, len(sum))
	for i, b := range sum {
		fp[i] = fmt.Sprintf("%02X", b)
	}
	return "using a self-signed certificate: clients must trust it (accept its fingerprint, or give them the file as a trusted CA certificate; see README, Certificates); set tls.cert/tls.key or tls.acme for a real one",
		[]any{"file", certFile, "sha256", strings.Join(fp, ":")}
}

// LoadSelfSigned returns the self-signed certificate already in data_dir if
// it is usable for hosts (what LoadOrCreateCertificate would reuse), or nil
// when a new one would be generated. It never writes anything.
func LoadSelfSigned(dataDir string, hosts []string) (*tls.Certificate, error) {
	certFile, keyFile := SelfSignedPaths(dataDir)
	return loadSelfSigned(certFile, keyFile, hosts, time.Now())
}

// loadKeyPair loads a configured certificate chain and key with errors that
// name the file and what is wrong with it.
func loadKeyPair(certFile, keyFile string) (*tls.Certificate, error) {
	if certFile == "" {
		return nil, fmt.Errorf("tls.cert: not set but tls.key is (%s); set both, or neither for a self-signed certificate", keyFile)
	}
	if keyFile == "" {
		return nil, fmt.Errorf("tls.key: not set but tls.cert is (%s); set both, or neither for a self-signed certificate", certFile)
	}
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("tls.cert: cannot read certificate file: %w", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("tls.key: cannot read key file: %w", err)
	}
	if !hasPEMBlock(certPEM, func(t string) bool { return t == "CERTIFICATE" }) {
		return nil, fmt.Errorf("tls.cert: %s contains no PEM \"CERTIFICATE\" block", certFile)
	}
	if !hasPEMBlock(keyPEM, func(t string) bool { return strings.HasSuffix(t, "PRIVATE KEY") }) {
		return nil, fmt.Errorf("tls.key: %s contains no PEM private key block", keyFile)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("tls: certificate %s and key %s cannot be used together: %w", certFile, keyFile, err)
	}
	if cert.Leaf == nil {
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("tls.cert: %s: %w", certFile, err)
		}
	}
	return &cert, nil
}

func hasPEMBlock(data []byte, typeOK func(string) bool) bool {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return false
		}
		if typeOK(b.Type) {
			return true
		}
	}
}

// loadSelfSigned returns the existing generated certificate, or nil (and no
// error) when it has to be (re)generated.
func loadSelfSigned(certFile, keyFile string, hosts []string, now time.Time) (*tls.Certificate, error) {
	certPEM, err := os.ReadFile(certFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("tls: cannot read self-signed certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("tls: cannot read self-signed key: %w", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, nil // damaged: it is ours, so replace it
	}
	leaf := cert.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, nil
		}
		cert.Leaf = leaf
	}
	if now.Add(selfSignedRenewBefore).After(leaf.NotAfter) || now.Before(leaf.NotBefore) {
		return nil, nil
	}
	dns, ips := selfSignedNames(hosts)
	for _, d := range dns {
		if !slices.Contains(leaf.DNSNames, d) {
			return nil, nil
		}
	}
	for _, ip := range ips {
		if !slices.ContainsFunc(leaf.IPAddresses, ip.Equal) {
			return nil, nil
		}
	}
	return &cert, nil
}

// selfSignedNames lists the SANs a generated certificate carries for hosts.
func selfSignedNames(hosts []string) (dns []string, ips []net.IP) {
	addIP := func(ip net.IP) {
		if !slices.ContainsFunc(ips, ip.Equal) {
			ips = append(ips, ip)
		}
	}
	addDNS := func(d string) {
		if !slices.Contains(dns, d) {
			dns = append(dns, d)
		}
	}
	for _, h := range hosts {
		h = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(h)), ".")
		if h == "" {
			continue
		}
		if ip := net.ParseIP(strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")); ip != nil {
			addIP(ip)
			continue
		}
		addDNS(h)
		addDNS("*." + h)
		if h == "localhost" {
			addIP(net.IPv4(127, 0, 0, 1))
			addIP(net.IPv6loopback)
		}
	}
	return dns, ips
}

// generateSelfSigned makes a self-signed ECDSA P-256 certificate for hosts
// valid from notBefore to notAfter, returning PEM encoded cert and key.
func generateSelfSigned(hosts []string, notBefore, notAfter time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, err
	}
	dns, ips := selfSignedNames(hosts)
	cn := "parley"
	if len(dns) > 0 {
		cn = dns[0]
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"Parley self-signed"}},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		DNSNames:              dns,
		IPAddresses:           ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	return certPEM, keyPEM, nil
}

func createSelfSigned(certFile, keyFile string, hosts []string, now time.Time) (*tls.Certificate, error) {
	certPEM, keyPEM, err := generateSelfSigned(hosts, now.Add(-time.Hour), now.Add(selfSignedValidity))
	if err != nil {
		return nil, fmt.Errorf("tls: generating self-signed certificate: %w", err)
	}
	dir := filepath.Dir(certFile)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("tls: creating %s: %w", dir, err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	// Key first: a certificate file never points at a key that is not there.
	if err := writeFileAtomic(keyFile, keyPEM, 0o600); err != nil {
		return nil, fmt.Errorf("tls: writing self-signed key: %w", err)
	}
	if err := writeFileAtomic(certFile, certPEM, 0o644); err != nil {
		return nil, fmt.Errorf("tls: writing self-signed certificate: %w", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("tls: generated certificate unusable: %w", err)
	}
	if cert.Leaf == nil {
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, err
		}
	}
	return &cert, nil
}

// writeFileAtomic writes to a temporary file in the same directory and
// renames it over name, so a crash never leaves a half-written file.
func writeFileAtomic(name string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after a successful rename
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, name)
}

// CertSeverity says how bad a certificate problem is.
type CertSeverity int

const (
	// CertWarn: the server works but something should be fixed.
	CertWarn CertSeverity = iota
	// CertFail: clients will refuse the certificate.
	CertFail
)

// CertProblem is one finding of CertificateProblems.
type CertProblem struct {
	Severity CertSeverity
	// Kind is one of "invalid", "expired", "expiring", "not-yet-valid",
	// "host" and "self-signed".
	Kind    string
	Message string
}

// CheckCertificate returns human-readable problems with cert for hosts at
// time now: expired or not yet valid, expiring within 14 days, a host it
// does not cover, and a note when it is self-signed. None: the certificate
// is fine.
func CheckCertificate(cert *tls.Certificate, hosts []string, now time.Time) []string {
	var out []string
	for _, p := range CertificateProblems(cert, hosts, now) {
		out = append(out, p.Message)
	}
	return out
}

// CertificateProblems is CheckCertificate with a severity for each problem.
func CertificateProblems(cert *tls.Certificate, hosts []string, now time.Time) []CertProblem {
	var out []CertProblem
	add := func(sev CertSeverity, kind, format string, args ...any) {
		out = append(out, CertProblem{sev, kind, fmt.Sprintf(format, args...)})
	}
	if cert == nil || len(cert.Certificate) == 0 {
		add(CertFail, "invalid", "no certificate")
		return out
	}
	leaf := cert.Leaf
	if leaf == nil {
		var err error
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			add(CertFail, "invalid", "certificate cannot be parsed: %v", err)
			return out
		}
	}
	const day = "2006-01-02 15:04 MST"
	switch left := leaf.NotAfter.Sub(now); {
	case left <= 0:
		add(CertFail, "expired", "certificate expired on %s (%s ago)", leaf.NotAfter.UTC().Format(day), roundDays(-left))
	case left < expiryWarning:
		add(CertWarn, "expiring", "certificate expires in %s (on %s)", roundDays(left), leaf.NotAfter.UTC().Format(day))
	}
	if now.Before(leaf.NotBefore) {
		add(CertFail, "not-yet-valid", "certificate is not valid before %s", leaf.NotBefore.UTC().Format(day))
	}
	for _, h := range hosts {
		name := strings.TrimSuffix(strings.TrimSuffix(strings.TrimPrefix(h, "["), "]"), ".")
		if err := leaf.VerifyHostname(name); err != nil {
			add(CertFail, "host", "certificate does not cover host %q (it covers %s)", h, coveredNames(leaf))
		}
	}
	if isSelfSigned(leaf) {
		add(CertWarn, "self-signed", "certificate is self-signed: clients will ask users to accept it and other servers will not trust it; set tls.cert and tls.key for production")
	}
	return out
}

func roundDays(d time.Duration) string {
	if d < 48*time.Hour {
		return d.Round(time.Minute).String()
	}
	return fmt.Sprintf("%d days", int(d/(24*time.Hour)))
}

func coveredNames(leaf *x509.Certificate) string {
	var names []string
	names = append(names, leaf.DNSNames...)
	for _, ip := range leaf.IPAddresses {
		names = append(names, ip.String())
	}
	if len(names) == 0 {
		if leaf.Subject.CommonName != "" {
			return "no subject alternative names, only common name " + leaf.Subject.CommonName
		}
		return "no names"
	}
	return strings.Join(names, ", ")
}

func isSelfSigned(leaf *x509.Certificate) bool {
	if !bytes.Equal(leaf.RawIssuer, leaf.RawSubject) {
		return false
	}
	return leaf.CheckSignature(leaf.SignatureAlgorithm, leaf.RawTBSCertificate, leaf.Signature) == nil
}

// TLSConfig names the certificate and key. Both empty: a self-signed ECDSA
// certificate is generated once into data_dir and reused.
type TLSConfig struct {
	Cert string `mapstructure:"cert"`
	Key  string `mapstructure:"key"`
	// ACME obtains and renews certificates automatically (Let's Encrypt
	// or another RFC 8555 CA); cert/key (or the self-signed certificate)
	// are served until a name has its certificate.
	ACME ACMEConfig `mapstructure:"acme"`
}

// ACMEConfig turns on ACME when agree is true.
type ACMEConfig struct {
	// Email is the account contact the CA writes to about expiry.
	Email string `mapstructure:"email"`
	// Directory is the CA's ACME directory URL (empty: Let's Encrypt).
	Directory string `mapstructure:"directory"`
	// Agree accepts the CA's terms of service; ACME is on when true.
	Agree bool `mapstructure:"agree"`
	// CAFile is a PEM bundle to trust for the directory's HTTPS (a
	// private CA); empty: the system roots.
	CAFile string `mapstructure:"ca_file"`
}

// problems checks the tls section, with whole key paths. That ACME needs
// an HTTP listener is checked where the sections meet (Config.Validate).
func (t TLSConfig) problems() []string {
	var p []string
	a := t.ACME
	if (a.Email != "" || a.Directory != "" || a.CAFile != "") && !a.Agree {
		p = append(p, "tls.acme.agree: set to true to use ACME (it accepts the CA's terms of service)")
	}
	if a.Agree {
		if d := a.Directory; d != "" && !strings.HasPrefix(d, "https://") {
			p = append(p, fmt.Sprintf("tls.acme.directory: %q is not an https:// URL", d))
		}
		if e := a.Email; e != "" && !strings.Contains(e, "@") {
			p = append(p, fmt.Sprintf("tls.acme.email: %q is not an email address", e))
		}
	}
	if (t.Cert == "") != (t.Key == "") {
		p = append(p, "tls: cert and key must both be set, or both empty for a self-signed certificate")
	}
	return p
}
