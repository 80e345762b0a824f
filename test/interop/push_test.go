package interop

import (
	"context"
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/internal/testserver"
)

const (
	pushNode   = "slixmpp-device-7"
	pushSecret = "b6c2f1e0-push-secret"
)

// publish is a "publish" event of slixmpp/push_app.py.
type publish struct {
	From    string            `json:"from"`
	Node    string            `json:"node"`
	Fields  map[string]string `json:"fields"`
	Options map[string]string `json:"options"`
	Raw     string            `json:"raw"`
	at      time.Time
}

// appServer runs slixmpp/push_app.py as pushsvc@localhost/app until the
// test ends; it records every notification it answers.
type appServer struct {
	*peer
	jid   string
	stdin io.WriteCloser
}

func startAppServer(t *testing.T, ts *testserver.Server) *appServer {
	t.Helper()
	ts.AddUser("pushsvc", "pushsvc-pw")
	app := &appServer{jid: "pushsvc@" + testserver.Domain + "/app"}
	l := slixmpp
	l.command = func(ctx context.Context, cfg []byte) *exec.Cmd {
		cmd := exec.CommandContext(ctx, pythonPath, "slixmpp/push_app.py", string(cfg))
		pr, pw := io.Pipe()
		cmd.Stdin, app.stdin = pr, pw
		return cmd
	}
	app.peer = start(t, ts, l, app.jid, "pushsvc-pw", op("serve"))
	t.Cleanup(func() { app.stdin.Close() })
	app.waitEvent("serving", "", 20*time.Second)
	return app
}

// publishes returns the notifications received so far, each with when the
// test saw it.
func (a *appServer) publishes() []publish {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []publish
	for _, e := range a.events {
		if e.Event != "publish" {
			continue
		}
		var p publish
		if err := json.Unmarshal([]byte(e.line), &p); err != nil {
			a.t.Fatalf("publish event: %v: %s", err, e.line)
		}
		out = append(out, p)
	}
	return out
}

