// Package push implements XEP-0357 Push Notifications (urn:xmpp:push:0):
// clients enable and disable XMPP Push Services (App Servers) on their
// account, and the server publishes a summary notification to every
// enabled service when a message arrives that the user cannot receive
// right now.
//
// Triggers:
//   - Undeliverable: a message worth a notification for a user with no
//     available resource. The hook only enqueues work and returns
//     Continue, so it must come before im's offline storage (which
//     returns Handled) in the module list.
//   - OnStanzaQueued: such a message queued for a hibernated XEP-0198
//     session. When that session enabled push itself, only its own
//     registrations are notified; otherwise all of the account's.
//   - OnAckOverdue (only with Config.AckOverdue > 0): a session that
//     enabled push itself has not answered a XEP-0198 ack request within
//     AckOverdue while such messages are unacknowledged (the connection
//     looks alive but the device is not reading it). Its own
//     registrations are notified about the unacknowledged messages, and
//     about each further one while the ack stays overdue.
//
// A message is worth a notification when it is a chat or normal message
// with a body, an OMEMO payload or a XEP-0353 call proposal. Receipts,
// markers and chat states are stored offline but wake no device. For
// undeliverable messages the XEP-0334 no-store hints also suppress the
// notification, since such a message is dropped.
//
// Notifications carry the urn:xmpp:push:summary form: message-count (the
// messages since the previous notification to that registration) and
// last-message-sender; last-message-body only with Config.IncludeBody and
// never for encrypted messages. Per registration, at most one notification
// is published per Coalesce window: the first message of a burst is
// published at once, the rest are counted and published together when the
// window ends.
//
// Delivery is durable when the module has a storage.PushJobs: every
// notification is stored as a job before it is sent and deleted once the
// App Server acknowledged it. When the App Server does not answer, or
// answers with a transient error, the job is retried after Config.Backoff
// (5s, 30s, 2m, 10m, 1h by default); after Config.MaxAttempts attempts it
// is dropped with a log line and parley_push_dropped_total{reason="retries"}.
// A worker started by Start sends due jobs, so jobs pending at shutdown are
// sent after the next start.
//
// When an App Server answers with an error, its registration is disabled
// (XEP-0357 §7.1), except for errors of type 'wait' and
// remote-server-not-found / remote-server-timeout, which are transient.
// A pubsub affiliation change to 'none' from the service (XEP-0357 §8)
// disables the registration too.
package push

import (
	"log/slog"
	"time"
)

// Settings is the push section of the configuration file (the YAML keys
// are the mapstructure tags); server.Config composes it, so its defaults
// and checks are these and nowhere else.
type Settings struct {
	// IncludeBody adds last-message-body to notifications. Off by default:
	// the body then travels through the App Server and the platform's push
	// service. Bodies of encrypted messages are never included.
	IncludeBody bool `mapstructure:"include_body"`
	// Coalesce is the shortest time between two notifications to one
	// registration; 0 publishes every message at once.
	Coalesce time.Duration `mapstructure:"coalesce"`
	// AckOverdue, when > 0, also notifies a session's own registrations
	// when its client leaves a stream management ack request unanswered
	// this long while messages are unacknowledged. 0 disables it.
	AckOverdue time.Duration `mapstructure:"ack_overdue"`
}

// DefaultSettings are the defaults of the push section.
func DefaultSettings() Settings { return Settings{Coalesce: DefaultCoalesce} }

// Problems returns what is wrong with s, each as "key: problem" with the
// key relative to the push section.
func (s Settings) Problems() []string {
	var p []string
	if s.Coalesce < 0 {
		p = append(p, "coalesce: expected a duration such as 2s")
	}
	if s.AckOverdue < 0 {
		p = append(p, "ack_overdue: expected a duration such as 30s, or 0s to disable")
	}
	return p
}

// Defaults.
const (
	DefaultCoalesce         = 2 * time.Second
	DefaultTimeout          = 30 * time.Second
	DefaultMaxRegistrations = 20
	DefaultMaxFormBytes     = 8 << 10
	DefaultQueueSize        = 4096
	DefaultMaxAttempts      = 6
	DefaultPollInterval     = time.Second
	DefaultBatchSize        = 64
	// maxBodyBytes bounds last-message-body (cut at a rune boundary).
	maxBodyBytes = 1024
	maxNodeBytes = 1024
)

// DefaultBackoff is the wait before each retry of a notification.
var DefaultBackoff = []time.Duration{5 * time.Second, 30 * time.Second, 2 * time.Minute, 10 * time.Minute, time.Hour}

// Config configures the module: the file's settings and what the
// server wires in.
type Config struct {
	Settings
	// Timeout bounds the wait for an App Server's answer (DefaultTimeout
	// when <= 0).
	Timeout time.Duration
	// MaxRegistrations per account (DefaultMaxRegistrations when <= 0).
	MaxRegistrations int
	// MaxFormBytes bounds the serialized publish-options form
	// (DefaultMaxFormBytes when <= 0).
	MaxFormBytes int
	// QueueSize is how many triggers may wait for the background worker;
	// beyond it they are dropped and counted (DefaultQueueSize when <= 0).
	QueueSize int
	// Backoff is the wait before retry n (the last entry is reused);
	// DefaultBackoff when empty.
	Backoff []time.Duration
	// MaxAttempts is how many delivery attempts a notification gets before
	// it is dropped (DefaultMaxAttempts when <= 0).
	MaxAttempts int
	// PollInterval is how often the worker looks for due jobs
	// (DefaultPollInterval when <= 0).
	PollInterval time.Duration
	// BatchSize bounds the jobs in flight at once (DefaultBatchSize when
	// <= 0).
	BatchSize int
	Logger    *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.MaxRegistrations <= 0 {
		c.MaxRegistrations = DefaultMaxRegistrations
	}
	if c.MaxFormBytes <= 0 {
		c.MaxFormBytes = DefaultMaxFormBytes
	}
	if c.QueueSize <= 0 {
		c.QueueSize = DefaultQueueSize
	}
	if len(c.Backoff) == 0 {
		c.Backoff = DefaultBackoff
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	if c.PollInterval <= 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.BatchSize <= 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}
