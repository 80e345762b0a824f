package server_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/internal/testserver"
	"github.com/parley-xmpp/parley/server"
)

// TestPProfOnlyWhenConfigured: /debug/pprof on the admin listener answers
// only with debug.pprof on; by default it does not exist.
func TestPProfOnlyWhenConfigured(t *testing.T) {
	t.Parallel()
	get := func(ts *testserver.Server, path string) (int, string) {
		t.Helper()
		c := &http.Client{Timeout: 10 * time.Second}
		resp, err := c.Get("http://" + ts.Addr("admin") + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	off := testserver.Start(t)
	if code, _ := get(off, "/debug/pprof/"); code != http.StatusNotFound {
		t.Errorf("pprof off by default: got status %d, want 404", code)
	}
	if code, _ := get(off, "/metrics"); code != http.StatusOK {
		t.Errorf("/metrics: status %d", code)
	}
	on := testserver.Start(t, func(c *server.Config) { c.Debug.PProf = true })
	code, body := get(on, "/debug/pprof/")
	if code != http.StatusOK || !strings.Contains(body, "goroutine") {
		t.Errorf("pprof on: status %d, body %.200q", code, body)
	}
	if code, body := get(on, "/debug/pprof/heap?debug=1"); code != http.StatusOK || !strings.Contains(body, "heap profile") {
		t.Errorf("heap profile: status %d, body %.200q", code, body)
	}
}
