package mam

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/internal/modtest"
	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/storage"
	"github.com/parley-xmpp/parley/wire"
	"github.com/parley-xmpp/parley/xep"
)

// stanzaIDs returns the stanza-ids of a message by their 'by'.
func stanzaIDs(st *wire.Stanza) map[string][]string {
	out := map[string][]string{}
	for _, e := range st.Tree().ChildrenNamed(xep.NSSID, "stanza-id") {
		out[e.AttrValue("by")] = append(out[e.AttrValue("by")], e.AttrValue("id"))
	}
	return out
}

func (e *env) archive(owner string) []storage.ArchivedMessage {
	e.T.Helper()
	p, err := e.Store.QueryArchive(context.Background(), owner, storage.ArchiveQuery{Max: 1000})
	if err != nil {
		e.T.Fatal(err)
	}
	return p.Messages
}

func archiveIDs(ms []storage.ArchivedMessage) []string {
	var ids []string
	for _, m := range ms {
		ids = append(ids, m.ID)
	}
	return ids
}

var base = time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)

// seed stores n messages in owner's archive, one a minute from base,
// alternating between romeo@other.example and nurse@example.org.
func (e *env) seed(owner string, n int) []string {
	e.T.Helper()
	var ids []string
	for i := range n {
		with := "romeo@other.example"
		if i%2 == 1 {
			with = "nurse@example.org"
		}
		id, err := e.Store.AppendArchive(context.Background(), owner, storage.ArchivedMessage{
			With: with, WithResource: "r", Timestamp: base.Add(time.Duration(i) * time.Minute), FromFull: with + "/r",
			Raw: fmt.Appendf(nil, "<message from='%s/r' to='%s' type='chat' id='m%d'><body>%d</body></message>", with, owner, i, i),
		})
		if err != nil {
			e.T.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}

type fin struct {
	complete           bool
	first, last, count string
	index              string
	results, queryIDs  []string
	bodies             []string
	stamps             []string
}

// query runs a MAM query from s and checks the shape of every result.
func (e *env) query(s *modtest.Session, inner string) (fin, *wire.Stanza) {
	e.T.Helper()
	results, reply := e.IQCollect(s, "<iq type='set' id='q1'><query xmlns='urn:xmpp:mam:2' queryid='qid'>"+inner+"</query></iq>")
	var f fin
	if reply.Type != "result" {
		return f, reply
	}
	for _, r := range results {
		res := r.Child(NS, "result")
		if res == nil || r.To != s.JID().String() || r.From != s.JID().Bare().String() {
			e.T.Fatalf("not a result for %s: %s", s.JID(), r.Raw)
		}
		fwd := res.Child(NSForward, "forwarded")
		msg := fwd.Child(wire.NSClient, "message")
		if msg == nil || fwd.Child(xep.NSDelay, "delay") == nil {
			e.T.Fatalf("result without forwarded message and delay: %s", r.Raw)
		}
		f.results = append(f.results, res.AttrValue("id"))
		f.queryIDs = append(f.queryIDs, res.AttrValue("queryid"))
		f.bodies = append(f.bodies, msg.ChildText(wire.NSClient, "body"))
		f.stamps = append(f.stamps, fwd.Child(xep.NSDelay, "delay").AttrValue("stamp"))
	}
	fe := reply.Child(NS, "fin")
	if fe == nil {
		e.T.Fatalf("reply without fin: %s", reply.Raw)
	}
	f.complete = fe.AttrValue("complete") == "true"
	set := fe.Child(NSRSM, "set")
	f.first = set.ChildText(NSRSM, "first")
	if first := set.Child(NSRSM, "first"); first != nil {
		f.index = first.AttrValue("index")
	}
	f.last = set.ChildText(NSRSM, "last")
	f.count = set.ChildText(NSRSM, "count")
	return f, reply
}

func form(fields ...string) string {
	var b strings.Builder
	b.WriteString("<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field>")
	for i := 0; i+1 < len(fields); i += 2 {
		b.WriteString("<field var='" + fields[i] + "'>")
		for _, v := range strings.Split(fields[i+1], " ") {
			b.WriteString("<value>" + v + "</value>")
		}
		b.WriteString("</field>")
	}
	b.WriteString("</x>")
	return b.String()
}

func rsm(inner string) string {
	return "<set xmlns='http://jabber.org/protocol/rsm'>" + inner + "</set>"
}

func TestArchiveBeforeDelivery(t *testing.T) {
	e := setup(t, Config{})
	alice := e.login("alice@example.org/phone")
	bob := e.login("bob@example.org/desk")
	var atDelivery []storage.ArchivedMessage
	bob.OnSend = func(*wire.Stanza) { atDelivery = e.archive("bob@example.org") }

	e.Send(alice, "<message to='bob@example.org' type='chat' id='m1'><body>hi</body></message>")
	got := bob.Take()
	if len(got) != 1 {
		t.Fatalf("bob got %d stanzas", len(got))
	}
	ids := stanzaIDs(got[0])
	if len(ids) != 1 || len(ids["bob@example.org"]) != 1 {
		t.Fatalf("delivered stanza-ids %v: %s", ids, got[0].Raw)
	}
	if len(atDelivery) != 1 || atDelivery[0].ID != ids["bob@example.org"][0] {
		t.Fatalf("archive at delivery time %v, delivered id %v", archiveIDs(atDelivery), ids)
	}
	m := atDelivery[0]
	if m.With != "alice@example.org" || m.WithResource != "phone" || m.FromFull != "alice@example.org/phone" || bytes.Contains(m.Raw, []byte("stanza-id")) {
		t.Errorf("bob's archived message %+v", m)
	}
	// The sender's archive has its own copy; its id is never shown to bob.
	out := e.archive("alice@example.org")
	if len(out) != 1 || out[0].With != "bob@example.org" || out[0].ID == m.ID {
		t.Fatalf("alice's archive %+v", out)
	}
	if got := alice.Take(); len(got) != 0 {
		t.Errorf("alice got %d stanzas", len(got))
	}
}

func TestOutboundToRemoteArchivedAndBounceNot(t *testing.T) {
	e := setup(t, Config{})
	alice := e.login("alice@example.org/phone")
	e.Send(alice, "<message to='romeo@other.example/orchard' type='chat' id='m1'><body>hi</body></message>")
	// No federation in this test: the router bounces; the error is not archived.
	got := alice.Take()
	if len(got) != 1 || got[0].Type != "error" || len(stanzaIDs(got[0])) != 0 {
		t.Fatalf("alice got %d stanzas", len(got))
	}
	a := e.archive("alice@example.org")
	if len(a) != 1 || a[0].With != "romeo@other.example" || a[0].WithResource != "orchard" {
		t.Fatalf("archive %+v", a)
	}
}

func TestWhatIsArchived(t *testing.T) {
	omemo := "<encrypted xmlns='eu.siacs.conversations.axolotl'><header sid='1'><iv>AAAA</iv></header><payload>QUJD</payload></encrypted>"
	cases := []struct {
		name, payload, typ string
		archived           bool
	}{
		{"body", "<body>x</body>", "chat", true},
		{"body normal", "<body>x</body>", "", true},
		{"headline", "<body>x</body>", "headline", false},
		{"groupchat", "<body>x</body>", "groupchat", false},
		{"error", "<body>x</body><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>", "error", false},
		{"no-store", "<body>x</body><no-store xmlns='urn:xmpp:hints'/>", "chat", false},
		{"no-permanent-store", "<body>x</body><no-permanent-store xmlns='urn:xmpp:hints'/>", "chat", false},
		{"chat state only", "<composing xmlns='http://jabber.org/protocol/chatstates'/>", "chat", false},
		{"chat state with store hint", "<active xmlns='http://jabber.org/protocol/chatstates'/><store xmlns='urn:xmpp:hints'/>", "chat", false},
		{"omemo legacy", omemo, "chat", true},
		{"omemo 2", "<encrypted xmlns='urn:xmpp:omemo:2'><header sid='1'/><payload>QUJD</payload></encrypted>", "chat", true},
		{"marker", "<displayed xmlns='urn:xmpp:chat-markers:0' id='x'/>", "chat", true},
		{"receipt", "<received xmlns='urn:xmpp:receipts' id='x'/>", "chat", false},
		{"receipt with store hint", "<received xmlns='urn:xmpp:receipts' id='x'/><store xmlns='urn:xmpp:hints'/>", "chat", true},
		{"subject", "<subject>s</subject>", "", true},
		{"empty", "", "chat", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := setup(t, Config{})
			alice := e.login("alice@example.org/a")
			bob := e.login("bob@example.org/b")
			typ := ""
			if c.typ != "" {
				typ = " type='" + c.typ + "'"
			}
			e.Send(alice, "<message to='bob@example.org/b' id='m1'"+typ+">"+c.payload+"</message>")
			in, out := e.archive("bob@example.org"), e.archive("alice@example.org")
			if c.archived != (len(in) == 1) || c.archived != (len(out) == 1) {
				t.Fatalf("archived in %d, out %d; want %v", len(in), len(out), c.archived)
			}
			got := bob.Take()
			if c.typ == "groupchat" {
				return // bounced by the router
			}
			if len(got) != 1 {
				t.Fatalf("bob got %d", len(got))
			}
			if has := len(stanzaIDs(got[0])) > 0; has != c.archived {
				t.Errorf("stanza-id present %v, want %v: %s", has, c.archived, got[0].Raw)
			}
		})
	}
}

func TestOMEMOWithoutBodyByteForByte(t *testing.T) {
	e := setup(t, Config{})
	bob := e.login("bob@example.org/b")
	raw := "<message from='romeo@other.example/orchard' to='bob@example.org' type='chat' id='x1'>\n  " +
		"<encrypted xmlns=\"eu.siacs.conversations.axolotl\"><header sid='27183'><key rid='31415'>BASE64+/==</key>" +
		"<iv>BASE64</iv></header><payload>\tQUJD&#x41;</payload></encrypted>\n  <store xmlns='urn:xmpp:hints'/></message>"
	in := e.Remote(raw)
	a := e.archive("bob@example.org")
	if len(a) != 1 || !bytes.Equal(a[0].Raw, in.Raw) {
		t.Fatalf("archived %q\nwant     %q", a[0].Raw, in.Raw)
	}
	bob.Take()
	results, _ := e.IQCollect(bob, "<iq type='set' id='q1'><query xmlns='urn:xmpp:mam:2'/></iq>")
	if len(results) != 1 {
		t.Fatalf("%d results", len(results))
	}
	// The result embeds the stored bytes unchanged (plus the jabber:client
	// declaration on the root).
	want := "<message xmlns='jabber:client'" + strings.TrimPrefix(string(in.Raw), "<message")
	if !bytes.Contains(results[0].Raw, []byte(want)) {
		t.Fatalf("result %s\ndoes not contain %s", results[0].Raw, want)
	}
	if enc := results[0].Child(NS, "result").Child(NSForward, "forwarded").Child(wire.NSClient, "message").Child(xep.NSOMEMOLegacy, "encrypted"); enc == nil {
		t.Fatalf("result does not parse to the encrypted message: %s", results[0].Raw)
	}
}

func TestInjectedStanzaIDStripped(t *testing.T) {
	e := setup(t, Config{})
	bob := e.login("bob@example.org/b")
	e.Remote("<message from='romeo@other.example/o' to='bob@example.org' type='chat' id='x'><body>hi</body>" +
		"<stanza-id xmlns='urn:xmpp:sid:0' by='bob@example.org' id='forged'/>" +
		"<stanza-id xmlns='urn:xmpp:sid:0' by='BOB@example.org' id='forged2'/>" +
		"<stanza-id xmlns='urn:xmpp:sid:0' by='other.example' id='theirs'/></message>")
	got := bob.Take()
	ids := stanzaIDs(got[0])
	a := e.archive("bob@example.org")
	if len(a) != 1 || !slices.Equal(ids["bob@example.org"], []string{a[0].ID}) || len(ids["BOB@example.org"]) != 0 {
		t.Fatalf("stanza-ids %v, archive %v", ids, archiveIDs(a))
	}
	if !slices.Equal(ids["other.example"], []string{"theirs"}) {
		t.Errorf("another entity's stanza-id was touched: %v", ids)
	}
	if bytes.Contains(a[0].Raw, []byte("forged")) {
		t.Errorf("forged id archived: %s", a[0].Raw)
	}
	// Stripped even when the message is not archived.
	e.Remote("<message from='romeo@other.example/o' to='bob@example.org/b' type='chat' id='y'><body>hi</body>" +
		"<no-store xmlns='urn:xmpp:hints'/><stanza-id xmlns='urn:xmpp:sid:0' by='bob@example.org' id='forged'/></message>")
	got = bob.Take()
	if len(got) != 1 || len(stanzaIDs(got[0])) != 0 {
		t.Fatalf("no-store message delivered as %s", got[0].Raw)
	}
	// And a user's own client cannot plant one in its sent messages.
	alice := e.login("alice@example.org/a")
	e.Send(alice, "<message to='bob@example.org' type='chat' id='z'><body>hi</body><stanza-id xmlns='urn:xmpp:sid:0' by='alice@example.org' id='mine'/></message>")
	if out := e.archive("alice@example.org"); len(out) != 1 || bytes.Contains(out[0].Raw, []byte("mine")) {
		t.Fatalf("alice's archive %+v", out)
	}
}

func TestDedupByOriginID(t *testing.T) {
	e := setup(t, Config{})
	alice := e.login("alice@example.org/a")
	bob := e.login("bob@example.org/b")
	msg := "<message to='bob@example.org' type='chat' id='m%d'><body>hi</body><origin-id xmlns='urn:xmpp:sid:0' id='o1'/></message>"
	e.Send(alice, fmt.Sprintf(msg, 1))
	e.Send(alice, fmt.Sprintf(msg, 2)) // resent, e.g. after a reconnect
	got := bob.Take()
	if len(got) != 2 {
		t.Fatalf("bob got %d (the resend is still delivered)", len(got))
	}
	in, out := e.archive("bob@example.org"), e.archive("alice@example.org")
	if len(in) != 1 || len(out) != 1 {
		t.Fatalf("archived in %d, out %d; want 1, 1", len(in), len(out))
	}
	if a, b := stanzaIDs(got[0])["bob@example.org"], stanzaIDs(got[1])["bob@example.org"]; !slices.Equal(a, b) || a[0] != in[0].ID {
		t.Errorf("stanza-ids %v %v, archive %s", a, b, in[0].ID)
	}
	// Another resource using the same origin-id is a different message.
	alice2 := e.login("alice@example.org/b")
	e.Send(alice2, fmt.Sprintf(msg, 3))
	if in := e.archive("bob@example.org"); len(in) != 2 {
		t.Fatalf("other resource: %d archived", len(in))
	}
	// Outside the window it is archived again.
	e.mod.now = func() time.Time { return time.Now().Add(10 * time.Minute) }
	e.Send(alice, fmt.Sprintf(msg, 4))
	if in := e.archive("bob@example.org"); len(in) != 3 {
		t.Fatalf("after the window: %d archived", len(in))
	}
}

func TestMessageToSelfArchivedOnce(t *testing.T) {
	e := setup(t, Config{})
	a := e.login("alice@example.org/a")
	b := e.login("alice@example.org/b")
	e.Send(a, "<message to='alice@example.org/b' type='chat' id='m1'><body>note</body></message>")
	arch := e.archive("alice@example.org")
	if len(arch) != 1 || arch[0].With != "alice@example.org" {
		t.Fatalf("archive %+v", arch)
	}
	got := b.Take()
	if len(got) != 1 || stanzaIDs(got[0])["alice@example.org"][0] != arch[0].ID {
		t.Fatalf("delivered %v", got)
	}
	// 'with' set to the account finds it.
	f, _ := e.query(a, form("with", "alice@example.org"))
	if !slices.Equal(f.results, []string{arch[0].ID}) {
		t.Fatalf("with self: %v", f.results)
	}
}

func TestNoArchiveForUnknownUser(t *testing.T) {
	e := setup(t, Config{})
	e.Remote("<message from='romeo@other.example/o' to='ghost@example.org' type='chat' id='x'><body>hi</body></message>")
	if a := e.archive("ghost@example.org"); len(a) != 0 {
		t.Fatalf("archived for a user that does not exist: %d", len(a))
	}
	// An offline but existing user gets it archived.
	e.Account("carol@example.org")
	e.Remote("<message from='romeo@other.example/o' to='carol@example.org' type='chat' id='x'><body>hi</body></message>")
	if a := e.archive("carol@example.org"); len(a) != 1 {
		t.Fatalf("offline user: %d archived", len(a))
	}
}

func TestQueryPaging(t *testing.T) {
	e := setup(t, Config{})
	bob := e.login("bob@example.org/b")
	ids := e.seed("bob@example.org", 10)

	f, _ := e.query(bob, "")
	if !slices.Equal(f.results, ids) || !f.complete || f.count != "10" || f.first != ids[0] || f.last != ids[9] || f.index != "0" {
		t.Fatalf("all: %+v", f)
	}
	if f.queryIDs[0] != "qid" || f.bodies[3] != "3" || f.stamps[1] != "2024-05-01T10:01:00Z" {
		t.Fatalf("result content: %+v", f)
	}

	// Forward.
	f, _ = e.query(bob, rsm("<max>4</max>"))
	if !slices.Equal(f.results, ids[:4]) || f.complete || f.last != ids[3] {
		t.Fatalf("page 1: %+v", f)
	}
	f, _ = e.query(bob, rsm("<max>4</max><after>"+f.last+"</after>"))
	if !slices.Equal(f.results, ids[4:8]) || f.complete || f.index != "4" {
		t.Fatalf("page 2: %+v", f)
	}
	f, _ = e.query(bob, rsm("<max>4</max><after>"+f.last+"</after>"))
	if !slices.Equal(f.results, ids[8:]) || !f.complete {
		t.Fatalf("page 3: %+v", f)
	}

	// Backward from the end.
	f, _ = e.query(bob, rsm("<max>4</max><before/>"))
	if !slices.Equal(f.results, ids[6:]) || f.complete || f.first != ids[6] || f.index != "6" {
		t.Fatalf("last page: %+v", f)
	}
	f, _ = e.query(bob, rsm("<max>4</max><before>"+f.first+"</before>"))
	if !slices.Equal(f.results, ids[2:6]) || f.complete {
		t.Fatalf("page before: %+v", f)
	}
	f, _ = e.query(bob, rsm("<max>4</max><before>"+f.first+"</before>"))
	if !slices.Equal(f.results, ids[:2]) || !f.complete {
		t.Fatalf("first page backward: %+v", f)
	}

	// Flipped: same page, reversed order; first/last still name the
	// page's chronological ends.
	f, _ = e.query(bob, rsm("<max>3</max><before/>")+"<flip-page/>")
	if want := []string{ids[9], ids[8], ids[7]}; !slices.Equal(f.results, want) || f.first != ids[7] || f.last != ids[9] {
		t.Fatalf("flipped: %+v", f)
	}

	// max 0: only the count.
	f, _ = e.query(bob, rsm("<max>0</max>"))
	if len(f.results) != 0 || f.count != "10" {
		t.Fatalf("max 0: %+v", f)
	}

	// The server caps the page.
	e.mod.cfg.MaxPageSize = 3
	f, _ = e.query(bob, rsm("<max>100</max>"))
	if len(f.results) != 3 || f.complete {
		t.Fatalf("server max: %+v", f)
	}
	e.mod.cfg.DefaultPageSize = 2
	f, _ = e.query(bob, "")
	if len(f.results) != 2 {
		t.Fatalf("default page size: %+v", f)
	}
}

func TestQueryFilters(t *testing.T) {
	e := setup(t, Config{})
	bob := e.login("bob@example.org/b")
	ids := e.seed("bob@example.org", 6)
	cases := []struct {
		name, q string
		want    []string
	}{
		{"with bare", form("with", "nurse@example.org"), []string{ids[1], ids[3], ids[5]}},
		{"with full", form("with", "romeo@other.example/r"), []string{ids[0], ids[2], ids[4]}},
		{"with other resource", form("with", "romeo@other.example/x"), nil},
		{"start", form("start", "2024-05-01T10:03:00Z"), ids[3:]},
		{"end", form("end", "2024-05-01T10:01:00Z"), ids[:2]},
		{"start end with", form("start", "2024-05-01T10:01:00Z", "end", "2024-05-01T12:04:00+02:00", "with", "romeo@other.example"), []string{ids[2], ids[4]}},
		{"after-id", form("after-id", ids[3]), ids[4:]},
		{"before-id", form("before-id", ids[2]), ids[:2]},
		{"between ids", form("after-id", ids[1], "before-id", ids[4]), ids[2:4]},
		{"ids", form("ids", ids[4]+" "+ids[0]), []string{ids[0], ids[4]}},
		{"empty values", form("with", "", "start", ""), ids},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, reply := e.query(bob, c.q)
			if reply.Type != "result" {
				t.Fatalf("error: %s", reply.Raw)
			}
			if !slices.Equal(f.results, c.want) || !f.complete || f.count != fmt.Sprint(len(c.want)) {
				t.Fatalf("got %v (%+v), want %v", f.results, f, c.want)
			}
		})
	}
	// RSM paging within a form filter.
	f, _ := e.query(bob, form("with", "nurse@example.org")+rsm("<max>2</max><after>"+ids[1]+"</after>"))
	if !slices.Equal(f.results, []string{ids[3], ids[5]}) || f.index != "1" || f.count != "3" {
		t.Fatalf("paged filter: %+v", f)
	}
}

