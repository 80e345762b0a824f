package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/storage"
)

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cacheOf returns the statement cache of a connection.
func cacheOf(t testing.TB, c *sql.Conn) map[string]*cachedStmt {
	t.Helper()
	var m map[string]*cachedStmt
	if err := c.Raw(func(dc any) error {
		m = dc.(*cachingConn).stmts
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestStatementCache: statements are prepared once per connection and
// reused; a statement whose rows are still open is not reused (a nested
// query of the same text works); the cache stays bounded; scripts and
// long texts are not kept.
func TestStatementCache(t *testing.T) {
	ctx := context.Background()
	st := openTemp(t, t.TempDir())
	for _, u := range []string{"a@x", "b@x", "c@x"} {
		if err := st.CreateAccount(ctx, u, nil); err != nil {
			t.Fatal(err)
		}
	}
	c, err := st.r.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const q = `SELECT bare FROM accounts WHERE bare >= ? ORDER BY bare`
	list := func(from string) []string {
		rows, err := c.QueryContext(ctx, q, from)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var b string
			if err := rows.Scan(&b); err != nil {
				t.Fatal(err)
			}
			out = append(out, b)
		}
		return out
	}
	if got := fmt.Sprint(list("")); got != "[a@x b@x c@x]" {
		t.Fatalf("first query: %s", got)
	}
	cached := cacheOf(t, c)[q]
	if cached == nil || cached.busy {
		t.Fatal("the statement was not cached, or is still marked in use")
	}
	if got := fmt.Sprint(list("b@x")); got != "[b@x c@x]" || cacheOf(t, c)[q] != cached {
		t.Fatalf("second query: %s (same statement: %v)", got, cacheOf(t, c)[q] == cached)
	}
	// Nested: the outer rows keep the cached statement; the inner query
	// of the same text gets one of its own.
	rows, err := c.QueryContext(ctx, q, "")
	if err != nil {
		t.Fatal(err)
	}
	var pairs []string
	for rows.Next() {
		var outer string
		if err := rows.Scan(&outer); err != nil {
			t.Fatal(err)
		}
		pairs = append(pairs, outer+fmt.Sprint(len(list(outer))))
	}
	rows.Close()
	if got := fmt.Sprint(pairs); got != "[a@x3 b@x2 c@x1]" {
		t.Fatalf("nested queries: %s", got)
	}
	// Bounded, and what is not worth it is not kept.
	for i := range stmtCacheSize + 20 {
		var n int
		if err := c.QueryRowContext(ctx, fmt.Sprintf("SELECT %d", i)).Scan(&n); err != nil || n != i {
			t.Fatal(n, err)
		}
	}
	if n := len(cacheOf(t, c)); n > stmtCacheSize {
		t.Errorf("%d statements cached, bound %d", n, stmtCacheSize)
	}
	if _, err := c.ExecContext(ctx, "SELECT 1; SELECT 2"); err != nil {
		t.Fatal(err)
	}
	if _, ok := cacheOf(t, c)["SELECT 1; SELECT 2"]; ok {
		t.Error("a script was cached")
	}
}

// BenchmarkPointQuery: one lookup by key, as logins and messages make
// them, through database/sql with modernc's driver as is and with the
// statement cache.
func BenchmarkPointQuery(b *testing.B) {
	dir := b.TempDir()
	st := openTemp(b, dir)
	if err := st.CreateAccount(context.Background(), "a@x", nil); err != nil {
		b.Fatal(err)
	}
	for _, drv := range []string{"sqlite", driverName} {
		b.Run(drv, func(b *testing.B) {
			db, err := sql.Open(drv, dsn(filepath.Join(dir, FileName), "query_only(1)"))
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			db.SetMaxOpenConns(1)
			cpu0 := cpuTime()
			for b.Loop() {
				if ok, err := accountExists(context.Background(), db, "a@x"); err != nil || !ok {
					b.Fatal(ok, err)
				}
			}
			// CPU time, less sensitive than wall time to a busy machine.
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}

// BenchmarkCredentials: the lookup every login makes.
func BenchmarkCredentials(b *testing.B) {
	st := openTemp(b, b.TempDir())
	ctx := context.Background()
	creds := []storage.SCRAMCredential{{Hash: "SHA-256", Salt: []byte("salt"), Iterations: 4096, StoredKey: []byte("k1"), ServerKey: []byte("k2")}}
	if err := st.CreateAccount(ctx, "a@x", creds); err != nil {
		b.Fatal(err)
	}
	cpu0 := cpuTime()
	for b.Loop() {
		if c, err := st.Credentials(ctx, "a@x"); err != nil || len(c) != 1 {
			b.Fatal(c, err)
		}
	}
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
}
