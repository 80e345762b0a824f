package storagetest

import (
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/parley-xmpp/parley/storage"
)

// pepOpener returns a new, empty PEP store and arranges (with t.Cleanup)
// for it to be closed. When the value also implements storage.Accounts,
// runPEP checks that DeleteAccount removes the account's nodes and items.
type pepOpener = func(t *testing.T) storage.PEP

// runPEP runs the PEP storage contract (XEP-0163 nodes and items) as
// subtests of t.
func runPEP(t *testing.T, open pepOpener) {
	t.Run("Nodes", func(t *testing.T) { testPEPNodes(t, open) })
	t.Run("PublishAndTrim", func(t *testing.T) { testPEPPublish(t, open) })
	t.Run("Retrieve", func(t *testing.T) { testPEPRetrieve(t, open) })
	t.Run("RetractPurge", func(t *testing.T) { testPEPRetractPurge(t, open) })
	t.Run("MissingNode", func(t *testing.T) { testPEPMissingNode(t, open) })
	t.Run("Isolation", func(t *testing.T) { testPEPIsolation(t, open) })
	t.Run("Concurrency", func(t *testing.T) { testPEPConcurrency(t, open) })
	t.Run("DeleteAccount", func(t *testing.T) { testPEPDeleteAccount(t, open) })
}

const (
	pepOwner = "juliet@capulet.example"
	pepOther = "romeo@montague.example"
)

var (
	pepPayload1 = []byte("<list xmlns='eu.siacs.conversations.axolotl'><device id='12345'/><device id='4223' label='Gajim &amp; co 🌹'/></list>")
	pepPayload2 = []byte("<tune xmlns=\"http://jabber.org/protocol/tune\"><title>Wherefore &lt;art&gt; thou — 漢字 \t\r\n</title></tune>")
)

func pepItem(id string, payload []byte, sec int) storage.PEPItem {
	return storage.PEPItem{ID: id, Payload: payload, Publisher: pepOwner + "/balcony", Stamp: stamp(sec)}
}

func wantItems(t *testing.T, what string, got []storage.PEPItem, want ...storage.PEPItem) {
	t.Helper()
	ok := len(got) == len(want)
	for i := 0; ok && i < len(got); i++ {
		g, w := got[i], want[i]
		ok = g.ID == w.ID && string(g.Payload) == string(w.Payload) && g.Publisher == w.Publisher && g.Stamp.Equal(w.Stamp)
	}
	if !ok {
		t.Fatalf("%s:\n got %s\nwant %s", what, fmtItems(got), fmtItems(want))
	}
}

func fmtItems(its []storage.PEPItem) string {
	var b strings.Builder
	for _, it := range its {
		fmt.Fprintf(&b, "\n  {%q %q by %q at %s}", it.ID, it.Payload, it.Publisher, it.Stamp.UTC().Format("15:04:05.000000"))
	}
	return b.String()
}

