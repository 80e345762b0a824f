package cluster

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/internal/testserver"
)

// TestClusterMetrics: a node (a process of its own, so its metrics are
// its alone) counts the stanzas it sends to and receives from each peer,
// observes their bus latency, and reports the registry's size and the
// number of nodes.
func TestClusterMetrics(t *testing.T) {
	spec := testserver.NewClusterSpec(t)
	n1 := testserver.Start(t, spec.Node("n1", "127.0.0.2"), defaultTiming)
	n2 := startProc(t, spec, "n2", "127.0.0.3")
	n1.AddUser("alice", "pw")
	n1.AddUser("bob", "pw")
	a := n1.Login("alice", "pw", "phone")
	b := n2.login(t, "bob", "pw", "laptop")
	a.Send("<message to='%s' type='chat'><body>to n2</body></message>", b.JID)
	b.Expect("message from n1", isMsg("to n2"))
	b.Send("<message to='%s' type='chat'><body>to n1</body></message>", a.JID)
	a.Expect("message from n2", isMsg("to n1"))

	want := map[string]func(float64) bool{
		`parley_cluster_bus_sent_total{peer="n1"}`:     func(v float64) bool { return v >= 1 },
		`parley_cluster_bus_received_total{peer="n1"}`: func(v float64) bool { return v >= 1 },
		`parley_cluster_bus_latency_seconds_count`:     func(v float64) bool { return v >= 1 },
		`parley_cluster_registry_sessions`:             func(v float64) bool { return v == 2 },
		`parley_cluster_nodes`:                         func(v float64) bool { return v == 2 },
	}
	// The gauges follow at the next heartbeat.
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + n2.admin + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var missing []string
		for name, ok := range want {
			if v, found := sample(string(body), name); !found || !ok(v) {
				missing = append(missing, name)
			}
		}
		if len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics of n2 lack %v:\n%s", missing, clusterLines(string(body)))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// sample returns the value of the sample name (with its labels) on a
// Prometheus text page.
func sample(page, name string) (float64, bool) {
	for _, l := range strings.Split(page, "\n") {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f, err == nil
		}
	}
	return 0, false
}

func clusterLines(page string) string {
	var b strings.Builder
	for _, l := range strings.Split(page, "\n") {
		if strings.HasPrefix(l, "parley_cluster_") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}
