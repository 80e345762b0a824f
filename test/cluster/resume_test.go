package cluster

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/internal/testserver"
	"github.com/parley-xmpp/parley/server"
	"github.com/parley-xmpp/parley/wire"
)

const nsSM = "urn:xmpp:sm:3"

func isSM(name string) func(*wire.Stanza) bool {
	return func(s *wire.Stanza) bool { return s.NS == nsSM && s.Name == name }
}

// enableSM logs in on ts and enables resumable stream management.
func enableSM(t *testing.T, ts *testserver.Server, user, pw, res string) (*testserver.Client, string) {
	t.Helper()
	c := ts.Authenticate(user, pw)
	c.Bind(res)
	c.Send("<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
	e := c.Next()
	if e.Name != "enabled" || e.Attr("resume") != "true" {
		t.Fatalf("enable: %s", e.Raw)
	}
	c.StartReader()
	return c, e.Attr("id")
}

// TestResumeOnAnotherNode: the client's connection to n1 drops and it
// resumes on n2; what it had not acknowledged and what arrived while it
// was away is delivered once, in order, and new traffic goes to n2.
func TestResumeOnAnotherNode(t *testing.T) {
	nodes := testserver.StartCluster(t, 3)
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]
	n1.AddUser("alice", "pw")
	n1.AddUser("bob", "pw")
	a, id := enableSM(t, n1, "alice", "pw", "phone")
	b := n3.Login("bob", "pw", "desk")
	a.Send("<presence/>")
	a.Expect("own presence", testserver.PresenceFrom(a.JID, ""))
	for i := 1; i <= 3; i++ {
		b.Send("<message to='%s' type='chat'><body>m%d</body></message>", a.JID, i)
		a.Expect(fmt.Sprint("m", i), isMsg(fmt.Sprint("m", i)))
	}
	// Acknowledge the presence echo and m1 only.
	a.Send("<a xmlns='urn:xmpp:sm:3' h='2'/>")
	a.Send("<r xmlns='urn:xmpp:sm:3'/>")
	if h := a.Expect("ack", isSM("a")).Attr("h"); h != "1" {
		t.Fatalf("server h = %s, want 1", h)
	}
	a.Drop()
	// Hibernated on n1: queued there, no unavailable presence.
	for i := 4; i <= 5; i++ {
		b.Send("<message to='%s' type='chat'><body>m%d</body></message>", a.JID, i)
	}
	b.ExpectNone("bounce", 300*time.Millisecond, func(s *wire.Stanza) bool { return s.Type == "error" })

	start := time.Now()
	a2 := n2.Authenticate("alice", "pw")
	a2.Send("<resume xmlns='urn:xmpp:sm:3' previd='%s' h='2'/>", id)
	r := a2.Next()
	took := time.Since(start)
	if r.Name != "resumed" || r.Attr("previd") != id || r.Attr("h") != "1" {
		t.Fatalf("resume on n2: %s", r.Raw)
	}
	t.Logf("resume on another node took %s (authentication included)", took)
	a2.StartReader()
	for _, body := range []string{"m2", "m3", "m4", "m5"} {
		a2.Expect("replayed "+body, isMsg(body))
	}
	// New traffic from n3 and n1 reaches the session on n2.
	b.Send("<message to='%s' type='chat'><body>m6</body></message>", a.JID)
	a2.Expect("m6", isMsg("m6"))
	c := n1.Login("bob", "pw", "n1")
	c.Send("<message to='%s' type='chat'><body>m7</body></message>", a.JID)
	a2.Expect("m7", isMsg("m7"))
	for i := 2; i <= 7; i++ {
		a2.ExpectNone("a second copy of m"+strconv.Itoa(i), 100*time.Millisecond, isMsg(fmt.Sprint("m", i)))
	}
	// The inbound counter continues: alice sent one stanza in all.
	a2.Send("<r xmlns='urn:xmpp:sm:3'/>")
	if h := a2.Expect("ack", isSM("a")).Attr("h"); h != "1" {
		t.Fatalf("h after resume = %s, want 1", h)
	}
	// The session can move again, back to n1.
	a2.Send("<a xmlns='urn:xmpp:sm:3' h='2'/>")
	a2.Drop()
	b.Send("<message to='%s' type='chat'><body>m8</body></message>", a.JID)
	a3 := resumeAt(t, n1, "alice", id, 2)
	a3.Expect("m8 after the second move", isMsg("m8"))
}

// TestResumeDuringTraffic: messages keep arriving from two nodes while the
// session moves; each arrives exactly once.
func TestResumeDuringTraffic(t *testing.T) {
	nodes := testserver.StartCluster(t, 3)
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]
	n1.AddUser("alice", "pw")
	n1.AddUser("bob", "pw")
	a, id := enableSM(t, n1, "alice", "pw", "phone")
	senders := []*testserver.Client{n1.Login("bob", "pw", "b1"), n3.Login("bob", "pw", "b3")}
	a.Send("<presence/>")
	a.Expect("own presence", testserver.PresenceFrom(a.JID, ""))
	a.Drop()
	const per = 150
	done := make(chan struct{})
	for si, s := range senders {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range per {
				s.Send("<message to='%s' type='chat'><body>s%d-%d</body></message>", a.JID, si, i)
				if i == per/3 && si == 0 {
					time.Sleep(20 * time.Millisecond)
				}
			}
		}()
	}
	a2 := n2.Authenticate("alice", "pw")
	a2.Send("<resume xmlns='urn:xmpp:sm:3' previd='%s' h='1'/>", id)
	if r := a2.Next(); r.Name != "resumed" {
		t.Fatalf("resume: %s", r.Raw)
	}
	a2.StartReader()
	<-done
	<-done
	seen := map[string]int{}
	for si := range senders {
		for i := range per {
			body := fmt.Sprintf("s%d-%d", si, i)
			a2.ExpectWithin(body, 10*time.Second, isMsg(body))
			seen[body]++
		}
	}
	for si := range senders {
		for i := range per {
			a2.ExpectNone("duplicate", 0, isMsg(fmt.Sprintf("s%d-%d", si, i)))
		}
	}
}

