package pg

import (
	"context"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/storage"
)

// TestPartitionSum: the sum read with the rows matches the table's while
// it is unchanged, and differs once a row is replaced.
func TestPartitionSum(t *testing.T) {
	st := openTest(t)
	ctx := context.Background()
	jan := time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC)
	if _, err := st.EnsurePartitions(ctx, jan, 0); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := range 4 {
		id, err := st.AppendArchive(ctx, "a@example.org", storage.ArchivedMessage{With: "b@example.org",
			Timestamp: jan.Add(time.Duration(i) * time.Minute), Raw: []byte("<message><body>x</body></message>")})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	var read []string
	sum, err := st.ReadArchivePartition(ctx, "archive_p202301", func(m storage.ArchivedMessage) error {
		read = append(read, m.ID)
		return nil
	})
	if err != nil || sum.Rows != 4 || len(read) != 4 || read[0] != ids[0] || read[3] != ids[3] {
		t.Fatalf("read %v, sum %+v, %v", read, sum, err)
	}
	now, err := st.ArchivePartitionSum(ctx, "archive_p202301")
	if err != nil || now != sum {
		t.Fatalf("sum now %+v, read %+v, %v", now, sum, err)
	}
	// Same count, other rows.
	if _, err := st.DeleteArchiveBefore(ctx, jan.Add(30*time.Second), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := st.AppendArchive(ctx, "a@example.org", storage.ArchivedMessage{With: "b@example.org",
		Timestamp: jan.Add(time.Hour), Raw: []byte("<message/>")}); err != nil {
		t.Fatal(err)
	}
	changed, err := st.ArchivePartitionSum(ctx, "archive_p202301")
	if err != nil || changed.Rows != 4 || changed == sum {
		t.Fatalf("after replacing a row: %+v (before %+v), %v", changed, sum, err)
	}
	for _, bad := range []string{"archive", "archive_default", "archive_p2023", "x; DROP TABLE archive"} {
		if _, err := st.ArchivePartitionSum(ctx, bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
		if err := st.DropArchivePartition(ctx, bad); err == nil {
			t.Errorf("drop %q accepted", bad)
		}
	}
}
