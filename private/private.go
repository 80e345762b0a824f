// Package private implements XEP-0049 private XML storage and keeps
// XEP-0048 bookmarks stored there in sync with XEP-0402 PEP bookmarks and
// with the XEP-0048 PEP node (XEP-0411, urn:xmpp:bookmarks:1#compat and
// #compat-pep).
package private

import (
	"github.com/parley-xmpp/parley/xep"

	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/storage"
	"github.com/parley-xmpp/parley/wire"
)

// Namespaces.
const (
	NS              = xep.NSPrivate
	NSBookmarks     = xep.NSPrivateBookmarks // XEP-0048
	NSBookmarks2    = xep.NSBookmarks        // XEP-0402 (also the PEP node)
	NSBookmarksSync = NSBookmarks2 + "#compat"
	// NSBookmarksSyncPEP: unified with the XEP-0048 PEP node as well.
	NSBookmarksSyncPEP = NSBookmarks2 + "#compat-pep"
	// NSBookmarksConversion is XEP-0411's feature.
	NSBookmarksConversion = xep.NSBookmarksConversion
)

// Defaults of Config.
const (
	// DefaultMaxBytes is the default limit of one stored element.
	DefaultMaxBytes = 64 << 10
	// DefaultMaxNamespaces is how many elements one account may store.
	DefaultMaxNamespaces = 100
	// DefaultMaxAccountBytes is how many bytes one account may store in all.
	DefaultMaxAccountBytes = 1 << 20
)

// PEP is what the bookmarks sync needs from the PEP service; *pep.Module
// implements it.
type PEP interface {
	PublishItem(ctx context.Context, owner, node, id string, payload []byte) error
	RetractItem(ctx context.Context, owner, node, id string) error
	Items(ctx context.Context, owner, node string) ([]storage.PEPItem, error)
}

// Config configures the module.
type Config struct {
	// PEP enables the bookmarks sync (nil: plain private XML storage).
	// The PEP module must also call OnPEPPublish and OnPEPRetract (its
	// Config.OnPublish and Config.OnRetract).
	PEP PEP
	// MaxBytes limits one stored element (0: DefaultMaxBytes).
	MaxBytes int
	// MaxNamespaces limits the elements one account stores (0:
	// DefaultMaxNamespaces): each is kept however small, so the size
	// limits alone would let a client store any number of them.
	MaxNamespaces int
	// MaxAccountBytes limits the bytes one account stores in all (0:
	// DefaultMaxAccountBytes; negative: no limit). Needs Usage.
	MaxAccountBytes int64
	// Usage reads the account's stored bytes (nil: no byte quota).
	Usage  storage.UsageReader
	Logger *slog.Logger
}

// Module implements module.Module.
type Module struct {
	cfg   Config
	store storage.PrivateXML
	log   *slog.Logger
	mu    sync.Mutex // serialises bookmark read-modify-write
	// migrated holds the accounts whose stored bookmarks were checked
	// against PEP since the start.
	migrated sync.Map
}

var _ module.Module = (*Module)(nil)

// New returns the module.
func New(cfg Config, store storage.PrivateXML) *Module {
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultMaxBytes
	}
	if cfg.MaxNamespaces <= 0 {
		cfg.MaxNamespaces = DefaultMaxNamespaces
	}
	if cfg.MaxAccountBytes == 0 {
		cfg.MaxAccountBytes = DefaultMaxAccountBytes
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Module{cfg: cfg, store: store, log: cfg.Logger}
}

// Name implements module.Module.
func (m *Module) Name() string { return "private" }

// Register implements module.Module.
func (m *Module) Register(r *module.Registry) error {
	r.AccountFeature(NS)
	if m.cfg.PEP != nil {
		// XEP-0402 §5.3: unified with private XML and with the XEP-0048
		// PEP node; XEP-0411: converted both ways.
		r.AccountFeature(NSBookmarksSync, NSBookmarksSyncPEP, NSBookmarksConversion)
		r.OnBound(func(ctx context.Context, s module.Session) { m.migrate(ctx, s.JID().Bare().String()) })
	}
	r.IQ(NS, "query", module.TargetAccount, m.handle)
	return nil
}

