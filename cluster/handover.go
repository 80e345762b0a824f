package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/sm"
	"github.com/parley-xmpp/parley/wire"
)

// Resumption on another node (XEP-0198 across a cluster). The client's
// TCP connection dropped and the load balancer sends its <resume/> to a
// node that does not hold the session. That node (the new one) finds the
// session's registry entry by the digest of previd and asks the node
// holding it (the old one) to hand it over:
//
//  1. the new node holds, in order, what arrives for its new connection id;
//  2. the old node rewrites the registry entry to the new node and
//     connection (compare-and-set), detaches the session, lets its writer
//     finish (everything queued before is in the unacknowledged queue) and
//     answers with the session's state; stanzas sent to it afterwards, or
//     arriving over the bus for the old connection, are forwarded;
//  3. the new node builds the session, replays what the client did not
//     acknowledge, then releases what it held.
//
// Each stanza is thus delivered once: in the replayed queue or after it.
// When the old node is dead the session is gone: <item-not-found/>, and
// the client catches up through MAM and offline storage.

// Handoff is the client side of hand-overs (c2s.Server).
type Handoff interface {
	// HandOver detaches the resumable session previd of bare. claim runs
	// once the session is found and before it is detached: it moves the
	// registry entry, and an error keeps the session here. forward gets
	// what is sent to the session after it left.
	HandOver(ctx context.Context, previd, bare string, claim func(s module.Session) error,
		forward func(st *wire.Stanza)) (*sm.Handover, error)
}

// ErrNotFound: no node holds a session for that resumption id.
var ErrNotFound = sm.ErrUnknownID

// moves remembers where sessions that left this node went, for stanzas
// still on their way here.
type moves struct {
	mu sync.Mutex
	m  map[string]moved // old connection id → new place
}

type moved struct {
	node, conn string
	until      time.Time
}

func (m *moves) init() { m.m = map[string]moved{} }

func (m *moves) add(conn, node, newConn string) {
	m.mu.Lock()
	m.m[conn] = moved{node: node, conn: newConn, until: time.Now().Add(2 * time.Minute)}
	m.mu.Unlock()
}

func (m *moves) get(conn string) (moved, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.m[conn]
	return v, ok
}

func (m *moves) expire() {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	for k, v := range m.m {
		if now.After(v.until) {
			delete(m.m, k)
		}
	}
}

// pendingAttach holds stanzas for connections whose session is being
// handed over to this node, until it is attached.
type pendingAttach struct {
	mu sync.Mutex
	m  map[string][]*wire.Stanza
}

// maxHeld bounds what is held for one hand-over.
const maxHeld = 10000

func (p *pendingAttach) init() { p.m = map[string][]*wire.Stanza{} }

func (p *pendingAttach) add(conn string) {
	p.mu.Lock()
	p.m[conn] = []*wire.Stanza{}
	p.mu.Unlock()
}

func (p *pendingAttach) has(conn string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.m[conn]
	return ok
}

// hold keeps st when conn is being handed over here.
func (p *pendingAttach) hold(conn string, st *wire.Stanza) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	l, ok := p.m[conn]
	if !ok {
		return false
	}
	if len(l) < maxHeld {
		p.m[conn] = append(l, st)
	} else {
		busDropped.WithLabelValues("handover-overflow").Inc()
	}
	return true
}

// release ends holding for conn, passing what was held to deliver in
// order; stanzas arriving meanwhile wait for it.
func (p *pendingAttach) release(conn string, deliver func(st *wire.Stanza)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, st := range p.m[conn] {
		deliver(st)
	}
	delete(p.m, conn)
}

