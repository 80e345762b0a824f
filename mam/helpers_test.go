package mam

import (
	"testing"

	"github.com/parley-xmpp/parley/internal/modtest"
	"github.com/parley-xmpp/parley/module"
)

type env struct {
	*modtest.Env
	mod *Module
}

// setup wires the module (and extra modules registered after it) into a
// real router over a real SQLite store.
func setup(t *testing.T, cfg Config, extra ...module.Module) *env {
	t.Helper()
	me := modtest.New(t)
	m := New(cfg, me.Store, me.Store)
	me.Register(append([]module.Module{m}, extra...)...)
	return &env{Env: me, mod: m}
}

// login creates the account (if needed) and binds an available session.
func (e *env) login(full string) *modtest.Session {
	e.T.Helper()
	return e.LoginAvailable(full, 0)
}

// fulltextField is the XEP-0431 search field of the query form.
const fulltextField = "{" + NSFulltext + "}fulltext"

// maxFulltext is mamquery's bound on the search text (in bytes).
const maxFulltext = 1024
