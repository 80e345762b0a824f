package cluster

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/cluster"
	"github.com/parley-xmpp/parley/internal/testserver"
	"github.com/parley-xmpp/parley/server"
	"github.com/parley-xmpp/parley/wire"
)

// TestDrainMovesClients: a node asked to drain (`parley cluster drain`,
// as on SIGTERM) in a rolling upgrade moves its clients and rooms to the
// other nodes and stops, losing nothing. A resumable client loses its
// connection, resumes on another node and gets what was sent to it
// meanwhile, in order, without ever going offline for its contacts; a
// client without resumption is sent to another node's advertised address
// with <see-other-host/>; room occupants are told (status 332), join again
// and the room runs on another node.
func TestDrainMovesClients(t *testing.T) {
	spec := testserver.NewClusterSpec(t)
	var nodes []*testserver.Server
	addrs := make([]string, 3)
	for i := range 3 {
		ip := fmt.Sprint("127.0.0.", i+2)
		addrs[i] = freeAddr(t, ip)
		nodes = append(nodes, testserver.Start(t, spec.Node(fmt.Sprint("n", i+1), ip), func(c *server.Config) {
			c.Listen.C2S = addrs[i]
			c.Cluster.Advertise = addrs[i]
			c.Cluster.Drain = 10 * time.Second
		}))
	}
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]
	for _, u := range []string{"alice", "bob", "carol", "dave"} {
		n1.AddUser(u, "pw")
	}
	carol := n2.Login("carol", "pw", "c")
	carol.Send("<presence/>")
	carol.Expect("own presence", testserver.PresenceFrom(carol.JID, ""))
	a, id := enableSM(t, n1, "alice", "pw", "phone")
	a.Send("<presence/>")
	a.Expect("own presence", testserver.PresenceFrom(a.JID, ""))
	// Directed presence: carol would hear of the session's end.
	a.Send("<presence to='carol@localhost'/>")
	carol.Expect("alice's directed presence", testserver.PresenceFrom(a.JID, ""))
	b := n1.Login("bob", "pw", "b")
	room := "plaza@" + mucHost
	createPersistentRoom(t, b, room, "Bob")
	d := n3.Login("dave", "pw", "d")
	enter(t, d, room, "Dave")
	b.Expect("dave joined", occupantPresence(room, "Dave", ""))
	if h := n3.Cluster().LeaseHolder(room); h != "n1" {
		t.Fatalf("room on %q, want n1", h)
	}

	// Drain n1 over NATS, as `parley cluster drain n1` does.
	start := time.Now()
	if err := cluster.RequestDrain(context.Background(), server.ClusterNodeConfig(n1.Cfg, nil), "n1"); err != nil {
		t.Fatal(err)
	}
	// Bob has no stream management: redirected to a node that stays.
	se := b.StreamError()
	if se == nil || se.Condition != wire.CondSeeOtherHost || (se.Content != addrs[1] && se.Content != addrs[2]) {
		t.Fatalf("bob's stream ended with %+v, want see-other-host to %s or %s", se, addrs[1], addrs[2])
	}
	// Dave, in bob's room from n3, is told that the room goes away.
	left := d.Expect("dave removed from the room", occupantPresence(room, "Dave", "unavailable"))
	if !slices.Contains(mucCodes(left), "332") {
		t.Fatalf("removal without 332: %s", left.Raw)
	}
	// Alice's connection is closed without a stream error: her session
	// stays, and what carol sends now waits for her.
	if se := a.StreamError(); se != nil {
		t.Fatalf("alice's stream ended with %+v, want the connection closed", se)
	}
	h := 1 // her own presence
	for _, st := range backlog(a) {
		if st.IsStanza() {
			h++
		}
	}
	for i := range 5 {
		carol.Send("<message to='%s' type='chat'><body>while moving %d</body></message>", a.JID, i)
	}

	// Alice's client reconnects (the load balancer sends it to n2) and
	// resumes there: everything arrives, once and in order.
	a2 := resumeAt(t, n2, "alice", id, h)
	a2.JID = a.JID
	for i := range 5 {
		m, ok := a2.Wait(testserver.Timeout, func(s *wire.Stanza) bool { return s.Name == "message" })
		if want := fmt.Sprint("while moving ", i); !ok || m.Child(wire.NSClient, "body").Text() != want {
			t.Fatalf("message %d after the resume: %v, want %q", i, m, want)
		}
	}
	a2.ExpectNone("a message twice", 200*time.Millisecond, func(s *wire.Stanza) bool { return s.Name == "message" })
	// Bob follows the redirect.
	b2 := testserver.ConnectTo(t, se.Content, "localhost")
	b2.LoginWith(b2.Features(), "SCRAM-SHA-256", "bob", "pw", "b")
	// The room now runs on a node that stays; both join again and chat.
	enter(t, d, room, "Dave")
	enter(t, b2, room, "Bob")
	d.Expect("bob back", occupantPresence(room, "Bob", ""))
	b2.Send("<message to='%s' type='groupchat'><body>after the upgrade</body></message>", room)
	d.Expect("room message after the drain", roomMessage(room, "Bob", "after the upgrade"))
	if h := n3.Cluster().LeaseHolder(room); h != "n2" && h != "n3" {
		t.Fatalf("room on %q after the drain", h)
	}

	// n1 stopped on its own once its clients were gone, well before the
	// drain period ran out.
	select {
	case <-n1.Stopped():
	case <-time.After(15 * time.Second):
		t.Fatal("n1 did not stop")
	}
	t.Logf("n1 drained and stopped %s after the request", time.Since(start).Round(time.Millisecond))
	// n1's goodbye heartbeat reaches n2 over NATS after n1 has stopped.
	testserver.Eventually(t, "n2 forgets n1", func() bool {
		for _, p := range n2.Cluster().Peers() {
			if p.Node == "n1" {
				return false
			}
		}
		return true
	})
	// Alice never went offline for carol, and is reachable on n2.
	carol.ExpectNone("alice unavailable", 300*time.Millisecond, testserver.PresenceFrom(a.JID, "unavailable"))
	carol.Send("<message to='%s' type='chat'><body>still there?</body></message>", a.JID)
	a2.Expect("message after the drain", isMsg("still there?"))
}

