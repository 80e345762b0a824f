package sqlite

import (
	"context"
	"fmt"
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
