package pg

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/parley-xmpp/parley/storage"
	"github.com/parley-xmpp/parley/storage/storagetest"
)

// TestFulltextBackfill: the migration indexes the messages archived
// before it, in every partition, never the encrypted ones; an insert
// through a session whose search_path lacks the schema is indexed too.
func TestFulltextBackfill(t *testing.T) {
	dsn := needPostgres(t)
	schema := newSchema(t, dsn)
	ctx := context.Background()
	cc, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	cc.RuntimeParams["search_path"] = quoteIdent(schema)
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := migrate(ctx, conn, storagetest.MigrationsBefore(t, embeddedMigrations(), 9)); err != nil {
		t.Fatal(err)
	}
	for i, raw := range []string{
		"<message><body>old swallow one</body></message>",
		"<message><body>swallow</body><encrypted xmlns='eu.siacs.conversations.axolotl'/></message>",
		"<message><body>old swallow two</body></message>",
	} {
		// 2023-01 has no partition: the default one holds it.
		if _, err := conn.Exec(ctx, `INSERT INTO archive (owner, ts, id, with_bare, with_resource, origin_id, from_full, raw)
			VALUES ('a@example.org', '2023-01-01T00:00:00Z'::timestamptz + $1 * interval '1 minute', $2, 'b@example.org', '', '', 'b@example.org/r', $3)`,
			i, storage.NewArchiveID(time.Date(2023, 1, 1, 0, i, 0, 0, time.UTC)), []byte(raw)); err != nil {
			t.Fatal(err)
		}
	}
	st, err := Open(ctx, Config{DSN: dsn, Schema: schema, MaxConns: 2, Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	p, err := st.QueryArchive(ctx, "a@example.org", storage.ArchiveQuery{Fulltext: "swallow", Max: 10})
	if err != nil || p.Count != 2 {
		t.Fatalf("after the migration: %+v %v", p, err)
	}
	// Another search_path: the trigger still finds its function.
	if _, err := conn.Exec(ctx, `SET search_path = pg_catalog`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `INSERT INTO `+quoteIdent(schema)+`.archive (owner, ts, id, with_bare, with_resource, origin_id, from_full, raw)
		VALUES ('a@example.org', now(), $1, 'b@example.org', '', '', 'b@example.org/r', '<message><body>new swallow</body></message>')`,
		storage.NewArchiveID(time.Now())); err != nil {
		t.Fatal(err)
	}
	p, err = st.QueryArchive(ctx, "a@example.org", storage.ArchiveQuery{Fulltext: "swallow", Max: 10})
	if err != nil || p.Count != 3 {
		t.Fatalf("after an insert with another search_path: %+v %v", p, err)
	}
}

// TestFulltextNeverFailsInsert: whatever the bytes, indexing does not make
// an insert fail (a huge message is not indexed: indexing 3 MiB took
// seconds, and the insert failed on the query timeout of a loaded machine).
func TestFulltextNeverFailsInsert(t *testing.T) {
	st := openTest(t)
	ctx := context.Background()
	big := make([]byte, 0, 3<<20)
	big = append(big, "<message><body>"...)
	for len(big) < 3<<20-20 {
		big = append(big, "w"...)
		big = append(big, byte('a'+len(big)%26), byte('a'+len(big)/26%26), byte('a'+len(big)/676%26), ' ')
	}
	big = append(big, "</body></message>"...)
	for name, raw := range map[string][]byte{
		"not UTF-8":   []byte("<message><body>\xff\xfe bad</body></message>"),
		"huge":        big,
		"NUL":         []byte("<message><body>a\x00b</body></message>"),
		"half a body": []byte("<message><body>"),
	} {
		if _, err := st.AppendArchive(ctx, "a@example.org", storage.ArchivedMessage{With: "b@example.org", Raw: raw}); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// openFulltext opens stores with a full-text index mode on one schema.
func openFulltext(t *testing.T) func(storage.FulltextIndex) storage.Archive {
	dsn := needPostgres(t)
	schema := newSchema(t, dsn)
	return func(mode storage.FulltextIndex) storage.Archive {
		st, err := Open(context.Background(), Config{DSN: dsn, Schema: schema, MaxConns: 4, Migrate: true, Fulltext: mode})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() }) // runs before the schema is dropped
		return st
	}
}

// TestFulltextOffCostsNothing: with the index off the trigger is gone from
// the archive and all its partitions, new rows have no tsvector, and
// partitions created meanwhile get the trigger when it comes back.
func TestFulltextOffCostsNothing(t *testing.T) {
	open := openFulltext(t)
	ctx := context.Background()
	st := open(storage.FulltextOff).(*Store)
	triggers := func() int {
		t.Helper()
		var n int
		if err := st.pool.QueryRow(ctx, `SELECT count(*) FROM pg_trigger g JOIN pg_class c ON c.oid = g.tgrelid
			WHERE g.tgname = 'archive_fts' AND c.relnamespace = current_schema()::regnamespace`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := triggers(); n != 0 {
		t.Fatalf("with the index off: %d archive_fts triggers", n)
	}
	if _, err := st.AppendArchive(ctx, "a@b", storage.ArchivedMessage{With: "c@d", Raw: []byte("<message><body>hello</body></message>")}); err != nil {
		t.Fatal(err)
	}
	var indexed int
	if err := st.pool.QueryRow(ctx, `SELECT count(*) FROM archive WHERE fts IS NOT NULL`).Scan(&indexed); err != nil {
		t.Fatal(err)
	}
	if indexed != 0 {
		t.Fatalf("with the index off: %d rows have a tsvector", indexed)
	}
	// A partition created while off.
	if _, err := st.EnsurePartitions(ctx, time.Now().AddDate(2, 0, 0), 1); err != nil {
		t.Fatal(err)
	}
	st.Close()
	st = open(storage.FulltextOn).(*Store)
	var parts int
	if err := st.pool.QueryRow(ctx, `SELECT count(*) FROM pg_inherits WHERE inhparent = 'archive'::regclass`).Scan(&parts); err != nil {
		t.Fatal(err)
	}
	if n := triggers(); n != parts+1 {
		t.Fatalf("with the index on: %d archive_fts triggers, want %d (archive and %d partitions)", n, parts+1, parts)
	}
	p, err := st.QueryArchive(ctx, "a@b", storage.ArchiveQuery{Fulltext: "hello", Max: 10})
	if err != nil || p.Count != 1 {
		t.Fatalf("after the backfill: %+v %v", p, err)
	}
}

// TestFulltextBackfillBatches: a backfill over several batches and
// partitions indexes every message.
func TestFulltextBackfillBatches(t *testing.T) {
	open := openFulltext(t)
	ctx := context.Background()
	st := open(storage.FulltextOff).(*Store)
	n := 2*ftsBackfillBatch + 17
	if _, err := st.pool.Exec(ctx, `INSERT INTO archive (owner, ts, id, with_bare, with_resource, origin_id, from_full, raw)
		SELECT 'a' || (i % 7) || '@b', now() - i * interval '1 hour', lpad(i::text, 26, '0'), 'c@d', '', '', 'c@d/r',
			convert_to('<message><body>word' || repeat('x', i % 5) || '</body></message>', 'UTF8')
		FROM generate_series(0, $1 - 1) i`, n); err != nil {
		t.Fatal(err)
	}
	st.Close()
	st = open(storage.FulltextOn).(*Store)
	var indexed int
	if err := st.pool.QueryRow(ctx, `SELECT count(*) FROM archive WHERE fts IS NOT NULL`).Scan(&indexed); err != nil {
		t.Fatal(err)
	}
	if indexed != n {
		t.Fatalf("%d indexed, want %d", indexed, n)
	}
}
