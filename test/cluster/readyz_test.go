package cluster

import (
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/internal/testserver"
	"github.com/parley-xmpp/parley/server"
)

// cutter is a TCP relay to NATS whose connections can be cut and the
// port closed, as a network cut between one node and NATS.
type cutter struct {
	t      *testing.T
	addr   string
	mu     sync.Mutex
	ln     net.Listener
	conns  map[net.Conn]struct{}
	target string
}

func newCutter(t *testing.T, target string) *cutter {
	c := &cutter{t: t, target: target, conns: map[net.Conn]struct{}{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c.addr = ln.Addr().String()
	c.serve(ln)
	t.Cleanup(c.cut)
	return c
}

func (c *cutter) serve(ln net.Listener) {
	c.mu.Lock()
	c.ln = ln
	c.mu.Unlock()
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.DialTimeout("tcp", c.target, 5*time.Second)
			if err != nil {
				in.Close()
				continue
			}
			c.mu.Lock()
			c.conns[in], c.conns[out] = struct{}{}, struct{}{}
			c.mu.Unlock()
			go func() { _, _ = io.Copy(out, in); out.Close() }()
			go func() { _, _ = io.Copy(in, out); in.Close() }()
		}
	}()
}

// cut closes the port and every relayed connection.
func (c *cutter) cut() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ln != nil {
		c.ln.Close()
		c.ln = nil
	}
	for conn := range c.conns {
		conn.Close()
		delete(c.conns, conn)
	}
}

// restore opens the port again.
func (c *cutter) restore() {
	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		c.t.Fatal(err)
	}
	c.serve(ln)
}

// TestReadyzFollowsNATS: a node that loses NATS reports itself unready
// on /readyz (so a load balancer stops sending it clients) and ready again
// once NATS is back, and then routes across nodes as before.
func TestReadyzFollowsNATS(t *testing.T) {
	spec := testserver.NewClusterSpec(t)
	relay := newCutter(t, strings.TrimPrefix(testserver.NATSURL(), "nats://"))
	n1 := testserver.Start(t, spec.Node("n1", "127.0.0.2"), func(c *server.Config) {
		c.Cluster.NATS.URLs = []string{"nats://" + relay.addr}
	})
	n2 := testserver.Start(t, spec.Node("n2", "127.0.0.3"))
	readyz := func() (int, string) {
		resp, err := http.Get("http://" + n1.Addr("admin") + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	waitFor := func(what string, want int) string {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			code, body := readyz()
			if code == want {
				return body
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: /readyz %d %s", what, code, body)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitFor("before the cut", http.StatusOK)
	relay.cut()
	if body := waitFor("NATS cut", http.StatusServiceUnavailable); !strings.Contains(body, "NATS") {
		t.Fatalf("/readyz while NATS is cut: %s", body)
	}
	relay.restore()
	waitFor("NATS back", http.StatusOK)

	// Routing across nodes works again, both ways.
	n1.AddUser("alice", "pw")
	n1.AddUser("bob", "pw")
	a := n1.Login("alice", "pw", "phone")
	b := n2.Login("bob", "pw", "laptop")
	// Once the nodes hear each other again (a node not heard for three
	// heartbeats is skipped: its users' messages go to offline storage).
	deadline := time.Now().Add(15 * time.Second)
	for !alive(n1, "n2") || !alive(n2, "n1") {
		if time.Now().After(deadline) {
			t.Fatal("the nodes do not hear each other after NATS came back")
		}
		time.Sleep(50 * time.Millisecond)
	}
	a.Send("<message to='%s' type='chat'><body>after the cut</body></message>", b.JID)
	b.ExpectWithin("message from n1", 10*time.Second, isMsg("after the cut"))
	b.Send("<message to='%s' type='chat'><body>back to n1</body></message>", a.JID)
	a.ExpectWithin("message to n1", 10*time.Second, isMsg("back to n1"))
}

// alive reports whether s hears node's heartbeats.
func alive(s *testserver.Server, node string) bool {
	for _, p := range s.Cluster().Peers() {
		if p.Node == node {
			return p.Alive
		}
	}
	return false
}
