package interop

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/internal/testserver"
	"github.com/parley-xmpp/parley/storage"
	"github.com/parley-xmpp/parley/wire"
)

// profanity runs Debian's profanity (a terminal client on libstrophe) in
// a tmux session of its own, with its own HOME, typed into with
// send-keys and read with capture-pane, as a person uses it.
type profanity struct {
	t       *testing.T
	session string
	env     []string
}

func startProfanity(t *testing.T) *profanity {
	t.Helper()
	for _, bin := range []string{"profanity", "tmux"} {
		if _, err := exec.LookPath(bin); err != nil {
			if os.Getenv("PARLEY_INTEROP_REQUIRED") == "1" {
				t.Fatalf("%s is not installed (apt-get install profanity tmux)", bin)
			}
			t.Skipf("\n*** SKIPPED: %s is not installed (apt-get install profanity tmux) ***", bin)
		}
	}
	home := t.TempDir()
	p := &profanity{t: t, session: fmt.Sprintf("parley-prof-%d-%d", os.Getpid(), time.Now().UnixNano()),
		env: []string{"HOME=" + home, "XDG_CONFIG_HOME=" + filepath.Join(home, ".config"), "XDG_DATA_HOME=" + filepath.Join(home, ".local/share"), "TERM=xterm-256color"}}
	cmd := exec.Command("tmux", "-L", p.session, "new-session", "-d", "-s", p.session, "-x", "200", "-y", "50",
		"env "+strings.Join(p.env, " ")+" profanity")
	cmd.Env = append(os.Environ(), p.env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("tmux: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("profanity's screen:\n%s", p.screen())
		}
		_ = exec.Command("tmux", "-L", p.session, "kill-server").Run()
	})
	p.waitFor("profanity's start screen", "/connect")
	return p
}

// typeLine types text and Enter.
func (p *profanity) typeLine(text string) {
	p.t.Helper()
	if out, err := exec.Command("tmux", "-L", p.session, "send-keys", "-t", p.session, "-l", text).CombinedOutput(); err != nil {
		p.t.Fatalf("send-keys: %v: %s", err, out)
	}
	if out, err := exec.Command("tmux", "-L", p.session, "send-keys", "-t", p.session, "Enter").CombinedOutput(); err != nil {
		p.t.Fatalf("send-keys: %v: %s", err, out)
	}
}

func (p *profanity) screen() string {
	out, _ := exec.Command("tmux", "-L", p.session, "capture-pane", "-p", "-t", p.session, "-S", "-200").Output()
	return string(out)
}

// waitFor polls the screen until it shows text (profanity redraws on its
// own clock; 20 s bounds a slow machine).
func (p *profanity) waitFor(what, text string) {
	p.t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(p.screen(), text); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			p.t.Fatalf("profanity: %s: %q not on the screen within 20s", what, text)
		}
	}
}

// TestProfanity: the README's profanity line logs in (accepting the
// self-signed certificate as the client asks), then the everyday flows:
// a contact is added and chatted with both ways, a group chat is created,
// another user joins and gets its history, and profanity shows what the
// other user says in the room.
func TestProfanity(t *testing.T) {
	ts := testserver.Start(t)
	ts.AddUser("alice", "alice-pw")
	bobBare := ts.AddUser("bob", "bob-pw")
	bob := ts.Login("bob", "bob-pw", "desk")
	bob.Send("<presence/>")

	p := startProfanity(t)
	host, port := splitAddr(ts.Addr("c2s"))
	p.typeLine(fmt.Sprintf("/connect alice@localhost server %s port %d tls force", host, port))
	p.waitFor("password prompt", "password")
	p.typeLine("alice-pw")
	p.waitFor("certificate prompt", "/tls allow")
	p.typeLine("/tls allow")
	p.waitFor("login", "logged in successfully")

	p.typeLine("/roster add " + bobBare)
	p.typeLine("/sub request " + bobBare)
	sub := bob.Expect("alice's subscription request", func(s *wire.Stanza) bool { return s.Name == "presence" && s.Type == "subscribe" })
	bob.Send("<presence to='%s' type='subscribed'/>", sub.From)
	p.typeLine("/msg " + bobBare + " Hello Bob from profanity")
	got := bob.Expect("profanity's message", testserver.MessageWithBody("Hello Bob from profanity"))
	bob.Send("<message to='%s' type='chat'><body>Hi Alice, this is Bob</body></message>", got.From)
	p.waitFor("bob's answer", "Hi Alice, this is Bob")

	room := "lounge@conference.localhost"
	p.typeLine("/join " + room)
	p.waitFor("room created", "/room accept")
	p.typeLine("/room accept")
	p.waitFor("room unlocked", "Room unlocked")
	p.typeLine("Welcome to the lounge")
	p.waitFor("the room's echo of alice's message", "alice: Welcome to the lounge")
	// profanity may show the message before the room has it: bob joins
	// once the room archived it, so it reaches him as history, not live.
	testserver.Eventually(t, "the room archives alice's message", func() bool {
		page, err := ts.Store().QueryArchive(context.Background(), room, storage.ArchiveQuery{Last: true, Max: 1})
		return err == nil && len(page.Messages) == 1 && strings.Contains(string(page.Messages[0].Raw), "Welcome to the lounge")
	})
	bob.Send("<presence to='%s/bob'><x xmlns='http://jabber.org/protocol/muc'/></presence>", room)
	bob.Expect("history from profanity", func(s *wire.Stanza) bool {
		return s.Name == "message" && s.Type == "groupchat" && strings.Contains(string(s.Raw), "Welcome to the lounge") &&
			s.Child("urn:xmpp:delay", "delay") != nil
	})
	bob.Send("<message to='%s' type='groupchat'><body>Thanks, nice room</body></message>", room)
	p.waitFor("bob in the room", "Thanks, nice room")
}
