package sqlite

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"testing/fstest"
	"time"

	"github.com/parley-xmpp/parley/storage"
	"github.com/parley-xmpp/parley/storage/groupcommit"
	"github.com/parley-xmpp/parley/storage/storagetest"
)

func openTemp(t testing.TB, dir string) *Store {
	t.Helper()
	st, err := Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestContract runs the contract of every repository.
func TestContract(t *testing.T) {
	// Every database starts as a copy of one migrated here once: running
	// the migrations anew for each of the contract's hundreds of databases
	// was more than half of this package's time under -race (the package
	// hit the 20-minute test timeout on a loaded machine). The migrations
	// themselves are tested by TestMigrations and the tests that use Open.
	tmpl := t.TempDir()
	st, err := Open(t.Context(), tmpl)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(tmpl, FileName+"-wal")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the template's WAL was not checkpointed at close: %v", err)
	}
	migrated, err := os.ReadFile(filepath.Join(tmpl, FileName))
	if err != nil {
		t.Fatal(err)
	}
	storagetest.RunAll(t, storagetest.Backend{
		NewDatabase: func(t *testing.T) func(storagetest.Options) storage.Store {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, FileName), migrated, 0o600); err != nil {
				t.Fatal(err)
			}
			return func(o storagetest.Options) storage.Store {
				st, err := OpenOptions(context.Background(), dir, Options{
					GroupCommit: groupcommit.Options{Enabled: o.GroupCommit}, Fulltext: o.Fulltext})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { st.Close() })
				return st
			}
		},
	})
}

func TestOpenCreatesPrivateDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "data")
	openTemp(t, dir)
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		t.Errorf("data dir mode %v, want no group/other access", perm)
	}
	if _, err := os.Stat(filepath.Join(dir, FileName)); err != nil {
		t.Errorf("database file: %v", err)
	}
}

func TestPragmas(t *testing.T) {
	st := openTemp(t, t.TempDir())
	for _, db := range []struct {
		name string
		q    querier
	}{{"writer", st.w}, {"reader", st.r}} {
		for pragma, want := range map[string]string{
			"journal_mode": "wal",
			"foreign_keys": "1",
			"synchronous":  "1", // NORMAL
			"busy_timeout": strconv.FormatInt(busyTimeout.Milliseconds(), 10),
		} {
			var got string
			if err := db.q.QueryRowContext(t.Context(), "PRAGMA "+pragma).Scan(&got); err != nil {
				t.Fatalf("%s: PRAGMA %s: %v", db.name, pragma, err)
			}
			if got != want {
				t.Errorf("%s: PRAGMA %s = %q, want %q", db.name, pragma, got, want)
			}
		}
	}
	for pragma, want := range map[string]string{"cache_size": "-32768", "wal_autocheckpoint": "0", "temp_store": "2"} {
		var got string
		if err := st.w.QueryRowContext(t.Context(), "PRAGMA "+pragma).Scan(&got); err != nil {
			t.Fatalf("writer: PRAGMA %s: %v", pragma, err)
		}
		if got != want {
			t.Errorf("writer: PRAGMA %s = %q, want %q", pragma, got, want)
		}
	}
	if _, err := st.r.ExecContext(t.Context(), `DELETE FROM accounts`); err == nil {
		t.Error("the read pool accepted a write")
	}
}

func TestReopen(t *testing.T) {
	dir := t.TempDir()
	ctx := t.Context()
	st, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	creds := []storage.SCRAMCredential{{Hash: "SHA-256", Salt: []byte{0, 1, 0xff}, Iterations: 4096, StoredKey: []byte("k\x00y"), ServerKey: []byte("sk")}}
	raw := []byte("<message><body>ünïcode &amp; <b/></body></message>")
	if err := st.CreateAccount(ctx, "juliet@example.com", creds); err != nil {
		t.Fatal(err)
	}
	ver, err := st.UpsertRosterItem(ctx, "juliet@example.com", storage.RosterItem{JID: "romeo@example.com", Subscription: storage.SubBoth, Groups: []string{"Lovers"}})
	if err != nil {
		t.Fatal(err)
	}
	id, err := st.StoreOffline(ctx, "juliet@example.com", raw, time.Unix(1700000000, 123456000), 10)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	st = openTemp(t, dir)
	got, err := st.Credentials(ctx, "juliet@example.com")
	if err != nil || len(got) != 1 || string(got[0].StoredKey) != "k\x00y" || string(got[0].Salt) != "\x00\x01\xff" {
		t.Fatalf("Credentials after reopen = %+v, %v", got, err)
	}
	items, v, err := st.RosterItems(ctx, "juliet@example.com")
	if err != nil || v != ver || len(items) != 1 || !slices.Equal(items[0].Groups, []string{"Lovers"}) {
		t.Fatalf("RosterItems after reopen = %+v, %q, %v (want version %q)", items, v, err, ver)
	}
	msgs, err := st.OfflineMessages(ctx, "juliet@example.com")
	if err != nil || len(msgs) != 1 || msgs[0].ID != id || string(msgs[0].Raw) != string(raw) ||
		!msgs[0].Stamp.Equal(time.Unix(1700000000, 123456000)) {
		t.Fatalf("OfflineMessages after reopen = %+v, %v", msgs, err)
	}
	// The version counter carries on from where it was.
	next, err := st.UpsertRosterItem(ctx, "juliet@example.com", storage.RosterItem{JID: "nurse@example.com", Subscription: storage.SubNone})
	if err != nil {
		t.Fatal(err)
	}
	if a, b := mustInt(t, ver), mustInt(t, next); b != a+1 {
		t.Errorf("version after reopen went from %d to %d", a, b)
	}
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
	st := openTemp(t, t.TempDir())
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
		if i > 0 && n != prev+1 {
			t.Fatalf("version went from %d to %d", prev, n)
		}
		prev = n
	}
}

