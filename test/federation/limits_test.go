package federation

import (
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/wire"
)

// Limits on server-to-server streams (issue 16, finding 5): each test does
// what the outside review did over a real socket and fails on the code
// before the limit.

// blackhole accepts connections and never answers, like an authoritative
// server that hangs.
func blackhole(t *testing.T, ip string) *countingListener {
	t.Helper()
	ln := listen(t, ip)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { _ = c.Close() })
		}
	}()
	return ln
}

// TestVerifyStreamAuthDeadline: an inbound stream that never
// authenticates but keeps sending <db:verify/> lived forever (each element
// renewed its read deadline). Now it ends at s2s.auth_timeout after it
// opened, whatever it sends.
func TestVerifyStreamAuthDeadline(t *testing.T) {
	ca := newCA(t)
	b := startNode(t, "b.test", listen(t, "127.0.0.3"), ca, nodeOpts{cert: ca.issue(t, "b.test", "b.test"),
		authTimeout: time.Second})
	p := dialPlain(t, b.addr, "a.test", "b.test")
	start := time.Now()
	for i := 0; ; i++ {
		if time.Since(start) > 10*time.Second {
			t.Fatal("the unauthenticated stream is still open after 10s of <db:verify/>")
		}
		p.write("<db:verify from='a.test' to='b.test' id='v" + strconv.Itoa(i) + "'>abc</db:verify>")
		_ = p.conn.SetReadDeadline(time.Now().Add(waitFor))
		st, err := p.rd.Next()
		if err != nil {
			t.Fatalf("stream ended without a stream error: %v", err)
		}
		if st.NS == wire.NSStream && st.Name == "error" {
			if st.Child(wire.NSStreams, wire.CondConnectionTimeout) == nil {
				t.Fatalf("want connection-timeout, got %s", st.Raw)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Fatalf("closed after %v with auth_timeout 1s", d)
			}
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestInboundStreamCaps: inbound streams were uncapped. Now those from one
// address (s2s.connections_per_address) and in total (s2s.max_inbound)
// are, refused with a stream error.
func TestInboundStreamCaps(t *testing.T) {
	ca := newCA(t)
	t.Run("per-address", func(t *testing.T) {
		b := startNode(t, "b.test", listen(t, "127.0.0.3"), ca, nodeOpts{cert: ca.issue(t, "b.test", "b.test"),
			connectionsPerAddress: 2})
		dialPlain(t, b.addr, "a.test", "b.test")
		dialPlain(t, b.addr, "a.test", "b.test")
		p := dialPlainRefused(t, b.addr)
		p.expectStreamError(wire.CondPolicyViolation)
	})
	t.Run("total", func(t *testing.T) {
		b := startNode(t, "b.test", listen(t, "127.0.0.3"), ca, nodeOpts{cert: ca.issue(t, "b.test", "b.test"),
			maxInbound: 2})
		dialPlain(t, b.addr, "a.test", "b.test")
		dialPlain(t, b.addr, "c.test", "b.test")
		p := dialPlainRefused(t, b.addr)
		p.expectStreamError(wire.CondResourceConstraint)
	})
}

// dialPlainRefused connects to a server that refuses the connection and
// reads its header, leaving the stream error to read.
func dialPlainRefused(t *testing.T, addr string) *rawPeer {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	p := &rawPeer{t: t, conn: c, rd: wire.NewReader(c, wire.Limits{})}
	_ = c.SetReadDeadline(time.Now().Add(waitFor))
	if _, err := p.rd.ReadHeader(); err != nil {
		t.Fatalf("no stream header: %v", err)
	}
	return p
}

// TestDialbackVerificationsCapped: each <db:result/> made the server
// connect to the authoritative server of a domain the peer names (8 per
// stream, any number of streams). Now at most s2s.max_dialbacks run at
// once; a further request is answered with a wait/resource-constraint
// error instead of another connection.
func TestDialbackVerificationsCapped(t *testing.T) {
	ca := newCA(t)
	hole := blackhole(t, "127.0.0.4")
	b := startNode(t, "b.test", listen(t, "127.0.0.3"), ca, nodeOpts{cert: ca.issue(t, "b.test", "b.test"),
		maxDialbacks: 1, routes: map[string][]string{
			"x1.test": {hole.Addr().String()}, "x2.test": {hole.Addr().String()}, "x3.test": {hole.Addr().String()}}})
	p := dialRaw(t, b.addr, "x1.test", "b.test", nil)
	p.write("<db:result from='x1.test' to='b.test'>abc</db:result>")
	deadline := time.Now().Add(waitFor)
	for hole.accepted() < 1 {
		if time.Now().After(deadline) {
			t.Fatal("the first verification did not connect")
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, d := range []string{"x2.test", "x3.test"} {
		p.write("<db:result from='" + d + "' to='b.test'>abc</db:result>")
		st := p.next()
		if st.Name != "result" || st.Type != "error" || !strings.Contains(string(st.Raw), "resource-constraint") {
			t.Fatalf("want a resource-constraint error for %s, got %s", d, st.Raw)
		}
	}
	if n := hole.accepted(); n != 1 {
		t.Fatalf("%d connections to authoritative servers with max_dialbacks 1", n)
	}
}

// TestOutboundQueueBoundedInBytes: stanzas for a remote domain wait in a
// queue while its stream connects; it held 1,000 stanzas of any size. Now
// it is bounded by s2s.queue_bytes and what does not fit bounces at once.
func TestOutboundQueueBoundedInBytes(t *testing.T) {
	ca := newCA(t)
	hole := blackhole(t, "127.0.0.4")
	a := startNode(t, "a.test", listen(t, "127.0.0.2"), ca, nodeOpts{cert: ca.issue(t, "a.test", "a.test"),
		queueBytes: 1 << 20, routes: map[string][]string{"slow.test": {hole.Addr().String()}}})
	alice := a.bind(t, "alice@a.test/x")
	pad := strings.Repeat("q", 64<<10)
	for i := 0; i < 40; i++ { // 2.6 MB
		a.sendFrom(t, alice, message("alice@a.test/x", "bob@slow.test", "q"+strconv.Itoa(i), pad))
	}
	expectQueueFull(t, alice)
}

// expectQueueFull reads bounces until one says the queue is full
// (resource-constraint). Messages queued while a connection attempt to the
// black hole times out are bounced with remote-server-timeout first (on a
// loaded machine the sends outlast an attempt); anything else fails.
func expectQueueFull(t *testing.T, alice *recSession) {
	t.Helper()
	for {
		st := alice.expect(t, 10*time.Second)
		if st.Type == "error" && strings.Contains(string(st.Raw), wire.ErrResourceConstraint) {
			return
		}
		if st.Type != "error" || !strings.Contains(string(st.Raw), wire.ErrRemoteServerTimeout) {
			t.Fatalf("want a resource-constraint bounce, got %.300s", st.Raw)
		}
	}
}

// TestOutboundQueueBoundedInStanzas: the queue of a domain pair is
// bounded in stanzas too (s2s.queue_stanzas), whatever their size: it was
// fixed at 1,000, which a run at 1,000 msg/s overflowed while the stanzas
// waited for their senders' archive commits.
func TestOutboundQueueBoundedInStanzas(t *testing.T) {
	ca := newCA(t)
	hole := blackhole(t, "127.0.0.4")
	a := startNode(t, "a.test", listen(t, "127.0.0.2"), ca, nodeOpts{cert: ca.issue(t, "a.test", "a.test"),
		queueStanzas: 100, routes: map[string][]string{"slow.test": {hole.Addr().String()}}})
	alice := a.bind(t, "alice@a.test/x")
	for i := 0; i < 150; i++ {
		a.sendFrom(t, alice, message("alice@a.test/x", "bob@slow.test", "q"+strconv.Itoa(i), "hi"))
	}
	expectQueueFull(t, alice)
}

// TestVerifyStreamPreAuthRate: before authentication a stream may send only
// so many elements (limits.preauth_stanzas_per_second).
func TestVerifyStreamPreAuthRate(t *testing.T) {
	ca := newCA(t)
	b := startNode(t, "b.test", listen(t, "127.0.0.3"), ca, nodeOpts{cert: ca.issue(t, "b.test", "b.test"),
		preAuthStanzas: 5})
	p := dialPlain(t, b.addr, "a.test", "b.test")
	var req strings.Builder
	for i := 0; i < 100; i++ {
		req.WriteString("<db:verify from='a.test' to='b.test' id='v" + strconv.Itoa(i) + "'>abc</db:verify>")
	}
	go func() { _, _ = p.conn.Write([]byte(req.String())) }()
	p.expectStreamError(wire.CondPolicyViolation)
}
