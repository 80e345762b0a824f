package cluster

import (
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/internal/testserver"
	"github.com/parley-xmpp/parley/server"
	"github.com/parley-xmpp/parley/wire"
)

// defaultTiming gives an in-process node the heartbeat settings of the
// child processes (the defaults), so that all nodes judge each other alike.
func defaultTiming(c *server.Config) {
	d := server.DefaultConfig().Cluster
	c.Cluster.Heartbeat, c.Cluster.DeadAfter = d.Heartbeat, d.DeadAfter
}

// TestSIGKILLDuringMessageStorm kills a node with SIGKILL while messages
// flow to and from its users, with the default heartbeat settings. Every
// message acknowledged to its sender (XEP-0198 h) is found afterwards in
// the recipient's archive; the dead node's users are announced unavailable
// within 15 s; resuming a session of the dead node fails with
// <item-not-found/>.
func TestSIGKILLDuringMessageStorm(t *testing.T) {
	if testing.Short() {
		t.Skip("kills a node and waits for its detection")
	}
	spec := testserver.NewClusterSpec(t)
	n1 := testserver.Start(t, spec.Node("n1", "127.0.0.2"), defaultTiming)
	n2 := startProc(t, spec, "n2", "127.0.0.3") // the victim
	n3 := startProc(t, spec, "n3", "127.0.0.4")

	const senders, perSender, batch = 4, 240, 10
	for i := range senders {
		n1.AddUser(fmt.Sprint("s", i), "pw")
		n1.AddUser(fmt.Sprint("r", i), "pw")
	}
	n1.AddUser("v", "pw") // sends from the victim
	w := n1.AddUser("w", "pw")

	// Recipients on the victim; r0 is w's contact (presence), r1 resumable.
	rs := make([]*testserver.Client, senders)
	var r1ID string
	for i := range senders {
		if i == 1 {
			rs[i], r1ID = n2.loginSM(t, "r1", "pw", "phone")
		} else {
			rs[i] = n2.login(t, fmt.Sprint("r", i), "pw", "phone")
		}
	}
	wc := n1.Login("w", "pw", "desk")
	wc.IQ("r0", "<iq type='get' id='r0'><query xmlns='jabber:iq:roster'/></iq>")
	rs[0].IQ("r0", "<iq type='get' id='r0'><query xmlns='jabber:iq:roster'/></iq>")
	wc.Send("<presence/>")
	rs[0].Send("<presence/>")
	subscribe(t, wc, rs[0], w, "r0@localhost")
	wc.Expect("r0 available", testserver.PresenceFrom(rs[0].JID, ""))
	// r2 has no subscription with w, only directed presence: the node
	// that announces r2's end learns of it from the registry.
	rs[2].Send("<presence to='%s'/>", w)
	wc.Expect("r2's directed presence", testserver.PresenceFrom(rs[2].JID, ""))

	// Senders: s0, s1 on n1 (survives), s2, s3 on n3 (survives), v on n2.
	type sender struct {
		c    *testserver.Client
		to   string
		tag  string
		h    int // messages acknowledged (h: nothing else is sent)
		sent int
	}
	var ss []*sender
	for i := range senders {
		var c *testserver.Client
		if i < 2 {
			c = n1.Authenticate(fmt.Sprint("s", i), "pw")
			c.Bind("storm")
			c.Send("<enable xmlns='urn:xmpp:sm:3'/>")
			if e := c.Next(); e.Name != "enabled" {
				t.Fatalf("enable: %s", e.Raw)
			}
			c.StartReader()
		} else {
			c, _ = n3.loginSM(t, fmt.Sprint("s", i), "pw", "storm")
		}
		ss = append(ss, &sender{c: c, to: fmt.Sprintf("r%d@localhost", i), tag: fmt.Sprint("s", i)})
	}
	vc, _ := n2.loginSM(t, "v", "pw", "storm")
	ss = append(ss, &sender{c: vc, to: w, tag: "v"})

	killAt := make(chan struct{})
	var killOnce sync.Once
	var wg sync.WaitGroup
	for _, s := range ss {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for s.sent < perSender {
				for range batch {
					if s.c.TrySend("<message to='%s' type='chat'><body>%s-%d</body></message>", s.to, s.tag, s.sent) != nil {
						return // the sender's node died
					}
					s.sent++
				}
				if s.sent >= perSender/3 {
					killOnce.Do(func() { close(killAt) })
				}
				if s.c.TrySend("<r xmlns='urn:xmpp:sm:3'/>") != nil {
					return
				}
				a, ok := s.c.Wait(5*time.Second, isSM("a"))
				if !ok {
					return // the sender's node died
				}
				h, _ := strconv.Atoi(a.Attr("h"))
				s.h = h
			}
		}()
	}
	<-killAt
	n2.kill()
	killed := time.Now()
	t.Logf("killed n2 after %d of %d messages per sender", perSender/3, perSender)

	// Resuming a session of the dead node fails; the client catches up
	// through MAM.
	r1b := testserver.ConnectTo(t, n3.c2s, "localhost")
	if err := r1b.Auth(r1b.Features(), "SCRAM-SHA-256", "r1", "pw"); err != nil {
		t.Fatal(err)
	}
	r1b.Restart()
	r1b.Send("<resume xmlns='urn:xmpp:sm:3' previd='%s' h='0'/>", r1ID)
	if f := r1b.Next(); f.Name != "failed" || f.Child(wire.NSStanzas, "item-not-found") == nil {
		t.Fatalf("resume of a session of the dead node: %s", f.Raw)
	}

	wg.Wait()
	pres := wc.ExpectWithin("r0 unavailable", 15*time.Second, testserver.PresenceFrom(rs[0].JID, "unavailable"))
	detected := time.Since(killed)
	t.Logf("dead node detected and its user announced unavailable %s after SIGKILL", detected.Round(10*time.Millisecond))
	_ = pres
	wc.ExpectNone("a second unavailable", 2*time.Second, testserver.PresenceFrom(rs[0].JID, "unavailable"))
	wc.Expect("r2 unavailable to its directed-presence recipient", testserver.PresenceFrom(rs[2].JID, "unavailable"))
	wc.ExpectNone("a second unavailable of r2", 0, testserver.PresenceFrom(rs[2].JID, "unavailable"))

	// Every acknowledged message is in its recipient's archive.
	archives := map[string]map[string]bool{}
	lookup := func(user string) map[string]bool {
		if m, ok := archives[user]; ok {
			return m
		}
		c := n1.Login(user, "pw", "after")
		m := map[string]bool{}
		for _, b := range archiveBodies(t, c) {
			m[b] = true
		}
		archives[user] = m
		return m
	}
	total := 0
	for i, s := range ss {
		user := fmt.Sprint("r", i)
		if s.tag == "v" {
			user = "w"
		}
		got := lookup(user)
		for j := range s.h {
			if !got[fmt.Sprintf("%s-%d", s.tag, j)] {
				t.Errorf("%s: acknowledged message %d (of %d acknowledged) is not in %s's archive", s.tag, j, s.h, user)
			}
		}
		total += s.h
		t.Logf("%s: %d sent, %d acknowledged", s.tag, s.sent, s.h)
	}
	if ss[len(ss)-1].h >= perSender {
		t.Errorf("the sender on the killed node had everything acknowledged: the kill came too late to test anything")
	}
	if total == 0 {
		t.Fatal("nothing was acknowledged")
	}
}
