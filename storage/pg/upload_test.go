package pg

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/storage"
	"github.com/parley-xmpp/parley/storage/storagetest"
)

func TestPEPContract(t *testing.T) {
	needPostgres(t)
	// DeleteAccount clears the PEP tables, so the DeleteAccount check runs.
	storagetest.RunPEP(t, func(t *testing.T) storage.PEP { return openTest(t) })
}

// TestUploads has the steps of storage/sqlite's (there is no contract
// suite for uploads yet).
func TestUploads(t *testing.T) {
	ctx := context.Background()
	st := openTest(t)
	now := time.Now().UTC().Truncate(time.Microsecond)
	slot := func(id, owner string, size int64, created time.Time) storage.Upload {
		return storage.Upload{ID: id, Owner: owner, Filename: id + ".bin", Size: size, ContentType: "image/png",
			Created: created, Expires: created.Add(5 * time.Minute)}
	}
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	wantErr := func(what string, err, want error) {
		t.Helper()
		if !errors.Is(err, want) {
			t.Fatalf("%s: %v, want %v", what, err, want)
		}
	}

	a := slot("a1", "alice@example.org", 100, now)
	must("create", st.CreateUpload(ctx, a, 1000))
	wantErr("duplicate id", st.CreateUpload(ctx, a, 0), storage.ErrExists)
	got, err := st.Upload(ctx, "a1")
	must("get", err)
	if got != a {
		t.Fatalf("Upload = %+v, want %+v", got, a)
	}
	_, err = st.Upload(ctx, "nope")
	wantErr("missing", err, storage.ErrNotFound)

	// Quota counts pending unexpired slots.
	wantErr("quota", st.CreateUpload(ctx, slot("a2", "alice@example.org", 901, now), 1000), storage.ErrQuotaExceeded)
	must("exactly at quota", st.CreateUpload(ctx, slot("a2", "alice@example.org", 900, now), 1000))
	must("other owner", st.CreateUpload(ctx, slot("b1", "bob@example.org", 1000, now), 1000))
	// Expired pending slots no longer count.
	later := now.Add(10 * time.Minute)
	must("after expiry", st.CreateUpload(ctx, slot("a3", "alice@example.org", 1000, later), 1000))
	must("no quota", st.CreateUpload(ctx, slot("a4", "alice@example.org", 1<<40, later), 0))
	must("delete", st.DeleteUpload(ctx, "a4"))
	must("delete again", st.DeleteUpload(ctx, "a4"))

	// Single use.
	wantErr("complete before start", st.CompleteUpload(ctx, "a1", now), storage.ErrNotFound)
	must("start", st.StartUpload(ctx, "a1"))
	wantErr("start again", st.StartUpload(ctx, "a1"), storage.ErrExists)
	wantErr("start missing", st.StartUpload(ctx, "zz"), storage.ErrNotFound)
	done := now.Add(time.Second)
	must("complete", st.CompleteUpload(ctx, "a1", done))
	wantErr("complete again", st.CompleteUpload(ctx, "a1", done), storage.ErrNotFound)
	wantErr("start completed", st.StartUpload(ctx, "a1"), storage.ErrExists)
	got, _ = st.Upload(ctx, "a1")
	if got.State != storage.UploadComplete || !got.Completed.Equal(done) {
		t.Fatalf("after complete: %+v", got)
	}

	list, err := st.OwnerUploads(ctx, "alice@example.org")
	must("owner uploads", err)
	if len(list) != 3 || list[0].ID != "a1" || list[2].ID != "a3" {
		t.Fatalf("OwnerUploads = %+v", list)
	}

	old, err := st.UploadsCompletedBefore(ctx, done.Add(time.Microsecond), 0)
	must("completed before", err)
	if len(old) != 1 || old[0].ID != "a1" {
		t.Fatalf("UploadsCompletedBefore = %+v", old)
	}
	old, _ = st.UploadsCompletedBefore(ctx, done, 10)
	if len(old) != 0 {
		t.Fatalf("UploadsCompletedBefore (exclusive) = %+v", old)
	}

	stats, err := st.UploadStats(ctx)
	must("stats", err)
	if stats.Files != 1 || stats.Bytes != 100 || len(stats.Owners) != 1 || stats.Owners[0] != (storage.UploadUsage{Owner: "alice@example.org", Files: 1, Bytes: 100}) {
		t.Fatalf("UploadStats = %+v", stats)
	}

	// a2 and b1 expired at now+5m; a3 is pending until later+5m. An
	// in-progress upload survives until startedBefore passes its expiry.
	must("start b1", st.StartUpload(ctx, "b1"))
	n, err := st.DeleteStaleUploads(ctx, now.Add(6*time.Minute), now)
	must("stale", err)
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

func TestUploadQuotaConcurrent(t *testing.T) {
	ctx := context.Background()
	st := openTest(t)
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
