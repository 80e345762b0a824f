package server_test

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"strings"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/internal/testserver"
	"github.com/parley-xmpp/parley/server"
	"github.com/parley-xmpp/parley/storage"
	"github.com/parley-xmpp/parley/storage/pg"
	"github.com/parley-xmpp/parley/storage/sqlite"
	"github.com/parley-xmpp/parley/upload"
)

// notPerAccount are the tables that hold no account's rows, and why.
// Every other table must get a row of the account from fillAccount.
var notPerAccount = map[string]string{
	"schema_migrations": "migration bookkeeping",
	"settings":          "server-wide settings",
	"api_tokens":        "admin API tokens belong to the operator, not to an account",
	"archive_fts_state": "state of the full-text index",
	"archive_fts":       "contentless full-text index: its rows show no text (archive_fts_docs does)",
	"muc_rooms":         "rooms belong to the service; an account's affiliations are in muc_affiliations",
}

// fillAccount stores one of everything an account can own, or be named
// in, mentioning no other local account. Extend it when you add
// per-account state: TestDeleteAccountLeavesNothing fails for a table
// that it leaves without a row of the account.
func fillAccount(t *testing.T, st storage.Store, blobs upload.Blobs, owner string, n int) {
	t.Helper()
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	const contact = "carol@remote.example"
	_, err := st.UpsertRosterItem(ctx, owner, storage.RosterItem{JID: contact, Subscription: storage.SubBoth, Groups: []string{"g"}})
	must(err)
	must(st.AddPendingIn(ctx, owner, storage.PendingSubscription{From: "dave@remote.example", Raw: []byte("<presence type='subscribe'/>"), Stamp: now}))
	_, err = st.StoreOffline(ctx, owner, []byte("<message><body>offline</body></message>"), now, 0)
	must(err)
	must(st.SetVCard(ctx, owner, []byte("<vCard xmlns='vcard-temp'><FN>x</FN></vCard>")))
	must(st.Block(ctx, owner, []string{"spam@remote.example"}))
	_, err = st.AppendArchive(ctx, owner, storage.ArchivedMessage{With: contact, Timestamp: now, FromFull: contact + "/phone",
		Raw: []byte("<message><body>searchable words</body></message>")})
	must(err)
	must(st.SetArchivePrefs(ctx, owner, storage.ArchivePrefs{Default: storage.ArchiveAlways}))
	must(st.AddPush(ctx, owner, storage.PushRegistration{JID: "push.remote.example", Node: "n", Created: now}))
	_, err = st.EnqueuePushJob(ctx, storage.PushJob{Owner: owner, JID: "push.remote.example", Node: "n", RegCreated: now,
		Payload: []byte("<iq/>"), Due: now.Add(time.Hour), Created: now})
	must(err)
	must(st.CreatePEPNode(ctx, owner, storage.PEPNode{Name: "urn:xmpp:avatar:data", Config: map[string][]string{}, Created: now}))
	_, err = st.PublishPEPItem(ctx, owner, "urn:xmpp:avatar:data", storage.PEPItem{ID: "i", Payload: []byte("<data/>"), Stamp: now}, 0)
	must(err)
	must(st.SetPrivateXML(ctx, owner, "storage:bookmarks", []byte("<storage xmlns='storage:bookmarks'/>")))
	id := strings.Repeat(string(rune('a'+n)), 26) // an upload ID: 26 base32 letters
	must(st.CreateUpload(ctx, storage.Upload{ID: id, Owner: owner, Filename: "f.txt", Size: 3, Created: now, Expires: now.Add(time.Hour)}, 0))
	must(blobs.Put(ctx, id, bytes.NewReader([]byte("abc")), 3))
	must(st.StartUpload(ctx, id))
	must(st.CompleteUpload(ctx, id, now))
	must(st.CreateInvite(ctx, storage.Invite{ID: "inv" + id, TokenHash: []byte(id), Domain: testserver.Domain, Owner: owner,
		Created: now, UsesLeft: 1}))
	must(st.GrantRole(ctx, owner, storage.RoleAdmin))
	must(st.SetLastActivity(ctx, owner, now, "away"))
	must(st.IssueFASTToken(ctx, owner, storage.FASTClient{ClientID: "client"},
		storage.FASTToken{Digest: []byte(id), Mechanism: "HT-SHA-256-NONE", Issued: now, Expiry: now.Add(time.Hour)}))
	must(st.SuspendAccount(ctx, storage.Suspension{Account: owner, Reason: "r", By: "cli", Since: now, Until: now.Add(time.Hour)}))
	_, err = st.AddSpamReport(ctx, storage.SpamReport{Reporter: owner, Reported: "spam@remote.example", Reason: storage.ReportSpam, Created: now}, 0)
	must(err)
	must(st.SetAccountSetting(ctx, owner, "k", "v"))
	room := "room" + id + "@conference." + testserver.Domain
	must(st.CreateRoom(ctx, storage.MUCRoom{JID: room, Created: now}, nil))
	must(st.SetRoomAffiliation(ctx, room, storage.MUCAffiliation{JID: owner, Affiliation: storage.AffMember}))
	must(st.SuspendAccount(ctx, storage.Suspension{Account: owner, Reason: "spam", By: "cli", Since: now}))
	_, err = st.AddSpamReport(ctx, storage.SpamReport{Reporter: owner, Reported: "spam@remote.example", Reason: storage.ReportSpam,
		Created: now}, 0)
	must(err)
	must(st.SetAccountSetting(ctx, owner, "block_strangers", "true"))
}

