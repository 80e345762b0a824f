package interop

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/internal/testserver"
	"github.com/parley-xmpp/parley/wire"
)

// mamCarbons is slixmpp running slixmpp/mam_carbons.py: driver.py with
// the xep_0280 and xep_0313 plugins.
func mamCarbons() lib {
	l := slixmpp
	l.command = func(ctx context.Context, cfg []byte) *exec.Cmd {
		return exec.CommandContext(ctx, pythonPath, "slixmpp/mam_carbons.py", string(cfg))
	}
	return l
}

// copyEvent is a "live" or "carbon" event of mam_carbons.py: a message
// as it arrived, or the message forwarded in a carbon.
type copyEvent struct {
	Event    string `json:"event"`
	Dir      string `json:"dir"`
	From     string `json:"from"`
	To       string `json:"to"`
	Body     string `json:"body"`
	StanzaID string `json:"stanza_id"`
	Delayed  bool   `json:"delayed"`
	Raw      string `json:"raw"`
}

type mamResult struct {
	ID       string `json:"id"`
	From     string `json:"from"`
	To       string `json:"to"`
	Body     string `json:"body"`
	Stamp    string `json:"stamp"`
	StanzaID string `json:"stanza_id"`
	// ParsedStamp is Stamp as slixmpp's XEP-0082 parser read it.
	ParsedStamp string `json:"parsed_stamp"`
}

type mamPage struct {
	N        int    `json:"n"`
	First    string `json:"first"`
	Last     string `json:"last"`
	Count    string `json:"count"`
	Index    string `json:"index"`
	Complete string `json:"complete"`
}

// mamEvent is a "mam" or "mam_error" event of mam_carbons.py.
type mamEvent struct {
	Event     string      `json:"event"`
	Op        string      `json:"op"`
	Results   []mamResult `json:"results"`
	Pages     []mamPage   `json:"pages"`
	Condition string      `json:"condition"`
	Raw       string      `json:"raw"`
}

// decode returns the events named name (any of them when empty) of the
// script, decoded into T.
func decode[T any](t *testing.T, evs []event, names ...string) []T {
	t.Helper()
	var out []T
	for _, e := range evs {
		match := len(names) == 0
		for _, n := range names {
			match = match || e.Event == n
		}
		if !match {
			continue
		}
		var v T
		if err := json.Unmarshal([]byte(e.line), &v); err != nil {
			t.Fatalf("%s event: %v: %s", e.Event, err, e.line)
		}
		out = append(out, v)
	}
	return out
}

func mamQuery(t *testing.T, evs []event, name string) mamEvent {
	t.Helper()
	for _, e := range decode[mamEvent](t, evs, "mam", "mam_error") {
		if e.Op == name {
			return e
		}
	}
	t.Fatalf("no answer to MAM query %q", name)
	return mamEvent{}
}

func ping(bob *testserver.Client, id string) {
	bob.IQ(id, "<iq type='get' id='%s' to='%s'><ping xmlns='urn:xmpp:ping'/></iq>", id, testserver.Domain)
}

// alicePhoneLaptop starts a server with alice and bob; bob is logged in
// (a Go client, available) and alice's slixmpp clients are still to come.
func alicePhoneLaptop(t *testing.T) (ts *testserver.Server, alice, bobBare, phoneJID, laptopJID string, bob *testserver.Client) {
	t.Helper()
	slixmppAvailable(t)
	ts = testserver.Start(t)
	alice = ts.AddUser("alice", "alice-pw")
	bobBare = ts.AddUser("bob", "bob-pw")
	bob = ts.Login("bob", "bob-pw", "desk")
	t.Cleanup(bob.Close)
	bob.Send("<presence/>")
	return ts, alice, bobBare, alice + "/phone", alice + "/laptop", bob
}

