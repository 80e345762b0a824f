package mam

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/internal/modtest"
	"github.com/parley-xmpp/parley/storage"
	"github.com/parley-xmpp/parley/wire"
	"github.com/parley-xmpp/parley/xep"
)

func formVars(e *env, s *modtest.Session) []string {
	e.T.Helper()
	_, reply := e.IQCollect(s, "<iq type='get' id='f1'><query xmlns='urn:xmpp:mam:2'/></iq>")
	var vars []string
	for _, f := range reply.Child(NS, "query").Child(xep.NSDataForms, "x").ChildrenNamed(xep.NSDataForms, "field") {
		vars = append(vars, f.AttrValue("var"))
	}
	return vars
}

func TestFulltextDisabled(t *testing.T) {
	e := setup(t, Config{})
	bob := e.login("bob@example.org/b")
	if vars := formVars(e, bob); slices.Contains(vars, fulltextField) {
		t.Fatalf("form offers %s when disabled: %v", fulltextField, vars)
	}
	if slices.Contains(e.Registry.AccountFeatures(), NSFulltext) {
		t.Fatal("fulltext feature advertised when disabled")
	}
	_, reply := e.IQCollect(bob, "<iq type='set' id='q1'><query xmlns='urn:xmpp:mam:2'>"+form(fulltextField, "x")+"</query></iq>")
	if got := modtest.ErrCondition(reply); got != wire.ErrFeatureNotImplemented {
		t.Fatalf("search when disabled: %s", reply.Raw)
	}
}

func TestFulltextQuery(t *testing.T) {
	e := setup(t, Config{Settings: Settings{Fulltext: true}})
	bob := e.login("bob@example.org/b")
	if vars := formVars(e, bob); !slices.Contains(vars, fulltextField) {
		t.Fatalf("form fields %v lack %s", vars, fulltextField)
	}
	if !slices.Contains(e.Registry.AccountFeatures(), NSFulltext) {
		t.Fatal("fulltext feature not advertised")
	}
	var ids []string
	for i, raw := range []string{
		"<message type='chat'><body>Meet at the orchard</body></message>",
		"<message type='chat'><body>orchard</body><encrypted xmlns='eu.siacs.conversations.axolotl'><payload>eA==</payload></encrypted></message>",
		"<message type='chat'><body>The ORCHARD walls are high</body></message>",
		"<message type='chat'><body>nothing here</body></message>",
	} {
		id, err := e.Store.AppendArchive(context.Background(), "bob@example.org", storage.ArchivedMessage{
			With: "romeo@other.example", Timestamp: base.Add(time60(i)), FromFull: "romeo@other.example/r", Raw: []byte(raw)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	f, reply := e.query(bob, form(fulltextField, "orchard"))
	if reply.Type != "result" || !slices.Equal(f.results, []string{ids[0], ids[2]}) || f.count != "2" || !f.complete || f.index != "0" {
		t.Fatalf("search: %+v %s", f, reply.Raw)
	}
	// Paging inside the matches; the index is the position among them.
	f, _ = e.query(bob, form(fulltextField, "orchard")+rsm("<max>1</max><before/>"))
	if !slices.Equal(f.results, []string{ids[2]}) || f.count != "2" || f.index != "1" || f.complete {
		t.Fatalf("last page of matches: %+v", f)
	}
	// Blank: no filter.
	f, _ = e.query(bob, form(fulltextField, ""))
	if len(f.results) != 4 {
		t.Fatalf("blank search: %+v", f)
	}
	long := make([]byte, maxFulltext+1)
	for i := range long {
		long[i] = 'a'
	}
	_, reply = e.IQCollect(bob, "<iq type='set' id='q2'><query xmlns='urn:xmpp:mam:2'>"+form(fulltextField, string(long))+"</query></iq>")
	if got := modtest.ErrCondition(reply); got != wire.ErrPolicyViolation {
		t.Fatalf("too long: %s", reply.Raw)
	}
}

func time60(i int) time.Duration { return time.Duration(i) * time.Minute }

// TestRSMIndex: XEP-0059 §2.5 page jumps; <first index/> echoes the
// request and <count/> stays the size of the whole result set.
func TestRSMIndex(t *testing.T) {
	e := setup(t, Config{})
	bob := e.login("bob@example.org/b")
	ids := e.seed("bob@example.org", 10)
	f, reply := e.query(bob, rsm("<max>3</max><index>4</index>"))
	if reply.Type != "result" || !slices.Equal(f.results, ids[4:7]) || f.index != "4" || f.count != "10" || f.complete || f.first != ids[4] {
		t.Fatalf("index 4: %+v %s", f, reply.Raw)
	}
	f, _ = e.query(bob, rsm("<max>3</max><index>8</index>"))
	if !slices.Equal(f.results, ids[8:]) || f.index != "8" || f.count != "10" || !f.complete {
		t.Fatalf("index 8: %+v", f)
	}
	f, _ = e.query(bob, rsm("<max>3</max><index>10</index>"))
	if len(f.results) != 0 || f.count != "10" || !f.complete || f.first != "" {
		t.Fatalf("index at the end: %+v", f)
	}
	f, _ = e.query(bob, form("with", "nurse@example.org")+rsm("<max>2</max><index>1</index>")+"<flip-page/>")
	if !slices.Equal(f.results, []string{ids[5], ids[3]}) || f.index != "1" || f.count != "5" {
		t.Fatalf("filtered, flipped: %+v", f)
	}
	for name, q := range map[string]string{
		"negative":    rsm("<index>-1</index>"),
		"not a num":   rsm("<index>x</index>"),
		"with after":  rsm("<index>2</index><after>" + ids[0] + "</after>"),
		"with before": rsm("<index>2</index><before/>"),
	} {
		_, reply := e.IQCollect(bob, "<iq type='set' id='q3'><query xmlns='urn:xmpp:mam:2'>"+q+"</query></iq>")
		if got := modtest.ErrCondition(reply); got != wire.ErrBadRequest {
			t.Errorf("%s: %s", name, reply.Raw)
		}
	}
}

// unindexedArchive answers searches as a store whose full-text index is
// off or being rebuilt does.
type unindexedArchive struct{ storage.Archive }

func (u unindexedArchive) QueryArchive(ctx context.Context, owner string, q storage.ArchiveQuery) (storage.ArchivePage, error) {
	if q.Fulltext != "" {
		return storage.ArchivePage{}, storage.ErrFulltextUnavailable
	}
	return u.Archive.QueryArchive(ctx, owner, q)
}

// TestFulltextUnavailable: a search the index cannot answer completely is
// refused with a wait-type resource-constraint, and plain queries work.
func TestFulltextUnavailable(t *testing.T) {
	me := modtest.New(t)
	m := New(Config{Settings: Settings{Fulltext: true}}, unindexedArchive{me.Store}, me.Store)
	me.Register(m)
	e := &env{Env: me, mod: m}
	bob := e.login("bob@example.org/b")
	ids := e.seed("bob@example.org", 2)
	_, reply := e.IQCollect(bob, "<iq type='set' id='q1'><query xmlns='urn:xmpp:mam:2'>"+form(fulltextField, "x")+"</query></iq>")
	if got := modtest.ErrCondition(reply); got != wire.ErrResourceConstraint || reply.Child(wire.NSClient, "error").AttrValue("type") != "wait" {
		t.Fatalf("search without index: %s", reply.Raw)
	}
	if f, _ := e.query(bob, ""); !slices.Equal(f.results, ids) {
		t.Fatalf("plain query: %+v", f)
	}
}
