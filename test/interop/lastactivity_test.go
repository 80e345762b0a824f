package interop

import (
	"context"
	"testing"

	"github.com/parley-xmpp/parley/internal/testserver"
	"github.com/parley-xmpp/parley/storage"
)

// TestSlixmppLastActivity: slixmpp's xep_0012 plugin asks the server's
// uptime, and when bob (a contact whose presence alice sees) went offline
// and with what status; mallory, a stranger, gets forbidden.
func TestSlixmppLastActivity(t *testing.T) {
	slixmpp.available(t)
	ts := testserver.Start(t)
	alice := ts.AddUser("alice", "alice-pw")
	bob := ts.AddUser("bob", "bob-pw")
	mallory := ts.AddUser("mallory", "mallory-pw")
	if _, err := ts.Store().UpsertRosterItem(context.Background(), bob, storage.RosterItem{JID: alice, Subscription: storage.SubFrom}); err != nil {
		t.Fatal(err)
	}
	b := ts.Login("bob", "bob-pw", "desk")
	b.Send("<presence/>")
	b.Send("<presence type='unavailable'><status>Gone fishing</status></presence>")
	b.Send("<iq type='get' id='sync'><ping xmlns='urn:xmpp:ping'/></iq>")
	b.Expect("sync", testserver.Is("iq", "result"))
	b.Close()

	a := start(t, ts, slixmpp, alice+"/s", "alice-pw",
		op("last_activity", "to", "localhost"),
		op("last_activity", "to", bob))
	m := start(t, ts, slixmpp, mallory+"/s", "mallory-pw", op("last_activity", "to", bob))
	evs := finish(t, a, m)
	var got []event
	for _, e := range evs[0] {
		if e.Event == "last_activity" {
			got = append(got, e)
		}
	}
	if len(got) != 2 || got[0].Condition != "" || got[0].Seconds < 0 || got[0].Seconds > 60 {
		t.Fatalf("alice's answers: %+v", got)
	}
	if got[1].To != bob || got[1].Condition != "" || got[1].Status != "Gone fishing" || got[1].Seconds > 30 {
		t.Fatalf("bob's last activity as alice sees it: %+v", got[1])
	}
	for _, e := range evs[1] {
		if e.Event == "last_activity" && e.Condition != "forbidden" {
			t.Fatalf("mallory got %+v", e)
		}
	}
	if _, ok := find(evs[1], func(e event) bool { return e.Event == "last_activity" }); !ok {
		t.Fatal("mallory's query got no answer")
	}
}
