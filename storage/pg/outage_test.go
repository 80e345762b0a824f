package pg

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/internal/pgtest"
	"github.com/parley-xmpp/parley/storage"
	"github.com/parley-xmpp/parley/storage/groupcommit"
)

// TestOutage stops the database under an open Store: calls must fail
// fast with IsUnavailable errors, and once the database is back the same
// Store must work again with everything committed before still there.
func TestOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a PostgreSQL cluster")
	}
	c := pgtest.Start(t)
	ctx := t.Context()
	const timeout = 2 * time.Second
	st, err := Open(ctx, Config{DSN: c.DSN(), MaxConns: 4, Migrate: true, QueryTimeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// Archive writes through group commit: a batch during the outage
	// fails fast for exactly its callers, and the committer recovers.
	gst, err := Open(ctx, Config{DSN: c.DSN(), MaxConns: 4, QueryTimeout: timeout,
		GroupCommit: groupcommit.Options{Enabled: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer gst.Close()

	// Committed writes of every kind.
	const juliet, romeo = "juliet@capulet.example", "romeo@montague.example"
	creds := []storage.SCRAMCredential{{Hash: "SHA-256", Salt: []byte("salt"), Iterations: 4096, StoredKey: []byte("sk"), ServerKey: []byte("svk")}}
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	must("CreateAccount", st.CreateAccount(ctx, juliet, creds))
	ver, err := st.UpsertRosterItem(ctx, juliet, storage.RosterItem{JID: romeo, Subscription: storage.SubBoth, Groups: []string{"Lovers"}})
	must("UpsertRosterItem", err)
	var offlineIDs []int64
	for i := range 3 {
		id, err := st.StoreOffline(ctx, juliet, fmt.Appendf(nil, "<message id='%d'/>", i), time.Now(), 100)
		must("StoreOffline", err)
		offlineIDs = append(offlineIDs, id)
	}
	must("SetVCard", st.SetVCard(ctx, juliet, []byte("<vCard/>")))
	archID, err := st.AppendArchive(ctx, juliet, storage.ArchivedMessage{With: romeo, Raw: []byte("<message/>")})
	must("AppendArchive", err)
	// Use several pool connections, so that the outage hits idle ones too.
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() { st.Ping(ctx) })
	}
	wg.Wait()

	c.Stop()

	// Every call fails, fast, and says the database is unavailable. Run
	// them concurrently as well, so that none waits for another.
	calls := map[string]func(context.Context) error{
		"Ping":          st.Ping,
		"AccountExists": func(ctx context.Context) error { _, err := st.AccountExists(ctx, juliet); return err },
		"RosterItems":   func(ctx context.Context) error { _, _, err := st.RosterItems(ctx, juliet); return err },
		"StoreOffline": func(ctx context.Context) error {
			_, err := st.StoreOffline(ctx, juliet, []byte("<message/>"), time.Now(), 100)
			return err
		},
		"SetVCard": func(ctx context.Context) error { return st.SetVCard(ctx, juliet, []byte("<vCard>new</vCard>")) },
		"UpsertRosterItem": func(ctx context.Context) error {
			_, err := st.UpsertRosterItem(ctx, juliet, storage.RosterItem{JID: "nurse@capulet.example", Subscription: storage.SubNone})
			return err
		},
		"AppendArchive (group commit)": func(ctx context.Context) error {
			_, err := gst.AppendArchive(ctx, juliet, storage.ArchivedMessage{With: romeo, Raw: []byte("<message>lost</message>")})
			return err
		},
		"QueryArchive": func(ctx context.Context) error {
			_, err := st.QueryArchive(ctx, juliet, storage.ArchiveQuery{Max: 10})
			return err
		},
	}
	check := func(name string, call func(context.Context) error, log bool) error {
		start := time.Now()
		err := call(ctx)
		d := time.Since(start)
		switch {
		case err == nil:
			return fmt.Errorf("%s succeeded with the database stopped", name)
		case !IsUnavailable(err):
			return fmt.Errorf("%s: %v (%T) is not IsUnavailable", name, err, errors.Unwrap(err))
		case d > timeout+time.Second:
			return fmt.Errorf("%s took %v to fail (timeout %v)", name, d, timeout)
		}
		if log {
			t.Logf("%s while down, after %v: %v", name, d.Round(time.Millisecond), err)
		}
		return nil
	}
	for round := range 2 {
		for name, call := range calls {
			if err := check(name, call, round == 0); err != nil {
				t.Errorf("round %d: %v", round, err)
			}
		}
	}
	errs := make(chan error, 3*len(calls))
	for range 3 {
		for name, call := range calls {
			wg.Go(func() {
				if err := check(name, call, false); err != nil {
					errs <- err
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent: %v", err)
	}

	c.Start()

	// The same Store recovers by itself: no reopen.
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := st.Ping(ctx)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Store did not reconnect within 20s: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Everything committed before the outage is there; nothing attempted
	// during it is.
	got, err := st.Credentials(ctx, juliet)
	if err != nil || len(got) != 1 || string(got[0].StoredKey) != "sk" {
		t.Errorf("Credentials after restart = %+v, %v", got, err)
	}
	items, v, err := st.RosterItems(ctx, juliet)
	if err != nil || v != ver || len(items) != 1 || items[0].JID != romeo {
		t.Errorf("RosterItems after restart = %+v, %q, %v; want one item, version %q", items, v, err, ver)
	}
	msgs, err := st.OfflineMessages(ctx, juliet)
	var ids []int64
	for _, m := range msgs {
		ids = append(ids, m.ID)
	}
	if err != nil || !slices.Equal(ids, offlineIDs) {
		t.Errorf("offline IDs after restart = %v, %v; want %v", ids, err, offlineIDs)
	}
	if vc, err := st.VCard(ctx, juliet); err != nil || string(vc) != "<vCard/>" {
		t.Errorf("VCard after restart = %q, %v", vc, err)
	}
	if p, err := st.QueryArchive(ctx, juliet, storage.ArchiveQuery{Max: 10}); err != nil || len(p.Messages) != 1 || p.Messages[0].ID != archID {
		t.Errorf("archive after restart = %+v, %v", p, err)
	}
	// Group commit works again, for concurrent writers.
	var gids [8]string
	var gerrs [8]error
	for i := range gids {
		wg.Go(func() {
			gids[i], gerrs[i] = gst.AppendArchive(ctx, juliet, storage.ArchivedMessage{With: romeo, Raw: []byte("<message>back</message>")})
		})
	}
	wg.Wait()
	for i, err := range gerrs {
		if err != nil {
			t.Errorf("group-commit AppendArchive %d after restart: %v", i, err)
		}
	}
	if p, err := st.QueryArchive(ctx, juliet, storage.ArchiveQuery{Max: 100}); err != nil || p.Count != 1+len(gids) {
		t.Errorf("archive after group-commit writes = %d messages, %v; want %d", p.Count, err, 1+len(gids))
	}

	// New writes work, on every pool connection.
	for i := range 8 {
		id, err := st.StoreOffline(ctx, juliet, []byte("<message>after</message>"), time.Now(), 100)
		if err != nil {
			t.Fatalf("StoreOffline %d after restart: %v", i, err)
		}
		if id <= offlineIDs[len(offlineIDs)-1] {
			t.Errorf("offline ID %d after restart not above %d", id, offlineIDs[len(offlineIDs)-1])
		}
	}
	next, err := st.UpsertRosterItem(ctx, juliet, storage.RosterItem{JID: "nurse@capulet.example", Subscription: storage.SubNone})
	if err != nil || mustInt(t, next) != mustInt(t, ver)+1 {
		t.Errorf("UpsertRosterItem after restart = %q, %v; want version after %q", next, err, ver)
	}
	if n, err := st.CountOffline(ctx, juliet); err != nil || n != len(offlineIDs)+8 {
		t.Errorf("CountOffline after restart = %d, %v", n, err)
	}
}
