package cluster

import (
	"fmt"
	"net"
	"strings"
	"time"
)

// Settings is the cluster section of the configuration file (the YAML keys
// are the mapstructure tags): several Parley nodes run as one service,
// sessions are known cluster-wide through NATS JetStream KV and stanzas
// travel between nodes over NATS; PostgreSQL is the shared durable store.
// server.Config composes it, so its defaults and checks are these and
// nowhere else.
type Settings struct {
	// Enabled turns clustering on (requires storage.backend: postgres).
	Enabled bool `mapstructure:"enabled"`
	// Node is this node's unique, stable name (letters, digits, '-', '_').
	Node string       `mapstructure:"node"`
	NATS NATSSettings `mapstructure:"nats"`
	// Heartbeat is how often the node tells the others it is alive.
	Heartbeat time.Duration `mapstructure:"heartbeat"`
	// DeadAfter: a node silent this long is dead; the survivors remove its
	// sessions and announce them unavailable.
	DeadAfter time.Duration `mapstructure:"dead_after"`
	// Advertise is the host:port at which clients reach this node
	// directly; a draining node sends clients that cannot resume there
	// (<see-other-host/>). Empty: not advertised.
	Advertise string `mapstructure:"advertise"`
	// Drain is how long a stopping node (SIGTERM, parley cluster drain)
	// waits for its clients to resume on other nodes before it closes
	// what is left; 0 stops at once.
	Drain time.Duration `mapstructure:"drain"`
}

// NATSSettings says how to reach NATS.
type NATSSettings struct {
	// URLs of the NATS servers (one cluster); credentials may be given in
	// the URL (nats://user:password@host:4222).
	URLs []string `mapstructure:"urls"`
	// Prefix of the subjects and JetStream buckets this cluster uses, so
	// that several Parley clusters can share one NATS.
	Prefix string `mapstructure:"prefix"`
	// Replicas of the session bucket (3 on a three-server NATS cluster).
	Replicas int `mapstructure:"replicas"`
	// CredsFile is a NATS credentials file (JWT and NKey), if NATS wants one.
	CredsFile string `mapstructure:"creds_file"`
	// CAFile is a PEM bundle to verify NATS servers' TLS certificates.
	CAFile string `mapstructure:"ca_file"`
}

// DefaultSettings are the defaults of the cluster section.
func DefaultSettings() Settings {
	return Settings{NATS: NATSSettings{URLs: []string{"nats://127.0.0.1:4222"}, Prefix: "parley", Replicas: 1},
		Heartbeat: time.Second, DeadAfter: 10 * time.Second, Drain: 30 * time.Second}
}

// Problems returns what is wrong with s, each as "key: problem" with the
// key relative to the cluster section. That a cluster needs a shared
// store is the server's check: it composes the sections.
func (s Settings) Problems() []string {
	var p []string
	bad := func(key, format string, args ...any) { p = append(p, key+": "+fmt.Sprintf(format, args...)) }
	if !nameOK(s.NATS.Prefix) {
		bad("nats.prefix", "%q is not a name of 1-64 letters, digits, '-' or '_'", s.NATS.Prefix)
	}
	if s.NATS.Replicas < 1 || s.NATS.Replicas > 5 {
		bad("nats.replicas", "expected 1 to 5, got %d", s.NATS.Replicas)
	}
	if s.Heartbeat < 100*time.Millisecond || s.Heartbeat > time.Minute {
		bad("heartbeat", "expected a duration from 100ms to 1m such as 1s")
	}
	if s.DeadAfter < 3*s.Heartbeat {
		bad("dead_after", "expected at least three heartbeats (%s), such as 10s", 3*s.Heartbeat)
	}
	if s.Drain < 0 || s.Drain > time.Hour {
		bad("drain", "expected a duration from 0s (stop at once) to 1h such as 30s")
	}
	if s.Advertise != "" {
		if host, port, err := net.SplitHostPort(s.Advertise); err != nil || host == "" || port == "" {
			bad("advertise", "%q is not a host:port address such as n1.example.org:5222", s.Advertise)
		}
	}
	if !s.Enabled {
		return p
	}
	if !nameOK(s.Node) {
		bad("node", "%q is not a node name: expected 1-64 letters, digits, '-' or '_' (unique in the cluster)", s.Node)
	}
	if len(s.NATS.URLs) == 0 {
		bad("nats.urls", "expected at least one NATS server URL such as nats://127.0.0.1:4222")
	}
	for i, u := range s.NATS.URLs {
		if !strings.Contains(u, "://") && !strings.Contains(u, ":") {
			bad(fmt.Sprintf("nats.urls[%d]", i), "%q is not a URL such as nats://host:4222", u)
		}
	}
	return p
}

// nameOK reports whether s is usable in NATS subjects and bucket names.
func nameOK(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}
