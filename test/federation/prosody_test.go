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

// prosodyOpts say what the test Prosody serves.
type prosodyOpts struct {
	secureAuth, bidi bool
	// chat: clients too (STARTTLS, in-band registration open) and a MUC
	// service on conference.p.test; its c2s address is returned.
	chat bool
	// routes: more Parley domains than a.test (e.g. conference.a.test),
	// all at aAddr.
	routes []string
}

// prosody runs a real Prosody (Debian package) serving p.test on
// 127.0.0.6, routed to a.test (and o.routes) at aAddr by a test-only
// module. It returns its s2s address and, with o.chat, its c2s address.
func startProsody(t *testing.T, ca *testCA, cert tls.Certificate, o prosodyOpts, aAddr string) (s2sAddr, c2sAddr string) {
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
	extraModules := ""
	if o.bidi {
		extraModules = `, "s2s_bidi"` // XEP-0288, not loaded by default
	}
	routes := fmt.Sprintf("[%q] = { %q, %s }", "a.test", aHost, aPort)
	for _, d := range o.routes {
		routes += fmt.Sprintf(", [%q] = { %q, %s }", d, aHost, aPort)
	}
	c2sPort, disabled, chat, component := 0, `"c2s", "offline"`, "", ""
	if o.chat {
		c2sPort = freePortOn(t, "127.0.0.6")
		extraModules += `, "roster", "register"`
		disabled = `"offline"`
		chat = fmt.Sprintf(`c2s_ports = { %d }
c2s_require_encryption = true
allow_registration = true
authentication = "internal_plain"
`, c2sPort)
		component = `Component "conference.p.test" "muc"
restrict_room_creation = false
`
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
modules_disabled = { %[14]s }
s2s_require_encryption = true
s2s_secure_auth = %[7]t
parley_test_routes = { %[8]s }
ssl = { certificate = %[10]q, key = %[11]q, cafile = %[12]q }
%[9]sVirtualHost "p.test"
%[15]s`, filepath.Join(dir, "prosody.pid"), filepath.Join(dir, "data"), filepath.Join(dir, "certs"), plugins,
		filepath.Join(dir, "prosody.log"), port, o.secureAuth, routes, chat, crtPath, keyPath, caPath, extraModules,
		disabled, component)
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
	s2sAddr = net.JoinHostPort("127.0.0.6", strconv.Itoa(port))
	addrs := []string{s2sAddr}
	if o.chat {
		c2sAddr = net.JoinHostPort("127.0.0.6", strconv.Itoa(c2sPort))
		addrs = append(addrs, c2sAddr)
	}
	deadline := time.Now().Add(15 * time.Second)
	for _, addr := range addrs {
		for {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				_ = c.Close()
				break
			}
			if time.Now().After(deadline) {
				b, _ := os.ReadFile(filepath.Join(dir, "prosody.log"))
				t.Fatalf("prosody did not start listening on %s: %v\n%s\n%s", addr, err, out.String(), b)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return s2sAddr, c2sAddr
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
	pAddr, _ := startProsody(t, ca, certP, prosodyOpts{secureAuth: secure, bidi: bidi}, lnA.Addr().String())
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
