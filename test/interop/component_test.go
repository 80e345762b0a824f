package interop

import (
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/component"
	"github.com/parley-xmpp/parley/internal/testserver"
	"github.com/parley-xmpp/parley/server"
	"github.com/parley-xmpp/parley/wire"
)

// TestSlixmppComponent: slixmpp's ComponentXMPP connects as an XEP-0114
// component, greets alice, answers her disco#info query on its domain
// (slixmpp's xep_0030) and echoes her messages to JIDs at its domain.
func TestSlixmppComponent(t *testing.T) {
	slixmpp.available(t)
	const secret = "interop-component-secret-42"
	ts := testserver.Start(t, func(c *server.Config) {
		c.Listen.Component = "127.0.0.1:0"
		c.Components = []component.Component{{Domain: "gw.localhost", Secret: secret}}
	})
	ts.AddUser("alice", "pw1")
	a := ts.Login("alice", "pw1", "phone")
	host, port := splitAddr(ts.Addr("component"))
	cfg, _ := json.Marshal(map[string]any{"host": host, "port": port, "jid": "gw.localhost", "secret": secret,
		"greet": a.JID, "expect": 2, "deadline": scriptDeadline})
	ctx, cancel := context.WithTimeout(context.Background(), processTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, pythonPath, "slixmpp/component.py", string(cfg))
	cmd.WaitDelay = 5 * time.Second
	var out lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		cancel()
		<-done
		if t.Failed() {
			t.Logf("component output:\n%s", out.String())
		}
	}()

	m := a.ExpectWithin("greeting from the component", 20*time.Second, isBody("hello from slixmpp"))
	if m.From != "bot@gw.localhost" {
		t.Fatalf("greeting from %q", m.From)
	}
	r := a.IQ("d", "<iq type='get' id='d' to='gw.localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
	if r.Type != "result" || !strings.Contains(string(r.Raw), "Parley interop gateway") {
		t.Fatalf("disco#info of the component: %s", r.Raw)
	}
	for _, to := range []string{"room@gw.localhost", "bot@gw.localhost"} {
		a.Send("<message to='%s' type='chat'><body>ping %s</body></message>", to, to)
		e := a.Expect("echo from "+to, isBody("echo: ping "+to))
		if e.From != to {
			t.Fatalf("echo from %q, want %q", e.From, to)
		}
	}
	select {
	case err := <-done:
		done <- err
		if err != nil || !strings.Contains(out.String(), `"event": "done"`) {
			t.Fatalf("component exited: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("component did not finish")
	}
	if !strings.Contains(out.String(), `"from": "`+a.JID+`"`) {
		t.Fatalf("the component did not see alice's JID as the sender")
	}
}

func isBody(body string) func(*wire.Stanza) bool { return testserver.MessageWithBody(body) }
