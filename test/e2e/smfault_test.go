package e2e

import (
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/internal/testserver"
	"github.com/parley-xmpp/parley/server"
)

// TestStreamManagementFaultInjection: while alice sends a steady stream of
// messages, bob's TCP connection is cut without closing the stream, cuts
// times, at random moments. Bob resumes each time with the h he really
// handled. Every message arrives exactly once and in order.
func TestStreamManagementFaultInjection(t *testing.T) {
	t.Parallel()
	const messages, cuts = 1500, 200
	ts := testserver.Start(t, func(c *server.Config) {
		c.C2S.ResumeTimeout = 30 * time.Second
		// Room for every message unacknowledged at once: alice may send
		// all of them before bob acknowledges many (the server reads
		// ahead while archive writes commit), and a session that exceeds
		// max_unacked is closed, which is not what this test is about.
		c.C2S.MaxUnacked = 2 * messages
	})
	ts.AddUser("alice", "pw1")
	ts.AddUser("bob", "pw2")
	a := ts.Login("alice", "pw1", "a")
	bob, id := enableSM(t, ts, "bob", "pw2", "b")
	full := bob.JID
	bob.Drop() // continue with synchronous reads on fresh connections
	ts.WaitConnections(1)

	go func() {
		for i := 0; i < messages; i++ {
			a.Send("<message to='%s' type='chat'><body>%d</body></message>", full, i)
			if i%50 == 0 {
				time.Sleep(2 * time.Millisecond)
			}
		}
	}()

	rng := rand.New(rand.NewPCG(1, 2))
	seen := make([]int, messages)
	next := 0 // next index expected, for order
	var h uint32
	done := 0
	for c := 0; done < messages; c++ {
		if c > cuts+50 {
			t.Fatalf("too many reconnections; received %d of %d", done, messages)
		}
		cl := ts.Authenticate("bob", "pw2")
		cl.Send("<resume xmlns='urn:xmpp:sm:3' previd='%s' h='%d'/>", id, h)
		if r := cl.Next(); r.Name != "resumed" {
			t.Fatalf("resume %d failed: %s", c, r.Raw)
		}
		budget := 1 + rng.IntN(2*messages/cuts)
		if c >= cuts {
			budget = messages // stop cutting: drain the rest
		}
		for budget > 0 && done < messages {
			el := cl.Next()
			switch {
			case el.NS == nsSM && el.Name == "r":
				cl.Send("<a xmlns='urn:xmpp:sm:3' h='%d'/>", h)
				continue
			case el.NS == nsSM:
				continue
			case !el.IsStanza():
				t.Fatalf("unexpected %s", el.Raw)
			}
			h++
			if el.Name != "message" {
				continue
			}
			body := el.Child("jabber:client", "body").Text()
			i, err := strconv.Atoi(strings.TrimSpace(body))
			if err != nil {
				t.Fatalf("bad body %q", body)
			}
			seen[i]++
			if seen[i] > 1 {
				t.Fatalf("message %d delivered twice (cut %d)", i, c)
			}
			if i != next {
				t.Fatalf("message %d arrived when %d was expected (cut %d)", i, next, c)
			}
			next++
			done++
			budget--
		}
		cl.Drop()
	}
}
