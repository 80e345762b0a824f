package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/viper"

	"github.com/parley-xmpp/parley/component"
	"github.com/parley-xmpp/parley/extdisco"
	"github.com/parley-xmpp/parley/server"
)

const configsDir = "../../configs"

// noDefaultConfigFiles keeps ./parley.yaml or /etc/parley/parley.yaml on
// the test machine out of the tests.
func noDefaultConfigFiles(t *testing.T) {
	t.Helper()
	saved := defaultConfigPaths
	defaultConfigPaths = nil
	t.Cleanup(func() { defaultConfigPaths = saved })
}

// clearParleyEnv unsets every PARLEY_* variable for the test.
func clearParleyEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, envPrefix) {
			t.Setenv(name, "") // registers restoration
			os.Unsetenv(name)
		}
	}
}

func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "parley.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestBadConfigs: every configs/testdata/NAME.bad.yaml must fail to load
// with an error containing the text of NAME.bad.err.
func TestBadConfigs(t *testing.T) {
	clearParleyEnv(t)
	noDefaultConfigFiles(t)
	files, err := filepath.Glob(filepath.Join(configsDir, "testdata", "*.bad.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 10 {
		t.Fatalf("found %d bad configs, want at least 10", len(files))
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".bad.yaml")
		t.Run(name, func(t *testing.T) {
			want, err := os.ReadFile(strings.TrimSuffix(f, ".yaml") + ".err")
			if err != nil {
				t.Fatalf("missing expected error file: %v", err)
			}
			wantText := strings.TrimRight(string(want), "\n")
			if wantText == "" {
				t.Fatal("empty .err file")
			}
			_, err = loadConfig(f)
			if err == nil {
				t.Fatalf("loaded without error; want %q", wantText)
			}
			if !strings.Contains(err.Error(), wantText) {
				t.Errorf("error:\n%v\nwant it to contain:\n%s", err, wantText)
			}
			if !strings.Contains(err.Error(), f) {
				t.Errorf("error %q does not name the file %s", err, f)
			}
		})
	}
	// Every .err has its .yaml.
	errs, _ := filepath.Glob(filepath.Join(configsDir, "testdata", "*.bad.err"))
	for _, e := range errs {
		if _, err := os.Stat(strings.TrimSuffix(e, ".err") + ".yaml"); err != nil {
			t.Errorf("%s has no matching .bad.yaml", e)
		}
	}
}

// TestExampleConfig: the example is valid, sets every key, and its values
// are the defaults (hosts may differ).
func TestExampleConfig(t *testing.T) {
	clearParleyEnv(t)
	noDefaultConfigFiles(t)
	path := filepath.Join(configsDir, "parley.example.yaml")
	cfg, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	def := server.DefaultConfig()
	cfg.Hosts = def.Hosts
	if !reflect.DeepEqual(cfg, def) {
		t.Errorf("example differs from DefaultConfig:\n got %+v\nwant %+v", cfg, def)
		for _, k := range configKeys() {
			g := reflect.ValueOf(cfg).FieldByIndex(k.index).Interface()
			w := reflect.ValueOf(def).FieldByIndex(k.index).Interface()
			if !reflect.DeepEqual(g, w) {
				t.Errorf("  %s: example has %#v, default is %#v", k.path, g, w)
			}
		}
	}

	v := viper.New()
	v.SetConfigFile(path)
	if err := v.ReadInConfig(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range configKeys() {
		if !v.IsSet(k.path) {
			t.Errorf("example does not set %s", k.path)
		}
		// The line before the key, or the key's group, carries a comment.
		if !documented(string(data), k.path) {
			t.Errorf("example has no comment for %s", k.path)
		}
	}
}

// documented reports whether the key (last path element) in the example is
// preceded by a comment line, directly or above its group or an earlier
// sibling that shares the comment (e.g. "cert" and "key").
func documented(text, path string) bool {
	parts := strings.Split(path, ".")
	lines := strings.Split(text, "\n")
	depth := 0
	for i, line := range lines {
		indent := strings.Repeat("  ", depth)
		if !strings.HasPrefix(line, indent+parts[depth]+":") {
			continue
		}
		if depth < len(parts)-1 {
			depth++
			continue
		}
		for j := i - 1; j >= 0; j-- {
			l := strings.TrimSpace(lines[j])
			if strings.HasPrefix(l, "#") {
				return true
			}
			if l == "" || !strings.HasPrefix(lines[j], indent) || strings.HasSuffix(l, ":") {
				return false
			}
			// A sibling key without a blank line: keep looking up.
		}
	}
	return false
}

func TestNoConfigFileIsDefault(t *testing.T) {
	clearParleyEnv(t)
	noDefaultConfigFiles(t)
	cfg, err := loadConfig("")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg, server.DefaultConfig()) {
		t.Errorf("got %+v, want defaults", cfg)
	}
}