func TestQueryErrors(t *testing.T) {
	e := setup(t, Config{})
	bob := e.login("bob@example.org/b")
	alice := e.login("alice@example.org/a")
	e.seed("bob@example.org", 2)
	e.seed("alice@example.org", 1)
	cases := []struct {
		name, q, cond string
	}{
		{"unknown after-id", form("after-id", "nope"), wire.ErrItemNotFound},
		{"unknown before-id", form("before-id", "nope"), wire.ErrItemNotFound},
		{"unknown ids", form("ids", "nope"), wire.ErrItemNotFound},
		{"unknown rsm after", rsm("<after>nope</after>"), wire.ErrItemNotFound},
		{"unknown rsm before", rsm("<before>nope</before>"), wire.ErrItemNotFound},
		{"unknown field", form("{urn:example}x", "1"), wire.ErrFeatureNotImplemented},
		{"bad start", form("start", "yesterday"), wire.ErrBadRequest},
		{"bad with", form("with", "@@"), wire.ErrJIDMalformed},
		{"bad max", rsm("<max>-1</max>"), wire.ErrBadRequest},
		{"wrong FORM_TYPE", "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>urn:xmpp:mam:1</value></field></x>", wire.ErrBadRequest},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			results, reply := e.IQCollect(bob, "<iq type='set' id='q1'><query xmlns='urn:xmpp:mam:2'>"+c.q+"</query></iq>")
			if got := modtest.ErrCondition(reply); got != c.cond || len(results) != 0 {
				t.Fatalf("got %q and %d results, want %q: %s", got, len(results), c.cond, reply.Raw)
			}
		})
	}
	// Another user's archive: forbidden, nothing leaks.
	for _, payload := range []string{"<query xmlns='urn:xmpp:mam:2'/>", "<metadata xmlns='urn:xmpp:mam:2'/>", "<prefs xmlns='urn:xmpp:mam:2'/>"} {
		for _, typ := range []string{"get", "set"} {
			results, reply := e.IQCollect(alice, "<iq type='"+typ+"' id='q2' to='bob@example.org'>"+payload+"</iq>")
			if modtest.ErrCondition(reply) != wire.ErrForbidden || len(results) != 0 {
				t.Fatalf("%s %s on another's archive: %s (+%d)", typ, payload, reply.Raw, len(results))
			}
		}
	}
	// Addressed explicitly to one's own bare JID it works.
	results, reply := e.IQCollect(alice, "<iq type='set' id='q3' to='alice@example.org'><query xmlns='urn:xmpp:mam:2'/></iq>")
	if reply.Type != "result" || len(results) != 1 {
		t.Fatalf("own archive by address: %s", reply.Raw)
	}
}

