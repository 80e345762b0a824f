package interop

import (
	"context"
	"io"
	"net"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/internal/testserver"
)

// cutProxy forwards TCP connections to the server. cut closes every
// connection (both sides see an abrupt end) and holds new ones until
// release, so the test decides when the client gets back.
type cutProxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	conns []net.Conn
	gate  chan struct{} // closed: connections pass
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target, gate: make(chan struct{})}
	close(p.gate)
	t.Cleanup(func() { ln.Close(); p.cut() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	return p
}

func (p *cutProxy) serve(c net.Conn) {
	p.mu.Lock()
	gate := p.gate
	p.mu.Unlock()
	<-gate
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.conns = append(p.conns, c, s)
	p.mu.Unlock()
	go func() { io.Copy(s, c); s.Close(); c.Close() }()
	go func() { io.Copy(c, s); s.Close(); c.Close() }()
}

func (p *cutProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.gate = make(chan struct{})
	for _, c := range p.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0) // RST, not a polite FIN
		}
		c.Close()
	}
	p.conns = nil
}

func (p *cutProxy) release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.gate:
	default:
		close(p.gate)
	}
}

// TestSlixmppStreamResumption: slixmpp enables XEP-0198 with resumption,
// the test cuts its TCP connection, another client sends messages while it
// is gone, and after slixmpp resumes each arrives exactly once.
func TestSlixmppStreamResumption(t *testing.T) {
	slixmppAvailable(t)
	ts := testserver.Start(t)
	alice := ts.AddUser("alice", "alice-pw")
	ts.AddUser("bob", "bob-pw")
	aFull := alice + "/slixmpp-sm"
	proxy := newCutProxy(t, ts.Addr("c2s"))
	l := slixmpp
	l.command = func(ctx context.Context, cfg []byte) *exec.Cmd {
		return exec.CommandContext(ctx, pythonPath, "slixmpp/sm_resume.py", string(cfg))
	}
	l.connect = func(_ *testserver.Server, cfg map[string]any) {
		host, port := splitAddr(proxy.ln.Addr().String())
		cfg["host"], cfg["port"] = host, port
	}
	bodies := []string{"sent while cut 1", "sent while cut 2", "sent while cut 3"}
	actions := []map[string]any{op("presence"), op("wait_sm"), op("wait_resumed", "timeout", 30)}
	for _, b := range bodies {
		actions = append(actions, op("wait_message", "body", b))
	}
	actions = append(actions, op("ping"), op("sleep", "seconds", 1), op("ping"))
	a := start(t, ts, l, aFull, "alice-pw", actions...)
	a.waitEvent("sm_enabled", "", 20*time.Second)

	bob := ts.Login("bob", "bob-pw", "go")
	defer bob.Close()
	proxy.cut()
	a.waitEvent("cut", "", 10*time.Second)
	for _, b := range bodies {
		bob.Send("<message to='%s' type='chat' id='%s'><body>%s</body></message>", aFull, b[len(b)-1:], b)
	}
	bob.Sync() // the messages reached the session's queue
	proxy.release()

	evs := finish(t, a)[0]
	if _, ok := find(evs, func(e event) bool { return e.Event == "resumed" }); !ok {
		t.Fatalf("no resumption:\n%s", a.transcript())
	}
	if _, ok := find(evs, func(e event) bool { return e.Event == "session_end" }); ok {
		t.Errorf("slixmpp ended its session (resumption failed?):\n%s", a.transcript())
	}
	for _, b := range bodies {
		n := 0
		for _, e := range evs {
			if e.Event == "received" && e.Body == b {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%q received %d times, want exactly once:\n%s", b, n, a.transcript())
		}
	}
}
