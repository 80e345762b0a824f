// Package browser tests the web client in a real browser: Debian's
// chromium driven by playwright-core (npm, test/browser/package.json).
// scripts/ensure-browser.sh installs both when missing; without them the
// test skips loudly (PARLEY_INTEROP_REQUIRED=1 makes that a failure).
package browser

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/admin"
	"github.com/parley-xmpp/parley/internal/testserver"
	"github.com/parley-xmpp/parley/storage"
)

func need(t *testing.T) {
	t.Helper()
	skip := func(why string) {
		if os.Getenv("PARLEY_INTEROP_REQUIRED") == "1" {
			t.Fatalf("browser test cannot run: %s (run scripts/ensure-browser.sh)", why)
		}
		t.Skipf("\n*** SKIPPED: browser test: %s (run scripts/ensure-browser.sh) ***", why)
	}
	chromium := os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	if _, err := os.Stat(chromium); err != nil {
		skip("no chromium at " + chromium)
	}
	if _, err := exec.LookPath("node"); err != nil {
		skip("no node")
	}
	if _, err := os.Stat("node_modules/playwright-core"); err != nil {
		skip("playwright-core is not installed in test/browser")
	}
}

// TestWebClientChat: two users log in through the embedded Converse.js
// page, exchange messages over the server's WebSocket, and one sees the
// history from the archive (MAM) after reopening the page with an empty
// browser store. The screenshot goes to docs/webclient.png (README).
func TestWebClientChat(t *testing.T) {
	need(t)
	ts := testserver.Start(t)
	ts.AddUser("alice", "alice-pw")
	ts.AddUser("bob", "bob-pw")
	ctx := t.Context()
	for _, p := range [][2]string{{"alice@localhost", "bob@localhost"}, {"bob@localhost", "alice@localhost"}} {
		name := strings.SplitN(p[1], "@", 2)[0]
		if _, err := ts.Store().UpsertRosterItem(ctx, p[0], storage.RosterItem{JID: p[1], Name: name, Subscription: storage.SubBoth}); err != nil {
			t.Fatal(err)
		}
	}
	shot := filepath.Join(t.TempDir(), "webclient.png")
	cctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(cctx, "node", "chat.mjs", "http://"+ts.Addr("http"), shot)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "ok") {
		t.Fatalf("browser chat failed: %v\n%s", err, out)
	}
	png, err := os.ReadFile(shot)
	if err != nil || len(png) < 10000 {
		t.Fatalf("screenshot missing or empty: %v", err)
	}
	// Keep it for the README when asked (the committed one is regenerated
	// with PARLEY_UPDATE_SCREENSHOT=1).
	if os.Getenv("PARLEY_UPDATE_SCREENSHOT") == "1" {
		if err := os.WriteFile("../../docs/webclient.png", png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestInvitationInBrowser: someone without an XMPP app opens an
// invitation link in chromium, creates the account on the page, logs in
// to the web client with it and finds the inviter among the contacts.
// The page's screenshot goes to docs/invite.png with
// PARLEY_UPDATE_SCREENSHOT=1.
func TestInvitationInBrowser(t *testing.T) {
	need(t)
	ts := testserver.Start(t)
	ts.AddUser("romeo", "romeo-pw")
	inv, err := ts.Admin().CreateInvite(t.Context(), admin.InviteRequest{Domain: "localhost", Inviter: "romeo@localhost"})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(cctx, "node", "invite.mjs", "http://"+ts.Addr("http"), "/invite/"+inv.Token, "romeo", dir).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "ok") {
		t.Fatalf("invitation in the browser failed: %v\n%s", err, out)
	}
	if ok, _ := ts.Store().AccountExists(t.Context(), "juliet@localhost"); !ok {
		t.Fatal("the account was not created")
	}
	if os.Getenv("PARLEY_UPDATE_SCREENSHOT") == "1" {
		png, err := os.ReadFile(filepath.Join(dir, "invite.png"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile("../../docs/invite.png", png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestWebClientGroupChat: in the embedded Converse.js page alice creates
// a room from the "Add groupchat" dialog and writes in it, bob joins and
// gets the history, they talk, and bob finds both messages again after
// reopening the page with an empty browser store. The page sends nothing
// to other servers (Converse's default room search service is a public
// one).
func TestWebClientGroupChat(t *testing.T) {
	need(t)
	ts := testserver.Start(t)
	ts.AddUser("alice", "alice-pw")
	ts.AddUser("bob", "bob-pw")
	cctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(cctx, "node", "muc.mjs", "http://"+ts.Addr("http"), "lobby@conference.localhost").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "ok") {
		t.Fatalf("group chat in the browser failed: %v\n%s", err, out)
	}
}
