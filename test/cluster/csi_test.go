package cluster

import (
	"testing"
	"time"

	"github.com/parley-xmpp/parley/internal/testserver"
	"github.com/parley-xmpp/parley/wire"
)

// TestCSIAndNormalAcrossNodes: what a client on another node sends is
// held for an inactive client (XEP-0352) as on one node — presence held
// and coalesced, a chat state held, all of it flushed by a real message —
// and a type='normal' message to a bare JID reaches the resources of
// non-negative priority on the other nodes (RFC 6121 §8.5.2.1.1).
func TestCSIAndNormalAcrossNodes(t *testing.T) {
	nodes := testserver.StartCluster(t, 3)
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]
	alice := n1.AddUser("alice", "pw")
	bob := n1.AddUser("bob", "pw")
	a := n1.Login("alice", "pw", "phone")
	desk := n2.Login("bob", "pw", "desk")
	tablet := n3.Login("bob", "pw", "tablet")
	a.Send("<presence/>")
	desk.Send("<presence/>")
	tablet.Send("<presence><priority>-1</priority></presence>")
	testserver.Subscribe(t, a, desk, alice, bob)
	a.Expect("desk's presence", testserver.PresenceFrom(desk.JID, ""))

	// type='normal' to bob's bare JID: the desk (n2) gets it, the tablet
	// (n3, priority -1) does not until its priority is raised.
	a.Send("<message to='%s' type='normal'><body>normal 1</body></message>", bob)
	desk.Expect("normal message on the desk", isMsg("normal 1"))
	tablet.ExpectNone("normal message on the tablet (priority -1)", 300*time.Millisecond, isMsg("normal 1"))
	tablet.Send("<presence><priority>1</priority></presence>")
	a.Expect("tablet's presence, priority 1", func(s *wire.Stanza) bool {
		return s.Name == "presence" && s.From == tablet.JID && s.Child(wire.NSClient, "priority").Text() == "1"
	})
	a.Send("<message to='%s'><body>normal 2</body></message>", bob)
	desk.Expect("normal message on the desk", isMsg("normal 2"))
	tablet.Expect("normal message on the tablet", isMsg("normal 2"))

	// Alice (n1) goes inactive; the desk's (n2) presence changes and chat
	// state wait for her until a message with a body arrives.
	a.Send("<inactive xmlns='urn:xmpp:csi:0'/>")
	a.Sync()
	desk.Send("<presence><show>away</show></presence>")
	desk.Send("<presence><show>dnd</show></presence>")
	desk.Send("<message to='%s' type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>", alice)
	a.ExpectNone("presence or chat state while inactive", 300*time.Millisecond, func(s *wire.Stanza) bool {
		return s.From == desk.JID && (s.Child(wire.NSClient, "show") != nil || s.Name == "message")
	})
	desk.Send("<message to='%s' type='chat'><body>wake up</body></message>", alice)
	p := a.Expect("held presence", func(s *wire.Stanza) bool {
		return s.Name == "presence" && s.From == desk.JID && s.Child(wire.NSClient, "show") != nil
	})
	if p.Child(wire.NSClient, "show").Text() != "dnd" {
		t.Fatalf("held presence not coalesced: %s", p.Raw)
	}
	a.Expect("message", isMsg("wake up"))
}
