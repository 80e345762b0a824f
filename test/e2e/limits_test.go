package e2e

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"mellium.im/xmpp/jid"

	"github.com/parley-xmpp/parley/internal/testserver"
	"github.com/parley-xmpp/parley/server"
	"github.com/parley-xmpp/parley/wire"
)

// Tests of the connection limits (issue 16, findings 3–6): each one sets up
// what the outside review did over real sockets and checks that the server
// ends or refuses it, and that a well-behaved client next to it is served.

// syncPing waits for the answer to a ping, with room for a slow machine
// (-race): everything c sent before has been routed when it arrives.
func syncPing(c *testserver.Client, id string) {
	c.Send("<iq type='get' id='%s' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>", id)
	c.ExpectWithin("ping "+id, 3*time.Minute, func(s *wire.Stanza) bool { return s.Name == "iq" && s.ID == id })
}

// waitUntil polls cond until it holds or d has passed.
func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

// flood writes what next returns until a write fails, and returns that
// error: the server closed the connection, or (a minute without progress)
// it neither read nor closed.
func flood(c net.Conn, next func(i int) string) error {
	for i := 0; ; i++ {
		_ = c.SetWriteDeadline(time.Now().Add(time.Minute))
		if _, err := c.Write([]byte(next(i))); err != nil {
			return err
		}
	}
}

// closedByServer reports whether err ended a write because the server
// closed the connection (rather than a timeout).
func closedByServer(err error) bool {
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

// startTLSRaw negotiates STARTTLS on a raw connection and opens the
// encrypted stream, reading nothing after that.
func startTLSRaw(t *testing.T, ts *testserver.Server) *tls.Conn {
	t.Helper()
	c := ts.Dial()
	rd := wire.NewReader(c, wire.Limits{})
	_, _ = c.Write([]byte(streamOpen))
	_ = c.SetReadDeadline(time.Now().Add(testserver.Timeout))
	if _, err := rd.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	if _, err := rd.Next(); err != nil { // features
		t.Fatal(err)
	}
	_, _ = c.Write([]byte("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"))
	if p, err := rd.Next(); err != nil || p.Name != "proceed" {
		t.Fatalf("starttls: %v %v", p, err)
	}
	_ = c.SetReadDeadline(time.Time{})
	tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true, ServerName: "localhost"})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	if _, err := tc.Write([]byte(streamOpen)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tc.Close() })
	return tc
}

// TestPreAuthFloodWithoutReadingIsDropped (finding 3): a client floods
// registration queries before logging in and never reads the answers. The
// server's writes fill the socket; before the fix they blocked forever and
// the login timeout's close waited behind them, so the connection and its
// goroutines lived on. Now the write deadline or the login deadline ends it.
func TestPreAuthFloodWithoutReadingIsDropped(t *testing.T) {
	t.Parallel()
	const authTimeout, writeTimeout = time.Second, time.Second
	ts := testserver.Start(t, func(c *server.Config) {
		c.Auth.Timeout = authTimeout
		c.Limits.WriteTimeout = writeTimeout
		c.Registration.Open = true
		// Only the deadlines are under test here.
		c.Limits.PreAuthStanzasPerSecond = 0
		c.Limits.PreAuthBytesPerSecond = 0
	})
	tc := startTLSRaw(t, ts)
	start := time.Now()
	ended := make(chan error, 1)
	go func() {
		ended <- flood(tc, func(i int) string {
			return "<iq type='get' id='r" + strconv.Itoa(i) + "'><query xmlns='jabber:iq:register'/></iq>"
		})
	}()
	select {
	case err := <-ended:
		if !closedByServer(err) {
			t.Fatalf("flood ended by %v, not by the server closing the connection", err)
		}
	case <-time.After(authTimeout + writeTimeout + 5*time.Second):
		t.Fatal("the server still holds the connection")
	}
	took := waitUntil(t, 5*time.Second, "connection goroutines gone", func() bool {
		return ts.ClientGoroutines() == 0
	})
	t.Logf("closed after %v, goroutines gone %v later", time.Since(start)-took, took)
	ts.AddUser("control", "pw")
	ts.Login("control", "pw", "c")
}

