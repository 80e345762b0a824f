// Package testserver runs a real Parley server in-process on loopback with a
// temporary store, and provides a scripted XMPP client for end-to-end tests
// (client A sends ..., B receives ...). Tests only.
package testserver

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"mellium.im/xmpp/jid"

	"github.com/parley-xmpp/parley/auth"
	"github.com/parley-xmpp/parley/server"
)

// Domain is the default virtual host of test servers.
const Domain = "localhost"

// Server is a running test server.
type Server struct {
	*server.Server
	Cfg    server.Config
	Domain string // the first virtual host
	t      testing.TB
}

// Option changes the configuration before start.
type Option func(*server.Config)

// Start runs a server on 127.0.0.1 with ephemeral ports and a temp data
// dir; it is shut down when the test ends. Set PARLEY_TEST_LOG=1 to see
// its log.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	return StartWithLog(t, nil, opts...)
}

// StartWithLog is Start with the server's log (debug level) also written
// to logw, e.g. to check that secrets never reach it.
func StartWithLog(t testing.TB, logw io.Writer, opts ...Option) *Server {
	t.Helper()
	cfg := server.DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.Listen = server.ListenConfig{
		C2S: "127.0.0.1:0", C2STLS: "127.0.0.1:0", HTTP: "127.0.0.1:0", HTTPS: "127.0.0.1:0", Admin: "127.0.0.1:0",
	}
	cfg.Auth.Iterations = 4096 // keep tests fast; production default is higher
	cfg.Limits.StanzasPerSecond = 10000
	// PARLEY_TEST_STORAGE=postgres runs the same tests on PostgreSQL
	// (PARLEY_TEST_POSTGRES, default the local server), each server in a
	// schema of its own that is dropped afterwards.
	if os.Getenv("PARLEY_TEST_STORAGE") == "postgres" {
		opts = append([]Option{OnPostgres(t)}, opts...)
	}
	for _, o := range opts {
		o(&cfg)
	}
	var w io.Writer = io.Discard
	if os.Getenv("PARLEY_TEST_LOG") != "" {
		w = os.Stderr
	}
	if logw != nil {
		w = io.MultiWriter(w, logw)
	}
	log := slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv, err := server.New(cfg, log)
	if err != nil {
		t.Fatalf("testserver: %v", err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatalf("testserver: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return &Server{Server: srv, Cfg: cfg, Domain: cfg.Hosts[0], t: t}
}

// AddUser creates an account with the password.
func (s *Server) AddUser(user, password string) string {
	s.t.Helper()
	creds, err := auth.DeriveCredentials(password, s.Cfg.Auth.Iterations)
	if err != nil {
		s.t.Fatal(err)
	}
	bare := user + "@" + s.Domain
	if err := s.Store().CreateAccount(context.Background(), bare, creds); err != nil {
		s.t.Fatalf("create %s: %v", bare, err)
	}
	return bare
}

// SkipWithoutPostgres skips the test, saying so, when the PostgreSQL
// server of PostgresDSN is not reachable.
func SkipWithoutPostgres(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, PostgresDSN())
	if err != nil {
		t.Skipf("PostgreSQL not reachable: %v — test SKIPPED (set PARLEY_TEST_POSTGRES to a reachable server)", err)
	}
	conn.Close(ctx)
}

// OnPostgres runs the server on PostgreSQL (PARLEY_TEST_POSTGRES, default
// the local server), in a schema of its own that is dropped when the test
// ends.
func OnPostgres(t testing.TB) Option {
	dsn := PostgresDSN()
	schema := "parley_test_" + strings.ToLower(rand.Text()[:12])
	t.Cleanup(func() { dropSchema(dsn, schema) })
	return func(c *server.Config) {
		c.Storage.Backend = "postgres"
		c.Storage.Postgres.DSN = dsn
		c.Storage.Postgres.Schema = schema
	}
}

// PostgresDSN is the PostgreSQL server tests use.
func PostgresDSN() string {
	if d := os.Getenv("PARLEY_TEST_POSTGRES"); d != "" {
		return d
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

func dropSchema(dsn, schema string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return
	}
	defer conn.Close(ctx)
	_, _ = conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE")
}

// Eventually polls cond until it holds, failing the test with what after
// Timeout: tests wait for a condition, never for a fixed time.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(Timeout); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("not reached within %s: %s", Timeout, what)
		}
	}
}

// WaitConnections waits until n client connections are open, e.g. until
// the server has noticed that a client dropped its connection (its
// session is then hibernated or ended).
func (s *Server) WaitConnections(n int) {
	s.t.Helper()
	Eventually(s.t, fmt.Sprintf("%d client connection(s) open", n), func() bool { return s.C2S().Connections() == n })
}

// WaitOffline waits until the account bare has no session bound (after its
// clients closed their streams).
func (s *Server) WaitOffline(bare string) {
	s.t.Helper()
	j := jid.MustParse(bare)
	Eventually(s.t, bare+" has no session", func() bool { return len(s.Router().Resources(j)) == 0 })
}

// WaitOfflineMessages waits until n messages are stored offline for bare.
func (s *Server) WaitOfflineMessages(bare string, n int) {
	s.t.Helper()
	Eventually(s.t, fmt.Sprintf("%d offline message(s) for %s", n, bare), func() bool {
		got, err := s.Store().CountOffline(context.Background(), bare)
		return err == nil && got == n
	})
}
