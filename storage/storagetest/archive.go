package storagetest

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/parley-xmpp/parley/storage"
)

// archiveOpener returns a new, empty archive store and arranges (with
// t.Cleanup) for it to be closed.
type archiveOpener = func(t *testing.T) storage.Archive

// runArchive runs the archive contract (XEP-0313 storage) as subtests of t.
func runArchive(t *testing.T, open archiveOpener) {
	t.Run("AppendAndQuery", func(t *testing.T) { testArchiveAppend(t, open) })
	t.Run("Submit", func(t *testing.T) { testArchiveSubmit(t, open) })
	t.Run("Paging", func(t *testing.T) { testArchivePaging(t, open) })
	t.Run("Filters", func(t *testing.T) { testArchiveFilters(t, open) })
	t.Run("UnknownIDs", func(t *testing.T) { testArchiveUnknownIDs(t, open) })
	t.Run("SameTimestamp", func(t *testing.T) { testArchiveSameTimestamp(t, open) })
	t.Run("Metadata", func(t *testing.T) { testArchiveMetadata(t, open) })
	t.Run("Dedup", func(t *testing.T) { testArchiveDedup(t, open) })
	t.Run("Newest", func(t *testing.T) { testArchiveNewest(t, open) })
	t.Run("Prefs", func(t *testing.T) { testArchivePrefs(t, open) })
	t.Run("Delete", func(t *testing.T) { testArchiveDelete(t, open) })
	t.Run("Retention", func(t *testing.T) { testArchiveRetention(t, open) })
	t.Run("Index", func(t *testing.T) { testArchiveIndex(t, open) })
	t.Run("Fulltext", func(t *testing.T) { testArchiveFulltext(t, open) })
	t.Run("FulltextEncrypted", func(t *testing.T) { testArchiveFulltextEncrypted(t, open) })
	t.Run("FulltextSizeBound", func(t *testing.T) { testArchiveFulltextSizeBound(t, open) })
	t.Run("FulltextDelete", func(t *testing.T) { testArchiveFulltextDelete(t, open) })
}

const (
	archOwner = "juliet@capulet.example"
	archRomeo = "romeo@montague.example"
	archNurse = "nurse@capulet.example"
)

// archFill appends n messages, one a minute from stamp(0), alternating
// with romeo and the nurse; it returns their IDs in order.
func archFill(t *testing.T, st storage.Archive, owner string, n int) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range ids {
		with := archRomeo
		if i%2 == 1 {
			with = archNurse
		}
		id, err := st.AppendArchive(t.Context(), owner, storage.ArchivedMessage{
			With: with, WithResource: fmt.Sprintf("r%d", i%3), Timestamp: stamp(i * 60),
			FromFull: with + "/r", Raw: fmt.Appendf(nil, "<message id='m%d'><body>%d</body></message>", i, i),
		})
		must(t, "AppendArchive", err)
		ids[i] = id
	}
	return ids
}

func pageIDs(p storage.ArchivePage) []string {
	var out []string
	for _, m := range p.Messages {
		out = append(out, m.ID)
	}
	return out
}

func wantPage(t *testing.T, what string, p storage.ArchivePage, ids []string, complete bool, count, index int) {
	t.Helper()
	if got := pageIDs(p); !slices.Equal(got, ids) {
		t.Fatalf("%s: ids %v, want %v", what, got, ids)
	}
	if p.Complete != complete || p.Count != count || (len(ids) > 0 && p.FirstIndex != index) {
		t.Fatalf("%s: complete=%v count=%d index=%d, want %v %d %d", what, p.Complete, p.Count, p.FirstIndex, complete, count, index)
	}
}

func testArchiveAppend(t *testing.T, open archiveOpener) {
	st := open(t)
	ctx := t.Context()
	raws := [][]byte{stanza1, stanza2, {}, []byte("<message/>")}
	var ids []string
	for i, raw := range raws {
		id, err := st.AppendArchive(ctx, archOwner, storage.ArchivedMessage{
			ID: "ignored", Owner: "ignored", With: archRomeo, WithResource: "balcony", Timestamp: stamp(i),
			OriginID: fmt.Sprint("o", i), FromFull: archRomeo + "/balcony", Raw: raw,
		})
		must(t, "AppendArchive", err)
		if id == "" || id == "ignored" || slices.Contains(ids, id) {
			t.Fatalf("AppendArchive id %q (earlier %v)", id, ids)
		}
		ids = append(ids, id)
	}
	if !slices.IsSorted(ids) {
		t.Errorf("IDs of messages appended in time order do not sort: %v", ids)
	}
	p, err := st.QueryArchive(ctx, archOwner, storage.ArchiveQuery{Max: 10})
	must(t, "QueryArchive", err)
	wantPage(t, "all", p, ids, true, len(raws), 0)
	for i, m := range p.Messages {
		if m.Owner != archOwner || m.With != archRomeo || m.WithResource != "balcony" || !m.Timestamp.Equal(stamp(i)) ||
			m.OriginID != fmt.Sprint("o", i) || m.FromFull != archRomeo+"/balcony" {
			t.Errorf("message %d = %+v", i, m)
		}
		wantBytes(t, fmt.Sprintf("message %d", i), m.Raw, raws[i])
	}
	// Other archives are separate.
	p, err = st.QueryArchive(ctx, archRomeo, storage.ArchiveQuery{Max: 10})
	must(t, "QueryArchive other", err)
	wantPage(t, "other owner", p, nil, true, 0, 0)
	if _, err := st.QueryArchive(ctx, archRomeo, storage.ArchiveQuery{Max: 10, IDs: ids[:1]}); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("another owner's id: %v, want ErrNotFound", err)
	}
	// A zero timestamp means now.
	before := time.Now().Add(-time.Second)
	_, err = st.AppendArchive(ctx, archNurse, storage.ArchivedMessage{With: archOwner, Raw: []byte("<message/>")})
	must(t, "AppendArchive now", err)
	p, err = st.QueryArchive(ctx, archNurse, storage.ArchiveQuery{Max: 1})
	must(t, "QueryArchive now", err)
	if len(p.Messages) != 1 || p.Messages[0].Timestamp.Before(before) || p.Messages[0].Timestamp.After(time.Now().Add(time.Second)) {
		t.Errorf("zero timestamp stored as %+v", p.Messages)
	}
}

