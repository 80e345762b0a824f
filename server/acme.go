package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"
)

// LetsEncrypt is the default ACME directory.
const LetsEncrypt = "https://acme-v02.api.letsencrypt.org/directory"

// acmeCerts obtains and renews certificates with ACME (RFC 8555) for
// every host and its service subdomains (upload., conference.), through
// HTTP-01 on the http listener (port 80 for a public CA) or TLS-ALPN-01
// on the https listener (port 443). Certificates, the account key and
// state live in data_dir/acme. autocert renews them 30 days before they
// expire. Until a name has its certificate, handshakes get the configured
// (or self-signed) one rather than wait for the CA.
type acmeCerts struct {
	m   *autocert.Manager
	log *slog.Logger

	mu    sync.RWMutex
	names map[string]bool // may get a certificate
	ready map[string]bool // has one
}

func newACME(cfg Config, log *slog.Logger) (*acmeCerts, error) {
	a := cfg.TLS.ACME
	if !a.Agree {
		return nil, fmt.Errorf("tls.acme.agree: set it to true to accept the terms of service of the ACME server (%s)", a.directory())
	}
	client := &acme.Client{DirectoryURL: a.directory(), UserAgent: "parley/" + Version}
	if a.CAFile != "" {
		pem, err := os.ReadFile(a.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls.acme.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls.acme.ca_file: %s holds no PEM certificate", a.CAFile)
		}
		client.HTTPClient = &http.Client{Timeout: time.Minute, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	}
	dir := ACMECacheDir(cfg)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("tls.acme: %w", err)
	}
	ac := &acmeCerts{log: log, names: map[string]bool{}, ready: map[string]bool{}}
	ac.m = &autocert.Manager{
		Prompt: autocert.AcceptTOS,
		Email:  a.Email,
		Cache:  autocert.DirCache(dir),
		Client: client,
		HostPolicy: func(_ context.Context, host string) error {
			// HTTP-01 requests name the host with the port when it is
			// not 80 (a CA's test instance, a port forward).
			if h, _, err := net.SplitHostPort(host); err == nil {
				host = h
			}
			host = strings.ToLower(host)
			ac.mu.RLock()
			defer ac.mu.RUnlock()
			if !ac.names[host] {
				return fmt.Errorf("acme: %q is not a host of this server", host)
			}
			return nil
		},
	}
	return ac, nil
}

func (a ACMEConfig) directory() string {
	if a.Directory != "" {
		return a.Directory
	}
	return LetsEncrypt
}

// setNames sets the names certificates are obtained for.
func (a *acmeCerts) setNames(names []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.names = map[string]bool{}
	for _, n := range names {
		a.names[strings.ToLower(n)] = true
	}
}

// get returns the ACME certificate for hello, or nil to use the fallback.
// TLS-ALPN-01 challenges always go to autocert.
func (a *acmeCerts) get(hello *tls.ClientHelloInfo) *tls.Certificate {
	name := strings.ToLower(strings.TrimSuffix(hello.ServerName, "."))
	if slices.Contains(hello.SupportedProtos, acme.ALPNProto) {
		cert, err := a.m.GetCertificate(hello)
		if err != nil {
			a.log.Debug("acme: TLS-ALPN-01 challenge", "name", name, "err", err)
			return nil
		}
		return cert
	}
	a.mu.RLock()
	ready := a.ready[name]
	a.mu.RUnlock()
	if !ready {
		return nil
	}
	cert, err := a.m.GetCertificate(&tls.ClientHelloInfo{ServerName: name, CipherSuites: hello.CipherSuites,
		SignatureSchemes: hello.SignatureSchemes, SupportedCurves: hello.SupportedCurves})
	if err != nil {
		a.log.Warn("acme: certificate unavailable, using the fallback", "name", name, "err", err)
		return nil
	}
	return cert
}

// httpHandler answers HTTP-01 challenges and passes the rest to next.
func (a *acmeCerts) httpHandler(next http.Handler) http.Handler { return a.m.HTTPHandler(next) }

// obtain gets (or loads from data_dir/acme) a certificate for every name,
// retrying failures with a growing delay until ctx ends. Loaded
// certificates are then renewed by autocert in the background.
func (a *acmeCerts) obtain(ctx context.Context) {
	a.mu.RLock()
	var names []string
	for n := range a.names {
		names = append(names, n)
	}
	a.mu.RUnlock()
	slices.Sort(names)
	for _, name := range names {
		go func() {
			delay := 10 * time.Second
			for {
				// ECDSA P-256, what every client accepts.
				hello := &tls.ClientHelloInfo{ServerName: name, SignatureSchemes: []tls.SignatureScheme{tls.ECDSAWithP256AndSHA256},
					SupportedCurves: []tls.CurveID{tls.CurveP256}, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}}
				cert, err := a.m.GetCertificate(hello)
				if err == nil {
					a.mu.Lock()
					a.ready[name] = true
					a.mu.Unlock()
					a.log.Info("acme: certificate ready", "name", name, "not_after", cert.Leaf.NotAfter.UTC().Format(time.RFC3339))
					return
				}
				a.log.Error("acme: cannot obtain a certificate; serving the fallback meanwhile", "name", name, "err", err, "retry_in", delay)
				select {
				case <-ctx.Done():
					return
				case <-time.After(delay):
				}
				delay = min(2*delay, time.Hour)
			}
		}()
	}
}

// ACMEDirectory is the directory URL tls.acme uses.
func ACMEDirectory(cfg Config) string { return cfg.TLS.ACME.directory() }

// ACMECacheDir is where ACME certificates and the account key are kept.
func ACMECacheDir(cfg Config) string { return filepath.Join(cfg.DataDir, "acme") }

// ACMECertificate reads the ACME certificate of name from the cache (for
// parley check); it never contacts the CA.
func ACMECertificate(cfg Config, name string) (*tls.Certificate, error) {
	data, err := os.ReadFile(filepath.Join(ACMECacheDir(cfg), name))
	if err != nil {
		return nil, err
	}
	cert := &tls.Certificate{}
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type == "CERTIFICATE" {
			cert.Certificate = append(cert.Certificate, b.Bytes)
		}
	}
	if len(cert.Certificate) == 0 {
		return nil, fmt.Errorf("%s holds no certificate", filepath.Join(ACMECacheDir(cfg), name))
	}
	if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
		return nil, err
	}
	return cert, nil
}
