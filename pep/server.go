package pep

import (
	"context"
	"errors"

	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/storage"
	"github.com/parley-xmpp/parley/wire"
	"github.com/parley-xmpp/parley/xep"
)

// Well-known nodes with built-in defaults.
const (
	NodeAvatarData     = xep.NSAvatarData       // XEP-0084
	NodeAvatarMetadata = xep.NSAvatarMetadata   // XEP-0084
	NodeBookmarks      = xep.NSBookmarks        // XEP-0402
	NodeBookmarksPEP   = xep.NSPrivateBookmarks // XEP-0048 1.1 over PEP (XEP-0223)
	NodeMDS            = xep.NSMDSDisplayed     // XEP-0490
	NodeNick           = xep.NSNick             // XEP-0172
)

// BuiltinNodeDefaults returns the defaults the module applies to
// well-known nodes before Config.NodeDefaults: avatars are public and
// keep one item (XEP-0084 §4.3 recommends open access); bookmarks are
// private and keep every room (XEP-0402 §3.2 publish options), as are
// displayed states, one item per chat (XEP-0490 §4, and its security
// considerations: a node created implicitly must get this configuration).
// The user nickname (XEP-0172) keeps the PEP defaults: presence access.
// It returns nil for other nodes.
func BuiltinNodeDefaults(node string) map[string]string {
	switch node {
	case NodeAvatarData, NodeAvatarMetadata:
		return map[string]string{fAccessModel: AccessOpen, fMaxItems: "1", fPersistItems: "true"}
	case NodeBookmarksPEP:
		// XEP-0048 §3.3 / XEP-0223: one private, persistent item.
		return map[string]string{fAccessModel: AccessWhitelist, fMaxItems: "1", fPersistItems: "true"}
	case NodeBookmarks, NodeMDS:
		return map[string]string{fAccessModel: AccessWhitelist, fMaxItems: "max", fPersistItems: "true",
			fSendLast: "never"}
	}
	return nil
}

// PublishItem publishes an item on the owner's behalf (e.g. bookmarks
// mirrored from private XML): the node is created with its defaults when
// missing, the item stored and the owner's and contacts' interested
// sessions notified as for a client publish. Config.OnPublish is not
// called.
func (m *Module) PublishItem(ctx context.Context, owner, node, id string, payload []byte) error {
	if id == "" {
		id = newID()
	}
	if len(payload) > m.cfg.MaxPayloadBytes {
		return errors.New("pep: payload too big")
	}
	c, err := m.nodeOrCreate(ctx, owner, node)
	if err != nil {
		return err
	}
	it := storage.PEPItem{ID: id, Payload: payload, Publisher: owner, Stamp: m.now()}
	if _, err := m.store.PublishPEPItem(ctx, owner, node, it, c.maxItems(m.cfg.MaxItems)); err != nil {
		return err
	}
	if c.bool(fDeliverNotif) {
		p := payload
		if !c.bool(fDeliverPay) {
			p = nil
		}
		m.notify(ctx, owner, node, c, itemsEvent(node, itemXML(id, p)))
	}
	return nil
}

// RetractItem removes an item on the owner's behalf and notifies as the
// node is configured. A missing node or item is not an error.
// Config.OnRetract is not called.
func (m *Module) RetractItem(ctx context.Context, owner, node, id string) error {
	c, err := m.node(ctx, owner, node)
	if err != nil {
		if isItemNotFound(err) {
			return nil
		}
		return err
	}
	if err := m.store.RetractPEPItem(ctx, owner, node, id); err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return nil
		}
		return err
	}
	if c.bool(fNotifyRetract) && c.bool(fDeliverNotif) {
		m.notify(ctx, owner, node, c, itemsEvent(node, []byte("<retract id='"+wire.EscapeAttr(id)+"'/>")))
	}
	return nil
}

// Items returns a node's items oldest first; none when the node does not
// exist.
func (m *Module) Items(ctx context.Context, owner, node string) ([]storage.PEPItem, error) {
	its, err := m.store.PEPItems(ctx, owner, node, nil, 0)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	}
	return its, err
}

// AccessModel returns the access model of one of owner's nodes, "" when
// the node does not exist.
func (m *Module) AccessModel(ctx context.Context, owner, node string) (string, error) {
	c, err := m.node(ctx, owner, node)
	if err != nil {
		if isItemNotFound(err) {
			return "", nil
		}
		return "", err
	}
	return c.get(fAccessModel), nil
}

func (m *Module) nodeOrCreate(ctx context.Context, owner, node string) (nodeConfig, error) {
	c, err := m.node(ctx, owner, node)
	if err == nil || !isItemNotFound(err) {
		return c, err
	}
	c, err = m.createNode(ctx, owner, node, nil)
	if isCondition(err, wire.ErrConflict) {
		return m.node(ctx, owner, node)
	}
	return c, err
}

func isCondition(err error, cond string) bool {
	var se *module.StanzaError
	return errors.As(err, &se) && se.Condition == cond
}

func isItemNotFound(err error) bool { return isCondition(err, wire.ErrItemNotFound) }
