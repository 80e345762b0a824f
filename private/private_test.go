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

// fakePEP keeps one owner's items per node (the real service is tested
// with this module in test/e2e).
type fakePEP struct {
	mu    sync.Mutex
	nodes map[string][]storage.PEPItem
}

func (f *fakePEP) PublishItem(_ context.Context, owner, node, id string, payload []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.nodes == nil {
		f.nodes = map[string][]storage.PEPItem{}
	}
	its := slices.DeleteFunc(f.nodes[node], func(it storage.PEPItem) bool { return it.ID == id })
	f.nodes[node] = append(its, storage.PEPItem{ID: id, Payload: payload})
	return nil
}

func (f *fakePEP) RetractItem(_ context.Context, owner, node, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nodes[node] = slices.DeleteFunc(f.nodes[node], func(it storage.PEPItem) bool { return it.ID == id })
	return nil
}

func (f *fakePEP) Items(_ context.Context, _, node string) ([]storage.PEPItem, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.nodes[node]), nil
}

func (f *fakePEP) items(node string) []storage.PEPItem {
	its, _ := f.Items(context.Background(), "", node)
	return its
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
	if its := p.items(NSBookmarks2); len(its) != 2 || its[0].ID != "council@conference.example" ||
		!strings.Contains(string(its[0].Payload), "Jules") {
		t.Fatalf("PEP items after set: %+v", its)
	}
	if its := p.items(NSBookmarks); len(its) != 1 || its[0].ID != "current" || !strings.Contains(string(its[0].Payload), "https://example.org") {
		t.Fatalf("XEP-0048 PEP node after set: %+v", its)
	}
	// Dropping a room retracts it.
	set = event(j+"/b", j, `<iq type='set' id='1'><query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'>`+
		`<conference jid='other@conference.example'/></storage></query></iq>`)
	if _, err := m.handle(ctx, set); err != nil {
		t.Fatal(err)
	}
	if its := p.items(NSBookmarks2); len(its) != 1 || its[0].ID != "other@conference.example" {
		t.Fatalf("PEP items after second set: %+v", its)
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
	if its := p.items(NSBookmarks); len(its) != 1 || string(its[0].Payload) != string(raw) {
		t.Fatalf("XEP-0048 PEP node after a XEP-0402 publish: %+v, private %s", its, raw)
	}
	m.OnPEPRetract(ctx, j, NSBookmarks2, "other@conference.example")
	raw, _ = st.PrivateXML(ctx, j, NSBookmarks)
	if strings.Contains(string(raw), "other@") || !strings.Contains(string(raw), "new@") {
		t.Fatalf("after retract: %s", raw)
	}
	if its := p.items(NSBookmarks); len(its) != 1 || string(its[0].Payload) != string(raw) {
		t.Fatalf("XEP-0048 PEP node after a retraction: %+v", its)
	}

	// A client publishing to the XEP-0048 PEP node: private XML and the
	// XEP-0402 node follow.
	m.OnPEPPublish(ctx, j, NSBookmarks, "current", []byte(`<storage xmlns='storage:bookmarks'>`+
		`<conference jid='pep@conference.example' name='Via PEP'/></storage>`))
	raw, _ = st.PrivateXML(ctx, j, NSBookmarks)
	if !strings.Contains(string(raw), "pep@conference.example") || strings.Contains(string(raw), "new@") {
		t.Fatalf("private XML after a XEP-0048 PEP publish: %s", raw)
	}
	if its := p.items(NSBookmarks2); len(its) != 1 || its[0].ID != "pep@conference.example" {
		t.Fatalf("XEP-0402 node after a XEP-0048 PEP publish: %+v", its)
	}
	// Retracting its item empties the list everywhere.
	m.OnPEPRetract(ctx, j, NSBookmarks, "current")
	raw, _ = st.PrivateXML(ctx, j, NSBookmarks)
	if strings.Contains(string(raw), "conference") || len(p.items(NSBookmarks2)) != 0 {
		t.Fatalf("after retracting the XEP-0048 item: %s %+v", raw, p.items(NSBookmarks2))
	}
}
