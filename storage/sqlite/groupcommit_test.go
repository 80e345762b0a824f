package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/parley-xmpp/parley/storage"
	"github.com/parley-xmpp/parley/storage/groupcommit"
)

func openGroupCommit(t testing.TB) *Store {
	t.Helper()
	st, err := OpenOptions(context.Background(), t.TempDir(), Options{GroupCommit: groupcommit.Options{Enabled: true}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestGroupCommitConcurrent: every acknowledged row of many concurrent
// writers is stored, and rows still queued at Close are written.
func TestGroupCommitConcurrent(t *testing.T) {
	dir := t.TempDir()
	st, err := OpenOptions(context.Background(), dir, Options{GroupCommit: groupcommit.Options{Enabled: true}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const writers, each = 32, 20
	var mu sync.Mutex
	acked := map[string]bool{}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				id, err := st.AppendArchive(ctx, fmt.Sprintf("u%d@example.org", w%4), storage.ArchivedMessage{
					With: "peer@example.org", Raw: fmt.Appendf(nil, "<message id='%d-%d'/>", w, i)})
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				acked[id] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	st.Close()
	st = openTemp(t, dir)
	total := 0
	for u := range 4 {
		page, err := st.QueryArchive(ctx, fmt.Sprintf("u%d@example.org", u), storage.ArchiveQuery{Max: 1000})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range page.Messages {
			if !acked[m.ID] {
				t.Errorf("stored row %s was never acknowledged", m.ID)
			}
		}
		total += len(page.Messages)
	}
	if total != writers*each || len(acked) != writers*each {
		t.Errorf("stored %d, acknowledged %d, want %d", total, len(acked), writers*each)
	}
}

// TestInsertArchiveRowsAtomic: a batch is written by one multi-row INSERT
// (or several in one transaction when it is longer than one statement
// takes); either every row is stored or, when one row breaks a constraint,
// none is.
func TestInsertArchiveRowsAtomic(t *testing.T) {
	ctx := context.Background()
	for _, n := range []int{1, 3, rowsPerStatement, rowsPerStatement + 7} {
		st := openTemp(t, t.TempDir())
		rows := make([]archiveRow, n)
		for i := range rows {
			rows[i] = newArchiveRow(fmt.Sprintf("u%d@example.org", i%5), storage.ArchivedMessage{
				With: "peer@example.org", FromFull: "peer@example.org/r", Raw: fmt.Appendf(nil, "<message id='%d'/>", i)})
		}
		bad := slices.Clone(rows)
		bad[n-1].owner, bad[n-1].id = bad[0].owner, bad[0].id // same (owner, id) twice
		if n > 1 {
			if err := st.insertArchiveRows(ctx, bad); err == nil || !rowSpecific(err) {
				t.Fatalf("%d rows with a duplicate: %v, want a constraint error", n, err)
			}
			if total := countArchive(t, st); total != 0 {
				t.Fatalf("%d rows with a duplicate: %d stored, want none", n, total)
			}
		}
		if err := st.insertArchiveRows(ctx, rows); err != nil {
			t.Fatalf("%d rows: %v", n, err)
		}
		if total := countArchive(t, st); total != n {
			t.Fatalf("%d rows: %d stored", n, total)
		}
	}
}

// insertArchiveRows inserts rows into the archive atomically, as the
// archive log's mover does (one statement, moveRange): up to
// rowsPerStatement rows in one multi-row INSERT that runs on its own
// (autocommit), which needs no statement journal, more in one
// transaction. Tests and BenchmarkInsertArchiveBatch measure the archive's
// own insert with it.
func (s *Store) insertArchiveRows(ctx context.Context, rows []archiveRow) error {
	if len(rows) <= rowsPerStatement {
		q, args := archiveInsert(rows)
		_, err := s.w.ExecContext(ctx, q, args...)
		return err
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		for len(rows) > 0 {
			n := min(len(rows), rowsPerStatement)
			q, args := archiveInsert(rows[:n])
			if _, err := tx.ExecContext(ctx, q, args...); err != nil {
				return err
			}
			rows = rows[n:]
		}
		return nil
	})
}

func countArchive(t *testing.T, st *Store) int {
	t.Helper()
	var n int
	if err := st.r.QueryRow(`SELECT count(*) FROM archive`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
