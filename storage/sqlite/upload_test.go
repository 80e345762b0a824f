package sqlite

import (
	"testing"

	"github.com/parley-xmpp/parley/storage"
	"github.com/parley-xmpp/parley/storage/storagetest"
)

func TestUploads(t *testing.T) {
	storagetest.RunUploads(t, func(t *testing.T) storage.Uploads { return openTemp(t, t.TempDir()) })
}
