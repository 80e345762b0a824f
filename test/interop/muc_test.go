package interop

import (
	"context"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/internal/testserver"
	"github.com/parley-xmpp/parley/wire"
)

// mucLib is slixmpp running slixmpp/muc.py: driver.py with xep_0045.
func mucLib() lib {
	l := slixmpp
	l.command = func(ctx context.Context, cfg []byte) *exec.Cmd {
		return exec.CommandContext(ctx, pythonPath, "slixmpp/muc.py", string(cfg))
	}
	return l
}

type joinedEvent struct {
	Room        string   `json:"room"`
	Nick        string   `json:"nick"`
	Codes       []int    `json:"codes"`
	Role        string   `json:"role"`
	Affiliation string   `json:"affiliation"`
	OccupantID  string   `json:"occupant_id"`
	Occupants   []string `json:"occupants"`
	History     []string `json:"history"`
	Subject     string   `json:"subject"`
	// HistoryStamps are the history's delay stamps as slixmpp's XEP-0082
	// parser read them.
	HistoryStamps []string `json:"history_stamps"`
}

type groupchatEvent struct {
	Op         string `json:"op"`
	Nick       string `json:"nick"`
	StanzaID   string `json:"stanza_id"`
	OccupantID string `json:"occupant_id"`
}

type occupantEvent struct {
	Op          string `json:"op"`
	Type        string `json:"type"`
	Codes       []int  `json:"codes"`
	Role        string `json:"role"`
	Affiliation string `json:"affiliation"`
	JID         string `json:"jid"`
}

type listEvent struct {
	Op   string   `json:"op"`
	JIDs []string `json:"jids"`
}

type configuredEvent struct {
	Fields []string `json:"fields"`
}

// TestSlixmppMUC drives two slixmpp clients through slixmpp's own
// xep_0045 plugin: the owner creates a reserved room through the
// plugin's configuration form calls, the other joins (history, subject,
// occupants, status codes, occupant id), they talk (stanza-ids by the
// room), the owner grants membership and reads the member list, changes
// the subject, invites a third user and kicks the second (307).
func TestSlixmppMUC(t *testing.T) {
	slixmppAvailable(t)
	ts := testserver.Start(t)
	alice := ts.AddUser("alice", "alice-pw")
	bob := ts.AddUser("bob", "bob-pw")
	ts.AddUser("carol", "carol-pw")
	carol := ts.Login("carol", "carol-pw", "desk")
	carol.Send("<presence/>")
	room := "slix@conference." + testserver.Domain
	l := mucLib()

	a := start(t, ts, l, alice+"/phone", "alice-pw",
		op("create", "room", room, "nick", "Alice", "fields", map[string]any{
			"muc#roomconfig_roomname": "Slixmpp room", "muc#roomconfig_persistentroom": true}),
		op("say", "room", room, "body", "before bob"),
		op("wait_groupchat", "room", room, "body", "before bob"),
		op("mark", "name", "ready"),
		op("wait_occupant", "room", room, "nick", "Bob"),
		op("say", "room", room, "body", "hello bob"),
		op("wait_groupchat", "room", room, "body", "hi alice"),
		op("set_affiliation", "room", room, "jid", bob, "affiliation", "member"),
		op("affiliations", "room", room, "affiliation", "member"),
		op("subject", "room", room, "subject", "slixmpp topic"),
		op("invite", "room", room, "jid", "carol@"+testserver.Domain, "reason", "come"),
		op("kick", "room", room, "nick", "Bob", "reason", "bye"),
		op("wait_occupant", "room", room, "nick", "Bob", "type", "unavailable", "code", 307),
	)
	a.waitEvent("mark", "ready", 30*time.Second)
	b := start(t, ts, l, bob+"/laptop", "bob-pw",
		op("join", "room", room, "nick", "Bob", "maxstanzas", 10),
		op("wait_groupchat", "room", room, "body", "hello bob"),
		op("say", "room", room, "body", "hi alice"),
		op("wait_subject", "room", room, "subject", "slixmpp topic"),
		op("wait_occupant", "room", room, "nick", "Bob", "type", "unavailable", "code", 307),
	)
	inv := carol.ExpectWithin("invitation", 30*time.Second, func(s *wire.Stanza) bool { return s.Name == "message" && s.From == room })
	if inv.Child("http://jabber.org/protocol/muc#user", "x").Child("http://jabber.org/protocol/muc#user", "invite") == nil {
		t.Errorf("invitation: %s", inv.Raw)
	}
	evs := finish(t, a, b)
	aEv, bEv := evs[0], evs[1]
	checkLogin(t, l, alice+"/phone", aEv)

	cfg := decode[configuredEvent](t, aEv, "configured")
	if len(cfg) != 1 || !slices.Contains(cfg[0].Fields, "muc#roomconfig_persistentroom") {
		t.Errorf("configuration form as slixmpp read it: %+v", cfg)
	}
	aj := decode[joinedEvent](t, aEv, "joined")
	if len(aj) != 1 || !slices.Contains(aj[0].Codes, 201) || !slices.Contains(aj[0].Codes, 110) || aj[0].Affiliation != "owner" {
		t.Errorf("creation as slixmpp saw it: %+v", aj)
	}
	bj := decode[joinedEvent](t, bEv, "joined")
	if len(bj) != 1 || !slices.Contains(bj[0].Occupants, "Alice") || !slices.Equal(bj[0].History, []string{"before bob"}) ||
		bj[0].Role != "participant" || bj[0].OccupantID == "" || !slices.Contains(bj[0].Codes, 110) ||
		len(bj[0].HistoryStamps) != 1 || bj[0].HistoryStamps[0] == "" {
		t.Errorf("join as slixmpp saw it: %+v\n%s", bj, b.transcript())
	}
	got := decode[groupchatEvent](t, bEv, "groupchat")
	if len(got) != 1 || got[0].Nick != "Alice" || got[0].StanzaID == "" || got[0].OccupantID == "" {
		t.Errorf("groupchat as bob's slixmpp saw it: %+v", got)
	}
	got = decode[groupchatEvent](t, aEv, "groupchat")
	if len(got) != 2 || got[1].Nick != "Bob" || got[1].OccupantID != bj[0].OccupantID {
		t.Errorf("groupchat as alice's slixmpp saw it: %+v", got)
	}
	lists := decode[listEvent](t, aEv, "affiliations")
	if len(lists) != 1 || !slices.Equal(lists[0].JIDs, []string{bob}) {
		t.Errorf("member list: %+v", lists)
	}
	kicked := decode[occupantEvent](t, bEv, "occupant")
	if len(kicked) != 1 || !slices.Contains(kicked[0].Codes, 307) || !slices.Contains(kicked[0].Codes, 110) {
		t.Errorf("kick as bob's slixmpp saw it: %+v", kicked)
	}
	if errs := decode[event](t, append(aEv, bEv...), "muc_error", "join_error"); len(errs) != 0 {
		t.Errorf("errors: %+v", errs)
	}
}

