package interop

import (
	"context"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/parley-xmpp/parley/internal/testserver"
	"github.com/parley-xmpp/parley/server"
)

// TestSlixmppAdHoc: a stock client's XEP-0050 support (slixmpp xep_0050)
// lists and runs the XEP-0133 commands as an admin, creates an XEP-0401
// invitation, and is refused the admin commands as a normal user.
func TestSlixmppAdHoc(t *testing.T) {
	slixmppAvailable(t)
	ts := testserver.Start(t, func(c *server.Config) { c.Admins = []string{"boss@localhost"} })
	ts.AddUser("boss", "boss-pw")
	ts.AddUser("bob", "bob-pw")
	l := slixmpp
	l.command = func(ctx context.Context, cfg []byte) *exec.Cmd {
		return exec.CommandContext(ctx, pythonPath, "slixmpp/adhoc.py", string(cfg))
	}
	const admin = "http://jabber.org/protocol/admin"
	boss := start(t, ts, l, "boss@localhost/slixmpp", "boss-pw",
		op("commands"),
		op("command", "node", admin+"#add-user", "fields", map[string][]string{
			"accountjid": {"carol@localhost"}, "password": {"carol-pw"}, "password-verify": {"carol-pw"}}),
		op("command", "node", admin+"#get-registered-users-list", "fields", map[string][]string{"max_items": {"none"}}),
		op("command", "node", "urn:xmpp:invite#create-account", "fields", map[string][]string{"username": {"dave"}}),
	)
	bob := start(t, ts, l, "bob@localhost/slixmpp", "bob-pw",
		op("commands"),
		op("command", "node", admin+"#delete-user", "fields", map[string][]string{"accountjids": {"boss@localhost"}}),
	)
	evs := finish(t, boss, bob)
	var nodes []string
	var results []event
	for _, e := range evs[0] {
		switch e.Event {
		case "commands":
			nodes = e.Nodes
		case "command", "command_error":
			results = append(results, e)
		}
	}
	if !slices.Contains(nodes, admin+"#add-user") || !slices.Contains(nodes, "urn:xmpp:invite#create-account") {
		t.Fatalf("admin's command list: %q\n%s", nodes, boss.transcript())
	}
	if len(results) != 3 || results[0].Status != "completed" || results[1].Status != "completed" || results[2].Status != "completed" {
		t.Fatalf("admin's commands:\n%s", boss.transcript())
	}
	if !slices.Contains(results[1].Values["registereduserjids"], "carol@localhost") {
		t.Fatalf("registered users: %v", results[1].Values)
	}
	if uri := results[2].Values["uri"]; len(uri) != 1 || !strings.HasPrefix(uri[0], "xmpp:dave@localhost?register;preauth=") {
		t.Fatalf("invitation: %v", results[2].Values)
	}
	ts.Login("carol", "carol-pw", "") // the account slixmpp created works

	for _, e := range evs[1] {
		if e.Event == "commands" && slices.ContainsFunc(e.Nodes, func(n string) bool { return strings.HasPrefix(n, admin) }) {
			t.Fatalf("a user sees admin commands: %q", e.Nodes)
		}
	}
	denied, ok := find(evs[1], func(e event) bool { return e.Event == "command_error" })
	if !ok || denied.Condition != "forbidden" {
		t.Fatalf("non-admin running delete-user:\n%s", bob.transcript())
	}
	if ok, _ := ts.Store().AccountExists(t.Context(), "boss@localhost"); !ok {
		t.Fatal("a non-admin deleted an account")
	}
}