func TestDefaultConfigPaths(t *testing.T) {
	clearParleyEnv(t)
	dir := t.TempDir()
	first := filepath.Join(dir, "first.yaml")
	second := filepath.Join(dir, "second.yaml")
	if err := os.WriteFile(second, []byte("hosts: [second.example]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	saved := defaultConfigPaths
	defaultConfigPaths = []string{first, second}
	t.Cleanup(func() { defaultConfigPaths = saved })

	cfg, err := loadConfig("")
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Hosts; len(got) != 1 || got[0] != "second.example" {
		t.Errorf("hosts %v: the second default path was not used", got)
	}
	if err := os.WriteFile(first, []byte("hosts: [first.example]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if cfg, err = loadConfig(""); err != nil || cfg.Hosts[0] != "first.example" {
		t.Errorf("hosts %v, %v: the first default path was not preferred", cfg.Hosts, err)
	}
	// An explicit --config wins; a missing explicit file is an error.
	explicit := writeConfig(t, "hosts: [explicit.example]\n")
	if cfg, err = loadConfig(explicit); err != nil || cfg.Hosts[0] != "explicit.example" {
		t.Errorf("hosts %v, %v: --config not used", cfg.Hosts, err)
	}
	if _, err := loadConfig(filepath.Join(dir, "missing.yaml")); err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("missing --config file: err %v", err)
	}
}

// TestEnvOverridesEveryKey sets each key through its environment variable,
// with no config file and with a file that lacks the key, and checks the
// value arrives.
func TestEnvOverridesEveryKey(t *testing.T) {
	clearParleyEnv(t)
	noDefaultConfigFiles(t)
	file := writeConfig(t, "log:\n  format: json\n")
	for _, k := range configKeys() {
		var env string
		var want any
		switch {
		case k.typ == durationType:
			env, want = "42s", 42*time.Second
		case k.typ.Kind() == reflect.String:
			env, want = "env-value", "env-value"
		case k.typ.Kind() == reflect.Int:
			env, want = "4242", 4242
		case k.typ.Kind() == reflect.Int64:
			env, want = "4242", int64(4242)
		case k.typ.Kind() == reflect.Bool:
			def := reflect.ValueOf(server.DefaultConfig()).FieldByIndex(k.index).Bool()
			env, want = map[bool]string{true: "false", false: "true"}[def], !def
		case k.typ == reflect.TypeFor[[]extdisco.Service]():
			// A list of mappings is JSON in the environment.
			env = `[{"type": "turn", "host": "turn.example.org", "port": 3478, "transport": "udp", "restricted": true}]`
			want = []extdisco.Service{{Type: "turn", Host: "turn.example.org", Port: 3478, Transport: "udp", Restricted: true}}
		case k.typ == reflect.TypeFor[[]component.Component]():
			env = `[{"domain": "irc.example.org", "secret": "a-secret-of-enough-length"}]`
			want = []component.Component{{Domain: "irc.example.org", Secret: "a-secret-of-enough-length"}}
		case k.typ.Kind() == reflect.Slice:
			env, want = "a.example, b.example c.example", []string{"a.example", "b.example", "c.example"}
		default:
			t.Fatalf("%s: no test value for type %s", k.path, k.typ)
		}
		for _, f := range []string{"", file} {
			t.Run(k.path+"/file="+filepath.Base(f), func(t *testing.T) {
				t.Setenv(k.env, env)
				cfg, err := readConfig(f)
				if err != nil {
					t.Fatal(err)
				}
				got := reflect.ValueOf(cfg).FieldByIndex(k.index).Interface()
				if !reflect.DeepEqual(got, want) && !reflect.DeepEqual(reflect.ValueOf(got).Convert(reflect.TypeOf(want)).Interface(), want) {
					t.Errorf("%s=%q: %s = %#v, want %#v", k.env, env, k.path, got, want)
				}
				if f != "" && k.path != "log.format" && cfg.Log.Format != "json" {
					t.Error("file value lost when an env variable is set")
				}
			})
		}
	}
}

func TestEnvOverrides(t *testing.T) {
	clearParleyEnv(t)
	noDefaultConfigFiles(t)
	file := writeConfig(t, `
hosts: [file.example]
listen:
  c2s: ":1111"
  http: ":5280"
storage:
  backend: sqlite
auth:
  timeout: 10s
`)
	t.Setenv("PARLEY_LISTEN_C2S", ":6222")
	t.Setenv("PARLEY_LISTEN_HTTP", "") // set but empty: disables
	t.Setenv("PARLEY_HOSTS", "a.example b.example")
	t.Setenv("PARLEY_STORAGE_BACKEND", "postgres")
	t.Setenv("PARLEY_STORAGE_POSTGRES_DSN", "postgres://localhost/parley")
	t.Setenv("PARLEY_AUTH_TIMEOUT", "1m")
	t.Setenv("PARLEY_REGISTRATION_OPEN", "true")
	t.Setenv("PARLEY_CONTACT_ABUSE", "mailto:abuse@a.example,xmpp:abuse@a.example")
	cfg, err := loadConfig(file)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen.C2S != ":6222" {
		t.Errorf("listen.c2s = %q", cfg.Listen.C2S)
	}
	if cfg.Listen.HTTP != "" {
		t.Errorf("listen.http = %q, want disabled by empty variable", cfg.Listen.HTTP)
	}
	if cfg.Listen.HTTPS != ":5281" {
		t.Errorf("listen.https = %q, want the default", cfg.Listen.HTTPS)
	}
	if !reflect.DeepEqual(cfg.Hosts, []string{"a.example", "b.example"}) {
		t.Errorf("hosts = %q", cfg.Hosts)
	}
	if cfg.Storage.Backend != "postgres" || cfg.Storage.Postgres.DSN != "postgres://localhost/parley" {
		t.Errorf("storage = %+v", cfg.Storage)
	}
	if cfg.Auth.Timeout != time.Minute || !cfg.Registration.Open {
		t.Errorf("auth.timeout = %v, registration.open = %v", cfg.Auth.Timeout, cfg.Registration.Open)
	}
	if !reflect.DeepEqual(cfg.Contact.Abuse, []string{"mailto:abuse@a.example", "xmpp:abuse@a.example"}) {
		t.Errorf("contact.abuse = %q", cfg.Contact.Abuse)
	}
}

func TestEnvErrors(t *testing.T) {
	clearParleyEnv(t)
	noDefaultConfigFiles(t)
	for _, tc := range []struct{ env, value, want string }{
		{"PARLEY_LIMITS_MAX_STANZA_BYTES", "big", `limits.max_stanza_bytes (from PARLEY_LIMITS_MAX_STANZA_BYTES): expected an integer, got "big"`},
		{"PARLEY_AUTH_REQUIRE_TLS", "sure", `auth.require_tls (from PARLEY_AUTH_REQUIRE_TLS): expected true or false, got "sure"`},
		{"PARLEY_C2S_PING_TIMEOUT", "soon", `c2s.ping_timeout (from PARLEY_C2S_PING_TIMEOUT): expected a duration`},
		{"PARLEY_HOSTS", "", "hosts: expected at least one domain name"},
		{"PARLEY_STORAGE_BACKEND", "mysql", `storage.backend: "mysql" is not supported (expected sqlite or postgres)
  (environment overrides in effect: PARLEY_STORAGE_BACKEND)`},
	} {
		t.Run(tc.env, func(t *testing.T) {
			t.Setenv(tc.env, tc.value)
			_, err := loadConfig("")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestFileValues(t *testing.T) {
	clearParleyEnv(t)
	noDefaultConfigFiles(t)
	cfg, err := loadConfig(writeConfig(t, `
hosts: example.org          # a lone string is a one-element list
data_dir: /var/lib/parley
limits:
  max_stanza_bytes: 1e5     # integral floats are integers
  max_depth: "16"           # quoted numbers are accepted
c2s:
  ping_interval: 0          # 0 needs no unit
  ping_timeout: 1m30s
websocket:
  origins: []
contact:                    # an empty group is fine
log:
  level: debug
`))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg.Hosts, []string{"example.org"}) || cfg.DataDir != "/var/lib/parley" {
		t.Errorf("hosts %q, data_dir %q", cfg.Hosts, cfg.DataDir)
	}
	if cfg.Limits.MaxStanzaBytes != 100000 || cfg.Limits.MaxDepth != 16 {
		t.Errorf("limits %+v", cfg.Limits)
	}
	if cfg.C2S.PingInterval != 0 || cfg.C2S.PingTimeout != 90*time.Second {
		t.Errorf("c2s %+v", cfg.C2S)
	}
	if cfg.Log.Level != "debug" || cfg.Log.Format != "text" {
		t.Errorf("log %+v", cfg.Log)
	}
}

func TestFractionalIntegerRejected(t *testing.T) {
	clearParleyEnv(t)
	noDefaultConfigFiles(t)
	_, err := loadConfig(writeConfig(t, "limits:\n  max_depth: 16.5\n"))
	if err == nil || !strings.Contains(err.Error(), "limits.max_depth: expected an integer, got 16.5") {
		t.Errorf("err = %v", err)
	}
}

func TestConfigKeys(t *testing.T) {
	keys := configKeys()
	seen := map[string]bool{}
	for _, k := range keys {
		if seen[k.path] {
			t.Errorf("duplicate key %s", k.path)
		}
		seen[k.path] = true
		if err := setValue(reflect.New(k.typ).Elem(), "1"); err != nil && strings.Contains(err.Error(), "unsupported") {
			t.Errorf("%s: type %s is not supported by setValue", k.path, k.typ)
		}
	}
	for _, want := range []string{"hosts", "listen.c2s_tls", "storage.postgres.dsn", "auth.failure_window", "contact.support"} {
		if !seen[want] {
			t.Errorf("key %s missing from %d keys", want, len(keys))
		}
	}
	if k := keys[0]; k.env != "PARLEY_HOSTS" {
		t.Errorf("first key env %q", k.env)
	}
}

// TestExternalServicesConfig: the XEP-0215 services are a list of
// mappings; every problem names the key, down to the list element.
func TestExternalServicesConfig(t *testing.T) {
	clearParleyEnv(t)
	noDefaultConfigFiles(t)
	cfg, err := loadConfig(writeConfig(t, `
external_services:
  secret: "a-secret-of-enough-length"
  ttl: 12h
  services:
    - {type: stun, host: turn.example.org, port: 3478, transport: udp}
    - {type: turn, host: 192.0.2.7, port: 3478, transport: udp, restricted: true}
    - {type: turns, host: turn.example.org, port: 5349, transport: tcp, restricted: true, name: "Calls"}
`))
	if err != nil {
		t.Fatal(err)
	}
	want := []extdisco.Service{
		{Type: "stun", Host: "turn.example.org", Port: 3478, Transport: "udp"},
		{Type: "turn", Host: "192.0.2.7", Port: 3478, Transport: "udp", Restricted: true},
		{Type: "turns", Host: "turn.example.org", Port: 5349, Transport: "tcp", Restricted: true, Name: "Calls"},
	}
	if !reflect.DeepEqual(cfg.ExternalServices.Services, want) || cfg.ExternalServices.TTL != 12*time.Hour {
		t.Fatalf("external_services %+v", cfg.ExternalServices)
	}
	for _, tc := range []struct{ yaml, want string }{
		{"external_services:\n  services:\n    - {type: stun, host: h.example, port: 3478, transport: udp, colour: red}\n",
			"external_services.services[0]: colour: unknown key"},
		{"external_services:\n  services:\n    - {type: stun, host: h.example, port: many, transport: udp}\n",
			`external_services.services[0]: port: expected an integer, got "many"`},
		{"external_services:\n  services:\n    - stun.example.org\n",
			`external_services.services[0]: expected a mapping of keys, got "stun.example.org"`},
		{"external_services:\n  services:\n    - {type: turn, host: h.example, port: 3478, transport: udp, restricted: true}\n",
			"external_services.secret: a restricted service needs the secret"},
		{"external_services:\n  services:\n    - {type: ftp, host: 'bad host', port: 0, transport: sctp}\n",
			`external_services.services[0].host: "bad host" is not a host name`},
		{"external_services:\n  services:\n    - {type: ftp, host: h.example, port: 70000, transport: sctp}\n",
			"external_services.services[0].port: expected a port from 1 to 65535"},
		{"external_services:\n  services:\n    - {type: ftp, host: h.example, port: 1, transport: sctp}\n",
			`external_services.services[0].transport: "sctp" is not a transport`},
		{"external_services:\n  ttl: 10s\n", "external_services.ttl: expected a duration from 1m to 720h"},
	} {
		_, err := loadConfig(writeConfig(t, tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.yaml, err, tc.want)
		}
	}
}
