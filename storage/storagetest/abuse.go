package storagetest

import (
	"slices"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/storage"
)

// testAbuse covers suspensions, spam reports, account settings and the
// per-account byte usage behind quotas.
func testAbuse(t *testing.T, open opener) {
	t.Run("Suspensions", func(t *testing.T) {
		st := open(t)
		ctx := t.Context()
		must(t, "CreateAccount", st.CreateAccount(ctx, "mallory@example.com", nil))
		must(t, "CreateAccount", st.CreateAccount(ctx, "alice@example.com", nil))
		wantErr(t, "SuspendAccount unknown", st.SuspendAccount(ctx, storage.Suspension{Account: "nobody@example.com", Since: stamp(0)}),
			storage.ErrNotFound)
		_, err := st.AccountSuspension(ctx, "mallory@example.com")
		wantErr(t, "AccountSuspension before", err, storage.ErrNotFound)

		forever := storage.Suspension{Account: "mallory@example.com", Reason: "spam — 広告", By: "admin@example.com", Since: stamp(0)}
		must(t, "SuspendAccount", st.SuspendAccount(ctx, forever))
		got, err := st.AccountSuspension(ctx, "mallory@example.com")
		must(t, "AccountSuspension", err)
		wantSuspension(t, got, forever)
		if !got.Active(stamp(1 << 30)) {
			t.Fatal("a suspension without end is not active")
		}
		// Suspending again replaces: a time limit now.
		limited := storage.Suspension{Account: "mallory@example.com", Reason: "", By: "cli", Since: stamp(10), Until: stamp(3600)}
		must(t, "SuspendAccount again", st.SuspendAccount(ctx, limited))
		got, err = st.AccountSuspension(ctx, "mallory@example.com")
		must(t, "AccountSuspension", err)
		wantSuspension(t, got, limited)
		if !got.Active(stamp(3599)) || got.Active(stamp(3600)) {
			t.Fatal("Active ignores Until")
		}
		alice := storage.Suspension{Account: "alice@example.com", By: "cli", Since: stamp(5)}
		must(t, "SuspendAccount alice", st.SuspendAccount(ctx, alice))
		list, err := st.ListSuspensions(ctx)
		must(t, "ListSuspensions", err)
		if len(list) != 2 || list[0].Account != "alice@example.com" || list[1].Account != "mallory@example.com" {
			t.Fatalf("ListSuspensions = %+v", list)
		}
		must(t, "UnsuspendAccount", st.UnsuspendAccount(ctx, "alice@example.com"))
		wantErr(t, "UnsuspendAccount again", st.UnsuspendAccount(ctx, "alice@example.com"), storage.ErrNotFound)
		_, err = st.AccountSuspension(ctx, "alice@example.com")
		wantErr(t, "AccountSuspension lifted", err, storage.ErrNotFound)
		// The suspension goes with the account, and a new account of the
		// same name is not suspended.
		must(t, "DeleteAccount", st.DeleteAccount(ctx, "mallory@example.com"))
		must(t, "CreateAccount again", st.CreateAccount(ctx, "mallory@example.com", nil))
		_, err = st.AccountSuspension(ctx, "mallory@example.com")
		wantErr(t, "AccountSuspension after delete", err, storage.ErrNotFound)
	})

	t.Run("SpamReports", func(t *testing.T) {
		st := open(t)
		ctx := t.Context()
		r1 := storage.SpamReport{Reporter: "alice@example.com", Reported: "spammer@evil.example", Reason: storage.ReportSpam,
			Text: "buy <now> & \"save\"", StanzaIDs: []string{"id-1", "id-2"}, Created: stamp(0)}
		r2 := storage.SpamReport{Reporter: "bob@example.com", Reported: "spammer@evil.example", Reason: storage.ReportAbuse, Created: stamp(10)}
		r3 := storage.SpamReport{Reporter: "alice@example.com", Reported: "troll@example.net", Reason: storage.ReportSpam, Created: stamp(20)}
		r4 := storage.SpamReport{Reporter: "alice@example.com", Reported: "spammer@evil.example", Reason: storage.ReportSpam, Created: stamp(30)}
		var ids []int64
		for _, r := range []storage.SpamReport{r1, r2, r3} {
			id, err := st.AddSpamReport(ctx, r, 3)
			must(t, "AddSpamReport", err)
			if slices.Contains(ids, id) {
				t.Fatalf("AddSpamReport returned id %d twice", id)
			}
			ids = append(ids, id)
		}
		_, err := st.AddSpamReport(ctx, r4, 2)
		wantErr(t, "AddSpamReport over the reporter's limit", err, storage.ErrQuotaExceeded)
		_, err = st.AddSpamReport(ctx, r4, 0)
		must(t, "AddSpamReport without limit", err)

		about, err := st.SpamReports(ctx, "spammer@evil.example", 0)
		must(t, "SpamReports", err)
		if len(about) != 3 || about[0].Created != stamp(30).UTC() && !about[0].Created.Equal(stamp(30)) {
			t.Fatalf("SpamReports(spammer) = %+v", about)
		}
		last := about[2]
		if last.Reporter != r1.Reporter || last.Reason != r1.Reason || last.Text != r1.Text ||
			!slices.Equal(last.StanzaIDs, r1.StanzaIDs) || !last.Created.Equal(r1.Created) || last.ID != ids[0] {
			t.Fatalf("oldest report = %+v, want %+v", last, r1)
		}
		if len(about[1].StanzaIDs) != 0 {
			t.Fatalf("report without stanza ids has %q", about[1].StanzaIDs)
		}
		all, err := st.SpamReports(ctx, "", 2)
		must(t, "SpamReports all, limit 2", err)
		if len(all) != 2 || !all[0].Created.Equal(stamp(30)) || !all[1].Created.Equal(stamp(20)) {
			t.Fatalf("SpamReports(all, 2) = %+v", all)
		}
		counts, err := st.SpamReportCounts(ctx, 0)
		must(t, "SpamReportCounts", err)
		if len(counts) != 2 || counts[0].Reported != "spammer@evil.example" || counts[0].Reports != 3 || counts[0].Reporters != 2 ||
			!counts[0].Last.Equal(stamp(30)) || counts[1].Reported != "troll@example.net" || counts[1].Reporters != 1 {
			t.Fatalf("SpamReportCounts = %+v", counts)
		}
		// Reports made by an account go with it; reports about others stay.
		must(t, "CreateAccount", st.CreateAccount(ctx, "bob@example.com", nil))
		must(t, "DeleteAccount", st.DeleteAccount(ctx, "bob@example.com"))
		about, err = st.SpamReports(ctx, "spammer@evil.example", 0)
		must(t, "SpamReports", err)
		if len(about) != 2 {
			t.Fatalf("after deleting a reporter: %d reports, want 2", len(about))
		}
		n, err := st.DeleteSpamReports(ctx, "spammer@evil.example")
		must(t, "DeleteSpamReports", err)
		if n != 2 {
			t.Fatalf("DeleteSpamReports = %d, want 2", n)
		}
		counts, err = st.SpamReportCounts(ctx, 0)
		must(t, "SpamReportCounts", err)
		if len(counts) != 1 {
			t.Fatalf("SpamReportCounts after delete = %+v", counts)
		}
	})

	t.Run("AccountSettings", func(t *testing.T) {
		st := open(t)
		ctx := t.Context()
		must(t, "CreateAccount", st.CreateAccount(ctx, "alice@example.com", nil))
		_, err := st.AccountSetting(ctx, "alice@example.com", "block_strangers")
		wantErr(t, "AccountSetting unset", err, storage.ErrNotFound)
		must(t, "SetAccountSetting", st.SetAccountSetting(ctx, "alice@example.com", "block_strangers", "true"))
		must(t, "SetAccountSetting", st.SetAccountSetting(ctx, "alice@example.com", "note", "é <x/>"))
		must(t, "SetAccountSetting other", st.SetAccountSetting(ctx, "bob@example.com", "block_strangers", "false"))
		must(t, "SetAccountSetting replace", st.SetAccountSetting(ctx, "alice@example.com", "note", "second"))
		v, err := st.AccountSetting(ctx, "alice@example.com", "note")
		must(t, "AccountSetting", err)
		if v != "second" {
			t.Fatalf("AccountSetting = %q", v)
		}
		all, err := st.AccountSettingsOf(ctx, "alice@example.com")
		must(t, "AccountSettingsOf", err)
		if len(all) != 2 || all["block_strangers"] != "true" || all["note"] != "second" {
			t.Fatalf("AccountSettingsOf = %v", all)
		}
		must(t, "SetAccountSetting delete", st.SetAccountSetting(ctx, "alice@example.com", "note", ""))
		_, err = st.AccountSetting(ctx, "alice@example.com", "note")
		wantErr(t, "AccountSetting deleted", err, storage.ErrNotFound)
		must(t, "DeleteAccount", st.DeleteAccount(ctx, "alice@example.com"))
		all, err = st.AccountSettingsOf(ctx, "alice@example.com")
		must(t, "AccountSettingsOf after delete", err)
		if len(all) != 0 {
			t.Fatalf("settings survived DeleteAccount: %v", all)
		}
		if v, err := st.AccountSetting(ctx, "bob@example.com", "block_strangers"); err != nil || v != "false" {
			t.Fatalf("other account's setting = %q, %v", v, err)
		}
	})

	t.Run("Usage", func(t *testing.T) { testUsage(t, open) })
}

