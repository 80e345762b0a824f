package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/parley-xmpp/parley/internal/testserver"
	"github.com/parley-xmpp/parley/server"
)

// syncBuffer is a log sink written by the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type apiClient struct {
	t     *testing.T
	base  string
	token string
}

func (c apiClient) do(method, path, body string) (int, map[string]any, string) {
	c.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	return resp.StatusCode, m, string(raw)
}

func (c apiClient) want(status int, method, path, body string) map[string]any {
	c.t.Helper()
	got, m, raw := c.do(method, path, body)
	if got != status {
		c.t.Fatalf("%s %s: status %d, want %d: %s", method, path, got, status, raw)
	}
	return m
}

// TestAdminAPI: the HTTP admin API on the admin listener, with bearer
// tokens; bad tokens, bad and oversized bodies; no secret in the log.
func TestAdminAPI(t *testing.T) {
	t.Parallel()
	logs := &syncBuffer{}
	ts := testserver.StartWithLog(t, logs, func(c *server.Config) { c.Admins = []string{"boss@localhost"} })
	token, _, err := ts.Admin().CreateAPIToken(t.Context(), "test")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ts.Addr("admin")
	api := apiClient{t: t, base: base, token: token}

	for _, bad := range []string{"", "parley_forged", token + "x", "Basic " + token} {
		c := apiClient{t: t, base: base, token: bad}
		if bad == "Basic "+token {
			req, _ := http.NewRequest("GET", base+"/api/v1/users", nil)
			req.Header.Set("Authorization", bad)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 401 {
				t.Fatalf("basic auth: %d", resp.StatusCode)
			}
			continue
		}
		if m := c.want(401, "GET", "/api/v1/users", ""); !strings.Contains(m["error"].(string), "token") {
			t.Fatalf("401 body: %v", m)
		}
	}

	api.want(201, "POST", "/api/v1/users", `{"jid":"alice@localhost","password":"s3cret-alice"}`)
	api.want(409, "POST", "/api/v1/users", `{"jid":"alice@localhost","password":"x"}`)
	api.want(400, "POST", "/api/v1/users", `{"jid":"alice@other.example","password":"x"}`)
	api.want(400, "POST", "/api/v1/users", `{"jid":"bob@localhost","password":"x","extra":1}`)
	api.want(400, "POST", "/api/v1/users", `{"jid":`)
	api.want(413, "POST", "/api/v1/users", `{"jid":"bob@localhost","password":"`+strings.Repeat("x", 70000)+`"}`)
	api.want(404, "GET", "/api/v1/nothing", "")
	for _, c := range []struct{ method, path, allow string }{
		{"PATCH", "/api/v1/users", "GET, POST, HEAD"},
		{"DELETE", "/api/v1/stats", "GET, HEAD"},
		{"POST", "/api/v1/users/alice@localhost", "GET, DELETE, HEAD"},
		{"GET", "/api/v1/invites/abc", "DELETE"},
	} {
		req, _ := http.NewRequest(c.method, base+c.path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 405 || resp.Header.Get("Allow") != c.allow {
			t.Fatalf("%s %s: %d Allow %q, want 405 Allow %q", c.method, c.path, resp.StatusCode, resp.Header.Get("Allow"), c.allow)
		}
	}
	if m := api.want(200, "GET", "/api/v1/users/alice@localhost", ""); m["sessions"] == nil {
		t.Fatalf("user stats without sessions: %v, want \"sessions\": []", m)
	}
	alice := ts.Login("alice", "s3cret-alice", "pc")
	alice.Send("<presence/>")

	if m := api.want(200, "GET", "/api/v1/users", ""); len(m["users"].([]any)) != 1 {
		t.Fatalf("users: %v", m)
	}
	if m := api.want(200, "GET", "/api/v1/users/alice@localhost", ""); m["jid"] != "alice@localhost" || len(m["sessions"].([]any)) != 1 {
		t.Fatalf("user stats: %v", m)
	}
	api.want(404, "GET", "/api/v1/users/nobody@localhost", "")
	if m := api.want(200, "GET", "/api/v1/sessions", ""); len(m["sessions"].([]any)) != 1 {
		t.Fatalf("sessions: %v", m)
	}
	if m := api.want(200, "POST", "/api/v1/announce", `{"domain":"localhost","subject":"Hi","body":"Maintenance tonight"}`); m["sessions"] != 1.0 {
		t.Fatalf("announce: %v", m)
	}
	alice.Expect("announcement", MessageContaining("Maintenance tonight"))
	api.want(200, "PUT", "/api/v1/welcome", `{"text":"Hello new user"}`)
	if m := api.want(200, "GET", "/api/v1/welcome", ""); m["text"] != "Hello new user" {
		t.Fatalf("welcome: %v", m)
	}
	if m := api.want(200, "GET", "/api/v1/stats", ""); m["users"].(map[string]any)["localhost"] != 1.0 {
		t.Fatalf("stats: %v", m)
	}

	// Invitations.
	inv := api.want(201, "POST", "/api/v1/invites", `{"domain":"localhost","expires":"2d","uses":2}`)
	if !strings.HasPrefix(inv["uri"].(string), "xmpp:localhost?register;preauth=") || !strings.Contains(inv["landing_url"].(string), "/invite/") {
		t.Fatalf("invite: %v", inv)
	}
	api.want(400, "POST", "/api/v1/invites", `{"domain":"localhost","expires":"forever"}`)
	if m := api.want(200, "GET", "/api/v1/invites", ""); len(m["invites"].([]any)) != 1 {
		t.Fatalf("invites: %v", m)
	}
	api.want(200, "DELETE", "/api/v1/invites/"+inv["id"].(string), "")
	// Revoking by the token itself works too, and does not log it.
	inv2 := api.want(201, "POST", "/api/v1/invites", `{"domain":"localhost"}`)
	api.want(200, "DELETE", "/api/v1/invites/"+inv2["token"].(string), "")
	api.want(400, "DELETE", "/api/v1/invites/"+inv2["token"].(string), "")
	stanzaErr(t, registerWithToken(t, ts, inv["token"].(string), "late", "pw", true), "item-not-found")

	// Export (XEP-0227).
	_, _, doc := api.do("GET", "/api/v1/users/alice@localhost/export", "")
	if !strings.Contains(doc, "<server-data xmlns='urn:xmpp:pie:0'>") || !strings.Contains(doc, "<user name='alice'>") {
		t.Fatalf("export: %s", doc)
	}

	api.want(200, "POST", "/api/v1/users/alice@localhost/disable", `{"reason":"spam","for":"2d"}`)
	if m := api.want(200, "GET", "/api/v1/disabled", ""); len(m["disabled"].([]any)) != 1 {
		t.Fatalf("disabled: %v", m)
	}
	if se := alice.StreamError(); se == nil {
		t.Fatal("disabled user's session not ended")
	}
	api.want(200, "POST", "/api/v1/users/alice@localhost/enable", "")
	api.want(400, "POST", "/api/v1/users/alice@localhost/enable", "")
	api.want(404, "POST", "/api/v1/users/nobody@localhost/disable", `{}`)
	alice = ts.Login("alice", "s3cret-alice", "pc")

	api.want(200, "PUT", "/api/v1/users/alice@localhost/password", `{"password":"new-alice"}`)
	api.want(400, "PUT", "/api/v1/users/alice@localhost/password", `{"password":""}`)
	if m := api.want(200, "DELETE", "/api/v1/users/alice@localhost/sessions", ""); m["ended"] != 1.0 {
		t.Fatalf("end sessions: %v", m)
	}
	if se := alice.StreamError(); se == nil {
		t.Fatal("alice's session not ended")
	}
	api.want(200, "DELETE", "/api/v1/users/alice@localhost", "")
	api.want(404, "DELETE", "/api/v1/users/alice@localhost", "")

	for _, secret := range []string{token, "s3cret-alice", "new-alice", inv["token"].(string), inv2["token"].(string)} {
		if strings.Contains(logs.String(), secret) {
			t.Fatalf("the log contains a secret %q:\n%s", secret[:6], logs.String())
		}
	}
	if !strings.Contains(logs.String(), "admin API") {
		t.Fatal("the API calls were not logged at all")
	}
}
