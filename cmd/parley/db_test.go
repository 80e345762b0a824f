package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/parley-xmpp/parley/internal/testserver"
	"github.com/parley-xmpp/parley/server"
	"github.com/parley-xmpp/parley/storage"
	"github.com/parley-xmpp/parley/storage/pg"
	"github.com/parley-xmpp/parley/storage/sqlite"
)

const defaultTestPG = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// needPG returns the test server's DSN, skipping loudly when it is not
// reachable.
func needPG(t *testing.T) string {
	t.Helper()
	dsn := os.Getenv("PARLEY_TEST_POSTGRES")
	if dsn == "" {
		dsn = defaultTestPG
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err == nil {
		err = conn.Ping(ctx)
		conn.Close(ctx)
	}
	if err != nil {
		t.Skipf("PostgreSQL not reachable at %s: %v — PostgreSQL tests SKIPPED (set PARLEY_TEST_POSTGRES to a reachable server)",
			pg.RedactDSN(dsn), err)
	}
	return dsn
}

// testSchema names a random schema that is dropped when the test ends.
func testSchema(t *testing.T, dsn string) string {
	t.Helper()
	var b [8]byte
	rand.Read(b[:])
	schema := "parley_cli_test_" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, `DROP SCHEMA IF EXISTS `+pgx.Identifier{schema}.Sanitize()+` CASCADE`); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	return schema
}

func TestDBMigrateStatusPostgres(t *testing.T) {
	dsn := needPG(t)
	schema := testSchema(t, dsn)
	cfg, _ := testCLIConfig(t, fmt.Sprintf("storage:\n  backend: postgres\n  postgres:\n    dsn: %q\n    schema: %q\n", dsn, schema))

	r := runCLI(t, "", "db", "status", "--config", cfg)
	okHas(t, r, "pending: run parley db migrate")
	if !strings.Contains(r.out, "0001_init.sql") || strings.Contains(r.out, "applied 2") {
		t.Fatalf("status before migrate:\n%s", r.out)
	}
	r = runCLI(t, "", "db", "migrate", "--config", cfg)
	okHas(t, r, "applied 0001_init.sql")
	if !strings.Contains(r.out, "schema "+schema) {
		t.Errorf("migrate output does not name the schema:\n%s", r.out)
	}
	r = runCLI(t, "", "db", "migrate", "--config", cfg)
	okHas(t, r, "nothing to apply")
	r = runCLI(t, "", "db", "status", "--config", cfg)
	okHas(t, r, "schema is up to date")
	if strings.Contains(r.out, "pending") {
		t.Errorf("status after migrate:\n%s", r.out)
	}
	// The server can open what migrate made, without migrating.
	st, err := pg.Open(context.Background(), pg.Config{DSN: dsn, Schema: schema})
	if err != nil {
		t.Fatalf("open migrated schema: %v", err)
	}
	st.Close()
}

func TestDBErrorsHidePassword(t *testing.T) {
	dsn := "postgres://parley:s3cretpw@127.0.0.1:1/parley?connect_timeout=2"
	cfg, _ := testCLIConfig(t, fmt.Sprintf("storage:\n  backend: postgres\n  postgres:\n    dsn: %q\n", dsn))
	for _, cmd := range []string{"migrate", "status"} {
		r := runCLI(t, "", "db", cmd, "--config", cfg)
		r.fails(t, "127.0.0.1:1")
		if strings.Contains(r.err+r.out, "s3cretpw") {
			t.Errorf("db %s leaks the password: %s", cmd, r.err)
		}
	}
	r := runCLI(t, "", "db", "copy", "--from", t.TempDir(), "--to", dsn)
	r.fails(t, "127.0.0.1:1")
	if strings.Contains(r.err+r.out, "s3cretpw") {
		t.Errorf("db copy leaks the password: %s", r.err)
	}
	runCLI(t, "", "db", "copy", "--from", t.TempDir()).fails(t, "--from and --to are required")
}