func wantSuspension(t *testing.T, got, want storage.Suspension) {
	t.Helper()
	if got.Account != want.Account || got.Reason != want.Reason || got.By != want.By || !got.Since.Equal(want.Since) ||
		!got.Until.Equal(want.Until) || got.Until.IsZero() != want.Until.IsZero() {
		t.Fatalf("suspension = %+v, want %+v", got, want)
	}
}

// testUsage follows the byte counters through every write path.
func testUsage(t *testing.T, open opener) {
	st := open(t)
	ctx := t.Context()
	const alice, bob = "alice@example.com", "bob@example.com"
	must(t, "CreateAccount", st.CreateAccount(ctx, alice, nil))
	want := storage.Usage{}
	check := func(what string) {
		t.Helper()
		got, err := st.AccountUsage(ctx, alice)
		must(t, "AccountUsage", err)
		if got != want {
			t.Fatalf("%s: usage = %+v, want %+v", what, got, want)
		}
	}
	check("empty")
	// Multi-byte characters count in bytes, not characters.
	_, err := st.StoreOffline(ctx, alice, stanza1, stamp(0), 0)
	must(t, "StoreOffline", err)
	id2, err := st.StoreOffline(ctx, alice, stanza2, stamp(1), 0)
	must(t, "StoreOffline", err)
	_, err = st.StoreOffline(ctx, bob, stanza2, stamp(1), 0)
	must(t, "StoreOffline bob", err)
	want.Offline = int64(len(stanza1) + len(stanza2))
	check("offline stored")
	must(t, "DeleteOffline", st.DeleteOffline(ctx, alice, id2))
	want.Offline = 0
	check("offline delivered")

	must(t, "SetPrivateXML", st.SetPrivateXML(ctx, alice, "urn:a", vcard1))
	must(t, "SetPrivateXML", st.SetPrivateXML(ctx, alice, "urn:b", vcard2))
	want.Private = int64(len(vcard1) + len(vcard2))
	check("private stored")
	must(t, "SetPrivateXML replace", st.SetPrivateXML(ctx, alice, "urn:a", vcard2))
	want.Private = int64(2 * len(vcard2))
	check("private replaced")

	node := storage.PEPNode{Name: "urn:n", Config: map[string][]string{}, Created: stamp(0)}
	must(t, "CreatePEPNode", st.CreatePEPNode(ctx, alice, node))
	for i, p := range [][]byte{vcard1, vcard2, stanza1} {
		_, err := st.PublishPEPItem(ctx, alice, "urn:n", storage.PEPItem{ID: string(rune('a' + i)), Payload: p, Publisher: alice, Stamp: stamp(i)}, 2)
		must(t, "PublishPEPItem", err)
	}
	want.PEP = int64(len(vcard2) + len(stanza1)) // trimmed to 2 items
	check("PEP published and trimmed")
	_, err = st.PublishPEPItem(ctx, alice, "urn:n", storage.PEPItem{ID: "c", Payload: stanza2, Publisher: alice, Stamp: stamp(9)}, 2)
	must(t, "PublishPEPItem replace", err)
	want.PEP = int64(len(vcard2) + len(stanza2))
	check("PEP item replaced")
	must(t, "RetractPEPItem", st.RetractPEPItem(ctx, alice, "urn:n", "b"))
	want.PEP = int64(len(stanza2))
	check("PEP item retracted")
	must(t, "DeletePEPNode", st.DeletePEPNode(ctx, alice, "urn:n"))
	want.PEP = 0
	check("PEP node deleted")

	var total int64
	for i := range 10 {
		raw := append(append([]byte{}, stanza1...), byte('0'+i))
		_, err := st.AppendArchive(ctx, alice, storage.ArchivedMessage{With: bob, Timestamp: stamp(100 + i), FromFull: bob + "/r", Raw: raw})
		must(t, "AppendArchive", err)
		total += int64(len(raw))
	}
	want.Archive = total
	check("archived")
	// Trimming keeps the newest messages that fit.
	per := int64(len(stanza1) + 1)
	n, err := st.TrimArchive(ctx, alice, 3*per+per/2)
	must(t, "TrimArchive", err)
	if n != 7 {
		t.Fatalf("TrimArchive deleted %d messages, want 7", n)
	}
	want.Archive = 3 * per
	check("archive trimmed")
	page, err := st.QueryArchive(ctx, alice, storage.ArchiveQuery{Max: 10})
	must(t, "QueryArchive", err)
	if len(page.Messages) != 3 || !page.Messages[0].Timestamp.Equal(stamp(107)) {
		t.Fatalf("after TrimArchive the archive holds %d messages from %v", len(page.Messages), page.Messages)
	}
	n, err = st.TrimArchive(ctx, alice, 3*per)
	must(t, "TrimArchive within quota", err)
	if n != 0 {
		t.Fatalf("TrimArchive within quota deleted %d", n)
	}
	_, err = st.DeleteArchiveBefore(ctx, stamp(109), 0)
	must(t, "DeleteArchiveBefore", err)
	want.Archive = per
	check("retention")

	must(t, "DeleteAccount", st.DeleteAccount(ctx, alice))
	want = storage.Usage{}
	check("deleted")
	got, err := st.AccountUsage(ctx, bob)
	must(t, "AccountUsage bob", err)
	if got.Offline != int64(len(stanza2)) {
		t.Fatalf("bob's usage = %+v", got)
	}
	_ = time.Second
}
