package module

import (
	"context"
	"fmt"
)

// Placement keeps an entity that must run on one node at a time (a chat
// room, whose goroutine owns its state) on one node of a cluster. Without
// a cluster the registry has none and every entity is local.
//
// A module that runs such entities asks Acquire before it starts one,
// holds it while it runs and Releases it when it unloads it (its state is
// stored); stanzas for an entity running elsewhere go there with Forward.
// Holds, asked under the lock that guards the module's table of running
// entities, keeps "running here" and "held here" the same thing even when
// an entity is released and acquired again concurrently.
type Placement interface {
	// Acquire returns "" when this node runs entity: it held it already,
	// or nobody live did and it took it now. Otherwise it returns the node
	// that runs it. An error means the owner cannot be decided now (the
	// node holding it stopped answering but is not yet declared dead, or
	// the cluster's store is unreachable).
	Acquire(ctx context.Context, entity string) (node string, err error)
	// Holds reports whether this node holds entity.
	Holds(entity string) bool
	// Release gives entity up; another node may take it from now on.
	Release(entity string)
	// Forward hands ev to node, whose router gives it to the service host
	// as if it had arrived there (hook chains already ran here).
	Forward(ctx context.Context, node string, ev *Event) error
}

// MaxForwards bounds how often one stanza is forwarded between nodes
// while their views of who runs an entity disagree (a hand-over in
// progress).
const MaxForwards = 3

// ErrElsewhere is returned by a module that found the entity a stanza is
// for running on another node.
type ErrElsewhere struct{ Node string }

func (e *ErrElsewhere) Error() string { return fmt.Sprintf("module: runs on node %s", e.Node) }

// SetPlacement installs the cluster's placement, before the server
// starts.
func (r *Registry) SetPlacement(p Placement) { r.placement = p }

// Placement returns the cluster's placement, nil on a single node.
func (r *Registry) Placement() Placement { return r.placement }

// OnLost subscribes to entities this node held and lost: the other nodes
// took them over because this one looked dead to them (a network cut).
// The module drops the entity without a word; its clients find it on its
// new node.
func (r *Registry) OnLost(f func(entity string)) { r.onLost = append(r.onLost, f) }

// FireLost runs OnLost subscribers.
func (r *Registry) FireLost(entity string) {
	for _, f := range r.onLost {
		f(entity)
	}
}

// SessionValues is implemented by sessions that carry small per-session
// state of modules with them (im's directed presence, push's
// registrations). In a cluster the values are part of the session's
// registry entry, so every node reads them (a node that announces the end
// of a session of a dead node, or answers a probe), and they move with
// the session when it resumes on another node. Keep them small: they are
// written with every change of the session's presence.
type SessionValues interface {
	// Value returns the value of key, nil when unset.
	Value(key string) []byte
	// SetValue sets key to v (nil or empty: unset).
	SetValue(key string, v []byte)
}

// Value returns the value of key kept by s, nil when unset or when s
// keeps no values.
func Value(s Session, key string) []byte {
	if v, ok := s.(SessionValues); ok {
		return v.Value(key)
	}
	return nil
}

// SetValue sets key of s to v; it reports false when s keeps no values.
func SetValue(s Session, key string, v []byte) bool {
	sv, ok := s.(SessionValues)
	if ok {
		sv.SetValue(key, v)
	}
	return ok
}