// testArchiveSubmit: queued writes (storage.ArchiveSubmitter) get their
// IDs at once, commit in the order submitted, report their outcome to the
// waiter and to the callback, and are written even when the submitter's
// context ends after queueing.
func testArchiveSubmit(t *testing.T, open archiveOpener) {
	st := open(t)
	sub, ok := st.(storage.ArchiveSubmitter)
	if !ok {
		t.Fatalf("%T does not implement storage.ArchiveSubmitter", st)
	}
	ctx, cancel := context.WithCancel(t.Context())
	const n = 40
	ids := make([]string, n)
	done := make([]storage.Completion, n)
	var mu sync.Mutex
	thens := 0
	for i := range n {
		id, c, err := sub.SubmitArchive(ctx, archOwner, storage.ArchivedMessage{
			With: archRomeo, Timestamp: stamp(i), FromFull: archRomeo + "/r", OriginID: fmt.Sprint("s", i),
			Raw: fmt.Appendf(nil, "<message id='s%d'/>", i),
		}, func(err error) {
			if err != nil {
				t.Errorf("write %d: %v", i, err)
			}
			mu.Lock()
			thens++
			mu.Unlock()
		})
		must(t, "SubmitArchive", err)
		if id == "" || slices.Contains(ids, id) {
			t.Fatalf("SubmitArchive id %q", id)
		}
		ids[i], done[i] = id, c
	}
	cancel() // queued writes do not depend on the submitter's context
	for i, c := range done {
		select {
		case <-c.Done():
		case <-time.After(30 * time.Second):
			t.Fatalf("write %d not done after 30s", i)
		}
		if err := c.Err(); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	mu.Lock()
	if thens != n {
		t.Errorf("%d callbacks for %d writes", thens, n)
	}
	mu.Unlock()
	p, err := st.QueryArchive(t.Context(), archOwner, storage.ArchiveQuery{Max: n + 1})
	must(t, "QueryArchive", err)
	wantPage(t, "submitted", p, ids, true, n, 0)
	if _, _, err := sub.SubmitArchive(ctx, archOwner, storage.ArchivedMessage{With: archRomeo}, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("SubmitArchive with an ended context: %v, want context.Canceled", err)
	}
}

// querier returns a function that queries owner's archive.
func querier(t *testing.T, st storage.Archive, owner string) func(storage.ArchiveQuery) storage.ArchivePage {
	return func(q storage.ArchiveQuery) storage.ArchivePage {
		t.Helper()
		p, err := st.QueryArchive(t.Context(), owner, q)
		must(t, "QueryArchive", err)
		return p
	}
}

func testArchivePaging(t *testing.T, open archiveOpener) {
	st := open(t)
	ids := archFill(t, st, archOwner, 10)
	archFill(t, st, archRomeo, 3)
	q := querier(t, st, archOwner)
	wantPage(t, "first page", q(storage.ArchiveQuery{Max: 4}), ids[0:4], false, 10, 0)
	wantPage(t, "second page", q(storage.ArchiveQuery{Max: 4, PageAfter: ids[3]}), ids[4:8], false, 10, 4)
	wantPage(t, "third page", q(storage.ArchiveQuery{Max: 4, PageAfter: ids[7]}), ids[8:10], true, 10, 8)
	wantPage(t, "exact fit", q(storage.ArchiveQuery{Max: 5, PageAfter: ids[4]}), ids[5:10], true, 10, 5)
	wantPage(t, "after the last", q(storage.ArchiveQuery{Max: 4, PageAfter: ids[9]}), nil, true, 10, 0)
	wantPage(t, "last page", q(storage.ArchiveQuery{Max: 4, Last: true}), ids[6:10], false, 10, 6)
	wantPage(t, "page before", q(storage.ArchiveQuery{Max: 4, PageBefore: ids[6]}), ids[2:6], false, 10, 2)
	wantPage(t, "first page backward", q(storage.ArchiveQuery{Max: 4, PageBefore: ids[2]}), ids[0:2], true, 10, 0)
	wantPage(t, "whole", q(storage.ArchiveQuery{Max: 100, Last: true}), ids, true, 10, 0)
	p := q(storage.ArchiveQuery{Max: 0})
	if len(p.Messages) != 0 || p.Count != 10 {
		t.Errorf("max 0: %d messages, count %d", len(p.Messages), p.Count)
	}
	// Paging within a filter: count and index refer to the filtered set.
	wantPage(t, "filtered page", q(storage.ArchiveQuery{With: archNurse, Max: 2, PageAfter: ids[3]}), []string{ids[5], ids[7]}, false, 5, 2)
	wantPage(t, "filtered last", q(storage.ArchiveQuery{With: archNurse, Max: 2, Last: true}), []string{ids[7], ids[9]}, false, 5, 3)
}

func testArchiveFilters(t *testing.T, open archiveOpener) {
	st := open(t)
	ctx := t.Context()
	ids := archFill(t, st, archOwner, 10)
	cases := []struct {
		name string
		q    storage.ArchiveQuery
		want []string
	}{
		{"with bare", storage.ArchiveQuery{With: archRomeo}, []string{ids[0], ids[2], ids[4], ids[6], ids[8]}},
		{"with full", storage.ArchiveQuery{With: archRomeo, WithResource: "r0"}, []string{ids[0], ids[6]}},
		{"with unknown", storage.ArchiveQuery{With: "tybalt@capulet.example"}, nil},
		{"start inclusive", storage.ArchiveQuery{Start: stamp(7 * 60)}, ids[7:]},
		{"end inclusive", storage.ArchiveQuery{End: stamp(2 * 60)}, ids[:3]},
		{"start and end", storage.ArchiveQuery{Start: stamp(3*60 - 1), End: stamp(5*60 + 1)}, ids[3:6]},
		{"start in another zone", storage.ArchiveQuery{Start: stamp(8 * 60).UTC()}, ids[8:]},
		{"after-id", storage.ArchiveQuery{AfterID: ids[6]}, ids[7:]},
		{"before-id", storage.ArchiveQuery{BeforeID: ids[2]}, ids[:2]},
		{"between ids", storage.ArchiveQuery{AfterID: ids[2], BeforeID: ids[5]}, ids[3:5]},
		{"ids", storage.ArchiveQuery{IDs: []string{ids[5], ids[1], ids[5]}}, []string{ids[1], ids[5]}},
		{"ids empty list", storage.ArchiveQuery{IDs: []string{}}, nil},
		{"ids and with", storage.ArchiveQuery{IDs: []string{ids[1], ids[2]}, With: archNurse}, []string{ids[1]}},
		{"with and time", storage.ArchiveQuery{With: archNurse, Start: stamp(4 * 60), End: stamp(8 * 60)}, []string{ids[5], ids[7]}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.q.Max = 100
			p, err := st.QueryArchive(ctx, archOwner, c.q)
			must(t, "QueryArchive", err)
			wantPage(t, c.name, p, c.want, true, len(c.want), 0)
		})
	}
}

