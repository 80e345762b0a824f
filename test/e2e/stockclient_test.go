package e2e

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/parley-xmpp/parley/internal/testserver"
	"github.com/parley-xmpp/parley/server"
	"github.com/parley-xmpp/parley/wire"
)

// TestStockClientDefaultLimits (issue 16, definition of done): a day in
// the life of a Conversations-like client under the default limits, every
// one of them (the test server's raised stanza rate included): it comes
// back to 1,000 messages from ten contacts (all in offline delivery, then
// a MAM catch-up of all of them in pages), publishes and fetches 100 kB
// avatars, uploads a 10 MB video over HTTPS and sends its link, goes
// inactive while its contacts change presence and type, comes back active
// to the held burst and 500 fresh messages, and answers with a burst of
// 250 chat markers. Its stream must never be ended nor anything lost; it
// acknowledges what it gets as Conversations does (XEP-0198, on request).
func TestStockClientDefaultLimits(t *testing.T) {
	t.Parallel()
	ts := testserver.Start(t, func(c *server.Config) { c.Limits = server.DefaultConfig().Limits })
	if ts.Cfg.Limits.StanzasPerSecond != 100 || ts.Cfg.Limits.SendQueueBytes != 8<<20 || ts.Cfg.C2S.MaxUnackedBytes != 8<<20 ||
		ts.Cfg.C2S.CSIHoldBytes != 512<<10 || ts.Cfg.Limits.MaxOfflineMessages != 1000 {
		t.Fatalf("not the documented defaults: %+v %+v", ts.Cfg.Limits, ts.Cfg.C2S)
	}
	const contacts, perContact = 10, 100
	bobBare := ts.AddUser("bob", "pw")
	cs := make([]*testserver.Client, contacts)
	bare := make([]string, contacts)
	for i := range cs {
		bare[i] = ts.AddUser("c"+strconv.Itoa(i), "pw")
		cs[i] = ts.Login("c"+strconv.Itoa(i), "pw", "phone")
		cs[i].Send("<presence/>")
	}

	// While bob is offline each contact writes 100 messages of about 1 kB
	// as Conversations sends them: receipt request, markable, origin-id.
	pad := strings.Repeat("words ", 160)
	for i, c := range cs {
		for j := 0; j < perContact; j++ {
			c.Send("<message to='%s' type='chat' id='o%d-%d'><body>o%d-%d %s</body><request xmlns='urn:xmpp:receipts'/>"+
				"<markable xmlns='urn:xmpp:chat-markers:0'/><origin-id xmlns='urn:xmpp:sid:0' id='o%d-%d'/></message>", bobBare, i, j, i, j, pad, i, j)
		}
	}
	// Bounded by progress, not in total (minutes under -race on a loaded
	// machine).
	last, since := -1, time.Now()
	waitUntil(t, time.Hour, "1,000 messages stored offline", func() bool {
		n, err := ts.Store().CountOffline(context.Background(), bobBare)
		if err != nil || n != last {
			last, since = n, time.Now()
		} else if time.Since(since) > patient {
			t.Fatalf("%d of %d messages stored offline, none for %v", n, contacts*perContact, patient)
		}
		return n == contacts*perContact
	})

	// bob logs in with resumable stream management and acknowledges
	// whenever the server asks, counting what it received.
	b, _ := enableSM(t, ts, "bob", "pw", "conversations.abcd")
	var handled atomic.Int64
	b.Tap(func(s *wire.Stanza) bool {
		switch {
		case s.NS == nsSM && s.Name == "r":
			_ = b.TryWrite(fmt.Sprintf("<a xmlns='%s' h='%d'/>", nsSM, handled.Load()))
			return true
		case s.Name == "message" || s.Name == "iq" || s.Name == "presence":
			handled.Add(1)
		}
		return false
	})
	iqPatient(b, "carbons", "<iq type='set' id='carbons'><enable xmlns='%s'/></iq>", nsCarbons)
	iqPatient(b, "roster", "<iq type='get' id='roster'><query xmlns='jabber:iq:roster'/></iq>")
	b.Send("<presence><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='http://conversations.im' ver='x'/></presence>")
	next := make([]int, contacts)
	for n := 0; n < contacts*perContact; n++ {
		m := b.ExpectWithin("offline message "+strconv.Itoa(n), patient, func(s *wire.Stanza) bool {
			return s.Name == "message" && strings.HasPrefix(s.Child(wire.NSClient, "body").Text(), "o")
		})
		var i, j int
		if _, err := fmt.Sscanf(m.Child(wire.NSClient, "body").Text(), "o%d-%d", &i, &j); err != nil || j != next[i] {
			t.Fatalf("offline message %d out of order (want o%d-%d): %.100s", n, i, next[i], m.Raw)
		}
		next[i]++
	}

	// A new device of bob's catches up on the archive: 1,000 messages in
	// pages of 250.
	if got := mamCatchUp(t, b, 250); got != contacts*perContact {
		t.Fatalf("MAM catch-up: %d of %d messages", got, contacts*perContact)
	}

	// Avatars of 100 kB (base64 in the item: 133 kB) both ways.
	subscribe(t, b, cs[0], bobBare, bare[0])
	publish := func(c *testserver.Client, seed uint8) string {
		t.Helper()
		img := make([]byte, 100<<10)
		_, _ = rand.NewChaCha8([32]byte{seed}).Read(img)
		sum := sha1.Sum(img)
		id := hex.EncodeToString(sum[:])
		data := base64.StdEncoding.EncodeToString(img)
		if r := iqPatient(c, "pub-data", "<iq type='set' id='pub-data'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='%s'>"+
			"<item id='%s'><data xmlns='%s'>%s</data></item></publish></pubsub></iq>", nodeAvatarData, id, nodeAvatarData, data); r.Type != "result" {
			t.Fatalf("avatar data publish: %.300s", r.Raw)
		}
		if r := iqPatient(c, "pub-meta", "<iq type='set' id='pub-meta'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='%s'>"+
			"<item id='%s'><metadata xmlns='%s'><info id='%s' bytes='%d' type='image/png' width='192' height='192'/></metadata></item>"+
			"</publish></pubsub></iq>", nodeAvatarMeta, id, nodeAvatarMeta, id, len(img)); r.Type != "result" {
			t.Fatalf("avatar metadata publish: %.300s", r.Raw)
		}
		return data
	}
	fetch := func(c *testserver.Client, owner, data string) {
		t.Helper()
		r := iqPatient(c, "get-av", "<iq type='get' id='get-av' to='%s'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='%s'/></pubsub></iq>", owner, nodeAvatarData)
		if r.Type != "result" || !strings.Contains(string(r.Raw), data) {
			t.Fatalf("avatar fetch from %s: %.300s", owner, r.Raw)
		}
	}
	fetch(cs[0], bobBare, publish(b, 1))
	fetch(b, bare[0], publish(cs[0], 2))

	// A 10 MB video over HTTP upload, its link sent to a contact.
	video := make([]byte, 10<<20)
	_, _ = rand.NewChaCha8([32]byte{3}).Read(video)
	getURL := uploadFile(t, ts, b, "VID_0001.mp4", "video/mp4", video)
	hc := uploadClient(ts)
	b.Send("<message to='%s' type='chat' id='link'><body>%s</body><x xmlns='jabber:x:oob'><url>%s</url></x></message>", bare[0], getURL, getURL)
	cs[0].ExpectWithin("the link", patient, isMsg(getURL))
	resp, err := hc.Get(getURL)
	if err != nil {
		t.Fatal(err)
	}
	dl, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Equal(dl, video) {
		t.Fatalf("GET: %s, %d bytes", resp.Status, len(dl))
	}

	// The screen goes off: presence changes and chat states wait.
	b.Send("<inactive xmlns='urn:xmpp:csi:0'/>")
	syncPing(b, "sync")
	for round := 0; round < 5; round++ {
		for _, c := range cs {
			c.Send("<presence to='%s'><show>away</show><status>round %d</status></presence>", b.JID, round)
			c.Send("<message to='%s' type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>", b.JID)
		}
	}
	for _, c := range cs {
		syncPing(c, "typed")
	}
	// The screen goes on: what was held arrives (the latest of each), then
	// every contact writes 50 messages at once.
	b.Send("<active xmlns='urn:xmpp:csi:0'/>")
	for _, c := range bare {
		b.ExpectWithin("held presence of "+c, patient, func(s *wire.Stanza) bool {
			return s.Name == "presence" && strings.HasPrefix(s.From, c+"/") && s.Child(wire.NSClient, "status").Text() == "round 4"
		})
	}
	for _, c := range cs {
		for j := 0; j < 50; j++ {
			c.Send("<message to='%s' type='chat' id='live%d'><body>live%d %s</body><markable xmlns='urn:xmpp:chat-markers:0'/></message>", bobBare, j, j, pad)
		}
	}
	for i := range next {
		next[i] = 0
	}
	for n := 0; n < contacts*50; n++ {
		m := b.ExpectWithin("live message "+strconv.Itoa(n), patient, func(s *wire.Stanza) bool {
			return s.Name == "message" && strings.HasPrefix(s.Child(wire.NSClient, "body").Text(), "live")
		})
		i := -1
		for k, c := range bare {
			if strings.HasPrefix(m.From, c+"/") {
				i = k
			}
		}
		if i < 0 || !strings.HasPrefix(m.Child(wire.NSClient, "body").Text(), "live"+strconv.Itoa(next[i])+" ") {
			t.Fatalf("live message %d out of order or from a stranger: %.100s", n, m.Raw)
		}
		next[i]++
	}
	// bob reads them all: a burst of 250 displayed markers, more than the
	// stanza rate's burst, is slowed, not refused.
	for j := 0; j < 25; j++ {
		for i := range cs {
			b.Send("<message to='%s' type='chat'><displayed xmlns='urn:xmpp:chat-markers:0' id='live%d'/></message>", bare[i], j)
		}
	}
	for i, c := range cs {
		for j := 0; j < 25; j++ {
			id := "live" + strconv.Itoa(j)
			c.ExpectWithin(fmt.Sprintf("marker %d for c%d", j, i), patient, func(s *wire.Stanza) bool {
				d := s.Child("urn:xmpp:chat-markers:0", "displayed")
				return s.Name == "message" && d != nil && d.AttrValue("id") == id
			})
		}
	}
	syncPing(b, "sync")
	if se := streamErrorSeen(b); se != "" {
		t.Fatalf("stream error: %s", se)
	}
	if ts.Router().Session(jid.MustParse(b.JID)) == nil {
		t.Fatal("bob's session is gone")
	}
	t.Logf("bob handled %d stanzas", handled.Load())
}