// TestSlixmppCarbons: alice's phone and laptop enable XEP-0280 carbons
// with slixmpp's xep_0280 plugin. The laptop gets a <received/> copy of
// what bob sends to the phone and a <sent/> copy of what the phone sends
// to bob (each carrying alice's archive stanza-id), nothing of messages
// marked <private/> either way, and nothing once it has disabled carbons.
func TestSlixmppCarbons(t *testing.T) {
	ts, alice, bobBare, phoneJID, laptopJID, bob := alicePhoneLaptop(t)
	l := mamCarbons()

	const afterDisable = "to the laptop itself, after disable"
	laptop := start(t, ts, l, laptopJID, "alice-pw",
		op("presence"),
		op("carbons_enable"),
		op("mark", "name", "enabled"),
		op("wait_carbon", "dir", "received", "body", "b1"),
		op("wait_carbon", "dir", "sent", "body", "a1"),
		op("wait_carbon", "dir", "sent", "body", "a2 after private"),
		op("wait_carbon", "dir", "received", "body", "b2 after private"),
		op("carbons_disable"),
		op("wait_message", "body", afterDisable, "from", bob.JID),
		op("ping"),
	)
	laptop.waitEvent("mark", "enabled", 20*time.Second)
	phone := start(t, ts, l, phoneJID, "alice-pw",
		op("presence"),
		op("carbons_enable"),
		op("mark", "name", "enabled"),
		op("wait_message", "body", "b1", "from", bob.JID),
		op("send", "to", bobBare, "body", "a1"),
		op("send", "to", bobBare, "body", "a private", "private", true),
		op("send", "to", bobBare, "body", "a2 after private"),
		op("wait_message", "body", "b private", "from", bob.JID),
		op("wait_message", "body", "b2 after private", "from", bob.JID),
		op("wait_message", "body", "b3 after disable", "from", bob.JID),
		op("send", "to", bobBare, "body", "a3 after disable"),
		op("ping"), // the server has handled a3 (and made any copies)
		op("mark", "name", "a3 sent"),
	)
	phone.waitEvent("mark", "enabled", 20*time.Second)

	bob.Send("<message to='%s' type='chat' id='b1'><body>b1</body></message>", phoneJID)
	for _, b := range []string{"a1", "a private", "a2 after private"} {
		bob.Expect(b, testserver.MessageWithBody(b))
	}
	bob.Send("<message to='%s' type='chat' id='bp'><body>b private</body><private xmlns='urn:xmpp:carbons:2'/></message>", phoneJID)
	bob.Send("<message to='%s' type='chat' id='b2'><body>b2 after private</body></message>", phoneJID)
	laptop.waitEvent("carbons", "disable", 20*time.Second)
	bob.Send("<message to='%s' type='chat' id='b3'><body>b3 after disable</body></message>", phoneJID)
	bob.Expect("a3 after disable", testserver.MessageWithBody("a3 after disable"))
	phone.waitEvent("mark", "a3 sent", 20*time.Second)
	// Copies for the laptop of anything before this would be ahead of it
	// in the laptop's stream.
	bob.Send("<message to='%s' type='chat' id='m'><body>%s</body></message>", laptopJID, afterDisable)

	evs := finish(t, laptop, phone)
	lEv, pEv := evs[0], evs[1]
	checkLogin(t, l, laptopJID, lEv)

	carbons := decode[copyEvent](t, lEv, "carbon")
	want := []copyEvent{
		{Dir: "received", From: bob.JID, To: phoneJID, Body: "b1"},
		{Dir: "sent", From: phoneJID, To: bobBare, Body: "a1"},
		{Dir: "sent", From: phoneJID, To: bobBare, Body: "a2 after private"},
		{Dir: "received", From: bob.JID, To: phoneJID, Body: "b2 after private"},
	}
	if len(carbons) != len(want) {
		t.Errorf("laptop got %d carbons, want %d (none of the <private/> messages, none after disable):\n%s", len(carbons), len(want), laptop.transcript())
	}
	ids := map[string]bool{}
	for i, c := range carbons {
		if i >= len(want) {
			break
		}
		w := want[i]
		if c.Dir != w.Dir || c.From != w.From || c.To != w.To || c.Body != w.Body {
			t.Errorf("carbon %d: %s %q from %s to %s, want %s %q from %s to %s: %s", i, c.Dir, c.Body, c.From, c.To, w.Dir, w.Body, w.From, w.To, c.Raw)
		}
		// Both directions carry alice's archive id (XEP-0313 §3.3).
		if c.StanzaID == "" || ids[c.StanzaID] {
			t.Errorf("carbon %d (%q) stanza-id by %s: %q, want a fresh one: %s", i, c.Body, alice, c.StanzaID, c.Raw)
		}
		ids[c.StanzaID] = true
	}
	// The message bob sends to the laptop last is copied to the phone
	// (carbons still on there) when the phone is still connected by then:
	// correct, and not part of the phone's own conversation.
	for _, c := range decode[copyEvent](t, pEv, "carbon") {
		if c.Body != afterDisable {
			t.Errorf("the phone got a carbon of its own conversation: %+v", c)
		}
	}
	live := decode[copyEvent](t, lEv, "live")
	if len(live) != 1 || live[0].Body != afterDisable {
		t.Errorf("laptop live messages %+v, want only %q:\n%s", live, afterDisable, laptop.transcript())
	}
}