func testArchiveUnknownIDs(t *testing.T, open archiveOpener) {
	st := open(t)
	ids := archFill(t, st, archOwner, 3)
	for name, q := range map[string]storage.ArchiveQuery{
		"after-id":    {AfterID: "nope"},
		"before-id":   {BeforeID: "nope"},
		"ids":         {IDs: []string{ids[0], "nope"}},
		"page after":  {PageAfter: "nope"},
		"page before": {PageBefore: "nope"},
	} {
		q.Max = 10
		if _, err := st.QueryArchive(t.Context(), archOwner, q); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("%s: %v, want ErrNotFound", name, err)
		}
	}
}

// testArchiveSameTimestamp: messages stored in the same microsecond keep
// their order, and paging between them neither skips nor repeats.
func testArchiveSameTimestamp(t *testing.T, open archiveOpener) {
	st := open(t)
	ctx := t.Context()
	var ids []string
	for i := range 7 {
		id, err := st.AppendArchive(ctx, archOwner, storage.ArchivedMessage{With: archRomeo, Timestamp: stamp(0), Raw: fmt.Appendf(nil, "<message id='%d'/>", i)})
		must(t, "AppendArchive", err)
		ids = append(ids, id)
	}
	var got []string
	after := ""
	for range 10 {
		p, err := st.QueryArchive(ctx, archOwner, storage.ArchiveQuery{Max: 2, PageAfter: after})
		must(t, "QueryArchive", err)
		got = append(got, pageIDs(p)...)
		if p.Complete {
			break
		}
		after = p.Messages[len(p.Messages)-1].ID
	}
	if !slices.Equal(got, ids) {
		t.Fatalf("paged %v, appended %v", got, ids)
	}
	p, err := st.QueryArchive(ctx, archOwner, storage.ArchiveQuery{Max: 2, PageBefore: ids[3]})
	must(t, "QueryArchive", err)
	wantPage(t, "backward", p, ids[1:3], false, 7, 1)
}

func testArchiveMetadata(t *testing.T, open archiveOpener) {
	st := open(t)
	first, last, err := st.ArchiveMetadata(t.Context(), archOwner)
	must(t, "ArchiveMetadata empty", err)
	if first != nil || last != nil {
		t.Fatalf("empty archive: %+v %+v", first, last)
	}
	ids := archFill(t, st, archOwner, 4)
	first, last, err = st.ArchiveMetadata(t.Context(), archOwner)
	must(t, "ArchiveMetadata", err)
	if first == nil || last == nil || first.ID != ids[0] || last.ID != ids[3] ||
		!first.Timestamp.Equal(stamp(0)) || !last.Timestamp.Equal(stamp(180)) {
		t.Fatalf("metadata %+v %+v, want %s %s", first, last, ids[0], ids[3])
	}
}

