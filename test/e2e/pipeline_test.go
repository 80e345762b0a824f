package e2e

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/parley-xmpp/parley/internal/testserver"
	"github.com/parley-xmpp/parley/wire"
)

// TestPipelinedMessagesKeepOrderAndAck: a client writes a burst of
// messages without waiting, the server reads ahead while their archive
// rows wait for group commit; the recipient gets them in order, each with
// the stanza-id of its row in the recipient's archive (in the same order),
// the sender's archive holds them in order too, and the stream management
// answer to an <r/> sent after the burst counts all of them (it is written
// only once they are committed).
func TestPipelinedMessagesKeepOrderAndAck(t *testing.T) {
	t.Parallel()
	const n = 60
	ts := testserver.Start(t)
	ts.AddUser("alice", "pw1")
	bob := ts.AddUser("bob", "pw2")
	a, _ := enableSM(t, ts, "alice", "pw1", "phone")
	b := ts.Login("bob", "pw2", "desk")
	b.Send("<presence/>")
	b.Expect("own presence", func(s *wire.Stanza) bool { return s.Name == "presence" && s.From == b.JID })

	var burst strings.Builder
	for i := range n {
		fmt.Fprintf(&burst, "<message to='%s' type='chat' id='p%d'><body>p%d</body></message>", bob, i, i)
	}
	burst.WriteString("<r xmlns='urn:xmpp:sm:3'/>")
	a.Send("%s", burst.String())
	if h := a.Expect("ack", isSM("a")).Attr("h"); h != strconv.Itoa(n) {
		t.Fatalf("h = %s after %d messages, want %d", h, n, n)
	}
	var sids []string
	for i := range n {
		got := b.Expect("message "+strconv.Itoa(i), func(s *wire.Stanza) bool { return s.Name == "message" })
		if got.ID != "p"+strconv.Itoa(i) {
			t.Fatalf("message %d: got %s (out of order)", i, got.Raw)
		}
		sid := got.Child("urn:xmpp:sid:0", "stanza-id")
		if sid == nil {
			t.Fatalf("message %d without stanza-id: %s", i, got.Raw)
		}
		sids = append(sids, sid.AttrValue("id"))
	}
	p := queryMAM(t, b, "qb", "<set xmlns='"+nsRSM+"'><max>100</max></set>")
	if !slices.Equal(p.ids, sids) {
		t.Errorf("bob's archive ids %v\nstanza-ids delivered %v", p.ids, sids)
	}
	p = queryMAM(t, a, "qa", "<set xmlns='"+nsRSM+"'><max>100</max></set>")
	if len(p.bodies) != n {
		t.Fatalf("alice's archive has %d messages, want %d", len(p.bodies), n)
	}
	for i, body := range p.bodies {
		if body != "p"+strconv.Itoa(i) {
			t.Fatalf("alice's archive out of order at %d: %v", i, p.bodies)
		}
	}
}

// TestQueryAfterPipelinedMessagesSeesThem: a MAM query a client writes
// right behind its messages finds all of them in its archive (read your
// writes), although the server read the query while their rows still
// waited for the group commit (TestSlixmppMAM's phone counted 29 of its 30
// messages without it).
func TestQueryAfterPipelinedMessagesSeesThem(t *testing.T) {
	t.Parallel()
	const n, rounds = 2, 10
	ts := testserver.Start(t)
	ts.AddUser("alice", "pw1")
	bob := ts.AddUser("bob", "pw2")
	a := ts.Login("alice", "pw1", "phone")
	// bob online: his deliveries wait for the commit, not alice's reader
	// (offline storage would make it wait).
	b := ts.Login("bob", "pw2", "desk")
	b.Send("<presence/>")
	b.Expect("own presence", func(s *wire.Stanza) bool { return s.Name == "presence" && s.From == b.JID })
	for round := range rounds {
		var burst strings.Builder
		for i := range n {
			fmt.Fprintf(&burst, "<message to='%s' type='chat' id='r%dm%d'><body>r%d m%d</body></message>", bob, round, i, round, i)
		}
		qid := fmt.Sprintf("q%d", round)
		fmt.Fprintf(&burst, "<iq type='set' id='%s'><query xmlns='urn:xmpp:mam:2' queryid='%s'><set xmlns='%s'><max>1</max></set></query></iq>", qid, qid, nsRSM)
		a.Send("%s", burst.String())
		var p mamResults
		for {
			st := a.Expect("mam "+qid, func(s *wire.Stanza) bool {
				r := s.Child(nsMAM, "result")
				return s.ID == qid || r != nil && r.AttrValue("queryid") == qid
			})
			if st.Name == "iq" {
				if st.Type != "result" {
					t.Fatalf("mam %s: %s", qid, st.Raw)
				}
				p.count = st.Child(nsMAM, "fin").Child(nsRSM, "set").ChildText(nsRSM, "count")
				break
			}
		}
		if want := strconv.Itoa((round + 1) * n); p.count != want {
			t.Fatalf("round %d: the query behind %d messages counts %s in alice's archive, want %s", round, n, p.count, want)
		}
	}
}

// TestPipelinedFederation: a burst across domains is pipelined on both
// sides (the sender's stream reads on while its archive rows commit, the
// receiving server's s2s reader reads on while the recipient's rows
// commit) and keeps its order and its archives: bob gets every message in
// order with the stanza-id of his archive, both archives hold the burst in
// order, alice's stream management ack counts all of them.
func TestPipelinedFederation(t *testing.T) {
	t.Parallel()
	const n = 60
	a, b := federatedPair(t)
	alice, _ := enableSM(t, a, "alice", "pw1", "phone")
	bob := b.Login("bob", "pw2", "laptop")
	bob.Send("<presence/>")
	bob.Expect("own presence", func(s *wire.Stanza) bool { return s.Name == "presence" && s.From == bob.JID })
	var burst strings.Builder
	for i := range n {
		fmt.Fprintf(&burst, "<message to='%s' type='chat' id='f%d'><body>f%d</body></message>", fedBob, i, i)
	}
	burst.WriteString("<r xmlns='urn:xmpp:sm:3'/>")
	alice.Send("%s", burst.String())
	if h := alice.Expect("ack", isSM("a")).Attr("h"); h != strconv.Itoa(n) {
		t.Fatalf("h = %s after %d messages", h, n)
	}
	var sids []string
	for i := range n {
		got := bob.Expect("message "+strconv.Itoa(i), func(s *wire.Stanza) bool { return s.Name == "message" })
		if got.ID != "f"+strconv.Itoa(i) {
			t.Fatalf("message %d: got %s (out of order)", i, got.Raw)
		}
		sids = append(sids, got.Child("urn:xmpp:sid:0", "stanza-id").AttrValue("id"))
	}
	if p := queryMAM(t, bob, "qb", "<set xmlns='"+nsRSM+"'><max>100</max></set>"); !slices.Equal(p.ids, sids) {
		t.Errorf("bob's archive %v\ndelivered stanza-ids %v", p.ids, sids)
	}
	p := queryMAM(t, alice, "qa", "<set xmlns='"+nsRSM+"'><max>100</max></set>")
	if len(p.bodies) != n {
		t.Fatalf("alice's archive has %d messages", len(p.bodies))
	}
	for i, body := range p.bodies {
		if body != "f"+strconv.Itoa(i) {
			t.Fatalf("alice's archive out of order at %d: %v", i, p.bodies)
		}
	}
}