// TestClientThatNeverReadsIsFreed (issue 17): a logged-in client stops
// reading while a contact sends it more than the socket buffers hold. The
// write deadline fails the stuck write and the session and its goroutines
// are gone within the configured time, over TCP and over WebSocket (where
// each frame is written with the deadline; without it the web session
// outlived the test).
func TestClientThatNeverReadsIsFreed(t *testing.T) {
	t.Parallel()
	for _, transport := range []string{"tcp", "websocket"} {
		t.Run(transport, func(t *testing.T) {
			t.Parallel()
			const writeTimeout = time.Second
			ts := testserver.Start(t, func(c *server.Config) {
				c.Limits.WriteTimeout = writeTimeout
				c.Limits.SendQueueBytes = 256 << 20 // only the deadline is under test
				c.MAM.DefaultPolicy = "never"
			})
			ts.AddUser("alice", "pw1")
			ts.AddUser("bob", "pw2")
			a := ts.Login("alice", "pw1", "a")
			full := "bob@localhost/b"
			if transport == "tcp" {
				ts.Authenticate("bob", "pw2").Bind("b") // and never read again
			} else {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				w, _ := dialWS(ctx, t, ts)
				w.login("bob", "pw2", "b") // and never read again
			}
			pad := strings.Repeat("x", 200<<10)
			sent := 0
			start := time.Now()
			for ts.Router().Session(jid.MustParse(full)) != nil && sent < 1000 {
				a.Send("<message to='%s' type='chat'><body>%d %s</body></message>", full, sent, pad)
				sent++
				if sent%20 == 0 {
					// Let the server catch up so alice is not the one slowed down.
					syncPing(a, "p"+strconv.Itoa(sent))
				}
			}
			waitUntil(t, writeTimeout+5*time.Second, "bob's session ended", func() bool {
				return ts.Router().Session(jid.MustParse(full)) == nil
			})
			waitUntil(t, 5*time.Second, "goroutines of bob's connection gone", func() bool {
				return ts.ClientGoroutines() == 1 // alice's reader; her writer exits when idle
			})
			t.Logf("%d messages of 200 kB; session freed %v after the first", sent, time.Since(start).Round(time.Millisecond))
		})
	}
}

// TestSendQueueBoundedInBytes (finding 4): a logged-in client stops
// reading while a contact sends it large messages. Before the fix up to
// 1,024 stanzas of any size were queued for it (242 MiB in the review) and
// it was never disconnected; now it is once its queue exceeds
// limits.send_queue_bytes, long before the write deadline, and what it did
// not get is stored offline.
func TestSendQueueBoundedInBytes(t *testing.T) {
	t.Parallel()
	ts := testserver.Start(t, func(c *server.Config) {
		c.Limits.SendQueueBytes = 1 << 20
		c.Limits.WriteTimeout = time.Minute // the queue limit acts first
	})
	ts.AddUser("alice", "pw1")
	ts.AddUser("bob", "pw2")
	a := ts.Login("alice", "pw1", "a")
	bob := ts.Authenticate("bob", "pw2")
	bob.Bind("b") // and never read again
	full := jid.MustParse(bob.JID)
	pad := strings.Repeat("x", 64<<10)
	const n = 200 // 12.8 MB: more than the socket buffers and the queue
	start := time.Now()
	for i := 0; i < n && ts.Router().Session(full) != nil; i++ {
		a.Send("<message to='%s' type='chat'><body>%d %s</body></message>", full, i, pad)
		if i%20 == 19 {
			syncPing(a, "s"+strconv.Itoa(i))
		}
	}
	took := waitUntil(t, 30*time.Second, "bob disconnected", func() bool { return ts.Router().Session(full) == nil })
	t.Logf("disconnected %v after the first message", time.Since(start)-took+took)
	// What bob's queue held went to offline storage: a new session gets it.
	b2 := ts.Login("bob", "pw2", "b2")
	b2.Send("<presence/>")
	b2.Expect("an offline message", func(s *wire.Stanza) bool { return s.Name == "message" })
}

