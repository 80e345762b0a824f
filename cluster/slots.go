package cluster

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/parley-xmpp/parley/router"
)

// Session slots make MaxSessions hold across nodes without a moment's
// overshoot. Each account with sessions has a key "a.<base64url bare>" in
// the session bucket whose value maps each bound resource to the
// connection that took its slot. A bind of a new resource first adds it
// there with compare-and-set (refused when the account has max slots):
// two nodes binding at once cannot both take the last slot. Release and
// reaping give the slot back only if it is still the one of the ending
// connection, so a new session of the same resource on another node keeps
// its slot. A slot whose session never was written or that moved to
// another node (a hand-over keeps the slot under the old connection) is
// pruned when the account is full: its session key is gone and the slot
// is older than slotGrace (a bind in progress writes its key within it).
type slot struct {
	Conn string `json:"c"`
	At   int64  `json:"t"` // unix seconds
}

// slotGrace is how old a slot without a session must be to be pruned.
const slotGrace = 30 * time.Second

type slotsState struct {
	m   map[string]slot
	rev uint64
}

func slotsKey(bare string) string { return "a." + base64.RawURLEncoding.EncodeToString([]byte(bare)) }

// onSlots records a watched slots key in the local copy (the first try of
// a bind uses it; a conflict reads the bucket).
func (n *Node) onSlots(k string, op jetstream.KeyValueOp, value []byte, rev uint64) {
	g := &n.registry
	g.mu.Lock()
	defer g.mu.Unlock()
	if cur, ok := g.slots[k]; ok && rev <= cur.rev {
		return
	}
	m := map[string]slot{}
	if op == jetstream.KeyValuePut {
		_ = json.Unmarshal(value, &m)
	}
	g.slots[k] = slotsState{m: m, rev: rev}
}

func (n *Node) readSlots(ctx context.Context, k string, fresh bool) (map[string]slot, uint64, error) {
	if !fresh {
		n.registry.mu.RLock()
		cur, ok := n.registry.slots[k]
		n.registry.mu.RUnlock()
		if ok {
			m := make(map[string]slot, len(cur.m))
			for r, s := range cur.m {
				m[r] = s
			}
			return m, cur.rev, nil
		}
	}
	kve, err := n.kv.Get(ctx, k)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return map[string]slot{}, 0, nil
	case errors.Is(err, jetstream.ErrKeyDeleted):
		// Create works on top of a delete marker.
		return map[string]slot{}, 0, nil
	case err != nil:
		return nil, 0, err
	}
	m := map[string]slot{}
	if err := json.Unmarshal(kve.Value(), &m); err != nil {
		m = map[string]slot{}
	}
	n.onSlots(k, kve.Operation(), kve.Value(), kve.Revision())
	return m, kve.Revision(), nil
}

func (n *Node) writeSlots(ctx context.Context, k string, m map[string]slot, rev uint64) error {
	if len(m) == 0 {
		if rev == 0 {
			return nil
		}
		drev, err := n.casDelete(k, rev)
		if err == nil {
			n.onSlots(k, jetstream.KeyValueDelete, nil, drev)
		}
		return err
	}
	val, _ := json.Marshal(m)
	nrev, err := casPut(ctx, n.kv, k, val, rev)
	if err == nil {
		n.onSlots(k, jetstream.KeyValuePut, val, nrev)
	}
	return err
}

// casPut writes k if its revision is still rev (0: if it does not
// exist).
func casPut(ctx context.Context, kv jetstream.KeyValue, k string, val []byte, rev uint64) (uint64, error) {
	if rev == 0 {
		return kv.Create(ctx, k, val)
	}
	return kv.Update(ctx, k, val, rev)
}

func conflict(err error) bool {
	return errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch)
}

// reserve takes a slot of bare for resource and conn; router.ErrTooManySessions
// when max are taken.
func (n *Node) reserve(ctx context.Context, bare, resource, conn string, max int) error {
	k := slotsKey(bare)
	for try := range 8 {
		m, rev, err := n.readSlots(ctx, k, try > 0)
		if err != nil {
			registryErrors.Inc()
			return errRegistry
		}
		if _, ok := m[resource]; !ok && len(m) >= max {
			n.pruneSlots(ctx, bare, m)
			if len(m) >= max {
				return router.ErrTooManySessions
			}
		}
		m[resource] = slot{Conn: conn, At: time.Now().Unix()}
		err = n.writeSlots(ctx, k, m, rev)
		if err == nil {
			registryWrites.WithLabelValues("slot").Inc()
			return nil
		}
		if !conflict(err) {
			registryErrors.Inc()
			return errRegistry
		}
	}
	registryErrors.Inc()
	return errRegistry
}

// unreserve gives back the slot of bare's resource if conn still holds it.
func (n *Node) unreserve(bare, resource, conn string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	k := slotsKey(bare)
	for try := range 8 {
		m, rev, err := n.readSlots(ctx, k, try > 0)
		if err != nil {
			return
		}
		if s, ok := m[resource]; !ok || s.Conn != conn {
			return
		}
		delete(m, resource)
		err = n.writeSlots(ctx, k, m, rev)
		if err == nil || !conflict(err) {
			return
		}
	}
}

// pruneSlots removes from m the slots whose session is not in the
// registry (checked in the bucket) and that are older than slotGrace.
func (n *Node) pruneSlots(ctx context.Context, bare string, m map[string]slot) {
	old := time.Now().Add(-slotGrace).Unix()
	for res, s := range m {
		if s.At > old {
			continue
		}
		k := key(bare, res)
		n.registry.mu.RLock()
		r := n.registry.byKey[k]
		n.registry.mu.RUnlock()
		if r != nil {
			continue
		}
		if _, err := n.kv.Get(ctx, k); errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
			delete(m, res)
		}
	}
}