// patient bounds each wait of the stock client tests: on a machine
// shared by several suites under -race, storing 1,000 messages or a
// 133 kB PEP item took over a minute.
const patient = 3 * time.Minute

// iqPatient is Client.IQ with the patient wait.
func iqPatient(c *testserver.Client, id, format string, args ...any) *wire.Stanza {
	c.Send(format, args...)
	return c.ExpectWithin("iq response "+id, patient, func(s *wire.Stanza) bool {
		return s.Name == "iq" && s.ID == id && (s.Type == "result" || s.Type == "error")
	})
}

// mamCatchUp pages through c's whole archive as a new device does (RSM
// after, pages of max) and returns how many messages it got.
func mamCatchUp(t testing.TB, c *testserver.Client, max int) int {
	t.Helper()
	got, after := 0, ""
	for page := 0; ; page++ {
		p := queryMAM(t, c, "catch-up"+strconv.Itoa(page), "<set xmlns='"+nsRSM+"'><max>"+strconv.Itoa(max)+"</max>"+after+"</set>")
		got += len(p.ids)
		if p.complete || len(p.ids) == 0 {
			return got
		}
		after = "<after>" + p.last + "</after>"
	}
}

// uploadFile gets an XEP-0363 slot for data, PUTs it over the server's
// HTTPS listener and returns the GET URL.
func uploadFile(t *testing.T, ts *testserver.Server, c *testserver.Client, name, contentType string, data []byte) string {
	t.Helper()
	host, _ := findUploadService(t, c)
	r := iqPatient(c, "slot", "<iq type='get' id='slot' to='%s'><request xmlns='%s' filename='%s' size='%d' content-type='%s'/></iq>",
		host, nsUpload, name, len(data), contentType)
	slot := r.Child(nsUpload, "slot")
	if r.Type != "result" || slot == nil {
		t.Fatalf("slot request: %s", r.Raw)
	}
	hc := uploadClient(ts)
	defer hc.CloseIdleConnections()
	req, _ := http.NewRequest(http.MethodPut, slot.Child(nsUpload, "put").AttrValue("url"), bytes.NewReader(data))
	req.Header.Set("Content-Type", contentType)
	for _, h := range slot.Child(nsUpload, "put").ChildrenNamed(nsUpload, "header") {
		req.Header.Set(h.AttrValue("name"), h.Text())
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT: %s", resp.Status)
	}
	return slot.Child(nsUpload, "get").AttrValue("url")
}
