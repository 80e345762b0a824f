package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/auth"
	"github.com/parley-xmpp/parley/server"
)

type cliResult struct {
	out, err string
	code     int
}

func runCLI(t *testing.T, stdin string, args ...string) cliResult {
	t.Helper()
	return runCLIContext(t, context.Background(), stdin, args...)
}

func runCLIContext(t *testing.T, ctx context.Context, stdin string, args ...string) cliResult {
	t.Helper()
	var out, errOut syncBuffer
	code := execute(ctx, args, strings.NewReader(stdin), &out, &errOut)
	return cliResult{out.String(), errOut.String(), code}
}

// syncBuffer is a bytes.Buffer safe for the server's logging goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testCLIConfig writes a config with a temporary data_dir, two hosts and
// fast password hashing, and returns its path and data_dir.
func testCLIConfig(t *testing.T, extra string) (path, dataDir string) {
	t.Helper()
	clearParleyEnv(t)
	noDefaultConfigFiles(t)
	dataDir = filepath.Join(t.TempDir(), "data")
	path = writeConfig(t, fmt.Sprintf(`
hosts: [localhost, example.org]
data_dir: %q
auth:
  iterations: 4096
listen:
  c2s: "127.0.0.1:0"
  c2s_tls: "127.0.0.1:0"
  http: "127.0.0.1:0"
  https: "127.0.0.1:0"
  admin: "127.0.0.1:0"
  s2s: "127.0.0.1:0"
  s2s_tls: "127.0.0.1:0"
%s`, dataDir, extra))
	return path, dataDir
}

func (r cliResult) ok(t *testing.T, wantOut string) {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("exit %d, stderr %q, stdout %q", r.code, r.err, r.out)
	}
	if wantOut != "" && r.out != wantOut {
		t.Fatalf("stdout %q, want %q", r.out, wantOut)
	}
}

func (r cliResult) fails(t *testing.T, wantErr string) {
	t.Helper()
	if r.code == 0 {
		t.Fatalf("exit 0, want failure; stdout %q", r.out)
	}
	if !strings.HasPrefix(r.err, "parley: ") || !strings.Contains(r.err, wantErr) {
		t.Fatalf("stderr %q, want \"parley: ...%s...\"", r.err, wantErr)
	}
}

func TestUserRoundTrip(t *testing.T) {
	cfgPath, _ := testCLIConfig(t, "")
	c := "--config=" + cfgPath

	runCLI(t, "", "user", "add", "alice@localhost", "--password", "s3cret", c).ok(t, "user alice@localhost created\n")
	// Password as one line on stdin (not a terminal); normalization.
	runCLI(t, "hunter2\n", "user", "add", "Bob@Example.ORG", c).ok(t, "user bob@example.org created\n")
	runCLI(t, "pw-without-newline", "user", "add", "carol@localhost", c).ok(t, "user carol@localhost created\n")

	runCLI(t, "", "user", "list", c).ok(t, "alice@localhost\nbob@example.org\ncarol@localhost\n")
	runCLI(t, "", "user", "list", "example.org", c).ok(t, "bob@example.org\n")
	runCLI(t, "", "user", "list", "LOCALHOST", c).ok(t, "alice@localhost\ncarol@localhost\n")

	runCLI(t, "", "user", "add", "alice@localhost", "--password", "other", c).fails(t, "user alice@localhost already exists")

	runCLI(t, "n3w\n", "user", "passwd", "alice@localhost", c).ok(t, "password of alice@localhost changed\n")
	checkPassword(t, cfgPath, "alice@localhost", "n3w", true)
	checkPassword(t, cfgPath, "alice@localhost", "s3cret", false)
	checkPassword(t, cfgPath, "bob@example.org", "hunter2", true)
	checkPassword(t, cfgPath, "carol@localhost", "pw-without-newline", true)
	runCLI(t, "", "user", "passwd", "bob@example.org", "-p", "x2", c).ok(t, "password of bob@example.org changed\n")
	checkPassword(t, cfgPath, "bob@example.org", "x2", true)

	runCLI(t, "", "user", "delete", "alice@localhost", c).ok(t, "user alice@localhost deleted\n")
	runCLI(t, "", "user", "delete", "alice@localhost", c).fails(t, "no such user alice@localhost")
	runCLI(t, "", "user", "passwd", "alice@localhost", "--password", "x", c).fails(t, "no such user alice@localhost")
	runCLI(t, "", "user", "list", c).ok(t, "bob@example.org\ncarol@localhost\n")
}

