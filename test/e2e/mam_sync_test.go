package e2e

import (
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/internal/testserver"
	"github.com/parley-xmpp/parley/wire"
)

// mamResults is one answered MAM query as a client sees it.
type mamResults struct {
	ids, bodies []string
	first, last string
	complete    bool
	count       string
}

// queryMAM sends one query (extra is the XML inside <query/>) and collects
// its results until the IQ result arrives.
func queryMAM(t testing.TB, c *testserver.Client, qid, extra string) mamResults {
	t.Helper()
	c.Send("<iq type='set' id='%s'><query xmlns='urn:xmpp:mam:2' queryid='%s'>%s</query></iq>", qid, qid, extra)
	var p mamResults
	for {
		st := c.ExpectWithin("mam "+qid, time.Minute, func(s *wire.Stanza) bool {
			if s.ID == qid {
				return true
			}
			r := s.Child(nsMAM, "result")
			return r != nil && r.AttrValue("queryid") == qid
		})
		if st.ID == qid && st.Name == "iq" {
			if st.Type != "result" {
				t.Fatalf("mam %s: %s", qid, st.Raw)
			}
			fin := st.Child(nsMAM, "fin")
			p.complete = fin.AttrValue("complete") == "true"
			if set := fin.Child(nsRSM, "set"); set != nil {
				p.first = set.ChildText(nsRSM, "first")
				p.last = set.ChildText(nsRSM, "last")
				p.count = set.ChildText(nsRSM, "count")
			}
			return p
		}
		res := st.Child(nsMAM, "result")
		msg := res.Child(nsForward, "forwarded").Child(wire.NSClient, "message")
		p.ids = append(p.ids, res.AttrValue("id"))
		p.bodies = append(p.bodies, msg.ChildText(wire.NSClient, "body"))
	}
}

func afterIDForm(id string) string {
	return "<x xmlns='jabber:x:data' type='submit'>" +
		"<field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field>" +
		"<field var='after-id'><value>" + id + "</value></field></x>"
}

func stanzaIDOf(t testing.TB, m *wire.Element, by string) string {
	t.Helper()
	for _, c := range m.ChildrenNamed(nsSID, "stanza-id") {
		if c.AttrValue("by") == by {
			return c.AttrValue("id")
		}
	}
	t.Fatalf("no stanza-id by %s: %s", by, m)
	return ""
}

// TestThreeDeviceCatchUp: phone, laptop and tablet with carbons; the
// tablet goes offline while the conversation goes on in both directions,
// comes back, and catches up with after-id of the last id it saw: exactly
// the missing messages, in order, once, with the same ids the other
// devices got live and through carbons.
func TestThreeDeviceCatchUp(t *testing.T) {
	t.Parallel()
	ts := testserver.Start(t)
	alice := ts.AddUser("alice", "pw1")
	ts.AddUser("bob", "pw2")
	phone := ts.Login("alice", "pw1", "phone")
	laptop := ts.Login("alice", "pw1", "laptop")
	tablet := ts.Login("alice", "pw1", "tablet")
	bob := ts.Login("bob", "pw2", "desk")
	for _, c := range []*testserver.Client{phone, laptop, tablet, bob} {
		c.Send("<presence/>")
	}
	for _, c := range []*testserver.Client{phone, laptop, tablet} {
		if r := c.IQ("c1", "<iq type='set' id='c1'><enable xmlns='urn:xmpp:carbons:2'/></iq>"); r.Type != "result" {
			t.Fatalf("carbons enable: %s", r.Raw)
		}
	}
	isCarbonOf := func(body string) func(*wire.Stanza) bool {
		return func(s *wire.Stanza) bool {
			for _, kind := range []string{"received", "sent"} {
				if c := s.Child(nsCarbons, kind); c != nil {
					m := c.Child(nsForward, "forwarded").Child(wire.NSClient, "message")
					return m != nil && m.ChildText(wire.NSClient, "body") == body
				}
			}
			return false
		}
	}
	carbonInner := func(s *wire.Stanza) *wire.Element {
		for _, kind := range []string{"received", "sent"} {
			if c := s.Child(nsCarbons, kind); c != nil {
				return c.Child(nsForward, "forwarded").Child(wire.NSClient, "message")
			}
		}
		return nil
	}

	// One exchange step: bob -> phone (received carbons) or phone -> bob
	// (sent carbons). Returns alice's archive id for the message as the
	// phone or the laptop saw it, checking they agree.
	step := func(i int, online []*testserver.Client) string {
		body := "m" + strconv.Itoa(i)
		if i%3 == 2 {
			phone.Send("<message to='bob@localhost' type='chat' id='%s'><body>%s</body></message>", body, body)
			bob.Expect(body, isMsg(body))
			// The sender's own archive id reaches its other devices in
			// the sent carbon.
			var id string
			for _, c := range online[1:] {
				cb := c.Expect("sent carbon "+body, isCarbonOf(body))
				got := stanzaIDOf(t, carbonInner(cb), alice)
				if id != "" && got != id {
					t.Fatalf("sent carbon ids differ: %s vs %s", got, id)
				}
				id = got
			}
			return id
		}
		bob.Send("<message to='%s' type='chat' id='%s'><body>%s</body></message>", phone.JID, body, body)
		live := phone.Expect(body, isMsg(body))
		id := stanzaIDOf(t, live.Tree(), alice)
		for _, c := range online[1:] {
			cb := c.Expect("received carbon "+body, isCarbonOf(body))
			if got := stanzaIDOf(t, carbonInner(cb), alice); got != id {
				t.Fatalf("carbon id %s, live id %s", got, id)
			}
		}
		return id
	}

	var all []string
	for i := 0; i < 6; i++ {
		all = append(all, step(i, []*testserver.Client{phone, laptop, tablet}))
	}
	lastSeen := all[len(all)-1]
	tablet.Close()
	var missed []string
	for i := 6; i < 18; i++ {
		id := step(i, []*testserver.Client{phone, laptop})
		all = append(all, id)
		missed = append(missed, id)
	}
	if len(slices.Compact(slices.Clone(all))) != len(all) {
		t.Fatalf("duplicate ids: %v", all)
	}

	tablet = ts.Login("alice", "pw1", "tablet")
	// A small page size so that the catch-up pages with RSM after.
	var got, bodies []string
	after := ""
	for n := 0; n < 10; n++ {
		rsm := "<set xmlns='" + nsRSM + "'><max>5</max>" + after + "</set>"
		p := queryMAM(t, tablet, fmt.Sprintf("cu%d", n), afterIDForm(lastSeen)+rsm)
		got = append(got, p.ids...)
		bodies = append(bodies, p.bodies...)
		if p.complete {
			break
		}
		after = "<after>" + p.last + "</after>"
	}
	if !slices.Equal(got, missed) {
		t.Fatalf("catch-up ids\n got %v\nwant %v", got, missed)
	}
	for i, b := range bodies {
		if want := "m" + strconv.Itoa(i+6); b != want {
			t.Fatalf("catch-up order: body %d is %q, want %q", i, b, want)
		}
	}
	// Nothing after the newest.
	if p := queryMAM(t, tablet, "tail", afterIDForm(all[len(all)-1])); len(p.ids) != 0 || !p.complete {
		t.Fatalf("after the last id: %+v", p)
	}
}

