package storagetest

import (
	"cmp"
	"slices"
	"testing"

	"github.com/parley-xmpp/parley/storage"
)

func itemEqual(a, b storage.RosterItem) bool {
	// nil and empty Groups both mean "no groups".
	return a.JID == b.JID && a.Name == b.Name && a.Subscription == b.Subscription &&
		a.Ask == b.Ask && a.Approved == b.Approved && slices.Equal(a.Groups, b.Groups)
}

func wantItem(t *testing.T, st storage.Store, owner string, want storage.RosterItem) {
	t.Helper()
	got, err := st.RosterItem(t.Context(), owner, want.JID)
	must(t, "RosterItem "+want.JID, err)
	if !itemEqual(got, want) {
		t.Fatalf("RosterItem %s:\n got %+v\nwant %+v", want.JID, got, want)
	}
}

// wantRoster checks the whole roster, in any order, and returns its version.
func wantRoster(t *testing.T, st storage.Store, owner string, want ...storage.RosterItem) string {
	t.Helper()
	got, ver, err := st.RosterItems(t.Context(), owner)
	must(t, "RosterItems", err)
	byJID := func(a, b storage.RosterItem) int { return cmp.Compare(a.JID, b.JID) }
	got, want = slices.Clone(got), slices.Clone(want)
	slices.SortFunc(got, byJID)
	slices.SortFunc(want, byJID)
	if !slices.EqualFunc(got, want, itemEqual) {
		t.Fatalf("RosterItems %s:\n got %+v\nwant %+v", owner, got, want)
	}
	return ver
}

func wantVersion(t *testing.T, st storage.Store, owner, want string) {
	t.Helper()
	got, err := st.RosterVersion(t.Context(), owner)
	must(t, "RosterVersion", err)
	if got != want {
		t.Fatalf("RosterVersion %s = %q, want %q", owner, got, want)
	}
}

// versions records every roster version seen and fails on a repeat: a
// reused version would let a client's cache match a different roster.
type versions map[string]bool

func (v versions) add(t *testing.T, what, ver string) {
	t.Helper()
	if ver == "" {
		t.Fatalf("%s: empty roster version", what)
	}
	if v[ver] {
		t.Fatalf("%s: roster version %q repeats an earlier one", what, ver)
	}
	v[ver] = true
}

