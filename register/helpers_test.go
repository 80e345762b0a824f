package register

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/auth"
	"github.com/parley-xmpp/parley/internal/modtest"
	"github.com/parley-xmpp/parley/storage"
	"github.com/parley-xmpp/parley/wire"
)

const domain = modtest.Domain

func derive(password string) ([]storage.SCRAMCredential, error) {
	return auth.DeriveCredentials(password, auth.MinIterations)
}

type env struct {
	*modtest.Env
	mod   *Module
	clock time.Time
}

func setup(t *testing.T, cfg Config) *env {
	t.Helper()
	me := modtest.New(t)
	if cfg.Derive == nil {
		cfg.Derive = derive
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	m := New(cfg, me.Store)
	me.Register(m)
	e := &env{Env: me, mod: m, clock: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
	m.now = func() time.Time { return e.clock }
	return e
}

// preAuth sends xml on an unauthenticated stream from addr.
func (e *env) preAuth(xml, addr string, secure bool) *wire.Stanza {
	e.T.Helper()
	return e.mod.PreAuth(context.Background(), wire.MustParse(xml), domain, addr, secure)
}

// expectPre checks the exact reply to a pre-authentication request.
func (e *env) expectPre(xml, addr string, secure bool, want string) {
	e.T.Helper()
	res := e.preAuth(xml, addr, secure)
	if res == nil {
		e.T.Fatalf("%s: no reply", xml)
	}
	if string(res.Raw) != want {
		e.T.Errorf("%s:\n got %s\nwant %s", xml, res.Raw, want)
	}
}

func (e *env) exists(bare string) bool {
	e.T.Helper()
	ok, err := e.Store.AccountExists(context.Background(), bare)
	if err != nil {
		e.T.Fatal(err)
	}
	return ok
}

func (e *env) passwordIs(bare, password string) bool {
	e.T.Helper()
	creds, err := e.Store.Credentials(context.Background(), bare)
	if err != nil {
		e.T.Fatal(err)
	}
	return auth.VerifyPassword(creds, password)
}

func errText(st *wire.Stanza) string {
	return st.Child(wire.NSClient, "error").ChildText(wire.NSStanzas, "text")
}
