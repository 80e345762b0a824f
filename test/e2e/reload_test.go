package e2e

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/internal/testserver"
	"github.com/parley-xmpp/parley/server"
)

// writeCert writes a self-signed certificate for localhost valid until
// notAfter to dir/name.crt and .key (through a rename, as ACME clients
// do) and returns its DER.
func writeCert(t *testing.T, dir, name string, notAfter time.Time) []byte {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: notAfter, DNSNames: []string{"localhost", "*.localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kd, _ := x509.MarshalPKCS8PrivateKey(key)
	for _, f := range []struct {
		ext  string
		data []byte
	}{{".key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd})}, {".crt", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}} {
		tmp := filepath.Join(dir, "."+name+f.ext+".tmp")
		if err := os.WriteFile(tmp, f.data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, name+f.ext)); err != nil {
			t.Fatal(err)
		}
	}
	return der
}

// servedCert is the certificate a direct TLS handshake gets.
func servedCert(t *testing.T, addr string) []byte {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{ServerName: "localhost", InsecureSkipVerify: true, NextProtos: []string{"xmpp-client"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].Raw
}

// TestCertificateReload: certificate files replaced on disk (as an
// external ACME client renews them) serve new connections within moments,
// without SIGHUP and without dropping the established ones; a broken
// replacement keeps the old certificate.
func TestCertificateReload(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	first := writeCert(t, dir, "server", time.Now().Add(30*24*time.Hour))
	ts := testserver.Start(t, func(c *server.Config) {
		c.TLS.Cert, c.TLS.Key = filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	})
	ts.AddUser("alice", "pw")
	alice := ts.Login("alice", "pw", "")
	if !bytes.Equal(servedCert(t, ts.Addr("c2s_tls")), first) {
		t.Fatal("the configured certificate is not served")
	}
	second := writeCert(t, dir, "server", time.Now().Add(90*24*time.Hour))
	deadline := time.Now().Add(10 * time.Second)
	for !bytes.Equal(servedCert(t, ts.Addr("c2s_tls")), second) {
		if time.Now().After(deadline) {
			t.Fatal("the renewed certificate files were not picked up")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// https serves it too, and alice's stream is still there.
	hc, err := tls.Dial("tcp", ts.Addr("https"), &tls.Config{ServerName: "localhost", InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(hc.ConnectionState().PeerCertificates[0].Raw, second) {
		t.Fatal("https serves the old certificate")
	}
	hc.Close()
	if r := alice.IQ("p", "<iq type='get' id='p' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>"); r.Type != "result" {
		t.Fatalf("established session after the reload: %s", r.Raw)
	}
	ts.Login("alice", "pw", "after") // SCRAM-PLUS with the new certificate

	// A broken file: reported, the current certificate stays.
	if err := os.WriteFile(filepath.Join(dir, "server.crt"), []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	res, err := ts.Reload(ts.Cfg)
	if err != nil || res.CertError == nil || !strings.Contains(res.CertError.Error(), "tls.cert") {
		t.Fatalf("reload with a broken certificate: %+v %v", res, err)
	}
	if !bytes.Equal(servedCert(t, ts.Addr("c2s_tls")), second) {
		t.Fatal("a broken certificate file replaced the working one")
	}
}

// TestConfigReload: SIGHUP's reload applies the safe keys (admins,
// registration, limits for new connections, contact addresses) at once,
// and names what needs a restart.
func TestConfigReload(t *testing.T) {
	t.Parallel()
	logs := &syncBuffer{}
	ts := testserver.StartWithLog(t, logs)
	ts.AddUser("bob", "pw")
	bob := ts.Login("bob", "pw", "")
	stanzaErr(t, command(t, bob, nsAdmin+"#get-registered-users-num", nil), "forbidden")
	old := ts.Login("bob", "pw", "old")

	cfg := ts.Cfg
	cfg.Admins = []string{"bob@localhost"}
	cfg.Registration.Open = true
	cfg.Limits.MaxStanzaBytes = 10000
	cfg.Contact.Abuse = []string{"mailto:abuse@localhost"}
	cfg.MAM.Retention = 24 * time.Hour // needs a restart
	res, err := ts.Reload(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"admins", "registration.open", "limits.max_stanza_bytes", "contact.abuse"} {
		if !slices.Contains(res.Applied, k) {
			t.Errorf("%s not applied: %+v", k, res)
		}
	}
	if !slices.Equal(res.NeedsRestart, []string{"mam.retention"}) {
		t.Errorf("needs restart: %q", res.NeedsRestart)
	}
	if !strings.Contains(logs.String(), "needs_restart=mam.retention") || !strings.Contains(logs.String(), "applied=") {
		t.Errorf("no log line naming the changes:\n%s", logs.String())
	}

	completed(t, command(t, bob, nsAdmin+"#get-registered-users-num", nil))
	c := ts.Connect()
	if f := c.Features(); f.Child("http://jabber.org/features/iq-register", "register") == nil {
		t.Fatal("registration not open after reload")
	}
	r := bob.IQ("d", "<iq type='get' id='d' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
	if !strings.Contains(string(r.Raw), "mailto:abuse@localhost") {
		t.Fatalf("contact addresses not reloaded: %s", r.Raw)
	}
	// The smaller stanza limit holds for new connections; old ones keep theirs.
	big := "<message to='" + bob.JID + "' type='chat'><body>" + strings.Repeat("x", 20000) + "</body></message>"
	old.Send("%s", big)
	bob.Expect("big message on the old connection", MessageContaining("xxxx"))
	fresh := ts.Login("bob", "pw", "fresh")
	fresh.Send("%s", big)
	if se := fresh.StreamError(); se == nil || se.Condition != "policy-violation" {
		t.Fatalf("new connection after reload: %v", se)
	}
}