func testPEPNodes(t *testing.T, open pepOpener) {
	st := open(t)
	ctx := t.Context()
	nodes, err := st.PEPNodes(ctx, pepOwner)
	must(t, "PEPNodes", err)
	if len(nodes) != 0 {
		t.Fatalf("PEPNodes on an empty store = %+v", nodes)
	}
	cfg := map[string][]string{
		"pubsub#access_model":          {"roster"},
		"pubsub#roster_groups_allowed": {"Friends", "Family & Co ü", ""},
		"pubsub#max_items":             {"max"},
	}
	must(t, "CreatePEPNode", st.CreatePEPNode(ctx, pepOwner, storage.PEPNode{Name: "urn:xmpp:omemo:2:devices", Config: cfg, Created: stamp(0)}))
	must(t, "CreatePEPNode", st.CreatePEPNode(ctx, pepOwner, storage.PEPNode{Name: "a node 'ü'", Created: stamp(1)}))
	wantErr(t, "CreatePEPNode twice", st.CreatePEPNode(ctx, pepOwner, storage.PEPNode{Name: "a node 'ü'", Created: stamp(2)}), storage.ErrExists)

	n, err := st.PEPNode(ctx, pepOwner, "urn:xmpp:omemo:2:devices")
	must(t, "PEPNode", err)
	if n.Name != "urn:xmpp:omemo:2:devices" || !reflect.DeepEqual(n.Config, cfg) || !n.Created.Equal(stamp(0)) {
		t.Fatalf("PEPNode = %+v, want config %v", n, cfg)
	}
	n, err = st.PEPNode(ctx, pepOwner, "a node 'ü'")
	must(t, "PEPNode", err)
	if n.Config == nil || len(n.Config) != 0 || !n.Created.Equal(stamp(1)) {
		t.Fatalf("node created without config = %+v, want an empty non-nil config", n)
	}
	_, err = st.PEPNode(ctx, pepOwner, "nope")
	wantErr(t, "PEPNode of a missing node", err, storage.ErrNotFound)

	nodes, err = st.PEPNodes(ctx, pepOwner)
	must(t, "PEPNodes", err)
	if len(nodes) != 2 || nodes[0].Name != "a node 'ü'" || nodes[1].Name != "urn:xmpp:omemo:2:devices" {
		t.Fatalf("PEPNodes = %+v, want two nodes sorted by name", nodes)
	}

	cfg2 := map[string][]string{"pubsub#access_model": {"open"}}
	must(t, "SetPEPNodeConfig", st.SetPEPNodeConfig(ctx, pepOwner, "urn:xmpp:omemo:2:devices", cfg2))
	n, err = st.PEPNode(ctx, pepOwner, "urn:xmpp:omemo:2:devices")
	must(t, "PEPNode", err)
	if !reflect.DeepEqual(n.Config, cfg2) {
		t.Fatalf("config after SetPEPNodeConfig = %v, want %v", n.Config, cfg2)
	}
	wantErr(t, "SetPEPNodeConfig of a missing node", st.SetPEPNodeConfig(ctx, pepOwner, "nope", cfg2), storage.ErrNotFound)

	_, err = st.PublishPEPItem(ctx, pepOwner, "a node 'ü'", pepItem("1", pepPayload1, 0), 0)
	must(t, "PublishPEPItem", err)
	must(t, "DeletePEPNode", st.DeletePEPNode(ctx, pepOwner, "a node 'ü'"))
	wantErr(t, "DeletePEPNode twice", st.DeletePEPNode(ctx, pepOwner, "a node 'ü'"), storage.ErrNotFound)
	_, err = st.PEPNode(ctx, pepOwner, "a node 'ü'")
	wantErr(t, "PEPNode after delete", err, storage.ErrNotFound)
	// A node created again under the same name starts empty.
	must(t, "CreatePEPNode again", st.CreatePEPNode(ctx, pepOwner, storage.PEPNode{Name: "a node 'ü'", Created: stamp(3)}))
	its, err := st.PEPItems(ctx, pepOwner, "a node 'ü'", nil, 0)
	must(t, "PEPItems", err)
	wantItems(t, "items of a re-created node", its)
}

func testPEPPublish(t *testing.T, open pepOpener) {
	st := open(t)
	ctx := t.Context()
	const node = "eu.siacs.conversations.axolotl.devicelist"
	must(t, "CreatePEPNode", st.CreatePEPNode(ctx, pepOwner, storage.PEPNode{Name: node, Created: stamp(0)}))

	a, b, c := pepItem("a", pepPayload1, 1), pepItem("b", pepPayload2, 2), pepItem("c", pepPayload1, 3)
	for _, it := range []storage.PEPItem{a, b, c} {
		trimmed, err := st.PublishPEPItem(ctx, pepOwner, node, it, 3)
		must(t, "PublishPEPItem", err)
		if len(trimmed) != 0 {
			t.Fatalf("publishing within max_items trimmed %v", trimmed)
		}
	}
	its, err := st.PEPItems(ctx, pepOwner, node, nil, 0)
	must(t, "PEPItems", err)
	wantItems(t, "all items", its, a, b, c)

	// Republishing an id replaces it and makes it the newest.
	a2 := pepItem("a", pepPayload2, 4)
	trimmed, err := st.PublishPEPItem(ctx, pepOwner, node, a2, 3)
	must(t, "PublishPEPItem", err)
	if len(trimmed) != 0 {
		t.Fatalf("replacing an item trimmed %v", trimmed)
	}
	its, err = st.PEPItems(ctx, pepOwner, node, nil, 0)
	must(t, "PEPItems", err)
	wantItems(t, "after replacing a", its, b, c, a2)

	// A new item beyond max_items pushes out the oldest.
	d := pepItem("d", pepPayload1, 5)
	trimmed, err = st.PublishPEPItem(ctx, pepOwner, node, d, 3)
	must(t, "PublishPEPItem", err)
	if !reflect.DeepEqual(trimmed, []string{"b"}) {
		t.Fatalf("trimmed = %v, want [b]", trimmed)
	}
	its, err = st.PEPItems(ctx, pepOwner, node, nil, 0)
	must(t, "PEPItems", err)
	wantItems(t, "after trimming", its, c, a2, d)

	// A lowered limit trims several at once.
	e := pepItem("e", pepPayload2, 6)
	trimmed, err = st.PublishPEPItem(ctx, pepOwner, node, e, 1)
	must(t, "PublishPEPItem", err)
	if !sameSet(trimmed, []string{"c", "a", "d"}) {
		t.Fatalf("trimmed = %v, want c, a, d", trimmed)
	}
	its, err = st.PEPItems(ctx, pepOwner, node, nil, 0)
	must(t, "PEPItems", err)
	wantItems(t, "singleton", its, e)

	// No limit.
	for i := range 20 {
		_, err := st.PublishPEPItem(ctx, pepOwner, node, pepItem(fmt.Sprint("n", i), pepPayload1, 10+i), 0)
		must(t, "PublishPEPItem", err)
	}
	its, err = st.PEPItems(ctx, pepOwner, node, nil, 0)
	must(t, "PEPItems", err)
	if len(its) != 21 {
		t.Fatalf("%d items without limit, want 21", len(its))
	}
	// Empty payloads and publishers survive.
	empty := storage.PEPItem{ID: "empty", Stamp: stamp(40)}
	_, err = st.PublishPEPItem(ctx, pepOwner, node, empty, 0)
	must(t, "PublishPEPItem empty", err)
	its, err = st.PEPItems(ctx, pepOwner, node, []string{"empty"}, 0)
	must(t, "PEPItems", err)
	wantItems(t, "empty item", its, empty)
}

