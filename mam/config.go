// Package mam is Parley's message archive: XEP-0313 Message Archive
// Management (urn:xmpp:mam:2 and #extended) on users' bare JIDs, XEP-0359
// stanza-ids, XEP-0441 preferences and the XEP-0334 storage hints.
//
// Hooks: the Outbound hook archives a local user's message into the
// sender's archive (without touching the stanza: a contact must not see the
// sender's archive id); the Inbound hook archives a message into the local
// recipient's archive and adds <stanza-id by='recipient bare'/> before it is
// delivered (store before forward) and sets module.Event.ArchiveID. The
// carbons module must come after this one so that carbon copies carry the
// stanza-id.
package mam

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/parley-xmpp/parley/storage"
)

// Defaults.
const (
	DefaultDedupWindow   = 5 * time.Minute
	DefaultPageSize      = 50
	DefaultMaxPageSize   = 250
	DefaultPurgeInterval = time.Hour
	DefaultPurgeBatch    = 1000
)

// Settings is the mam section of the configuration file (the YAML keys
// are the mapstructure tags); server.Config composes it, so its defaults
// and checks are these and nowhere else.
type Settings struct {
	// Retention is how long messages are kept; 0 keeps them forever.
	Retention time.Duration `mapstructure:"retention"`
	// DedupWindow: a message with the same XEP-0359 origin-id from the same
	// full JID within this window is not archived again
	// (DefaultDedupWindow when 0; negative disables the check).
	DedupWindow time.Duration `mapstructure:"dedup_window"`
	// DefaultPolicy is the XEP-0441 default for users who never set
	// preferences: "always" (when empty), "roster" or "never".
	DefaultPolicy string `mapstructure:"default_policy"`
	// MaxPageSize caps any page (DefaultMaxPageSize when <= 0).
	MaxPageSize int `mapstructure:"max_page_size"`
	// Fulltext enables XEP-0431 full-text search: the query form offers
	// the {urn:xmpp:fulltext:0}fulltext field and accounts advertise
	// urn:xmpp:fulltext:0. The storage must be opened with its full-text
	// index on (storage.FulltextOn; the server does so from the same
	// setting): it indexes plain message bodies (never encrypted
	// messages) only then, and rebuilds the index when opened with it on
	// after a time off.
	Fulltext bool `mapstructure:"fulltext"`
}

// DefaultSettings are the defaults of the mam section.
func DefaultSettings() Settings {
	return Settings{DedupWindow: DefaultDedupWindow, DefaultPolicy: "always", MaxPageSize: DefaultMaxPageSize}
}

// Problems returns what is wrong with s, each as "key: problem" with the
// key relative to the mam section.
func (s Settings) Problems() []string {
	var p []string
	if s.Retention < 0 {
		p = append(p, "retention: expected a duration such as 8760h (0s keeps messages forever)")
	}
	if s.DedupWindow < 0 {
		p = append(p, "dedup_window: expected a duration such as 5m")
	}
	switch s.DefaultPolicy {
	case "always", "roster", "never":
	default:
		p = append(p, fmt.Sprintf("default_policy: %q is not a policy (expected always, roster or never)", s.DefaultPolicy))
	}
	if s.MaxPageSize < 10 {
		p = append(p, fmt.Sprintf("max_page_size: expected a number >= 10, got %d", s.MaxPageSize))
	}
	return p
}

// Config configures the module: the file's settings and what the
// server wires in.
type Config struct {
	Settings
	// PurgeInterval is how often expired messages are deleted
	// (DefaultPurgeInterval when <= 0); PurgeBatch bounds one delete
	// statement (DefaultPurgeBatch when <= 0) so that the single writer is
	// never held for long.
	PurgeInterval time.Duration
	PurgeBatch    int
	// DefaultPageSize is the page size when a query gives no RSM <max/>
	// (DefaultPageSize when <= 0).
	DefaultPageSize int
	// MaxAccountBytes bounds the bytes of one account's archive (<= 0: no
	// limit): beyond it the oldest messages are deleted, down to nine
	// tenths of it. Needs Usage.
	MaxAccountBytes int64
	Usage           storage.UsageReader
	// SharedArchive says that other processes (cluster nodes) archive
	// into the same store: resends (origin-id) are then always looked up
	// in the database, not only when this process may have missed them.
	SharedArchive bool
	Logger        *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.PurgeInterval <= 0 {
		c.PurgeInterval = DefaultPurgeInterval
	}
	if c.PurgeBatch <= 0 {
		c.PurgeBatch = DefaultPurgeBatch
	}
	if c.DedupWindow == 0 {
		c.DedupWindow = DefaultDedupWindow
	}
	if c.MaxPageSize <= 0 {
		c.MaxPageSize = DefaultMaxPageSize
	}
	if c.DefaultPageSize <= 0 {
		c.DefaultPageSize = DefaultPageSize
	}
	c.DefaultPageSize = min(c.DefaultPageSize, c.MaxPageSize)
	if c.DefaultPolicy == "" {
		c.DefaultPolicy = "always"
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}
