package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/parley-xmpp/parley/auth"
	"github.com/parley-xmpp/parley/cluster"
	"github.com/parley-xmpp/parley/server"
	"github.com/parley-xmpp/parley/storage"
	"github.com/parley-xmpp/parley/storage/pg"
	"github.com/parley-xmpp/parley/storage/sqlite"
)

// target is the server under load: its addresses, its domain, the
// accounts the scenarios log in as, and its process (for CPU and memory).
type target struct {
	label        string // which binary, in comparisons
	c2s, c2sTLS  string
	admin        string // admin listener (metrics, pprof), "" when unknown
	domain       string
	userPrefix   string // accounts are userPrefix0, userPrefix1, …
	password     string
	pid          int // 0: not measured
	stop         func()
	archive      string  // what archives messages: sqlite, postgres, off
	serverLogTip string  // where the spawned server logs
	peer         *target // the other domain, when two servers federate, or the other node of a cluster
	clustered    bool    // peer is another node of the same cluster (same domain)
}

func (t *target) user(i int) string { return t.userPrefix + strconv.Itoa(i) }

func (t *target) bare(i int) string { return t.user(i) + "@" + t.domain }

// spawnOptions say how to start a server binary for one scenario.
type spawnOptions struct {
	binary   string   // parley executable
	label    string   // name in the output
	store    string   // sqlite or postgres
	archive  bool     // mam.default_policy always (else never)
	accounts int      // accounts to create
	ownBuild bool     // binary built from this tree: its store code is ours
	plainOK  bool     // allow authentication without TLS (secPlain)
	env      []string // extra PARLEY_… settings (-set)
	pprof    bool     // expose /debug/pprof on the admin listener
	keep     bool     // keep the data directory
	// Federation: the server's domain and loopback address (default
	// localhost on 127.0.0.1), its s2s listener and its routes to peers
	// (s2s.routes entries).
	domain, ip string
	s2s        string
	routes     []string
	// Cluster: the node's name ("" for a single server), the NATS prefix
	// and the PostgreSQL schema the nodes share (created and dropped by
	// the caller).
	node, natsPrefix, schema string
}

// freeAddr returns a loopback address with a port nobody listens on now.
func freeAddr() (string, error) { return freeAddrOn("127.0.0.1") }

