package pep

import (
	"context"
	"log/slog"
	"time"

	"github.com/parley-xmpp/parley/storage"
)

// Config configures the PEP module.
type Config struct {
	// NodeDefaults returns configuration defaults for a node name that
	// override the PEP defaults when the node is created (e.g. the omemo
	// module's open, persistent device-list and bundle nodes), as data
	// form field values keyed by field name ("pubsub#access_model" →
	// "open"). It returns nil for nodes it has no opinion on. Options in a
	// client's create or publish-options request still take precedence.
	NodeDefaults func(node string) map[string]string
	// OnPublish, when set, is called after a client of the owner published
	// an item (not for items published through Module.PublishItem), e.g.
	// for the private module's XEP-0411 bookmarks sync. payload is the raw
	// payload element. Errors are the callee's to log.
	OnPublish func(ctx context.Context, owner, node, id string, payload []byte)
	// OnRetract, when set, is called after a client of the owner retracted
	// an item (not for Module.RetractItem).
	OnRetract func(ctx context.Context, owner, node, id string)
	// MaxItems is the largest pubsub#max_items a node may have and the
	// value of max_items "max" (0: DefaultMaxItems).
	MaxItems int
	// MaxNodes per account (0: DefaultMaxNodes).
	MaxNodes int
	// MaxPayloadBytes is the largest item payload accepted (0:
	// DefaultMaxPayloadBytes).
	MaxPayloadBytes int
	// MaxAccountBytes bounds the payload bytes of all of one account's
	// items (0: DefaultMaxAccountBytes; negative: no limit). Needs Usage.
	MaxAccountBytes int64
	// Usage reads accounts' stored bytes (nil: no byte quota).
	Usage storage.UsageReader
	// DiscoTimeout bounds the disco#info query that resolves a contact's
	// entity capabilities (0: 10s).
	DiscoTimeout time.Duration
	Logger       *slog.Logger
}

// Defaults.
const (
	DefaultMaxItems        = 256
	DefaultMaxNodes        = 256
	DefaultMaxPayloadBytes = 200 << 10
	// DefaultMaxAccountBytes bounds the payload bytes of one account's
	// items (avatars of 100 kB, OMEMO bundles and bookmarks fit many times).
	DefaultMaxAccountBytes = 10 << 20
)

func (c Config) withDefaults() Config {
	if c.MaxItems <= 0 {
		c.MaxItems = DefaultMaxItems
	}
	if c.MaxNodes <= 0 {
		c.MaxNodes = DefaultMaxNodes
	}
	if c.MaxPayloadBytes <= 0 {
		c.MaxPayloadBytes = DefaultMaxPayloadBytes
	}
	if c.MaxAccountBytes == 0 {
		c.MaxAccountBytes = DefaultMaxAccountBytes
	}
	if c.DiscoTimeout <= 0 {
		c.DiscoTimeout = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}