// TestMAMPaging1000: a 1,000-message conversation paged forward with RSM
// after and backward with RSM before returns every message exactly once,
// in order, with the ids the recipient got live.
func TestMAMPaging1000(t *testing.T) {
	t.Parallel()
	const n = 1000
	ts := testserver.Start(t)
	alice := ts.AddUser("alice", "pw1")
	ts.AddUser("bob", "pw2")
	a := ts.Login("alice", "pw1", "a")
	bob := ts.Login("bob", "pw2", "b")
	a.Send("<presence/>")
	for i := 0; i < n; i++ {
		bob.Send("<message to='%s' type='chat' id='p%d'><body>%d</body></message>", a.JID, i, i)
	}
	live := make([]string, n)
	for i := 0; i < n; i++ {
		body := strconv.Itoa(i)
		m := a.Expect("message "+body, isMsg(body))
		live[i] = stanzaIDOf(t, m.Tree(), alice)
	}

	var fwd []string
	after := ""
	for page := 0; ; page++ {
		if page > n {
			t.Fatal("forward paging does not end")
		}
		p := queryMAM(t, a, fmt.Sprintf("f%d", page), "<set xmlns='"+nsRSM+"'><max>37</max>"+after+"</set>")
		if p.count != strconv.Itoa(n) {
			t.Fatalf("count %q", p.count)
		}
		fwd = append(fwd, p.ids...)
		if p.complete {
			break
		}
		after = "<after>" + p.last + "</after>"
	}
	if !slices.Equal(fwd, live) {
		t.Fatalf("forward paging: %d ids, first mismatch at %d", len(fwd), firstMismatch(fwd, live))
	}

	var back []string
	before := "<before/>"
	for page := 0; ; page++ {
		if page > n {
			t.Fatal("backward paging does not end")
		}
		p := queryMAM(t, a, fmt.Sprintf("b%d", page), "<set xmlns='"+nsRSM+"'><max>41</max>"+before+"</set>")
		back = append(slices.Clone(p.ids), back...)
		if p.complete {
			break
		}
		before = "<before>" + p.first + "</before>"
	}
	if !slices.Equal(back, live) {
		t.Fatalf("backward paging: %d ids, first mismatch at %d", len(back), firstMismatch(back, live))
	}
}

func firstMismatch(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// BenchmarkMAMCatchUp10k: a device catches up on 10,000 archived messages
// over a real socket, paging with RSM after at the server's maximum page
// size. ns/op is the whole catch-up; msgs/s is reported too.
func BenchmarkMAMCatchUp10k(b *testing.B) {
	const n = 10000
	ts := testserver.Start(b)
	ts.AddUser("alice", "pw1")
	ts.AddUser("bob", "pw2")
	bob := ts.Login("bob", "pw2", "b")
	for i := 0; i < n; i++ {
		bob.Send("<message to='alice@localhost' type='chat'><body>%d</body></message>", i)
	}
	a := ts.Login("alice", "pw1", "a")
	// Offline delivery drains first; wait for the last message so that
	// the archive holds all of them.
	a.Send("<presence/>")
	deadline := time.Now().Add(2 * time.Minute)
	for seen := 0; seen < n; {
		if time.Now().After(deadline) {
			b.Fatalf("only %d of %d offline messages arrived", seen, n)
		}
		a.Expect("offline message", func(s *wire.Stanza) bool { return s.Name == "message" })
		seen++
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		got, after := 0, ""
		for page := 0; page <= n; page++ {
			p := queryMAM(b, a, fmt.Sprintf("q%d-%d", i, page), "<set xmlns='"+nsRSM+"'><max>250</max>"+after+"</set>")
			got += len(p.ids)
			if p.complete {
				break
			}
			after = "<after>" + p.last + "</after>"
		}
		if got != n {
			b.Fatalf("caught up on %d of %d", got, n)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}
