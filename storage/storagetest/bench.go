package storagetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/storage"
)

// The benchmarks of the hot repository calls, one body for both backends
// so that their figures compare: each backend's BenchmarkX opens a store
// and calls BenchX.

// BenchStoreOffline stores a typical chat message for one of 100 owners.
func BenchStoreOffline(b *testing.B, st storage.Offline) {
	ctx := context.Background()
	raw := []byte(`<message from='romeo@montague.example/orchard' to='juliet@capulet.example' type='chat' id='a1b2c3'>` +
		`<body>Lady, by yonder blessèd moon I vow, that tips with silver all these fruit-tree tops — </body>` +
		`<delay xmlns='urn:xmpp:delay' from='capulet.example' stamp='2024-02-29T13:14:15Z'/></message>`)
	owners := make([]string, 100)
	for i := range owners {
		owners[i] = fmt.Sprintf("user%d@example.com", i)
	}
	now := time.Now()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		// A realistic quota keeps the count query in the measured path.
		if _, err := st.StoreOffline(ctx, owners[i%len(owners)], raw, now, 1<<20); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchRosterItems reads a roster of 100 contacts in groups.
func BenchRosterItems(b *testing.B, st storage.Roster) {
	ctx := context.Background()
	const owner = "romeo@montague.example"
	for i := range 100 {
		item := storage.RosterItem{
			JID:          fmt.Sprintf("contact%03d@example.com", i),
			Name:         fmt.Sprintf("Contact %d", i),
			Subscription: storage.SubBoth,
			Groups:       []string{"Friends", fmt.Sprintf("Group %d", i%7)},
		}
		if _, err := st.UpsertRosterItem(ctx, owner, item); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		items, _, err := st.RosterItems(ctx, owner)
		if err != nil || len(items) != 100 {
			b.Fatal(len(items), err)
		}
	}
}

// BenchFindArchivedByOrigin is the resend check of a message whose
// origin-id is new (the common case) with 2,000 of the owner's messages
// inside the dedup window: the lookup must seek the origin-id index, not
// walk the owner's recent rows.
func BenchFindArchivedByOrigin(b *testing.B, st storage.Archive) {
	ctx := context.Background()
	const owner, from = "juliet@capulet.example", "romeo@montague.example/orchard"
	now := time.Now()
	for i := range 2000 {
		msg := storage.ArchivedMessage{With: "romeo@montague.example", WithResource: "orchard", FromFull: from,
			Timestamp: now.Add(time.Duration(i-2000) * time.Millisecond), OriginID: fmt.Sprintf("origin-%d", i),
			Raw: []byte(`<message type='chat'><body>hi</body></message>`)}
		if _, err := st.AppendArchive(ctx, owner, msg); err != nil {
			b.Fatal(err)
		}
	}
	since := now.Add(-5 * time.Minute)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := st.FindArchivedByOrigin(ctx, owner, "origin-new", from, since); !errors.Is(err, storage.ErrNotFound) {
			b.Fatal(err)
		}
	}
}
