package pg

import (
	"testing"

	"github.com/parley-xmpp/parley/storage/storagetest"
)

// The bodies are storagetest's, shared with storage/sqlite, so that the
// figures compare.

func BenchmarkStoreOffline(b *testing.B) { storagetest.BenchStoreOffline(b, openTest(b)) }

func BenchmarkRosterItems(b *testing.B) { storagetest.BenchRosterItems(b, openTest(b)) }

func BenchmarkFindArchivedByOrigin(b *testing.B) {
	storagetest.BenchFindArchivedByOrigin(b, openTest(b))
}
