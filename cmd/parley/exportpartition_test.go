package main

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/storage"
	"github.com/parley-xmpp/parley/storage/pg"
)

func TestExportPartitionRefusesSQLite(t *testing.T) {
	cfg, _ := testCLIConfig(t, "")
	r := runCLI(t, "", "archive", "export-partition", "--before", "2024-01", "--config", cfg)
	r.fails(t, "the sqlite backend has no archive partitions (it deletes expired messages in batches, see mam.retention); this command works on PostgreSQL only")
	for _, bad := range [][]string{{}, {"--before", "2024"}, {"--before", "2999-01"}} {
		r := runCLI(t, "", append([]string{"archive", "export-partition", "--config", cfg}, bad...)...)
		if r.code == 0 || !strings.Contains(r.err, "--help") {
			t.Errorf("%v: exit %d, stderr %q", bad, r.code, r.err)
		}
	}
}

func readPartitionFile(t *testing.T, file string) []partitionLine {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var lines []partitionLine
	sc := bufio.NewScanner(zr)
	for sc.Scan() {
		var l partitionLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("%s: %v in %q", file, err, sc.Text())
		}
		lines = append(lines, l)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return lines
}

func TestExportPartitionPostgres(t *testing.T) {
	dsn := needPG(t)
	schema := testSchema(t, dsn)
	ctx := context.Background()
	st, err := pg.Open(ctx, pg.Config{DSN: dsn, Schema: schema, Migrate: true, PartitionMonthsAhead: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	jan := time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC)
	if _, err := st.EnsurePartitions(ctx, jan, 2); err != nil { // 2023-01 … 2023-03
		t.Fatal(err)
	}
	ids := map[string][]string{}
	add := func(owner string, ts time.Time, body string) {
		t.Helper()
		id, err := st.AppendArchive(ctx, owner, storage.ArchivedMessage{With: "romeo@example.org", WithResource: "orchard",
			Timestamp: ts, FromFull: "romeo@example.org/orchard", OriginID: "o-" + body,
			Raw: []byte("<message type='chat'><body>" + body + " \"quoted\" ü</body></message>")})
		if err != nil {
			t.Fatal(err)
		}
		ids[ts.Format("200601")] = append(ids[ts.Format("200601")], id)
	}
	for i := range 3 {
		add("juliet@example.org", jan.Add(time.Duration(i)*time.Hour), "jan")
		add("nurse@example.org", jan.AddDate(0, 1, i), "feb")
		add("juliet@example.org", jan.AddDate(0, 2, i), "mar")
	}
	add("juliet@example.org", time.Date(2022, 6, 1, 0, 0, 0, 0, time.UTC), "default partition")
	add("juliet@example.org", time.Now(), "now")
	out := filepath.Join(t.TempDir(), "cold")
	run := func(before string, extra ...string) cliResult {
		return runCLI(t, "", append([]string{"archive", "export-partition", "--dsn", dsn, "--schema", schema,
			"--before", before, "--out", out}, extra...)...)
	}
	count := func(owner string) int {
		t.Helper()
		p, err := st.QueryArchive(ctx, owner, storage.ArchiveQuery{})
		if err != nil {
			t.Fatal(err)
		}
		return p.Count
	}

	r := run("2023-03", "--dry-run")
	okHas(t, r, "would move archive_p202301 to "+filepath.Join(out, "archive_p202301.jsonl.gz"))
	okHas(t, r, "would move archive_p202302")
	if strings.Contains(r.out, "202303") || count("juliet@example.org") != 8 {
		t.Fatalf("dry run: %s", r.out)
	}

	// A directory where the file should go: the export fails, nothing is dropped.
	if err := os.MkdirAll(filepath.Join(out, "archive_p202302.jsonl.gz", "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	r = run("2023-03")
	if r.code == 0 || !strings.Contains(r.err, "archive_p202302") || !strings.Contains(r.err, "the partition is kept") {
		t.Fatalf("export over a directory: exit %d, %q %q", r.code, r.out, r.err)
	}
	if !strings.Contains(r.out, "moved archive_p202301: 3 message(s)") || count("nurse@example.org") != 3 {
		t.Fatalf("after the failure: %q, nurse has %d", r.out, count("nurse@example.org"))
	}
	if err := os.RemoveAll(filepath.Join(out, "archive_p202302.jsonl.gz")); err != nil {
		t.Fatal(err)
	}
	r = run("2023-03")
	okHas(t, r, "moved archive_p202302: 3 message(s)")
	okHas(t, r, "note: 1 message(s) before 2023-03 are in archive_default")
	if strings.Contains(r.out, "202301") || strings.Contains(r.out, "202303") {
		t.Fatalf("second run: %s", r.out)
	}
	if count("nurse@example.org") != 0 || count("juliet@example.org") != 5 {
		t.Fatalf("after the move: nurse %d, juliet %d", count("nurse@example.org"), count("juliet@example.org"))
	}
	lines := readPartitionFile(t, filepath.Join(out, "archive_p202302.jsonl.gz"))
	if len(lines) != 3 {
		t.Fatalf("202302 file: %d lines", len(lines))
	}
	for i, l := range lines {
		if l.Owner != "nurse@example.org" || l.ID != ids["202302"][i] || l.With != "romeo@example.org" || l.WithResource != "orchard" ||
			l.From != "romeo@example.org/orchard" || l.OriginID != "o-feb" || l.Stanza != "<message type='chat'><body>feb \"quoted\" ü</body></message>" ||
			l.Timestamp != jan.AddDate(0, 1, i).Format(time.RFC3339Nano) {
			t.Fatalf("line %d: %+v", i, l)
		}
	}
	if got := readPartitionFile(t, filepath.Join(out, "archive_p202301.jsonl.gz")); len(got) != 3 || got[2].ID != ids["202301"][2] {
		t.Fatalf("202301 file: %+v", got)
	}

	// Re-run: nothing left to move.
	r = run("2023-03")
	okHas(t, r, "no archive partition before 2023-03: nothing to move")

	// A partition detached by an interrupted run is moved by the next.
	if err := st.DetachArchivePartition(ctx, "archive_p202303"); err != nil {
		t.Fatal(err)
	}
	r = run("2023-04", "--dry-run")
	okHas(t, r, "would move archive_p202303 (detached by an interrupted run)")
	r = run("2023-04")
	okHas(t, r, "moved archive_p202303: 3 message(s)")
	if got := readPartitionFile(t, filepath.Join(out, "archive_p202303.jsonl.gz")); len(got) != 3 {
		t.Fatalf("202303 file: %d lines", len(got))
	}
	// The current month and the default partition are untouched.
	if count("juliet@example.org") != 2 {
		t.Fatalf("juliet keeps %d messages, want 2", count("juliet@example.org"))
	}
	// The byte usage behind archive quotas follows the moves.
	for _, owner := range []string{"nurse@example.org", "juliet@example.org"} {
		u, err := st.AccountUsage(ctx, owner)
		if err != nil {
			t.Fatal(err)
		}
		page, err := st.QueryArchive(ctx, owner, storage.ArchiveQuery{Max: 100})
		if err != nil {
			t.Fatal(err)
		}
		var want int64
		for _, m := range page.Messages {
			want += int64(len(m.Raw))
		}
		if u.Archive != want {
			t.Fatalf("%s: archive usage %d bytes after the moves, want %d", owner, u.Archive, want)
		}
	}
	if err := st.DropArchivePartition(ctx, "archive_p"+time.Now().UTC().Format("200601")); err == nil {
		t.Fatal("DropArchivePartition dropped an attached partition")
	}
}