func schemaVersion(t *testing.T, st *Store) int {
	t.Helper()
	var v int
	if err := st.r.QueryRowContext(t.Context(), `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func tableExists(t *testing.T, st *Store, name string) bool {
	t.Helper()
	var n int
	if err := st.r.QueryRowContext(t.Context(), `SELECT COUNT(*) FROM sqlite_schema WHERE name = ?`, name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n > 0
}

func TestMigrations(t *testing.T) {
	ctx := t.Context()
	embedded, err := loadMigrations(migrationsRoot())
	if err != nil || len(embedded) == 0 {
		t.Fatalf("embedded migrations: %d, %v", len(embedded), err)
	}
	latest := embedded[len(embedded)-1].version

	t.Run("AppliedOnce", func(t *testing.T) {
		dir := t.TempDir()
		st := openTemp(t, dir)
		if v := schemaVersion(t, st); v != latest {
			t.Fatalf("schema version %d, want %d", v, latest)
		}
		st.Close()
		st = openTemp(t, dir) // re-running must be a no-op, not "table exists"
		var n int
		if err := st.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations`).Scan(&n); err != nil || n != len(embedded) {
			t.Fatalf("schema_migrations rows: %d, %v; want %d", n, err, len(embedded))
		}
	})

	t.Run("FailureRollsBack", func(t *testing.T) {
		dir := t.TempDir()
		good := fstest.MapFS{
			"0001_a.sql": {Data: []byte(`CREATE TABLE a (x INTEGER);`)},
		}
		st, err := open(ctx, dir, good, true)
		if err != nil {
			t.Fatal(err)
		}
		st.Close()

		bad := fstest.MapFS{
			"0001_a.sql": good["0001_a.sql"],
			"0002_b.sql": {Data: []byte(`CREATE TABLE b (x INTEGER); INSERT INTO a VALUES (1); ALTER TABLE a ADD COLUMN y; SELECT * FROM no_such_table;`)},
		}
		if st, err := open(ctx, dir, bad, true); err == nil {
			st.Close()
			t.Fatal("open with a failing migration succeeded")
		}

		st, err = open(ctx, dir, good, true)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		if v := schemaVersion(t, st); v != 1 {
			t.Errorf("schema version %d after failed migration, want 1", v)
		}
		if tableExists(t, st, "b") {
			t.Error("table from the failed migration exists")
		}
		var rows, cols int
		st.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM a`).Scan(&rows)
		st.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM pragma_table_info('a')`).Scan(&cols)
		if rows != 0 || cols != 1 {
			t.Errorf("table a has %d rows and %d columns after failed migration, want 0 and 1", rows, cols)
		}
	})

	t.Run("Incremental", func(t *testing.T) {
		dir := t.TempDir()
		v1 := fstest.MapFS{"0001_a.sql": {Data: []byte(`CREATE TABLE a (x INTEGER);`)}}
		st, err := open(ctx, dir, v1, true)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.w.ExecContext(ctx, `INSERT INTO a VALUES (42)`); err != nil {
			t.Fatal(err)
		}
		st.Close()
		v2 := fstest.MapFS{
			"0001_a.sql":     v1["0001_a.sql"],
			"0002_a_y.sql":   {Data: []byte(`ALTER TABLE a ADD COLUMN y TEXT NOT NULL DEFAULT 'y';`)},
			"0010_later.sql": {Data: []byte(`CREATE TABLE later (z); -- numbers, not names, order migrations`)},
		}
		st, err = open(ctx, dir, v2, true)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		var x int
		var y string
		if err := st.r.QueryRowContext(ctx, `SELECT x, y FROM a`).Scan(&x, &y); err != nil || x != 42 || y != "y" {
			t.Errorf("row after migration: %d %q %v", x, y, err)
		}
		if v := schemaVersion(t, st); v != 10 || !tableExists(t, st, "later") {
			t.Errorf("schema version %d, want 10", v)
		}
	})

	t.Run("NewerDatabase", func(t *testing.T) {
		dir := t.TempDir()
		v2 := fstest.MapFS{
			"0001_a.sql": {Data: []byte(`CREATE TABLE a (x);`)},
			"0002_b.sql": {Data: []byte(`CREATE TABLE b (x);`)},
		}
		st, err := open(ctx, dir, v2, true)
		if err != nil {
			t.Fatal(err)
		}
		st.Close()
		if st, err := open(ctx, dir, fstest.MapFS{"0001_a.sql": v2["0001_a.sql"]}, true); err == nil {
			st.Close()
			t.Fatal("an older binary opened a newer schema")
		}
	})

	t.Run("NoMigrate", func(t *testing.T) {
		dir := t.TempDir()
		v1 := fstest.MapFS{"0001_a.sql": {Data: []byte(`CREATE TABLE a (x);`)}}
		v2 := fstest.MapFS{"0001_a.sql": v1["0001_a.sql"], "0002_b.sql": {Data: []byte(`CREATE TABLE b (x);`)}}
		if st, err := open(ctx, dir, v1, false); err == nil {
			st.Close()
			t.Fatal("opened an empty database without migrating")
		}
		st, err := open(ctx, dir, v1, true)
		if err != nil {
			t.Fatal(err)
		}
		st.Close()
		if st, err := open(ctx, dir, v2, false); err == nil {
			st.Close()
			t.Fatal("opened an older schema without migrating")
		}
		if st, err = open(ctx, dir, v1, false); err != nil {
			t.Fatalf("the current schema: %v", err)
		}
		if tableExists(t, st, "b") {
			t.Error("a migration was applied")
		}
		st.Close()
	})

	t.Run("BadNames", func(t *testing.T) {
		for name, fsys := range map[string]fstest.MapFS{
			"no number": {"init.sql": {Data: []byte(`SELECT 1;`)}},
			"zero":      {"0000_init.sql": {Data: []byte(`SELECT 1;`)}},
			"duplicate": {"0001_a.sql": {Data: []byte(`SELECT 1;`)}, "001_b.sql": {Data: []byte(`SELECT 1;`)}},
		} {
			if _, err := loadMigrations(fsys); err == nil {
				t.Errorf("%s: accepted", name)
			}
		}
	})
}