// TestUnackedQueueBoundedInBytes (finding 4): a client with resumable
// stream management vanishes; its contact keeps sending. Before the fix
// everything was kept until the resume timeout (212 MiB in the review);
// now the session stops being resumable once the unacknowledged bytes pass
// c2s.max_unacked_bytes, and the messages go to offline storage as on a
// resume timeout.
func TestUnackedQueueBoundedInBytes(t *testing.T) {
	t.Parallel()
	ts := testserver.Start(t, func(c *server.Config) {
		c.C2S.MaxUnackedBytes = 1 << 20
		c.C2S.ResumeTimeout = time.Hour
	})
	ts.AddUser("alice", "pw1")
	ts.AddUser("bob", "pw2")
	a := ts.Login("alice", "pw1", "a")
	b, id := enableSM(t, ts, "bob", "pw2", "b")
	b.Send("<presence/>")
	a.Send("<presence to='bob@localhost' type='subscribe'/>") // nothing needed; keeps alice busy in order
	full := jid.MustParse(b.JID)
	b.Drop()
	waitUntil(t, 20*time.Second, "bob hibernated", func() bool { return ts.ClientGoroutines() <= 2 })
	pad := strings.Repeat("y", 32<<10)
	const n = 48 // 1.5 MB
	for i := 0; i < n; i++ {
		a.Send("<message to='%s' type='chat'><body>u%d %s</body></message>", full, i, pad)
		if i%16 == 15 {
			syncPing(a, "u"+strconv.Itoa(i))
		}
	}
	// The session ends and what it held is stored offline (rescued once
	// its writer is done, a moment after the router forgot it).
	waitUntil(t, 30*time.Second, "messages stored offline", func() bool {
		om, err := ts.Store().OfflineMessages(context.Background(), "bob@localhost")
		return err == nil && len(om) >= n && ts.Router().Session(full) == nil
	})
	c := ts.Authenticate("bob", "pw2")
	c.Send("<resume xmlns='urn:xmpp:sm:3' previd='%s' h='0'/>", id)
	if r := c.Next(); r.Name != "failed" {
		t.Fatalf("resume after the unacked limit: %s", r.Raw)
	}
	c.Bind("b2")
	c.StartReader()
	c.Send("<presence/>")
	got := map[string]bool{}
	for len(got) < n {
		m := c.Expect("offline message", func(s *wire.Stanza) bool { return s.Name == "message" })
		body := m.Child(wire.NSClient, "body").Text()
		got[strings.Fields(body)[0]] = true
	}
}

// TestCSIHoldBoundedInBytes (finding 5): while a client is inactive
// (XEP-0352) chat states are held, the latest per sender. Before the fix
// there was no bound (400 × 100 kB from distinct senders held 82 MiB); now
// beyond c2s.csi_hold_bytes what is held is sent at once.
func TestCSIHoldBoundedInBytes(t *testing.T) {
	t.Parallel()
	ts := testserver.Start(t, func(c *server.Config) { c.C2S.CSIHoldBytes = 16 << 10 })
	ts.AddUser("alice", "pw1")
	ts.AddUser("bob", "pw2")
	b := ts.Login("bob", "pw2", "b")
	b.Send("<presence/>")
	b.Send("<inactive xmlns='urn:xmpp:csi:0'/>")
	b.IQ("sync", "<iq type='get' id='sync' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>") // inactive is in effect
	pad := strings.Repeat("z", 3000)
	state := func(s *wire.Stanza) bool { return s.Name == "message" && strings.Contains(string(s.Raw), "composing") }
	var senders []*testserver.Client
	for i := 0; i < 3; i++ {
		a := ts.Login("alice", "pw1", "r"+strconv.Itoa(i))
		senders = append(senders, a)
		a.Send("<message to='%s' type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/><pad xmlns='urn:example:pad'>%s</pad></message>", b.JID, pad)
	}
	// 3 × 3 kB fit in 16 kB: held.
	b.ExpectNone("a held chat state", 300*time.Millisecond, state)
	for i := 3; i < 8; i++ {
		a := ts.Login("alice", "pw1", "r"+strconv.Itoa(i))
		senders = append(senders, a)
		a.Send("<message to='%s' type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/><pad xmlns='urn:example:pad'>%s</pad></message>", b.JID, pad)
	}
	// 8 × 3 kB do not: everything held arrives although bob is inactive.
	for i := 0; i < 6; i++ {
		b.Expect("chat states sent beyond the hold limit", state)
	}
	_ = senders
}

