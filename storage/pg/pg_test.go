package pg

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/parley-xmpp/parley/storage"
	"github.com/parley-xmpp/parley/storage/groupcommit"
	"github.com/parley-xmpp/parley/storage/storagetest"
)

// defaultTestDSN is used unless PARLEY_TEST_POSTGRES names another server.
const defaultTestDSN = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

func testDSN() string {
	if dsn := os.Getenv("PARLEY_TEST_POSTGRES"); dsn != "" {
		return dsn
	}
	return defaultTestDSN
}

var reachable struct {
	once sync.Once
	err  error
}

// needPostgres skips the test, loudly, when the test server is not
// reachable.
func needPostgres(t testing.TB) string {
	t.Helper()
	dsn := testDSN()
	reachable.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, dsn)
		if err == nil {
			err = conn.Ping(ctx)
			conn.Close(ctx)
		}
		reachable.err = err
	})
	if reachable.err != nil {
		host := RedactDSN(dsn)
		if cc, err := pgx.ParseConfig(dsn); err == nil {
			host = cc.Host + ":" + strconv.Itoa(int(cc.Port))
		}
		t.Skipf("PostgreSQL not reachable at %s: %v — PostgreSQL tests skipped (set PARLEY_TEST_POSTGRES to a reachable server)",
			host, reachable.err)
	}
	return dsn
}

// newSchema creates a fresh schema with a random name, dropped with
// everything in it when the test ends.
func newSchema(t testing.TB, dsn string) string {
	t.Helper()
	var b [8]byte
	rand.Read(b[:])
	schema := "parley_test_" + hex.EncodeToString(b[:])
	adminExec(t, dsn, `CREATE SCHEMA `+quoteIdent(schema))
	t.Cleanup(func() { adminExec(t, dsn, `DROP SCHEMA IF EXISTS `+quoteIdent(schema)+` CASCADE`) })
	return schema
}

