package storage

import (
	"context"
	"time"
)

// PEPNode is one node of a user's personal eventing service (XEP-0163).
// Config holds the node configuration as data-form field values keyed by
// field name (e.g. "pubsub#access_model" → ["presence"]); multi-valued
// fields such as pubsub#roster_groups_allowed keep every value, in order.
type PEPNode struct {
	Name    string
	Config  map[string][]string
	Created time.Time
}

// PEPItem is one published item. Payload is the raw XML of the item's
// payload element, kept byte for byte.
type PEPItem struct {
	ID        string
	Payload   []byte
	Publisher string // full or bare JID of the publishing entity
	Stamp     time.Time
}

// PEP stores users' PEP nodes and their items. DeleteAccount removes them
// with the account.
//
// Items of a node are ordered by publication: publishing an item whose id
// exists replaces it and makes it the newest.
type PEP interface {
	// CreatePEPNode fails with ErrExists when the owner has a node with
	// that name.
	CreatePEPNode(ctx context.Context, owner string, node PEPNode) error
	// PEPNode returns ErrNotFound when the node does not exist.
	PEPNode(ctx context.Context, owner, node string) (PEPNode, error)
	// PEPNodes returns the owner's nodes sorted by name.
	PEPNodes(ctx context.Context, owner string) ([]PEPNode, error)
	// SetPEPNodeConfig replaces a node's configuration; ErrNotFound when
	// the node does not exist.
	SetPEPNodeConfig(ctx context.Context, owner, node string, config map[string][]string) error
	// DeletePEPNode removes a node and its items; ErrNotFound when it does
	// not exist.
	DeletePEPNode(ctx context.Context, owner, node string) error

	// PublishPEPItem stores item as the node's newest item (replacing an
	// item with the same id), then removes the oldest items beyond
	// maxItems (maxItems <= 0: no limit), all in one transaction. It
	// returns the ids of the items removed by trimming; ErrNotFound when
	// the node does not exist.
	PublishPEPItem(ctx context.Context, owner, node string, item PEPItem, maxItems int) (trimmed []string, err error)
	// RetractPEPItem removes one item; ErrNotFound when the node or the
	// item does not exist.
	RetractPEPItem(ctx context.Context, owner, node, id string) error
	// PurgePEPItems removes every item of a node; ErrNotFound when the
	// node does not exist.
	PurgePEPItems(ctx context.Context, owner, node string) error
	// PEPItems returns items oldest first: those with the given ids when
	// ids is not empty (unknown ids are left out), else the newest last
	// ones when last > 0, else all. ErrNotFound when the node does not
	// exist.
	PEPItems(ctx context.Context, owner, node string, ids []string, last int) ([]PEPItem, error)
}