func TestFormMetadataFeatures(t *testing.T) {
	e := setup(t, Config{})
	bob := e.login("bob@example.org/b")
	_, reply := e.IQCollect(bob, "<iq type='get' id='f1'><query xmlns='urn:xmpp:mam:2'/></iq>")
	x := reply.Child(NS, "query").Child(xep.NSDataForms, "x")
	var vars []string
	for _, f := range x.ChildrenNamed(xep.NSDataForms, "field") {
		vars = append(vars, f.AttrValue("var"))
	}
	if !slices.Equal(vars, []string{"FORM_TYPE", "with", "start", "end", "before-id", "after-id", "ids"}) {
		t.Fatalf("form fields %v", vars)
	}

	_, reply = e.IQCollect(bob, "<iq type='get' id='m1'><metadata xmlns='urn:xmpp:mam:2'/></iq>")
	if want := "<metadata xmlns='urn:xmpp:mam:2'/>"; !strings.Contains(string(reply.Raw), want) {
		t.Fatalf("empty metadata: %s", reply.Raw)
	}
	ids := e.seed("bob@example.org", 3)
	_, reply = e.IQCollect(bob, "<iq type='get' id='m2'><metadata xmlns='urn:xmpp:mam:2'/></iq>")
	md := reply.Child(NS, "metadata")
	if s, en := md.Child(NS, "start"), md.Child(NS, "end"); s.AttrValue("id") != ids[0] || s.AttrValue("timestamp") != "2024-05-01T10:00:00Z" ||
		en.AttrValue("id") != ids[2] || en.AttrValue("timestamp") != "2024-05-01T10:02:00Z" {
		t.Fatalf("metadata %s", reply.Raw)
	}

	for _, f := range []string{NS, NSExtended, xep.NSSID} {
		if !slices.Contains(e.Registry.AccountFeatures(), f) {
			t.Errorf("account feature %s missing", f)
		}
	}
}

