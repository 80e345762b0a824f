package cluster

import (
	"context"
	"hash/fnv"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/wire"
)

// remote is a session bound on another node as the router and modules see
// it: presence, priority and flags come from the replicated entry, Send
// carries the stanza to the owning node. One value per (full JID,
// connection), updated in place, so modules may compare sessions.
type remote struct {
	n     *Node
	full  jid.JID
	key   string
	shard int // of the node's outgoing queues
	st    atomic.Pointer[rstate]
}

type rstate struct {
	e    entry
	rev  uint64
	pres *wire.Stanza
}

var (
	_ module.Session       = (*remote)(nil)
	_ module.SessionValues = (*remote)(nil)
	_ module.HeldSender    = (*remote)(nil)
)

func (r *remote) state() *rstate { return r.st.Load() }

func (r *remote) JID() jid.JID   { return r.full }
func (r *remote) ConnID() string { return r.state().e.Conn }

// Node is the node the session is bound on.
func (r *remote) Node() string { return r.state().e.Node }

func (r *remote) Presence() *wire.Stanza { return r.state().pres }

func (r *remote) Priority() int {
	st := r.state()
	if st.pres == nil {
		return 0
	}
	return st.e.Prio
}

func (r *remote) Flags() module.Flags { return module.Flags(r.state().e.Flags) }

// Send carries st to the owning node, which hands it to the session.
func (r *remote) Send(st *wire.Stanza) error { return r.SendAfter(st, module.Barrier{}) }

// SendAfter implements module.HeldSender: st is sent once b's writes are
// committed (store before forward) without making the caller wait, so the
// sender's stream reads on as it does for a session on its own node.
// Stanzas for one session stay in order: while one waits, those after it
// queue behind it (one queue per shard of sessions). A session that moved
// here gets st in its own queue once nothing of it waits in this one (a
// move here waits for that: see Node.afterQueued), behind what was routed
// to it before.
func (r *remote) SendAfter(st *wire.Stanza, b module.Barrier) error {
	q := &r.n.outq[r.shard]
	q.mu.Lock()
	if q.keys[r.key] == 0 {
		if conn, ok := r.n.boundHere(r); ok {
			q.mu.Unlock()
			if s, ok := r.n.router.LocalSession(r.full, conn).(module.HeldSender); ok {
				return s.SendAfter(st, b)
			}
			return module.ErrNoSession
		}
		if len(q.items) == 0 && !q.running && b.Passed() {
			q.mu.Unlock()
			return r.send(st)
		}
	}
	if len(q.items) >= maxOutQueue {
		// Back-pressure rather than unbounded memory.
		q.mu.Unlock()
		if b.Wait(context.Background()) != nil {
			return nil
		}
		return r.send(st)
	}
	q.items = append(q.items, outItem{r: r, st: st, after: b})
	if q.keys == nil {
		q.keys = map[string]int{}
	}
	q.keys[r.key]++
	if !q.running {
		q.running = true
		go r.n.drainOut(q)
	}
	q.mu.Unlock()
	return nil
}

// maxOutQueue bounds the stanzas of one shard waiting for their writes.
const maxOutQueue = 1 << 16

const outShards = 16

// outQueue holds stanzas for sessions of other nodes whose writes are not
// committed yet; a goroutine runs only while it is not empty.
type outQueue struct {
	mu      sync.Mutex
	items   []outItem
	running bool
	// keys counts, per session (registry key), the items not yet sent;
	// idle holds who waits for a count to reach zero.
	keys map[string]int
	idle map[string][]chan struct{}
}

type outItem struct {
	r     *remote
	st    *wire.Stanza
	after module.Barrier
}

func (n *Node) drainOut(q *outQueue) {
	for {
		q.mu.Lock()
		if len(q.items) == 0 {
			q.running = false
			q.items = nil
			q.mu.Unlock()
			return
		}
		it := q.items[0]
		q.items = q.items[1:]
		q.mu.Unlock()
		if it.after.Wait(context.Background()) == nil && it.r.send(it.st) != nil {
			// The session's node went away meanwhile: as for a resource
			// that is gone (another resource or offline storage).
			it.r.n.router.Deliver(context.Background(), it.r.full, "", it.st)
		}
		// (Not stored: the sender was told, nothing went out.)
		q.mu.Lock()
		if q.keys[it.r.key]--; q.keys[it.r.key] <= 0 {
			delete(q.keys, it.r.key)
			for _, ch := range q.idle[it.r.key] {
				close(ch)
			}
			delete(q.idle, it.r.key)
		}
		q.mu.Unlock()
	}
}

