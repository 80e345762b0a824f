package storagetest

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/parley-xmpp/parley/storage"
)

// runMUC runs the contract of storage.MUCRooms and storage.ArchiveEditor
// (rooms, affiliations, account deletion, tombstones in a room archive).
func runMUC(t *testing.T, open opener) {
	t.Run("Rooms", func(t *testing.T) { testMUCRooms(t, open) })
	t.Run("Affiliations", func(t *testing.T) { testMUCAffiliations(t, open) })
	t.Run("DeleteAccount", func(t *testing.T) { testMUCDeleteAccount(t, open) })
	t.Run("ReplaceArchived", func(t *testing.T) { testReplaceArchived(t, open) })
	t.Run("Concurrency", func(t *testing.T) { testMUCConcurrency(t, open) })
}

// config1 is an opaque configuration with bytes a text column would alter.
var config1 = []byte("{\"name\":\"Zoë's <room> & \\u0000\"}\x00\xff\xfe")

func wantRoom(t *testing.T, what string, got, want storage.MUCRoom) {
	t.Helper()
	if got.JID != want.JID || got.Name != want.Name || got.Public != want.Public || string(got.Config) != string(want.Config) ||
		got.Subject != want.Subject || got.SubjectBy != want.SubjectBy || !got.SubjectAt.Equal(want.SubjectAt) ||
		!got.Created.Equal(want.Created) {
		t.Fatalf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

func wantAffs(t *testing.T, what string, got []storage.MUCAffiliation, want ...storage.MUCAffiliation) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

func testMUCRooms(t *testing.T, open opener) {
	st := open(t)
	ctx := t.Context()
	room := storage.MUCRoom{JID: "café@conference.example.org", Name: "Café ☕", Public: true, Config: config1,
		Subject: "Today: <tea> & \"cake\"", SubjectBy: "zoë", SubjectAt: stamp(5), Created: stamp(0)}
	owner := storage.MUCAffiliation{JID: "alice@example.org", Affiliation: storage.AffOwner, LastNick: "Alice"}
	must(t, "CreateRoom", st.CreateRoom(ctx, room, []storage.MUCAffiliation{owner}))
	wantErr(t, "CreateRoom twice", st.CreateRoom(ctx, room, nil), storage.ErrExists)
	got, err := st.Room(ctx, room.JID)
	must(t, "Room", err)
	wantRoom(t, "Room", got, room)
	affs, err := st.RoomAffiliations(ctx, room.JID)
	must(t, "RoomAffiliations", err)
	wantAffs(t, "first affiliations", affs, owner)
	_, err = st.Room(ctx, "nope@conference.example.org")
	wantErr(t, "Room of a missing room", err, storage.ErrNotFound)

	// A room without subject or configuration, and rooms of another service.
	plain := storage.MUCRoom{JID: "b@conference.example.org", Created: stamp(1)}
	must(t, "CreateRoom plain", st.CreateRoom(ctx, plain, nil))
	must(t, "CreateRoom other service", st.CreateRoom(ctx, storage.MUCRoom{JID: "a@muc.example.net", Created: stamp(2)}, nil))
	got, err = st.Room(ctx, plain.JID)
	must(t, "Room plain", err)
	plain.Config = []byte{}
	wantRoom(t, "Room plain", got, plain)
	list, err := st.Rooms(ctx, "conference.example.org")
	must(t, "Rooms", err)
	if len(list) != 2 || list[0].JID != plain.JID || list[1].JID != room.JID {
		t.Fatalf("Rooms = %+v, want b@ then café@ (sorted by JID)", list)
	}
	wantRoom(t, "Rooms[1]", list[1], room)
	if list, err := st.Rooms(ctx, "empty.example.org"); err != nil || len(list) != 0 {
		t.Fatalf("Rooms of an empty service = %v, %v", list, err)
	}

	// Update keeps Created, replaces the rest.
	upd := room
	upd.Name, upd.Public, upd.Config, upd.Subject, upd.SubjectBy, upd.SubjectAt, upd.Created =
		"Renamed", false, []byte("{}"), "", "", stamp(9), stamp(100)
	must(t, "UpdateRoom", st.UpdateRoom(ctx, upd))
	got, err = st.Room(ctx, room.JID)
	must(t, "Room after update", err)
	upd.Created = room.Created
	wantRoom(t, "Room after update", got, upd)
	wantErr(t, "UpdateRoom of a missing room", st.UpdateRoom(ctx, storage.MUCRoom{JID: "nope@conference.example.org"}), storage.ErrNotFound)

	// Delete takes the affiliations and the vCard along; the JID can be
	// used again. A vCard of a room that was never stored goes too.
	must(t, "SetVCard room", st.SetVCard(ctx, room.JID, vcard1))
	must(t, "SetVCard temporary room", st.SetVCard(ctx, "temp@conference.example.org", vcard2))
	must(t, "DeleteRoom", st.DeleteRoom(ctx, room.JID))
	_, err = st.VCard(ctx, room.JID)
	wantErr(t, "VCard of a deleted room", err, storage.ErrNotFound)
	wantErr(t, "DeleteRoom of a temporary room", st.DeleteRoom(ctx, "temp@conference.example.org"), storage.ErrNotFound)
	_, err = st.VCard(ctx, "temp@conference.example.org")
	wantErr(t, "VCard of a deleted temporary room", err, storage.ErrNotFound)
	_, err = st.Room(ctx, room.JID)
	wantErr(t, "Room after delete", err, storage.ErrNotFound)
	wantErr(t, "DeleteRoom twice", st.DeleteRoom(ctx, room.JID), storage.ErrNotFound)
	ua, err := st.UserRoomAffiliations(ctx, owner.JID)
	must(t, "UserRoomAffiliations", err)
	if len(ua) != 0 {
		t.Fatalf("affiliations survived their room: %+v", ua)
	}
	must(t, "CreateRoom again", st.CreateRoom(ctx, room, nil))
	affs, err = st.RoomAffiliations(ctx, room.JID)
	must(t, "RoomAffiliations of the new room", err)
	wantAffs(t, "affiliations of a re-created room", affs)
}

func testMUCAffiliations(t *testing.T, open opener) {
	st := open(t)
	ctx := t.Context()
	r1, r2 := "r1@conference.example.org", "r2@conference.example.org"
	for _, r := range []string{r1, r2} {
		must(t, "CreateRoom", st.CreateRoom(ctx, storage.MUCRoom{JID: r, Created: stamp(0)}, nil))
	}
	bob := storage.MUCAffiliation{JID: "bob@example.org", Affiliation: storage.AffMember, Nick: "Bøb <3", LastNick: "bob2", Notify: "all"}
	evil := storage.MUCAffiliation{JID: "evil.example", Affiliation: storage.AffOutcast, Reason: "spam & 'abuse'"}
	admin := storage.MUCAffiliation{JID: "ann@example.org", Affiliation: storage.AffAdmin}
	for _, a := range []storage.MUCAffiliation{bob, evil, admin} {
		must(t, "SetRoomAffiliation", st.SetRoomAffiliation(ctx, r1, a))
	}
	must(t, "SetRoomAffiliation r2", st.SetRoomAffiliation(ctx, r2, storage.MUCAffiliation{JID: bob.JID, Affiliation: storage.AffOwner}))
	affs, err := st.RoomAffiliations(ctx, r1)
	must(t, "RoomAffiliations", err)
	wantAffs(t, "RoomAffiliations (sorted by JID)", affs, admin, bob, evil)

	// Replace: every field follows.
	bob2 := storage.MUCAffiliation{JID: bob.JID, Affiliation: storage.AffAdmin, Reason: "promoted"}
	must(t, "SetRoomAffiliation replace", st.SetRoomAffiliation(ctx, r1, bob2))
	ua, err := st.UserRoomAffiliations(ctx, bob.JID)
	must(t, "UserRoomAffiliations", err)
	want := []storage.RoomAffiliation{{Room: r1, MUCAffiliation: bob2},
		{Room: r2, MUCAffiliation: storage.MUCAffiliation{JID: bob.JID, Affiliation: storage.AffOwner}}}
	if !slices.Equal(ua, want) {
		t.Fatalf("UserRoomAffiliations:\n got %+v\nwant %+v", ua, want)
	}

	// "none" and "" remove.
	must(t, "SetRoomAffiliation none", st.SetRoomAffiliation(ctx, r1, storage.MUCAffiliation{JID: evil.JID, Affiliation: "none"}))
	must(t, "SetRoomAffiliation empty", st.SetRoomAffiliation(ctx, r1, storage.MUCAffiliation{JID: admin.JID}))
	must(t, "SetRoomAffiliation none of nobody", st.SetRoomAffiliation(ctx, r1, storage.MUCAffiliation{JID: "x@example.org", Affiliation: "none"}))
	affs, err = st.RoomAffiliations(ctx, r1)
	must(t, "RoomAffiliations after removal", err)
	wantAffs(t, "after removal", affs, bob2)

	wantErr(t, "SetRoomAffiliation in a missing room",
		st.SetRoomAffiliation(ctx, "nope@conference.example.org", bob), storage.ErrNotFound)

	must(t, "DeleteUserRoomAffiliations", st.DeleteUserRoomAffiliations(ctx, bob.JID))
	ua, err = st.UserRoomAffiliations(ctx, bob.JID)
	must(t, "UserRoomAffiliations after delete", err)
	if len(ua) != 0 {
		t.Fatalf("affiliations left after DeleteUserRoomAffiliations: %+v", ua)
	}
}

// testMUCDeleteAccount: deleting an account removes its affiliations in
// every room and nobody else's; the rooms stay.
func testMUCDeleteAccount(t *testing.T, open opener) {
	st := open(t)
	ctx := t.Context()
	must(t, "CreateAccount", st.CreateAccount(ctx, "carol@example.org", []storage.SCRAMCredential{credSHA1}))
	must(t, "CreateAccount", st.CreateAccount(ctx, "dave@example.org", []storage.SCRAMCredential{credSHA1}))
	room := "r@conference.example.org"
	carol := storage.MUCAffiliation{JID: "carol@example.org", Affiliation: storage.AffOwner, Nick: "carol"}
	dave := storage.MUCAffiliation{JID: "dave@example.org", Affiliation: storage.AffMember}
	must(t, "CreateRoom", st.CreateRoom(ctx, storage.MUCRoom{JID: room, Created: stamp(0)}, []storage.MUCAffiliation{carol, dave}))
	must(t, "DeleteAccount", st.DeleteAccount(ctx, carol.JID))
	affs, err := st.RoomAffiliations(ctx, room)
	must(t, "RoomAffiliations", err)
	wantAffs(t, "after deleting carol", affs, dave)
	if _, err := st.Room(ctx, room); err != nil {
		t.Fatalf("the room went with its owner's account: %v", err)
	}
}

// testReplaceArchived: a message of a room archive is replaced in place
// (moderation tombstone): same id, position, metadata; other archives
// untouched; the full-text index follows the new bytes.
func testReplaceArchived(t *testing.T, open opener) {
	st := open(t)
	ctx := t.Context()
	room := "r@conference.example.org"
	ids := make([]string, 3)
	for i := range ids {
		id, err := st.AppendArchive(ctx, room, storage.ArchivedMessage{With: room, WithResource: "nick", Timestamp: stamp(i),
			FromFull: "bob@example.org/phone", Raw: fmt.Appendf(nil, "<message type='groupchat'><body>secret word%d</body></message>", i)})
		must(t, "AppendArchive", err)
		ids[i] = id
	}
	other, err := st.AppendArchive(ctx, "bob@example.org", storage.ArchivedMessage{With: "x@example.org", Timestamp: stamp(1), Raw: stanza1})
	must(t, "AppendArchive other", err)
	tomb := []byte("<message type='groupchat'><retracted xmlns='urn:xmpp:message-retract:1' stamp='x'/></message>")
	must(t, "ReplaceArchived", st.ReplaceArchived(ctx, room, ids[1], tomb))
	page, err := st.QueryArchive(ctx, room, storage.ArchiveQuery{Max: 10})
	must(t, "QueryArchive", err)
	if got := pageIDs(page); !slices.Equal(got, ids) {
		t.Fatalf("ids after replace = %v, want %v", got, ids)
	}
	m := page.Messages[1]
	wantBytes(t, "replaced raw", m.Raw, tomb)
	if m.WithResource != "nick" || m.FromFull != "bob@example.org/phone" || !m.Timestamp.Equal(stamp(1)) {
		t.Fatalf("metadata changed by the replacement: %+v", m)
	}
	wantErr(t, "ReplaceArchived of a missing id", st.ReplaceArchived(ctx, room, other, tomb), storage.ErrNotFound)
	wantErr(t, "ReplaceArchived in a missing archive", st.ReplaceArchived(ctx, "nope@conference.example.org", ids[0], tomb), storage.ErrNotFound)
	page, err = st.QueryArchive(ctx, "bob@example.org", storage.ArchiveQuery{Max: 10})
	must(t, "QueryArchive other", err)
	wantBytes(t, "other archive", page.Messages[0].Raw, stanza1)
	// The replaced text is no longer found by a search (when the store
	// keeps a full-text index at all).
	res, err := st.QueryArchive(ctx, room, storage.ArchiveQuery{Fulltext: "word1", Max: 10})
	if err == nil && len(res.Messages) != 0 {
		t.Fatalf("the retracted text is still found by full-text search: %v", pageIDs(res))
	}
}

// testMUCConcurrency: concurrent affiliation changes of one room and of
// several rooms all land.
func testMUCConcurrency(t *testing.T, open opener) {
	st := open(t)
	ctx := t.Context()
	rooms := []string{"a@conference.example.org", "b@conference.example.org"}
	for _, r := range rooms {
		must(t, "CreateRoom", st.CreateRoom(ctx, storage.MUCRoom{JID: r, Created: stamp(0)}, nil))
	}
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n*len(rooms))
	for _, r := range rooms {
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- st.SetRoomAffiliation(ctx, r, storage.MUCAffiliation{JID: fmt.Sprintf("u%02d@example.org", i), Affiliation: storage.AffMember})
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		must(t, "concurrent SetRoomAffiliation", err)
	}
	for _, r := range rooms {
		affs, err := st.RoomAffiliations(ctx, r)
		must(t, "RoomAffiliations", err)
		if len(affs) != n {
			t.Fatalf("%s has %d affiliations, want %d", r, len(affs), n)
		}
	}
}
