package federation

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/internal/testserver"
	"github.com/parley-xmpp/parley/server"
	"github.com/parley-xmpp/parley/wire"
)

// ejabberdLibs is where Debian's ejabberd package keeps its Erlang
// applications (ejabberdctl sets ERL_LIBS to it).
const ejabberdLibs = "/usr/lib/x86_64-linux-gnu"

// freePortOn reserves a free port on ip and releases it for a server
// started right after.
func freePortOn(t *testing.T, ip string) int {
	t.Helper()
	ln := listen(t, ip)
	port := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()
	return port
}

// writePEMFiles writes the CA, a certificate and its key into dir.
func writePEMFiles(t *testing.T, dir string, ca *testCA, cert tls.Certificate) (caPath, crtPath, keyPath string) {
	t.Helper()
	write := func(name string, blocks ...*pem.Block) string {
		var b []byte
		for _, bl := range blocks {
			b = append(b, pem.EncodeToMemory(bl)...)
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	crt := &pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}
	key := &pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}
	return write("ca.pem", &pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw}), write("cert.pem", crt), write("key.pem", key)
}

// ejabberd is a real ejabberd (Debian package) serving e.test on
// 127.0.0.7, run as a child process of the test: a plain, non-distributed
// Erlang VM (no node name, no cookie, nothing registered with epmd), with
// its own config, spool and log in a temp dir. It finds a.test through a
// DNS server the test runs (see fakeDNS), named in an Erlang inetrc.
type ejabberd struct {
	c2s, s2s string // addresses
	dir      string
}