// TestSlixmppMUCJoinErrorsAndResync: slixmpp's join_muc_wait gets a
// refused join as an error at once (the error presence carries the
// <x xmlns='…muc'/> it looks for, as in XEP-0045's examples), not after
// its timeout; and calling it again for a room the client is in returns
// the room again (XEP-0045 §17.3.3: a full synchronization), where it
// used to wait for a subject that never came.
func TestSlixmppMUCJoinErrorsAndResync(t *testing.T) {
	slixmppAvailable(t)
	ts := testserver.Start(t)
	alice := ts.AddUser("alice", "alice-pw")
	bob := ts.AddUser("bob", "bob-pw")
	room := "closed@conference." + testserver.Domain
	locked := "secret@conference." + testserver.Domain
	l := mucLib()
	a := start(t, ts, l, alice+"/phone", "alice-pw",
		op("create", "room", room, "nick", "Alice", "fields", map[string]any{
			"muc#roomconfig_persistentroom": true, "muc#roomconfig_membersonly": true}),
		op("create", "room", locked, "nick", "Alice", "fields", map[string]any{
			"muc#roomconfig_persistentroom": true, "muc#roomconfig_passwordprotectedroom": true, "muc#roomconfig_roomsecret": "s3cret"}),
		op("say", "room", room, "body", "members only"),
		op("wait_groupchat", "room", room, "body", "members only"),
		op("join", "room", room, "nick", "Alice", "maxstanzas", 10),
	)
	aEv := finish(t, a)[0]
	aj := decode[joinedEvent](t, aEv, "joined")
	if len(aj) != 3 || aj[2].Room != room || !slices.Contains(aj[2].Codes, 110) || slices.Contains(aj[2].Codes, 201) ||
		!slices.Equal(aj[2].History, []string{"members only"}) || aj[2].Affiliation != "owner" {
		t.Errorf("joining again as slixmpp saw it: %+v", aj)
	}
	b := start(t, ts, l, bob+"/laptop", "bob-pw",
		op("join", "room", room, "nick", "Bob", "timeout", 5),
		op("join", "room", locked, "nick", "Bob", "password", "wrong", "timeout", 5),
		op("join", "room", locked, "nick", "Bob", "password", "s3cret", "timeout", 5),
	)
	bEv := finish(t, b)[0]
	errs := decode[event](t, bEv, "join_error", "timeout")
	if len(errs) != 2 || errs[0].Condition != "registration-required" || errs[1].Condition != "not-authorized" {
		t.Errorf("refused joins as slixmpp saw them: %+v\n%s", errs, b.transcript())
	}
	if bj := decode[joinedEvent](t, bEv, "joined"); len(bj) != 1 || bj[0].Room != locked {
		t.Errorf("join with the password: %+v", bj)
	}
}