func TestDBStatusSQLite(t *testing.T) {
	cfg, dataDir := testCLIConfig(t, "")
	for _, cmd := range []string{"migrate", "status"} {
		r := runCLI(t, "", "db", cmd, "--config", cfg)
		okHas(t, r, "applied automatically")
		if !strings.Contains(r.out, dataDir) || !regexpMatch(`schema version [1-9][0-9]* \(this binary knows [1-9][0-9]*\)`, r.out) {
			t.Errorf("db %s:\n%s", cmd, r.out)
		}
	}
}

// fillStore writes one of everything through the storage interfaces.
func fillStore(t *testing.T, ctx context.Context, st storage.Store) []string {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	base := time.Date(2026, 3, 14, 15, 9, 26, 535897000, time.UTC)
	owners := []string{"alice@example.org", "bob@example.org", "carol@localhost"}
	for i, o := range owners[:2] {
		must(st.CreateAccount(ctx, o, []storage.SCRAMCredential{
			{Hash: "SHA-256", Salt: []byte{byte(i), 1}, Iterations: 4096, StoredKey: []byte("sk" + o), ServerKey: []byte("vk" + o)},
			{Hash: "SHA-1", Salt: []byte{byte(i), 2}, Iterations: 4096, StoredKey: []byte("sk1" + o), ServerKey: []byte("vk1" + o)},
		}))
	}
	_, err := st.UpsertRosterItem(ctx, "alice@example.org", storage.RosterItem{JID: "bob@example.org", Name: "Bob",
		Subscription: storage.SubBoth, Groups: []string{"Friends", "Work"}})
	must(err)
	_, err = st.UpsertRosterItem(ctx, "alice@example.org", storage.RosterItem{JID: "dave@remote.example", Subscription: storage.SubNone, Ask: true})
	must(err)
	_, err = st.UpsertRosterItem(ctx, "alice@example.org", storage.RosterItem{JID: "dave@remote.example", Subscription: storage.SubTo, Approved: true})
	must(err)
	must(st.AddPendingIn(ctx, "bob@example.org", storage.PendingSubscription{From: "eve@remote.example", Raw: []byte("<presence type='subscribe'/>"), Stamp: base}))
	for i := range 3 {
		_, err := st.StoreOffline(ctx, "bob@example.org", []byte(fmt.Sprintf("<message id='o%d'/>", i)), base.Add(time.Duration(i)*time.Second), 0)
		must(err)
	}
	_, err = st.StoreOffline(ctx, "carol@localhost", []byte("<message/>"), base, 0)
	must(err)
	must(st.DeleteOffline(ctx, "bob@example.org", 1)) // IDs start after a gap
	must(st.SetVCard(ctx, "alice@example.org", []byte("<vCard xmlns='vcard-temp'><FN>Alice</FN></vCard>")))
	must(st.Block(ctx, "alice@example.org", []string{"spam@bad.example", "bad.example", "aaa@bad.example"}))
	// Archive across months (partitions) and years.
	for i := range 1203 {
		ts := base.AddDate(0, -i%40, 0).Add(time.Duration(i) * time.Millisecond)
		_, err := st.AppendArchive(ctx, owners[i%2], storage.ArchivedMessage{With: "dave@remote.example", WithResource: "phone",
			Timestamp: ts, OriginID: fmt.Sprintf("origin-%d", i), FromFull: "dave@remote.example/phone",
			Raw: []byte(fmt.Sprintf("<message><body>%d</body></message>", i))})
		must(err)
	}
	must(st.SetArchivePrefs(ctx, "alice@example.org", storage.ArchivePrefs{Default: storage.ArchiveRoster,
		Always: []string{"z@x", "a@x"}, Never: []string{"n@x"}}))
	must(st.AddPush(ctx, "alice@example.org", storage.PushRegistration{JID: "push.example", Node: "n1", Form: []byte("<x xmlns='jabber:x:data'/>"), Created: base}))
	must(st.AddPush(ctx, "alice@example.org", storage.PushRegistration{JID: "push.example", Node: "n2", Created: base}))
	must(st.CreatePEPNode(ctx, "alice@example.org", storage.PEPNode{Name: "urn:xmpp:avatar:data",
		Config: map[string][]string{"pubsub#access_model": {"presence"}, "pubsub#roster_groups_allowed": {"b", "a"}}, Created: base}))
	for _, id := range []string{"z", "a", "m", "a"} { // republished "a" becomes newest
		_, err := st.PublishPEPItem(ctx, "alice@example.org", "urn:xmpp:avatar:data", storage.PEPItem{ID: id,
			Payload: []byte("<data xmlns='urn:xmpp:avatar:data'>" + id + "</data>"), Publisher: "alice@example.org/pc", Stamp: base}, 0)
		must(err)
	}
	must(st.CreatePEPNode(ctx, "bob@example.org", storage.PEPNode{Name: "empty", Config: map[string][]string{}, Created: base}))
	// A room with affiliations, subject, archive and vCard (owner = room).
	room := "café@conference.example.org"
	must(st.CreateRoom(ctx, storage.MUCRoom{JID: room, Name: "Café", Public: true, Config: []byte(`{"persistent":true}`),
		Subject: "beans", SubjectBy: "alice", SubjectAt: base, Created: base}, []storage.MUCAffiliation{
		{JID: "alice@example.org", Affiliation: storage.AffOwner, Nick: "alice", LastNick: "alice"},
		{JID: "bad.example", Affiliation: storage.AffOutcast, Reason: "spam"}}))
	must(st.SetRoomAffiliation(ctx, room, storage.MUCAffiliation{JID: "bob@example.org", Affiliation: storage.AffMember, Notify: "all"}))
	must(st.CreateRoom(ctx, storage.MUCRoom{JID: "empty@conference.example.org", Created: base}, nil))
	_, err = st.AppendArchive(ctx, room, storage.ArchivedMessage{With: room, WithResource: "alice", Timestamp: base,
		FromFull: "alice@example.org/pc", Raw: []byte("<message type='groupchat'><body>hi</body></message>")})
	must(err)
	must(st.SetVCard(ctx, room, []byte("<vCard xmlns='vcard-temp'><PHOTO/></vCard>")))
	owners = append(owners, room)
	for i, state := range []storage.UploadState{storage.UploadPending, storage.UploadInProgress, storage.UploadComplete} {
		u := storage.Upload{ID: fmt.Sprintf("up%d", i), Owner: "bob@example.org", Filename: "f.txt", Size: int64(100 + i),
			ContentType: "text/plain", Created: base.Add(time.Duration(i) * time.Minute), Expires: base.Add(time.Hour)}
		must(st.CreateUpload(ctx, u, 0))
		if state >= storage.UploadInProgress {
			must(st.StartUpload(ctx, u.ID))
		}
		if state == storage.UploadComplete {
			must(st.CompleteUpload(ctx, u.ID, base.Add(2*time.Minute)))
		}
	}
	must(st.CreateInvite(ctx, storage.Invite{ID: "inv1", TokenHash: []byte("h1"), Domain: "example.org", Owner: "alice@example.org",
		Created: base, Expires: base.Add(time.Hour), UsesLeft: 1}))
	must(st.CreateInvite(ctx, storage.Invite{ID: "inv2", TokenHash: []byte("h2"), Domain: "localhost", Username: "zoe",
		Admin: true, Created: base.Add(time.Second), UsesLeft: 3}))
	must(st.GrantRole(ctx, "bob@example.org", storage.RoleAdmin))
	must(st.SetSetting(ctx, "welcome", "Welcome & 🌹"))
	must(st.CreateAPIToken(ctx, storage.APIToken{ID: "tok1", TokenHash: []byte("th"), Name: "backups", Created: base}))
	must(st.SetPrivateXML(ctx, "alice@example.org", "storage:bookmarks",
		[]byte("<storage xmlns='storage:bookmarks'><conference jid='council@conference.example' autojoin='true'/></storage>")))
	must(st.SetPrivateXML(ctx, "alice@example.org", "exodus:prefs", []byte("<exodus xmlns='exodus:prefs'><defaultnick>Ali</defaultnick></exodus>")))
	must(st.SetPrivateXML(ctx, "bob@example.org", "storage:bookmarks", []byte("<storage xmlns='storage:bookmarks'/>")))
	for i := range 2 {
		_, err := st.EnqueuePushJob(ctx, storage.PushJob{Owner: "alice@example.org", JID: "push.example", Node: "n1",
			RegCreated: base, Payload: []byte(fmt.Sprintf("<iq type='set' id='p%d'/>", i)), Due: base.Add(time.Duration(i) * time.Minute),
			Attempts: i, Created: base})
		must(err)
	}
	// XEP-0484 tokens: a client with both slots, one with a new token only.
	ua := "d4565fa7-4d72-4749-b3d3-740edbf87770"
	must(st.IssueFASTToken(ctx, "alice@example.org", storage.FASTClient{ClientID: ua, Software: "Conversations", Device: "phone"},
		storage.FASTToken{Digest: []byte("digest-1"), Mechanism: "HT-SHA-256-EXPR", Issued: base, Expiry: base.Add(24 * time.Hour)}))
	must(st.UseFASTToken(ctx, "alice@example.org", ua, []byte("digest-1")))
	must(st.IssueFASTToken(ctx, "alice@example.org", storage.FASTClient{ClientID: ua, Software: "Conversations", Device: "phone"},
		storage.FASTToken{Digest: []byte("digest-2"), Mechanism: "HT-SHA-256-EXPR", Issued: base.Add(time.Hour), Expiry: base.Add(25 * time.Hour)}))
	must(st.SetLastActivity(ctx, "bob@example.org", base.Add(-time.Hour), "Heading home"))
	must(st.IssueFASTToken(ctx, "alice@example.org", storage.FASTClient{ClientID: "other-client"},
		storage.FASTToken{Digest: []byte("digest-3"), Mechanism: "HT-SHA-256-NONE", Issued: base, Expiry: base.Add(time.Hour)}))
	must(st.SuspendAccount(ctx, storage.Suspension{Account: "bob@example.org", Reason: "spam", By: "cli", Since: base,
		Until: base.Add(24 * time.Hour)}))
	for i, reporter := range []string{"alice@example.org", "bob@example.org", "alice@example.org"} {
		_, err := st.AddSpamReport(ctx, storage.SpamReport{Reporter: reporter, Reported: "spam@evil.example", Reason: storage.ReportSpam,
			Text: "ads ü", StanzaIDs: []string{fmt.Sprintf("s%d", i)}, Created: base.Add(time.Duration(i) * time.Second)}, 0)
		must(err)
	}
	must(st.SetAccountSetting(ctx, "alice@example.org", "block_strangers", "true"))
	return owners
}

