package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/storage"
)

func logRows(t *testing.T, st *Store) int {
	t.Helper()
	var n int
	if err := st.log.w.QueryRowContext(t.Context(), `SELECT count(*) FROM archive_log`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// A crash between a move's commit and the log's delete leaves rows in
// both files; a row only in the log (committed, never moved) is moved at
// the next start. Either way each message is in the archive once.
func TestArchiveLogRecovery(t *testing.T) {
	dir := t.TempDir()
	ctx := t.Context()
	st, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	const owner = "a@example.org"
	id, err := st.AppendArchive(ctx, owner, storage.ArchivedMessage{With: "b@example.org", Raw: []byte("<message id='1'/>")})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil { // moves it
		t.Fatal(err)
	}

	// What the crash left: the moved row again, and one never moved.
	db, err := sql.Open(driverName, dsn(filepath.Join(dir, LogFileName)))
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Now().UnixMicro()
	for i, r := range []struct{ id, raw string }{{id, "<message id='1'/>"}, {"only-in-log", "<message id='2'/>"}} {
		if _, err := db.ExecContext(ctx, `INSERT INTO archive_log (seq, owner, ts, id, with_bare, with_resource, origin_id, from_full, raw)
			VALUES (?, ?, ?, ?, 'b@example.org', '', '', '', ?)`, 41+i, owner, ts+int64(i), r.id, []byte(r.raw)); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	st = openTemp(t, dir)
	page, err := st.QueryArchive(ctx, owner, storage.ArchiveQuery{Max: 10})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range page.Messages {
		ids = append(ids, m.ID)
	}
	if len(ids) != 2 || ids[0] != id || ids[1] != "only-in-log" {
		t.Fatalf("archive after recovery: %v, want [%s only-in-log]", ids, id)
	}
	if n := logRows(t, st); n != 0 {
		t.Fatalf("%d rows left in the log after a settled query", n)
	}
	// New rows after the recovered ones are moved too.
	if _, err := st.AppendArchive(ctx, owner, storage.ArchivedMessage{With: "b@example.org", Raw: []byte("<message id='3'/>")}); err != nil {
		t.Fatal(err)
	}
	if page, err := st.QueryArchive(ctx, owner, storage.ArchiveQuery{Max: 10}); err != nil || len(page.Messages) != 3 {
		t.Fatalf("after one more: %d messages, %v; want 3", len(page.Messages), err)
	}
}

// holdWriter takes parley.db's only write connection, so that the mover
// cannot move; the returned function gives it back.
func holdWriter(t *testing.T, st *Store) func() {
	t.Helper()
	conn, err := st.w.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return func() { conn.Close() }
}

// While the mover cannot run, rows are committed (in the log), found by
// origin-id lookups (dedup, while a message is routed), and queries wait
// for them to reach the archive rather than answering without them.
func TestArchiveLogReadersWhileMoverBlocked(t *testing.T) {
	st := openTemp(t, t.TempDir())
	ctx := t.Context()
	const owner, from = "a@example.org", "b@example.org/phone"
	release := holdWriter(t, st)
	id, err := st.AppendArchive(ctx, owner, storage.ArchivedMessage{With: "b@example.org", WithResource: "phone",
		OriginID: "o-1", FromFull: from, Raw: []byte("<message id='1'/>")})
	if err != nil {
		t.Fatal(err)
	}
	if n := logRows(t, st); n != 1 {
		t.Fatalf("log holds %d rows, want 1", n)
	}
	m, err := st.FindArchivedByOrigin(ctx, owner, "o-1", from, time.Now().Add(-time.Minute))
	if err != nil || m.ID != id || string(m.Raw) != "<message id='1'/>" || m.With != "b@example.org" {
		t.Fatalf("FindArchivedByOrigin from the log: %+v, %v; want id %s", m, err, id)
	}
	if _, err := st.FindArchivedByOrigin(ctx, owner, "o-1", "b@example.org/other", time.Now().Add(-time.Minute)); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("another sender's origin-id: %v, want not found", err)
	}
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if _, err := st.QueryArchive(short, owner, storage.ArchiveQuery{Max: 10}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("query while the row cannot be moved: %v, want deadline exceeded", err)
	}
	// Another owner has nothing in the log: no wait.
	if page, err := st.QueryArchive(ctx, "c@example.org", storage.ArchiveQuery{Max: 10}); err != nil || len(page.Messages) != 0 {
		t.Fatalf("other owner: %+v, %v", page, err)
	}
	release()
	page, err := st.QueryArchive(ctx, owner, storage.ArchiveQuery{Max: 10})
	if err != nil || len(page.Messages) != 1 || page.Messages[0].ID != id {
		t.Fatalf("after the mover ran: %+v, %v", page, err)
	}
	if m, err := st.FindArchivedByOrigin(ctx, owner, "o-1", from, time.Now().Add(-time.Minute)); err != nil || m.ID != id {
		t.Fatalf("FindArchivedByOrigin from the archive: %+v, %v", m, err)
	}
}

// The log is bounded: past logMaxBytes appends wait for the mover, and
// go on once it has moved the rows.
func TestArchiveLogBounded(t *testing.T) {
	old := logMaxBytes
	logMaxBytes = 1
	t.Cleanup(func() { logMaxBytes = old })
	st := openTemp(t, t.TempDir())
	ctx := t.Context()
	const owner = "a@example.org"
	release := holdWriter(t, st)
	if _, err := st.AppendArchive(ctx, owner, storage.ArchivedMessage{With: "b@example.org", Raw: []byte("<message id='1'/>")}); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if _, err := st.AppendArchive(short, owner, storage.ArchivedMessage{With: "b@example.org", Raw: []byte("<message id='2'/>")}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("append to a full log: %v, want deadline exceeded", err)
	}
	release()
	if _, err := st.AppendArchive(ctx, owner, storage.ArchivedMessage{With: "b@example.org", Raw: []byte("<message id='3'/>")}); err != nil {
		t.Fatalf("append once the mover ran: %v", err)
	}
	page, err := st.QueryArchive(ctx, owner, storage.ArchiveQuery{Max: 10})
	if err != nil || len(page.Messages) != 2 {
		t.Fatalf("archive: %d messages, %v; want 2 (the refused one is not there)", len(page.Messages), err)
	}
}

// Deleting an archive deletes the owner's rows still in the log, so that
// the mover cannot bring them back after the delete; usage counts them
// while they are there.
func TestArchiveLogDeleteAndUsage(t *testing.T) {
	st := openTemp(t, t.TempDir())
	ctx := t.Context()
	const owner = "a@example.org"
	raw := []byte("<message id='1'><body>hello</body></message>")
	release := holdWriter(t, st)
	if _, err := st.AppendArchive(ctx, owner, storage.ArchivedMessage{With: "b@example.org", Raw: raw}); err != nil {
		t.Fatal(err)
	}
	if u, err := st.AccountUsage(ctx, owner); err != nil || u.Archive != int64(len(raw)) {
		t.Fatalf("usage with the row in the log: %+v, %v; want archive %d", u, err, len(raw))
	}
	deleted := make(chan error, 1)
	go func() { deleted <- st.DeleteArchive(ctx, owner) }()
	// The delete has taken the row out of the log before it waits for
	// the writer.
	deadline := time.Now().Add(5 * time.Second)
	for logRows(t, st) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the row is still in the log 5 s after DeleteArchive started")
		}
		time.Sleep(5 * time.Millisecond)
	}
	release()
	if err := <-deleted; err != nil {
		t.Fatal(err)
	}
	// Forgotten in memory with them: usage and the log's backlog drop at
	// once, not at the next move.
	if u, err := st.AccountUsage(ctx, owner); err != nil || u.Archive != 0 {
		t.Fatalf("usage right after delete: %+v, %v", u, err)
	}
	st.log.mu.Lock()
	rows, backlog := st.log.rows, st.log.backlog
	st.log.mu.Unlock()
	if rows != 0 || backlog != 0 {
		t.Fatalf("log backlog after delete: %d rows, %d bytes", rows, backlog)
	}
	if err := st.log.settle(ctx, ""); err != nil {
		t.Fatal(err)
	}
	page, err := st.QueryArchive(ctx, owner, storage.ArchiveQuery{Max: 10})
	if err != nil || len(page.Messages) != 0 {
		t.Fatalf("archive after delete: %d messages, %v", len(page.Messages), err)
	}
	if u, err := st.AccountUsage(ctx, owner); err != nil || u.Archive != 0 {
		t.Fatalf("usage after delete: %+v, %v", u, err)
	}
}