func testArchiveDedup(t *testing.T, open archiveOpener) {
	st := open(t)
	ctx := t.Context()
	from := archRomeo + "/orchard"
	id, err := st.AppendArchive(ctx, archOwner, storage.ArchivedMessage{With: archRomeo, Timestamp: stamp(0), OriginID: "o1", FromFull: from, Raw: []byte("<message/>")})
	must(t, "AppendArchive", err)
	m, err := st.FindArchivedByOrigin(ctx, archOwner, "o1", from, stamp(-300))
	must(t, "FindArchivedByOrigin", err)
	if m.ID != id {
		t.Fatalf("found %q, want %q", m.ID, id)
	}
	for name, c := range map[string]struct {
		owner, origin, from string
		since               time.Time
	}{
		"other origin-id":  {archOwner, "o2", from, stamp(-300)},
		"other resource":   {archOwner, "o1", archRomeo + "/hall", stamp(-300)},
		"outside window":   {archOwner, "o1", from, stamp(1)},
		"other owner":      {archRomeo, "o1", from, stamp(-300)},
		"empty origin-id":  {archOwner, "", from, stamp(-300)},
		"empty from, same": {archOwner, "o1", "", stamp(-300)},
	} {
		if _, err := st.FindArchivedByOrigin(ctx, c.owner, c.origin, c.from, c.since); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("%s: %v, want ErrNotFound", name, err)
		}
	}
	// Archived again once the first was outside the window: the newest
	// row answers (another resource's later row does not count).
	again, err := st.AppendArchive(ctx, archOwner, storage.ArchivedMessage{With: archRomeo, Timestamp: stamp(60), OriginID: "o1", FromFull: from, Raw: []byte("<message/>")})
	must(t, "AppendArchive", err)
	_, err = st.AppendArchive(ctx, archOwner, storage.ArchivedMessage{With: archRomeo, Timestamp: stamp(120), OriginID: "o1", FromFull: archRomeo + "/hall", Raw: []byte("<message/>")})
	must(t, "AppendArchive", err)
	m, err = st.FindArchivedByOrigin(ctx, archOwner, "o1", from, stamp(-300))
	must(t, "FindArchivedByOrigin", err)
	if m.ID != again {
		t.Fatalf("found %q, want the newest %q", m.ID, again)
	}
}

// The newest message of any archive, whatever the order of the writes.
func testArchiveNewest(t *testing.T, open archiveOpener) {
	st := open(t)
	ctx := t.Context()
	newest, err := st.NewestArchived(ctx)
	must(t, "NewestArchived empty", err)
	if !newest.IsZero() {
		t.Fatalf("empty archives: newest %v", newest)
	}
	for _, w := range []struct {
		owner string
		sec   int
	}{{archOwner, 60}, {archRomeo, 120}, {archOwner, 30}} {
		_, err := st.AppendArchive(ctx, w.owner, storage.ArchivedMessage{With: archNurse, Timestamp: stamp(w.sec).Add(7 * time.Microsecond), FromFull: archNurse, Raw: []byte("<message/>")})
		must(t, "AppendArchive", err)
	}
	newest, err = st.NewestArchived(ctx)
	must(t, "NewestArchived", err)
	if want := stamp(120).Add(7 * time.Microsecond); !newest.Equal(want) {
		t.Fatalf("newest %v, want %v", newest, want)
	}
}

func testArchivePrefs(t *testing.T, open archiveOpener) {
	st := open(t)
	ctx := t.Context()
	if _, err := st.ArchivePrefs(ctx, archOwner); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("unset prefs: %v, want ErrNotFound", err)
	}
	p := storage.ArchivePrefs{Default: storage.ArchiveRoster, Always: []string{archRomeo, "zoë@example.org/ü"}, Never: []string{archNurse}}
	must(t, "SetArchivePrefs", st.SetArchivePrefs(ctx, archOwner, p))
	got, err := st.ArchivePrefs(ctx, archOwner)
	must(t, "ArchivePrefs", err)
	if got.Default != p.Default || !slices.Equal(got.Always, p.Always) || !slices.Equal(got.Never, p.Never) {
		t.Fatalf("prefs %+v, want %+v", got, p)
	}
	must(t, "SetArchivePrefs", st.SetArchivePrefs(ctx, archOwner, storage.ArchivePrefs{Default: storage.ArchiveNever}))
	got, err = st.ArchivePrefs(ctx, archOwner)
	must(t, "ArchivePrefs", err)
	if got.Default != storage.ArchiveNever || len(got.Always) != 0 || len(got.Never) != 0 {
		t.Fatalf("replaced prefs %+v", got)
	}
	if _, err := st.ArchivePrefs(ctx, archRomeo); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("other owner's prefs: %v", err)
	}
}

func testArchiveDelete(t *testing.T, open archiveOpener) {
	st := open(t)
	ctx := t.Context()
	archFill(t, st, archOwner, 3)
	keep := archFill(t, st, archRomeo, 2)
	must(t, "SetArchivePrefs", st.SetArchivePrefs(ctx, archOwner, storage.ArchivePrefs{Default: storage.ArchiveNever}))
	must(t, "DeleteArchive", st.DeleteArchive(ctx, archOwner))
	p, err := st.QueryArchive(ctx, archOwner, storage.ArchiveQuery{Max: 10})
	must(t, "QueryArchive", err)
	wantPage(t, "deleted", p, nil, true, 0, 0)
	if _, err := st.ArchivePrefs(ctx, archOwner); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("prefs after delete: %v", err)
	}
	p, err = st.QueryArchive(ctx, archRomeo, storage.ArchiveQuery{Max: 10})
	must(t, "QueryArchive other", err)
	wantPage(t, "other owner kept", p, keep, true, 2, 0)
	must(t, "DeleteArchive again", st.DeleteArchive(ctx, archOwner))
}

