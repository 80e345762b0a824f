package c2s

import (
	"context"
	"encoding/base64"
	"strconv"
	"strings"
	"testing"
	"time"

	"mellium.im/sasl"
	"mellium.im/xmpp/jid"

	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/sm"
	"github.com/parley-xmpp/parley/wire"
	"github.com/parley-xmpp/parley/xep"
)

// Tests of the c2s state machine (negotiation, SASL, bind, stream
// management, CSI) against an in-memory transport (issue 17); the same
// behaviours over real sockets and with real clients are in test/e2e and
// test/interop.

func b64(b []byte) string {
	if len(b) == 0 {
		return "="
	}
	return base64.StdEncoding.EncodeToString(b)
}

// auth runs SCRAM-SHA-256 and returns the element that ended it.
func (c *client) auth(user, password string) *wire.Stanza {
	c.t.Helper()
	n := sasl.NewClient(sasl.ScramSha256, sasl.Credentials(func() ([]byte, []byte, []byte) {
		return []byte(user), []byte(password), nil
	}))
	_, resp, err := n.Step(nil)
	if err != nil {
		c.t.Fatal(err)
	}
	c.send("<auth xmlns='" + xep.NSSASL + "' mechanism='SCRAM-SHA-256'>" + b64(resp) + "</auth>")
	for {
		st := c.element()
		if st.Name != "challenge" {
			return st
		}
		data, _ := base64.StdEncoding.DecodeString(strings.TrimSpace(st.Tree().Text()))
		_, resp, err := n.Step(data)
		if err != nil {
			c.t.Fatal(err)
		}
		c.send("<response xmlns='" + xep.NSSASL + "'>" + b64(resp) + "</response>")
	}
}

// login authenticates, restarts and binds resource.
func (h *harness) login(user, resource string) *client {
	h.t.Helper()
	c, _ := h.connect()
	if st := c.auth(user, "pw-"+user); st.Name != "success" {
		h.t.Fatalf("login %s: %s", user, st.Raw)
	}
	f := c.open()
	if f.Child(xep.NSBind, "bind") == nil || f.Child(sm.NS, "sm") == nil {
		h.t.Fatalf("features after login: %s", f.Raw)
	}
	c.bind(resource)
	return c
}

func (c *client) bind(resource string) {
	c.t.Helper()
	c.send("<iq type='set' id='b1'><bind xmlns='" + xep.NSBind + "'><resource>" + resource + "</resource></bind></iq>")
	res := c.element()
	if res.Type != "result" {
		c.t.Fatalf("bind: %s", res.Raw)
	}
	c.jid = res.Child(xep.NSBind, "bind").ChildText(xep.NSBind, "jid")
}

func isName(name string) func(*wire.Stanza) bool {
	return func(s *wire.Stanza) bool { return s.Name == name }
}

// route delivers a stanza to a full JID as the router would from another
// session.
func (h *harness) route(xml string) {
	h.t.Helper()
	h.router.Route(context.Background(), wire.MustParse(xml), module.Origin{Kind: module.FromLocal})
}

func TestNegotiationFeatures(t *testing.T) {
	h := newHarness(t, nil)
	_, f := h.connect()
	m := f.Child(xep.NSSASL, "mechanisms")
	if m == nil || !strings.Contains(string(m.Bytes()), "SCRAM-SHA-256") || !strings.Contains(string(m.Bytes()), "PLAIN") {
		t.Fatalf("mechanisms on an encrypted stream: %s", f.Raw)
	}
	if f.Child(xep.NSBind, "bind") != nil {
		t.Fatal("bind offered before authentication")
	}
	c, _ := h.connect()
	c.send("<message to='bob@example.org'><body>x</body></message>")
	if cond := c.streamError(); cond != wire.CondNotAuthorized {
		t.Fatalf("stanza before authentication: %q", cond)
	}
}