// The bodies are storagetest's, shared with storage/pg, so that the
// figures compare.

func BenchmarkStoreOffline(b *testing.B) { storagetest.BenchStoreOffline(b, openTemp(b, b.TempDir())) }

func BenchmarkRosterItems(b *testing.B) { storagetest.BenchRosterItems(b, openTemp(b, b.TempDir())) }

// A writer queued behind a long transaction gives up when its context
// expires instead of waiting for the single write connection forever.
func TestQueuedWriterHonoursDeadline(t *testing.T) {
	st := openTemp(t, t.TempDir())
	tx, err := st.w.BeginTx(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()

	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = st.SetVCard(ctx, "a@example.com", []byte("<vCard/>"))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("SetVCard behind a held writer: %v, want deadline exceeded", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("gave up after %v", d)
	}
	// Readers are not blocked by the writer.
	if _, err := st.VCard(t.Context(), "a@example.com"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("VCard while writer busy: %v", err)
	}
}

func BenchmarkFindArchivedByOrigin(b *testing.B) {
	storagetest.BenchFindArchivedByOrigin(b, openTemp(b, b.TempDir()))
}

// The WAL is copied into the database file by the checkpointer, not by
// the commits. Past
// walRestartPages the checkpointer finishes on the write connection, so
// that the WAL starts over. Here the archive log's (archive rows are
// committed there; parley.db has a checkpointer of the same kind).
func TestCheckpointer(t *testing.T) {
	old := walRestartPages
	walRestartPages = 1
	t.Cleanup(func() { walRestartPages = old })
	st := openTemp(t, t.TempDir()) // wal_autocheckpoint 0: TestPragmas
	for i := range 50 {
		if _, err := st.AppendArchive(t.Context(), "a@example.org", storage.ArchivedMessage{
			With: "b@example.org", Raw: fmt.Appendf(nil, "<message id='%d'/>", i)}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	ckpt := st.log.ckpt
	for ckpt.copied.Load() == 0 || ckpt.onWriter.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("after 10 s: %d frames checkpointed, %d passes on the writer", ckpt.copied.Load(), ckpt.onWriter.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Everything copied and no reader on the WAL: the next write starts
	// it over.
	if _, err := st.AppendArchive(t.Context(), "a@example.org", storage.ArchivedMessage{With: "b@example.org", Raw: []byte("<message/>")}); err != nil {
		t.Fatal(err)
	}
	var busy, log, done int
	if err := st.log.w.QueryRowContext(t.Context(), `PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &log, &done); err != nil {
		t.Fatal(err)
	}
	if log > 10 {
		t.Errorf("WAL holds %d frames after a restart and one insert", log)
	}
	page, err := st.QueryArchive(t.Context(), "a@example.org", storage.ArchiveQuery{Max: 100})
	if err != nil || page.Count != 51 {
		t.Fatalf("archive: %d messages, %v; want 51", page.Count, err)
	}
}
