package private

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/storage"
	"github.com/parley-xmpp/parley/storage/sqlite"
	"github.com/parley-xmpp/parley/wire"
)

func openStore(t *testing.T) *sqlite.Store {
	st, err := sqlite.Open(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

type fakePEP struct {
	mu    sync.Mutex
	items []storage.PEPItem
}

func (f *fakePEP) PublishItem(_ context.Context, owner, node, id string, payload []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.items = slices.DeleteFunc(f.items, func(it storage.PEPItem) bool { return it.ID == id })
	f.items = append(f.items, storage.PEPItem{ID: id, Payload: payload})
	return nil
}

func (f *fakePEP) RetractItem(_ context.Context, owner, node, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.items = slices.DeleteFunc(f.items, func(it storage.PEPItem) bool { return it.ID == id })
	return nil
}

func (f *fakePEP) Items(context.Context, string, string) ([]storage.PEPItem, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.items), nil
}

func event(from, to, raw string) *module.Event {
	return &module.Event{Stanza: wire.MustParse(raw), From: jid.MustParse(from), To: jid.MustParse(to),
		Origin: module.Origin{Kind: module.FromClient}}
}

func TestPrivateXML(t *testing.T) {
	m := New(Config{}, openStore(t))
	ctx := t.Context()
	const j = "juliet@capulet.example"
	set := event(j+"/balcony", j, "<iq type='set' id='1'><query xmlns='jabber:iq:private'><exodus xmlns='exodus:prefs'><defaultnick>Hamlet</defaultnick></exodus></query></iq>")
	if _, err := m.handle(ctx, set); err != nil {
		t.Fatal(err)
	}
	get := event(j+"/balcony", j, "<iq type='get' id='2'><query xmlns='jabber:iq:private'><exodus xmlns='exodus:prefs'/></query></iq>")
	res, err := m.handle(ctx, get)
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Child("exodus:prefs", "exodus").ChildText("exodus:prefs", "defaultnick"); got != "Hamlet" {
		t.Fatalf("get = %s", res)
	}
	// Unknown namespace: the empty element back.
	res, err = m.handle(ctx, event(j+"/b", j, "<iq type='get' id='3'><query xmlns='jabber:iq:private'><x xmlns='other'/></query></iq>"))
	if err != nil || res.Child("other", "x") == nil || len(res.Child("other", "x").Elements()) != 0 {
		t.Fatalf("get unknown = %v, %v", res, err)
	}
	cases := []struct{ from, raw, cond string }{
		{"romeo@montague.example/x", string(get.Stanza.Raw), wire.ErrForbidden},
		{j + "/b", "<iq type='set' id='4'><query xmlns='jabber:iq:private'><foo/></query></iq>", wire.ErrNotAcceptable},
		{j + "/b", "<iq type='set' id='4'><query xmlns='jabber:iq:private'><foo xmlns='jabber:iq:private'/></query></iq>", wire.ErrNotAcceptable},
		{j + "/b", "<iq type='set' id='4'><query xmlns='jabber:iq:private'><foo xmlns='jabber:server'/></query></iq>", wire.ErrNotAcceptable},
		{j + "/b", "<iq type='set' id='4'><query xmlns='jabber:iq:private'/></iq>", wire.ErrBadRequest},
	}
	for _, c := range cases {
		_, err := m.handle(ctx, event(c.from, j, c.raw))
		se, ok := err.(*module.StanzaError)
		if !ok || se.Condition != c.cond {
			t.Errorf("%s from %s: %v, want %s", c.raw, c.from, err, c.cond)
		}
	}
}

func TestBookmarksSync(t *testing.T) {
	st := openStore(t)
	p := &fakePEP{}
	m := New(Config{PEP: p}, st)
	ctx := t.Context()
	const j = "juliet@capulet.example"
	set := event(j+"/b", j, `<iq type='set' id='1'><query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'>`+
		`<conference name='Council' autojoin='true' jid='council@conference.example'><nick>Jules</nick></conference>`+
		`<conference jid='other@conference.example'/><url name='x' url='https://example.org'/></storage></query></iq>`)
	if _, err := m.handle(ctx, set); err != nil {
		t.Fatal(err)
	}
	if len(p.items) != 2 || p.items[0].ID != "council@conference.example" ||
		string(p.items[0].Payload) != `<conference xmlns="urn:xmpp:bookmarks:1" name="Council" autojoin="true"><nick>Jules</nick></conference>` &&
			!strings.Contains(string(p.items[0].Payload), "Jules") {
		t.Fatalf("PEP items after set: %+v", p.items)
	}
	// Dropping a room retracts it.
	set = event(j+"/b", j, `<iq type='set' id='1'><query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'>`+
		`<conference jid='other@conference.example'/></storage></query></iq>`)
	if _, err := m.handle(ctx, set); err != nil {
		t.Fatal(err)
	}
	if len(p.items) != 1 || p.items[0].ID != "other@conference.example" {
		t.Fatalf("PEP items after second set: %+v", p.items)
	}
	// PEP to private.
	m.OnPEPPublish(ctx, j, NSBookmarks2, "new@conference.example",
		[]byte(`<conference xmlns='urn:xmpp:bookmarks:1' name='New' autojoin='true'><nick>J</nick></conference>`))
	raw, err := st.PrivateXML(ctx, j, NSBookmarks)
	if err != nil {
		t.Fatal(err)
	}
	stor := wire.MustParse(string(raw)).Tree()
	var rooms []string
	for _, c := range stor.ChildrenNamed(NSBookmarks, "conference") {
		rooms = append(rooms, c.AttrValue("jid"))
		if c.AttrValue("jid") == "new@conference.example" && (c.AttrValue("autojoin") != "true" || c.ChildText(NSBookmarks, "nick") != "J") {
			t.Errorf("converted conference: %s", c)
		}
	}
	if !slices.Equal(rooms, []string{"other@conference.example", "new@conference.example"}) {
		t.Fatalf("rooms after publish = %v (%s)", rooms, raw)
	}
	m.OnPEPRetract(ctx, j, NSBookmarks2, "other@conference.example")
	raw, _ = st.PrivateXML(ctx, j, NSBookmarks)
	if strings.Contains(string(raw), "other@") || !strings.Contains(string(raw), "new@") {
		t.Fatalf("after retract: %s", raw)
	}
}