// privateNamespaces are those fillStore stores private XML under.
var privateNamespaces = []string{"storage:bookmarks", "exodus:prefs"}

// dump reads everything of owners through the storage interfaces.
func dump(t *testing.T, ctx context.Context, st storage.Store, owners []string) map[string]any {
	t.Helper()
	d := map[string]any{}
	put := func(k string, v any, err error) {
		t.Helper()
		if err != nil && err != storage.ErrNotFound {
			t.Fatalf("%s: %v", k, err)
		}
		d[k] = v
	}
	accts, err := st.ListAccounts(ctx, "")
	put("accounts", accts, err)
	for _, o := range owners {
		creds, err := st.Credentials(ctx, o)
		put(o+" creds", creds, err)
		items, ver, err := st.RosterItems(ctx, o)
		put(o+" roster", items, err)
		put(o+" roster ver", ver, nil)
		pend, err := st.PendingIn(ctx, o)
		put(o+" pending", pend, err)
		off, err := st.OfflineMessages(ctx, o)
		put(o+" offline", off, err)
		vc, err := st.VCard(ctx, o)
		put(o+" vcard", vc, err)
		bl, err := st.BlockList(ctx, o)
		put(o+" blocklist", bl, err)
		page, err := st.QueryArchive(ctx, o, storage.ArchiveQuery{Max: 100000})
		put(o+" archive", page, err)
		prefs, err := st.ArchivePrefs(ctx, o)
		put(o+" prefs", prefs, err)
		pushes, err := st.Pushes(ctx, o)
		slices.SortFunc(pushes, func(a, b storage.PushRegistration) int { return strings.Compare(a.Node, b.Node) })
		put(o+" push", pushes, err)
		nodes, err := st.PEPNodes(ctx, o)
		put(o+" pep", nodes, err)
		for _, n := range nodes {
			items, err := st.PEPItems(ctx, o, n.Name, nil, 0)
			put(o+" pep "+n.Name, items, err)
		}
		ups, err := st.OwnerUploads(ctx, o)
		put(o+" uploads", ups, err)
		for _, ns := range privateNamespaces {
			raw, err := st.PrivateXML(ctx, o, ns)
			put(o+" private "+ns, raw, err)
		}
		fast, err := st.FASTClients(ctx, o)
		put(o+" fast tokens", fast, err)
		at, status, err := st.LastActivity(ctx, o)
		put(o+" last activity", fmt.Sprint(at, status), err)
		sp, err := st.AccountSuspension(ctx, o)
		put(o+" suspension", sp, err)
		as, err := st.AccountSettingsOf(ctx, o)
		put(o+" settings", as, err)
		usage, err := st.AccountUsage(ctx, o)
		put(o+" usage", usage, err)
	}
	jobs, err := st.DuePushJobs(ctx, time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), 1000)
	for i := range jobs {
		jobs[i].ID = 0 // assigned by each database
	}
	put("push jobs", jobs, err)
	us, err := st.UploadStats(ctx)
	put("upload stats", us, err)
	invs, err := st.ListInvites(ctx, "")
	put("invites", invs, err)
	admins, err := st.RoleMembers(ctx, storage.RoleAdmin)
	put("admins", admins, err)
	settings, err := st.AllSettings(ctx)
	put("settings", settings, err)
	toks, err := st.ListAPITokens(ctx)
	put("api tokens", toks, err)
	rooms, err := st.Rooms(ctx, "conference.example.org")
	put("rooms", rooms, err)
	for _, r := range rooms {
		affs, err := st.RoomAffiliations(ctx, r.JID)
		put(r.JID+" affiliations", affs, err)
	}
	reports, err := st.SpamReports(ctx, "", 0)
	for i := range reports {
		reports[i].ID = 0 // assigned afresh by the target
	}
	put("spam reports", reports, err)
	return d
}

