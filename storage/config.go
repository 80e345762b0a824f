package storage

import (
	"fmt"
	"time"
)

// Config is the storage section of the configuration file (the YAML keys
// are the mapstructure tags): which backend, and how it is opened.
// server.Config composes it, so its defaults and checks are these and
// nowhere else. (Settings is taken by the repository of server-wide
// values.)
type Config struct {
	Backend  string         `mapstructure:"backend"`
	Postgres PostgresConfig `mapstructure:"postgres"`
	// GroupCommit batches concurrent archive writes into shared
	// transactions (one commit for many messages); each message is still
	// acknowledged only once its batch has committed.
	GroupCommit bool `mapstructure:"group_commit"`
	// GroupCommitMaxBatch bounds the messages of one batch.
	GroupCommitMaxBatch int `mapstructure:"group_commit_max_batch"`
	// GroupCommitMaxWait is how long a batch waits for more messages
	// after its first.
	GroupCommitMaxWait time.Duration `mapstructure:"group_commit_max_wait"`
}

// PostgresConfig configures the PostgreSQL backend.
type PostgresConfig struct {
	DSN      string `mapstructure:"dsn"`
	MaxConns int    `mapstructure:"max_conns"`
	// Schema to use (created if missing); empty: the DSN's search_path.
	Schema string `mapstructure:"schema"`
	// NoMigrate skips applying migrations at start (run `parley db migrate`
	// instead); the server then refuses a schema that is not up to date.
	NoMigrate bool `mapstructure:"no_migrate"`
}

// DefaultConfig is the default of the storage section: SQLite, with group
// commit on.
func DefaultConfig() Config {
	return Config{Backend: "sqlite", Postgres: PostgresConfig{MaxConns: 10},
		GroupCommit: true, GroupCommitMaxBatch: 4000, GroupCommitMaxWait: time.Millisecond}
}

// Problems returns what is wrong with c, each as "key: problem" with the
// key relative to the storage section.
func (c Config) Problems() []string {
	var p []string
	switch c.Backend {
	case "sqlite":
	case "postgres":
		if c.Postgres.DSN == "" {
			p = append(p, "postgres.dsn: expected a PostgreSQL connection string when storage.backend is postgres")
		}
	default:
		p = append(p, fmt.Sprintf("backend: %q is not supported (expected sqlite or postgres)", c.Backend))
	}
	if c.Postgres.MaxConns < 0 {
		p = append(p, "postgres.max_conns: expected a positive number")
	}
	if c.GroupCommitMaxBatch < 1 || c.GroupCommitMaxBatch > 4096 {
		p = append(p, "group_commit_max_batch: expected a number of messages from 1 to 4096")
	}
	if c.GroupCommitMaxWait < 0 || c.GroupCommitMaxWait > time.Second {
		p = append(p, "group_commit_max_wait: expected a duration from 0s to 1s")
	}
	return p
}
