package e2e

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/internal/testserver"
	"github.com/parley-xmpp/parley/storage"
	"github.com/parley-xmpp/parley/wire"
)

const nsLast = "jabber:iq:last"

func lastSeconds(t *testing.T, r *wire.Stanza) (int, string) {
	t.Helper()
	q := r.Child(nsLast, "query")
	if r.Type != "result" || q == nil {
		t.Fatalf("last activity: %s", r.Raw)
	}
	n, err := strconv.Atoi(q.AttrValue("seconds"))
	if err != nil {
		t.Fatalf("seconds %q: %s", q.AttrValue("seconds"), r.Raw)
	}
	return n, q.Text()
}

// TestLastActivity: server uptime for anyone; a contact who sees alice's
// presence learns when she logged out and her last status; a stranger
// gets forbidden, asking the bare or a full JID.
func TestLastActivity(t *testing.T) {
	t.Parallel()
	ts := testserver.Start(t)
	alice := ts.AddUser("alice", "pw1")
	bob := ts.AddUser("bob", "pw2")
	ts.AddUser("mallory", "pw3")
	a := ts.Login("alice", "pw1", "phone")
	b := ts.Login("bob", "pw2", "desk")
	m := ts.Login("mallory", "pw3", "x")
	a.Send("<presence/>")
	b.Send("<presence/>")
	subscribe(t, a, b, alice, bob)

	for _, c := range []*testserver.Client{a, m} {
		if n, _ := lastSeconds(t, c.IQ("up", "<iq type='get' id='up' to='localhost'><query xmlns='jabber:iq:last'/></iq>")); n < 0 || n > 60 {
			t.Fatalf("uptime %d", n)
		}
	}
	if !hasFeature(t, b, "localhost", nsLast) || !hasFeature(t, b, alice, nsLast) {
		t.Fatal("jabber:iq:last not advertised")
	}

	// Online: 0 seconds.
	if n, text := lastSeconds(t, b.IQ("l1", "<iq type='get' id='l1' to='%s'><query xmlns='jabber:iq:last'/></iq>", alice)); n != 0 || text != "" {
		t.Fatalf("online user: %d %q", n, text)
	}
	// A stranger learns nothing, on the bare JID or a full one.
	assertStanzaError(t, m.IQ("l2", "<iq type='get' id='l2' to='%s'><query xmlns='jabber:iq:last'/></iq>", alice), wire.ErrForbidden)
	assertStanzaError(t, m.IQ("l3", "<iq type='get' id='l3' to='%s'><query xmlns='jabber:iq:last'/></iq>", a.JID), wire.ErrForbidden)
	a.ExpectNone("a stranger's query", 200*time.Millisecond, func(s *wire.Stanza) bool { return s.Child(nsLast, "query") != nil })
	// A contact's query to the full JID reaches the client.
	b.Send("<iq type='get' id='l4' to='%s'><query xmlns='jabber:iq:last'/></iq>", a.JID)
	q := a.Expect("query from a contact", func(s *wire.Stanza) bool { return s.ID == "l4" })
	a.Send("<iq type='result' id='l4' to='%s'><query xmlns='jabber:iq:last' seconds='7'/></iq>", q.From)
	if n, _ := lastSeconds(t, b.Expect("idle time", func(s *wire.Stanza) bool { return s.ID == "l4" })); n != 7 {
		t.Fatalf("idle time %d", n)
	}

	// alice leaves with a status.
	a.Send("<presence type='unavailable'><status>Heading Home</status></presence>")
	b.Expect("alice unavailable", testserver.PresenceFrom(a.JID, "unavailable"))
	a.Close()
	n, text := lastSeconds(t, b.IQ("l5", "<iq type='get' id='l5' to='%s'><query xmlns='jabber:iq:last'/></iq>", alice))
	if n > 30 || text != "Heading Home" {
		t.Fatalf("after logout: %d %q", n, text)
	}
	assertStanzaError(t, m.IQ("l6", "<iq type='get' id='l6' to='%s'><query xmlns='jabber:iq:last'/></iq>", alice), wire.ErrForbidden)

	// A dropped connection counts as a logout too, without a status.
	a2 := ts.Login("alice", "pw1", "laptop")
	a2.Send("<presence/>")
	b.Expect("alice back", testserver.PresenceFrom(a2.JID, ""))
	a2.Drop()
	b.Expect("alice gone", testserver.PresenceFrom(a2.JID, "unavailable"))
	if n, text := lastSeconds(t, b.IQ("l7", "<iq type='get' id='l7' to='%s'><query xmlns='jabber:iq:last'/></iq>", alice)); n > 2 || text != "" {
		t.Fatalf("after a dropped connection: %d %q", n, text)
	}
	// Never online: item-not-found, to a contact allowed to ask.
	carol := ts.AddUser("carol", "pw4")
	if _, err := ts.Store().UpsertRosterItem(context.Background(), carol, storage.RosterItem{JID: bob, Subscription: storage.SubFrom}); err != nil {
		t.Fatal(err)
	}
	assertStanzaError(t, b.IQ("l8", "<iq type='get' id='l8' to='%s'><query xmlns='jabber:iq:last'/></iq>", carol), wire.ErrItemNotFound)
	assertStanzaError(t, m.IQ("l9", "<iq type='get' id='l9' to='%s'><query xmlns='jabber:iq:last'/></iq>", carol), wire.ErrForbidden)
	// carol's roster lets bob see her presence, not her see his: she may
	// not ask about him.
	c := ts.Login("carol", "pw4", "x")
	assertStanzaError(t, c.IQ("l10", "<iq type='get' id='l10' to='%s'><query xmlns='jabber:iq:last'/></iq>", bob), wire.ErrForbidden)
}
