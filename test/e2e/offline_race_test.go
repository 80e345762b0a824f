package e2e

import (
	"fmt"
	"sync"
	"testing"

	"github.com/parley-xmpp/parley/internal/testserver"
)

// TestMessageWhileComingOnline: a message to a bare JID routed while the
// recipient's initial presence is handled reaches the recipient now, live
// or from offline storage, never left stored while he is online (it was
// when the router found no available resource, bob's initial presence
// then sent the offline messages, and only then was the message stored:
// the router waits for the message's archive commit in between).
func TestMessageWhileComingOnline(t *testing.T) {
	t.Parallel()
	ts := testserver.Start(t)
	ts.AddUser("alice", "pw1")
	bob := ts.AddUser("bob", "pw2")
	a := ts.Login("alice", "pw1", "phone")
	for i := range 30 {
		b := ts.Login("bob", "pw2", fmt.Sprint("r", i))
		body := fmt.Sprint("coming online ", i)
		var wg sync.WaitGroup
		wg.Go(func() { b.Send("<presence/>") })
		wg.Go(func() { a.Send("<message to='%s' type='chat'><body>%s</body></message>", bob, body) })
		wg.Wait()
		b.Expect(body, isMsg(body))
		b.Close()
		ts.WaitOffline(bob)
	}
}