// reserved namespaces cannot be stored (XEP-0049 §3: not-acceptable).
var reserved = map[string]bool{"": true, wire.NSClient: true, wire.NSServer: true, NS: true}

func (m *Module) handle(ctx context.Context, ev *module.Event) (*wire.Element, error) {
	if ev.Origin.Kind != module.FromClient || !ev.From.Bare().Equal(ev.To.Bare()) {
		return nil, module.Errorf(wire.ErrForbidden, "private XML belongs to the account's own clients")
	}
	owner := ev.To.Bare().String()
	q := ev.Stanza.Child(NS, "query")
	els := q.Elements()
	if len(els) != 1 {
		return nil, module.Errorf(wire.ErrBadRequest, "the query must hold exactly one element")
	}
	child := els[0]
	ns := child.Name.Space
	if reserved[ns] {
		return nil, module.Errorf(wire.ErrNotAcceptable, "namespace %q cannot be stored", ns)
	}
	if ev.Stanza.Type == "get" {
		raw, err := m.store.PrivateXML(ctx, owner, ns)
		if errors.Is(err, storage.ErrNotFound) {
			return wire.NewElement(NS, "query").Add(wire.NewElement(ns, child.Name.Local)), nil
		}
		if err != nil {
			return nil, err
		}
		st, err := wire.Parse(raw, wire.Limits{})
		if err != nil {
			return nil, fmt.Errorf("private: stored %s of %s: %w", ns, owner, err)
		}
		return wire.NewElement(NS, "query").Add(st.Tree()), nil
	}
	raw := child.Bytes()
	if len(raw) > m.cfg.MaxBytes {
		return nil, module.Errorf(wire.ErrNotAcceptable, "at most %d bytes per namespace", m.cfg.MaxBytes)
	}
	if ns == NSBookmarks && m.cfg.PEP != nil {
		m.mu.Lock()
		defer m.mu.Unlock()
	}
	if err := m.checkQuota(ctx, owner, ns, len(raw)); err != nil {
		return nil, err
	}
	if err := m.store.SetPrivateXML(ctx, owner, ns, raw); err != nil {
		return nil, err
	}
	if ns == NSBookmarks && m.cfg.PEP != nil {
		if err := errors.Join(m.toPEP(ctx, owner, child), m.toLegacyPEP(ctx, owner, child)); err != nil {
			m.log.Warn("private: bookmarks to PEP", "owner", owner, "err", err)
		}
	}
	return nil, nil
}

// checkQuota refuses a new namespace beyond MaxNamespaces and an element
// that would take the account beyond MaxAccountBytes (counting what it
// replaces).
func (m *Module) checkQuota(ctx context.Context, owner, ns string, size int) error {
	old, err := m.store.PrivateXML(ctx, owner, ns)
	exists := err == nil
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	if !exists {
		n, err := m.store.CountPrivateXML(ctx, owner)
		if err != nil {
			return err
		}
		if n >= m.cfg.MaxNamespaces {
			return module.Errorf(wire.ErrResourceConstraint, "at most %d namespaces of private XML per account", m.cfg.MaxNamespaces)
		}
	}
	if m.cfg.Usage == nil || m.cfg.MaxAccountBytes < 0 {
		return nil
	}
	u, err := m.cfg.Usage.AccountUsage(ctx, owner)
	if err != nil {
		return err
	}
	if u.Private-int64(len(old))+int64(size) > m.cfg.MaxAccountBytes {
		return module.Errorf(wire.ErrResourceConstraint, "private XML storage is limited to %d bytes per account", m.cfg.MaxAccountBytes)
	}
	return nil
}