func startEjabberd(t *testing.T, ca *testCA, cert tls.Certificate, parleyS2SPort int) *ejabberd {
	t.Helper()
	erl, err := exec.LookPath("erl")
	apps, _ := filepath.Glob(filepath.Join(ejabberdLibs, "ejabberd-*", "ebin", "ejabberd.app"))
	if err != nil || len(apps) == 0 {
		t.Skip("SKIPPING EJABBERD INTEROP: ejabberd is not installed (run scripts/ensure-peers.sh or apt-get install ejabberd)")
	}
	dir := t.TempDir()
	caPath, crtPath, keyPath := writePEMFiles(t, dir, ca, cert)
	// ejabberd wants certificate and key in one file.
	crt, _ := os.ReadFile(crtPath)
	key, _ := os.ReadFile(keyPath)
	bundle := filepath.Join(dir, "e.test.pem")
	if err := os.WriteFile(bundle, append(crt, key...), 0o600); err != nil {
		t.Fatal(err)
	}
	spool := filepath.Join(dir, "spool")
	if err := os.MkdirAll(spool, 0o700); err != nil {
		t.Fatal(err)
	}
	c2sPort, s2sPort := freePortOn(t, "127.0.0.7"), freePortOn(t, "127.0.0.7")
	cfg := fmt.Sprintf(`hosts:
  - e.test
loglevel: info
log_rotate_count: 0
certfiles:
  - %[1]q
ca_file: %[2]q
listen:
  - port: %[3]d
    ip: "127.0.0.7"
    module: ejabberd_c2s
    starttls_required: true
  - port: %[4]d
    ip: "127.0.0.7"
    module: ejabberd_s2s_in
s2s_use_starttls: required
auth_method: internal
auth_password_format: plain
registration_timeout: infinity
acl:
  local:
    user_regexp: ""
access_rules:
  local:
    allow: local
  register:
    allow: all
  s2s:
    allow: all
s2s_access: s2s
modules:
  mod_disco: {}
  mod_ping: {}
  mod_roster: {}
  mod_s2s_dialback: {}
  mod_register:
    access: register
    ip_access: all
  mod_muc:
    host: conference.e.test
    access_create: all
    default_room_options:
      mam: false
`, bundle, caPath, c2sPort, s2sPort)
	cfgPath := filepath.Join(dir, "ejabberd.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	// Name resolution for the VM: ejabberd looks up SRV records with
	// inet_res (DNS only), so a DNS server of the test's own, and no other,
	// tells it where a.test is. The SRV target is an IP literal: ejabberd
	// 23.01 failed the A lookup of a name target here with "enoname".
	ns := serveDNS(t, "127.0.0.7", fakeDNS{
		srv: map[string]srvRecord{
			"_xmpp-server._tcp.a.test":            {target: "127.0.0.2", port: uint16(parleyS2SPort)},
			"_xmpp-server._tcp.conference.a.test": {target: "127.0.0.2", port: uint16(parleyS2SPort)},
		},
	})
	inetrc := filepath.Join(dir, "inetrc")
	rc := fmt.Sprintf("{resolv_conf, \"\"}.\n{hosts_file, \"\"}.\n{nameserver, {127,0,0,7}, %d}.\n{lookup, [dns]}.\n", ns.Port)
	if err := os.WriteFile(inetrc, []byte(rc), 0o600); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "ejabberd.log")
	cmd := exec.Command(erl, "-noinput", "-noshell", "+K", "true",
		"-mnesia", "dir", strconv.Quote(spool), "-s", "ejabberd")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"HOME="+dir,
		"ERL_LIBS="+ejabberdLibs,
		"ERL_INETRC="+inetrc,
		"ERL_CRASH_DUMP="+filepath.Join(dir, "erl_crash.dump"),
		"EJABBERD_CONFIG_PATH="+cfgPath,
		"EJABBERD_LOG_PATH="+logPath,
	)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out := &logBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Skipf("SKIPPING EJABBERD INTEROP: cannot start erl: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		// SIGTERM makes the Erlang VM stop cleanly; the whole process
		// group (the VM and its erl_child_setup) is ours.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("ejabberd output:\n%s\nejabberd log:\n%s", out.String(), b)
		}
	})
	e := &ejabberd{c2s: net.JoinHostPort("127.0.0.7", strconv.Itoa(c2sPort)),
		s2s: net.JoinHostPort("127.0.0.7", strconv.Itoa(s2sPort)), dir: dir}
	deadline := time.Now().Add(60 * time.Second)
	for _, addr := range []string{e.c2s, e.s2s} {
		for {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				_ = c.Close()
				break
			}
			select {
			case <-exited:
				b, _ := os.ReadFile(logPath)
				t.Fatalf("ejabberd exited before listening on %s:\n%s\n%s", addr, out.String(), b)
			default:
			}
			if time.Now().After(deadline) {
				b, _ := os.ReadFile(logPath)
				t.Fatalf("ejabberd did not start listening on %s: %v\n%s\n%s", addr, err, out.String(), b)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	return e
}

// TestEjabberdInterop: a full Parley serving a.test on 127.0.0.2 and a
// real ejabberd serving e.test on 127.0.0.7 federate: subscriptions both
// ways with presence seen on both sides, and messages both ways.
func TestEjabberdInterop(t *testing.T) {
	ca := newCA(t)
	parleyS2S := freePortOn(t, "127.0.0.2")
	e := startEjabberd(t, ca, ca.issue(t, "e.test", "e.test"), parleyS2S)

	pdir := t.TempDir()
	caPath, crtPath, keyPath := writePEMFiles(t, pdir, ca, ca.issue(t, "a.test", "a.test"))
	p := testserver.Start(t, func(c *server.Config) {
		c.Hosts = []string{"a.test"}
		c.Listen = server.ListenConfig{C2S: "127.0.0.2:0", S2S: "127.0.0.2:" + strconv.Itoa(parleyS2S)}
		c.TLS = server.TLSConfig{Cert: crtPath, Key: keyPath}
		c.S2S.CAFile = caPath
		c.S2S.Routes = []string{"e.test=" + e.s2s}
	})
	p.AddUser("alice", "alice-pw")
	alice := p.Login("alice", "alice-pw", "phone")
	eve := c2sLogin(t, e.c2s, "e.test", "eve", "eve-pw", "tablet", true)
	alice.Send("<presence/>")
	eve.Send("<presence/>")
	const slow = 20 * time.Second // first contact includes s2s setup

	// alice (Parley) subscribes to eve (ejabberd).
	alice.Send("<presence to='eve@e.test' type='subscribe'/>")
	eve.ExpectWithin("subscribe from alice", slow, testserver.PresenceFrom("alice@a.test", "subscribe"))
	eve.Send("<presence to='alice@a.test' type='subscribed'/>")
	alice.Expect("subscribed from eve", testserver.PresenceFrom("eve@e.test", "subscribed"))
	alice.Expect("eve's presence", testserver.PresenceFrom("eve@e.test/tablet", ""))

	// eve (ejabberd) subscribes to alice (Parley).
	eve.Send("<presence to='alice@a.test' type='subscribe'/>")
	alice.Expect("subscribe from eve", testserver.PresenceFrom("eve@e.test", "subscribe"))
	alice.Send("<presence to='eve@e.test' type='subscribed'/>")
	eve.ExpectWithin("subscribed from alice", slow, testserver.PresenceFrom("alice@a.test", "subscribed"))
	eve.ExpectWithin("alice's presence", slow, testserver.PresenceFrom("alice@a.test/phone", ""))

	// Presence changes flow both ways now.
	alice.Send("<presence><show>away</show></presence>")
	eve.ExpectWithin("alice away", slow, func(s *wire.Stanza) bool {
		return testserver.PresenceFrom("alice@a.test/phone", "")(s) && s.Child(wire.NSClient, "show").Text() == "away"
	})
	eve.Send("<presence><show>dnd</show></presence>")
	alice.Expect("eve dnd", func(s *wire.Stanza) bool {
		return testserver.PresenceFrom("eve@e.test/tablet", "")(s) && s.Child(wire.NSClient, "show").Text() == "dnd"
	})

	// Messages both ways, to bare and full JIDs.
	alice.Send("<message to='eve@e.test' type='chat' id='p1'><body>hello from parley</body></message>")
	m := eve.ExpectWithin("alice's message", slow, testserver.MessageWithBody("hello from parley"))
	if m.From != "alice@a.test/phone" || m.Type != "chat" {
		t.Fatalf("eve got %s", m.Raw)
	}
	eve.Send("<message to='alice@a.test/phone' type='chat' id='e1'><body>hello from ejabberd</body></message>")
	m = alice.Expect("eve's message", testserver.MessageWithBody("hello from ejabberd"))
	if m.From != "eve@e.test/tablet" || m.To != "alice@a.test/phone" {
		t.Fatalf("alice got %s", m.Raw)
	}

	// Both rosters say "both".
	res := alice.IQ("r1", "<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>")
	if item := rosterItem(res, "eve@e.test"); item == nil || item.AttrValue("subscription") != "both" {
		t.Fatalf("alice's roster: %s", res.Raw)
	}
	eve.Send("<iq type='get' id='r2'><query xmlns='jabber:iq:roster'/></iq>")
	res = eve.ExpectWithin("eve's roster", slow, func(s *wire.Stanza) bool { return s.Name == "iq" && s.ID == "r2" })
	if item := rosterItem(res, "alice@a.test"); item == nil || item.AttrValue("subscription") != "both" {
		t.Fatalf("eve's roster: %s", res.Raw)
	}
	t.Logf("parley <-> ejabberd federation: subscriptions, presence and messages both ways")
}

func rosterItem(res *wire.Stanza, jid string) *wire.Element {
	q := res.Child("jabber:iq:roster", "query")
	if q == nil {
		return nil
	}
	for _, it := range q.ChildrenNamed("jabber:iq:roster", "item") {
		if it.AttrValue("jid") == jid {
			return it
		}
	}
	return nil
}
