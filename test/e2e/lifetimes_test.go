package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"io"
	"math/rand/v2"
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

// Connection lifetimes (issue 16 "write deadlines on every socket", issue
// 17): a peer that stops reading is dropped within the write timeout on
// the transports limits_test.go does not cover.

// TestWebSocketClientThatNeverReadsIsFreed is TestClientThatNeverReadsIsFreed
// over WebSocket (RFC 7395): a logged-in web client stops reading while a
// contact sends it more than the socket buffers hold. Each frame is written
// with limits.write_timeout, so the stuck write ends the session and its
// goroutines instead of holding them and the queued stanzas.
func TestWebSocketClientThatNeverReadsIsFreed(t *testing.T) {
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

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws://"+ts.Addr("http")+"/xmpp-websocket", &websocket.DialOptions{Subprotocols: []string{"xmpp"}})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	send := func(s string) {
		if err := ws.Write(ctx, websocket.MessageText, []byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	recv := func() *wire.Stanza {
		_, data, err := ws.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		st, err := wire.Parse(data, wire.Limits{})
		if err != nil {
			t.Fatalf("frame %q: %v", data, err)
		}
		return st
	}
	open := "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>"
	send(open)
	recv() // open
	recv() // features
	send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" + base64.StdEncoding.EncodeToString([]byte("\x00bob\x00pw2")) + "</auth>")
	if s := recv(); s.Name != "success" {
		t.Fatalf("auth: %s", s.Raw)
	}
	send(open)
	recv() // open
	recv() // features
	send("<iq type='set' id='b' xmlns='jabber:client'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>web</resource></bind></iq>")
	if s := recv(); s.Type != "result" {
		t.Fatalf("bind: %s", s.Raw)
	}
	// bob never reads again.
	full := jid.MustParse("bob@localhost/web")
	if ts.Router().Session(full) == nil {
		t.Fatal("bob's web session is not routed")
	}
	pad := strings.Repeat("x", 200<<10)
	sent := 0
	for ts.Router().Session(full) != nil && sent < 1000 {
		a.Send("<message to='%s' type='chat'><body>%d %s</body></message>", full, sent, pad)
		sent++
		if sent%20 == 0 {
			syncPing(a, "p"+strconv.Itoa(sent))
		}
	}
	start := time.Now()
	waitUntil(t, writeTimeout+20*time.Second, "bob's web session ended", func() bool {
		return ts.Router().Session(full) == nil
	})
	waitUntil(t, 20*time.Second, "goroutines of bob's connection gone", func() bool {
		return ts.ClientGoroutines() == 1 // alice's reader
	})
	t.Logf("%d messages of 200 kB; freed %v after the last", sent, time.Since(start).Round(time.Millisecond))
}

// TestHTTPStalledDownloadClosed: a client that asks for a large file and
// stops reading the response is dropped after http.write_timeout without
// progress (it held the connection, its goroutine and the open file
// forever before the write deadlines). Seen from outside: the address's
// only connection slot (http.connections_per_address 1) comes free.
func TestHTTPStalledDownloadClosed(t *testing.T) {
	t.Parallel()
	const writeTimeout = time.Second
	ts := testserver.Start(t, func(c *server.Config) {
		c.HTTP.WriteTimeout = writeTimeout
		c.HTTP.ConnectionsPerAddress = 1
		c.HTTP.TrustedProxies = nil
	})
	ts.AddUser("alice", "pw1")
	a := ts.Login("alice", "pw1", "phone")
	host, _ := findUploadService(t, a)
	// More than the socket buffers of both ends hold on loopback.
	data := make([]byte, 32<<20)
	_, _ = rand.NewChaCha8([32]byte{5}).Read(data)
	r := a.IQ("slot", "<iq type='get' id='slot' to='%s'><request xmlns='%s' filename='big.bin' size='%d'/></iq>", host, nsUpload, len(data))
	slot := r.Child(nsUpload, "slot")
	if r.Type != "result" || slot == nil {
		t.Fatalf("slot request: %s", r.Raw)
	}
	hc := uploadClient(ts)
	req, _ := http.NewRequest(http.MethodPut, slot.Child(nsUpload, "put").AttrValue("url"), bytes.NewReader(data))
	for _, h := range slot.Child(nsUpload, "put").ChildrenNamed(nsUpload, "header") {
		req.Header.Set(h.AttrValue("name"), h.Text())
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT: %s", resp.Status)
	}
	hc.CloseIdleConnections()
	getURL := slot.Child(nsUpload, "get").AttrValue("url")

	status := func() int {
		c := uploadClient(ts)
		defer c.CloseIdleConnections()
		resp, err := c.Get("https://" + ts.Addr("https") + "/.well-known/host-meta")
		if err != nil {
			return 0 // https refuses with a closed connection
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	// The slot is free once the connections before are closed (the
	// server notices that a moment after the client closed them).
	var c *tls.Conn
	waitUntil(t, 20*time.Second, "a connection of our own", func() bool {
		c, err = tls.Dial("tcp", ts.Addr("https"), &tls.Config{InsecureSkipVerify: true, ServerName: "localhost"})
		return err == nil
	})
	defer c.Close()
	path := getURL[strings.Index(getURL[len("https://"):], "/")+len("https://"):]
	if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: localhost\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	head := make([]byte, 512)
	if _, err := io.ReadAtLeast(c, head, len(head)); err != nil || !bytes.HasPrefix(head, []byte("HTTP/1.1 200")) {
		t.Fatalf("download: %q %v", head, err)
	}
	// Now the client reads no more. Its connection holds the address's
	// one slot until the server gives up on the write.
	if s := status(); s == http.StatusOK {
		t.Fatal("a second connection was served: the limit is not under test")
	}
	took := waitUntil(t, writeTimeout+20*time.Second, "the stalled download dropped", func() bool { return status() == http.StatusOK })
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	n, _ := io.Copy(io.Discard, c)
	if n+int64(len(head)) >= int64(len(data)) {
		t.Fatalf("the whole file arrived (%d bytes) although the connection was dropped", n)
	}
	t.Logf("stalled download dropped %v after the client stopped reading (%d of %d bytes sent)", took.Round(time.Millisecond), n+int64(len(head)), len(data))
}