func checkPassword(t *testing.T, cfgPath, bare, password string, want bool) {
	t.Helper()
	cfg, err := loadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	st, err := server.OpenStore(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	creds, err := st.Credentials(context.Background(), bare)
	if err != nil {
		t.Fatalf("credentials of %s: %v", bare, err)
	}
	if got := auth.VerifyPassword(creds, password); got != want {
		t.Errorf("VerifyPassword(%s, %q) = %v, want %v", bare, password, got, want)
	}
	if len(creds) == 0 || creds[0].Iterations != 4096 {
		t.Errorf("credentials %+v: want auth.iterations from the config", creds)
	}
}

func TestUserErrors(t *testing.T) {
	cfgPath, _ := testCLIConfig(t, "")
	c := "--config=" + cfgPath
	for _, tc := range []struct {
		name, stdin string
		args        []string
		want        string
	}{
		{"wrong domain", "", []string{"user", "add", "alice@other.example", "-p", "x"}, "domain other.example is not served here (hosts: localhost, example.org)"},
		{"no localpart", "", []string{"user", "add", "localhost", "-p", "x"}, `"localhost" is not a user JID`},
		{"resource", "", []string{"user", "add", "alice@localhost/phone", "-p", "x"}, "expected a bare JID"},
		{"invalid jid", "", []string{"user", "add", "a@b@c", "-p", "x"}, `"a@b@c" is not a valid JID`},
		{"empty flag password", "", []string{"user", "add", "alice@localhost", "--password="}, "empty password refused"},
		{"empty stdin password", "\n", []string{"user", "add", "alice@localhost"}, "empty password refused"},
		{"no stdin", "", []string{"user", "add", "alice@localhost"}, "no password given"},
		{"list unknown domain", "", []string{"user", "list", "other.example"}, "domain other.example is not served here"},
		{"delete wrong domain", "", []string{"user", "delete", "bob@other.example"}, "not served here"},
		{"missing JID", "", []string{"user", "add"}, "expected one JID"},
		{"extra args", "", []string{"user", "delete", "a@localhost", "b@localhost"}, "got 2 arguments"},
		{"unknown subcommand", "", []string{"user", "frobnicate"}, `unknown command "frobnicate"`},
		{"unknown command", "", []string{"frobnicate"}, `unknown command "frobnicate"`},
		{"unknown flag", "", []string{"user", "list", "--bogus"}, "unknown flag: --bogus"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			runCLI(t, tc.stdin, append(tc.args, c)...).fails(t, tc.want)
		})
	}
	// Nothing was created by the failures.
	runCLI(t, "", "user", "list", c).ok(t, "")

	// A broken config file stops user commands too.
	bad := filepath.Join(configsDir, "testdata", "unknown_nested_key.bad.yaml")
	runCLI(t, "", "user", "list", "--config", bad).fails(t, "listen.c2ss: unknown key")
}

func TestUsageHint(t *testing.T) {
	r := runCLI(t, "", "user", "add")
	if !strings.Contains(r.err, "Run 'parley user add --help' for usage.") {
		t.Errorf("stderr %q lacks the usage hint", r.err)
	}
	r = runCLI(t, "", "help")
	r.ok(t, "")
	for _, cmd := range []string{"serve", "user", "check", "version"} {
		if !strings.Contains(r.out, cmd) {
			t.Errorf("help does not list %s", cmd)
		}
	}
}