// A move leaves the write connection as it found it: synchronous NORMAL
// (FULL would fsync every commit) and the log detached (attached, every
// BEGIN IMMEDIATE would lock it).
func TestArchiveLogMoveResetsWriter(t *testing.T) {
	st := openTemp(t, t.TempDir())
	ctx := t.Context()
	for i := range 3 {
		if _, err := st.AppendArchive(ctx, "a@example.org", storage.ArchivedMessage{With: "b@example.org", Raw: []byte("<message/>")}); err != nil {
			t.Fatal(err)
		}
		if _, err := st.QueryArchive(ctx, "a@example.org", storage.ArchiveQuery{Max: 1}); err != nil { // moves
			t.Fatal(i, err)
		}
	}
	var sync, attached int
	if err := st.w.QueryRowContext(ctx, `PRAGMA main.synchronous`).Scan(&sync); err != nil || sync != 1 {
		t.Fatalf("writer synchronous = %d, %v; want 1 (NORMAL)", sync, err)
	}
	if err := st.w.QueryRowContext(ctx, `SELECT count(*) FROM pragma_database_list WHERE name = 'alog'`).Scan(&attached); err != nil || attached != 0 {
		t.Fatalf("log still attached to the writer: %d, %v", attached, err)
	}
	if err := st.log.w.QueryRowContext(ctx, `PRAGMA main.synchronous`).Scan(&sync); err != nil || sync != 1 {
		t.Fatalf("log writer synchronous = %d, %v; want 1 (NORMAL)", sync, err)
	}
}

// A batch larger than one statement takes (a group commit of up to
// storage.group_commit_max_batch rows) commits whole, and moves whole.
func TestArchiveLogBigBatch(t *testing.T) {
	st := openTemp(t, t.TempDir())
	ctx := t.Context()
	n := rowsPerStatement + 100
	rows := make([]archiveRow, n)
	for i := range rows {
		rows[i] = newArchiveRow("a@example.org", storage.ArchivedMessage{With: "b@example.org", Raw: []byte("<message/>")})
	}
	if err := st.log.appendRows(ctx, rows); err != nil {
		t.Fatal(err)
	}
	page, err := st.QueryArchive(ctx, "a@example.org", storage.ArchiveQuery{Max: 1})
	if err != nil || page.Count != n {
		t.Fatalf("archive holds %d rows, %v; want %d", page.Count, err, n)
	}
	if rowsPerStatement < storage.DefaultConfig().GroupCommitMaxBatch {
		t.Errorf("a default batch (%d rows) takes more than one statement (%d rows)", storage.DefaultConfig().GroupCommitMaxBatch, rowsPerStatement)
	}
}