// afterQueued runs f once none of the stanzas this node queued for the
// session key (waiting for their writes) is still to be sent, or once t
// fires (false), under the queue's lock: a send that finds the queue
// empty for key afterwards sees what f did.
func (n *Node) afterQueued(key string, t <-chan time.Time, f func()) bool {
	q := &n.outq[shardOf(key)]
	for {
		q.mu.Lock()
		if q.keys[key] == 0 {
			f()
			q.mu.Unlock()
			return true
		}
		ch := make(chan struct{})
		if q.idle == nil {
			q.idle = map[string][]chan struct{}{}
		}
		q.idle[key] = append(q.idle[key], ch)
		q.mu.Unlock()
		select {
		case <-ch:
		case <-t:
			q.mu.Lock()
			f()
			q.mu.Unlock()
			return false
		}
	}
}

// boundHere reports whether the session r names has moved to this node
// and is bound here (no longer being handed over), with its connection.
func (n *Node) boundHere(r *remote) (conn string, ok bool) {
	n.registry.mu.RLock()
	cur := n.registry.byKey[r.key]
	n.registry.mu.RUnlock()
	if cur == nil {
		return "", false
	}
	e := cur.state().e
	if e.Node != n.cfg.Node || e.Boot != n.boot || n.pending.has(e.Conn) {
		return "", false
	}
	return e.Conn, true
}

// send publishes st to the session's node. It goes by the registry as it
// is now (the router may hold this value since before the session moved),
// under the send barrier (see onMoved).
func (r *remote) send(st *wire.Stanza) error {
	r.n.sendBarrier.RLock()
	cur := r
	r.n.registry.mu.RLock()
	if c := r.n.registry.byKey[r.key]; c != nil {
		cur = c
	}
	r.n.registry.mu.RUnlock()
	e := cur.state().e
	if e.Node == r.n.cfg.Node && e.Boot == r.n.boot && !r.n.pending.has(e.Conn) {
		// It moved here and is bound: deliver it here (outside the
		// barrier: delivery may route again).
		r.n.sendBarrier.RUnlock()
		r.n.router.Deliver(context.Background(), r.full, e.Conn, st)
		return nil
	}
	defer r.n.sendBarrier.RUnlock()
	if !r.n.reachableRemote(&e) {
		return module.ErrNoSession
	}
	return r.n.publish(e.Node, kindDeliver, r.full.String(), e.Conn, st.Raw, nil)
}

// SetPresence asks the owning node to set the session's presence (the
// registry entry follows from there).
func (r *remote) SetPresence(st *wire.Stanza) {
	e := r.state().e
	if !r.n.alive(&e) {
		return
	}
	var raw []byte
	if st != nil {
		raw = st.Raw
	}
	_ = r.n.publish(e.Node, kindPresence, r.full.String(), e.Conn, raw, nil)
}

// SetFlags asks the owning node to change the session's flags.
func (r *remote) SetFlags(set, clear module.Flags) {
	e := r.state().e
	if !r.n.alive(&e) {
		return
	}
	_ = r.n.publish(e.Node, kindFlags, r.full.String(), e.Conn, nil, map[string]string{
		hdrSet: strconv.FormatUint(uint64(set), 10), hdrClear: strconv.FormatUint(uint64(clear), 10)})
}

// Value implements module.SessionValues from the replicated entry.
func (r *remote) Value(key string) []byte { return r.state().e.Values[key] }

// SetValue asks the owning node to set a value of the session (the
// registry entry follows from there).
func (r *remote) SetValue(key string, v []byte) {
	e := r.state().e
	if !r.n.alive(&e) {
		return
	}
	_ = r.n.publish(e.Node, kindValue, r.full.String(), e.Conn, v, map[string]string{hdrKey: key})
}

// Close asks the owning node to close the session and waits until it has
// (so that, for a conflict, the old session's end is announced before the
// new one's presence, as on one node).
func (r *remote) Close(se *wire.StreamError) {
	e := r.state().e
	if !r.n.alive(&e) {
		return
	}
	req := rpcRequest{Op: opClose, Full: r.full.String(), Conn: e.Conn, Rev: r.n.horizon()}
	if se != nil {
		req.Cond, req.Text = se.Condition, se.Text
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := r.n.call(ctx, e.Node, req); err != nil {
		r.n.log.Warn("cluster: closing a session on another node failed", "jid", r.full.String(), "peer", e.Node, "err", err)
	}
}

func shardOf(key string) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	return int(h.Sum32() % outShards)
}
