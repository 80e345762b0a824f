package pg

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/storage"
	"github.com/parley-xmpp/parley/storage/groupcommit"
)

// TestArchiveCountsInStep: archive_counts agrees with the rows after
// concurrent batched and single inserts, retention and archive deletion,
// and the RSM count and index it answers are those of COUNT(*).
func TestArchiveCountsInStep(t *testing.T) {
	st := openGroupCommit(t, groupcommit.Options{})
	plain := &Store{pool: st.pool, timeout: st.timeout}
	plain.archiveW = plain.newArchiveWriter(groupcommit.Options{})
	ctx := context.Background()
	old := time.Now().Add(-48 * time.Hour)
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			s := st
			if w%2 == 1 {
				s = plain
			}
			for i := range 25 {
				ts := time.Time{}
				if i < 5 {
					ts = old.Add(time.Duration(w*25+i) * time.Second)
				}
				if _, err := s.AppendArchive(ctx, fmt.Sprintf("u%d@example.org", w%3), storage.ArchivedMessage{
					With: fmt.Sprintf("p%d@example.org", i%4), Timestamp: ts, Raw: []byte("<message/>")}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	check := func(when string) {
		t.Helper()
		var bad int
		if err := st.pool.QueryRow(ctx, `SELECT count(*) FROM (
			SELECT owner, with_bare, count(*) AS n FROM archive GROUP BY 1, 2) a
			FULL JOIN archive_counts c USING (owner, with_bare) WHERE a.n IS DISTINCT FROM c.n`).Scan(&bad); err != nil {
			t.Fatal(err)
		}
		if bad != 0 {
			t.Errorf("%s: %d conversations whose archive_counts differ from the rows", when, bad)
		}
	}
	check("after inserts")
	if n, err := st.DeleteArchiveBefore(ctx, time.Now().Add(-24*time.Hour), 30); err != nil || n != 30 {
		t.Fatalf("DeleteArchiveBefore = %d, %v", n, err)
	}
	check("after retention")
	if err := st.DeleteArchive(ctx, "u1@example.org"); err != nil {
		t.Fatal(err)
	}
	check("after deleting an archive")

	for _, q := range []storage.ArchiveQuery{{Max: 10}, {With: "p1@example.org", Max: 3, Last: true}, {Max: 7, Last: true}} {
		p, err := st.QueryArchive(ctx, "u0@example.org", q)
		if err != nil {
			t.Fatal(err)
		}
		var n, idx int
		where, args := "owner = 'u0@example.org'", []any{}
		if q.With != "" {
			where += " AND with_bare = 'p1@example.org'"
		}
		st.pool.QueryRow(ctx, `SELECT count(*) FROM archive WHERE `+where, args...).Scan(&n)
		st.pool.QueryRow(ctx, `SELECT count(*) FROM archive WHERE `+where+` AND (ts, id) < ($1, $2)`,
			p.Messages[0].Timestamp, p.Messages[0].ID).Scan(&idx)
		if p.Count != n || p.FirstIndex != idx {
			t.Errorf("%+v: count %d index %d, want %d %d", q, p.Count, p.FirstIndex, n, idx)
		}
	}
}

// TestLookupOutsideIDTime: a message whose ts lies far before the time in
// its id (a clock that stepped back) is still found by id.
func TestLookupOutsideIDTime(t *testing.T) {
	st := openTest(t)
	ctx := context.Background()
	// An id 30 days after its message's ts, made by hand: NewArchiveID
	// would move this process's ids into the future.
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(time.Now().Add(30*24*time.Hour).UnixMilli())<<16)
	b[15] = 7
	id := archiveIDEncoding.EncodeToString(b[:])
	if _, err := st.pool.Exec(ctx, `INSERT INTO archive (owner, ts, id, with_bare, with_resource, origin_id, from_full, raw)
		VALUES ('a@example.org', now() - interval '40 days', $1, 'b@example.org', '', '', '', '')`, id); err != nil {
		t.Fatal(err)
	}
	if _, err := st.AppendArchive(ctx, "a@example.org", storage.ArchivedMessage{With: "b@example.org"}); err != nil {
		t.Fatal(err)
	}
	p, err := st.QueryArchive(ctx, "a@example.org", storage.ArchiveQuery{AfterID: id, Max: 10})
	if err != nil || p.Count != 1 || len(p.Messages) != 1 {
		t.Fatalf("after-id %s: %+v, %v", id, p, err)
	}
	if _, from, ok := idTimeBounds("not-an-id"); ok || !from.IsZero() {
		t.Error("idTimeBounds accepted a foreign id")
	}
}