func TestPrefs(t *testing.T) {
	e := setup(t, Config{})
	alice := e.login("alice@example.org/a")
	bob := e.login("bob@example.org/b")
	_, reply := e.IQCollect(bob, "<iq type='get' id='p1'><prefs xmlns='urn:xmpp:mam:2'/></iq>")
	if want := "<prefs xmlns='urn:xmpp:mam:2' default='always'><always/><never/></prefs>"; !strings.Contains(string(reply.Raw), want) {
		t.Fatalf("default prefs: %s", reply.Raw)
	}
	_, reply = e.IQCollect(bob, "<iq type='set' id='p2'><prefs xmlns='urn:xmpp:mam:2' default='roster'>"+
		"<always><jid>romeo@other.example</jid></always><never><jid>alice@example.org</jid></never></prefs></iq>")
	if want := "<prefs xmlns='urn:xmpp:mam:2' default='roster'><always><jid>romeo@other.example</jid></always><never><jid>alice@example.org</jid></never></prefs>"; !strings.Contains(string(reply.Raw), want) {
		t.Fatalf("set prefs: %s", reply.Raw)
	}
	// never: alice's messages are not archived by bob (alice still keeps hers).
	e.Send(alice, "<message to='bob@example.org' type='chat' id='m1'><body>x</body></message>")
	if len(e.archive("bob@example.org")) != 0 || len(e.archive("alice@example.org")) != 1 {
		t.Fatal("never list ignored")
	}
	// always: romeo, though not in the roster.
	e.Remote("<message from='romeo@other.example/o' to='bob@example.org' type='chat' id='r1'><body>x</body></message>")
	// roster: a stranger is not archived, a contact is.
	e.Remote("<message from='tybalt@other.example/o' to='bob@example.org' type='chat' id='t1'><body>x</body></message>")
	if _, err := e.Store.UpsertRosterItem(context.Background(), "bob@example.org", storage.RosterItem{JID: "mercutio@other.example", Subscription: storage.SubBoth}); err != nil {
		t.Fatal(err)
	}
	e.Remote("<message from='mercutio@other.example/o' to='bob@example.org' type='chat' id='t2'><body>x</body></message>")
	var with []string
	for _, m := range e.archive("bob@example.org") {
		with = append(with, m.With)
	}
	if !slices.Equal(with, []string{"romeo@other.example", "mercutio@other.example"}) {
		t.Fatalf("archived with %v", with)
	}
	_, reply = e.IQCollect(bob, "<iq type='set' id='p3'><prefs xmlns='urn:xmpp:mam:2' default='sometimes'/></iq>")
	if modtest.ErrCondition(reply) != wire.ErrBadRequest {
		t.Fatalf("bad default: %s", reply.Raw)
	}
}

