package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/storage"
	"github.com/parley-xmpp/parley/storage/sqlite"
)

func TestRoomListShow(t *testing.T) {
	cfg, dataDir := testCLIConfig(t, "")
	ctx := context.Background()
	st, err := sqlite.Open(ctx, dataDir)
	if err != nil {
		t.Fatal(err)
	}
	created := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	room := "lobby@conference.localhost"
	if err := st.CreateRoom(ctx, storage.MUCRoom{JID: room, Name: "The Lobby", Public: true,
		Config: []byte(`{"name":"The Lobby","password":"hunter2","members_only":true}`), Subject: "welcome",
		SubjectBy: "alice", SubjectAt: created, Created: created}, []storage.MUCAffiliation{
		{JID: "alice@localhost", Affiliation: storage.AffOwner},
		{JID: "bob@localhost", Affiliation: storage.AffMember, Nick: "Bobby"},
		{JID: "spam.example", Affiliation: storage.AffOutcast, Reason: "spam"}}); err != nil {
		t.Fatal(err)
	}
	st.Close()

	r := runCLI(t, "", "room", "list", "--config", cfg)
	okHas(t, r, room)
	if !regexpMatch(`lobby@conference.localhost\s+The Lobby\s+true\s+alice@localhost\s+1\s+2026-01-02T03:04:05Z`, r.out) {
		t.Errorf("list:\n%s", r.out)
	}
	r = runCLI(t, "", "room", "show", room, "--config", cfg)
	okHas(t, r, "welcome (by alice")
	for _, want := range []string{"bob@localhost", "Bobby", "spam.example", "outcast", `"members_only":true`, `"password":"(set)"`} {
		if !strings.Contains(r.out, want) {
			t.Errorf("show lacks %q:\n%s", want, r.out)
		}
	}
	if strings.Contains(r.out, "hunter2") {
		t.Errorf("show prints the room password:\n%s", r.out)
	}
	r = runCLI(t, "", "room", "show", "nope@conference.localhost", "--config", cfg)
	if r.code == 0 || !strings.Contains(r.err, "no persistent room") {
		t.Errorf("missing room: code %d, %q", r.code, r.err)
	}
	r = runCLI(t, "", "room", "show", "not a jid", "--config", cfg)
	if r.code == 0 {
		t.Errorf("bad JID accepted: %q", r.out)
	}
}