func testArchiveRetention(t *testing.T, open archiveOpener) {
	st := open(t)
	ctx := t.Context()
	a := archFill(t, st, archOwner, 5) // stamp(0) .. stamp(240)
	r := archFill(t, st, archRomeo, 5)
	n, err := st.DeleteArchiveBefore(ctx, stamp(150), 3)
	must(t, "DeleteArchiveBefore", err)
	if n != 3 {
		t.Fatalf("first batch deleted %d, want 3", n)
	}
	n, err = st.DeleteArchiveBefore(ctx, stamp(150), 3)
	must(t, "DeleteArchiveBefore", err)
	if n != 3 {
		t.Fatalf("second batch deleted %d, want 3", n)
	}
	n, err = st.DeleteArchiveBefore(ctx, stamp(150), 0)
	must(t, "DeleteArchiveBefore", err)
	if n != 0 {
		t.Fatalf("third batch deleted %d, want 0", n)
	}
	for owner, ids := range map[string][]string{archOwner: a, archRomeo: r} {
		p, err := st.QueryArchive(ctx, owner, storage.ArchiveQuery{Max: 10})
		must(t, "QueryArchive", err)
		wantPage(t, owner, p, ids[3:], true, 2, 0)
	}
	// New messages never reuse an ID.
	id, err := st.AppendArchive(ctx, archOwner, storage.ArchivedMessage{With: archRomeo, Timestamp: stamp(0), Raw: []byte("<message/>")})
	must(t, "AppendArchive", err)
	if slices.Contains(a, id) {
		t.Fatalf("ID %s reused", id)
	}
}

// testArchiveIndex: RSM <index/> page jumps (XEP-0059 §2.5).
func testArchiveIndex(t *testing.T, open archiveOpener) {
	st := open(t)
	ctx := t.Context()
	ids := archFill(t, st, archOwner, 10)
	archFill(t, st, archRomeo, 3)
	q := querier(t, st, archOwner)
	wantPage(t, "index 0", q(storage.ArchiveQuery{Max: 3, Index: 0}), ids[0:3], false, 10, 0)
	wantPage(t, "index 4", q(storage.ArchiveQuery{Max: 3, Index: 4}), ids[4:7], false, 10, 4)
	wantPage(t, "index 7 exact fit", q(storage.ArchiveQuery{Max: 3, Index: 7}), ids[7:10], true, 10, 7)
	wantPage(t, "index 8 short", q(storage.ArchiveQuery{Max: 3, Index: 8}), ids[8:10], true, 10, 8)
	wantPage(t, "index at count", q(storage.ArchiveQuery{Max: 3, Index: 10}), nil, true, 10, 0)
	wantPage(t, "index beyond count", q(storage.ArchiveQuery{Max: 3, Index: 99}), nil, true, 10, 0)
	// Within a filter: positions in the filtered set.
	wantPage(t, "filtered index", q(storage.ArchiveQuery{With: archNurse, Max: 2, Index: 3}), []string{ids[7], ids[9]}, true, 5, 3)
	wantPage(t, "filter and index", q(storage.ArchiveQuery{AfterID: ids[1], Max: 2, Index: 1}), ids[3:5], false, 8, 1)
	p := q(storage.ArchiveQuery{Max: 0, Index: 2})
	if len(p.Messages) != 0 || p.Count != 10 {
		t.Errorf("max 0 with index: %d messages, count %d", len(p.Messages), p.Count)
	}
	for name, bad := range map[string]storage.ArchiveQuery{
		"negative":    {Index: -1},
		"with after":  {Index: 2, PageAfter: ids[0]},
		"with before": {Index: 2, PageBefore: ids[5]},
		"with last":   {Index: 2, Last: true},
	} {
		bad.Max = 3
		if _, err := st.QueryArchive(ctx, archOwner, bad); err == nil {
			t.Errorf("index %s: no error", name)
		}
	}
}

// archMessage appends one message with the given raw stanza.
func archMessage(t *testing.T, st storage.Archive, owner, with string, sec int, raw string) string {
	t.Helper()
	id, err := st.AppendArchive(t.Context(), owner, storage.ArchivedMessage{
		With: with, Timestamp: stamp(sec), FromFull: with + "/r", Raw: []byte(raw)})
	must(t, "AppendArchive", err)
	return id
}

func fulltextIDs(t *testing.T, st storage.Archive, owner string, q storage.ArchiveQuery) storage.ArchivePage {
	t.Helper()
	if q.Max == 0 {
		q.Max = 100
	}
	p, err := st.QueryArchive(t.Context(), owner, q)
	must(t, "QueryArchive "+q.Fulltext, err)
	return p
}

