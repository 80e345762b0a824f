package interop

import (
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/internal/testserver"
	"github.com/parley-xmpp/parley/server"
	"github.com/parley-xmpp/parley/wire"
)

// slixmppStock is slixmpp running slixmpp/stock_client.py: stream
// management, carbons, MAM, avatars, upload and CSI in one client; cafile
// is the server certificate it trusts for HTTPS.
func slixmppStock(cafile string) lib {
	l := slixmppUpload(cafile)
	l.name = "slixmpp-stock"
	l.deadline = 600
	// The config (a 100 kB avatar in it) goes on stdin: one argument may
	// not exceed 128 kB.
	l.command = func(ctx context.Context, cfg []byte) *exec.Cmd {
		cmd := exec.CommandContext(ctx, pythonPath, "slixmpp/stock_client.py")
		cmd.Stdin = bytes.NewReader(cfg)
		return cmd
	}
	return l
}

// TestSlixmppStockClient (issue 16, definition of done): a stock slixmpp
// client with the plugins a Conversations-like client uses, under every
// default limit: it comes back to 1,000 offline messages from ten
// contacts, catches up on the archive (1,000 messages in pages of 250),
// publishes a 100 kB avatar and fetches a contact's, uploads and downloads
// a 10 MB video, goes inactive (XEP-0352) while its contacts change
// presence and type, is woken by a message, goes active, reads everything
// (250 displayed markers at once) while 500 more messages arrive. The
// script fails on any stream error or wait that runs out.
func TestSlixmppStockClient(t *testing.T) {
	slixmppAvailable(t)
	aiohttpAvailable(t)
	ts := testserver.Start(t, func(c *server.Config) { c.Limits = server.DefaultConfig().Limits })
	const contacts, perContact = 10, 100
	bob := ts.AddUser("bob", "bob-pw")
	cs := make([]*testserver.Client, contacts)
	bare := make([]string, contacts)
	for i := range cs {
		bare[i] = ts.AddUser("c"+strconv.Itoa(i), "pw")
		cs[i] = ts.Login("c"+strconv.Itoa(i), "pw", "phone")
		cs[i].Send("<presence/>")
	}
	// c0 and bob are contacts (bob's first login does that in the app).
	setup := ts.Login("bob", "bob-pw", "setup")
	setup.IQ("roster", "<iq type='get' id='roster'><query xmlns='jabber:iq:roster'/></iq>")
	setup.Send("<presence/>")
	cs[0].Send("<presence to='%s' type='subscribe'/>", bob)
	setup.Expect("subscribe", testserver.PresenceFrom(bare[0], "subscribe"))
	setup.Send("<presence to='%s' type='subscribed'/><presence to='%s' type='subscribe'/>", bare[0], bare[0])
	cs[0].Expect("subscribe", testserver.PresenceFrom(bob, "subscribe"))
	cs[0].Send("<presence to='%s' type='subscribed'/>", bob)
	setup.Expect("subscribed", testserver.PresenceFrom(bare[0], "subscribed"))
	setup.Close()
	ts.WaitOffline(bob)

	pad := strings.Repeat("words ", 160)
	for i, c := range cs {
		for j := 0; j < perContact; j++ {
			c.Send("<message to='%s' type='chat' id='o%d-%d'><body>o%d-%d %s</body><request xmlns='urn:xmpp:receipts'/>"+
				"<markable xmlns='urn:xmpp:chat-markers:0'/></message>", bob, i, j, i, j, pad)
		}
	}
	// Bounded by progress, not in total: on a machine shared by several
	// suites under -race, storing 1,000 messages took minutes.
	last, since := -1, time.Now()
	for {
		n, err := ts.Store().CountOffline(context.Background(), bob)
		if err == nil && n == contacts*perContact {
			break
		}
		if err != nil || n != last {
			last, since = n, time.Now()
		} else if time.Since(since) > 3*time.Minute {
			t.Fatalf("%d of %d messages stored offline, none for 3 min", n, contacts*perContact)
		}
		time.Sleep(10 * time.Millisecond)
	}

	// c0's avatar, 100 kB.
	img := make([]byte, 100<<10)
	_, _ = rand.NewChaCha8([32]byte{1}).Read(img)
	sum1 := sha1.Sum(img)
	avatarID := hex.EncodeToString(sum1[:])
	cs[0].Send("<iq type='set' id='av'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='urn:xmpp:avatar:data'>"+
		"<item id='%s'><data xmlns='urn:xmpp:avatar:data'>%s</data></item></publish></pubsub></iq>", avatarID, base64.StdEncoding.EncodeToString(img))
	if r := cs[0].ExpectWithin("avatar published", 3*time.Minute, func(s *wire.Stanza) bool { return s.ID == "av" }); r.Type != "result" {
		t.Fatalf("avatar publish: %.300s", r.Raw)
	}
	own := make([]byte, 100<<10)
	_, _ = rand.NewChaCha8([32]byte{2}).Read(own)

	cafile, _ := serverCertPEM(t, ts)
	video := make([]byte, 10<<20)
	_, _ = rand.NewChaCha8([32]byte{3}).Read(video)
	sum := sha256.Sum256(video)
	path := filepath.Join(t.TempDir(), "VID_0001.mp4")
	if err := os.WriteFile(path, video, 0o600); err != nil {
		t.Fatal(err)
	}

	to := make([]any, contacts)
	for i, b := range bare {
		to[i] = b
	}
	bp := start(t, ts, slixmppStock(cafile), bob+"/conversations", "bob-pw",
		op("wait_sm", "timeout", 120),
		op("roster"),
		op("carbons_enable"),
		op("presence"),
		op("wait_bodies", "n", contacts*perContact, "timeout", 300),
		op("mam", "name", "catch-up", "max", 250, "timeout", 300),
		op("publish_avatar", "data_b64", base64.StdEncoding.EncodeToString(own), "type", "image/png", "width", 192, "height", 192, "timeout", 120),
		op("retrieve_avatar", "jid", bare[0], "id", avatarID, "timeout", 120),
		op("upload", "path", path, "content_type", "video/mp4", "timeout", 300),
		op("download", "timeout", 300),
		op("csi", "state", "inactive"),
		op("ping"),
		op("mark", "name", "inactive"),
		op("wait_message", "from", bare[0], "body", "wake up", "timeout", 300),
		op("csi", "state", "active"),
		op("markers", "to", to, "n", 25),
		op("wait_bodies", "n", contacts*perContact+1+contacts*50, "timeout", 300),
		op("ping"))

	bp.waitEvent("mark", "inactive", bp.limit)
	for round := 0; round < 5; round++ {
		for _, c := range cs {
			c.Send("<presence to='%s/conversations'><show>away</show><status>round %d</status></presence>", bob, round)
			c.Send("<message to='%s/conversations' type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>", bob)
		}
	}
	cs[0].Send("<message to='%s' type='chat'><body>wake up</body></message>", bob)
	bp.waitEvent("csi", "active", bp.limit)
	for _, c := range cs {
		for j := 0; j < 50; j++ {
			c.Send("<message to='%s' type='chat' id='live%d'><body>live%d %s</body><markable xmlns='urn:xmpp:chat-markers:0'/></message>", bob, j, j, pad)
		}
	}
	for i, c := range cs {
		for j := 0; j < 25; j++ {
			id := "m" + strconv.Itoa(j)
			c.ExpectWithin("marker "+id+" for c"+strconv.Itoa(i), time.Minute, func(s *wire.Stanza) bool {
				d := s.Child("urn:xmpp:chat-markers:0", "displayed")
				return s.Name == "message" && d != nil && d.AttrValue("id") == id
			})
		}
	}
	evs := finish(t, bp)[0]

	mam, ok := find(evs, func(e event) bool { return e.Event == "mam" && e.Op == "catch-up" })
	if !ok {
		t.Fatal("no MAM catch-up")
	}
	var cu struct {
		Results []json.RawMessage `json:"results"`
		Pages   []json.RawMessage `json:"pages"`
	}
	if err := json.Unmarshal([]byte(mam.line), &cu); err != nil || len(cu.Results) != contacts*perContact {
		t.Fatalf("MAM catch-up: %d results in %d pages (%v)", len(cu.Results), len(cu.Pages), err)
	}
	if got := avatarEvents(t, evs, "avatar"); got.ID != avatarID {
		t.Errorf("retrieved avatar %+v, want %s", got, avatarID)
	}
	var down struct {
		Status int    `json:"status"`
		Bytes  int    `json:"bytes"`
		SHA256 string `json:"sha256"`
	}
	uploadEvent(t, evs, "downloaded", &down)
	if down.Status != 200 || down.Bytes != len(video) || down.SHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("download: %+v", down)
	}
	for _, e := range evs {
		if e.Event == "session_end" || e.Event == "cut" {
			t.Fatalf("the session ended: %s", e.line)
		}
	}
	t.Logf("MAM catch-up: %d messages in %d pages", len(cu.Results), len(cu.Pages))
}