func TestDBCopy(t *testing.T) {
	dsn := needPG(t)
	schema := testSchema(t, dsn)
	ctx := context.Background()
	dir := t.TempDir()
	src, err := sqlite.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	owners := fillStore(t, ctx, src)
	want := dump(t, ctx, src, owners)
	// The copy is only verified for tables that have rows: fillStore must
	// write into every table the copier copies.
	for _, table := range copiedTables() {
		if n, err := src.ExportCount(ctx, table); err != nil || n == 0 {
			t.Errorf("fillStore leaves table %s empty (%d rows, err %v): give it rows so that its copy is tested", table, n, err)
		}
	}
	src.Close()

	r := runCLI(t, "", "db", "copy", "--from", dir, "--to", dsn, "--schema", schema)
	okHas(t, r, "verified")
	t.Logf("first copy:\n%s", r.out)
	if !regexpMatch(`archive\s+1204\s+1204\s+1204`, r.out) || !regexpMatch(`muc_rooms\s+2\s+2\s+2`, r.out) ||
		!regexpMatch(`muc_affiliations\s+3\s+3\s+3`, r.out) || !regexpMatch(`fast_tokens\s+2\s+2\s+2`, r.out) {
		t.Errorf("copy output lacks the archive counts:\n%s", r.out)
	}

	check := func() {
		t.Helper()
		dst, err := pg.Open(ctx, pg.Config{DSN: dsn, Schema: schema})
		if err != nil {
			t.Fatal(err)
		}
		defer dst.Close()
		got := dump(t, ctx, dst, owners)
		for k, w := range want {
			if !reflect.DeepEqual(got[k], w) {
				t.Errorf("%s:\n got %+v\nwant %+v", k, got[k], w)
			}
		}
		// New offline messages get IDs after the copied ones.
		id, err := dst.StoreOffline(ctx, "carol@localhost", []byte("<message/>"), time.Now(), 0)
		if err != nil {
			t.Fatal(err)
		}
		if id <= 4 {
			t.Errorf("new offline message got ID %d, reusing a copied one", id)
		}
		if err := dst.DeleteOffline(ctx, "carol@localhost", id); err != nil {
			t.Fatal(err)
		}
		if _, err := dst.StoreOffline(ctx, "carol@localhost", []byte("<message/>"), time.Date(2026, 3, 14, 15, 9, 26, 535897000, time.UTC), 0); err != nil {
			t.Fatal(err)
		}
	}
	check()
	// carol's queue was rewritten above; the source still has the old ID.
	want["carol@localhost offline"] = nil
	delete(want, "carol@localhost usage")

	r = runCLI(t, "", "db", "copy", "--from", dir, "--to", dsn, "--schema", schema)
	okHas(t, r, "verified")
	t.Logf("second copy:\n%s", r.out)
	for _, table := range copiedTables() {
		if table == "offline" {
			continue // carol's message deleted above is copied again
		}
		if !regexpMatch(`(?m)^\s*`+table+`\s+[0-9]+\s+[0-9]+\s+0\s*$`, r.out) {
			t.Errorf("second copy was not a no-op for %s:\n%s", table, r.out)
		}
	}
	if !regexpMatch(`archive\s+1204\s+1204\s+0`, r.out) || !regexpMatch(`private_xml\s+3\s+3\s+0`, r.out) ||
		!regexpMatch(`push_jobs\s+2\s+2\s+0`, r.out) || !regexpMatch(`muc_affiliations\s+3\s+3\s+0`, r.out) {
		t.Errorf("second copy was not a no-op:\n%s", r.out)
	}
	delete(want, "carol@localhost offline")
	check()
}

