package cluster

import (
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/internal/testserver"
	"github.com/parley-xmpp/parley/wire"
)

const (
	nsDiscoInfo   = "http://jabber.org/protocol/disco#info"
	nsPubSub      = "http://jabber.org/protocol/pubsub"
	nsPubSubEvent = "http://jabber.org/protocol/pubsub#event"
	nsNick        = "http://jabber.org/protocol/nick"
)

// capsFor returns an entity caps element asking for notifications of node.
func capsFor(node string) (string, []string) {
	features := []string{nsDiscoInfo, node + "+notify"}
	slices.Sort(features)
	s := "client/phone//Test<"
	for _, f := range features {
		s += f + "<"
	}
	sum := sha1.Sum([]byte(s))
	return fmt.Sprintf("<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='https://parley.test' ver='%s'/>",
		base64.StdEncoding.EncodeToString(sum[:])), features
}

// answerCaps answers every disco#info query the servers send c within a
// quiet second.
func answerCaps(c *testserver.Client, features []string) int {
	n := 0
	for {
		q, ok := c.Wait(time.Second, func(s *wire.Stanza) bool {
			return s.Name == "iq" && s.Type == "get" && s.Child(nsDiscoInfo, "query") != nil
		})
		if !ok {
			return n
		}
		var b strings.Builder
		b.WriteString("<identity category='client' type='phone' name='Test'/>")
		for _, f := range features {
			fmt.Fprintf(&b, "<feature var='%s'/>", f)
		}
		c.Send("<iq type='result' id='%s' to='%s'><query xmlns='%s' node='%s'>%s</query></iq>",
			wire.EscapeAttr(q.ID), wire.EscapeAttr(q.From), nsDiscoInfo,
			wire.EscapeAttr(q.Child(nsDiscoInfo, "query").AttrValue("node")), b.String())
		n++
	}
}

// TestPEPAcrossNodes: a contact on another node who asked for nick
// notifications (+notify in his caps) gets the owner's publications from
// the owner's node, once.
func TestPEPAcrossNodes(t *testing.T) {
	nodes := testserver.StartCluster(t, 2)
	n1, n2 := nodes[0], nodes[1]
	alice := n1.AddUser("alice", "pw")
	bob := n1.AddUser("bob", "pw")
	a := n1.Login("alice", "pw", "a")
	b := n2.Login("bob", "pw", "b")
	a.IQ("r", "<iq type='get' id='r'><query xmlns='jabber:iq:roster'/></iq>")
	b.IQ("r", "<iq type='get' id='r'><query xmlns='jabber:iq:roster'/></iq>")
	a.Send("<presence/>")
	b.Send("<presence/>")
	subscribe(t, a, b, alice, bob)
	caps, features := capsFor(nsNick)
	b.Send("<presence>%s</presence>", caps)
	a.Expect("bob's presence with caps", func(s *wire.Stanza) bool {
		return s.Name == "presence" && s.From == b.JID && strings.Contains(string(s.Raw), "caps")
	})
	if answerCaps(b, features) == 0 {
		t.Fatal("no caps query reached bob")
	}
	for i, nick := range []string{"Alice One", "Alice Two"} {
		id := fmt.Sprint("p", i)
		r := a.IQ(id, "<iq type='set' id='%s'><pubsub xmlns='%s'><publish node='%s'><item id='current'><nick xmlns='%s'>%s</nick></item></publish></pubsub></iq>",
			id, nsPubSub, nsNick, nsNick, nick)
		if r.Type != "result" {
			t.Fatalf("publish: %s", r.Raw)
		}
		isNick := func(s *wire.Stanza) bool {
			return s.Name == "message" && s.Child(nsPubSubEvent, "event") != nil && strings.Contains(string(s.Raw), ">"+nick+"<")
		}
		b.Expect("notification of "+nick, isNick)
		b.ExpectNone("a second notification of "+nick, 300*time.Millisecond, isNick)
	}
}
