package mam

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/internal/modtest"
	"github.com/parley-xmpp/parley/storage"
)

// gatedUsage is the real store whose first trim, once done, waits for
// release before it returns, as a trim on a busy database does while the
// account keeps writing.
type gatedUsage struct {
	storage.UsageReader
	once             sync.Once
	started, release chan struct{}
}

func (g *gatedUsage) TrimArchive(ctx context.Context, owner string, maxBytes int64) (int, error) {
	n, err := g.UsageReader.TrimArchive(ctx, owner, maxBytes)
	g.once.Do(func() {
		close(g.started)
		<-g.release
	})
	return n, err
}

// TestQuotaWritesDuringTrim: messages archived while a trim runs are
// checked once it is done, so the archive ends within its quota even when
// no further message comes (the e2e TestAccountQuotas saw 50999 bytes of
// a 16 KiB quota on a loaded machine).
func TestQuotaWritesDuringTrim(t *testing.T) {
	me := modtest.New(t)
	const owner = "alice@" + modtest.Domain
	const max = 10_000
	g := &gatedUsage{UsageReader: me.Store, started: make(chan struct{}), release: make(chan struct{})}
	q := newArchiveQuota(max, g, slog.New(slog.DiscardHandler))
	raw := []byte("<message>" + strings.Repeat("x", 990) + "</message>")
	archive := func(i int) {
		t.Helper()
		_, err := me.Store.AppendArchive(me.Ctx, owner, storage.ArchivedMessage{
			With: "bob@" + modtest.Domain, Timestamp: time.Now(), FromFull: owner, Raw: raw,
			OriginID: fmt.Sprint(i)})
		if err != nil {
			t.Fatal(err)
		}
		q.added(owner, len(raw))
	}
	i := 0
	for ; i < 12; i++ { // over the quota: the check trims, and waits after the trim
		archive(i)
	}
	select {
	case <-g.started:
	case <-time.After(10 * time.Second):
		t.Fatal("no trim started over the quota")
	}
	for ; i < 40; i++ { // while the trim waits
		archive(i)
	}
	close(g.release)
	deadline := time.Now().Add(10 * time.Second)
	for {
		u, err := me.Store.AccountUsage(me.Ctx, owner)
		if err != nil {
			t.Fatal(err)
		}
		if u.Archive <= max {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("archive holds %d bytes after the trim, quota %d", u.Archive, max)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
