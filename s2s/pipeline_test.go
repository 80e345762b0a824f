package s2s

import (
	"context"
	"sync"
	"testing"

	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/router"

	"github.com/parley-xmpp/parley/wire"
)

// A conversation stays on one shard however the peer spells its ends, as
// long as routing takes the spellings for the same JIDs (PRECIS width and
// case mapping, IDNA): otherwise two stanzas of one conversation could be
// routed in parallel and delivered out of order.
func TestShardOfFollowsRouting(t *testing.T) {
	spellings := [][2]string{
		{"alice@remote.example/a", "user@local.example"},
		{"ALICE@Remote.Example/b", "USER@local.example"},
		{"ａｌｉｃｅ@remote.example/c", "ｕｓｅｒ@local.example"},
		{"alice@ＲＥＭＯＴＥ.example", "user@ｌｏｃａｌ.example/r"},
		{"alice@remote。example", "user@local.example"},
	}
	idn := [][2]string{
		{"bob@bücher.example", "user@local.example"},
		{"bob@xn--bcher-kva.example/x", "User@local.example"},
	}
	for _, set := range [][][2]string{spellings, idn} {
		want := shardOf(&wire.Stanza{From: set[0][0], To: set[0][1]})
		for _, p := range set[1:] {
			if got := shardOf(&wire.Stanza{From: p[0], To: p[1]}); got != want {
				t.Errorf("shardOf(from %q, to %q) = %d, want %d (as %q, %q)", p[0], p[1], got, want, set[0][0], set[0][1])
			}
		}
	}
}

// What a stream's reader handed over is routed with the service's
// context, not the reader's: serveOwn cancels the reader's context as soon
// as its writer gives up (a failed write), while the shards may still
// hold stanzas that were read in full; routed with a canceled context
// their archive commits and deliveries would fail.
func TestDispatcherOutlivesReaderContext(t *testing.T) {
	r := router.New(router.Config{Domains: []string{"local.example"}})
	reg := module.NewRegistry([]string{"local.example"}, nil, r)
	gate := make(chan struct{})
	var mu sync.Mutex
	var errs []error
	reg.Inbound(func(ctx context.Context, ev *module.Event) module.Verdict {
		<-gate
		mu.Lock()
		errs = append(errs, ctx.Err())
		mu.Unlock()
		return module.Drop
	})
	r.SetRegistry(reg)
	s := New(Config{LocalDomains: []string{"local.example"}}, r)
	auth := newAuthSet(s, "")
	auth.mark(pair{local: "local.example", remote: "remote.example"})
	ctx, cancel := context.WithCancel(s.ctx) // the reader's
	str := &stream{}
	for range 3 {
		if err := s.acceptStanza(ctx, str, auth, &wire.Stanza{Name: "message", Type: "chat", From: "alice@remote.example/a", To: "user@local.example"}); err != nil {
			t.Fatal(err)
		}
	}
	cancel() // the writer gave up
	close(gate)
	str.endRouting()
	if len(errs) != 3 {
		t.Fatalf("%d stanzas routed, want 3", len(errs))
	}
	for i, err := range errs {
		if err != nil {
			t.Errorf("stanza %d routed with a canceled context: %v", i, err)
		}
	}
}