// freeAddrOn is freeAddr on another loopback address.
func freeAddrOn(ip string) (string, error) {
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// spawn creates the accounts and starts `parley serve` with a config of its
// own in a temporary data directory, listening on loopback only.
func spawn(ctx context.Context, o spawnOptions) (*target, error) {
	dir, err := os.MkdirTemp("", "parley-bench-")
	if err != nil {
		return nil, err
	}
	cleanup := []func(){}
	done := func() {
		for i := len(cleanup) - 1; i >= 0; i-- {
			cleanup[i]()
		}
	}
	if !o.keep {
		cleanup = append(cleanup, func() { os.RemoveAll(dir) })
	}
	fail := func(err error) (*target, error) {
		done()
		return nil, err
	}
	ip, domain := cmp.Or(o.ip, "127.0.0.1"), cmp.Or(o.domain, "localhost")
	var addrs [3]string
	for i := range addrs {
		if addrs[i], err = freeAddrOn(ip); err != nil {
			return fail(err)
		}
	}
	t := &target{label: o.label, c2s: addrs[0], c2sTLS: addrs[1], admin: addrs[2], domain: domain,
		userPrefix: "bench", password: "bench-password", archive: "off"}
	if o.archive {
		t.archive = o.store
	}

	cfg := server.DefaultConfig()
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.Auth.Iterations = 4096
	settings := map[string]string{
		"PARLEY_HOSTS":                     t.domain,
		"PARLEY_DATA_DIR":                  cfg.DataDir,
		"PARLEY_LISTEN_C2S":                t.c2s,
		"PARLEY_LISTEN_C2S_TLS":            t.c2sTLS,
		"PARLEY_LISTEN_ADMIN":              t.admin,
		"PARLEY_LISTEN_HTTP":               "",
		"PARLEY_LISTEN_HTTPS":              "",
		"PARLEY_LISTEN_S2S":                o.s2s,
		"PARLEY_S2S_ROUTES":                strings.Join(o.routes, " "),
		"PARLEY_LISTEN_S2S_TLS":            "",
		"PARLEY_AUTH_ITERATIONS":           strconv.Itoa(cfg.Auth.Iterations),
		"PARLEY_AUTH_REQUIRE_TLS":          strconv.FormatBool(!o.plainOK),
		"PARLEY_LIMITS_STANZAS_PER_SECOND": "1000000",
		// Every client of the tool comes from one loopback address:
		// the per-address and unauthenticated connection caps are off
		// (servers without these keys ignore them).
		"PARLEY_LIMITS_CONNECTIONS_PER_ADDRESS":     "0",
		"PARLEY_LIMITS_UNAUTHENTICATED_CONNECTIONS": "0",
		"PARLEY_LOG_LEVEL":                          "warn",
		"PARLEY_MAM_DEFAULT_POLICY":                 map[bool]string{true: "always", false: "never"}[o.archive],
	}
	if o.pprof {
		settings["PARLEY_DEBUG_PPROF"] = "true"
	}
	if o.node != "" {
		settings["PARLEY_CLUSTER_ENABLED"] = "true"
		settings["PARLEY_CLUSTER_NODE"] = o.node
		settings["PARLEY_CLUSTER_NATS_URLS"] = natsURL()
		settings["PARLEY_CLUSTER_NATS_PREFIX"] = o.natsPrefix
		settings["PARLEY_CLUSTER_DRAIN"] = "0s" // the bench stops nodes with SIGTERM
	}
	switch o.store {
	case "sqlite":
	case "postgres":
		cfg.Storage.Backend = "postgres"
		cfg.Storage.Postgres.DSN = postgresDSN()
		cfg.Storage.Postgres.Schema = cmp.Or(o.schema, "parley_bench_"+strings.ToLower(rand.Text()[:10]))
		settings["PARLEY_STORAGE_BACKEND"] = "postgres"
		settings["PARLEY_STORAGE_POSTGRES_DSN"] = cfg.Storage.Postgres.DSN
		settings["PARLEY_STORAGE_POSTGRES_SCHEMA"] = cfg.Storage.Postgres.Schema
		if o.schema == "" {
			schema := cfg.Storage.Postgres.Schema
			cleanup = append(cleanup, func() { dropSchema(cfg.Storage.Postgres.DSN, schema) })
		}
	default:
		return fail(fmt.Errorf("-store: %q is not a store (sqlite or postgres)", o.store))
	}
	if o.ownBuild {
		// Fast: one SCRAM derivation shared by all accounts, written
		// through our own copy of the store code.
		if err := createAccounts(ctx, cfg, t, o.accounts); err != nil {
			return fail(err)
		}
	}

	conf := filepath.Join(dir, "parley.yaml")
	if err := os.WriteFile(conf, []byte("# parley-bench: everything is set through PARLEY_* variables\nhosts: [localhost]\n"), 0o600); err != nil {
		return fail(err)
	}
	logFile, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		return fail(err)
	}
	cleanup = append(cleanup, func() { logFile.Close() })
	t.serverLogTip = logFile.Name()
	cmd := exec.Command(o.binary, "serve", "--config", conf)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	env := os.Environ()
	for k, v := range settings {
		env = append(env, k+"="+v)
	}
	env = append(env, o.env...)
	cmd.Env = env
	if err := cmd.Start(); err != nil {
		return fail(fmt.Errorf("starting %s: %w", o.binary, err))
	}
	exited := make(chan struct{}) // closed once the process is reaped
	var exitErr error
	go func() { exitErr = cmd.Wait(); close(exited) }()
	t.pid = cmd.Process.Pid
	t.stop = func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		done()
	}
	if err := waitReady(ctx, t.admin, exited, &exitErr); err != nil {
		log, _ := os.ReadFile(logFile.Name())
		t.stop()
		return nil, fmt.Errorf("%s did not start: %w\n%s", o.binary, err, tail(log, 2000))
	}
	if !o.ownBuild {
		if err := createAccountsWith(ctx, o.binary, cfg, conf, env, dir, t, o.accounts); err != nil {
			t.stop()
			return nil, err
		}
	}
	return t, nil
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// waitReady polls /readyz until the server answers (bounded).
func waitReady(ctx context.Context, admin string, exited <-chan struct{}, exitErr *error) error {
	deadline := time.Now().Add(60 * time.Second)
	client := &http.Client{Timeout: time.Second}
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("the server exited: %v", *exitErr)
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		resp, err := client.Get("http://" + admin + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("not ready after 60s")
}

// createAccountsWith creates the accounts of a server that another binary
// runs (and has migrated). When its database has exactly the schema this
// tree knows, they are written through our store code like
// createAccounts's (seconds for 10,000); otherwise another version may
// write accounts differently, and its own command creates them, one
// process per account (minutes for 10,000).
func createAccountsWith(ctx context.Context, binary string, cfg server.Config, conf string, env []string, dir string, t *target, n int) error {
	if n == 0 {
		return nil
	}
	st, err := openCurrent(ctx, cfg)
	if err == nil {
		defer st.Close()
		return addAccounts(ctx, st, cfg, t, n)
	}
	fmt.Fprintf(os.Stderr, "parley-bench: %s: creating %d accounts with its own command (its store is not this tree's: %v)\n", binary, n, err)
	return parallel(ctx, n, 4, func(i int) error {
		c := exec.CommandContext(ctx, binary, "user", "add", t.bare(i), "--password", t.password, "--config", conf)
		c.Dir, c.Env = dir, env
		if out, err := c.CombinedOutput(); err != nil {
			return fmt.Errorf("%s user add %s: %w: %s", binary, t.bare(i), err, out)
		}
		return nil
	})
}

// openCurrent opens the store of cfg without migrating it, and only if its
// schema is exactly the one this tree knows.
func openCurrent(ctx context.Context, cfg server.Config) (storage.Store, error) {
	if cfg.Storage.Backend == "postgres" {
		st, err := pg.Open(ctx, pg.Config{DSN: cfg.Storage.Postgres.DSN, Schema: cfg.Storage.Postgres.Schema})
		if err != nil {
			return nil, err
		}
		return st, nil
	}
	st, err := sqlite.OpenOptions(ctx, cfg.DataDir, sqlite.Options{NoMigrate: true})
	if err != nil {
		return nil, err
	}
	return st, nil
}

// createAccounts creates n accounts in a new store of cfg.
func createAccounts(ctx context.Context, cfg server.Config, t *target, n int) error {
	if n == 0 {
		return nil
	}
	st, err := server.OpenStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	return addAccounts(ctx, st, cfg, t, n)
}

// addAccounts creates n accounts with one password. The SCRAM credentials
// are derived once and shared: a load test needs many accounts quickly,
// not distinct salts.
func addAccounts(ctx context.Context, st storage.Store, cfg server.Config, t *target, n int) error {
	creds, err := auth.DeriveCredentials(t.password, cfg.Auth.Iterations)
	if err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		if err := st.CreateAccount(ctx, t.bare(i), creds); err != nil {
			return fmt.Errorf("creating %s: %w", t.bare(i), err)
		}
	}
	return nil
}

