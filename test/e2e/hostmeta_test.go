package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/parley-xmpp/parley/internal/testserver"
	"github.com/parley-xmpp/parley/server"
)

func hostMeta(t *testing.T, addr, path, host string, hdr map[string]string) string {
	t.Helper()
	req, err := http.NewRequest("GET", "http://"+addr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("%s: %d %s", path, resp.StatusCode, b)
	}
	return string(b)
}

// TestHostMetaIgnoresUntrustedHosts is finding 5 of issue 16:
// /.well-known/host-meta wrote Host and X-Forwarded-Host from anyone,
// unescaped, into the WebSocket URL (cache poisoning, markup injection).
// Now the URL names a configured host (or the address connected to), a
// forwarded header counts only from http.trusted_proxies, and the XML is
// escaped.
func TestHostMetaIgnoresUntrustedHosts(t *testing.T) {
	t.Parallel()
	ts := testserver.Start(t, func(c *server.Config) {
		c.Hosts = []string{"localhost", "chat.example"}
		c.HTTP.TrustedProxies = nil
	})
	addr := ts.Addr("http")
	port := addr[strings.LastIndexByte(addr, ':')+1:]
	evil := map[string]string{"X-Forwarded-Host": "evil.example'/><Link href='x", "X-Forwarded-Proto": "https"}
	for _, c := range []struct{ host, want string }{
		{"evil.example", "ws://localhost:" + port + "/xmpp-websocket"},
		{"evil.example'><x/>", "ws://localhost:" + port + "/xmpp-websocket"},
		{"chat.example", "ws://chat.example/xmpp-websocket"},
		{"CHAT.example:" + port, "ws://chat.example:" + port + "/xmpp-websocket"},
		{"chat.example:666", "ws://chat.example:" + port + "/xmpp-websocket"},
		{addr, "ws://" + addr + "/xmpp-websocket"},
	} {
		body := hostMeta(t, addr, "/.well-known/host-meta", c.host, evil)
		if !strings.Contains(body, "href='"+c.want+"'") || strings.Contains(body, "evil") || strings.Count(body, "<Link") != 1 {
			t.Errorf("Host %q: host-meta\n%s\nwant href %s", c.host, body, c.want)
		}
		var hm struct{ Links []struct{ Href string } }
		if err := json.Unmarshal([]byte(hostMeta(t, addr, "/.well-known/host-meta.json", c.host, evil)), &hm); err != nil ||
			len(hm.Links) != 1 || hm.Links[0].Href != c.want {
			t.Errorf("Host %q: host-meta.json %+v %v, want %s", c.host, hm, err, c.want)
		}
	}
}

// TestHostMetaTrustedProxy: a trusted reverse proxy's forwarded host and
// scheme are used, for configured hosts only.
func TestHostMetaTrustedProxy(t *testing.T) {
	t.Parallel()
	ts := testserver.Start(t, func(c *server.Config) {
		c.Hosts = []string{"localhost", "chat.example"}
		c.HTTP.TrustedProxies = []string{"127.0.0.1/32"}
	})
	addr := ts.Addr("http")
	port := addr[strings.LastIndexByte(addr, ':')+1:]
	body := hostMeta(t, addr, "/.well-known/host-meta", "backend:5280",
		map[string]string{"X-Forwarded-Host": "chat.example:8443, proxy2", "X-Forwarded-Proto": "https"})
	if !strings.Contains(body, "href='wss://chat.example:8443/xmpp-websocket'") {
		t.Errorf("behind a trusted proxy: %s", body)
	}
	body = hostMeta(t, addr, "/.well-known/host-meta", "backend", map[string]string{"X-Forwarded-Host": "evil.example"})
	if !strings.Contains(body, "href='ws://localhost:"+port+"/xmpp-websocket'") {
		t.Errorf("a trusted proxy forwarding an unknown host: %s", body)
	}
}

// TestHostMetaMethodNotAllowed: another method than GET, HEAD or OPTIONS
// is 405 with the Allow header RFC 9110 §15.5.6 requires.
func TestHostMetaMethodNotAllowed(t *testing.T) {
	t.Parallel()
	ts := testserver.Start(t)
	for _, path := range []string{"/.well-known/host-meta", "/.well-known/host-meta.json"} {
		req, _ := http.NewRequest("POST", "http://"+ts.Addr("http")+path, strings.NewReader("x"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 405 || resp.Header.Get("Allow") != "GET, HEAD, OPTIONS" {
			t.Errorf("POST %s: %d Allow %q, want 405 Allow \"GET, HEAD, OPTIONS\"", path, resp.StatusCode, resp.Header.Get("Allow"))
		}
	}
}