// testArchiveFulltext: XEP-0431 searches in <body/> text, every word,
// case-insensitively, within one archive, combined with the other filters
// and paging.
func testArchiveFulltext(t *testing.T, open archiveOpener) {
	st := open(t)
	var ids []string
	for i, raw := range []string{
		"<message type='chat' id='1'><body>Wherefore art thou Romeo?</body></message>",
		"<message type='chat' id='2'><body xml:lang='en'>Deny thy FATHER and refuse thy name</body></message>",
		"<message xmlns='jabber:client' type='chat' id='3'><body>Romeo &amp; Juliet — a tale of woe</body></message>",
		"<message type='chat' id='4'><subject>romeo</subject><thread>romeo</thread></message>",
		"<message type='chat' id='5'><body>Что в имени? То, что зовём мы розой</body></message>",
		"<message type='chat' id='6'><body>parting is such sweet sorrow</body><html xmlns='http://jabber.org/protocol/xhtml-im'><body xmlns='http://www.w3.org/1999/xhtml'><p>parting</p></body></html></message>",
		"<message type='chat' id='7'><body>ROMEO, ROMEO</body></message>",
		"<message type='chat' id='8'><body>a rose by any other name</body><body xml:lang='de'>eine Rose</body></message>",
	} {
		with := archRomeo
		if i%2 == 1 {
			with = archNurse
		}
		ids = append(ids, archMessage(t, st, archOwner, with, i*60, raw))
	}
	// Another archive with the same words.
	archMessage(t, st, archRomeo, archOwner, 0, "<message type='chat'><body>Romeo wherefore name rose</body></message>")

	cases := []struct {
		name string
		q    storage.ArchiveQuery
		want []string
	}{
		{"one word", storage.ArchiveQuery{Fulltext: "romeo"}, []string{ids[0], ids[2], ids[6]}},
		{"case", storage.ArchiveQuery{Fulltext: "Father"}, []string{ids[1]}},
		{"every word", storage.ArchiveQuery{Fulltext: "romeo  juliet"}, []string{ids[2]}},
		{"not all words", storage.ArchiveQuery{Fulltext: "romeo sorrow"}, nil},
		{"punctuation ignored", storage.ArchiveQuery{Fulltext: "romeo?"}, []string{ids[0], ids[2], ids[6]}},
		{"entity decoded", storage.ArchiveQuery{Fulltext: "tale woe"}, []string{ids[2]}},
		{"not in subject", storage.ArchiveQuery{Fulltext: "thread"}, nil},
		{"cyrillic", storage.ArchiveQuery{Fulltext: "РОЗОЙ"}, []string{ids[4]}},
		{"second body", storage.ArchiveQuery{Fulltext: "eine"}, []string{ids[7]}},
		{"whole words", storage.ArchiveQuery{Fulltext: "rom"}, nil},
		{"no words", storage.ArchiveQuery{Fulltext: "?!"}, nil},
		{"syntax is text", storage.ArchiveQuery{Fulltext: `"name" OR NOT* (rose`}, nil},
		{"with", storage.ArchiveQuery{Fulltext: "romeo", With: archRomeo}, []string{ids[0], ids[2], ids[6]}},
		{"with other", storage.ArchiveQuery{Fulltext: "name", With: archNurse}, []string{ids[1], ids[7]}},
		{"time", storage.ArchiveQuery{Fulltext: "romeo", Start: stamp(60), End: stamp(300)}, []string{ids[2]}},
		{"after-id", storage.ArchiveQuery{Fulltext: "romeo", AfterID: ids[2]}, []string{ids[6]}},
		{"ids", storage.ArchiveQuery{Fulltext: "name", IDs: []string{ids[0], ids[1]}}, []string{ids[1]}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			wantPage(t, c.name, fulltextIDs(t, st, archOwner, c.q), c.want, true, len(c.want), 0)
		})
	}
	// Blank text is no filter.
	wantPage(t, "blank", fulltextIDs(t, st, archOwner, storage.ArchiveQuery{Fulltext: " \t"}), ids, true, len(ids), 0)
	// Paging, count and index refer to the matches.
	p := fulltextIDs(t, st, archOwner, storage.ArchiveQuery{Fulltext: "romeo", Max: 2})
	wantPage(t, "first page", p, []string{ids[0], ids[2]}, false, 3, 0)
	p = fulltextIDs(t, st, archOwner, storage.ArchiveQuery{Fulltext: "romeo", Max: 2, PageAfter: p.Messages[1].ID})
	wantPage(t, "next page", p, []string{ids[6]}, true, 3, 2)
	wantPage(t, "last page", fulltextIDs(t, st, archOwner, storage.ArchiveQuery{Fulltext: "romeo", Max: 1, Last: true}),
		[]string{ids[6]}, false, 3, 2)
	wantPage(t, "index", fulltextIDs(t, st, archOwner, storage.ArchiveQuery{Fulltext: "romeo", Max: 1, Index: 1}),
		[]string{ids[2]}, false, 3, 1)
	// Only the owner's archive.
	p = fulltextIDs(t, st, archRomeo, storage.ArchiveQuery{Fulltext: "wherefore"})
	if p.Count != 1 || len(p.Messages) != 1 || p.Messages[0].Owner != archRomeo {
		t.Fatalf("other archive: %+v", p)
	}
}

// testArchiveFulltextSizeBound: a message of storage.MaxFulltextBytes is
// indexed, a larger one is stored and not indexed (so its insert costs no
// indexing time).
func testArchiveFulltextSizeBound(t *testing.T, open archiveOpener) {
	st := open(t)
	message := func(word string, size int) string {
		head, tail := "<message type='chat'><body>"+word, "</body></message>"
		return head + strings.Repeat(" filler", (size-len(head)-len(tail))/7) + strings.Repeat(" ", (size-len(head)-len(tail))%7) + tail
	}
	at := message("fits", storage.MaxFulltextBytes)
	over := message("toolarge", storage.MaxFulltextBytes+1)
	if len(at) != storage.MaxFulltextBytes || len(over) != storage.MaxFulltextBytes+1 {
		t.Fatalf("test bug: sizes %d and %d", len(at), len(over))
	}
	fits := archMessage(t, st, archOwner, archRomeo, 0, at)
	large := archMessage(t, st, archOwner, archRomeo, 60, over)
	wantPage(t, "at the bound", fulltextIDs(t, st, archOwner, storage.ArchiveQuery{Fulltext: "fits"}), []string{fits}, true, 1, 0)
	wantPage(t, "over the bound", fulltextIDs(t, st, archOwner, storage.ArchiveQuery{Fulltext: "toolarge"}), nil, true, 0, 0)
	wantPage(t, "stored", fulltextIDs(t, st, archOwner, storage.ArchiveQuery{IDs: []string{large}}), []string{large}, true, 1, 0)
}

