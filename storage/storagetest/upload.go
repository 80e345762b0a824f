package storagetest

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/storage"
)

// uploadsOpener returns a new, empty upload store and arranges (with
// t.Cleanup) for it to be closed.
type uploadsOpener = func(t *testing.T) storage.Uploads

// runUploads runs the upload storage contract (XEP-0363 slots and file
// metadata) as subtests of t.
func runUploads(t *testing.T, open uploadsOpener) {
	t.Run("Lifecycle", func(t *testing.T) { testUploadSteps(t, open) })
	t.Run("QuotaConcurrent", func(t *testing.T) { testUploadQuotaConcurrent(t, open) })
}

// testUploadSteps walks slots through creation, quota checks, single use,
// completion, listing, statistics and stale-slot cleanup.
func testUploadSteps(t *testing.T, open uploadsOpener) {
	ctx := t.Context()
	st := open(t)
	now := time.Now().UTC().Truncate(time.Microsecond)
	slot := func(id, owner string, size int64, created time.Time) storage.Upload {
		return storage.Upload{ID: id, Owner: owner, Filename: id + ".bin", Size: size, ContentType: "image/png",
			Created: created, Expires: created.Add(5 * time.Minute)}
	}

	a := slot("a1", "alice@example.org", 100, now)
	must(t, "create", st.CreateUpload(ctx, a, 1000))
	wantErr(t, "duplicate id", st.CreateUpload(ctx, a, 0), storage.ErrExists)
	got, err := st.Upload(ctx, "a1")
	must(t, "get", err)
	if got != a {
		t.Fatalf("Upload = %+v, want %+v", got, a)
	}
	_, err = st.Upload(ctx, "nope")
	wantErr(t, "missing", err, storage.ErrNotFound)

	// Quota counts pending unexpired slots.
	wantErr(t, "quota", st.CreateUpload(ctx, slot("a2", "alice@example.org", 901, now), 1000), storage.ErrQuotaExceeded)
	must(t, "exactly at quota", st.CreateUpload(ctx, slot("a2", "alice@example.org", 900, now), 1000))
	must(t, "other owner", st.CreateUpload(ctx, slot("b1", "bob@example.org", 1000, now), 1000))
	// Expired pending slots no longer count.
	later := now.Add(10 * time.Minute)
	must(t, "after expiry", st.CreateUpload(ctx, slot("a3", "alice@example.org", 1000, later), 1000))
	must(t, "no quota", st.CreateUpload(ctx, slot("a4", "alice@example.org", 1<<40, later), 0))
	must(t, "delete", st.DeleteUpload(ctx, "a4"))
	must(t, "delete again", st.DeleteUpload(ctx, "a4"))

	// Single use.
	wantErr(t, "complete before start", st.CompleteUpload(ctx, "a1", now), storage.ErrNotFound)
	must(t, "start", st.StartUpload(ctx, "a1"))
	wantErr(t, "start again", st.StartUpload(ctx, "a1"), storage.ErrExists)
	wantErr(t, "start missing", st.StartUpload(ctx, "zz"), storage.ErrNotFound)
	done := now.Add(time.Second)
	must(t, "complete", st.CompleteUpload(ctx, "a1", done))
	wantErr(t, "complete again", st.CompleteUpload(ctx, "a1", done), storage.ErrNotFound)
	wantErr(t, "start completed", st.StartUpload(ctx, "a1"), storage.ErrExists)
	got, _ = st.Upload(ctx, "a1")
	if got.State != storage.UploadComplete || !got.Completed.Equal(done) {
		t.Fatalf("after complete: %+v", got)
	}

	list, err := st.OwnerUploads(ctx, "alice@example.org")
	must(t, "owner uploads", err)
	if len(list) != 3 || list[0].ID != "a1" || list[2].ID != "a3" {
		t.Fatalf("OwnerUploads = %+v", list)
	}

	old, err := st.UploadsCompletedBefore(ctx, done.Add(time.Microsecond), 0)
	must(t, "completed before", err)
	if len(old) != 1 || old[0].ID != "a1" {
		t.Fatalf("UploadsCompletedBefore = %+v", old)
	}
	old, _ = st.UploadsCompletedBefore(ctx, done, 10)
	if len(old) != 0 {
		t.Fatalf("UploadsCompletedBefore (exclusive) = %+v", old)
	}

	stats, err := st.UploadStats(ctx)
	must(t, "stats", err)
	if stats.Files != 1 || stats.Bytes != 100 || len(stats.Owners) != 1 || stats.Owners[0] != (storage.UploadUsage{Owner: "alice@example.org", Files: 1, Bytes: 100}) {
		t.Fatalf("UploadStats = %+v", stats)
	}

	// a2 and b1 expired at now+5m; a3 is pending until later+5m. An
	// in-progress upload survives until startedBefore passes its expiry.
	must(t, "start b1", st.StartUpload(ctx, "b1"))
	n, err := st.DeleteStaleUploads(ctx, now.Add(6*time.Minute), now)
	must(t, "stale", err)
	if n != 1 {
		t.Fatalf("DeleteStaleUploads removed %d, want 1 (a2)", n)
	}
	n, _ = st.DeleteStaleUploads(ctx, now.Add(6*time.Minute), now.Add(6*time.Minute))
	if n != 1 {
		t.Fatalf("DeleteStaleUploads removed %d, want 1 (b1)", n)
	}
	if _, err := st.Upload(ctx, "a3"); err != nil {
		t.Fatalf("a3 removed: %v", err)
	}
	if _, err := st.Upload(ctx, "a1"); err != nil {
		t.Fatalf("complete upload removed: %v", err)
	}
}

// testUploadQuotaConcurrent checks that concurrent CreateUpload calls
// never let an owner exceed the quota.
func testUploadQuotaConcurrent(t *testing.T, open uploadsOpener) {
	ctx := t.Context()
	st := open(t)
	now := time.Now()
	var (
		wg sync.WaitGroup
		mu sync.Mutex
		ok int
	)
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := st.CreateUpload(ctx, storage.Upload{ID: string(rune('a' + i)), Owner: "alice@example.org", Filename: "f",
				Size: 100, Created: now, Expires: now.Add(time.Minute)}, 1000)
			if err == nil {
				mu.Lock()
				ok++
				mu.Unlock()
			} else if !errors.Is(err, storage.ErrQuotaExceeded) {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if ok != 10 {
		t.Fatalf("%d slots of 100 bytes fit a 1000 byte quota, want 10", ok)
	}
}
