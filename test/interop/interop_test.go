// Package interop runs real third-party XMPP client libraries against an
// in-process Parley server: slixmpp (Python, Debian's python3-slixmpp for
// /usr/bin/python3) and xmpp.js (@xmpp/client from npm, in js/), the latter
// over TCP with STARTTLS and over WebSocket.
//
// Each library is driven by a small script (slixmpp/driver.py,
// js/driver.mjs) that takes a JSON list of actions and prints JSON lines;
// the tests here start the server, run one script per account and assert
// on what the scripts saw. scripts/test installs both libraries when they
// are missing; without them the tests skip loudly (or fail, when
// PARLEY_INTEROP_REQUIRED=1).
package interop

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/internal/testserver"
)

// processTimeout bounds each client process; the scripts bound each of
// their waits (waitTimeout) and their whole run (scriptDeadline) themselves.
const (
	processTimeout = 90 * time.Second
	scriptDeadline = 60
	waitTimeout    = 10
)

// lib is one third-party client library and transport.
type lib struct {
	name string
	// mech is the SASL mechanism the library logs in with ("" when the
	// library chooses, as slixmpp does).
	mech string
	// sasl2: the library logs in with SASL2 and binds with Bind2 (XEP-0386),
	// so the server appends an identifier to the resource it asks for.
	sasl2 bool
	// secureTransport: the login must have negotiated TLS (STARTTLS).
	secureTransport bool
	// available skips (or fails) the test when the library is missing.
	available func(t *testing.T)
	// command builds the process for a JSON config.
	command func(ctx context.Context, cfg []byte) *exec.Cmd
	// connect adds where to connect to the config.
	connect func(ts *testserver.Server, cfg map[string]any)
	// deadline, when set, replaces scriptDeadline (seconds) for a script
	// that does a day's work; its process gets 30 s more.
	deadline int
}

const pythonPath = "/usr/bin/python3"

func missing(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := "INTEROP TEST NOT RUN: " + fmt.Sprintf(format, args...)
	if os.Getenv("PARLEY_INTEROP_REQUIRED") == "1" {
		t.Fatal(msg + " (PARLEY_INTEROP_REQUIRED=1)")
	}
	t.Skip(msg)
}

var (
	slixOnce sync.Once
	slixErr  error
)

func slixmppAvailable(t *testing.T) {
	t.Helper()
	slixOnce.Do(func() {
		out, err := exec.Command(pythonPath, "-c", "import slixmpp").CombinedOutput()
		if err != nil {
			slixErr = fmt.Errorf("%v: %s", err, bytes.TrimSpace(out))
		}
	})
	if slixErr != nil {
		missing(t, "slixmpp not installed for %s (%v): run scripts/test which installs it (apt-get install python3-slixmpp)", pythonPath, slixErr)
	}
}

func xmppjsAvailable(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		missing(t, "node not on PATH: xmpp.js interop tests need Node.js (v20+)")
	}
	if _, err := os.Stat(filepath.Join("js", "node_modules", "@xmpp", "client", "package.json")); err != nil {
		missing(t, "xmpp.js not installed (test/interop/js/node_modules missing): run scripts/test which runs npm install in test/interop/js")
	}
}