// TestSIGTERMDrains: SIGTERM makes a node of a cluster drain before it
// exits: a client without stream management is sent to the advertised
// address of another node, a resumable one resumes there with what was
// sent to it meanwhile.
func TestSIGTERMDrains(t *testing.T) {
	spec := testserver.NewClusterSpec(t)
	addr := freeAddr(t, "127.0.0.2")
	n1 := testserver.Start(t, spec.Node("n1", "127.0.0.2"), func(c *server.Config) {
		c.Listen.C2S = addr
		c.Cluster.Advertise = addr
	})
	p := startProc(t, spec, "n2", "127.0.0.3", "heartbeat: 200ms", "dead_after: 2s", "drain: 10s")
	n1.AddUser("erin", "pw")
	n1.AddUser("finn", "pw")
	f := n1.Login("finn", "pw", "f")
	e := p.login(t, "erin", "pw", "plain")
	r, id := p.loginSM(t, "erin", "pw", "phone")
	deadline := time.Now().Add(5 * time.Second)
	for !slices.ContainsFunc(n1.Cluster().Peers(), func(pi cluster.PeerInfo) bool { return pi.Node == "n2" && pi.Alive }) {
		if time.Now().After(deadline) {
			t.Fatal("n1 does not see n2")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// And n2 sees n1, or it has nowhere to send its clients: n2 learns
	// of n1 from n1's next heartbeat, which can come after n1 learnt of
	// n2 (a loaded run saw the drain start first and end the stream with
	// system-shutdown).
	for !strings.Contains(p.log(), `msg="cluster: node joined" node=n2 peer=n1`) {
		if time.Now().After(deadline) {
			t.Fatal("n2 does not see n1")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if se := e.StreamError(); se == nil || se.Condition != wire.CondSeeOtherHost || se.Content != addr {
		t.Fatalf("stream end %+v, want see-other-host to %s", se, addr)
	}
	if se := r.StreamError(); se != nil {
		t.Fatalf("resumable session's stream ended with %+v, want the connection closed", se)
	}
	f.Send("<message to='erin@localhost/phone' type='chat'><body>during the upgrade</body></message>")
	r2 := resumeAt(t, n1, "erin", id, 0)
	r2.Expect("message sent while the session moved", isMsg("during the upgrade"))
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		t.Fatalf("n2 did not exit after SIGTERM:\n%s", p.log())
	}
	if out := p.log(); !strings.Contains(out, "drained: every session left this node") {
		t.Fatalf("n2 did not drain:\n%s", out)
	}
}
