package e2e

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/parley-xmpp/parley/internal/testserver"
	"github.com/parley-xmpp/parley/wire"
)

func TestDirectTLSLogin(t *testing.T) {
	t.Parallel()
	ts := testserver.Start(t)
	ts.AddUser("alice", "pw1")
	c, err := tls.Dial("tcp", ts.Addr("c2s_tls"), &tls.Config{InsecureSkipVerify: true, ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(testserver.Timeout))
	io.WriteString(c, streamOpen)
	rd := wire.NewReader(c, wire.Limits{})
	if _, err := rd.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	f, err := rd.Next()
	if err != nil {
		t.Fatal(err)
	}
	if f.Child("urn:ietf:params:xml:ns:xmpp-tls", "starttls") != nil {
		t.Fatalf("starttls offered on a TLS stream: %s", f.Raw)
	}
	mechs := f.Child("urn:ietf:params:xml:ns:xmpp-sasl", "mechanisms")
	var names []string
	for _, m := range mechs.Elements() {
		names = append(names, m.Text())
	}
	got := strings.Join(names, " ")
	for _, want := range []string{"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", "SCRAM-SHA-1", "SCRAM-SHA-512", "PLAIN"} {
		if !strings.Contains(" "+got+" ", " "+want+" ") {
			t.Errorf("mechanism %s not offered over TLS: %s", want, got)
		}
	}
	// XEP-0440 channel-binding advertisement.
	cb := f.Child("urn:xmpp:sasl-cb:0", "sasl-channel-binding")
	if cb == nil || !strings.Contains(cb.String(), "tls-exporter") {
		t.Errorf("no tls-exporter channel binding advertised: %s", f.Raw)
	}
	// PLAIN over TLS works.
	io.WriteString(c, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>"+
		base64.StdEncoding.EncodeToString([]byte("\x00alice\x00pw1"))+"</auth>")
	if s, err := rd.Next(); err != nil || s.Name != "success" {
		t.Fatalf("PLAIN: %v %v", s, err)
	}
}

func TestSASL(t *testing.T) {
	t.Parallel()
	ts := testserver.Start(t)
	ts.AddUser("alice", "correct horse")
	t.Run("no-mechanisms-before-tls", func(t *testing.T) {
		c := ts.Dial()
		c.SetDeadline(time.Now().Add(testserver.Timeout))
		io.WriteString(c, streamOpen)
		rd := wire.NewReader(c, wire.Limits{})
		rd.ReadHeader()
		f, err := rd.Next()
		if err != nil {
			t.Fatal(err)
		}
		if f.Child("urn:ietf:params:xml:ns:xmpp-sasl", "mechanisms") != nil {
			t.Fatalf("mechanisms offered before TLS: %s", f.Raw)
		}
		st := f.Child("urn:ietf:params:xml:ns:xmpp-tls", "starttls")
		if st == nil || st.Child("urn:ietf:params:xml:ns:xmpp-tls", "required") == nil {
			t.Fatalf("starttls not required: %s", f.Raw)
		}
		// Trying anyway gets encryption-required.
		io.WriteString(c, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGFsaWNlAGNvcnJlY3QgaG9yc2U=</auth>")
		s, err := rd.Next()
		if err != nil || s.Name != "failure" || s.Child("urn:ietf:params:xml:ns:xmpp-sasl", "encryption-required") == nil {
			t.Fatalf("got %v %v", s, err)
		}
	})
	for _, mech := range []string{"SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-256-PLUS", "PLAIN"} {
		t.Run(mech, func(t *testing.T) {
			c := ts.Connect()
			f := c.Features()
			if err := c.Auth(f, mech, "alice", "correct horse"); err != nil {
				t.Fatal(err)
			}
		})
	}
	t.Run("wrong-password", func(t *testing.T) {
		c := ts.Connect()
		err := c.Auth(c.Features(), "SCRAM-SHA-256", "alice", "wrong")
		if err == nil || !strings.Contains(err.Error(), "not-authorized") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("unknown-user-looks-the-same", func(t *testing.T) {
		c := ts.Connect()
		err := c.Auth(c.Features(), "SCRAM-SHA-256", "nobody", "wrong")
		if err == nil || !strings.Contains(err.Error(), "not-authorized") {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestWebSocket(t *testing.T) {
	t.Parallel()
	ts := testserver.Start(t)
	ts.AddUser("alice", "pw1")
	bob := ts.AddUser("bob", "pw2")
	b := ts.Login("bob", "pw2", "tcp")
	b.Send("<presence/>")
	// bob is available once his own presence comes back; before that a
	// message to his bare JID goes to offline storage (seen on a loaded
	// machine: "did not receive message from websocket").
	b.Expect("own presence", testserver.PresenceFrom(b.JID, ""))

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	w, resp := dialWS(ctx, t, ts)
	ws, send := w.c, w.send
	if resp.Header.Get("Sec-WebSocket-Protocol") != "xmpp" {
		t.Fatalf("subprotocol %q", resp.Header.Get("Sec-WebSocket-Protocol"))
	}
	w.login("alice", "pw1", "web")
	send("<message xmlns='jabber:client' to='" + bob + "' type='chat'><body>from the web</body></message>")
	m := b.Expect("message from websocket", isMsg("from the web"))
	if m.From != "alice@localhost/web" {
		t.Fatalf("from %s", m.From)
	}
	// Every frame declares jabber:client on its root; only the start tag
	// is rewritten, the payload reaches a TCP client byte for byte.
	payload := `<encrypted xmlns="eu.siacs.conversations.axolotl"><header sid="7"><key rid="9" prekey="true">MwgBEiEF</key>` +
		`<iv>q9+u</iv></header><payload>Zm9vYmFy</payload></encrypted>` + "\n" + `<store xmlns="urn:xmpp:hints"/>`
	send("<message xmlns='jabber:client' to='" + bob + "' type='chat' id='enc1'>" + payload + "</message>")
	enc := b.Expect("encrypted message from websocket", func(s *wire.Stanza) bool { return s.ID == "enc1" })
	if !strings.Contains(string(enc.Raw), payload) {
		t.Fatalf("payload changed on the way:\nsent %s\ngot  %s", payload, enc.Raw)
	}
	b.Send("<message to='alice@localhost/web' type='chat'><body>to the web</body></message>")
	for {
		_, data, err := ws.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(data), "to the web") {
			continue
		}
		if !strings.Contains(string(data), "xmlns='jabber:client'") {
			t.Fatalf("frame lacks the jabber:client namespace: %s", data)
		}
		break
	}
	send("<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>")
	_, data, err := ws.Read(ctx)
	if err != nil || !strings.Contains(string(data), "close") {
		t.Fatalf("expected close, got %q %v", data, err)
	}
}

func TestHTTPDiscoveryAndAdmin(t *testing.T) {
	t.Parallel()
	ts := testserver.Start(t)
	get := func(url string) (*http.Response, string) {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	resp, body := get("http://" + ts.Addr("http") + "/.well-known/host-meta")
	if resp.StatusCode != 200 || !strings.Contains(body, "urn:xmpp:alt-connections:websocket") ||
		!strings.Contains(body, "ws://"+ts.Addr("http")+"/xmpp-websocket") {
		t.Fatalf("host-meta: %d %s", resp.StatusCode, body)
	}
	if resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatal("no CORS header on host-meta")
	}
	resp, body = get("http://" + ts.Addr("http") + "/.well-known/host-meta.json")
	var hm struct {
		Links []struct{ Rel, Href string }
	}
	if err := json.Unmarshal([]byte(body), &hm); err != nil || len(hm.Links) == 0 || hm.Links[0].Rel != "urn:xmpp:alt-connections:websocket" {
		t.Fatalf("host-meta.json: %s %v", body, err)
	}
	resp, body = get("http://" + ts.Addr("admin") + "/healthz")
	if resp.StatusCode != 200 {
		t.Fatalf("healthz %d", resp.StatusCode)
	}
	resp, body = get("http://" + ts.Addr("admin") + "/readyz")
	if resp.StatusCode != 200 {
		t.Fatalf("readyz %d %s", resp.StatusCode, body)
	}
	ts.AddUser("alice", "pw")
	a := ts.Login("alice", "pw", "")
	a.IQ("p", "<iq type='get' id='p' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
	_, body = get("http://" + ts.Addr("admin") + "/metrics")
	for _, m := range []string{"parley_c2s_connections{transport=\"tcp\"}", "parley_c2s_authentications_total", "parley_router_route_seconds_bucket", "parley_c2s_stanzas_in_total"} {
		if !strings.Contains(body, m) {
			t.Errorf("metrics lack %s", m)
		}
	}
}

func TestShutdownSendsSystemShutdown(t *testing.T) {
	t.Parallel()
	ts := testserver.Start(t)
	ts.AddUser("alice", "pw")
	a := ts.Login("alice", "pw", "")
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ts.Shutdown(ctx)
	}()
	if se := a.StreamError(); se == nil || se.Condition != "system-shutdown" {
		t.Fatalf("got %v, want system-shutdown", se)
	}
	// The port is closed.
	if c, err := net.DialTimeout("tcp", ts.Cfg.Listen.C2S, time.Second); err == nil && ts.Cfg.Listen.C2S != "127.0.0.1:0" {
		c.Close()
		t.Fatal("listener still open")
	}
}

// wsClient is a raw RFC 7395 client: one element per frame.
type wsClient struct {
	t   *testing.T
	ctx context.Context
	c   *websocket.Conn
}

// dialWS opens a WebSocket to the server's /xmpp-websocket; it is closed
// when the test ends.
func dialWS(ctx context.Context, t *testing.T, ts *testserver.Server) (*wsClient, *http.Response) {
	t.Helper()
	ws, resp, err := websocket.Dial(ctx, "ws://"+ts.Addr("http")+"/xmpp-websocket", &websocket.DialOptions{Subprotocols: []string{"xmpp"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.CloseNow() })
	return &wsClient{t: t, ctx: ctx, c: ws}, resp
}

func (w *wsClient) send(s string) {
	w.t.Helper()
	if err := w.c.Write(w.ctx, websocket.MessageText, []byte(s)); err != nil {
		w.t.Fatal(err)
	}
}

func (w *wsClient) recv() *wire.Stanza {
	w.t.Helper()
	_, data, err := w.c.Read(w.ctx)
	if err != nil {
		w.t.Fatal(err)
	}
	st, err := wire.Parse(data, wire.Limits{})
	if err != nil {
		w.t.Fatalf("server sent a frame that is not one element: %q: %v", data, err)
	}
	return st
}

// login opens the stream, authenticates with PLAIN and binds resource.
func (w *wsClient) login(user, password, resource string) {
	w.t.Helper()
	open := "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>"
	w.send(open)
	if o := w.recv(); o.Name != "open" || o.NS != wire.NSFraming {
		w.t.Fatalf("expected open, got %s", o.Raw)
	}
	if f := w.recv(); f.Name != "features" || f.Child("urn:ietf:params:xml:ns:xmpp-sasl", "mechanisms") == nil {
		w.t.Fatalf("features %s", f.Raw)
	}
	w.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" + base64.StdEncoding.EncodeToString([]byte("\x00"+user+"\x00"+password)) + "</auth>")
	if s := w.recv(); s.Name != "success" {
		w.t.Fatalf("auth: %s", s.Raw)
	}
	w.send(open)
	w.recv() // open
	w.recv() // features
	w.send("<iq type='set' id='b' xmlns='jabber:client'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>" + resource + "</resource></bind></iq>")
	if s := w.recv(); s.Type != "result" {
		w.t.Fatalf("bind: %s", s.Raw)
	}
}