func script(t *testing.T, rel string) string {
	p, err := filepath.Abs(rel)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

var (
	// slixmpp keeps its own choice of mechanism: on TLS 1.3 it tries the
	// -PLUS mechanisms with tls-unique, which TLS 1.3 lacks, three times,
	// then logs in with SCRAM-SHA-512 (see TestSlixmppChannelBinding).
	slixmpp = lib{
		name:            "slixmpp",
		secureTransport: true,
		available:       slixmppAvailable,
		command: func(ctx context.Context, cfg []byte) *exec.Cmd {
			return exec.CommandContext(ctx, pythonPath, "slixmpp/driver.py", string(cfg))
		},
		connect: func(ts *testserver.Server, cfg map[string]any) {
			host, port := splitAddr(ts.Addr("c2s"))
			cfg["host"], cfg["port"] = host, port
		},
	}
	// xmpp.js 0.14 implements SCRAM-SHA-1, PLAIN and ANONYMOUS only (no
	// SCRAM-SHA-256), so it logs in with SCRAM-SHA-1, over SASL2.
	xmppjsTCP = lib{
		name:            "xmppjs-tcp",
		mech:            "SCRAM-SHA-1",
		sasl2:           true,
		secureTransport: true,
		available:       xmppjsAvailable,
		command:         nodeCommand,
		connect: func(ts *testserver.Server, cfg map[string]any) {
			cfg["service"] = "xmpp://" + ts.Addr("c2s")
		},
	}
	// Plain WebSocket from loopback: the server counts it as secure, but
	// there is no TLS to check.
	xmppjsWS = lib{
		name:      "xmppjs-ws",
		mech:      "SCRAM-SHA-1",
		sasl2:     true,
		available: xmppjsAvailable,
		command:   nodeCommand,
		connect: func(ts *testserver.Server, cfg map[string]any) {
			cfg["service"] = "ws://" + ts.Addr("http") + "/xmpp-websocket"
		},
	}
)

func nodeCommand(ctx context.Context, cfg []byte) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "node", "js/driver.mjs", string(cfg))
	cmd.Env = append(os.Environ(), "NODE_TLS_REJECT_UNAUTHORIZED=0")
	return cmd
}

func splitAddr(addr string) (string, int) {
	i := strings.LastIndexByte(addr, ':')
	var port int
	fmt.Sscanf(addr[i+1:], "%d", &port)
	return addr[:i], port
}

// --- driver output ----------------------------------------------------------

type rosterItem struct {
	Subscription string   `json:"subscription"`
	Ask          string   `json:"ask"`
	Name         string   `json:"name"`
	Groups       []string `json:"groups"`
}

type event struct {
	Event     string                `json:"event"`
	JID       string                `json:"jid"`
	Mechanism string                `json:"mechanism"`
	Offered   []string              `json:"offered"`
	TLS       bool                  `json:"tls"`
	SASL2     bool                  `json:"sasl2"`
	GS2Header string                `json:"gs2_header"`
	Condition string                `json:"condition"`
	Seconds   int                   `json:"seconds"`
	Expiry    string                `json:"expiry"`
	Length    int                   `json:"length"`
	Library   string                `json:"library"`
	Version   string                `json:"version"`
	Items     map[string]rosterItem `json:"items"`
	Server    map[string]rosterItem `json:"server"`
	Item      *rosterItem           `json:"item"`
	Op        string                `json:"op"`
	From      string                `json:"from"`
	To        string                `json:"to"`
	Type      string                `json:"type"`
	ID        string                `json:"id"`
	Body      string                `json:"body"`
	Delay     *struct {
		Stamp string `json:"stamp"`
		From  string `json:"from"`
	} `json:"delay"`
	Error string `json:"error"`
	Raw   string `json:"raw"`
	// Ad-hoc commands (slixmpp/adhoc.py).
	Nodes  []string            `json:"nodes"`
	Status any                 `json:"status"` // a string (ad-hoc, last activity) or a number (HTTP status: upload)
	Values map[string][]string `json:"values"`
	Text   string              `json:"text"`
	line   string
}

