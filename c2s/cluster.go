package c2s

import (
	"context"
	"errors"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/sm"
	"github.com/parley-xmpp/parley/wire"
)

// Peers reaches the other nodes of a cluster for stream resumption: a
// client may resume (XEP-0198) on another node than the one holding its
// session (package cluster implements it).
type Peers interface {
	// TakeOver asks the node holding the resumable session previd of bare
	// to hand it over to this node's connection conn; sm.ErrUnknownID
	// when no live node holds it. Stanzas for conn are held until
	// Attached(conn).
	TakeOver(ctx context.Context, previd, bare, conn string) (*sm.Handover, error)
	// Attached releases what arrived for conn while it was taken over,
	// once the old node forwards nothing more, handing it to deliver in
	// order (nil: the session could not be bound; it goes where
	// undeliverable stanzas go).
	Attached(conn string, deliver func(*wire.Stanza))
}

// SetPeers makes the server one node of a cluster.
func (srv *Server) SetPeers(p Peers) { srv.peers = p }

// ResumeID implements router.Resumable.
func (s *session) ResumeID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.smID
}

// changed tells the router (and so the cluster registry) that presence,
// flags or resumability changed.
func (s *session) changed() {
	if s.srv != nil && s.srv.router != nil {
		s.srv.router.Changed(s)
	}
}

// handoverTimeout bounds a hand-over between nodes.
const handoverTimeout = 10 * time.Second

// resumeFromPeer resumes a session held by another node of the cluster:
// it takes it over, binds it here and attaches it to this connection.
func (c *conn) resumeFromPeer(id string, h uint32) error {
	bare := c.username + "@" + c.domain
	ctx, cancel := context.WithTimeout(ctx, handoverTimeout)
	ho, err := c.srv.peers.TakeOver(ctx, id, bare, c.id)
	cancel()
	if err != nil {
		if !errors.Is(err, sm.ErrUnknownID) {
			c.logger().Warn("resumption on another node failed", "err", err)
		}
		return c.resumeFailed(smFailed("item-not-found", nil))
	}
	s, err := c.srv.adopt(ho, c)
	if err == nil {
		_, err = c.srv.router.Bind(s)
	}
	if err != nil {
		// The session was handed over but cannot live here: what it held
		// is stored like the unacknowledged stanzas of an ended session.
		c.logger().Warn("cannot bind a session handed over by another node", "err", err)
		c.srv.rescue(context.Background(), s, s.smq.Unacked())
		c.srv.peers.Attached(c.id, nil)
		return c.resumeFailed(smFailed("item-not-found", nil))
	}
	c.srv.smDir.Add(id, bare, s)
	if err := c.ackError(s.handleAck(h)); err != nil {
		s.arrive(c.srv.peers)
		c.srv.terminate(s, nil)
		return err
	}
	err = c.attachResumed(s, id)
	// The replayed queue went first; then what the old node forwarded and
	// what others sent here during the move; then what was routed to the
	// session here since it was bound.
	s.arrive(c.srv.peers)
	return err
}

// arrive ends the start of a session that came from another node: what
// the cluster held for it during the move goes before what was queued
// for it here since it was bound, then it writes.
func (s *session) arrive(p Peers) {
	var held []outItem
	p.Attached(s.id, func(st *wire.Stanza) { held = append(held, outItem{st: st}) })
	s.qmu.Lock()
	for _, it := range held {
		s.qbytes += queuedSize(it.st)
	}
	s.queue = append(held, s.queue...)
	s.starting = false
	if len(s.queue) > 0 {
		s.startWriterLocked()
	}
	close(s.arrived)
	s.qmu.Unlock()
}

// adopt builds a session from the state another node handed over.
func (srv *Server) adopt(ho *sm.Handover, c *conn) (*session, error) {
	full, err := jid.Parse(ho.JID)
	if err != nil || full.Resourcepart() == "" {
		return nil, errors.New("c2s: handed-over session has no full JID")
	}
	// It writes nothing until arrive: what the cluster held for it
	// during the move goes first.
	s := &session{id: c.id, jid: full, srv: srv, domain: c.domain, finished: make(chan struct{}),
		smID: ho.ID, smMax: ho.Max, hIn: ho.HIn, inactive: ho.Inactive, values: ho.Values,
		starting: true, arrived: make(chan struct{})}
	s.flags.Store(ho.Flags)
	if len(ho.Presence) > 0 {
		if p, err := wire.Parse(ho.Presence, srv.limits().Limits); err == nil {
			s.SetPresence(p)
		}
	}
	for _, raw := range ho.Held {
		if st, err := wire.Parse(raw, srv.limits().Limits); err == nil {
			s.held = append(s.held, st)
			s.heldBytes += len(st.Raw)
		}
	}
	handed := 0
	for _, it := range ho.Unacked {
		handed += len(it.Raw)
	}
	q := sm.NewQueueAt(srv.cfg.MaxUnacked+len(ho.Unacked), srv.cfg.MaxUnackedBytes+handed, ho.Acked)
	for _, it := range ho.Unacked {
		st, err := wire.Parse(it.Raw, wire.Limits{MaxStanzaBytes: 16 << 20, MaxDepth: 64, MaxAttrs: 256})
		if err != nil {
			continue
		}
		_ = q.Push(st, it.Stamp)
	}
	s.smq = q
	return s, nil
}