// expectPublish waits for notification number n (from 1) and fails unless
// it arrives within d of now.
func (a *appServer) expectPublish(n int, d time.Duration) publish {
	a.t.Helper()
	start := time.Now()
	for {
		if ps := a.publishes(); len(ps) >= n {
			if took := time.Since(start); took > d {
				a.t.Fatalf("notification %d after %v, want within %v", n, took, d)
			}
			return ps[n-1]
		}
		if time.Since(start) > 5*time.Second {
			a.t.Fatalf("no notification %d within 5s:\n%s", n, a.transcript())
		}
		select {
		case <-a.notify:
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// expectNoMore fails if more than n notifications arrive within d.
func (a *appServer) expectNoMore(n int, d time.Duration) {
	a.t.Helper()
	time.Sleep(d)
	if ps := a.publishes(); len(ps) > n {
		a.t.Fatalf("%d notifications, want %d; the extra one: %s", len(ps), n, ps[n].Raw)
	}
}

// checkPublish: from the user's bare JID to the node enabled, the summary
// form with the sender and no body, the secret passed through.
func checkPublish(t *testing.T, p publish, owner, sender, body string) {
	t.Helper()
	if p.From != owner || p.Node != pushNode {
		t.Errorf("publish from %q to node %q, want %q and %q: %s", p.From, p.Node, owner, pushNode, p.Raw)
	}
	if p.Fields["FORM_TYPE"] != "urn:xmpp:push:summary" || p.Fields["message-count"] != "1" || p.Fields["last-message-sender"] != sender {
		t.Errorf("summary %v: %s", p.Fields, p.Raw)
	}
	if _, ok := p.Fields["last-message-body"]; ok || strings.Contains(p.Raw, body) {
		t.Errorf("the notification carries the body: %s", p.Raw)
	}
	if p.Options["secret"] != pushSecret || p.Options["FORM_TYPE"] != "http://jabber.org/protocol/pubsub#publish-options" {
		t.Errorf("publish-options %v, want the secret passed through: %s", p.Options, p.Raw)
	}
}

func pushClient(dial func(*testserver.Server, map[string]any)) lib {
	l := slixmpp
	l.command = func(ctx context.Context, cfg []byte) *exec.Cmd {
		return exec.CommandContext(ctx, pythonPath, "slixmpp/push_client.py", string(cfg))
	}
	if dial != nil {
		l.connect = dial
	}
	return l
}

// TestSlixmppPush: a slixmpp client enables XEP-0357 push with a
// publish-options secret, then is offline (or cut off: its session
// hibernates); a message to it makes Parley publish a summary to the App
// Server (another slixmpp client) within a second, without the body and
// with the secret; after the client disables push, nothing is published.
func TestSlixmppPush(t *testing.T) {
	slixmppAvailable(t)
	enable := op("push_enable", "node", pushNode, "secret", pushSecret)
	disable := op("push_disable", "node", pushNode)

	setup := func(t *testing.T) (*testserver.Server, string, *appServer) {
		ts := testserver.Start(t)
		alice := ts.AddUser("alice", "alice-pw")
		ts.AddUser("bob", "bob-pw")
		app := startAppServer(t, ts)
		enable["jid"], disable["jid"] = app.jid, app.jid
		return ts, alice, app
	}

	t.Run("offline", func(t *testing.T) {
		ts, alice, app := setup(t)
		l := pushClient(nil)
		a := start(t, ts, l, alice+"/phone", "alice-pw", op("presence"), enable, op("ping"))
		finish(t, a)
		ts.WaitOffline(alice)

		bob := ts.Login("bob", "bob-pw", "desk")
		defer bob.Close()
		bob.Send("<message to='%s' type='chat'><body>secret words 1</body></message>", alice)
		checkPublish(t, app.expectPublish(1, time.Second), alice, bob.JID, "secret words 1")

		a2 := start(t, ts, l, alice+"/phone", "alice-pw",
			op("presence"), op("wait_message", "body", "secret words 1"), disable, op("ping"))
		finish(t, a2)
		ts.WaitOffline(alice)
		bob.Send("<message to='%s' type='chat'><body>after disable</body></message>", alice)
		app.expectNoMore(1, 3*time.Second) // past the 2s coalescing window
	})

	t.Run("hibernated", func(t *testing.T) {
		ts, alice, app := setup(t)
		aFull := alice + "/phone"
		proxy := newCutProxy(t, ts.Addr("c2s"))
		l := pushClient(func(_ *testserver.Server, cfg map[string]any) {
			host, port := splitAddr(proxy.ln.Addr().String())
			cfg["host"], cfg["port"] = host, port
		})
		a := start(t, ts, l, aFull, "alice-pw",
			op("presence"), op("wait_sm"), enable,
			op("wait_resumed", "timeout", 30), op("wait_message", "body", "secret words 2"),
			disable, op("ping"))
		a.waitEvent("push_enabled", "", 20*time.Second)

		bob := ts.Login("bob", "bob-pw", "desk")
		defer bob.Close()
		open := ts.C2S().Connections()
		proxy.cut()
		a.waitEvent("cut", "", 10*time.Second)
		ts.WaitConnections(open - 1) // the server noticed: hibernated
		bob.Send("<message to='%s' type='chat'><body>secret words 2</body></message>", aFull)
		checkPublish(t, app.expectPublish(1, time.Second), alice, bob.JID, "secret words 2")

		proxy.release()
		evs := finish(t, a)[0]
		if _, ok := find(evs, func(e event) bool { return e.Event == "resumed" }); !ok {
			t.Fatalf("no resumption:\n%s", a.transcript())
		}
		ts.WaitOffline(alice)
		bob.Send("<message to='%s' type='chat'><body>after disable</body></message>", alice)
		app.expectNoMore(1, 3*time.Second)
	})
}
