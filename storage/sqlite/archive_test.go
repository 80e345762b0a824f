package sqlite

import (
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/storage"
)

func TestNewArchiveID(t *testing.T) {
	format := regexp.MustCompile(`^[0-9a-v]{26}$`)
	now := time.Now()
	var ids []string
	seen := map[string]bool{}
	for i := range 2000 {
		// The clock stalls and even steps back: IDs still increase.
		id := storage.NewArchiveID(now.Add(-time.Duration(i%3) * time.Millisecond))
		if !format.MatchString(id) || seen[id] {
			t.Fatalf("id %d: %q (format or duplicate)", i, id)
		}
		seen[id] = true
		ids = append(ids, id)
	}
	if !slices.IsSorted(ids) {
		t.Fatal("IDs made in sequence do not sort in sequence")
	}
	// A later time sorts later, and the random part differs.
	later := storage.NewArchiveID(now.Add(time.Hour))
	if later <= ids[len(ids)-1] {
		t.Fatalf("%s after an hour sorts before %s", later, ids[len(ids)-1])
	}
	if a, b := storage.NewArchiveID(now.Add(2*time.Hour)), storage.NewArchiveID(now.Add(3*time.Hour)); a[10:] == b[10:] {
		t.Fatalf("random parts equal: %s %s", a, b)
	}
}