// peer is one running client script.
type peer struct {
	t      *testing.T
	name   string
	cancel context.CancelFunc
	limit  time.Duration // of the process
	cmd    *exec.Cmd

	mu     sync.Mutex
	events []event
	stderr bytes.Buffer
	notify chan struct{}
	exited chan struct{}
	err    error // from Wait
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// start runs the library's driver as account jid with the actions.
func start(t *testing.T, ts *testserver.Server, l lib, jid, password string, actions ...map[string]any) *peer {
	t.Helper()
	cfg := map[string]any{
		"jid": jid, "password": password, "domain": testserver.Domain,
		"timeout": waitTimeout, "deadline": scriptDeadline, "actions": actions,
	}
	limit := processTimeout
	if l.deadline > 0 {
		cfg["deadline"], limit = l.deadline, time.Duration(l.deadline+30)*time.Second
	}
	if l.mech != "" {
		cfg["mechanism"] = l.mech
	}
	if l.sasl2 {
		cfg["user_agent"] = userAgentID(jid)
	}
	l.connect(ts, cfg)
	raw, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	p := &peer{t: t, name: l.name + " " + jid, cancel: cancel, limit: limit, notify: make(chan struct{}, 1), exited: make(chan struct{})}
	p.cmd = l.command(ctx, raw)
	p.cmd.WaitDelay = 5 * time.Second
	p.cmd.Stderr = lockedWriter{&p.mu, &p.stderr}
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		cancel()
		t.Fatalf("%s: start: %v", p.name, err)
	}
	t.Cleanup(func() {
		cancel()
		<-p.exited
	})
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
		for sc.Scan() {
			line := sc.Text()
			var ev event
			if err := json.Unmarshal([]byte(line), &ev); err != nil || ev.Event == "" {
				ev = event{Event: "unparsed", Raw: line}
			}
			ev.line = line
			p.mu.Lock()
			p.events = append(p.events, ev)
			p.mu.Unlock()
			p.poke()
		}
		err := p.cmd.Wait()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(p.exited)
		p.poke()
	}()
	return p
}

// userAgentID is the XEP-0388 user-agent id the driver of jid sends: a
// UUID fixed per JID, so the Bind2 resource is known in advance.
func userAgentID(jid string) string {
	h := sha256.Sum256([]byte(jid))
	h[6] = h[6]&0x0f | 0x40 // version 4
	h[8] = h[8]&0x3f | 0x80 // variant 10
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}

// boundJID is the full JID a library's client asking for full gets.
func boundJID(ts *testserver.Server, l lib, full string) string {
	if !l.sasl2 {
		return full
	}
	bare, res, _ := strings.Cut(full, "/")
	user, _, _ := strings.Cut(bare, "@")
	return bare + "/" + ts.Bind2Resource(user, res, userAgentID(full))
}

// waitEvents waits until the script printed n events named ev.
func (p *peer) waitEvents(ev string, n int, d time.Duration) {
	p.t.Helper()
	deadline := time.After(d)
	for {
		p.mu.Lock()
		count := 0
		for _, e := range p.events {
			if e.Event == ev {
				count++
			}
		}
		p.mu.Unlock()
		if count >= n {
			return
		}
		select {
		case <-p.notify:
		case <-p.exited:
			p.t.Fatalf("%s exited before %d %q events:\n%s", p.name, n, ev, p.transcript())
		case <-deadline:
			p.t.Fatalf("%s: no %d %q events within %v:\n%s", p.name, n, ev, d, p.transcript())
		}
	}
}

func (p *peer) poke() {
	select {
	case p.notify <- struct{}{}:
	default:
	}
}

// transcript is everything the script printed, for failure messages.
func (p *peer) transcript() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "--- %s stdout:\n", p.name)
	for _, ev := range p.events {
		b.WriteString(ev.line + "\n")
	}
	fmt.Fprintf(&b, "--- %s stderr:\n%s", p.name, p.stderr.String())
	if p.err != nil {
		fmt.Fprintf(&b, "--- %s exit: %v\n", p.name, p.err)
	}
	return b.String()
}

// waitEvent waits for the first event named ev (and op, when given).
func (p *peer) waitEvent(ev, op string, d time.Duration) event {
	p.t.Helper()
	deadline := time.After(d)
	for {
		p.mu.Lock()
		for _, e := range p.events {
			if e.Event == ev && (op == "" || e.Op == op) {
				p.mu.Unlock()
				return e
			}
		}
		p.mu.Unlock()
		select {
		case <-p.notify:
		case <-p.exited:
			// Drain events printed just before exit.
			p.mu.Lock()
			for _, e := range p.events {
				if e.Event == ev && (op == "" || e.Op == op) {
					p.mu.Unlock()
					return e
				}
			}
			p.mu.Unlock()
			p.t.Fatalf("%s exited before %q:\n%s", p.name, ev, p.transcript())
		case <-deadline:
			p.t.Fatalf("%s: no %q within %v:\n%s", p.name, ev, d, p.transcript())
		}
	}
}