// tableScanner is what both backends offer to look into every table.
type tableScanner interface {
	Tables(ctx context.Context) ([]string, error)
	CountMentions(ctx context.Context, table, needle string) (int64, error)
}

var (
	_ tableScanner = (*sqlite.Store)(nil)
	_ tableScanner = (*pg.Store)(nil)
)

// mentions counts, per table, the rows that mention needle.
func mentions(t *testing.T, st tableScanner, needle string) map[string]int64 {
	t.Helper()
	ctx := context.Background()
	tables, err := st.Tables(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, tb := range tables {
		if out[tb], err = st.CountMentions(ctx, tb, needle); err != nil {
			t.Fatalf("%s: %v", tb, err)
		}
	}
	return out
}

// TestDeleteAccountLeavesNothing deletes an account through the server's
// one deletion path (the modules' OnDeleteAccount hooks, then the store)
// and looks into every table of the schema, whichever migration made it:
// no row names the account any more, its uploaded files are gone, and
// another account's rows and files are all still there.
func TestDeleteAccountLeavesNothing(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			var opts []testserver.Option
			if backend == "postgres" {
				testserver.SkipWithoutPostgres(t)
				opts = append(opts, testserver.OnPostgres(t))
			} else {
				opts = append(opts, func(c *server.Config) { c.Storage.Backend = "sqlite" })
			}
			// With the full-text index kept, so that its rows are checked too.
			opts = append(opts, func(c *server.Config) { c.MAM.Fulltext = true })
			s := testserver.Start(t, opts...)
			ctx := context.Background()
			blobs, err := server.OpenUploadBlobs(ctx, s.Cfg)
			if err != nil {
				t.Fatal(err)
			}
			alice, bob := s.AddUser("alice", "pw"), s.AddUser("bob", "pw")
			fillAccount(t, s.Store(), blobs, alice, 0)
			fillAccount(t, s.Store(), blobs, bob, 1)
			scan := s.Store().(tableScanner)

			aliceBefore, bobBefore := mentions(t, scan, alice), mentions(t, scan, bob)
			for tb, n := range aliceBefore {
				if _, global := notPerAccount[tb]; !global && n == 0 {
					t.Errorf("table %s has no row of the account: give it one in fillAccount (or list it in notPerAccount with the reason)", tb)
				}
			}

			if err := s.DeleteAccount(ctx, alice); err != nil {
				t.Fatal(err)
			}
			for tb, n := range mentions(t, scan, alice) {
				if n != 0 {
					t.Errorf("after deleting %s, %d row(s) of table %s still name it", alice, n, tb)
				}
			}
			for tb, n := range mentions(t, scan, bob) {
				if n != bobBefore[tb] {
					t.Errorf("deleting %s changed %s's rows in table %s: %d, was %d", alice, bob, tb, n, bobBefore[tb])
				}
			}
			for key, want := range map[string]bool{strings.Repeat("a", 26): false, strings.Repeat("b", 26): true} {
				f, _, _, err := blobs.Open(key)
				if err == nil {
					f.Close()
				}
				if got := err == nil; got != want || (err != nil && !errors.Is(err, fs.ErrNotExist)) {
					t.Errorf("upload %s exists %v (%v), want %v", key, got, err, want)
				}
			}
			if err := s.DeleteAccount(ctx, alice); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("deleting again: %v, want storage.ErrNotFound", err)
			}
		})
	}
}
