package sqlite

import (
	"context"
	"database/sql"
	"strings"
	"testing"

	"github.com/parley-xmpp/parley/storage"
	"github.com/parley-xmpp/parley/storage/storagetest"
)

func search(t *testing.T, st *Store, owner, text string) storage.ArchivePage {
	t.Helper()
	p, err := st.QueryArchive(t.Context(), owner, storage.ArchiveQuery{Fulltext: text, Max: 100})
	if err != nil {
		t.Fatalf("QueryArchive %q: %v", text, err)
	}
	return p
}

// TestFulltextBackfill: the migration indexes the messages archived
// before it (never the encrypted ones), and the index survives VACUUM,
// which may renumber the archive's rowids.
func TestFulltextBackfill(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	old, err := open(ctx, dir, storagetest.MigrationsBefore(t, migrationsRoot(), 8), true)
	if err != nil {
		t.Fatal(err)
	}
	var plain []string
	for i, raw := range []string{
		"<message><body>old swallow one</body></message>",
		"<message><body>swallow</body><encrypted xmlns='urn:xmpp:omemo:2'/></message>",
		"<message><body>old swallow two</body></message>",
	} {
		id, err := old.AppendArchive(ctx, "a@example.org", storage.ArchivedMessage{With: "b@example.org", Raw: []byte(raw)})
		if err != nil {
			t.Fatal(err)
		}
		if i != 1 {
			plain = append(plain, id)
		}
	}
	old.Close()

	st := openTemp(t, dir)
	if p := search(t, st, "a@example.org", "swallow"); p.Count != 2 || p.Messages[0].ID != plain[0] || p.Messages[1].ID != plain[1] {
		t.Fatalf("after the migration: %+v", p)
	}
	// Delete the first message and VACUUM: rowids may move, the index
	// follows (owner, id).
	if err := st.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM archive WHERE id = ?`, plain[0])
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.w.ExecContext(ctx, `VACUUM`); err != nil {
		t.Fatal(err)
	}
	if p := search(t, st, "a@example.org", "old swallow"); p.Count != 1 || p.Messages[0].ID != plain[1] {
		t.Fatalf("after delete and VACUUM: %+v", p)
	}
}

func TestSearchText(t *testing.T) {
	for _, c := range []struct{ raw, want string }{
		{"<message><body>hi &amp; bye</body></message>", "hi & bye"},
		{"<message xmlns='jabber:client'><body><![CDATA[a<b]]></body></message>", "a<b"},
		{"<message><body>one</body><body xml:lang='de'>eins</body></message>", "one\neins"},
		{"<message><body>  </body></message>", ""},
		{"<message><subject>s</subject></message>", ""},
		{"<presence><status>s</status></presence>", ""},
		{"<message><body>x</body><html><body xmlns='http://www.w3.org/1999/xhtml'>y</body></html></message>", "x"},
		{"<message><body>x</body><e:encrypted xmlns:e='urn:example'/></message>", ""},
		{"<message><body>x</body><encryption xmlns='urn:xmpp:eme:0' namespace='urn:xmpp:openpgp:0'/></message>", ""},
		{"<message><body>unclosed</message>", ""},
		{"", ""},
	} {
		got, ok := searchText([]byte(c.raw))
		if got != c.want || ok != (c.want != "") {
			t.Errorf("searchText(%q) = %q, %v; want %q", c.raw, got, ok, c.want)
		}
	}
	if q := ftsQuery(` say "hi" NOT*  `); q != `"say" """hi""" "NOT*"` {
		t.Errorf("ftsQuery = %s", q)
	}
	if w, _ := fulltextFilter("o", "x"); !strings.Contains(w, "MATCH") {
		t.Error("filter")
	}
}

// openFulltext opens stores with a full-text index mode on one database
// directory.
func openFulltext(t *testing.T) func(storage.FulltextIndex) storage.Archive {
	dir := t.TempDir()
	return func(mode storage.FulltextIndex) storage.Archive {
		st, err := OpenOptions(context.Background(), dir, Options{Fulltext: mode})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
}

// TestFulltextOffCostsNothing: with the index off no trigger runs on an
// insert, so nothing is indexed.
func TestFulltextOffCostsNothing(t *testing.T) {
	open := openFulltext(t)
	st := open(storage.FulltextOff).(*Store)
	if _, err := st.AppendArchive(t.Context(), "a@b", storage.ArchivedMessage{With: "c@d", Raw: []byte("<message><body>hello</body></message>")}); err != nil {
		t.Fatal(err)
	}
	var triggers, docs int
	if err := st.r.QueryRow(`SELECT count(*) FROM sqlite_schema WHERE type = 'trigger' AND tbl_name = 'archive' AND name LIKE 'archive_fts%'`).Scan(&triggers); err != nil {
		t.Fatal(err)
	}
	if err := st.r.QueryRow(`SELECT count(*) FROM archive_fts_docs`).Scan(&docs); err != nil {
		t.Fatal(err)
	}
	if triggers != 0 || docs != 0 {
		t.Fatalf("with the index off: %d triggers on archive, %d indexed messages", triggers, docs)
	}
	st.Close()
	// On again: the triggers are back, the message is indexed.
	st = open(storage.FulltextOn).(*Store)
	if err := st.r.QueryRow(`SELECT count(*) FROM sqlite_schema WHERE type = 'trigger' AND tbl_name = 'archive' AND name LIKE 'archive_fts%'`).Scan(&triggers); err != nil {
		t.Fatal(err)
	}
	if triggers != 3 {
		t.Fatalf("with the index on: %d triggers, want 3", triggers)
	}
	if p := search(t, st, "a@b", "hello"); p.Count != 1 {
		t.Fatalf("after rebuild: %d found", p.Count)
	}
}

// TestFulltextRebuildBatches: a rebuild over several batches indexes every
// message once.
func TestFulltextRebuildBatches(t *testing.T) {
	open := openFulltext(t)
	st := open(storage.FulltextOff).(*Store)
	n := 2*ftsRebuildBatch + 17
	err := st.write(t.Context(), func(tx *sql.Tx) error {
		for i := range n {
			r := newArchiveRow("a@b", storage.ArchivedMessage{With: "c@d", Raw: []byte("<message><body>word" + strings.Repeat("x", i%5) + "</body></message>")})
			q, args := archiveInsert([]archiveRow{r})
			if _, err := tx.Exec(q, args...); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	st = open(storage.FulltextOn).(*Store)
	var docs int
	if err := st.r.QueryRow(`SELECT count(*) FROM archive_fts_docs`).Scan(&docs); err != nil {
		t.Fatal(err)
	}
	if docs != n {
		t.Fatalf("%d indexed, want %d", docs, n)
	}
	if p := search(t, st, "a@b", "wordxx"); p.Count != (n+2)/5 {
		t.Fatalf("found %d, want %d", p.Count, (n+2)/5)
	}
}
