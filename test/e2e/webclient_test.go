package e2e

import (
	"net/http"
	"strings"
	"testing"

	"github.com/parley-xmpp/parley/internal/testserver"
	"github.com/parley-xmpp/parley/server"
)

// TestWebClientServed: Converse.js is embedded and served at /chat/ on
// both listeners, / redirects there, it is configured for this server's
// WebSocket and domain, and its CSP allows no other origin; off when
// web_client.enabled is false. (test/browser runs it in chromium.)
func TestWebClientServed(t *testing.T) {
	t.Parallel()
	ts := testserver.Start(t)
	c := httpsClient()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	for _, base := range []string{"http://" + ts.Addr("http"), "https://" + ts.Addr("https")} {
		resp, err := c.Get(base + "/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/chat/" {
			t.Fatalf("%s/: %d %s", base, resp.StatusCode, resp.Header.Get("Location"))
		}
		st, h, body := getPage(t, c, base+"/chat/", "")
		if st != 200 || !strings.Contains(body, "converse.min.js") || !strings.Contains(h.Get("Content-Security-Policy"), "default-src 'self'") {
			t.Fatalf("%s/chat/: %d %v", base, st, h)
		}
		_, _, js := getPage(t, c, base+"/chat/config.js", "")
		if !strings.Contains(js, `"/xmpp-websocket"`) || !strings.Contains(js, `locked_domain: "localhost"`) ||
			!strings.Contains(js, `muc_search_service: "conference." + "localhost"`) {
			t.Fatalf("config.js: %s", js)
		}
		if st, _, body := getPage(t, c, base+"/chat/dist/converse.min.js", ""); st != 200 || len(body) < 500000 {
			t.Fatalf("converse.min.js: %d, %d bytes", st, len(body))
		}
	}
	off := testserver.Start(t, func(c *server.Config) { c.WebClient.Enabled = false })
	if st, _, _ := getPage(t, c, "http://"+off.Addr("http")+"/chat/", ""); st != 404 {
		t.Fatalf("disabled web client: %d", st)
	}
}
