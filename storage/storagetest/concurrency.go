package storagetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/parley-xmpp/parley/storage"
)

// testConcurrency runs writers from several goroutines against one owner
// and checks that no write is lost, no version is handed out twice and
// quotas hold. Run it with -race.
func testConcurrency(t *testing.T, open opener) {
	const (
		workers = 8
		perW    = 20
		owner   = "busy@example.com"
	)

	t.Run("NoLostWrites", func(t *testing.T) {
		st := open(t)
		ctx := t.Context()
		var (
			wg   sync.WaitGroup
			mu   sync.Mutex
			vers = versions{}
			errs = make(chan error, workers)
		)
		for w := range workers {
			wg.Go(func() {
				for i := range perW {
					jid := fmt.Sprintf("c%d-%d@example.net", w, i)
					if err := st.CreateAccount(ctx, jid, []storage.SCRAMCredential{credSHA256}); err != nil {
						errs <- fmt.Errorf("CreateAccount: %w", err)
						return
					}
					ver, err := st.UpsertRosterItem(ctx, owner, storage.RosterItem{JID: jid, Subscription: storage.SubBoth})
					if err != nil {
						errs <- fmt.Errorf("UpsertRosterItem: %w", err)
						return
					}
					mu.Lock()
					dup := vers[ver]
					vers[ver] = true
					mu.Unlock()
					if dup {
						errs <- fmt.Errorf("roster version %q handed out twice", ver)
						return
					}
					if _, err := st.StoreOffline(ctx, owner, []byte(jid), stamp(i), 0); err != nil {
						errs <- fmt.Errorf("StoreOffline: %w", err)
						return
					}
					if err := st.AddPendingIn(ctx, owner, storage.PendingSubscription{From: jid, Raw: stanza2, Stamp: stamp(i)}); err != nil {
						errs <- fmt.Errorf("AddPendingIn: %w", err)
						return
					}
					if err := st.Block(ctx, owner, []string{jid, "shared@example.org"}); err != nil {
						errs <- fmt.Errorf("Block: %w", err)
						return
					}
					// Readers alongside the writers.
					if _, _, err := st.RosterItems(ctx, owner); err != nil {
						errs <- fmt.Errorf("RosterItems: %w", err)
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if t.Failed() {
			return
		}

		const total = workers * perW
		accounts, err := st.ListAccounts(ctx, "example.net")
		must(t, "ListAccounts", err)
		items, _, err := st.RosterItems(ctx, owner)
		must(t, "RosterItems", err)
		pending, err := st.PendingIn(ctx, owner)
		must(t, "PendingIn", err)
		blocked, err := st.BlockList(ctx, owner)
		must(t, "BlockList", err)
		for what, n := range map[string]int{
			"accounts": len(accounts), "roster items": len(items),
			"pending subscriptions": len(pending), "blocked JIDs": len(blocked) - 1,
		} {
			if n != total {
				t.Errorf("%s: %d, want %d", what, n, total)
			}
		}
		wantCount(t, st, owner, total)
	})

	t.Run("Quota", func(t *testing.T) {
		st := open(t)
		ctx := t.Context()
		const max = 25
		var (
			wg       sync.WaitGroup
			mu       sync.Mutex
			stored   int
			rejected int
			errs     = make(chan error, workers)
		)
		for range workers {
			wg.Go(func() {
				for range perW {
					_, err := st.StoreOffline(ctx, owner, stanza1, stamp(0), max)
					mu.Lock()
					switch {
					case err == nil:
						stored++
					case errors.Is(err, storage.ErrQuotaExceeded):
						rejected++
					default:
						errs <- err
						mu.Unlock()
						return
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if stored != max || rejected != workers*perW-max {
			t.Fatalf("stored %d, rejected %d; want %d and %d", stored, rejected, max, workers*perW-max)
		}
		wantCount(t, st, owner, max)
	})

	t.Run("CreateSameAccount", func(t *testing.T) {
		st := open(t)
		ctx := t.Context()
		results := make(chan error, workers)
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() { results <- st.CreateAccount(ctx, owner, []storage.SCRAMCredential{credSHA1}) })
		}
		wg.Wait()
		close(results)
		created := 0
		for err := range results {
			switch {
			case err == nil:
				created++
			case !errors.Is(err, storage.ErrExists):
				t.Fatalf("CreateAccount: %v", err)
			}
		}
		if created != 1 {
			t.Fatalf("%d concurrent CreateAccount calls succeeded, want 1", created)
		}
		wantCreds(t, st, owner, []storage.SCRAMCredential{credSHA1})
	})
}

// testContext checks that a cancelled context stops calls before they
// change anything.
func testContext(t *testing.T, open opener) {
	st := open(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	const bare = "late@example.com"
	calls := []struct {
		name string
		call func() error
	}{
		{"CreateAccount", func() error { return st.CreateAccount(ctx, bare, nil) }},
		{"AccountExists", func() error { _, err := st.AccountExists(ctx, bare); return err }},
		{"ListAccounts", func() error { _, err := st.ListAccounts(ctx, ""); return err }},
		{"UpsertRosterItem", func() error {
			_, err := st.UpsertRosterItem(ctx, bare, storage.RosterItem{JID: "x@example.com", Subscription: storage.SubNone})
			return err
		}},
		{"RosterItems", func() error { _, _, err := st.RosterItems(ctx, bare); return err }},
		{"StoreOffline", func() error { _, err := st.StoreOffline(ctx, bare, stanza1, stamp(0), 0); return err }},
		{"OfflineMessages", func() error { _, err := st.OfflineMessages(ctx, bare); return err }},
		{"SetVCard", func() error { return st.SetVCard(ctx, bare, vcard1) }},
		{"Block", func() error { return st.Block(ctx, bare, []string{"x@example.com"}) }},
		{"Ping", func() error { return st.Ping(ctx) }},
	}
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			if err := c.call(); err == nil {
				t.Fatalf("%s with a cancelled context succeeded", c.name)
			}
		})
	}
	wantEmpty(t, st, bare)
}
