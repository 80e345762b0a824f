package pg

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/storage"
	"github.com/parley-xmpp/parley/storage/groupcommit"
)

// openGroupCommit opens a Store with group commit on a fresh schema.
func openGroupCommit(t testing.TB, o groupcommit.Options) *Store {
	t.Helper()
	dsn := needPostgres(t)
	o.Enabled = true
	st, err := Open(context.Background(), Config{DSN: dsn, Schema: newSchema(t, dsn), MaxConns: 4, Migrate: true, GroupCommit: o})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestGroupCommitBadRow: one row PostgreSQL rejects (a NUL byte in a text
// column) fails only its own caller; the rows batched with it are stored
// and every acknowledged row is readable.
func TestGroupCommitBadRow(t *testing.T) {
	st := openGroupCommit(t, groupcommit.Options{MaxWait: 20 * time.Millisecond})
	ctx := context.Background()
	const n = 40
	ids := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			with := fmt.Sprintf("peer%d@example.org", i)
			if i == 17 {
				with = "bad\x00peer@example.org"
			}
			ids[i], errs[i] = st.AppendArchive(ctx, "juliet@example.org", storage.ArchivedMessage{With: with, Raw: []byte("<message/>")})
		})
	}
	wg.Wait()
	stored := map[string]bool{}
	page, err := st.QueryArchive(ctx, "juliet@example.org", storage.ArchiveQuery{Max: 100})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range page.Messages {
		stored[m.ID] = true
	}
	for i := range n {
		switch {
		case i == 17 && errs[i] == nil:
			t.Errorf("row with a NUL byte was accepted")
		case i != 17 && errs[i] != nil:
			t.Errorf("row %d failed along with the bad one: %v", i, errs[i])
		case i != 17 && !stored[ids[i]]:
			t.Errorf("row %d acknowledged (%s) but not stored", i, ids[i])
		}
	}
	if len(page.Messages) != n-1 || page.Count != n-1 {
		t.Errorf("archive holds %d messages (count %d), want %d", len(page.Messages), page.Count, n-1)
	}
}
