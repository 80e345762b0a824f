package interop

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/extdisco"
	"github.com/parley-xmpp/parley/internal/testserver"
	"github.com/parley-xmpp/parley/server"
)

// lockedBuffer collects a child's output for polling.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// freeUDPTCPPort finds a port free for both UDP and TCP on 127.0.0.1
// (coturn listens on both).
func freeUDPTCPPort(t *testing.T) int {
	t.Helper()
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := pc.LocalAddr().(*net.UDPAddr).Port
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		pc.Close()
		if err == nil {
			ln.Close()
			return port
		}
	}
	t.Fatal("no port free for both UDP and TCP")
	return 0
}

// startCoturn runs Debian's coturn on 127.0.0.1:port with the TURN REST
// API secret (use-auth-secret), as docs/production.md describes, and waits
// until it serves.
func startCoturn(t *testing.T, port int, secret string) {
	t.Helper()
	dir := t.TempDir()
	relay := 50000 + port%10000 // a relay port range of its own
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, "turnserver", "-n",
		"--listening-ip", "127.0.0.1", "--relay-ip", "127.0.0.1", "-p", strconv.Itoa(port),
		"--use-auth-secret", "--static-auth-secret="+secret, "--realm=localhost",
		"--no-tls", "--no-dtls", "--no-cli", "--allow-loopback-peers", "--no-software-attribute",
		"--min-port", strconv.Itoa(relay), "--max-port", strconv.Itoa(relay+99),
		"--log-file", "stdout", "--simple-log",
		"--pidfile", filepath.Join(dir, "turnserver.pid"), "--userdb", filepath.Join(dir, "turndb"))
	var out lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("turnserver: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("turnserver log:\n%s", out.String())
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(out.String(), "Total General servers") {
		if time.Now().After(deadline) {
			t.Fatalf("turnserver did not start:\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// allocate runs turnutils_uclient: it allocates relays with the
// credentials and sends packets between two of them (client to client).
func allocate(t *testing.T, port int, user, password string) (ok bool, out string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := exec.CommandContext(ctx, "turnutils_uclient", "-y", "-n", "3", "-l", "64", "-p", strconv.Itoa(port),
		"-u", user, "-w", password, "127.0.0.1").CombinedOutput()
	return err == nil && strings.Contains(string(b), "Total lost packets 0"), string(b)
}

func coturnAvailable(t *testing.T) {
	t.Helper()
	for _, bin := range []string{"turnserver", "turnutils_uclient"} {
		if _, err := exec.LookPath(bin); err != nil {
			missing(t, "%s not on PATH: scripts/ensure-peers.sh installs Debian's coturn", bin)
		}
	}
}

// TestCoturnCredentials: credentials that Parley hands out over XEP-0215
// allocate a relay on a real coturn with use-auth-secret; a wrong
// password and an expired username are refused.
func TestCoturnCredentials(t *testing.T) {
	coturnAvailable(t)
	port := freeUDPTCPPort(t)
	const secret = "coturn-interop-secret-4f1c"
	startCoturn(t, port, secret)
	ts := testserver.Start(t, func(c *server.Config) {
		c.ExternalServices = extdisco.Settings{Secret: secret, TTL: time.Hour, Services: []extdisco.Service{
			{Type: "stun", Host: "127.0.0.1", Port: port, Transport: "udp"},
			{Type: "turn", Host: "127.0.0.1", Port: port, Transport: "udp", Restricted: true},
		}}
	})
	alice := ts.AddUser("alice", "pw1")
	a := ts.Login("alice", "pw1", "phone")
	r := a.IQ("s", "<iq type='get' id='s' to='localhost'><services xmlns='urn:xmpp:extdisco:2' type='turn'/></iq>")
	svcs := r.Child(extdisco.NS, "services").ChildrenNamed(extdisco.NS, "service")
	if r.Type != "result" || len(svcs) != 1 {
		t.Fatalf("services: %s", r.Raw)
	}
	svc := svcs[0]
	user, password := svc.AttrValue("username"), svc.AttrValue("password")
	if !strings.HasSuffix(user, ":"+alice) || svc.AttrValue("port") != strconv.Itoa(port) {
		t.Fatalf("service %s", svc)
	}

	if ok, out := allocate(t, port, user, password); !ok {
		t.Fatalf("coturn refused Parley's credentials:\n%s", out)
	}
	if ok, out := allocate(t, port, user, password+"x"); ok {
		t.Fatalf("coturn accepted a wrong password:\n%s", out)
	}
	// The expiry is the username's timestamp, as coturn reads it: the same
	// credentials made with a past expiry are refused. (Parley's own clock
	// cannot be moved from here, so the past ones are made the same way
	// Parley makes them; the fresh ones rebuilt this way are accepted, which
	// shows the rebuilding matches.)
	rebuild := func(expiry int64) (string, string) {
		u := strconv.FormatInt(expiry, 10) + ":" + alice
		m := hmac.New(sha1.New, []byte(secret))
		m.Write([]byte(u))
		return u, base64.StdEncoding.EncodeToString(m.Sum(nil))
	}
	exp, _, _ := strings.Cut(user, ":")
	n, _ := strconv.ParseInt(exp, 10, 64)
	if u, p := rebuild(n); u != user || p != password {
		t.Fatalf("rebuilt %s/%s, Parley gave %s/%s", u, p, user, password)
	}
	u, p := rebuild(time.Now().Add(-time.Minute).Unix())
	if ok, out := allocate(t, port, u, p); ok {
		t.Fatalf("coturn accepted expired credentials:\n%s", out)
	}
}
