package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

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
// handed over to this node, until it is attached. What the old node
// forwards (stanzas that reached it on their way to the session) is kept
// apart from what other nodes sent straight here once they knew of the
// move: each sender's stanzas through the old node are older than its
// direct ones, so the first go first. The old node says when its forward
// stream is finished (every live node has confirmed that it sends here
// now, and what it sent there before was forwarded).
type pendingAttach struct {
	mu sync.Mutex
	m  map[string]*incoming
}

type incoming struct {
	old      string         // the node handing the session over
	key      string         // the session's registry key
	fromOld  []*wire.Stanza // forwarded by it (older)
	direct   []*wire.Stanza // sent here by the others (and by this node to itself)
	finished chan struct{}  // closed when the old node's forwards are done
	done     bool
	// routed: this node routes stanzas for the session through its own
	// bus subject (held here with the others) rather than to the session
	// directly, until release starts.
	routed  bool
	flushed chan struct{} // closed when this node's own bus traffic is in
}

// maxHeld bounds what is held for one hand-over.
const maxHeld = 10000

// finishWait bounds how long an attached session waits for the old node's
// forward stream to finish (a node that does not confirm in time has
// stopped routing anyway).
const finishWait = 3 * time.Second

func (p *pendingAttach) init() { p.m = map[string]*incoming{} }

func (p *pendingAttach) add(conn, old, key string) {
	p.mu.Lock()
	p.m[conn] = &incoming{old: old, key: key, finished: make(chan struct{}), routed: true, flushed: make(chan struct{})}
	p.mu.Unlock()
}

// has reports whether stanzas for conn are routed through the bus to be
// held here.
func (p *pendingAttach) has(conn string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	in, ok := p.m[conn]
	return ok && in.routed
}

// hold keeps st, sent by node from, when conn is being handed over here.
func (p *pendingAttach) hold(conn, from string, st *wire.Stanza) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	in, ok := p.m[conn]
	if !ok {
		return false
	}
	if len(in.fromOld)+len(in.direct) >= maxHeld {
		busDropped.WithLabelValues("handover-overflow").Inc()
		return true
	}
	if from == in.old {
		in.fromOld = append(in.fromOld, st)
	} else {
		in.direct = append(in.direct, st)
	}
	return true
}

// flushed records that this node's own bus messages for conn, sent before
// release began, have arrived.
func (p *pendingAttach) flushed(conn string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if in, ok := p.m[conn]; ok {
		select {
		case <-in.flushed:
		default:
			close(in.flushed)
		}
	}
}

// finish records that the old node's forward stream for conn is done.
func (p *pendingAttach) finish(conn string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if in, ok := p.m[conn]; ok && !in.done {
		in.done = true
		close(in.finished)
	}
}

// releaseHeld ends holding for conn once the old node's forwards are
// done (or finishWait passed), passing what was held to deliver in order:
// the forwarded stanzas, then the direct ones. Stanzas arriving later, and
// those this node routes to the session meanwhile, go to the session
// directly, which keeps them behind what is released here; so before
// releasing it waits for what it sent itself over the bus.
func (n *Node) releaseHeld(conn string, deliver func(st *wire.Stanza)) bool {
	p := &n.pending
	p.mu.Lock()
	in, ok := p.m[conn]
	p.mu.Unlock()
	if !ok {
		return true
	}
	t := time.NewTimer(finishWait)
	defer t.Stop()
	finished := true
	select {
	case <-in.finished:
	case <-t.C:
		handoverFinishTimeouts.Inc()
		finished = false
	}
	// From now on this node delivers to the session here; what it sent
	// through its bus before (sends still under way included: the
	// barrier) comes back before the flush marker. What it queued for the
	// session while it was on the old node (stanzas waiting for their
	// writes) goes through the bus first: delivered here directly it
	// would overtake what its senders routed to the session here since.
	wait := time.NewTimer(finishWait)
	defer wait.Stop()
	if !n.afterQueued(in.key, wait.C, func() {
		p.mu.Lock()
		in.routed = false
		p.mu.Unlock()
	}) {
		handoverFinishTimeouts.Inc()
		finished = false
	}
	n.sendBarrier.Lock()
	n.sendBarrier.Unlock() //nolint:staticcheck // an empty critical section is the barrier
	if n.publish(n.cfg.Node, kindFlush, "", conn, nil, nil) == nil {
		// A timer of its own: t may have fired already (and its channel
		// been read), and the flush may never come back when NATS is gone.
		ft := time.NewTimer(finishWait)
		defer ft.Stop()
		select {
		case <-in.flushed:
		case <-ft.C:
			handoverFinishTimeouts.Inc()
			finished = false
		}
	}
	// Once the entry is gone, stanzas for conn go to the session, which
	// puts them behind these (c2s: arrive). deliver runs unlocked: for a
	// failed hand-over it routes, which may queue for other nodes (lock
	// order: outgoing queue, then this one).
	p.mu.Lock()
	held := append(in.fromOld, in.direct...)
	delete(p.m, conn)
	p.mu.Unlock()
	for _, st := range held {
		deliver(st)
	}
	return finished
}

