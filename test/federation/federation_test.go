package federation

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/parley-xmpp/parley/wire"
)

const waitFor = 10 * time.Second

func roundTrip(t *testing.T, a, b *node) {
	t.Helper()
	alice := a.bind(t, "alice@a.test/x")
	bob := b.bind(t, "bob@b.test/y")

	a.sendFrom(t, alice, message("alice@a.test/x", "bob@b.test/y", "m1", "hello bob"))
	checkMessage(t, bob.expect(t, waitFor), "alice@a.test/x", "bob@b.test/y", "hello bob")

	b.sendFrom(t, bob, message("bob@b.test/y", "alice@a.test/x", "m2", "hello alice"))
	checkMessage(t, alice.expect(t, waitFor), "bob@b.test/y", "alice@a.test/x", "hello alice")

	// The streams are reused: more stanzas in both directions, in order.
	for i := range 5 {
		a.sendFrom(t, alice, message("alice@a.test/x", "bob@b.test/y", "n", strings.Repeat("x", i+1)))
	}
	for i := range 5 {
		checkMessage(t, bob.expect(t, waitFor), "alice@a.test/x", "bob@b.test/y", strings.Repeat("x", i+1))
	}
	eventually(t, func() bool {
		st := a.svc.Stats()["b.test"]
		return st.ConnectionsOut == 1 && st.StanzasOut == 6
	}, "a.test: 1 outbound connection and 6 stanzas out to b.test")
	eventually(t, func() bool {
		st := b.svc.Stats()["a.test"]
		return st.StanzasIn == 6 && st.ConnectionsIn == 1
	}, "b.test: 1 inbound connection and 6 stanzas in from a.test")
}

// Without bidi (XEP-0288) each server opens its own connection, and
// authenticates on it.
func TestFederationSASLExternal(t *testing.T) {
	ca := newCA(t)
	a, b := pairWith(t, ca, ca.issue(t, "a.test", "a.test"), ca.issue(t, "b.test", "b.test"), true, false)
	roundTrip(t, a, b)
	waitLog(t, b, "mechanism=EXTERNAL remote=a.test", time.Second)
	waitLog(t, a, "mechanism=EXTERNAL remote=b.test", time.Second)
	if strings.Contains(a.logs.String()+b.logs.String(), "mechanism=dialback") {
		t.Error("dialback was used although both certificates are valid")
	}
}

func TestFederationDialbackOnly(t *testing.T) {
	ca := newCA(t)
	// Certificates from a trusted CA but for other names, and a subject CN
	// that names the domain: neither may count for a.test / b.test.
	a, b := pairWith(t, ca, ca.issue(t, "a.test", "other-a.example"), ca.issue(t, "b.test", "other-b.example"), false, false)
	roundTrip(t, a, b)
	waitLog(t, b, "mechanism=dialback remote=a.test", time.Second)
	waitLog(t, a, "mechanism=dialback remote=b.test", time.Second)
	if strings.Contains(a.logs.String()+b.logs.String(), "mechanism=EXTERNAL") {
		t.Error("SASL EXTERNAL was used with certificates not valid for the domains")
	}
}

func TestFederationInvalidCertRefusedWhenRequired(t *testing.T) {
	ca := newCA(t)
	a, b := pairOf(t, ca, ca.issue(t, "a.test", "a.test"), ca.issue(t, "b.test", "wrong.example"), true)
	alice := a.bind(t, "alice@a.test/x")
	b.bind(t, "bob@b.test/y")
	a.sendFrom(t, alice, message("alice@a.test/x", "bob@b.test/y", "m1", "hi"))
	st := alice.expect(t, waitFor)
	if st.Type != "error" || st.Child(wire.NSClient, "error").Child(wire.NSStanzas, wire.ErrRemoteServerNotFound) == nil {
		t.Fatalf("want remote-server-not-found, got %s", st.Raw)
	}
}

func TestFederationPeerDown(t *testing.T) {
	ca := newCA(t)
	lnA := listen(t, "127.0.0.2")
	// A port with nothing listening: reserve one and close it.
	dead := listen(t, "127.0.0.4")
	deadAddr := dead.Addr().String()
	_ = dead.Close()
	a := startNode(t, "a.test", lnA, ca, nodeOpts{cert: ca.issue(t, "a.test", "a.test"),
		routes: map[string][]string{"c.test": {deadAddr}}})
	alice := a.bind(t, "alice@a.test/x")

	start := time.Now()
	a.sendFrom(t, alice, message("alice@a.test/x", "carol@c.test/z", "m1", "anyone?"))
	st := alice.expect(t, 3*time.Second)
	if st.Type != "error" || st.ID != "m1" || st.From != "carol@c.test/z" || st.To != "alice@a.test/x" {
		t.Fatalf("want an error reply to m1, got %s", st.Raw)
	}
	if st.Child(wire.NSClient, "error").Child(wire.NSStanzas, wire.ErrRemoteServerNotFound) == nil {
		t.Fatalf("want remote-server-not-found, got %s", st.Raw)
	}
	// While backing off, further stanzas bounce at once.
	a.sendFrom(t, alice, message("alice@a.test/x", "carol@c.test/z", "m2", "still there?"))
	if st := alice.expect(t, time.Second); st.ID != "m2" || st.Type != "error" {
		t.Fatalf("want an error reply to m2, got %s", st.Raw)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("bounces took %v", d)
	}
	if f := a.svc.Stats()["c.test"].Failures; f != 1 {
		t.Errorf("failures = %d, want 1", f)
	}
}