// TestPreAuthRateLimits (finding 3): nothing was rate-limited before
// login. Now a connection that sends more elements or bytes than a login
// needs is disconnected with policy-violation.
func TestPreAuthRateLimits(t *testing.T) {
	t.Parallel()
	ts := testserver.Start(t)
	t.Run("stanzas", func(t *testing.T) {
		tc := startTLSRaw(t, ts)
		var b strings.Builder
		for i := 0; i < 100; i++ {
			b.WriteString("<iq type='get' id='q" + strconv.Itoa(i) + "'><query xmlns='jabber:iq:register'/></iq>")
		}
		go func() { _, _ = tc.Write([]byte(b.String())) }()
		if cond := streamErrorOn(t, tc); cond != "policy-violation" {
			t.Fatalf("stream error = %q, want policy-violation", cond)
		}
	})
	t.Run("bytes", func(t *testing.T) {
		// Whitespace keepalives are within the stanza limit, so only the
		// byte rate catches 200 kB of them.
		if got := rawStreamError(t, ts, streamOpen+strings.Repeat(" ", 200<<10)); got != "policy-violation" {
			t.Fatalf("stream error = %q, want policy-violation", got)
		}
	})
	// A normal login is far within both.
	ts.AddUser("control", "pw")
	ts.Login("control", "pw", "c")
}

// streamErrorOn reads the stream (after its header) until a stream error
// and returns its condition, or "" when the stream ended without one.
func streamErrorOn(t *testing.T, c net.Conn) string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(testserver.Timeout))
	rd := wire.NewReader(c, wire.Limits{MaxStanzaBytes: 1 << 20})
	if _, err := rd.ReadHeader(); err != nil {
		t.Fatalf("no stream header: %v", err)
	}
	for {
		st, err := rd.Next()
		if err != nil {
			return ""
		}
		if st.Name == "error" && st.NS == wire.NSStream {
			return st.Tree().FirstElement().Name.Local
		}
	}
}