// TestCopyCoversEveryTable fails when a migration adds a table that db
// copy neither copies nor lists as derived (rebuilt by the target, or
// describing the database rather than its data), on either backend.
func TestCopyCoversEveryTable(t *testing.T) {
	ctx := context.Background()
	src, err := sqlite.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	seen := map[string]bool{}
	check := func(backend string, tables []string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s tables: %v", backend, err)
		}
		for _, u := range unknownTables(tables) {
			t.Errorf("%s table %s is neither copied by parley db copy (copySteps in cmd/parley/db.go) nor listed in derivedTables", backend, u)
		}
		for _, c := range copiedTables() {
			if !slices.Contains(tables, c) {
				t.Errorf("db copy copies table %s, which %s does not have", c, backend)
			}
		}
		for _, tb := range tables {
			seen[tb] = true
		}
	}
	tables, err := src.Tables(ctx)
	check("SQLite", tables, err)
	if !slices.Contains(tables, "private_xml") || !slices.Contains(tables, "archive_fts") || slices.Contains(tables, "archive_fts_data") {
		t.Errorf("SQLite tables %v: want ordinary and virtual tables, without shadow tables", tables)
	}
	if dsn := needPG(t); dsn != "" {
		dst, err := pg.Open(ctx, pg.Config{DSN: dsn, Schema: testSchema(t, dsn), Migrate: true})
		if err != nil {
			t.Fatal(err)
		}
		defer dst.Close()
		tables, err := dst.Tables(ctx)
		check("PostgreSQL", tables, err)
		if slices.ContainsFunc(tables, func(s string) bool { return s == "archive_default" || regexpMatch(`^archive_p[0-9]{6}$`, s) }) {
			t.Errorf("PostgreSQL tables %v: want partitions left out", tables)
		}
	}
	for d := range derivedTables {
		if !seen[d] {
			t.Errorf("derivedTables lists %s, which no backend has: remove it", d)
		}
	}
}

