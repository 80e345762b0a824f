package server

import (
	"context"
	"errors"
	"testing"

	"github.com/parley-xmpp/parley/storage"
)

// TestOpenStoreFulltext: the store keeps its full-text index exactly when
// mam.fulltext is on, and turning it on makes earlier messages searchable.
func TestOpenStoreFulltext(t *testing.T) {
	ctx := context.Background()
	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	open := func(fulltext bool) storage.Store {
		t.Helper()
		cfg.MAM.Fulltext = fulltext
		st, err := OpenStore(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	search := func(st storage.Store) (int, error) {
		p, err := st.QueryArchive(ctx, "a@example.org", storage.ArchiveQuery{Fulltext: "lark", Max: 10})
		return p.Count, err
	}
	st := open(false)
	if _, err := st.AppendArchive(ctx, "a@example.org", storage.ArchivedMessage{With: "b@example.org",
		Raw: []byte("<message><body>lark</body></message>")}); err != nil {
		t.Fatal(err)
	}
	if _, err := search(st); !errors.Is(err, storage.ErrFulltextUnavailable) {
		t.Fatalf("mam.fulltext off: search err %v", err)
	}
	st.Close()
	st = open(true)
	defer st.Close()
	if n, err := search(st); err != nil || n != 1 {
		t.Fatalf("mam.fulltext on: %d found, %v", n, err)
	}
}
