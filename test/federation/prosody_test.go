package federation

import (
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/wire"
)

// prosody runs a real Prosody (Debian package) serving p.test on
// 127.0.0.6, routed to a.test at aAddr by a test-only module.
func startProsody(t *testing.T, ca *testCA, cert tls.Certificate, secureAuth, bidi bool, aAddr string) string {
	t.Helper()
	bin, err := exec.LookPath("prosody")
	if err != nil {
		t.Skip("SKIPPING PROSODY INTEROP: prosody is not installed (apt-get install prosody)")
	}
	dir := t.TempDir()
	caPath, crtPath, keyPath := writePEMFiles(t, dir, ca, cert)
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "certs"), 0o700); err != nil {
		t.Fatal(err)
	}
	port := freePortOn(t, "127.0.0.6")
	plugins, err := filepath.Abs("testdata/prosody")
	if err != nil {
		t.Fatal(err)
	}
	aHost, aPort, _ := net.SplitHostPort(aAddr)
	bidiModule := ""
	if bidi {
		bidiModule = `, "s2s_bidi"` // XEP-0288, not loaded by default
	}
	cfg := fmt.Sprintf(`
run_as_root = true
pidfile = %[1]q
data_path = %[2]q
certificates = %[3]q
plugin_paths = { %[4]q }
log = { debug = %[5]q }
interfaces = { "127.0.0.6" }
s2s_ports = { %[6]d }
s2s_direct_tls_ports = { }
c2s_direct_tls_ports = { }
modules_enabled = { "tls", "dialback", "saslauth", "disco", "ping", "parley_test_routes"%[13]s }
modules_disabled = { "c2s", "offline" }
s2s_require_encryption = true
s2s_secure_auth = %[7]t
parley_test_routes = { ["a.test"] = { %[8]q, %[9]s } }
ssl = { certificate = %[10]q, key = %[11]q, cafile = %[12]q }
VirtualHost "p.test"
`, filepath.Join(dir, "prosody.pid"), filepath.Join(dir, "data"), filepath.Join(dir, "certs"), plugins,
		filepath.Join(dir, "prosody.log"), port, secureAuth, aHost, aPort, crtPath, keyPath, caPath, bidiModule)
	cfgPath := filepath.Join(dir, "prosody.cfg.lua")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-F", "--config", cfgPath)
	out := &logBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Skipf("SKIPPING PROSODY INTEROP: cannot start prosody: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "prosody.log"))
			t.Logf("prosody output:\n%s\nprosody log:\n%s", out.String(), b)
		}
	})
	addr := net.JoinHostPort("127.0.0.6", strconv.Itoa(port))
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.Close()
			return addr
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(dir, "prosody.log"))
			t.Fatalf("prosody did not start listening on %s: %v\n%s\n%s", addr, err, out.String(), b)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func prosodyInterop(t *testing.T, secure, bidi bool) {
	ca := newCA(t)
	lnA := listen(t, "127.0.0.2")
	var certA, certP tls.Certificate
	if secure {
		certA, certP = ca.issue(t, "a.test", "a.test"), ca.issue(t, "p.test", "p.test")
	} else {
		certA, certP = ca.issue(t, "a.test", "other-a.example"), ca.issue(t, "p.test", "other-p.example")
	}
	pAddr := startProsody(t, ca, certP, secure, bidi, lnA.Addr().String())
	a := startNode(t, "a.test", lnA, ca, nodeOpts{cert: certA, requireValidCerts: secure,
		routes: map[string][]string{"p.test": {pAddr}}})
	alice := a.bind(t, "alice@a.test/x")

	// A ping to Prosody's domain: Parley → Prosody on our stream, the
	// result Prosody → Parley on its own stream to a.test.
	a.sendFrom(t, alice, "<iq type='get' from='alice@a.test/x' to='p.test' id='ping1'><ping xmlns='urn:xmpp:ping'/></iq>")
	st := alice.expect(t, 20*time.Second)
	if st.Name != "iq" || st.Type != "result" || st.ID != "ping1" || st.From != "p.test" || st.To != "alice@a.test/x" {
		t.Fatalf("want the ping result from p.test, got %s", st.Raw)
	}
	// A message to a user Prosody does not have comes back as an error.
	a.sendFrom(t, alice, message("alice@a.test/x", "nobody@p.test", "m1", "hello prosody"))
	st = alice.expect(t, 20*time.Second)
	if st.Type != "error" || st.ID != "m1" || st.Child(wire.NSClient, "error") == nil {
		t.Fatalf("want an error for m1, got %s", st.Raw)
	}
	mech, out := "dialback", `msg="authenticated with dialback"`
	if secure {
		mech, out = "EXTERNAL", `msg="authenticated with SASL EXTERNAL"`
	}
	waitLog(t, a, out, 5*time.Second) // Parley → Prosody
	if bidi {
		waitLog(t, a, "requested bidirectional stream", time.Second)
		// With certificates Prosody answers on our stream and never opens
		// one of its own. With dialback it must connect to a.test to
		// verify our key, and Prosody authenticates that connection too.
		if secure && (lnA.accepted() != 0 || strings.Contains(a.logs.String(), "mechanism="+mech+" remote=p.test")) {
			t.Fatalf("Prosody opened %d connections to a.test despite bidi", lnA.accepted())
		}
		t.Logf("parley <-> prosody federation works with %s over one bidirectional stream", mech)
		return
	}
	waitLog(t, a, "mechanism="+mech+" remote=p.test", 5*time.Second) // Prosody → Parley
	t.Logf("parley <-> prosody federation works with %s", mech)
}

func TestProsodyInteropSASLExternal(t *testing.T) { prosodyInterop(t, true, false) }
func TestProsodyInteropDialback(t *testing.T)     { prosodyInterop(t, false, false) }
func TestProsodyInteropBidiSASLExternal(t *testing.T) {
	prosodyInterop(t, true, true)
}
func TestProsodyInteropBidiDialback(t *testing.T) { prosodyInterop(t, false, true) }