// result waits for the script to exit; ok means it ran every action.
func (p *peer) result() (evs []event, ok bool) {
	select {
	case <-p.exited:
	case <-time.After(p.limit + 10*time.Second):
		return nil, false
	}
	p.mu.Lock()
	err := p.err
	evs = slices.Clone(p.events)
	p.mu.Unlock()
	// A stanza can still arrive while the script disconnects after its
	// last action, so "done" need not be the last event.
	return evs, err == nil && slices.ContainsFunc(evs, func(e event) bool { return e.Event == "done" })
}

// finish waits for every script and fails, showing every transcript,
// unless all of them ran all their actions.
func finish(t *testing.T, peers ...*peer) [][]event {
	t.Helper()
	all := make([][]event, len(peers))
	failed := false
	for i, p := range peers {
		evs, ok := p.result()
		all[i] = evs
		if !ok {
			failed = true
			t.Errorf("%s did not finish its actions", p.name)
		}
	}
	if failed {
		var b strings.Builder
		for _, p := range peers {
			b.WriteString(p.transcript())
		}
		t.Fatalf("transcripts:\n%s", b.String())
	}
	return all
}

func find(evs []event, match func(event) bool) (event, bool) {
	for _, e := range evs {
		if match(e) {
			return e, true
		}
	}
	return event{}, false
}

func message(t *testing.T, who string, evs []event, body string) event {
	t.Helper()
	e, ok := find(evs, func(e event) bool { return e.Event == "message" && e.Body == body })
	if !ok {
		t.Fatalf("%s: no message %q in output", who, body)
	}
	return e
}

// checkLogin asserts the login went as the library was told: bound to the
// expected full JID (boundJID), with the mechanism forced (SASL2 for
// xmpp.js), over TLS where it applies.
func checkLogin(t *testing.T, l lib, fullJID string, evs []event) {
	t.Helper()
	e, ok := find(evs, func(e event) bool { return e.Event == "login" })
	if !ok {
		t.Fatalf("%s: no login event", l.name)
	}
	if e.JID != fullJID {
		t.Errorf("%s: bound %q, want %q", l.name, e.JID, fullJID)
	}
	if l.mech != "" && e.Mechanism != l.mech {
		t.Errorf("%s: logged in with SASL %q, want %q (offered %v)", l.name, e.Mechanism, l.mech, e.Offered)
	}
	if e.SASL2 != l.sasl2 {
		t.Errorf("%s: SASL2 used %v, want %v", l.name, e.SASL2, l.sasl2)
	}
	if !slices.Contains(e.Offered, "SCRAM-SHA-256") {
		t.Errorf("%s: server did not offer SCRAM-SHA-256: %v", l.name, e.Offered)
	}
	if l.secureTransport && !e.TLS {
		t.Errorf("%s: login was not over STARTTLS", l.name)
	}
	t.Logf("%s %s: %s logged in with %s (offered %v, tls %v)", e.Library, e.Version, e.JID, e.Mechanism, e.Offered, e.TLS)
}

func op(name string, kv ...any) map[string]any {
	m := map[string]any{"op": name}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i].(string)] = kv[i+1]
	}
	return m
}

// --- scenarios --------------------------------------------------------------

// chat: alice (library la) and bob (library lb) log in, fetch their empty
// rosters, subscribe to each other both ways, see each other's presence,
// and exchange messages to full and bare JIDs both ways.
func chat(t *testing.T, la, lb lib) {
	la.available(t)
	lb.available(t)
	ts := testserver.Start(t)
	chatOn(t, la, lb, ts, ts)
}