type xjsJoined struct {
	Op          string   `json:"op"`
	Codes       []int    `json:"codes"`
	Role        string   `json:"role"`
	Affiliation string   `json:"affiliation"`
	OccupantID  string   `json:"occupant_id"`
	History     []string `json:"history"`
}

// TestXmppjsMUC: @xmpp/client over TCP creates an instant room, another
// @xmpp/client over WebSocket joins (getting the history), they talk
// both ways with the room's stanza-ids and occupant ids, and leave.
func TestXmppjsMUC(t *testing.T) {
	xmppjsAvailable(t)
	ts := testserver.Start(t)
	alice := ts.AddUser("alice", "alice-pw")
	bob := ts.AddUser("bob", "bob-pw")
	room := "js@conference." + testserver.Domain
	a := start(t, ts, xmppjsTCP, alice+"/tcp", "alice-pw",
		op("presence"),
		op("muc_join", "room", room, "nick", "Alice", "create", true),
		op("muc_say", "room", room, "body", "first"),
		op("muc_wait", "room", room, "body", "first"),
		// bob's node process starts only after "first": on a busy
		// machine its start and login alone can take 10 s.
		op("muc_wait", "room", room, "body", "from websocket", "timeout", 40),
		op("muc_say", "room", room, "body", "from tcp"),
		op("muc_wait", "room", room, "body", "bye"),
	)
	a.waitEvent("groupchat", "first", 30*time.Second)
	b := start(t, ts, xmppjsWS, bob+"/ws", "bob-pw",
		op("presence"),
		op("muc_join", "room", room, "nick", "Bob"),
		op("muc_say", "room", room, "body", "from websocket"),
		op("muc_wait", "room", room, "body", "from tcp"),
		op("muc_say", "room", room, "body", "bye"),
		op("muc_leave", "room", room, "nick", "Bob"),
	)
	evs := finish(t, a, b)
	aEv, bEv := evs[0], evs[1]
	aj := decode[xjsJoined](t, aEv, "joined")
	if len(aj) != 1 || !slices.Contains(aj[0].Codes, 201) || aj[0].Affiliation != "owner" {
		t.Errorf("creation as xmpp.js saw it: %+v", aj)
	}
	bj := decode[xjsJoined](t, bEv, "joined")
	if len(bj) != 1 || !slices.Equal(bj[0].History, []string{"first"}) || bj[0].Role != "participant" || bj[0].OccupantID == "" {
		t.Errorf("join as xmpp.js saw it: %+v", bj)
	}
	gotA := decode[groupchatEvent](t, aEv, "groupchat")
	gotB := decode[groupchatEvent](t, bEv, "groupchat")
	if len(gotA) != 3 || len(gotB) != 1 {
		t.Fatalf("groupchat events: alice %+v, bob %+v", gotA, gotB)
	}
	if gotA[1].Nick != "Bob" || gotA[1].StanzaID == "" || gotA[1].OccupantID != bj[0].OccupantID {
		t.Errorf("bob's message as alice got it: %+v", gotA[1])
	}
	if gotB[0].Nick != "Alice" || gotB[0].StanzaID == "" || gotB[0].OccupantID != aj[0].OccupantID {
		t.Errorf("alice's message as bob got it: %+v", gotB[0])
	}
	left := decode[struct {
		Codes []int `json:"codes"`
	}](t, bEv, "left")
	if len(left) != 1 || !slices.Contains(left[0].Codes, 110) {
		t.Errorf("leaving: %+v", left)
	}
}
