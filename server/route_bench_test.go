package server_test

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/parley-xmpp/parley/auth"
	"github.com/parley-xmpp/parley/internal/modtest"
	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/server"
	"github.com/parley-xmpp/parley/wire"
)

// BenchmarkRouteChat measures what the server does for one chat message
// between two local users once it is parsed: stamping 'from', the hook
// chains of every module of the default configuration (blocking, archive,
// carbons to a second device of each user, …) and delivery, without
// sockets. With archive the rows are queued in a group commit (the
// benchmark waits for each commit, as the stream acknowledgement does).
func BenchmarkRouteChat(b *testing.B) {
	for _, archive := range []bool{false, true} {
		name := "archive=off"
		if archive {
			name = "archive=on"
		}
		b.Run(name, func(b *testing.B) { benchRouteChat(b, archive, 2) })
	}
	// One device a user, as parley-bench throughput connects them: no
	// carbon copies to make.
	b.Run("archive=off/devices=1", func(b *testing.B) { benchRouteChat(b, false, 1) })
}

func benchRouteChat(b *testing.B, archive bool, devices int) {
	cfg := server.DefaultConfig()
	cfg.DataDir = b.TempDir()
	cfg.Auth.Iterations = 4096
	if !archive {
		cfg.MAM.DefaultPolicy = "never"
	}
	srv, err := server.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(srv.Close)
	ctx := context.Background()
	creds, err := auth.DeriveCredentials("pw", cfg.Auth.Iterations)
	if err != nil {
		b.Fatal(err)
	}
	for _, u := range []string{"alice@localhost", "bob@localhost"} {
		if err := srv.Store().CreateAccount(ctx, u, creds); err != nil {
			b.Fatal(err)
		}
	}
	r := srv.Router()
	bind := func(full string) *modtest.Session {
		s := modtest.NewSession(full).Available(0)
		s.SetFlags(module.FlagCarbons, 0)
		if _, err := r.Bind(s); err != nil {
			b.Fatal(err)
		}
		return s
	}
	alice := bind("alice@localhost/phone")
	bob := bind("bob@localhost/desk")
	bobLaptop := bob
	if devices > 1 {
		bind("alice@localhost/laptop")
		bobLaptop = bind("bob@localhost/laptop")
	}
	in := wire.MustParse("<message to='bob@localhost' type='chat' id='m1'><body>Hello there, how are you?</body>" +
		"<active xmlns='http://jabber.org/protocol/chatstates'/><origin-id xmlns='urn:xmpp:sid:0' id='0a1b2c3d'/></message>")
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		st := in.WithAttr("from", "alice@localhost/phone")
		h := module.NewHold()
		r.Route(ctx, st, module.Origin{Kind: module.FromClient, Session: alice, Hold: h, From: alice.JID()})
		if err := h.Wait(ctx); err != nil {
			b.Fatal(err)
		}
		if i%64 == 63 {
			bob.Take()
			bobLaptop.Take()
		}
	}
	b.StopTimer()
	if len(bob.Take())+len(bobLaptop.Take()) == 0 {
		b.Fatal("nothing delivered")
	}
}