func testPEPRetrieve(t *testing.T, open pepOpener) {
	st := open(t)
	ctx := t.Context()
	const node = "urn:xmpp:bookmarks:1"
	must(t, "CreatePEPNode", st.CreatePEPNode(ctx, pepOwner, storage.PEPNode{Name: node, Created: stamp(0)}))
	var all []storage.PEPItem
	for i := range 5 {
		it := pepItem(fmt.Sprintf("room%d@conference.example", i), pepPayload2, i)
		_, err := st.PublishPEPItem(ctx, pepOwner, node, it, 0)
		must(t, "PublishPEPItem", err)
		all = append(all, it)
	}
	its, err := st.PEPItems(ctx, pepOwner, node, nil, 2)
	must(t, "PEPItems last 2", err)
	wantItems(t, "last 2, oldest first", its, all[3], all[4])
	its, err = st.PEPItems(ctx, pepOwner, node, nil, 10)
	must(t, "PEPItems last 10", err)
	wantItems(t, "last 10 of 5", its, all...)
	its, err = st.PEPItems(ctx, pepOwner, node, []string{all[4].ID, "missing", all[1].ID}, 0)
	must(t, "PEPItems by id", err)
	wantItems(t, "by id, oldest first, unknown left out", its, all[1], all[4])
	its, err = st.PEPItems(ctx, pepOwner, node, []string{"missing"}, 0)
	must(t, "PEPItems by unknown id", err)
	wantItems(t, "unknown id", its)
}

func testPEPRetractPurge(t *testing.T, open pepOpener) {
	st := open(t)
	ctx := t.Context()
	const node = "http://jabber.org/protocol/tune"
	must(t, "CreatePEPNode", st.CreatePEPNode(ctx, pepOwner, storage.PEPNode{Name: node, Created: stamp(0)}))
	a, b := pepItem("a", pepPayload1, 1), pepItem("b", pepPayload2, 2)
	for _, it := range []storage.PEPItem{a, b} {
		_, err := st.PublishPEPItem(ctx, pepOwner, node, it, 0)
		must(t, "PublishPEPItem", err)
	}
	must(t, "RetractPEPItem", st.RetractPEPItem(ctx, pepOwner, node, "a"))
	wantErr(t, "RetractPEPItem twice", st.RetractPEPItem(ctx, pepOwner, node, "a"), storage.ErrNotFound)
	its, err := st.PEPItems(ctx, pepOwner, node, nil, 0)
	must(t, "PEPItems", err)
	wantItems(t, "after retract", its, b)
	must(t, "PurgePEPItems", st.PurgePEPItems(ctx, pepOwner, node))
	must(t, "PurgePEPItems of an empty node", st.PurgePEPItems(ctx, pepOwner, node))
	its, err = st.PEPItems(ctx, pepOwner, node, nil, 0)
	must(t, "PEPItems", err)
	wantItems(t, "after purge", its)
	if _, err := st.PEPNode(ctx, pepOwner, node); err != nil {
		t.Fatalf("the node is gone after purge: %v", err)
	}
}