// markers collects, on the node a session left, the confirmations of the
// other nodes that they route to its new place (each sent after what they
// had sent here before, on the same connection).
type markers struct {
	mu sync.Mutex
	m  map[string]*markerWait // old connection id → wait
}

type markerWait struct {
	need       map[string]bool // nodes still to confirm
	node, conn string          // where the session went
	full       string
	once       sync.Once
	timer      *time.Timer
}

func (m *markers) init() { m.m = map[string]*markerWait{} }

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
	// The entry as the bucket has it now, not as this node's watch has
	// applied it: the client resumes here as soon as the previous move
	// answered, and a watch running behind names the node the session
	// left, which no longer knows it (<item-not-found/> for a live
	// session).
	e, ok := n.currentEntry(ctx, r)
	if !ok || e.Resume != resumeDigest(previd) || e.Node == n.cfg.Node || n.deadEntry(&e) {
		// Not "unreachable" (three heartbeats): on a loaded machine a
		// late heartbeat would refuse a live session; a node that is
		// gone does not answer the request.
		handovers.WithLabelValues("in", "not-found").Inc()
		return nil, ErrNotFound
	}
	n.pending.add(conn, e.Node, r.key)
	rep, err := n.call(ctx, e.Node, rpcRequest{Op: opHandover, Bare: bare, PrevID: previd, Rev: n.horizon(),
		NewNode: n.cfg.Node, NewBoot: n.boot, NewConn: conn})
	var h sm.Handover
	if err == nil {
		err = json.Unmarshal(rep.Handover, &h)
	}
	if err != nil {
		n.pending.finish(conn)
		n.Attached(conn, nil)
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

// currentEntry reads r's entry from the bucket (and applies it), false
// when the session is gone. When the bucket cannot be read it falls back
// on the replicated entry.
func (n *Node) currentEntry(ctx context.Context, r *remote) (entry, bool) {
	kve, err := n.kv.Get(ctx, r.key)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted):
		return entry{}, false
	case err != nil:
		registryErrors.Inc()
		return r.state().e, true
	}
	var e entry
	if json.Unmarshal(kve.Value(), &e) != nil {
		return entry{}, false
	}
	n.apply(r.key, &e, kve.Revision(), false)
	return e, true
}

// Attached releases what arrived for conn during its hand-over, once the
// old node has finished forwarding: the session is bound here now and
// deliver hands it stanzas in order, ahead of anything routed to it
// meanwhile (nil: the hand-over failed, they go where undeliverable
// stanzas go).
func (n *Node) Attached(conn string, deliver func(*wire.Stanza)) {
	finished := n.releaseHeld(conn, func(st *wire.Stanza) {
		if deliver != nil {
			deliver(st)
			return
		}
		to, err := jid.Parse(st.To)
		if err != nil {
			return
		}
		n.router.Deliver(context.Background(), to, conn, st)
	})
	if !finished && deliver != nil {
		n.log.Warn("cluster: the node a session came from did not end its forwards in time", "conn", conn)
	}
}