// HandOver detaches the resumable session previd of bare so that another
// node can continue it (cluster.Handoff). claim moves its registry entry;
// from then on what is sent to the session goes to forward.
func (srv *Server) HandOver(ctx context.Context, previd, bare string, claim func(module.Session) error,
	forward func(*wire.Stanza)) (*sm.Handover, error) {
	s, ok := srv.smDir.Get(previd, bare)
	if !ok {
		return nil, sm.ErrUnknownID
	}
	s.mu.Lock()
	ended := s.ended
	s.mu.Unlock()
	if ended {
		return nil, sm.ErrUnknownID
	}
	if s.arrived != nil {
		// It came from another node a moment ago: it moves again once
		// what was held for it during that move is queued, in order.
		select {
		case <-s.arrived:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if err := claim(s); err != nil {
		return nil, err
	}
	// The session belongs to the other node now: it is neither hibernated
	// nor ended here, and nothing of it is announced.
	s.mu.Lock()
	s.ended = true
	old := s.owner
	s.owner, s.t = nil, nil
	if s.hibernate != nil {
		s.hibernate.Stop()
		s.hibernate = nil
	}
	if s.ackTimer != nil {
		s.ackTimer.Stop()
	}
	s.clearAckWaitLocked()
	s.mu.Unlock()
	srv.router.Forget(s)
	srv.smDir.Remove(previd)
	if old != nil {
		old.t.close()
	}
	// Everything queued before the move reaches the SM queue (or the CSI
	// hold) before the state is read.
	marker := make(chan struct{})
	s.qmu.Lock()
	s.moved = forward
	s.queue = append(s.queue, outItem{handover: marker})
	s.startWriterLocked()
	s.qmu.Unlock()
	select {
	case <-marker:
	case <-s.finished:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	s.wmu.Lock()
	s.mu.Lock()
	ho := &sm.Handover{JID: s.jid.String(), ID: previd, Max: s.smMax, HIn: s.hIn, Inactive: s.inactive,
		Flags: uint32(s.Flags()), Values: s.values}
	if s.presence != nil {
		ho.Presence = s.presence.Raw
	}
	for _, st := range s.held {
		ho.Held = append(ho.Held, st.Raw)
	}
	s.held, s.heldBytes = nil, 0
	q := s.smq
	s.mu.Unlock()
	s.wmu.Unlock()
	if q != nil {
		ho.Acked = q.Acked()
		for _, it := range q.Unacked() {
			ho.Unacked = append(ho.Unacked, sm.HandoverItem{Raw: it.St.Raw, Stamp: it.Stamp})
		}
	}
	srv.log.Info("session handed over to another node", "jid", ho.JID, "unacked", len(ho.Unacked))
	return ho, nil
}

// Drain moves this node's clients to the other nodes of the cluster
// before it stops (rolling upgrade); the caller closed the listeners. A
// session the client can resume (XEP-0198) loses its connection but not
// its state: the client reconnects (through the load balancer or another
// SRV target) and resumes on another node, which takes the session over.
// Other streams end with <see-other-host/> naming the address other
// returns (TCP only; "" when no other node advertises one) or else with
// <system-shutdown/>; what their clients did not get is stored offline
// as when a session ends.
func (srv *Server) Drain(other func() string) {
	srv.mu.Lock()
	conns := make([]*conn, 0, len(srv.conns))
	for c := range srv.conns {
		conns = append(conns, c)
	}
	srv.mu.Unlock()
	for _, c := range conns {
		c.drain(other)
	}
}

func (c *conn) drain(other func() string) {
	c.mu.Lock()
	sess := c.sess
	c.mu.Unlock()
	if sess != nil {
		sess.mu.Lock()
		resumable := sess.owner == c && sess.smID != "" && !sess.noResume && !sess.ended
		sess.mu.Unlock()
		if resumable {
			c.logger().Info("draining: connection closed, the session can be resumed on another node", "jid", sess.jid.String())
			drained.WithLabelValues("resumable").Inc()
			c.t.close()
			return
		}
	}
	if addr := other(); addr != "" && c.t.kind() != "websocket" {
		drained.WithLabelValues("see-other-host").Inc()
		c.fail(&wire.StreamError{Condition: wire.CondSeeOtherHost, Content: addr,
			Text: "this server is going down for maintenance; connect to " + addr})
		return
	}
	drained.WithLabelValues("shutdown").Inc()
	c.shutdown()
}