// testArchiveFulltextEncrypted: end-to-end encrypted messages are never
// indexed, whatever their fallback <body/> says.
func testArchiveFulltextEncrypted(t *testing.T, open archiveOpener) {
	st := open(t)
	plain := archMessage(t, st, archOwner, archRomeo, 0, "<message type='chat'><body>secret plan in plain text</body></message>")
	for i, raw := range []string{
		// OMEMO (legacy namespace), with the usual fallback body.
		`<message type='chat'><body>I sent you an OMEMO encrypted message but your client doesn't seem to support that. secret</body>` +
			`<encrypted xmlns='eu.siacs.conversations.axolotl'><header sid='1'><key rid='2'>a2V5</key><iv>aXY=</iv></header><payload>cGF5</payload></encrypted>` +
			`<encryption xmlns='urn:xmpp:eme:0' namespace='eu.siacs.conversations.axolotl'/><store xmlns='urn:xmpp:hints'/></message>`,
		// OMEMO 2 (urn:xmpp:omemo:2).
		`<message type='chat'><encrypted xmlns='urn:xmpp:omemo:2'><header sid='1'><keys jid='a@b'><key rid='2'>a2V5</key></keys></header><payload>cGF5</payload></encrypted><body>secret</body></message>`,
		// A prefixed element whose namespace the stanza does not declare.
		`<message type='chat'><body>secret</body><o:encrypted><payload>cGF5</payload></o:encrypted></message>`,
		// OpenPGP for XMPP and legacy PGP.
		`<message type='chat'><openpgp xmlns='urn:xmpp:openpgp:0'>b3Blbg==</openpgp><body>secret</body></message>`,
		`<message type='chat'><body>secret</body><x xmlns='jabber:x:encrypted'>cGdw</x></message>`,
	} {
		archMessage(t, st, archOwner, archRomeo, 60*(i+1), raw)
	}
	p := fulltextIDs(t, st, archOwner, storage.ArchiveQuery{Fulltext: "secret"})
	wantPage(t, "only the plain message", p, []string{plain}, true, 1, 0)
	for _, word := range []string{"omemo", "support", "a2V5", "cGF5", "payload"} {
		wantPage(t, word, fulltextIDs(t, st, archOwner, storage.ArchiveQuery{Fulltext: word}), nil, true, 0, 0)
	}
	// Still archived and found without a search.
	if p := fulltextIDs(t, st, archOwner, storage.ArchiveQuery{}); p.Count != 6 {
		t.Fatalf("archive holds %d messages, want 6", p.Count)
	}
}

// testArchiveFulltextDelete: deleted messages leave the index (account
// deletion, retention), and what stays is still found.
func testArchiveFulltextDelete(t *testing.T, open archiveOpener) {
	st := open(t)
	ctx := t.Context()
	archMessage(t, st, archOwner, archRomeo, 0, "<message><body>early lark</body></message>")
	late := archMessage(t, st, archOwner, archRomeo, 600, "<message><body>late lark</body></message>")
	archMessage(t, st, archNurse, archRomeo, 0, "<message><body>nurse lark</body></message>")
	n, err := st.DeleteArchiveBefore(ctx, stamp(300), 0)
	must(t, "DeleteArchiveBefore", err)
	if n != 2 {
		t.Fatalf("retention deleted %d, want 2", n)
	}
	wantPage(t, "after retention", fulltextIDs(t, st, archOwner, storage.ArchiveQuery{Fulltext: "lark"}), []string{late}, true, 1, 0)
	must(t, "DeleteArchive", st.DeleteArchive(ctx, archOwner))
	wantPage(t, "after deletion", fulltextIDs(t, st, archOwner, storage.ArchiveQuery{Fulltext: "lark"}), nil, true, 0, 0)
	// Messages stored again after deletion are indexed.
	again := archMessage(t, st, archOwner, archRomeo, 900, "<message><body>lark again</body></message>")
	wantPage(t, "new message", fulltextIDs(t, st, archOwner, storage.ArchiveQuery{Fulltext: "lark"}), []string{again}, true, 1, 0)
}

// MigrationsBefore returns the migrations of fsys (named as
// storage.LoadMigrations wants) older than version: a schema as an older
// Parley left it, to test what a newer migration does to existing data.
func MigrationsBefore(t testing.TB, fsys fs.FS, version int) fs.FS {
	t.Helper()
	ms, err := storage.LoadMigrations(fsys, ".")
	if err != nil {
		t.Fatal(err)
	}
	out := fstest.MapFS{}
	for _, m := range ms {
		if m.Version < version {
			out[m.Name] = &fstest.MapFile{Data: []byte(m.SQL)}
		}
	}
	return out
}

// fulltextReopener returns a function that opens one store with its
// full-text index set to mode (storage.FulltextIndex): a new, empty
// database at the first call and the same database at every later one.
// runFulltextIndex closes each store (io.Closer) before opening the next;
// the opener arranges for the last one to be closed too.
type fulltextReopener = func(t *testing.T) func(mode storage.FulltextIndex) storage.Archive

// runFulltextIndex runs the contract of switching the full-text index off
// and on (the index costs every insert, so it is kept only while search
// is enabled) as subtests of t.
func runFulltextIndex(t *testing.T, open fulltextReopener) {
	t.Run("Off", func(t *testing.T) { testFulltextOff(t, open(t)) })
	t.Run("OffThenOn", func(t *testing.T) { testFulltextOffThenOn(t, open(t)) })
	t.Run("OnOffOn", func(t *testing.T) { testFulltextOnOffOn(t, open(t)) })
	t.Run("Keep", func(t *testing.T) { testFulltextKeep(t, open(t)) })
}

func closeArchive(t *testing.T, st storage.Archive) {
	t.Helper()
	c, ok := st.(interface{ Close() error })
	if !ok {
		t.Fatalf("%T has no Close", st)
	}
	must(t, "Close", c.Close())
}

// wantSearch checks the messages a search finds.
func wantSearch(t *testing.T, what string, st storage.Archive, text string, ids ...string) {
	t.Helper()
	wantPage(t, what+": search "+text, fulltextIDs(t, st, archOwner, storage.ArchiveQuery{Fulltext: text}), ids, true, len(ids), 0)
}

