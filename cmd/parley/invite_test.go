package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/server"
)

// TestInviteAndTokenCLI: parley invite create|list|revoke and parley admin
// token create|list|revoke work on the same functions as the commands and
// the API (the e2e tests use what they create).
func TestInviteAndTokenCLI(t *testing.T) {
	cfgPath, _ := testCLIConfig(t, "")
	c := "--config=" + cfgPath

	r := runCLI(t, "", "invite", "create", "--expires", "2d", "--uses", "3", "--domain", "example.org", c)
	r.ok(t, "")
	lines := strings.Split(strings.TrimSpace(r.out), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "/invite/") || !strings.HasPrefix(lines[1], "xmpp:example.org?register;preauth=") {
		t.Fatalf("invite create output: %q", r.out)
	}
	if !strings.Contains(r.err, "3 use(s)") {
		t.Fatalf("invite create stderr: %q", r.err)
	}
	r = runCLI(t, "", "invite", "create", "--username", "zoe", "--admin", c)
	r.ok(t, "")
	if !strings.Contains(r.out, "xmpp:zoe@localhost?register;preauth=") {
		t.Fatalf("reserved invite: %q", r.out)
	}
	runCLI(t, "", "invite", "create", "--username", "zoe", c).fails(t, "already reserved")
	runCLI(t, "", "invite", "create", "--expires", "soon", c).fails(t, "--expires")
	runCLI(t, "", "invite", "create", "--uses", "0", c).fails(t, "number of uses")
	runCLI(t, "", "invite", "create", "--domain", "nowhere.example", c).fails(t, "not served here")

	r = runCLI(t, "", "invite", "list", c)
	r.ok(t, "")
	if strings.Count(r.out, "\n") != 3 || !strings.Contains(r.out, "zoe") || !strings.Contains(r.out, "true") {
		t.Fatalf("invite list: %q", r.out)
	}
	id := strings.Fields(strings.Split(r.out, "\n")[1])[0]
	runCLI(t, "", "invite", "revoke", id, c).ok(t, "invitation revoked\n")
	runCLI(t, "", "invite", "revoke", id, c).fails(t, "no such invitation")

	r = runCLI(t, "", "admin", "token", "create", "--name", "backups", c)
	r.ok(t, "")
	tok := strings.TrimSpace(r.out)
	if !strings.HasPrefix(tok, "parley_") || len(tok) < 40 {
		t.Fatalf("token: %q", r.out)
	}
	r = runCLI(t, "", "admin", "token", "list", c)
	r.ok(t, "")
	if !strings.Contains(r.out, "backups") || strings.Contains(r.out, tok) {
		t.Fatalf("token list (must not show the token): %q", r.out)
	}
	tid := strings.Fields(strings.Split(r.out, "\n")[1])[0]
	cfg, err := loadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	st, err := server.OpenStore(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := server.NewAdmin(cfg, st, nil, nil, nil).CheckAPIToken(t.Context(), tok); !ok {
		t.Fatal("created token does not authenticate")
	}
	st.Close()
	runCLI(t, "", "admin", "token", "revoke", tid, c).ok(t, "token revoked\n")
	runCLI(t, "", "admin", "token", "revoke", tid, c).fails(t, "no such token")
}

// TestServeSIGHUP: parley serve reloads its configuration file on SIGHUP
// and logs what changed and what needs a restart; a broken file changes
// nothing and says why.
func TestServeSIGHUP(t *testing.T) {
	cfgPath, _ := testCLIConfig(t, "")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errOut syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- execute(ctx, []string{"serve", "--config", cfgPath}, strings.NewReader(""), &out, &errOut)
	}()
	waitLog := func(what string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !strings.Contains(errOut.String(), what) {
			select {
			case code := <-done:
				t.Fatalf("serve exited (%d): %s", code, errOut.String())
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("no %q in the log:\n%s", what, errOut.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitLog("parley is running") // the SIGHUP handler is installed by then

	data, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(data), "hosts: [localhost, example.org]", "hosts: [localhost, example.org]\nadmins: [boss@localhost]\nmam: {retention: 24h}", 1)
	if err := os.WriteFile(cfgPath, []byte(edited), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitLog("needs_restart=mam.retention")
	if !strings.Contains(errOut.String(), "applied=admins") {
		t.Fatalf("reload log line: %s", errOut.String())
	}
	if err := os.WriteFile(cfgPath, []byte(edited+"\nbogus_key: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitLog("bogus_key: unknown key")
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("serve: %d %s", code, errOut.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop")
	}
}

// TestCheckCertificateExpiry: parley check warns when the configured
// certificate expires within 14 days.
func TestCheckCertificateExpiry(t *testing.T) {
	dir := t.TempDir()
	certPEM, keyPEM := testCert(t, time.Now().Add(10*24*time.Hour))
	crt, key := dir+"/c.pem", dir+"/k.pem"
	if err := os.WriteFile(crt, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	cfgPath, _ := testCLIConfig(t, "tls: {cert: "+crt+", key: "+key+"}\n")
	r := runCLI(t, "", "check", "--config="+cfgPath)
	if !strings.Contains(r.out, "WARN  certificate: "+crt+": certificate expires in 9 days") &&
		!strings.Contains(r.out, "WARN  certificate: "+crt+": certificate expires in 10 days") {
		t.Fatalf("no expiry warning:\n%s", r.out)
	}
}

// testCert is a certificate for localhost valid until notAfter, as PEM.
func testCert(t *testing.T, notAfter time.Time) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: notAfter, DNSNames: []string{"localhost", "example.org"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kd, _ := x509.MarshalPKCS8PrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd})
}

// TestWelcomeCLI: the welcome message set with parley admin welcome is
// waiting for an account created with parley user add.
func TestWelcomeCLI(t *testing.T) {
	cfgPath, _ := testCLIConfig(t, "")
	c := "--config=" + cfgPath
	runCLI(t, "", "admin", "welcome", "--set", "Welcome to Parley & friends!", c).ok(t, "Welcome to Parley & friends!\n")
	runCLI(t, "", "admin", "welcome", c).ok(t, "Welcome to Parley & friends!\n")
	runCLI(t, "", "user", "add", "zoe@localhost", "--password", "pw", c).ok(t, "user zoe@localhost created\n")
	cfg, err := loadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	st, err := server.OpenStore(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := st.OfflineMessages(t.Context(), "zoe@localhost")
	st.Close()
	if err != nil || len(msgs) != 1 || !strings.Contains(string(msgs[0].Raw), "Welcome to Parley &amp; friends!") {
		t.Fatalf("offline messages of the new account: %v %v", msgs, err)
	}
	runCLI(t, "", "admin", "welcome", "--clear", c).ok(t, "")
	runCLI(t, "", "admin", "welcome", "--clear", "--set", "x", c).fails(t, "exclude")
}
