package storagetest

import (
	"testing"

	"github.com/parley-xmpp/parley/storage"
)

// populate gives bare an account and one record of every kind it can own,
// and returns the roster version after the last roster change.
func populate(t *testing.T, st storage.Store, bare, contact string) string {
	t.Helper()
	ctx := t.Context()
	must(t, "CreateAccount", st.CreateAccount(ctx, bare, []storage.SCRAMCredential{credSHA1, credSHA256}))
	_, err := st.UpsertRosterItem(ctx, bare, storage.RosterItem{JID: contact, Name: "C", Subscription: storage.SubBoth, Groups: []string{"G"}})
	must(t, "UpsertRosterItem", err)
	ver, err := st.UpsertRosterItem(ctx, bare, storage.RosterItem{JID: "extra@example.net", Subscription: storage.SubNone, Ask: true})
	must(t, "UpsertRosterItem", err)
	must(t, "AddPendingIn", st.AddPendingIn(ctx, bare, storage.PendingSubscription{From: contact, Raw: stanza2, Stamp: stamp(0)}))
	_, err = st.StoreOffline(ctx, bare, stanza1, stamp(0), 0)
	must(t, "StoreOffline", err)
	must(t, "SetVCard", st.SetVCard(ctx, bare, vcard1))
	must(t, "Block", st.Block(ctx, bare, []string{contact, "spam@example.org"}))
	return ver
}

// wantPopulated checks that everything populate wrote is still there.
func wantPopulated(t *testing.T, st storage.Store, bare, contact, ver string) {
	t.Helper()
	ctx := t.Context()
	wantCreds(t, st, bare, []storage.SCRAMCredential{credSHA1, credSHA256})
	if v := wantRoster(t, st, bare,
		storage.RosterItem{JID: contact, Name: "C", Subscription: storage.SubBoth, Groups: []string{"G"}},
		storage.RosterItem{JID: "extra@example.net", Subscription: storage.SubNone, Ask: true},
	); v != ver {
		t.Fatalf("roster version of %s = %q, want %q", bare, v, ver)
	}
	p, err := st.PendingIn(ctx, bare)
	must(t, "PendingIn", err)
	wantPending(t, p, []storage.PendingSubscription{{From: contact, Raw: stanza2, Stamp: stamp(0)}})
	msgs, err := st.OfflineMessages(ctx, bare)
	must(t, "OfflineMessages", err)
	if len(msgs) != 1 {
		t.Fatalf("%s has %d offline messages, want 1", bare, len(msgs))
	}
	wantBytes(t, "offline message", msgs[0].Raw, stanza1)
	vc, err := st.VCard(ctx, bare)
	must(t, "VCard", err)
	wantBytes(t, "VCard", vc, vcard1)
	bl, err := st.BlockList(ctx, bare)
	must(t, "BlockList", err)
	if !sameSet(bl, []string{contact, "spam@example.org"}) {
		t.Fatalf("BlockList of %s = %q", bare, bl)
	}
}

// wantEmpty checks that bare owns nothing at all.
func wantEmpty(t *testing.T, st storage.Store, bare string) {
	t.Helper()
	ctx := t.Context()
	ok, err := st.AccountExists(ctx, bare)
	must(t, "AccountExists", err)
	if ok {
		t.Fatalf("account %s still exists", bare)
	}
	_, err = st.Credentials(ctx, bare)
	wantErr(t, "Credentials", err, storage.ErrNotFound)
	wantRoster(t, st, bare)
	p, err := st.PendingIn(ctx, bare)
	must(t, "PendingIn", err)
	if len(p) != 0 {
		t.Fatalf("%s still has pending subscriptions: %+v", bare, p)
	}
	wantCount(t, st, bare, 0)
	_, err = st.VCard(ctx, bare)
	wantErr(t, "VCard", err, storage.ErrNotFound)
	bl, err := st.BlockList(ctx, bare)
	must(t, "BlockList", err)
	if len(bl) != 0 {
		t.Fatalf("%s still has a block list: %q", bare, bl)
	}
}

func testIsolation(t *testing.T, open opener) {
	st := open(t)
	// Each is the other's contact, so rows keyed the wrong way round would
	// show up.
	verA := populate(t, st, "alice@example.com", "bob@example.com")
	wantEmpty(t, st, "bob@example.com")
	verB := populate(t, st, "bob@example.com", "alice@example.com")
	wantPopulated(t, st, "alice@example.com", "bob@example.com", verA)
	wantPopulated(t, st, "bob@example.com", "alice@example.com", verB)
}

func testDeleteAccount(t *testing.T, open opener) {
	st := open(t)
	ctx := t.Context()
	seen := versions{}
	verA := populate(t, st, "alice@example.com", "bob@example.com")
	verB := populate(t, st, "bob@example.com", "alice@example.com")
	seen.add(t, "alice's version", verA)

	must(t, "DeleteAccount", st.DeleteAccount(ctx, "alice@example.com"))
	wantEmpty(t, st, "alice@example.com")
	wantPopulated(t, st, "bob@example.com", "alice@example.com", verB)
	list, err := st.ListAccounts(ctx, "example.com")
	must(t, "ListAccounts", err)
	if len(list) != 1 || list[0] != "bob@example.com" {
		t.Fatalf("ListAccounts after delete = %q", list)
	}
	wantErr(t, "DeleteAccount again", st.DeleteAccount(ctx, "alice@example.com"), storage.ErrNotFound)

	// A new account of the same name starts empty, and its roster versions
	// must not coincide with the old account's: a client still caching the
	// old roster would otherwise be told nothing changed (XEP-0237).
	v, err := st.RosterVersion(ctx, "alice@example.com")
	must(t, "RosterVersion", err)
	seen.add(t, "version after DeleteAccount", v)
	must(t, "CreateAccount again", st.CreateAccount(ctx, "alice@example.com", nil))
	wantRoster(t, st, "alice@example.com")
	for _, c := range []string{"x@example.net", "y@example.net", "z@example.net"} {
		v, err := st.UpsertRosterItem(ctx, "alice@example.com", storage.RosterItem{JID: c, Subscription: storage.SubNone})
		must(t, "UpsertRosterItem", err)
		seen.add(t, "version of re-created account", v)
	}
}