func regexpMatch(re, s string) bool { return regexp.MustCompile(re).MatchString(s) }

// okHas checks that r succeeded and its output contains want.
func okHas(t *testing.T, r cliResult, want string) {
	t.Helper()
	r.ok(t, "")
	if !strings.Contains(r.out, want) {
		t.Fatalf("stdout %q, want it to contain %q", r.out, want)
	}
}

// TestDBCopyKeepsPrivateXMLAndBookmarks moves a server from SQLite to
// PostgreSQL as docs/production.md tells admins to: what a client stored
// in private XML storage (XEP-0049) and its bookmarks, both the legacy
// ones (XEP-0048) and the PEP ones (XEP-0402), come back over a socket
// from the server running on the copy. (The legacy bookmarks reach PEP
// through the XEP-0411 sync; TestBookmarksCompat covers it.)
func TestDBCopyKeepsPrivateXMLAndBookmarks(t *testing.T) {
	dsn := needPG(t)
	schema := testSchema(t, dsn)
	dir := t.TempDir()
	const (
		nsPrivate = "jabber:iq:private"
		prefs     = "<exodus xmlns='exodus:prefs'><defaultnick>Hamlet</defaultnick></exodus>"
	)
	s1 := testserver.Start(t, func(c *server.Config) { c.DataDir = dir; c.Storage.Backend = "sqlite" })
	juliet := s1.AddUser("juliet", "pw1")
	c := s1.Login("juliet", "pw1", "balcony")
	for _, q := range []string{prefs, "<storage xmlns='storage:bookmarks'><conference name='Council' autojoin='true' jid='council@conference.example'><nick>Jules</nick></conference></storage>"} {
		if r := c.IQ("s", "<iq type='set' id='s'><query xmlns='%s'>%s</query></iq>", nsPrivate, q); r.Type != "result" {
			t.Fatalf("private set: %s", r.Raw)
		}
	}
	read := func(c *testserver.Client) (priv, legacy, pep string) {
		t.Helper()
		priv = string(c.IQ("g1", "<iq type='get' id='g1'><query xmlns='%s'><exodus xmlns='exodus:prefs'/></query></iq>", nsPrivate).Raw)
		legacy = string(c.IQ("g2", "<iq type='get' id='g2'><query xmlns='%s'><storage xmlns='storage:bookmarks'/></query></iq>", nsPrivate).Raw)
		pep = string(c.IQ("g3", "<iq type='get' id='g3' to='%s'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='urn:xmpp:bookmarks:1'/></pubsub></iq>", juliet).Raw)
		return
	}
	priv, legacy, pep := read(c)
	for _, want := range []struct{ got, want string }{{priv, "Hamlet"}, {legacy, "council@conference.example"},
		{pep, "council@conference.example"}, {pep, "Jules"}} {
		if !strings.Contains(want.got, want.want) {
			t.Fatalf("before the copy: %q lacks %q", want.got, want.want)
		}
	}
	c.Close()
	s1.Shutdown(context.Background())

	okHas(t, runCLI(t, "", "db", "copy", "--from", dir, "--to", dsn, "--schema", schema), "verified")

	s2 := testserver.Start(t, func(c *server.Config) {
		c.Storage.Backend = "postgres"
		c.Storage.Postgres.DSN = dsn
		c.Storage.Postgres.Schema = schema
	})
	priv2, legacy2, pep2 := read(s2.Login("juliet", "pw1", "balcony"))
	// Item publication stamps and reply ids aside, the answers are the same.
	for _, p := range []struct{ what, before, after string }{{"private XML", priv, priv2}, {"legacy bookmarks", legacy, legacy2}, {"PEP bookmarks", pep, pep2}} {
		if norm(p.after) != norm(p.before) {
			t.Errorf("%s after the copy:\n got %s\nwant %s", p.what, p.after, p.before)
		}
	}
}

// norm drops the attributes that differ between two servers' answers.
func norm(s string) string {
	return regexp.MustCompile(` (from|to|id)='[^']*'`).ReplaceAllString(s, "")
}