// chatOn is chat with alice on tsA and bob on tsB (two nodes of a cluster).
func chatOn(t *testing.T, la, lb lib, tsA, tsB *testserver.Server) {
	alice := tsA.AddUser("alice", "alice-pw")
	bob := tsA.AddUser("bob", "bob-pw")
	aReq, bReq := alice+"/"+la.name+"-a", bob+"/"+lb.name+"-b"
	aFull, bFull := boundJID(tsA, la, aReq), boundJID(tsB, lb, bReq)

	b := start(t, tsB, lb, bReq, "bob-pw",
		op("roster"),
		op("presence"),
		op("ping"), // the server has bob's initial presence before alice starts
		op("wait_presence", "type", "subscribe", "from", alice),
		op("subscribed", "to", alice),
		op("subscribe", "to", alice),
		op("wait_presence", "type", "subscribed", "from", alice),
		op("wait_roster", "jid", alice, "subscription", "both"),
		op("wait_presence", "type", "available", "from", aFull),
		op("wait_message", "body", "alice to bob full", "from", aFull),
		op("wait_message", "body", "alice to bob bare", "from", aFull),
		op("send", "to", aFull, "body", "bob to alice full"),
		op("send", "to", alice, "body", "bob to alice bare"),
		op("ping"),
		op("roster"),
	)
	b.waitEvent("pong", "", 30*time.Second)
	a := start(t, tsA, la, aReq, "alice-pw",
		op("roster"),
		op("presence"),
		op("subscribe", "to", bob),
		op("wait_presence", "type", "subscribed", "from", bob),
		op("wait_presence", "type", "subscribe", "from", bob),
		op("subscribed", "to", bob),
		op("wait_roster", "jid", bob, "subscription", "both"),
		op("wait_presence", "type", "available", "from", bFull),
		op("send", "to", bFull, "body", "alice to bob full"),
		op("send", "to", bob, "body", "alice to bob bare"),
		op("wait_message", "body", "bob to alice full", "from", bFull),
		op("wait_message", "body", "bob to alice bare", "from", bFull),
		op("ping"),
		op("roster"),
	)
	evs := finish(t, a, b)
	aEv, bEv := evs[0], evs[1]
	checkLogin(t, la, aFull, aEv)
	checkLogin(t, lb, bFull, bEv)

	for _, side := range []struct {
		who, peer string
		evs       []event
	}{{"alice", bob, aEv}, {"bob", alice, bEv}} {
		var rosters []event
		for _, e := range side.evs {
			if e.Event == "roster" {
				rosters = append(rosters, e)
			}
		}
		if len(rosters) != 2 {
			t.Fatalf("%s: %d roster events, want 2", side.who, len(rosters))
		}
		if len(rosters[0].Items) != 0 || len(rosters[0].Server) != 0 {
			t.Errorf("%s: initial roster not empty: %s", side.who, rosters[0].line)
		}
		last := rosters[1]
		if it, ok := last.Items[side.peer]; !ok || it.Subscription != "both" || it.Ask != "" {
			t.Errorf("%s: client roster item for %s = %+v (present %v), want subscription both, no ask: %s", side.who, side.peer, it, ok, last.line)
		}
		if it, ok := last.Server[side.peer]; !ok || it.Subscription != "both" || it.Ask != "" {
			t.Errorf("%s: server roster result item for %s = %+v (present %v), want subscription both, no ask: %s", side.who, side.peer, it, ok, last.line)
		}
	}

	for _, c := range []struct {
		who, body, from string
		toFull          string
		bare            string
		evs             []event
	}{
		{"bob", "alice to bob full", aFull, bFull, "", bEv},
		{"bob", "alice to bob bare", aFull, bFull, bob, bEv},
		{"alice", "bob to alice full", bFull, aFull, "", aEv},
		{"alice", "bob to alice bare", bFull, aFull, alice, aEv},
	} {
		m := message(t, c.who, c.evs, c.body)
		if m.From != c.from {
			t.Errorf("%s: message %q from %q, want %q: %s", c.who, c.body, m.From, c.from, m.Raw)
		}
		if m.To != c.toFull && (c.bare == "" || m.To != c.bare) {
			t.Errorf("%s: message %q to %q, want %q: %s", c.who, c.body, m.To, c.toFull, m.Raw)
		}
		if m.Type != "chat" {
			t.Errorf("%s: message %q type %q, want chat", c.who, c.body, m.Type)
		}
		if m.Delay != nil {
			t.Errorf("%s: live message %q carries a delay element: %s", c.who, c.body, m.Raw)
		}
	}
}