// TestSlixmppMAM: alice (slixmpp: a phone and a laptop with carbons) and
// bob (a Go client) exchange 30 messages: 10 while both are online, 8 from
// bob while alice is offline, 6 from alice while bob is offline, 6 more
// online. alice's slixmpp then reads her archive with the xep_0313 plugin
// filtered on bob, 7 messages a page: every message once, in order, each
// with the id of the stanza-id it carried live (or in a carbon); a
// start/end query returns exactly the 8 offline ones; a query of bob's
// archive is forbidden.
func TestSlixmppMAM(t *testing.T) {
	ts, alice, bobBare, phoneJID, laptopJID, bob := alicePhoneLaptop(t)
	l := mamCarbons()
	bobJID := bob.JID

	type msg struct{ from, to, body string }
	var sent []msg // the conversation, in order
	var alicePeers []*peer
	// exchange: bob sends p b<i> to alice's bare JID, alice's phone answers
	// p a<i> to bob's bare JID, n times. phoneActions are the phone's side.
	exchange := func(phase string, n int) (phoneActions []map[string]any, run func()) {
		for i := 1; i <= n; i++ {
			b, a := fmt.Sprintf("%s b%d", phase, i), fmt.Sprintf("%s a%d", phase, i)
			phoneActions = append(phoneActions,
				op("wait_message", "body", b, "from", bobJID),
				op("send", "to", bobBare, "body", a))
		}
		return phoneActions, func() {
			for i := 1; i <= n; i++ {
				b, a := fmt.Sprintf("%s b%d", phase, i), fmt.Sprintf("%s a%d", phase, i)
				bob.Send("<message to='%s' type='chat'><body>%s</body></message>", alice, b)
				bob.Expect(a, testserver.MessageWithBody(a))
				sent = append(sent, msg{bobJID, alice, b}, msg{phoneJID, bobBare, a})
			}
		}
	}
	// nextSecond waits for the next whole second and returns it: the
	// server's clock has passed it (same process).
	nextSecond := func() time.Time {
		s := time.Now().UTC().Truncate(time.Second).Add(time.Second)
		time.Sleep(time.Until(s) + 50*time.Millisecond)
		return s
	}

	// Phase 1: both online, 5 rounds.
	laptop := start(t, ts, l, laptopJID, "alice-pw",
		op("carbons_enable"), op("presence"), op("ping"), op("mark", "name", "ready"),
		op("wait_carbon", "dir", "sent", "body", "p1 a5"), op("ping"))
	laptop.waitEvent("mark", "ready", 20*time.Second)
	acts, run := exchange("p1", 5)
	// The ping's answer comes after the server has handled the presence,
	// so bob's messages to alice's bare JID reach the phone too.
	phone := start(t, ts, l, phoneJID, "alice-pw",
		append(append([]map[string]any{op("presence"), op("ping"), op("mark", "name", "ready")}, acts...), op("ping"))...)
	phone.waitEvent("mark", "ready", 20*time.Second)
	run()
	finish(t, laptop, phone)
	alicePeers = append(alicePeers, laptop, phone)
	ts.WaitOffline(laptopJID) // alice's sessions are gone

	// Phase 2: alice offline, bob sends 8.
	start1 := nextSecond()
	var offline []msg
	for i := 1; i <= 8; i++ {
		b := fmt.Sprintf("p2 b%d", i)
		bob.Send("<message to='%s' type='chat'><body>%s</body></message>", alice, b)
		offline = append(offline, msg{bobJID, alice, b})
	}
	ping(bob, "p2")
	sent = append(sent, offline...)
	end1 := nextSecond()
	bob.Close()

	// Phase 3: alice back (the laptop first: it gets the offline
	// messages), bob offline; the phone sends 6. Phase 4: bob back, 3
	// rounds. Then the phone reads the archive.
	var laptopActs []map[string]any
	laptopActs = append(laptopActs, op("carbons_enable"), op("presence"))
	for _, m := range offline {
		laptopActs = append(laptopActs, op("wait_message", "body", m.body, "from", bobJID))
	}
	laptopActs = append(laptopActs, op("mark", "name", "ready"),
		op("wait_carbon", "dir", "sent", "body", "p4 a3", "timeout", 30), op("ping"))
	laptop = start(t, ts, l, laptopJID, "alice-pw", laptopActs...)
	laptop.waitEvent("mark", "ready", 20*time.Second)

	phoneActs := []map[string]any{op("presence")}
	var toOffline []msg
	for i := 1; i <= 6; i++ {
		a := fmt.Sprintf("p3 a%d", i)
		phoneActs = append(phoneActs, op("send", "to", bobBare, "body", a))
		toOffline = append(toOffline, msg{phoneJID, bobBare, a})
	}
	phoneActs = append(phoneActs, op("ping"), op("mark", "name", "p3 sent"))
	acts, run = exchange("p4", 3)
	phoneActs = append(phoneActs, acts...)
	phoneActs = append(phoneActs, op("ping"),
		op("mam", "name", "all", "with", bobBare, "max", 7),
		op("mam", "name", "all-iterate", "with", bobBare, "max", 7, "mode", "iterate"),
		op("mam", "name", "window", "with", bobBare, "max", 7,
			"start", start1.Format(time.RFC3339), "end", end1.Format(time.RFC3339)),
		op("mam", "name", "bob's", "jid", bobBare, "mode", "single"),
	)
	phone = start(t, ts, l, phoneJID, "alice-pw", phoneActs...)
	phone.waitEvent("mark", "p3 sent", 20*time.Second)
	sent = append(sent, toOffline...)
	bob = ts.Login("bob", "bob-pw", "desk")
	t.Cleanup(bob.Close)
	bob.Send("<presence/>")
	for _, m := range toOffline {
		got := bob.Expect(m.body, testserver.MessageWithBody(m.body))
		if got.Child("urn:xmpp:delay", "delay") == nil {
			t.Errorf("offline message to bob without <delay/>: %s", got.Raw)
		}
	}
	run()
	evs := finish(t, laptop, phone)
	alicePeers = append(alicePeers, laptop, phone)
	if len(sent) != 30 {
		t.Fatalf("test bug: %d messages, want 30", len(sent))
	}

	// The stanza-id each message carried to alice's clients: by alice,
	// on bob's messages (live, or delivered from offline storage), in the
	// <sent/> carbons of her own.
	liveID := map[string]string{}
	for _, p := range alicePeers {
		evs, _ := p.result()
		for _, c := range decode[copyEvent](t, evs, "live", "carbon") {
			if c.Event == "carbon" && c.Dir != "sent" {
				continue
			}
			if c.StanzaID == "" {
				t.Errorf("%s: %q arrived without a stanza-id by %s: %s", p.name, c.Body, alice, c.Raw)
				continue
			}
			if prev, ok := liveID[c.Body]; ok && prev != c.StanzaID {
				t.Errorf("%q arrived with stanza-ids %q and %q", c.Body, prev, c.StanzaID)
			}
			liveID[c.Body] = c.StanzaID
		}
	}
	for _, m := range offline {
		got := message(t, "laptop", evs[0], m.body)
		if got.Delay == nil {
			t.Errorf("offline message %q without <delay/>: %s", m.body, got.Raw)
		}
	}

	pEv := evs[1]
	check := func(name string, want []msg, res []mamResult) {
		t.Helper()
		if len(res) != len(want) {
			t.Errorf("%s: %d results, want %d", name, len(res), len(want))
		}
		seen := map[string]bool{}
		for i, r := range res {
			if seen[r.ID] {
				t.Errorf("%s: result id %q twice", name, r.ID)
			}
			seen[r.ID] = true
			if i >= len(want) {
				t.Errorf("%s: extra result %+v", name, r)
				continue
			}
			w := want[i]
			if r.Body != w.body || r.From != w.from || r.To != w.to {
				t.Errorf("%s: result %d is %q from %s to %s, want %q from %s to %s", name, i, r.Body, r.From, r.To, w.body, w.from, w.to)
			}
			if id, ok := liveID[r.Body]; !ok || id != r.ID {
				t.Errorf("%s: %q has result id %q; it carried stanza-id %q (known %v)", name, r.Body, r.ID, id, ok)
			}
			if _, err := time.Parse(time.RFC3339Nano, r.Stamp); err != nil || r.ParsedStamp == "" {
				t.Errorf("%s: %q delay stamp %q (slixmpp read %q): %v", name, r.Body, r.Stamp, r.ParsedStamp, err)
			}
		}
	}

	all := mamQuery(t, pEv, "all")
	if all.Event != "mam" {
		t.Fatalf("MAM query failed: %s: %s", all.Condition, all.Raw)
	}
	check("all", sent, all.Results)
	var sizes []int
	for _, p := range all.Pages {
		sizes = append(sizes, p.N)
		if p.Count != "30" {
			t.Errorf("page %+v: RSM count %q, want 30", p, p.Count)
		}
	}
	if fmt.Sprint(sizes) != "[7 7 7 7 2]" {
		t.Errorf("page sizes %v, want [7 7 7 7 2] (max 7): %+v", sizes, all.Pages)
	}
	if n := len(all.Pages); n > 0 && all.Pages[n-1].Complete != "true" {
		t.Errorf("last page not complete='true': %+v", all.Pages[n-1])
	}
	check("all-iterate", sent, mamQuery(t, pEv, "all-iterate").Results)

	window := mamQuery(t, pEv, "window")
	check(fmt.Sprintf("window %s..%s", start1.Format(time.RFC3339), end1.Format(time.RFC3339)), offline, window.Results)
	if len(window.Pages) != 2 || window.Pages[0].N != 7 || window.Pages[1].N != 1 || window.Pages[0].Count != "8" {
		t.Errorf("window pages %+v, want 7 then 1 of 8", window.Pages)
	}
	t.Logf("MAM with=%s, max 7: pages %v, %d results; start/end window: %d results", bobBare, sizes, len(all.Results), len(window.Results))

	other := mamQuery(t, pEv, "bob's")
	if other.Event != "mam_error" || other.Condition != wire.ErrForbidden {
		t.Errorf("query of bob's archive from alice: %s %q, want error forbidden: %s %+v", other.Event, other.Condition, other.Raw, other.Results)
	}
}
