package basic

import (
	"testing"

	"github.com/parley-xmpp/parley/internal/modtest"
	"github.com/parley-xmpp/parley/module"
)

const domain = modtest.Domain

type env struct {
	*modtest.Env
	mod *Module
}

// setup wires the module (and extra modules registered after it) into a
// real router over a real SQLite store.
func setup(t *testing.T, cfg Config, extra ...module.Module) *env {
	t.Helper()
	me := modtest.New(t)
	m := New(cfg, me.Store)
	me.Register(append([]module.Module{m}, extra...)...)
	return &env{Env: me, mod: m}
}
