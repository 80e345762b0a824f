package main

import (
	"context"
	"errors"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/storage"
	"github.com/parley-xmpp/parley/storage/sqlite"
	"github.com/parley-xmpp/parley/upload"
)

func TestUploadStatsPrune(t *testing.T) {
	cfg, dataDir := testCLIConfig(t, "")
	ctx := context.Background()
	st, err := sqlite.Open(ctx, dataDir)
	if err != nil {
		t.Fatal(err)
	}
	blobs, err := upload.NewDiskBlobs(filepath.Join(dataDir, "upload"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	files := []struct {
		id, owner string
		size      int64
		completed time.Time
	}{
		{"oldaaaaaaaaaaaaaaaaaaaaaaa", "alice@example.org", 10, now.Add(-40 * 24 * time.Hour)},
		{"oldbbbbbbbbbbbbbbbbbbbbbbb", "bob@example.org", 20, now.Add(-31 * 24 * time.Hour)},
		{"newaaaaaaaaaaaaaaaaaaaaaaa", "alice@example.org", 5, now.Add(-time.Hour)},
	}
	for _, f := range files {
		u := storage.Upload{ID: f.id, Owner: f.owner, Filename: "f.bin", Size: f.size,
			Created: f.completed.Add(-time.Minute), Expires: f.completed.Add(time.Minute)}
		if err := st.CreateUpload(ctx, u, 0); err != nil {
			t.Fatal(err)
		}
		if err := st.StartUpload(ctx, f.id); err != nil {
			t.Fatal(err)
		}
		if err := blobs.Put(ctx, f.id, strings.NewReader(strings.Repeat("x", int(f.size))), f.size); err != nil {
			t.Fatal(err)
		}
		if err := st.CompleteUpload(ctx, f.id, f.completed); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()

	r := runCLI(t, "", "upload", "stats", "--config", cfg)
	okHas(t, r, "total")
	for _, want := range []string{`alice@example.org\s+2\s+15`, `bob@example.org\s+1\s+20`, `total\s+3\s+35`} {
		if !regexpMatch(want, r.out) {
			t.Errorf("stats lacks %s:\n%s", want, r.out)
		}
	}

	runCLI(t, "", "upload", "prune", "--config", cfg).fails(t, "--older-than")
	r = runCLI(t, "", "upload", "prune", "--older-than", "720h", "--config", cfg)
	okHas(t, r, "pruned 2 file(s), 30 bytes")
	for _, f := range files {
		_, _, _, err := blobs.Open(f.id)
		if gone := err != nil; gone != strings.HasPrefix(f.id, "old") {
			t.Errorf("blob %s: open error %v", f.id, err)
		} else if gone && !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("blob %s: %v", f.id, err)
		}
	}
	r = runCLI(t, "", "upload", "stats", "--config", cfg)
	if !regexpMatch(`total\s+1\s+5`, r.out) || strings.Contains(r.out, "bob@") {
		t.Errorf("stats after prune:\n%s", r.out)
	}
	okHas(t, runCLI(t, "", "upload", "prune", "--older-than", "720h", "--config", cfg), "pruned 0 file(s)")

	// Deleting the account deletes its files, as in-band removal does.
	runCLI(t, "", "user", "add", "alice@example.org", "-p", "pw", "--config", cfg).ok(t, "user alice@example.org created\n")
	runCLI(t, "", "user", "delete", "alice@example.org", "--config", cfg).ok(t, "user alice@example.org deleted\n")
	if _, _, _, err := blobs.Open("newaaaaaaaaaaaaaaaaaaaaaaa"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the deleted account's file: open error %v, want it gone", err)
	}
	if r := runCLI(t, "", "upload", "stats", "--config", cfg); !regexpMatch(`total\s+0\s+0`, r.out) {
		t.Errorf("stats after deleting the account:\n%s", r.out)
	}
}
