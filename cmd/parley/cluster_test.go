package main

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/internal/testserver"
)

// TestClusterStatusAndCheck runs `parley cluster status` and `parley
// check` against a running two-node cluster (real NATS and PostgreSQL).
func TestClusterStatusAndCheck(t *testing.T) {
	nodes := testserver.StartCluster(t, 2)
	nodes[0].AddUser("alice", "pw")
	a := nodes[0].Login("alice", "pw", "a")
	// A chat room runs on n1.
	a.Send("<presence to='status@conference.localhost/alice'><x xmlns='http://jabber.org/protocol/muc'/></presence>")
	a.Expect("room created", testserver.PresenceFrom("status@conference.localhost/alice", ""))
	nodes[1].Login("alice", "pw", "b")
	nodes[1].Login("alice", "pw", "c")
	spec := nodes[0].Cfg
	cfgPath, _ := testCLIConfig(t, fmt.Sprintf(`storage:
  backend: postgres
  postgres:
    dsn: %q
    schema: %q
cluster:
  enabled: true
  node: ops
  heartbeat: 200ms
  dead_after: 2s
  nats:
    urls: [%q]
    prefix: %q
`, spec.Storage.Postgres.DSN, spec.Storage.Postgres.Schema, testserver.NATSURL(), spec.Cluster.NATS.Prefix))
	r := runCLI(t, "", "--config="+cfgPath, "cluster", "status", "--listen=1s")
	r.ok(t, "")
	for _, want := range []string{`(?m)^n1\s+alive\s+1\s+1\s+1\s`, `(?m)^n2\s+alive\s+2\s+2\s+0\s`,
		`2 nodes alive, 3 sessions in the registry, 1 rooms running`} {
		if !regexp.MustCompile(want).MatchString(r.out) {
			t.Errorf("cluster status output lacks %s:\n%s", want, r.out)
		}
	}

	// A node that does not exist does not answer; n2 drains and stops.
	r = runCLI(t, "", "--config="+cfgPath, "cluster", "drain", "n9")
	r.fails(t, "node n9 did not answer")
	r = runCLI(t, "", "--config="+cfgPath, "cluster", "drain", "n2")
	r.ok(t, "node n2 is draining; it stops within cluster.drain\n")
	select {
	case <-nodes[1].Stopped():
	case <-time.After(15 * time.Second):
		t.Fatal("n2 did not stop after parley cluster drain")
	}

	r = runCLI(t, "", "--config="+cfgPath, "check")
	if !strings.Contains(r.out, "OK    cluster.nats.urls: NATS ") || !strings.Contains(r.out, "JetStream available; session bucket") {
		t.Errorf("check output:\n%s\n%s", r.out, r.err)
	}

	// NATS unreachable: FAIL naming the key.
	bad, _ := testCLIConfig(t, `storage:
  backend: postgres
  postgres:
    dsn: "postgres://nobody@127.0.0.1:1/x"
cluster:
  enabled: true
  node: ops
  nats:
    urls: ["nats://127.0.0.1:1"]
`)
	r = runCLI(t, "", "--config="+bad, "check")
	if r.code == 0 || !strings.Contains(r.out, "FAIL  cluster.nats.urls: cluster.nats.urls: cannot connect to NATS") {
		t.Errorf("check with NATS down: exit %d\n%s", r.code, r.out)
	}
	r = runCLI(t, "", "--config="+bad, "cluster", "status")
	r.fails(t, "cannot connect to NATS")

	// SQLite cannot be shared: refused naming the key.
	sqlite, _ := testCLIConfig(t, "cluster:\n  enabled: true\n  node: n1\n")
	r = runCLI(t, "", "--config="+sqlite, "cluster", "status")
	r.fails(t, "storage.backend: \"sqlite\" cannot be shared by the nodes of a cluster")
}
