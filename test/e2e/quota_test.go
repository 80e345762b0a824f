package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/internal/testserver"
	"github.com/parley-xmpp/parley/server"
	"github.com/parley-xmpp/parley/storage"
	"github.com/parley-xmpp/parley/wire"
)

// TestAccountQuotas (issue 16): per-account byte quotas for offline
// messages, private XML (bytes and namespaces), PEP items and the archive,
// over real sockets. Writes beyond a quota get resource-constraint; the
// archive drops its oldest messages instead.
func TestAccountQuotas(t *testing.T) {
	t.Parallel()
	ts := testserver.Start(t, func(c *server.Config) {
		c.Limits.MaxOfflineBytes = 4096
		c.Limits.MaxPrivateBytes = 2048
		c.Limits.MaxPrivateNamespaces = 3
		c.Limits.MaxPEPBytes = 4096
		c.Limits.MaxArchiveBytes = 16 << 10
	})
	alice := ts.AddUser("alice", "pw1")
	bob := ts.AddUser("bob", "pw2")
	a := ts.Login("alice", "pw1", "phone")
	a.Send("<presence/>")
	ctx := context.Background()
	text := strings.Repeat("x", 900)

	// Offline: bob is away; about four messages fit.
	// Each message is either refused or stored before the next is sent:
	// poll for whichever happens (a fixed 300 ms wait for the error missed
	// late refusals on a loaded machine, and the next message was sent).
	refusedAt := -1
	var u storage.Usage
	for i := 0; i < 10 && refusedAt < 0; i++ {
		id := fmt.Sprintf("off%d", i)
		a.Send("<message to='%s' type='chat' id='%s'><body>%d %s</body></message>", bob, id, i, text)
		stored := u.Offline
		for deadline := time.Now().Add(10 * time.Second); u.Offline == stored; {
			if e, ok := waitFor(a, 50*time.Millisecond, func(s *wire.Stanza) bool { return s.ID == id && s.Type == "error" }); ok {
				assertStanzaError(t, e, "resource-constraint")
				refusedAt = i
				break
			}
			var err error
			if u, err = ts.Store().AccountUsage(ctx, bob); err != nil {
				t.Fatal(err)
			}
			if time.Now().After(deadline) {
				t.Fatalf("offline message %d neither refused nor stored within 10s", i)
			}
		}
	}
	if refusedAt < 2 || u.Offline > 4096 {
		t.Fatalf("offline quota: first refusal at message %d, %d bytes stored", refusedAt, u.Offline)
	}

	// Private XML: three namespaces, then no fourth; replacing is fine; a
	// replacement beyond the bytes is refused.
	store := func(id, ns, content string) *wire.Stanza {
		return a.IQ(id, "<iq type='set' id='%s'><query xmlns='jabber:iq:private'><x xmlns='%s'>%s</x></query></iq>", id, ns, content)
	}
	for i := range 3 {
		if r := store(fmt.Sprintf("pv%d", i), fmt.Sprintf("urn:example:%d", i), "small"); r.Type != "result" {
			t.Fatalf("private %d: %s", i, r.Raw)
		}
	}
	assertStanzaError(t, store("pv3", "urn:example:3", "small"), "resource-constraint")
	if r := store("pv4", "urn:example:1", "replaced"); r.Type != "result" {
		t.Fatalf("replacing private XML: %s", r.Raw)
	}
	assertStanzaError(t, store("pv5", "urn:example:2", strings.Repeat("y", 2100)), "resource-constraint")

	// PEP: items of ~900 bytes until the quota; replacing one still works.
	publish := func(id, item string) *wire.Stanza {
		return a.IQ(id, "<iq type='set' id='%s'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='urn:example:big'>"+
			"<item id='%s'><data xmlns='urn:example'>%s</data></item></publish>%s</pubsub></iq>", id, item, text,
			publishOptions([2]string{"pubsub#max_items", "100"}))
	}
	n := 0
	for ; n < 10; n++ {
		r := publish(fmt.Sprintf("pub%d", n), fmt.Sprintf("i%d", n))
		if r.Type == "error" {
			assertStanzaError(t, r, "resource-constraint")
			break
		}
	}
	if u, _ := ts.Store().AccountUsage(ctx, alice); n < 3 || n == 10 || u.PEP > 4096 {
		t.Fatalf("PEP quota: %d items published, %d bytes", n, u.PEP)
	}
	if r := publish("pubr", "i0"); r.Type != "result" {
		t.Fatalf("replacing an item at the quota: %s", r.Raw)
	}

	// Archive: alice's archive stays within 16 KiB, keeping the newest.
	b := ts.Login("bob", "pw2", "desk")
	b.Send("<presence/>")
	for i := range 60 {
		a.Send("<message to='%s' type='chat'><body>arch %d %s</body></message>", bob, i, text)
	}
	b.Expect("last message", func(s *wire.Stanza) bool {
		return s.Name == "message" && strings.HasPrefix(s.Child(wire.NSClient, "body").Text(), "arch 59 ")
	})
	deadline := time.Now().Add(testserver.Timeout)
	for {
		u, err := ts.Store().AccountUsage(ctx, alice)
		if err != nil {
			t.Fatal(err)
		}
		if u.Archive <= 16<<10 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("alice's archive holds %d bytes, quota 16 KiB", u.Archive)
		}
		time.Sleep(20 * time.Millisecond)
	}
	page, err := ts.Store().QueryArchive(ctx, alice, storage.ArchiveQuery{Last: true, Max: 1})
	if err != nil || len(page.Messages) != 1 || !strings.Contains(string(page.Messages[0].Raw), "arch 59 ") {
		t.Fatalf("newest message after trimming: %+v %v", page.Messages, err)
	}
}