// backlog returns what c received and has not been taken, in arrival
// order, without taking it.
func backlog(c *testserver.Client) []*wire.Stanza {
	var out []*wire.Stanza
	c.ExpectNone("", 0, func(s *wire.Stanza) bool {
		out = append(out, s)
		return false
	})
	return out
}

// TestResumeKeepsOrder: senders on all three nodes write numbered
// messages to one session while it moves from node to node (a new move
// every few dozen messages, the client acknowledging what it got). Each
// sender's messages reach the client exactly once and strictly in order,
// across every move: a stanza still on its way through the old node is
// not overtaken by one sent straight to the new node.
func TestResumeKeepsOrder(t *testing.T) {
	// The client acknowledges only when it resumes.
	nodes := testserver.StartCluster(t, 3, func(c *server.Config) { c.C2S.MaxUnacked = 5000 })
	nodes[0].AddUser("alice", "pw")
	nodes[0].AddUser("bob", "pw")
	a, id := enableSM(t, nodes[0], "alice", "pw", "phone")
	var senders []*testserver.Client
	for i, n := range nodes {
		senders = append(senders, n.Login("bob", "pw", fmt.Sprint("s", i)))
	}
	a.Send("<presence/>")
	a.Expect("own presence", testserver.PresenceFrom(a.JID, ""))
	full := a.JID

	const per, moves = 600, 9
	done := make(chan struct{}, len(senders))
	for si, s := range senders {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range per {
				if s.TrySend("<message to='%s' type='chat'><body>%d %d</body></message>", full, si, i) != nil {
					return
				}
				if i%5 == 4 {
					time.Sleep(10 * time.Millisecond)
				}
			}
		}()
	}
	var got []*wire.Stanza
	var conn []int // connection index of each stanza in got
	h := 1         // the own presence
	cur := a
	for m := 1; m <= moves; m++ {
		// Let some traffic arrive, then lose the connection.
		cur.Wait(150*time.Millisecond, func(*wire.Stanza) bool { return false })
		cur.Drop()
		cur.StreamError() // the reader has stopped: the backlog is final
		for _, st := range backlog(cur) {
			if st.IsStanza() {
				h++
				got = append(got, st)
				conn = append(conn, m-1)
			}
		}
		next := nodes[m%3]
		cur = next.Authenticate("alice", "pw")
		cur.Send("<resume xmlns='urn:xmpp:sm:3' previd='%s' h='%d'/>", id, h)
		if r := cur.Next(); r.Name != "resumed" {
			t.Fatalf("move %d to %s: %s", m, next.Cluster().Node(), r.Raw)
		}
		cur.StartReader()
	}
	for range senders {
		<-done
	}
	// Everything arrives (on the last connection or before).
	count := func(sts []*wire.Stanza) (n int) {
		for _, st := range sts {
			if st.Name == "message" {
				n++
			}
		}
		return n
	}
	deadline := time.Now().Add(30 * time.Second)
	for count(got)+count(backlog(cur)) < per*len(senders) {
		if time.Now().After(deadline) {
			t.Fatalf("%d messages of %d arrived", count(got)+count(backlog(cur)), per*len(senders))
		}
		cur.Wait(100*time.Millisecond, func(*wire.Stanza) bool { return false })
	}
	for {
		st, ok := cur.Wait(0, func(*wire.Stanza) bool { return true })
		if !ok {
			break
		}
		got = append(got, st)
		conn = append(conn, moves)
	}
	next := make([]int, len(senders))
	trail := func(si int) string { // where sender si's messages arrived
		var b strings.Builder
		for k, st := range got {
			var x, i int
			if st.Name == "message" {
				if _, err := fmt.Sscanf(st.Child(wire.NSClient, "body").Text(), "%d %d", &x, &i); err == nil && x == si {
					d := ""
					if st.Child("urn:xmpp:delay", "delay") != nil {
						d = "d"
					}
					fmt.Fprintf(&b, " %d@%d%s", i, conn[k], d)
				}
			}
		}
		return b.String()
	}
	for _, st := range got {
		if st.Name != "message" {
			continue
		}
		var si, i int
		if _, err := fmt.Sscanf(st.Child(wire.NSClient, "body").Text(), "%d %d", &si, &i); err != nil {
			t.Fatalf("message %s", st.Raw)
		}
		if i != next[si] {
			t.Fatalf("sender %d (on n%d): got message %d, expected %d (out of order, lost or twice); arrivals (message@connection, d: replayed):%s",
				si, si+1, i, next[si], trail(si))
		}
		next[si]++
	}
	if st, ok := cur.Wait(300*time.Millisecond, func(s *wire.Stanza) bool { return s.Name == "message" }); ok {
		var si int
		fmt.Sscanf(st.Child(wire.NSClient, "body").Text(), "%d", &si)
		t.Fatalf("one more message: %s; arrivals of its sender:%s", st.Raw, trail(si))
	}
}