func TestSASLSuccessAndBind(t *testing.T) {
	h := newHarness(t, nil)
	c := h.login("alice", "phone")
	if c.jid != "alice@example.org/phone" {
		t.Fatalf("bound %q", c.jid)
	}
	if h.router.Session(jid.MustParse(c.jid)) == nil {
		t.Fatal("the router does not know the session")
	}
	// A second bind of the same full JID replaces the first.
	c2 := h.login("alice", "phone")
	if cond := c.streamError(); cond != wire.CondConflict {
		t.Fatalf("replaced session: %q", cond)
	}
	if s := h.router.Session(jid.MustParse(c2.jid)); s == nil || s.ConnID() == "" {
		t.Fatal("the new session is not bound")
	}
}

func TestSASLFailures(t *testing.T) {
	h := newHarness(t, nil)
	c, _ := h.connect()
	c.send("<auth xmlns='" + xep.NSSASL + "' mechanism='X-UNKNOWN'>=</auth>")
	if st := c.element(); st.Name != "failure" || st.Child(xep.NSSASL, "invalid-mechanism") == nil {
		t.Fatalf("unknown mechanism: %s", st.Raw)
	}
	for i := 0; i < maxSASLFailures; i++ {
		st := c.auth("alice", "wrong")
		if st.Name != "failure" || st.Child(xep.NSSASL, "not-authorized") == nil {
			t.Fatalf("wrong password %d: %s", i, st.Raw)
		}
	}
	if cond := c.streamError(); cond != wire.CondPolicyViolation {
		t.Fatalf("after %d failures: %q", maxSASLFailures, cond)
	}
	c, _ = h.connect()
	c.send("<abort xmlns='" + xep.NSSASL + "'/>")
	if st := c.element(); st.Name != "failure" || st.Child(xep.NSSASL, "aborted") == nil {
		t.Fatalf("abort: %s", st.Raw)
	}
}

