package testserver

import (
	"context"
	"crypto/rand"
	"os"
	"strings"
	"testing"
	"time"

	"fmt"

	"github.com/nats-io/nats.go"

	"github.com/parley-xmpp/parley/cluster"
	"github.com/parley-xmpp/parley/server"
	"github.com/parley-xmpp/parley/wire"
)

// NATSURL is the NATS server (with JetStream) cluster tests use.
func NATSURL() string {
	if u := os.Getenv("PARLEY_TEST_NATS"); u != "" {
		return u
	}
	return "nats://127.0.0.1:4222"
}

// ClusterSpec is what the nodes of one test cluster share: a PostgreSQL
// schema and a NATS prefix, both unique to the test and removed after it.
type ClusterSpec struct {
	Schema string
	Prefix string
}

// NewClusterSpec makes the shared names of a test cluster and removes
// what the cluster left in PostgreSQL and NATS when the test ends. It
// skips the test when NATS or PostgreSQL is not reachable outside CI.
func NewClusterSpec(t testing.TB) ClusterSpec {
	t.Helper()
	nc, err := nats.Connect(NATSURL(), nats.Timeout(3*time.Second))
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("NATS is not reachable at %s: %v", NATSURL(), err)
		}
		t.Skipf("SKIPPED: NATS is not reachable at %s (set PARLEY_TEST_NATS): %v", NATSURL(), err)
	}
	nc.Close()
	id := strings.ToLower(rand.Text()[:12])
	spec := ClusterSpec{Schema: "parley_cluster_" + id, Prefix: "ptest_" + id}
	t.Cleanup(func() {
		dropSchema(PostgresDSN(), spec.Schema)
		DeleteBuckets(spec.Prefix)
	})
	return spec
}

// DeleteBuckets removes the JetStream buckets of a cluster prefix.
func DeleteBuckets(prefix string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = cluster.DeleteBuckets(ctx, cluster.Config{URLs: []string{NATSURL()}, Prefix: prefix})
}

// Node configures a server as node name of the cluster spec, listening on
// ip (e.g. 127.0.0.2; every node of a test gets its own loopback address
// as it would its own machine).
func (spec ClusterSpec) Node(name, ip string) Option {
	return func(c *server.Config) {
		c.Storage.Backend = "postgres"
		c.Storage.Postgres.DSN = PostgresDSN()
		c.Storage.Postgres.Schema = spec.Schema
		c.Cluster.Enabled = true
		c.Cluster.Node = name
		c.Cluster.NATS.URLs = []string{NATSURL()}
		c.Cluster.NATS.Prefix = spec.Prefix
		c.Cluster.Heartbeat = 200 * time.Millisecond
		c.Cluster.DeadAfter = 2 * time.Second
		c.Listen = server.ListenConfig{C2S: ip + ":0", C2STLS: ip + ":0", HTTP: ip + ":0", HTTPS: ip + ":0", Admin: ip + ":0"}
	}
}

// StartCluster starts n in-process nodes ("n1", "n2", …, on 127.0.0.2,
// 127.0.0.3, …) sharing one PostgreSQL schema and one NATS prefix. opts
// apply to every node after the cluster settings.
func StartCluster(t testing.TB, n int, opts ...Option) []*Server {
	t.Helper()
	spec := NewClusterSpec(t)
	nodes := make([]*Server, n)
	for i := range n {
		o := append([]Option{spec.Node("n"+string(rune('1'+i)), "127.0.0."+string(rune('2'+i)))}, opts...)
		nodes[i] = Start(t, o...)
	}
	return nodes
}

// Restart opens a new stream after authentication and reads its
// features (for tests that bind or resume by hand).
func (c *Client) Restart() {
	c.t.Helper()
	c.startStream()
	c.Features()
}

// Wait is Expect without failing the test: it reports whether a matching
// stanza arrived within d (safe on other goroutines than the test's).
func (c *Client) Wait(d time.Duration, match func(*wire.Stanza) bool) (*wire.Stanza, bool) {
	return c.wait(d, match)
}

// TrySend is Send that returns the write error instead of failing the test
// (for clients whose server may die, on any goroutine).
func (c *Client) TrySend(format string, args ...any) error {
	_ = c.conn.SetWriteDeadline(time.Now().Add(Timeout))
	_, err := fmt.Fprintf(c.conn, format, args...)
	return err
}