func TestFederationIdleCloseAndReconnect(t *testing.T) {
	ca := newCA(t)
	lnA := listen(t, "127.0.0.2")
	lnB := listen(t, "127.0.0.3")
	a := startNode(t, "a.test", lnA, ca, nodeOpts{cert: ca.issue(t, "a.test", "a.test"), idle: 300 * time.Millisecond,
		routes: map[string][]string{"b.test": {lnB.Addr().String()}}})
	b := startNode(t, "b.test", lnB, ca, nodeOpts{cert: ca.issue(t, "b.test", "b.test"), idle: time.Minute,
		routes: map[string][]string{"a.test": {lnA.Addr().String()}}})
	alice := a.bind(t, "alice@a.test/x")
	bob := b.bind(t, "bob@b.test/y")

	a.sendFrom(t, alice, message("alice@a.test/x", "bob@b.test/y", "m1", "one"))
	checkMessage(t, bob.expect(t, waitFor), "alice@a.test/x", "bob@b.test/y", "one")
	eventually(t, func() bool { return a.svc.Stats()["b.test"].ConnectionsOut == 0 }, "idle outbound stream closed")
	eventually(t, func() bool { return b.svc.Stats()["a.test"].ConnectionsIn == 0 }, "inbound side closed too")

	a.sendFrom(t, alice, message("alice@a.test/x", "bob@b.test/y", "m2", "two"))
	checkMessage(t, bob.expect(t, waitFor), "alice@a.test/x", "bob@b.test/y", "two")
}

// A peer that comes back after being down is reached again once the
// backoff has passed.
func TestFederationPeerComesBack(t *testing.T) {
	ca := newCA(t)
	lnA := listen(t, "127.0.0.2")
	lnB := listen(t, "127.0.0.3")
	addrB := lnB.Addr().String()
	_ = lnB.Close()
	a := startNode(t, "a.test", lnA, ca, nodeOpts{cert: ca.issue(t, "a.test", "a.test"),
		routes: map[string][]string{"b.test": {addrB}}})
	alice := a.bind(t, "alice@a.test/x")
	a.sendFrom(t, alice, message("alice@a.test/x", "bob@b.test/y", "m1", "one"))
	if st := alice.expect(t, 3*time.Second); st.Type != "error" {
		t.Fatalf("want a bounce, got %s", st.Raw)
	}
	lnB2, err := net.Listen("tcp", addrB)
	if err != nil {
		t.Skipf("cannot rebind %s: %v", addrB, err)
	}
	t.Cleanup(func() { _ = lnB2.Close() })
	b := startNode(t, "b.test", &countingListener{Listener: lnB2}, ca, nodeOpts{cert: ca.issue(t, "b.test", "b.test"),
		routes: map[string][]string{"a.test": {lnA.Addr().String()}}})
	bob := b.bind(t, "bob@b.test/y")
	deadline := time.Now().Add(10 * time.Second)
	for {
		a.sendFrom(t, alice, message("alice@a.test/x", "bob@b.test/y", "m2", "two"))
		select {
		case st := <-bob.ch:
			checkMessage(t, st, "alice@a.test/x", "bob@b.test/y", "two")
			return
		case st := <-alice.ch:
			if st.Type != "error" {
				t.Fatalf("unexpected %s", st.Raw)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("neither delivered nor bounced")
		}
		if time.Now().After(deadline) {
			t.Fatal("b.test never reached again")
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// TestFederationOrderPerConversation: stanzas read on one server stream
// are routed by several goroutines, one per shard of conversations; every
// conversation (sender and recipient) keeps its order, both ways over one
// bidirectional stream (the inbound reader on b.test, the reader of a.test's
// outbound stream for what b.test sends back), and everything arrives.
func TestFederationOrderPerConversation(t *testing.T) {
	ca := newCA(t)
	a, b := pairOf(t, ca, ca.issue(t, "a.test", "a.test"), ca.issue(t, "b.test", "b.test"), true)
	const senders, recipients, each = 8, 4, 25
	bindAll := func(n *node, prefix string, count int) []*recSession {
		var ss []*recSession
		for i := range count {
			s := &recSession{j: jid.MustParse(fmt.Sprintf("%s%d@%s/r", prefix, i, n.domain)), ch: make(chan *wire.Stanza, senders*each+10)}
			if _, err := n.router.Bind(s); err != nil {
				t.Fatal(err)
			}
			ss = append(ss, s)
		}
		return ss
	}
	for _, dir := range []struct{ from, to *node }{{a, b}, {b, a}} {
		from, to := bindAll(dir.from, "s", senders), bindAll(dir.to, "r", recipients)
		for i := range each {
			for _, s := range from {
				for _, r := range to {
					dir.from.sendFrom(t, s, message(s.j.String(), r.j.String(), "m"+strconv.Itoa(i), strconv.Itoa(i)))
				}
			}
		}
		for _, r := range to {
			next := map[string]int{}
			for range senders * each {
				st := r.expect(t, 10*time.Second)
				got, _ := strconv.Atoi(st.Child(wire.NSClient, "body").Text())
				if got != next[st.From] {
					t.Fatalf("%s got message %d from %s, want %d: out of order", r.j, got, st.From, next[st.From])
				}
				next[st.From]++
			}
		}
	}
}