func TestVersion(t *testing.T) {
	r := runCLI(t, "", "version")
	r.ok(t, "")
	for _, re := range []string{`(?m)^parley \S+$`, `(?m)^commit .+$`, `(?m)^go +go\d`} {
		if !regexp.MustCompile(re).MatchString(r.out) {
			t.Errorf("version output %q does not match %s", r.out, re)
		}
	}
}

// fakeResolver answers from maps; anything else is NXDOMAIN.
type fakeResolver struct {
	srv   map[string][]*net.SRV // "_xmpp-client._tcp.example.org"
	hosts map[string][]string
}

func (f fakeResolver) LookupSRV(_ context.Context, service, proto, name string) (string, []*net.SRV, error) {
	q := "_" + service + "._" + proto + "." + name
	if r, ok := f.srv[q]; ok {
		return q, r, nil
	}
	return "", nil, &net.DNSError{Err: "no such host", Name: q, IsNotFound: true}
}

func (f fakeResolver) LookupHost(_ context.Context, host string) ([]string, error) {
	if a, ok := f.hosts[host]; ok {
		return a, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

func useResolver(t *testing.T, r resolver) {
	t.Helper()
	saved := checkResolver
	checkResolver = r
	t.Cleanup(func() { checkResolver = saved })
}

func TestCheckLocal(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cfgPath, dataDir := testCLIConfig(t, "")
	t.Setenv("PARLEY_LISTEN_HTTP", busy.Addr().String())
	t.Setenv("PARLEY_LISTEN_HTTPS", "")
	t.Setenv("PARLEY_HOSTS", "localhost")
	t.Setenv("PARLEY_LISTEN_C2", ":6222")       // a typo: named, with the key it meant
	t.Setenv("PARLEY_TEST_WHATEVER", "ignored") // the test suite's own
	useResolver(t, fakeResolver{})              // must not be asked

	r := runCLI(t, "", "check", "--config", cfgPath)
	r.ok(t, "")
	if strings.Contains(r.out, "PARLEY_TEST_WHATEVER") {
		t.Errorf("check warns about a test variable:\n%s", r.out)
	}
	for _, want := range []string{
		"OK    config: " + cfgPath + " is valid",
		"WARN  config: environment variable PARLEY_LISTEN_C2 (did you mean PARLEY_LISTEN_C2S?) ignored: not a configuration key",
		"OK    certificate: no certificate yet, one will be generated on first start",
		"OK    listen.c2s: 127.0.0.1:0 can be bound",
		"WARN  listen.http: " + busy.Addr().String() + " is in use",
		"OK    listen.https: disabled",
		"OK    dns localhost: local name, DNS not checked",
	} {
		if !strings.Contains(r.out, want) {
			t.Errorf("check output lacks %q:\n%s", want, r.out)
		}
	}
	if _, err := os.Stat(filepath.Join(dataDir, "tls")); !os.IsNotExist(err) {
		t.Error("check generated a certificate")
	}

	// With a generated certificate, check reports it.
	cfg, err := loadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := server.LoadOrCreateCertificate(cfg); err != nil {
		t.Fatal(err)
	}
	r = runCLI(t, "", "check", "--config", cfgPath)
	r.ok(t, "")
	if !strings.Contains(r.out, "OK    certificate: ") || !strings.Contains(r.out, "self-signed") || strings.Contains(r.out, "FAIL") {
		t.Errorf("check output with a self-signed certificate for localhost:\n%s", r.out)
	}
}

func TestCheckFailures(t *testing.T) {
	cfgPath, _ := testCLIConfig(t, "")

	// Invalid configuration: one FAIL line, exit 1.
	r := runCLI(t, "", "check", "--config", filepath.Join(configsDir, "testdata", "bad_storage_backend.bad.yaml"))
	r.fails(t, "1 check failed")
	if !strings.HasPrefix(r.out, "FAIL  config: ") || !strings.Contains(r.out, `storage.backend: "mysql" is not supported`) {
		t.Errorf("output %q", r.out)
	}

	// Configured certificate files that do not exist.
	t.Setenv("PARLEY_TLS_CERT", "/nonexistent/cert.pem")
	t.Setenv("PARLEY_TLS_KEY", "/nonexistent/key.pem")
	useResolver(t, fakeResolver{})
	r = runCLI(t, "", "check", "--config", cfgPath)
	r.fails(t, "check")
	if !strings.Contains(r.out, "FAIL  certificate: tls.cert: cannot read certificate file") {
		t.Errorf("output lacks the certificate failure:\n%s", r.out)
	}
	// Public host without any DNS: FAIL.
	if !strings.Contains(r.out, "FAIL  dns example.org: no client SRV records and example.org has no address") {
		t.Errorf("output lacks the DNS failure:\n%s", r.out)
	}
}

func TestCheckDNS(t *testing.T) {
	cfgPath, _ := testCLIConfig(t, "")
	t.Setenv("PARLEY_HOSTS", "example.org")
	t.Setenv("PARLEY_LISTEN_C2S", ":5222")
	t.Setenv("PARLEY_LISTEN_C2S_TLS", ":5223")
	useResolver(t, fakeResolver{
		srv: map[string][]*net.SRV{
			"_xmpp-client._tcp.example.org":  {{Target: "xmpp.example.org.", Port: 5222, Priority: 5}},
			"_xmpps-client._tcp.example.org": {{Target: "xmpp.example.org.", Port: 443, Priority: 5}},
			"_xmpp-server._tcp.example.org":  {{Target: ".", Port: 0}},
		},
		hosts: map[string][]string{"example.org": {"192.0.2.1"}},
	})
	r := runCLI(t, "", "check", "--config", cfgPath)
	r.ok(t, "")
	for _, want := range []string{
		"OK    dns example.org: _xmpp-client._tcp.example.org → xmpp.example.org:5222",
		"OK    dns example.org: _xmpps-client._tcp.example.org → xmpp.example.org:443",
		"WARN  dns example.org: _xmpps-client._tcp.example.org points to port 443 but the listener uses port 5223",
		`OK    dns example.org: _xmpp-server._tcp.example.org: "." (service explicitly not offered)`,
		"WARN  dns example.org: _xmpps-server._tcp.example.org: missing",
		"OK    dns example.org: example.org has addresses 192.0.2.1",
		// No certificate yet for a public host: a warning.
		"WARN  certificate: no certificate yet, one will be generated on first start",
	} {
		if !strings.Contains(r.out, want) {
			t.Errorf("check output lacks %q:\n%s", want, r.out)
		}
	}
}

func TestServe(t *testing.T) {
	cfgPath, dataDir := testCLIConfig(t, "log:\n  format: json\n  level: debug\n")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan cliResult, 1)
	go func() { done <- runCLIContext(t, ctx, "", "serve", "--config", cfgPath) }()

	certFile, _ := server.SelfSignedPaths(dataDir)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(certFile); err == nil {
			break
		}
		select {
		case r := <-done:
			t.Fatalf("serve exited early: %d %q", r.code, r.err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("serve did not create the self-signed certificate")
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	cancel()
	select {
	case r := <-done:
		r.ok(t, "")
		t.Logf("serve log:\n%s", r.err)
		if !strings.Contains(r.err, `"msg":"configuration loaded"`) {
			t.Errorf("stderr is not the JSON log: %q", r.err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop after its context was cancelled")
	}
}

func TestServeBadConfig(t *testing.T) {
	clearParleyEnv(t)
	noDefaultConfigFiles(t)
	runCLI(t, "", "serve", "--config", filepath.Join(configsDir, "testdata", "bad_log_level.bad.yaml")).
		fails(t, `log.level: "verbose" is not a level`)
	runCLI(t, "", "serve", "--config", "/nonexistent/parley.yaml").fails(t, "/nonexistent/parley.yaml")
}