func TestRetention(t *testing.T) {
	e := setup(t, Config{Settings: Settings{Retention: 24 * time.Hour}, PurgeBatch: 2})
	ids := e.seed("bob@example.org", 5) // base .. base+4m
	e.mod.now = func() time.Time { return base.Add(24*time.Hour + 150*time.Second) }
	if n := e.mod.Purge(context.Background()); n != 3 {
		t.Fatalf("purged %d, want 3", n)
	}
	if got := archiveIDs(e.archive("bob@example.org")); !slices.Equal(got, ids[3:]) {
		t.Fatalf("left %v, want %v", got, ids[3:])
	}
	// The background loop starts and stops cleanly.
	if err := e.mod.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.mod.Stop(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestResultsForGoneSessionDropped(t *testing.T) {
	e := setup(t, Config{})
	b1 := e.login("bob@example.org/one")
	e.seed("bob@example.org", 1)
	// A result routed to a resource that is no longer bound must not fall
	// back to the other resources (RFC 6121 would deliver it to the bare JID).
	res := wire.MustParse("<message to='bob@example.org/gone' from='bob@example.org'><result xmlns='urn:xmpp:mam:2' id='x'/></message>")
	e.Router.Route(context.Background(), res, module.Origin{Kind: module.FromLocal})
	if got := b1.Take(); len(got) != 0 {
		t.Fatalf("other resource got %s", got[0].Raw)
	}
}