// natsURL is the NATS server (with JetStream) of -cluster runs.
func natsURL() string {
	if u := os.Getenv("PARLEY_TEST_NATS"); u != "" {
		return u
	}
	return "nats://127.0.0.1:4222"
}

// deleteBuckets removes what a -cluster run left in JetStream.
func deleteBuckets(prefix string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := cluster.DeleteBuckets(ctx, cluster.Config{URLs: []string{natsURL()}, Prefix: prefix}); err != nil {
		fmt.Fprintf(os.Stderr, "parley-bench: cannot delete the JetStream buckets %s_*: %v\n", prefix, err)
	}
}

func postgresDSN() string {
	if d := os.Getenv("PARLEY_TEST_POSTGRES"); d != "" {
		return d
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

// dropSchema removes a spawned server's PostgreSQL schema.
func dropSchema(dsn, schema string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := pg.Open(ctx, pg.Config{DSN: dsn, Schema: schema})
	if err != nil {
		fmt.Fprintf(os.Stderr, "parley-bench: cannot drop schema %s: %v\n", schema, err)
		return
	}
	defer st.Close()
	if err := st.DropSchema(ctx, schema); err != nil {
		fmt.Fprintf(os.Stderr, "parley-bench: cannot drop schema %s: %v\n", schema, err)
	}
}