// wantNoSearch checks that searching is refused, not answered partially.
func wantNoSearch(t *testing.T, what string, st storage.Archive) {
	t.Helper()
	_, err := st.QueryArchive(t.Context(), archOwner, storage.ArchiveQuery{Fulltext: "lark", Max: 10})
	if !errors.Is(err, storage.ErrFulltextUnavailable) {
		t.Fatalf("%s: search: err %v, want ErrFulltextUnavailable", what, err)
	}
}

const encryptedLark = `<message type='chat'><body>encrypted lark</body><encrypted xmlns='urn:xmpp:omemo:2'><payload>cGF5</payload></encrypted></message>`

// testFulltextOff: with the index off, messages are archived and queried
// as usual, and searches are refused.
func testFulltextOff(t *testing.T, open func(storage.FulltextIndex) storage.Archive) {
	st := open(storage.FulltextOff)
	defer closeArchive(t, st)
	a := archMessage(t, st, archOwner, archRomeo, 0, "<message><body>lark</body></message>")
	b := archMessage(t, st, archOwner, archRomeo, 60, "<message><body>nightingale</body></message>")
	wantPage(t, "no search", fulltextIDs(t, st, archOwner, storage.ArchiveQuery{}), []string{a, b}, true, 2, 0)
	wantPage(t, "blank search", fulltextIDs(t, st, archOwner, storage.ArchiveQuery{Fulltext: " "}), []string{a, b}, true, 2, 0)
	wantNoSearch(t, "off", st)
}

// testFulltextOffThenOn: turning the index on indexes the messages
// archived before (never encrypted ones), and the new ones.
func testFulltextOffThenOn(t *testing.T, open func(storage.FulltextIndex) storage.Archive) {
	st := open(storage.FulltextOff)
	var old []string
	for i := range 10 {
		old = append(old, archMessage(t, st, archOwner, archRomeo, i*60, fmt.Sprintf("<message><body>lark %d</body></message>", i)))
	}
	archMessage(t, st, archOwner, archRomeo, 700, encryptedLark)
	archMessage(t, st, archOwner, archRomeo, 710, "<message><subject>lark</subject></message>")
	other := archMessage(t, st, archNurse, archRomeo, 0, "<message><body>lark</body></message>")
	closeArchive(t, st)

	st = open(storage.FulltextOn)
	defer closeArchive(t, st)
	wantSearch(t, "rebuilt", st, "lark", old...)
	wantSearch(t, "rebuilt", st, "lark 3", old[3])
	wantSearch(t, "rebuilt", st, "encrypted")
	p := fulltextIDs(t, st, archNurse, storage.ArchiveQuery{Fulltext: "lark"})
	wantPage(t, "other archive", p, []string{other}, true, 1, 0)
	c := archMessage(t, st, archOwner, archRomeo, 800, "<message><body>lark after</body></message>")
	wantSearch(t, "new", st, "after", c)
}

// testFulltextOnOffOn: messages archived while the index was off are
// found once it is on again, messages deleted meanwhile are not.
func testFulltextOnOffOn(t *testing.T, open func(storage.FulltextIndex) storage.Archive) {
	ctx := t.Context()
	st := open(storage.FulltextOn)
	a := archMessage(t, st, archOwner, archRomeo, 0, "<message><body>early lark</body></message>")
	b := archMessage(t, st, archOwner, archRomeo, 60, "<message><body>second lark</body></message>")
	wantSearch(t, "on", st, "lark", a, b)
	closeArchive(t, st)

	st = open(storage.FulltextOff)
	c := archMessage(t, st, archOwner, archRomeo, 120, "<message><body>lark while off</body></message>")
	archMessage(t, st, archOwner, archRomeo, 130, encryptedLark)
	wantNoSearch(t, "off", st)
	// Deleted while off: must not come back.
	n, err := st.DeleteArchiveBefore(ctx, stamp(30), 0)
	must(t, "DeleteArchiveBefore", err)
	if n != 1 {
		t.Fatalf("deleted %d, want 1", n)
	}
	closeArchive(t, st)

	st = open(storage.FulltextOn)
	defer closeArchive(t, st)
	wantSearch(t, "on again", st, "lark", b, c)
	wantSearch(t, "on again", st, "off", c)
	wantSearch(t, "on again", st, "early")
	wantSearch(t, "on again", st, "encrypted")
	d := archMessage(t, st, archOwner, archRomeo, 180, "<message><body>lark on again</body></message>")
	wantSearch(t, "on again", st, "lark", b, c, d)
	must(t, "DeleteArchive", st.DeleteArchive(ctx, archOwner))
	wantSearch(t, "deleted", st, "lark")
}

// testFulltextKeep: tools open the store without changing the index.
func testFulltextKeep(t *testing.T, open func(storage.FulltextIndex) storage.Archive) {
	st := open(storage.FulltextOn)
	a := archMessage(t, st, archOwner, archRomeo, 0, "<message><body>lark</body></message>")
	closeArchive(t, st)
	st = open(storage.FulltextKeep)
	b := archMessage(t, st, archOwner, archRomeo, 60, "<message><body>lark</body></message>")
	wantSearch(t, "kept on", st, "lark", a, b)
	closeArchive(t, st)
	st = open(storage.FulltextOff)
	closeArchive(t, st)
	st = open(storage.FulltextKeep)
	wantNoSearch(t, "kept off", st)
	closeArchive(t, st)
	st = open(storage.FulltextOn)
	defer closeArchive(t, st)
	wantSearch(t, "on", st, "lark", a, b)
}