// offline: bob is offline while alice (library la) sends to his bare JID;
// bob (library lb) then logs in and gets it with a delay element.
func offline(t *testing.T, la, lb lib) {
	la.available(t)
	lb.available(t)
	ts := testserver.Start(t)
	alice := ts.AddUser("alice", "alice-pw")
	bob := ts.AddUser("bob", "bob-pw")
	aReq, bReq := alice+"/"+la.name+"-a", bob+"/"+lb.name+"-b"
	aFull, bFull := boundJID(ts, la, aReq), boundJID(ts, lb, bReq)

	before := time.Now().UTC().Add(-time.Second).Truncate(time.Second)
	a := start(t, ts, la, aReq, "alice-pw",
		op("presence"),
		op("send", "to", bob, "body", "while you were out"),
		op("ping"),
	)
	aEv := finish(t, a)[0]
	checkLogin(t, la, aFull, aEv)

	b := start(t, ts, lb, bReq, "bob-pw",
		op("presence"),
		op("wait_message", "body", "while you were out", "from", alice),
		op("ping"),
	)
	bEv := finish(t, b)[0]
	checkLogin(t, lb, bFull, bEv)
	m := message(t, "bob", bEv, "while you were out")
	if m.From != aFull {
		t.Errorf("offline message from %q, want %q: %s", m.From, aFull, m.Raw)
	}
	if m.Type != "chat" {
		t.Errorf("offline message type %q, want chat: %s", m.Type, m.Raw)
	}
	if m.Delay == nil {
		t.Fatalf("offline message has no <delay xmlns='urn:xmpp:delay'/>: %s", m.Raw)
	}
	stamp, err := time.Parse(time.RFC3339Nano, m.Delay.Stamp)
	if err != nil {
		t.Fatalf("delay stamp %q is not an XEP-0082 DateTime: %v: %s", m.Delay.Stamp, err, m.Raw)
	}
	if stamp.Before(before) || stamp.After(time.Now().Add(time.Second)) {
		t.Errorf("delay stamp %s not between %s and now: %s", stamp, before, m.Raw)
	}
	if m.Delay.From != "" && m.Delay.From != testserver.Domain {
		t.Errorf("delay from %q, want the server %q: %s", m.Delay.From, testserver.Domain, m.Raw)
	}
}

func TestSlixmpp(t *testing.T) {
	t.Run("Chat", func(t *testing.T) { chat(t, slixmpp, slixmpp) })
	t.Run("Offline", func(t *testing.T) { offline(t, slixmpp, slixmpp) })
}

func TestXMPPJS(t *testing.T) {
	for _, l := range []lib{xmppjsTCP, xmppjsWS} {
		t.Run(l.name, func(t *testing.T) {
			t.Run("Chat", func(t *testing.T) { chat(t, l, l) })
			t.Run("Offline", func(t *testing.T) { offline(t, l, l) })
		})
	}
}

// TestClusterNodes runs the chat scenario with the two clients on two nodes
// of a cluster (real NATS and PostgreSQL).
func TestClusterNodes(t *testing.T) {
	for _, c := range []struct {
		name   string
		la, lb lib
	}{{"slixmpp", slixmpp, slixmpp}, {"xmppjs-tcp", xmppjsTCP, xmppjsTCP}, {"xmppjs-ws-slixmpp", xmppjsWS, slixmpp}} {
		t.Run(c.name+"/Chat", func(t *testing.T) {
			c.la.available(t)
			c.lb.available(t)
			nodes := testserver.StartCluster(t, 2)
			chatOn(t, c.la, c.lb, nodes[0], nodes[1])
		})
	}
}

// TestMixed pairs the libraries with each other, across transports.
func TestMixed(t *testing.T) {
	t.Run("slixmpp-xmppjs-ws/Chat", func(t *testing.T) { chat(t, slixmpp, xmppjsWS) })
	t.Run("xmppjs-tcp-slixmpp/Offline", func(t *testing.T) { offline(t, xmppjsTCP, slixmpp) })
}