// TestConnectionsPerAddress (finding 5): 1,300 unauthenticated streams
// from one address were accepted. Now connections beyond
// limits.connections_per_address are refused with a stream error, on TCP
// and WebSocket alike, and a freed slot can be used again.
func TestConnectionsPerAddress(t *testing.T) {
	t.Parallel()
	ts := testserver.Start(t, func(c *server.Config) {
		c.Limits.ConnectionsPerAddress = 3
		c.HTTP.TrustedProxies = nil // WebSocket from 127.0.0.1 is not a proxy here
	})
	var held []net.Conn
	for i := 0; i < 3; i++ {
		held = append(held, ts.Dial())
	}
	waitUntil(t, 20*time.Second, "three connections served", func() bool { return ts.ClientGoroutines() == 3 })
	if got := rawStreamError(t, ts, streamOpen); got != "policy-violation" {
		t.Fatalf("fourth connection: stream error %q, want policy-violation", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testserver.Timeout)
	defer cancel()
	_, resp, err := websocket.Dial(ctx, "ws://"+ts.Addr("http")+"/xmpp-websocket", &websocket.DialOptions{Subprotocols: []string{"xmpp"}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("WebSocket beyond the limit: %v %v", resp, err)
	}
	held[0].Close()
	waitUntil(t, 20*time.Second, "slot freed", func() bool { return ts.ClientGoroutines() == 2 })
	ts.AddUser("control", "pw")
	ts.Login("control", "pw", "c")
}

// TestUnauthenticatedConnectionsCapped (finding 5): connections that have
// not authenticated are bounded in total; authenticating frees a slot.
func TestUnauthenticatedConnectionsCapped(t *testing.T) {
	t.Parallel()
	ts := testserver.Start(t, func(c *server.Config) { c.Limits.UnauthenticatedConnections = 2 })
	ts.AddUser("alice", "pw")
	a := ts.Authenticate("alice", "pw") // counted until SASL success
	a.Bind("a")
	c1, c2 := ts.Dial(), ts.Dial()
	waitUntil(t, 20*time.Second, "connections served", func() bool { return ts.ClientGoroutines() >= 3 })
	if got := rawStreamError(t, ts, streamOpen); got != "resource-constraint" {
		t.Fatalf("third unauthenticated connection: stream error %q, want resource-constraint", got)
	}
	c1.Close()
	c2.Close()
	waitUntil(t, 20*time.Second, "slots freed", func() bool { return ts.ClientGoroutines() <= 2 })
	ts.Login("alice", "pw", "b")
}

// TestStockClientWithinLimits: what a well-behaved client does right after
// logging in — its offline messages, a MAM catch-up of 1,000 messages in
// pages of 250, a 100 kB avatar — stays within the limits even at the
// smallest send queue allowed: what a client asks for is sent at the pace
// it reads, not counted against the queue others fill.
func TestStockClientWithinLimits(t *testing.T) {
	t.Parallel()
	const n = 1000
	ts := testserver.Start(t, func(c *server.Config) { c.Limits.SendQueueBytes = 1 << 20 })
	ts.AddUser("alice", "pw1")
	ts.AddUser("bob", "pw2")
	a := ts.Login("alice", "pw1", "a")
	pad := strings.Repeat("p", 3000)
	for i := 0; i < n; i++ { // 3 MB for bob, who is offline
		a.Send("<message to='bob@localhost' type='chat' id='s%d'><body>%d %s</body></message>", i, i, pad)
		if i%50 == 49 {
			syncPing(a, "sync"+strconv.Itoa(i))
		}
	}
	b, _ := enableSM(t, ts, "bob", "pw2", "phone")
	b.Send("<presence/>")
	for i := 0; i < n; i++ {
		b.Expect("offline message", func(s *wire.Stanza) bool { return s.Name == "message" && s.Child(wire.NSClient, "body") != nil })
		if i%50 == 49 {
			b.Send("<a xmlns='urn:xmpp:sm:3' h='%d'/>", i+1)
		}
	}
	if got := mamCatchUp(t, b, 250); got != n {
		t.Fatalf("MAM catch-up: %d of %d messages", got, n)
	}
	avatar := strings.Repeat("QUJD", 100<<10/4) // 100 kB of base64
	res := a.IQ("av", "<iq type='set' id='av'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='urn:xmpp:avatar:data'>"+
		"<item id='h1'><data xmlns='urn:xmpp:avatar:data'>%s</data></item></publish></pubsub></iq>", avatar)
	if res.Type != "result" {
		t.Fatalf("avatar publish: %s", res.Raw)
	}
	res = b.IQ("get-av", "<iq type='get' id='get-av' to='alice@localhost'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='urn:xmpp:avatar:data'/></pubsub></iq>")
	if res.Type != "result" || !strings.Contains(string(res.Raw), avatar) {
		t.Fatalf("avatar fetch: %.300s", res.Raw)
	}
	if se := streamErrorSeen(b); se != "" {
		t.Fatalf("stream error: %s", se)
	}
}

// streamErrorSeen returns the condition of a stream error in c's backlog.
func streamErrorSeen(c *testserver.Client) string {
	var cond string
	c.ExpectNone("stream error", 10*time.Millisecond, func(s *wire.Stanza) bool {
		if s.Name == "error" && s.NS == wire.NSStream {
			cond = s.Tree().FirstElement().Name.Local
			return true
		}
		return false
	})
	return cond
}
