package pg

import (
	"testing"

	"github.com/parley-xmpp/parley/storage"
	"github.com/parley-xmpp/parley/storage/storagetest"
)

func TestPEPContract(t *testing.T) {
	needPostgres(t)
	// DeleteAccount clears the PEP tables, so the DeleteAccount check runs.
	storagetest.RunPEP(t, func(t *testing.T) storage.PEP { return openTest(t) })
}

func TestUploads(t *testing.T) {
	needPostgres(t)
	storagetest.RunUploads(t, func(t *testing.T) storage.Uploads { return openTest(t) })
}
