package carbons

import (
	"testing"

	"github.com/parley-xmpp/parley/internal/modtest"
	"github.com/parley-xmpp/parley/mam"
	"github.com/parley-xmpp/parley/module"
)

type env struct {
	*modtest.Env
	mod *Module
	mam *mam.Module
}

// setup wires the module into a real router over a real SQLite store,
// after the mam module when withMAM (the production order).
func setup(t *testing.T, withMAM bool) *env {
	t.Helper()
	me := modtest.New(t)
	m := New(Config{})
	var mods []module.Module
	var archive *mam.Module
	if withMAM {
		archive = mam.New(mam.Config{}, me.Store, me.Store)
		mods = append(mods, archive)
	}
	me.Register(append(mods, m)...)
	return &env{Env: me, mod: m, mam: archive}
}