func adminExec(t testing.TB, dsn, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// withSearchPath returns dsn (URL form) with search_path set to schema,
// the way an operator would point Migrate and Status at one.
func withSearchPath(t testing.TB, dsn, schema string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("PARLEY_TEST_POSTGRES must be a URL for this test: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// openTest opens a Store on a fresh schema of the test server.
func openTest(t testing.TB) *Store {
	t.Helper()
	dsn := needPostgres(t)
	st, err := Open(context.Background(), Config{DSN: dsn, Schema: newSchema(t, dsn), MaxConns: 4, Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() }) // runs before the schema is dropped
	return st
}

// TestContract runs the contract of every repository, each database in a
// schema of its own.
func TestContract(t *testing.T) {
	dsn := needPostgres(t)
	storagetest.RunAll(t, storagetest.Backend{
		NewDatabase: func(t *testing.T) func(storagetest.Options) storage.Store {
			schema := newSchema(t, dsn)
			return func(o storagetest.Options) storage.Store {
				st, err := Open(context.Background(), Config{DSN: dsn, Schema: schema, MaxConns: 4, Migrate: true,
					GroupCommit: groupcommit.Options{Enabled: o.GroupCommit}, Fulltext: o.Fulltext})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { st.Close() }) // runs before the schema is dropped
				return st
			}
		},
		SharedByNodes: true,
	})
}

func mustInt(t *testing.T, s string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatalf("roster version %q is not a decimal integer", s)
	}
	return n
}

func TestRosterVersionCounter(t *testing.T) {
	st := openTest(t)
	ctx := t.Context()
	if v, err := st.RosterVersion(ctx, "a@example.com"); err != nil || v != "0" {
		t.Fatalf("version of untouched roster = %q, %v; want \"0\"", v, err)
	}
	var prev int64
	for i := range 5 {
		v, err := st.UpsertRosterItem(ctx, "a@example.com", storage.RosterItem{JID: fmt.Sprintf("c%d@example.com", i), Subscription: storage.SubNone})
		if err != nil {
			t.Fatal(err)
		}
		n := mustInt(t, v)
		if i == 0 && n < time.Now().Add(-time.Hour).UnixMilli() {
			t.Fatalf("a new counter starts at %d, not at the clock", n)
		}
		if i > 0 && n != prev+1 {
			t.Fatalf("version went from %d to %d", prev, n)
		}
		prev = n
	}
}

// Data survives closing and reopening the Store, byte for byte.
func TestReopen(t *testing.T) {
	dsn := needPostgres(t)
	schema := newSchema(t, dsn)
	ctx := t.Context()
	cfg := Config{DSN: dsn, Schema: schema, MaxConns: 2, Migrate: true}
	st, err := Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	creds := []storage.SCRAMCredential{{Hash: "SHA-256", Salt: []byte{0, 1, 0xff}, Iterations: 4096, StoredKey: []byte("k\x00y"), ServerKey: []byte("sk")}}
	raw := []byte("<message><body>ünïcode &amp; <b/>\x00</body></message>")
	if err := st.CreateAccount(ctx, "juliet@example.com", creds); err != nil {
		t.Fatal(err)
	}
	ver, err := st.UpsertRosterItem(ctx, "juliet@example.com", storage.RosterItem{JID: "romeo@example.com", Subscription: storage.SubBoth, Groups: []string{"Lovers"}})
	if err != nil {
		t.Fatal(err)
	}
	stamp := time.Unix(1700000000, 123456789) // nanoseconds are cut to microseconds
	id, err := st.StoreOffline(ctx, "juliet@example.com", raw, stamp, 10)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()

	cfg.Migrate = false // the schema is current: Open accepts it as is
	st, err = Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	got, err := st.Credentials(ctx, "juliet@example.com")
	if err != nil || len(got) != 1 || string(got[0].StoredKey) != "k\x00y" || string(got[0].Salt) != "\x00\x01\xff" {
		t.Fatalf("Credentials after reopen = %+v, %v", got, err)
	}
	items, v, err := st.RosterItems(ctx, "juliet@example.com")
	if err != nil || v != ver || len(items) != 1 || items[0].Groups[0] != "Lovers" {
		t.Fatalf("RosterItems after reopen = %+v, %q, %v (want version %q)", items, v, err, ver)
	}
	msgs, err := st.OfflineMessages(ctx, "juliet@example.com")
	if err != nil || len(msgs) != 1 || msgs[0].ID != id || string(msgs[0].Raw) != string(raw) ||
		!msgs[0].Stamp.Equal(time.Unix(1700000000, 123456000)) || msgs[0].Stamp.Location() != time.UTC {
		t.Fatalf("OfflineMessages after reopen = %+v, %v", msgs, err)
	}
	next, err := st.UpsertRosterItem(ctx, "juliet@example.com", storage.RosterItem{JID: "nurse@example.com", Subscription: storage.SubNone})
	if err != nil {
		t.Fatal(err)
	}
	if a, b := mustInt(t, ver), mustInt(t, next); b != a+1 {
		t.Errorf("version after reopen went from %d to %d", a, b)
	}
}

// Open without Migrate refuses a schema that is not up to date rather
// than failing later on a missing table.
func TestOpenWithoutMigrate(t *testing.T) {
	dsn := needPostgres(t)
	st, err := Open(t.Context(), Config{DSN: dsn, Schema: newSchema(t, dsn)})
	if err == nil {
		st.Close()
		t.Fatal("Open without Migrate accepted an empty schema")
	}
	if !strings.Contains(err.Error(), "not applied") {
		t.Errorf("error %q does not say a migration is missing", err)
	}
}

// A call that the database does not answer in time gives up after
// QueryTimeout with an ErrTimeout error.
func TestQueryTimeout(t *testing.T) {
	dsn := needPostgres(t)
	schema := newSchema(t, dsn)
	ctx := t.Context()
	const timeout = 300 * time.Millisecond
	st, err := Open(ctx, Config{DSN: dsn, Schema: schema, MaxConns: 2, Migrate: true, QueryTimeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()

	// Another session holds a lock that SetVCard must wait for.
	conn, err := pgx.Connect(ctx, withSearchPath(t, dsn, schema))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, `LOCK TABLE vcards IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	err = st.SetVCard(ctx, "a@example.com", []byte("<vCard/>"))
	elapsed := time.Since(start)
	if !IsUnavailable(err) || !strings.Contains(err.Error(), "timeout") {
		t.Fatalf("SetVCard behind a lock: %v, want a query timeout", err)
	}
	if elapsed < timeout || elapsed > timeout+2*time.Second {
		t.Fatalf("gave up after %v, want about %v", elapsed, timeout)
	}
	// The caller's own, shorter deadline is not reported as a timeout of
	// the database.
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := st.SetVCard(short, "a@example.com", []byte("<vCard/>")); err == nil || IsUnavailable(err) {
		t.Fatalf("SetVCard with the caller's deadline: %v, want a non-unavailable error", err)
	}
	tx.Rollback(ctx)
	// The timed-out calls cost their pool connections (pgx closes a
	// connection whose query it cancels), so the next call may have to
	// connect first, which on a loaded machine can take longer than the
	// 300 ms timeout itself: what must hold is that the store works again,
	// within a bounded time, and fails only with timeouts meanwhile.
	for deadline := time.Now().Add(15 * time.Second); ; {
		err := st.SetVCard(ctx, "a@example.com", []byte("<vCard/>"))
		if err == nil {
			break
		}
		if !IsUnavailable(err) || time.Now().After(deadline) {
			t.Fatalf("SetVCard after the lock is gone: %v", err)
		}
	}
}
