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