// TakeOver asks the node holding the resumable session previd of bare to
// hand it over to this node's connection conn. It returns ErrNotFound when
// no live node holds it. On success the caller binds the session and
// then calls Attached(conn).
func (n *Node) TakeOver(ctx context.Context, previd, bare, conn string) (*sm.Handover, error) {
	start := time.Now()
	r := n.findResumable(bare, previd)
	if r == nil {
		handovers.WithLabelValues("in", "not-found").Inc()
		return nil, ErrNotFound
	}
	e := r.state().e
	if !n.alive(&e) {
		handovers.WithLabelValues("in", "not-found").Inc()
		return nil, ErrNotFound
	}
	n.pending.add(conn)
	rep, err := n.call(ctx, e.Node, rpcRequest{Op: opHandover, Bare: bare, PrevID: previd, Rev: n.horizon(),
		NewNode: n.cfg.Node, NewBoot: n.boot, NewConn: conn})
	var h sm.Handover
	if err == nil {
		err = json.Unmarshal(rep.Handover, &h)
	}
	if err != nil {
		n.Attached(conn)
		if errors.Is(err, errNotFound) {
			handovers.WithLabelValues("in", "not-found").Inc()
			return nil, ErrNotFound
		}
		handovers.WithLabelValues("in", "error").Inc()
		n.log.Warn("cluster: session hand-over failed", "peer", e.Node, "err", err)
		return nil, err
	}
	if rep.Rev > 0 {
		n.waitApplied(rep.Rev, 2*time.Second)
	}
	handovers.WithLabelValues("in", "ok").Inc()
	n.log.Info("cluster: session handed over", "jid", h.JID, "peer", e.Node, "took", time.Since(start))
	return &h, nil
}

// Attached releases what arrived for conn during its hand-over: the
// session is bound here now (or the hand-over failed and it goes where
// undeliverable stanzas go).
func (n *Node) Attached(conn string) {
	n.pending.release(conn, func(st *wire.Stanza) {
		to, err := jid.Parse(st.To)
		if err != nil {
			return
		}
		n.router.Deliver(context.Background(), to, conn, st)
	})
}

func (n *Node) rpcHandover(req rpcRequest) rpcReply {
	if n.c2s == nil {
		return rpcReply{NotFound: true}
	}
	ctx, cancel := context.WithTimeout(n.ctx, 10*time.Second)
	defer cancel()
	var rev uint64
	var full jid.JID
	claim := func(s module.Session) error {
		k := keyOf(s.JID())
		mu := n.lockKey(k)
		mu.Lock()
		defer mu.Unlock()
		n.registry.mu.RLock()
		m, ok := n.registry.mine[k]
		n.registry.mu.RUnlock()
		if !ok || m.s != s {
			return ErrNotFound
		}
		e := n.entryFor(s)
		e.Node, e.Boot, e.Conn = req.NewNode, req.NewBoot, req.NewConn
		val, _ := json.Marshal(e)
		nrev, err := n.kv.Update(ctx, k, val, m.rev)
		if err != nil {
			return err
		}
		registryWrites.WithLabelValues("handover").Inc()
		n.apply(k, &e, nrev, false)
		n.registry.mu.Lock()
		delete(n.registry.mine, k)
		n.registry.mu.Unlock()
		n.moves.add(s.ConnID(), req.NewNode, req.NewConn)
		rev, full = nrev, s.JID()
		return nil
	}
	forward := func(st *wire.Stanza) {
		_ = n.publish(req.NewNode, kindDeliver, full.String(), req.NewConn, st.Raw, nil)
	}
	h, err := n.c2s.HandOver(ctx, req.PrevID, req.Bare, claim, forward)
	switch {
	case errors.Is(err, ErrNotFound):
		handovers.WithLabelValues("out", "not-found").Inc()
		return rpcReply{NotFound: true}
	case err != nil:
		handovers.WithLabelValues("out", "error").Inc()
		return rpcReply{Err: err.Error()}
	}
	b, _ := json.Marshal(h)
	handovers.WithLabelValues("out", "ok").Inc()
	n.log.Info("cluster: session moved", "jid", h.JID, "to", req.NewNode)
	return rpcReply{Handover: b, Rev: rev}
}
