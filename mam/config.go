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
	"log/slog"
	"time"
)

// Defaults.
const (
	DefaultDedupWindow   = 5 * time.Minute
	DefaultPageSize      = 50
	DefaultMaxPageSize   = 250
	DefaultPurgeInterval = time.Hour
	DefaultPurgeBatch    = 1000
)

// Config configures the module.
type Config struct {
	// Retention is how long messages are kept; 0 keeps them forever.
	Retention time.Duration
	// PurgeInterval is how often expired messages are deleted
	// (DefaultPurgeInterval when <= 0); PurgeBatch bounds one delete
	// statement (DefaultPurgeBatch when <= 0) so that the single writer is
	// never held for long.
	PurgeInterval time.Duration
	PurgeBatch    int
	// DedupWindow: a message with the same XEP-0359 origin-id from the same
	// full JID within this window is not archived again
	// (DefaultDedupWindow when 0; negative disables the check).
	DedupWindow time.Duration
	// DefaultPageSize is the page size when a query gives no RSM <max/>
	// (DefaultPageSize when <= 0); MaxPageSize caps any page
	// (DefaultMaxPageSize when <= 0).
	DefaultPageSize int
	MaxPageSize     int
	// DefaultPolicy is the XEP-0441 default for users who never set
	// preferences: "always" (when empty), "roster" or "never".
	DefaultPolicy string
	// Fulltext enables XEP-0431 full-text search: the query form offers
	// the {urn:xmpp:fulltext:0}fulltext field and accounts advertise
	// urn:xmpp:fulltext:0. The storage must be opened with its full-text
	// index on (storage.FulltextOn; the server does so from the same
	// setting): it indexes plain message bodies (never encrypted
	// messages) only then, and rebuilds the index when opened with it on
	// after a time off.
	Fulltext bool
	Logger   *slog.Logger
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
