package pg

import (
	"context"
	"io/fs"
	"testing"
	"testing/fstest"
	"time"

	"github.com/parley-xmpp/parley/storage"
)

// partitionOf names the partition holding owner's message id.
func partitionOf(t *testing.T, st *Store, owner, id string) string {
	t.Helper()
	var name string
	if err := st.queryRow(t.Context(), `SELECT tableoid::regclass::text FROM archive WHERE owner = $1 AND id = $2`,
		[]any{owner, id}, &name); err != nil {
		t.Fatalf("partition of %s: %v", id, err)
	}
	return name
}

func TestPartitionMigrationKeepsData(t *testing.T) {
	dsn := needPostgres(t)
	schema := newSchema(t, dsn)
	conn := schemaConn(t, dsn, schema)
	ctx := t.Context()

	// The schema as it was before partitioning, with messages in it.
	before := fstest.MapFS{}
	all := embeddedMigrations()
	names, _ := fs.Glob(all, "*.sql")
	for _, n := range names {
		if n < "0006" {
			b, _ := fs.ReadFile(all, n)
			before[n] = &fstest.MapFile{Data: b}
		}
	}
	if _, err := migrate(ctx, conn, before); err != nil {
		t.Fatal(err)
	}
	stamps := []time.Time{
		time.Date(2024, 12, 31, 23, 59, 59, 999999000, time.UTC),
		time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2025, 1, 15, 12, 0, 0, 0, time.FixedZone("x", 5*3600)),
	}
	for i, ts := range stamps {
		if _, err := conn.Exec(ctx, `INSERT INTO archive (owner, ts, id, with_bare, with_resource, origin_id, from_full, raw)
			VALUES ('a@x', $1, $2, 'b@x', '', '', 'b@x/r', '\x3c6d2f3e')`, ts, storage.NewArchiveID(ts)+string(rune('a'+i))); err != nil {
			t.Fatal(err)
		}
	}
	applied, err := migrate(ctx, conn, all)
	if err != nil || len(applied) == 0 || applied[0] != "0006_archive_partitions.sql" {
		t.Fatalf("migrate: %v %v", applied, err)
	}
	for _, p := range []string{"archive_p202412", "archive_p202501", "archive_default"} {
		if !tableExists(t, conn, p) {
			t.Errorf("partition %s missing", p)
		}
	}
	if n := queryInt(t, conn, `SELECT COUNT(*) FROM archive_p202501`); n != 2 {
		t.Errorf("archive_p202501 has %d rows, want 2", n)
	}
	if n := queryInt(t, conn, `SELECT COUNT(*) FROM archive_p202412`); n != 1 {
		t.Errorf("archive_p202412 has %d rows, want 1", n)
	}

	st, err := Open(ctx, Config{DSN: dsn, Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	page, err := st.QueryArchive(ctx, "a@x", storage.ArchiveQuery{Max: 10})
	if err != nil || page.Count != 3 || !page.Messages[0].Timestamp.Equal(stamps[0]) {
		t.Fatalf("after migration: %+v %v", page, err)
	}
}

func TestEnsurePartitions(t *testing.T) {
	st := openTest(t)
	ctx := t.Context()
	now := time.Now().UTC()
	// Open made this month's partition and DefaultPartitionMonthsAhead more.
	for i := 0; i <= DefaultPartitionMonthsAhead; i++ {
		m := monthStart(now).AddDate(0, i, 0)
		var ok bool
		if err := st.queryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, []any{partitionName(m)}, &ok); err != nil || !ok {
			t.Errorf("partition %s missing after Open (%v)", partitionName(m), err)
		}
	}
	id, err := st.AppendArchive(ctx, "a@x", storage.ArchivedMessage{With: "b@x", Timestamp: now})
	if err != nil {
		t.Fatal(err)
	}
	if p := partitionOf(t, st, "a@x", id); p != partitionName(monthStart(now)) {
		t.Errorf("message of now in %s", p)
	}

	// A message far ahead lands in the default partition, until its
	// month gets one.
	later := monthStart(now).AddDate(0, 10, 3)
	id2, err := st.AppendArchive(ctx, "a@x", storage.ArchivedMessage{With: "b@x", Timestamp: later})
	if err != nil {
		t.Fatal(err)
	}
	if p := partitionOf(t, st, "a@x", id2); p != "archive_default" {
		t.Errorf("message of %v in %s, want archive_default", later, p)
	}
	created, err := st.EnsurePartitions(ctx, now, 12)
	if err != nil {
		t.Fatal(err)
	}
	if len(created) != 12-DefaultPartitionMonthsAhead {
		t.Errorf("created %v", created)
	}
	if p := partitionOf(t, st, "a@x", id2); p != partitionName(monthStart(later)) {
		t.Errorf("message of %v in %s after EnsurePartitions", later, p)
	}
	page, err := st.QueryArchive(ctx, "a@x", storage.ArchiveQuery{Max: 10})
	if err != nil || page.Count != 2 || page.Messages[1].ID != id2 {
		t.Fatalf("query after moving: %+v %v", page, err)
	}
	if created, err := st.EnsurePartitions(ctx, now, 12); err != nil || len(created) != 0 {
		t.Errorf("second EnsurePartitions: %v %v", created, err)
	}

	// Concurrent callers (several nodes) create each partition once.
	errs := make(chan error, 3)
	for range 3 {
		go func() {
			_, err := st.EnsurePartitions(ctx, now.AddDate(1, 0, 0), 6)
			errs <- err
		}()
	}
	for range 3 {
		if err := <-errs; err != nil {
			t.Errorf("concurrent EnsurePartitions: %v", err)
		}
	}
}

func TestCloseStopsPartitionLoop(t *testing.T) {
	st := openTest(t)
	done := make(chan struct{})
	go func() { st.Close(); st.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return")
	}
	select {
	case <-st.loopDone:
	default:
		t.Fatal("partition loop still running after Close")
	}
	_ = context.Background
}
