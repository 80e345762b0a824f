package pg

import (
	"context"
	"slices"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/jackc/pgx/v5"

	"github.com/parley-xmpp/parley/storage"
)

// schemaConn connects to the test server with search_path set to schema.
func schemaConn(t *testing.T, dsn, schema string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), withSearchPath(t, dsn, schema))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func queryInt(t *testing.T, conn *pgx.Conn, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := conn.QueryRow(t.Context(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

func tableExists(t *testing.T, conn *pgx.Conn, name string) bool {
	t.Helper()
	var ok bool
	if err := conn.QueryRow(t.Context(), `SELECT to_regclass($1) IS NOT NULL`, name).Scan(&ok); err != nil {
		t.Fatal(err)
	}
	return ok
}

func TestMigrations(t *testing.T) {
	dsn := needPostgres(t)
	ctx := t.Context()
	embedded, err := storage.LoadMigrations(embeddedMigrations(), ".")
	if err != nil || len(embedded) == 0 {
		t.Fatalf("embedded migrations: %d, %v", len(embedded), err)
	}
	var names []string
	for _, m := range embedded {
		names = append(names, m.Name)
	}

	t.Run("MigrateAndStatus", func(t *testing.T) {
		sdsn := withSearchPath(t, dsn, newSchema(t, dsn))
		st, err := Status(ctx, sdsn)
		if err != nil {
			t.Fatal(err)
		}
		if len(st) != len(embedded) || slices.ContainsFunc(st, func(m MigrationStatus) bool { return m.Applied || !m.Known }) {
			t.Fatalf("Status of an empty schema = %+v", st)
		}
		applied, err := Migrate(ctx, sdsn)
		if err != nil || !slices.Equal(applied, names) {
			t.Fatalf("first Migrate = %q, %v; want %q", applied, err, names)
		}
		// Idempotent: nothing left to do, nothing applied twice.
		applied, err = Migrate(ctx, sdsn)
		if err != nil || len(applied) != 0 {
			t.Fatalf("second Migrate = %q, %v; want nothing", applied, err)
		}
		st, err = Status(ctx, sdsn)
		if err != nil {
			t.Fatal(err)
		}
		for i, m := range st {
			if !m.Applied || !m.Known || m.AppliedAt.IsZero() || m.Name != names[i] || m.Version != embedded[i].Version {
				t.Errorf("status %d = %+v", i, m)
			}
		}
		// A Store opens on it without applying anything.
		s, err := Open(ctx, Config{DSN: sdsn, MaxConns: 1})
		if err != nil {
			t.Fatalf("Open without Migrate on a migrated schema: %v", err)
		}
		s.Close()
	})

	t.Run("OpenTwiceAppliesOnce", func(t *testing.T) {
		schema := newSchema(t, dsn)
		for range 2 {
			st, err := Open(ctx, Config{DSN: dsn, Schema: schema, MaxConns: 1, Migrate: true})
			if err != nil {
				t.Fatal(err)
			}
			st.Close()
		}
		conn := schemaConn(t, dsn, schema)
		if n := queryInt(t, conn, `SELECT COUNT(*) FROM schema_migrations`); n != len(embedded) {
			t.Fatalf("schema_migrations rows: %d, want %d", n, len(embedded))
		}
	})

	// Nodes starting at once: the advisory lock makes every migration
	// run exactly once, and every node comes up.
	t.Run("ConcurrentStart", func(t *testing.T) {
		schema := newSchema(t, dsn)
		const nodes = 6
		var wg sync.WaitGroup
		errs := make(chan error, nodes)
		for range nodes {
			wg.Go(func() {
				st, err := Open(ctx, Config{DSN: dsn, Schema: schema, MaxConns: 1, Migrate: true})
				if err == nil {
					err = st.Ping(ctx)
					st.Close()
				}
				errs <- err
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Error(err)
			}
		}
		conn := schemaConn(t, dsn, schema)
		if n := queryInt(t, conn, `SELECT COUNT(*) FROM schema_migrations`); n != len(embedded) {
			t.Fatalf("schema_migrations rows: %d, want %d", n, len(embedded))
		}
	})

	t.Run("FailureRollsBack", func(t *testing.T) {
		schema := newSchema(t, dsn)
		conn := schemaConn(t, dsn, schema)
		good := fstest.MapFS{
			"0001_a.sql": {Data: []byte(`CREATE TABLE a (x integer);`)},
		}
		if _, err := migrate(ctx, conn, good); err != nil {
			t.Fatal(err)
		}
		// Each statement of the failing migration but the last succeeds:
		// a new table, a row, a new column, an index, then an error.
		bad := fstest.MapFS{
			"0001_a.sql": good["0001_a.sql"],
			"0002_b.sql": {Data: []byte(`CREATE TABLE b (x integer);
				INSERT INTO a VALUES (1);
				ALTER TABLE a ADD COLUMN y text;
				CREATE INDEX a_x ON a (x);
				SELECT * FROM no_such_table;`)},
		}
		applied, err := migrate(ctx, conn, bad)
		if err == nil {
			t.Fatal("a failing migration succeeded")
		}
		if len(applied) != 0 {
			t.Errorf("reported applied: %q", applied)
		}
		t.Logf("failing migration: %v", err)
		if v := queryInt(t, conn, `SELECT MAX(version) FROM schema_migrations`); v != 1 {
			t.Errorf("schema version %d after failed migration, want 1", v)
		}
		if tableExists(t, conn, "b") || tableExists(t, conn, "a_x") {
			t.Error("table or index from the failed migration exists")
		}
		rows := queryInt(t, conn, `SELECT COUNT(*) FROM a`)
		cols := queryInt(t, conn, `SELECT COUNT(*) FROM information_schema.columns WHERE table_schema = $1 AND table_name = 'a'`, schema)
		if rows != 0 || cols != 1 {
			t.Errorf("table a has %d rows and %d columns after failed migration, want 0 and 1", rows, cols)
		}
		// Fixed, it applies.
		fixed := fstest.MapFS{
			"0001_a.sql": good["0001_a.sql"],
			"0002_b.sql": {Data: []byte(`CREATE TABLE b (x integer);`)},
		}
		if applied, err := migrate(ctx, conn, fixed); err != nil || !slices.Equal(applied, []string{"0002_b.sql"}) {
			t.Fatalf("fixed migration: %q, %v", applied, err)
		}
	})

	t.Run("Incremental", func(t *testing.T) {
		conn := schemaConn(t, dsn, newSchema(t, dsn))
		v1 := fstest.MapFS{"0001_a.sql": {Data: []byte(`CREATE TABLE a (x integer);`)}}
		if _, err := migrate(ctx, conn, v1); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(ctx, `INSERT INTO a VALUES (42)`); err != nil {
			t.Fatal(err)
		}
		v2 := fstest.MapFS{
			"0001_a.sql":     v1["0001_a.sql"],
			"0002_a_y.sql":   {Data: []byte(`ALTER TABLE a ADD COLUMN y text NOT NULL DEFAULT 'y';`)},
			"0010_later.sql": {Data: []byte(`CREATE TABLE later (z integer); -- numbers, not names, order migrations`)},
		}
		applied, err := migrate(ctx, conn, v2)
		if err != nil || !slices.Equal(applied, []string{"0002_a_y.sql", "0010_later.sql"}) {
			t.Fatalf("applied %q, %v", applied, err)
		}
		var x int
		var y string
		if err := conn.QueryRow(ctx, `SELECT x, y FROM a`).Scan(&x, &y); err != nil || x != 42 || y != "y" {
			t.Errorf("row after migration: %d %q %v", x, y, err)
		}
		if v := queryInt(t, conn, `SELECT MAX(version) FROM schema_migrations`); v != 10 || !tableExists(t, conn, "later") {
			t.Errorf("schema version %d, want 10", v)
		}
	})

	t.Run("NewerDatabase", func(t *testing.T) {
		schema := newSchema(t, dsn)
		conn := schemaConn(t, dsn, schema)
		v2 := fstest.MapFS{
			"0001_a.sql": {Data: []byte(`CREATE TABLE a (x integer);`)},
			"0002_b.sql": {Data: []byte(`CREATE TABLE b (x integer);`)},
		}
		if _, err := migrate(ctx, conn, v2); err != nil {
			t.Fatal(err)
		}
		if _, err := migrate(ctx, conn, fstest.MapFS{"0001_a.sql": v2["0001_a.sql"]}); err == nil {
			t.Fatal("an older binary migrated a newer schema")
		}
		st, err := readStatus(ctx, conn, fstest.MapFS{"0001_a.sql": v2["0001_a.sql"]})
		if err != nil || len(st) != 2 || !st[1].Applied || st[1].Known || st[1].Name != "0002_b.sql" {
			t.Fatalf("status with an unknown migration: %+v, %v", st, err)
		}
		if err := checkCurrent(ctx, conn, fstest.MapFS{"0001_a.sql": v2["0001_a.sql"]}); err == nil {
			t.Fatal("checkCurrent accepted a newer schema")
		}
	})

	t.Run("BadNames", func(t *testing.T) {
		for name, fsys := range map[string]fstest.MapFS{
			"no number": {"init.sql": {Data: []byte(`SELECT 1;`)}},
			"zero":      {"0000_init.sql": {Data: []byte(`SELECT 1;`)}},
			"duplicate": {"0001_a.sql": {Data: []byte(`SELECT 1;`)}, "001_b.sql": {Data: []byte(`SELECT 1;`)}},
		} {
			if _, err := storage.LoadMigrations(fsys, "."); err == nil {
				t.Errorf("%s: accepted", name)
			}
		}
	})
}
