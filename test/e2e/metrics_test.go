package e2e

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/parley-xmpp/parley/internal/testserver"
	"github.com/parley-xmpp/parley/server"
	"github.com/parley-xmpp/parley/wire"
)

// scrapeMetrics returns the parley_* samples of the admin /metrics page.
func scrapeMetrics(t *testing.T, ts *testserver.Server) []string {
	t.Helper()
	resp, err := http.Get("http://" + ts.Addr("admin") + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "parley_") {
			out = append(out, l)
		}
	}
	return out
}

// TestMetricLabelsFixed is finding 1 of issue 16: what a client or a peer
// names (SASL mechanisms, also on the throttled path; made-up remote
// domains) must never become a label value. Every series exists from the
// start, so hostile traffic cannot add one.
func TestMetricLabelsFixed(t *testing.T) {
	ts := testserver.Start(t, func(c *server.Config) { c.Auth.MaxFailures = 2 })
	ts.AddUser("alice", "pw")
	a := ts.Login("alice", "pw", "a")
	before := scrapeMetrics(t, ts)

	junk := strings.Repeat("J", 4<<10)
	for i := range 4 {
		c := ts.Connect()
		f := c.Features()
		for j := range 3 {
			// Unknown mechanisms, then (after two failed logins from this
			// address) the throttled path.
			c.Send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='%s-%d-%d'/>", junk, i, j)
			if f := c.Next(); f.Name != "failure" {
				t.Fatalf("want a SASL failure, got %s", f.Raw)
			}
		}
		_ = c.Auth(f, "SCRAM-SHA-256", "alice", "wrong")
		c.Close()
	}
	// Messages to domains nobody configured: the s2s failure counters.
	for i := range 3 {
		a.Send("<message to='x@junk-%d-%s.invalid' id='m%d'><body>hi</body></message>", i, strings.Repeat("d", 40), i)
		id := fmt.Sprintf("m%d", i)
		a.ExpectWithin("bounce", 2*testserver.Timeout, func(st *wire.Stanza) bool { return st.ID == id && st.Type == "error" })
	}
	after := scrapeMetrics(t, ts)
	for _, l := range after {
		if strings.Contains(l, "JJJJ") || strings.Contains(l, "junk-") {
			t.Errorf("a client-chosen value became a label: %.200s", l)
		}
	}
	if added := diffSeries(before, after); len(added) > 0 {
		t.Errorf("hostile traffic added series: %q", added)
	}
}

func diffSeries(a, b []string) []string {
	name := func(l string) string { i := strings.LastIndexByte(l, ' '); return l[:i] }
	seen := map[string]bool{}
	for _, l := range a {
		seen[name(l)] = true
	}
	var out []string
	for _, l := range b {
		if !seen[name(l)] {
			out = append(out, l)
		}
	}
	return out
}