func testRoster(t *testing.T, open opener) {
	const owner = "romeo@montague.example"
	items := []storage.RosterItem{
		{JID: "juliet@capulet.example", Name: "Juliet", Subscription: storage.SubBoth, Groups: []string{"Friends", "Lovers"}},
		{JID: "nurse@capulet.example", Subscription: storage.SubNone, Ask: true},
		{JID: "benvolio@montague.example", Name: "Ben <& 'co'>", Subscription: storage.SubTo, Approved: true, Groups: []string{"Family"}},
		{JID: "mercutio@verona.example", Name: "Mercutio 🗡", Subscription: storage.SubFrom, Ask: true, Approved: true,
			Groups: []string{"Друзья", "友達", "a, b", "  padded  "}},
		{JID: "friar@verona.example", Name: "", Subscription: storage.SubNone, Groups: []string{}},
	}

	t.Run("Upsert", func(t *testing.T) {
		st := open(t)
		ctx := t.Context()
		seen := versions{}
		empty := wantRoster(t, st, owner)
		seen.add(t, "empty roster", empty)
		for i, it := range items {
			t.Run(it.JID, func(t *testing.T) {
				ver, err := st.UpsertRosterItem(ctx, owner, it)
				must(t, "UpsertRosterItem", err)
				seen.add(t, "UpsertRosterItem", ver)
				wantVersion(t, st, owner, ver)
				wantItem(t, st, owner, it)
				if v := wantRoster(t, st, owner, items[:i+1]...); v != ver {
					t.Fatalf("RosterItems version %q, want %q", v, ver)
				}
			})
		}
	})

	t.Run("Update", func(t *testing.T) {
		cases := []struct {
			name     string
			from, to storage.RosterItem
		}{
			{"subscribe", items[1], storage.RosterItem{JID: items[1].JID, Subscription: storage.SubTo}},
			{"rename and regroup", items[0], storage.RosterItem{JID: items[0].JID, Name: "J.", Subscription: storage.SubBoth, Groups: []string{"Lovers", "Capulets"}}},
			{"drop groups", items[3], storage.RosterItem{JID: items[3].JID, Name: items[3].Name, Subscription: storage.SubFrom}},
			{"set flags", items[4], storage.RosterItem{JID: items[4].JID, Subscription: storage.SubNone, Ask: true, Approved: true, Groups: []string{"New"}}},
			{"clear flags", items[3], storage.RosterItem{JID: items[3].JID, Subscription: storage.SubBoth}},
		}
		st := open(t)
		ctx := t.Context()
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				v1, err := st.UpsertRosterItem(ctx, owner, c.from)
				must(t, "UpsertRosterItem", err)
				v2, err := st.UpsertRosterItem(ctx, owner, c.to)
				must(t, "UpsertRosterItem update", err)
				if v1 == v2 {
					t.Fatalf("version %q did not change on update", v2)
				}
				wantItem(t, st, owner, c.to)
			})
		}
	})

	t.Run("Delete", func(t *testing.T) {
		st := open(t)
		ctx := t.Context()
		seen := versions{}
		for _, it := range items[:3] {
			ver, err := st.UpsertRosterItem(ctx, owner, it)
			must(t, "UpsertRosterItem", err)
			seen.add(t, "UpsertRosterItem", ver)
		}
		ver, err := st.DeleteRosterItem(ctx, owner, items[1].JID)
		must(t, "DeleteRosterItem", err)
		seen.add(t, "DeleteRosterItem", ver)
		wantVersion(t, st, owner, ver)
		_, err = st.RosterItem(ctx, owner, items[1].JID)
		wantErr(t, "RosterItem after delete", err, storage.ErrNotFound)
		wantRoster(t, st, owner, items[0], items[2])

		_, err = st.DeleteRosterItem(ctx, owner, items[1].JID)
		wantErr(t, "DeleteRosterItem again", err, storage.ErrNotFound)
		_, err = st.DeleteRosterItem(ctx, "nobody@example.com", items[1].JID)
		wantErr(t, "DeleteRosterItem without roster", err, storage.ErrNotFound)
		wantVersion(t, st, owner, ver)

		// Re-adding a deleted contact is a change like any other.
		again, err := st.UpsertRosterItem(ctx, owner, items[1])
		must(t, "UpsertRosterItem after delete", err)
		seen.add(t, "UpsertRosterItem after delete", again)
		wantRoster(t, st, owner, items[:3]...)
	})

	t.Run("NotFound", func(t *testing.T) {
		st := open(t)
		ctx := t.Context()
		_, err := st.RosterItem(ctx, owner, items[0].JID)
		wantErr(t, "RosterItem in empty roster", err, storage.ErrNotFound)
		_, err = st.UpsertRosterItem(ctx, owner, items[0])
		must(t, "UpsertRosterItem", err)
		_, err = st.RosterItem(ctx, owner, items[1].JID)
		wantErr(t, "RosterItem of unknown contact", err, storage.ErrNotFound)
		_, err = st.RosterItem(ctx, "juliet@capulet.example", owner)
		wantErr(t, "RosterItem in someone else's roster", err, storage.ErrNotFound)
	})

	t.Run("VersionStable", func(t *testing.T) {
		st := open(t)
		ctx := t.Context()
		v0, err := st.RosterVersion(ctx, owner)
		must(t, "RosterVersion", err)
		wantVersion(t, st, owner, v0)

		ver, err := st.UpsertRosterItem(ctx, owner, items[0])
		must(t, "UpsertRosterItem", err)
		if ver == v0 {
			t.Fatalf("first change kept version %q", ver)
		}
		// None of these touch owner's roster items.
		_, _, err = st.RosterItems(ctx, owner)
		must(t, "RosterItems", err)
		_, err = st.RosterItem(ctx, owner, items[0].JID)
		must(t, "RosterItem", err)
		_, err = st.UpsertRosterItem(ctx, "juliet@capulet.example", storage.RosterItem{JID: owner, Subscription: storage.SubBoth})
		must(t, "UpsertRosterItem other owner", err)
		must(t, "AddPendingIn", st.AddPendingIn(ctx, owner, storage.PendingSubscription{From: "tybalt@capulet.example", Raw: stanza2, Stamp: stamp(0)}))
		must(t, "RemovePendingIn", st.RemovePendingIn(ctx, owner, "tybalt@capulet.example"))
		_, err = st.StoreOffline(ctx, owner, stanza1, stamp(0), 0)
		must(t, "StoreOffline", err)
		must(t, "Block", st.Block(ctx, owner, []string{"tybalt@capulet.example"}))
		must(t, "SetVCard", st.SetVCard(ctx, owner, vcard1))
		_, err = st.DeleteRosterItem(ctx, owner, "nobody@example.com")
		wantErr(t, "DeleteRosterItem unknown", err, storage.ErrNotFound)

		wantVersion(t, st, owner, ver)
		if v := wantRoster(t, st, owner, items[0]); v != ver {
			t.Fatalf("RosterItems version %q, want %q", v, ver)
		}
	})
}