func (n *Node) rpcHandover(req rpcRequest) rpcReply {
	if n.c2s == nil {
		return rpcReply{NotFound: true}
	}
	ctx, cancel := context.WithTimeout(n.ctx, 10*time.Second)
	defer cancel()
	var rev uint64
	var full jid.JID
	var oldConn string
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
		rev, full, oldConn = nrev, s.JID(), s.ConnID()
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
	n.collectMarkers(oldConn, req.NewNode, req.NewConn, full.String(), rev)
	b, _ := json.Marshal(h)
	handovers.WithLabelValues("out", "ok").Inc()
	n.log.Info("cluster: session moved", "jid", h.JID, "to", req.NewNode)
	return rpcReply{Handover: b, Rev: rev}
}

// collectMarkers runs on the node a session left (its old connection
// oldConn) once the registry names its new place (revision rev): it asks
// every other live node to confirm that it routes there now, and when all
// did (or finishWait passed) tells the new node that nothing more will be
// forwarded. A confirmation arrives after everything its sender had sent
// here, on the same ordered bus subject, so the stanzas it forwards reach
// the new node before the end of the stream.
func (n *Node) collectMarkers(oldConn, node, conn, full string, rev uint64) {
	w := &markerWait{need: map[string]bool{}, node: node, conn: conn, full: full}
	for _, p := range n.Peers() {
		if p.Alive {
			w.need[p.Node] = true
		}
	}
	if len(w.need) == 0 {
		n.finishMove(oldConn, w, "ok")
		return
	}
	w.timer = time.AfterFunc(finishWait-500*time.Millisecond, func() {
		n.markers.mu.Lock()
		var missing []string
		for p := range w.need {
			missing = append(missing, p)
		}
		n.markers.mu.Unlock()
		n.log.Warn("cluster: nodes did not confirm a session move in time", "jid", full, "nodes", missing)
		n.finishMove(oldConn, w, "timeout")
	})
	n.markers.mu.Lock()
	n.markers.m[oldConn] = w
	n.markers.mu.Unlock()
	m := nats.NewMsg(n.subject("moved"))
	m.Header.Set(hdrFrom, n.cfg.Node)
	m.Header.Set(hdrConn, oldConn)
	m.Header.Set(hdrRev, strconv.FormatUint(rev, 10))
	if err := n.nc.PublishMsg(m); err != nil {
		n.finishMove(oldConn, w, "timeout")
	}
}

// onMarker handles a node's confirmation for a moved session (on this
// node's bus goroutine, after what that node sent before).
func (n *Node) onMarker(from, oldConn string) {
	n.markers.mu.Lock()
	w := n.markers.m[oldConn]
	complete := false
	if w != nil {
		delete(w.need, from)
		complete = len(w.need) == 0
	}
	n.markers.mu.Unlock()
	if complete {
		n.finishMove(oldConn, w, "ok")
	}
}

func (n *Node) finishMove(oldConn string, w *markerWait, how string) {
	w.once.Do(func() {
		if w.timer != nil {
			w.timer.Stop()
		}
		n.markers.mu.Lock()
		if n.markers.m[oldConn] == w {
			delete(n.markers.m, oldConn)
		}
		n.markers.mu.Unlock()
		handoverFinish.WithLabelValues(how).Inc()
		_ = n.publish(w.node, kindFinished, w.full, w.conn, nil, nil)
	})
}

// onMoved answers another node's request for a confirmation: once this
// node's registry names the session's new place and no send that read
// the old one is still under way, it sends the confirmation after
// everything it sent before.
func (n *Node) onMoved(m *nats.Msg) {
	from := m.Header.Get(hdrFrom)
	if from == "" || from == n.cfg.Node {
		return
	}
	rev, _ := strconv.ParseUint(m.Header.Get(hdrRev), 10, 64)
	conn := m.Header.Get(hdrConn)
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.waitApplied(rev, 2*time.Second)
		// Sends that read the registry before it changed finish first.
		n.sendBarrier.Lock()
		n.sendBarrier.Unlock() //nolint:staticcheck // an empty critical section is the barrier
		_ = n.publish(from, kindMarker, "", conn, nil, nil)
	}()
}