func TestAuthTimeoutNotExtended(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.AuthTimeout = 300 * time.Millisecond })
	c, _ := h.connect()
	start := time.Now()
	// Traffic (SASL aborts, each answered) does not extend the deadline.
	go func() {
		for i := 0; i < maxSASLAttempts-2; i++ {
			select {
			case c.tr.in <- wire.MustParse("<abort xmlns='" + xep.NSSASL + "'/>"):
			case <-c.tr.done:
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	if cond := c.streamError(); cond != wire.CondConnectionTimeout {
		t.Fatalf("stream error %q, want connection-timeout", cond)
	}
	if d := time.Since(start); d < 250*time.Millisecond || d > 2*time.Second {
		t.Fatalf("closed after %v with a 300ms login deadline", d)
	}
}

func TestStreamManagementAckAndResume(t *testing.T) {
	h := newHarness(t, nil)
	c := h.login("alice", "phone")
	c.send("<enable xmlns='" + sm.NS + "' resume='true'/>")
	en := c.expect("enabled", isName("enabled"))
	id := en.Attr("id")
	if len(id) < 16 || en.Attr("resume") != "true" {
		t.Fatalf("enabled: %s", en.Raw)
	}
	for i := 1; i <= 6; i++ {
		h.route("<message from='bob@example.org/x' to='" + c.jid + "' type='chat'><body>m" + strconv.Itoa(i) + "</body></message>")
	}
	// Six messages, and a request for an ack after the fifth.
	msgs, reqs := 0, 0
	for msgs < 6 || reqs < 1 {
		switch st := c.element(); {
		case st.Name == "message":
			msgs++
		case st.NS == sm.NS && st.Name == "r":
			reqs++
		}
	}
	c.send("<a xmlns='" + sm.NS + "' h='4'/>")
	c.send("<r xmlns='" + sm.NS + "'/>")
	if a := c.expect("<a/>", func(s *wire.Stanza) bool { return s.NS == sm.NS && s.Name == "a" }); a.Attr("h") != "0" {
		t.Fatalf("server h = %s, want 0", a.Attr("h"))
	}
	// The connection drops: the session hibernates, messages queue.
	c.tr.close()
	full := jid.MustParse(c.jid)
	deadline := time.Now().Add(5 * time.Second)
	for h.srv.Goroutines() > 0 {
		if time.Now().After(deadline) {
			t.Fatal("the dropped connection's goroutines did not end")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if h.router.Session(full) == nil {
		t.Fatal("the session did not hibernate")
	}
	h.route("<message from='bob@example.org/x' to='" + c.jid + "' type='chat'><body>while away</body></message>")
	// Resume on a new connection acknowledging 5: m6 and the one queued
	// while away are replayed.
	r, _ := h.connect()
	if st := r.auth("alice", "pw-alice"); st.Name != "success" {
		t.Fatal(st.Raw)
	}
	r.open()
	r.send("<resume xmlns='" + sm.NS + "' previd='" + id + "' h='5'/>")
	if st := r.element(); st.Name != "resumed" || st.Attr("h") != "0" {
		t.Fatalf("resume: %s", st.Raw)
	}
	var bodies []string
	for len(bodies) < 2 {
		m := r.expect("replayed message", isName("message"))
		bodies = append(bodies, m.Child(wire.NSClient, "body").Text())
	}
	if bodies[0] != "m6" || bodies[1] != "while away" {
		t.Fatalf("replayed %q", bodies)
	}
	// Acknowledging more than was sent is a stream error.
	r.send("<a xmlns='" + sm.NS + "' h='99'/>")
	if cond := r.streamError(); cond != wire.CondUndefinedCondition {
		t.Fatalf("h too high: %q", cond)
	}
}

func TestCSIHoldsAndFlushes(t *testing.T) {
	h := newHarness(t, nil)
	c := h.login("alice", "phone")
	c.send("<inactive xmlns='" + nsCSI + "'/>")
	c.send("<iq type='get' id='sync'><ping xmlns='urn:xmpp:ping'/></iq>")
	c.expect("ping answer", func(s *wire.Stanza) bool { return s.ID == "sync" })
	h.route("<presence from='bob@example.org/x' to='" + c.jid + "'/>")
	h.route("<message from='bob@example.org/x' to='" + c.jid + "' type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>")
	h.route("<message from='bob@example.org/x' to='" + c.jid + "' type='chat'><body>important</body></message>")
	// The message with a body flushes what is held before it.
	got := []string{c.element().Name, c.element().Name, c.element().Name}
	if strings.Join(got, " ") != "presence message message" {
		t.Fatalf("order %v", got)
	}
	h.route("<presence from='bob@example.org/y' to='" + c.jid + "'/>")
	select {
	case v := <-c.tr.out:
		t.Fatalf("held presence written while inactive: %v", v)
	case <-time.After(100 * time.Millisecond):
	}
	c.send("<active xmlns='" + nsCSI + "'/>")
	if p := c.element(); p.Name != "presence" || p.From != "bob@example.org/y" {
		t.Fatalf("after active: %s", p.Raw)
	}
}

// TestIdleSessionHasOnlyItsReader: an idle bound session runs one
// goroutine, its reader; the writer runs only while something is queued
// (docs/adr/0012-writer-on-demand.md).
func TestIdleSessionHasOnlyItsReader(t *testing.T) {
	h := newHarness(t, nil)
	c := h.login("alice", "phone")
	h.route("<message from='bob@example.org/x' to='" + c.jid + "' type='chat'><body>hi</body></message>")
	c.expect("message", isName("message"))
	deadline := time.Now().Add(5 * time.Second)
	for h.srv.Goroutines() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines for one idle session", h.srv.Goroutines())
		}
		time.Sleep(5 * time.Millisecond)
	}
	s := h.router.Session(jid.MustParse(c.jid)).(*session)
	s.qmu.Lock()
	defer s.qmu.Unlock()
	if s.writing || s.queue != nil || s.qbytes != 0 {
		t.Fatalf("idle session: writing %v, queue %d, %d bytes", s.writing, len(s.queue), s.qbytes)
	}
}