func testPendingIn(t *testing.T, open opener) {
	const owner = "juliet@capulet.example"
	pend := func(from string, raw []byte, sec int) storage.PendingSubscription {
		return storage.PendingSubscription{From: from, Raw: raw, Stamp: stamp(sec)}
	}
	type step struct {
		add    *storage.PendingSubscription
		remove string
	}
	add := func(p storage.PendingSubscription) step { return step{add: &p} }
	remove := func(from string) step { return step{remove: from} }

	cases := []struct {
		name  string
		steps []step
		want  []storage.PendingSubscription
	}{
		{"empty", nil, nil},
		{"add two", []step{add(pend("romeo@montague.example", stanza2, 1)), add(pend("paris@verona.example", stanza1, 2))},
			[]storage.PendingSubscription{pend("romeo@montague.example", stanza2, 1), pend("paris@verona.example", stanza1, 2)}},
		{"same contact replaces", []step{add(pend("romeo@montague.example", stanza1, 1)), add(pend("romeo@montague.example", stanza2, 5))},
			[]storage.PendingSubscription{pend("romeo@montague.example", stanza2, 5)}},
		{"remove one", []step{add(pend("romeo@montague.example", stanza2, 1)), add(pend("paris@verona.example", stanza1, 2)), remove("romeo@montague.example")},
			[]storage.PendingSubscription{pend("paris@verona.example", stanza1, 2)}},
		{"remove unknown", []step{add(pend("romeo@montague.example", stanza2, 1)), remove("tybalt@capulet.example")},
			[]storage.PendingSubscription{pend("romeo@montague.example", stanza2, 1)}},
		{"remove all then add", []step{add(pend("romeo@montague.example", stanza2, 1)), remove("romeo@montague.example"), add(pend("paris@verona.example", stanza1, 3))},
			[]storage.PendingSubscription{pend("paris@verona.example", stanza1, 3)}},
		{"empty raw", []step{add(pend("romeo@montague.example", []byte{}, 1))},
			[]storage.PendingSubscription{pend("romeo@montague.example", nil, 1)}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st := open(t)
			ctx := t.Context()
			for _, s := range c.steps {
				if s.add != nil {
					must(t, "AddPendingIn", st.AddPendingIn(ctx, owner, *s.add))
				} else {
					must(t, "RemovePendingIn", st.RemovePendingIn(ctx, owner, s.remove))
				}
			}
			got, err := st.PendingIn(ctx, owner)
			must(t, "PendingIn", err)
			wantPending(t, got, c.want)
			other, err := st.PendingIn(ctx, "romeo@montague.example")
			must(t, "PendingIn other owner", err)
			if len(other) != 0 {
				t.Fatalf("PendingIn leaked into another owner: %+v", other)
			}
		})
	}
}

func wantPending(t *testing.T, got, want []storage.PendingSubscription) {
	t.Helper()
	byFrom := func(a, b storage.PendingSubscription) int { return cmp.Compare(a.From, b.From) }
	got, want = slices.Clone(got), slices.Clone(want)
	slices.SortFunc(got, byFrom)
	slices.SortFunc(want, byFrom)
	if len(got) != len(want) {
		t.Fatalf("PendingIn: got %d requests, want %d: %+v", len(got), len(want), got)
	}
	for i := range got {
		if got[i].From != want[i].From || !got[i].Stamp.Equal(want[i].Stamp) {
			t.Fatalf("PendingIn[%d] = {%s %v}, want {%s %v}", i, got[i].From, got[i].Stamp, want[i].From, want[i].Stamp)
		}
		wantBytes(t, "PendingIn raw", got[i].Raw, want[i].Raw)
	}
}