func testPEPMissingNode(t *testing.T, open pepOpener) {
	st := open(t)
	ctx := t.Context()
	_, err := st.PublishPEPItem(ctx, pepOwner, "nope", pepItem("a", pepPayload1, 0), 1)
	wantErr(t, "PublishPEPItem", err, storage.ErrNotFound)
	wantErr(t, "RetractPEPItem", st.RetractPEPItem(ctx, pepOwner, "nope", "a"), storage.ErrNotFound)
	wantErr(t, "PurgePEPItems", st.PurgePEPItems(ctx, pepOwner, "nope"), storage.ErrNotFound)
	_, err = st.PEPItems(ctx, pepOwner, "nope", nil, 0)
	wantErr(t, "PEPItems", err, storage.ErrNotFound)
	wantErr(t, "DeletePEPNode", st.DeletePEPNode(ctx, pepOwner, "nope"), storage.ErrNotFound)
}

func testPEPIsolation(t *testing.T, open pepOpener) {
	st := open(t)
	ctx := t.Context()
	const node = "urn:xmpp:avatar:metadata"
	for _, u := range []string{pepOwner, pepOther} {
		must(t, "CreatePEPNode", st.CreatePEPNode(ctx, u, storage.PEPNode{Name: node, Config: map[string][]string{"owner": {u}}, Created: stamp(0)}))
		_, err := st.PublishPEPItem(ctx, u, node, storage.PEPItem{ID: "same", Payload: []byte("<x xmlns='" + u + "'/>"), Publisher: u, Stamp: stamp(1)}, 1)
		must(t, "PublishPEPItem", err)
	}
	must(t, "PurgePEPItems", st.PurgePEPItems(ctx, pepOwner, node))
	its, err := st.PEPItems(ctx, pepOther, node, nil, 0)
	must(t, "PEPItems", err)
	wantItems(t, "other user's items after purge", its,
		storage.PEPItem{ID: "same", Payload: []byte("<x xmlns='" + pepOther + "'/>"), Publisher: pepOther, Stamp: stamp(1)})
	must(t, "DeletePEPNode", st.DeletePEPNode(ctx, pepOwner, node))
	n, err := st.PEPNode(ctx, pepOther, node)
	must(t, "PEPNode of the other user", err)
	if n.Config["owner"][0] != pepOther {
		t.Fatalf("other user's config = %v", n.Config)
	}
}

func testPEPConcurrency(t *testing.T, open pepOpener) {
	st := open(t)
	ctx := t.Context()
	const node = "n"
	must(t, "CreatePEPNode", st.CreatePEPNode(ctx, pepOwner, storage.PEPNode{Name: node, Created: stamp(0)}))
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 40 {
		wg.Go(func() {
			_, err := st.PublishPEPItem(ctx, pepOwner, node, pepItem(fmt.Sprint(i), pepPayload1, i), 5)
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		must(t, "concurrent PublishPEPItem", err)
	}
	its, err := st.PEPItems(ctx, pepOwner, node, nil, 0)
	must(t, "PEPItems", err)
	if len(its) != 5 {
		t.Fatalf("%d items after concurrent publishing with max 5", len(its))
	}
}

func testPEPDeleteAccount(t *testing.T, open pepOpener) {
	st := open(t)
	acc, ok := st.(storage.Accounts)
	if !ok {
		t.Skip("the store does not manage accounts")
	}
	ctx := t.Context()
	for _, u := range []string{pepOwner, pepOther} {
		must(t, "CreateAccount", acc.CreateAccount(ctx, u, nil))
		must(t, "CreatePEPNode", st.CreatePEPNode(ctx, u, storage.PEPNode{Name: "n", Created: stamp(0)}))
		_, err := st.PublishPEPItem(ctx, u, "n", pepItem("a", pepPayload1, 0), 0)
		must(t, "PublishPEPItem", err)
	}
	must(t, "DeleteAccount", acc.DeleteAccount(ctx, pepOwner))
	nodes, err := st.PEPNodes(ctx, pepOwner)
	must(t, "PEPNodes", err)
	if len(nodes) != 0 {
		t.Fatalf("nodes of the deleted account: %+v", nodes)
	}
	// A new account with the same name starts without items.
	must(t, "CreatePEPNode", st.CreatePEPNode(ctx, pepOwner, storage.PEPNode{Name: "n", Created: stamp(1)}))
	its, err := st.PEPItems(ctx, pepOwner, "n", nil, 0)
	must(t, "PEPItems", err)
	wantItems(t, "items of the deleted account", its)
	its, err = st.PEPItems(ctx, pepOther, "n", nil, 0)
	must(t, "PEPItems", err)
	wantItems(t, "items of another account", its, pepItem("a", pepPayload1, 0))
}
