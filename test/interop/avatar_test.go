package interop

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/internal/testserver"
)

// slixmppPEP is slixmpp driven by slixmpp/pep_avatar.py, with its
// XEP-0060, XEP-0163, XEP-0115 and XEP-0084 plugins.
func slixmppPEP() lib {
	l := slixmpp
	l.name = "slixmpp-pep"
	l.command = func(ctx context.Context, cfg []byte) *exec.Cmd {
		return exec.CommandContext(ctx, pythonPath, "slixmpp/pep_avatar.py", string(cfg))
	}
	return l
}

// avatarEvent is an event of pep_avatar.py with its extra fields.
type avatarEvent struct {
	Event string `json:"event"`
	ID    string `json:"id"`
	Bytes any    `json:"bytes"`
	Type  string `json:"type"`
	From  string `json:"from"`
}

func avatarEvents(t *testing.T, evs []event, name string) avatarEvent {
	t.Helper()
	e, ok := find(evs, func(e event) bool { return e.Event == name })
	if !ok {
		t.Fatalf("no %q event", name)
	}
	var ae avatarEvent
	if err := json.Unmarshal([]byte(e.line), &ae); err != nil {
		t.Fatal(err)
	}
	return ae
}

// TestSlixmppAvatar: alice publishes an avatar with slixmpp's XEP-0084
// plugin; bob, another slixmpp client with avatar +notify in its caps, is
// notified, retrieves the image with the plugin, finds it in alice's
// vCard (XEP-0398) and sees its hash in her presence (XEP-0153).
func TestSlixmppAvatar(t *testing.T) {
	slixmppAvailable(t)
	ts := testserver.Start(t)
	alice := ts.AddUser("alice", "alice-pw")
	bob := ts.AddUser("bob", "bob-pw")
	// Mutual subscription first, with plain clients.
	a, b := ts.Login("alice", "alice-pw", "setup"), ts.Login("bob", "bob-pw", "setup")
	a.Send("<presence/>")
	b.Send("<presence/>")
	for _, s := range []struct {
		from, to         *testserver.Client
		fromBare, toBare string
	}{{a, b, alice, bob}, {b, a, bob, alice}} {
		s.from.Send("<presence to='%s' type='subscribe'/>", s.toBare)
		s.to.Expect("subscribe", testserver.PresenceFrom(s.fromBare, "subscribe"))
		s.to.Send("<presence to='%s' type='subscribed'/>", s.fromBare)
		s.from.Expect("subscribed", testserver.PresenceFrom(s.toBare, "subscribed"))
	}
	a.Close()
	b.Close()

	img := image.NewRGBA(image.Rect(0, 0, 6, 4))
	for x := range 6 {
		img.Set(x, x%4, color.RGBA{R: 200, A: 255})
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	sum := sha1.Sum(buf.Bytes())
	id := hex.EncodeToString(sum[:])

	l := slixmppPEP()
	bp := start(t, ts, l, bob+"/slixmpp", "bob-pw",
		op("presence"),
		op("wait_avatar_event", "from", alice, "timeout", 30),
		op("retrieve_avatar", "jid", alice, "id", id),
		op("get_vcard", "jid", alice),
		op("wait_presence_photo", "from", alice, "id", id, "timeout", 20))
	bp.waitEvent("sent", "presence", 20*time.Second)
	time.Sleep(500 * time.Millisecond)
	ap := start(t, ts, l, alice+"/slixmpp", "alice-pw",
		op("presence"), op("ping"), op("sleep", "seconds", 1.5),
		op("publish_avatar", "data_b64", base64.StdEncoding.EncodeToString(buf.Bytes()), "type", "image/png", "width", 6, "height", 4),
		// A presence after publishing carries the hash the server adds.
		op("presence"), op("ping"), op("sleep", "seconds", 0.5))
	evs := finish(t, ap, bp)
	if got := avatarEvents(t, evs[0], "avatar_published").ID; got != id {
		t.Fatalf("slixmpp published id %s, want %s", got, id)
	}
	ev := avatarEvents(t, evs[1], "avatar_event")
	if ev.ID != id || ev.Type != "image/png" {
		t.Errorf("notification: %+v", ev)
	}
	got := avatarEvents(t, evs[1], "avatar")
	if got.ID != id || got.Bytes != float64(buf.Len()) {
		t.Errorf("retrieved avatar %+v, want id %s and %s bytes", got, id, strconv.Itoa(buf.Len()))
	}
	if vc := avatarEvents(t, evs[1], "vcard"); vc.ID != id || vc.Type != "image/png" {
		t.Errorf("vCard photo %+v, want %s", vc, id)
	}
}
