// Package acme tests automatic certificates end to end against Pebble,
// Let's Encrypt's ACME test server, and its DNS companion challtestsrv,
// both built from the go.mod tool directives (go build, no download at run
// time beyond the Go module proxy).
package acme

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/internal/testserver"
	"github.com/parley-xmpp/parley/server"
)

func skipOrFail(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("PARLEY_INTEROP_REQUIRED") == "1" {
		t.Fatalf(format, args...)
	}
	t.Skipf("\n*** SKIPPED: ACME test: "+format+" ***", args...)
}

// freePort reserves a loopback port and releases it for a child process.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// selfSigned writes a certificate and key for 127.0.0.1 (Pebble's own
// HTTPS) and returns the certificate file, which is also the CA to trust.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "pebble"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, IsCA: true, BasicConstraintsValid: true,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kd, _ := x509.MarshalPKCS8PrivateKey(key)
	certFile, keyFile = filepath.Join(dir, "pebble.crt"), filepath.Join(dir, "pebble.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// start runs a child process until the test ends.
func start(t *testing.T, env []string, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	logf, err := os.Create(filepath.Join(t.TempDir(), filepath.Base(name)+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("%s log:\n%s", filepath.Base(name), b)
		}
	})
}

// TestACMEWithPebble: with tls.acme, the server obtains certificates for
// its host and service hosts from an ACME CA (Pebble, checking the names
// for real) and serves them on every TLS listener; parley check can read
// them. Once through HTTP-01 on the http listener (after TLS-ALPN-01
// failed: Pebble's TLS port is closed), once through TLS-ALPN-01 on the
// https listener (Pebble's HTTP port is closed).
func TestACMEWithPebble(t *testing.T) {
	if testing.Short() {
		t.Skip("builds Pebble")
	}
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", bin+"/",
		"github.com/letsencrypt/pebble/v2/cmd/pebble", "github.com/letsencrypt/pebble/v2/cmd/pebble-challtestsrv")
	if out, err := build.CombinedOutput(); err != nil {
		skipOrFail(t, "cannot build pebble (go.mod tool): %v\n%s", err, out)
	}
	t.Run("http-01", func(t *testing.T) { pebbleRun(t, bin, false) })
	t.Run("tls-alpn-01", func(t *testing.T) { pebbleRun(t, bin, true) })
}

func pebbleRun(t *testing.T, bin string, alpn bool) {
	dir := t.TempDir()
	caFile, keyFile := selfSigned(t, dir)
	httpPort, httpsPort, closedPort := freePort(t), freePort(t), freePort(t)
	pebbleHTTP, pebbleTLS := httpPort, closedPort
	if alpn {
		pebbleHTTP, pebbleTLS = closedPort, httpsPort
	}
	dirPort, mgmtPort, dnsPort, chalMgmt := freePort(t), freePort(t), freePort(t), freePort(t)

	start(t, nil, filepath.Join(bin, "pebble-challtestsrv"), "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "",
		"-dnsserver", fmt.Sprintf("127.0.0.1:%d", dnsPort), "-management", fmt.Sprintf("127.0.0.1:%d", chalMgmt),
		"-http01", "", "-https01", "", "-tlsalpn01", "", "-doh", "")
	cfg := map[string]any{"pebble": map[string]any{
		"listenAddress":           fmt.Sprintf("127.0.0.1:%d", dirPort),
		"managementListenAddress": fmt.Sprintf("127.0.0.1:%d", mgmtPort),
		"certificate":             caFile, "privateKey": keyFile,
		"httpPort": pebbleHTTP, "tlsPort": pebbleTLS, // one of them closed
		"ocspResponderURL": "", "externalAccountBindingRequired": false,
		"keyAlgorithm": "ecdsa",
		"profiles":     map[string]any{"default": map[string]any{"description": "test", "validityPeriod": 7776000}},
	}}
	cfgJSON, _ := json.Marshal(cfg)
	cfgFile := filepath.Join(dir, "pebble.json")
	if err := os.WriteFile(cfgFile, cfgJSON, 0o600); err != nil {
		t.Fatal(err)
	}
	start(t, []string{"PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0"}, filepath.Join(bin, "pebble"),
		"-config", cfgFile, "-dnsserver", fmt.Sprintf("127.0.0.1:%d", dnsPort))

	pool := x509.NewCertPool()
	caPEM, _ := os.ReadFile(caFile)
	pool.AppendCertsFromPEM(caPEM)
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	directory := fmt.Sprintf("https://127.0.0.1:%d/dir", dirPort)
	waitFor(t, 30*time.Second, "pebble's directory", func() bool {
		resp, err := hc.Get(directory)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})

	ts := testserver.Start(t, func(c *server.Config) {
		c.Hosts = []string{"xmpp.test"}
		c.Listen.HTTP = fmt.Sprintf("127.0.0.1:%d", httpPort)
		c.Listen.HTTPS = fmt.Sprintf("127.0.0.1:%d", httpsPort)
		c.TLS.ACME = server.ACMEConfig{Email: "ops@xmpp.test", Directory: directory, Agree: true, CAFile: caFile}
	})

	// Pebble's root, to verify what the server serves.
	resp, err := hc.Get(fmt.Sprintf("https://127.0.0.1:%d/roots/0", mgmtPort))
	if err != nil {
		t.Fatal(err)
	}
	rootPEM, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(rootPEM) {
		t.Fatalf("pebble root: %s", rootPEM)
	}
	verified := func(addr, name string, protos ...string) error {
		c, err := tls.Dial("tcp", addr, &tls.Config{ServerName: name, RootCAs: roots, NextProtos: protos})
		if err != nil {
			return err
		}
		return c.Close()
	}
	for _, name := range []string{"xmpp.test", "upload.xmpp.test"} {
		waitFor(t, 90*time.Second, "a certificate for "+name+" from pebble", func() bool {
			return verified(ts.Addr("c2s_tls"), name, "xmpp-client") == nil
		})
	}
	if err := verified(ts.Addr("https"), "xmpp.test", "http/1.1"); err != nil {
		t.Fatalf("https listener: %v", err)
	}
	// parley check reads the cached certificate.
	cert, err := server.ACMECertificate(ts.Cfg, "xmpp.test")
	if err != nil || !strings.Contains(cert.Leaf.Issuer.CommonName, "Pebble") {
		t.Fatalf("cached certificate: %v %v", cert, err)
	}
	if p := server.CheckCertificate(cert, []string{"xmpp.test"}, time.Now()); len(p) != 0 {
		t.Fatalf("problems with the ACME certificate: %q", p)
	}
	// A name that is not ours gets the fallback certificate, never an order.
	c, err := tls.Dial("tcp", ts.Addr("c2s_tls"), &tls.Config{ServerName: "evil.example", InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(c.ConnectionState().PeerCertificates[0].Issuer.CommonName, "Pebble") {
		t.Fatal("a foreign name got an ACME certificate")
	}
	c.Close()
}

func waitFor(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
