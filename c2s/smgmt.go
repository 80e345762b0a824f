package c2s

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/sm"
	"github.com/parley-xmpp/parley/wire"
	"github.com/parley-xmpp/parley/xep"
)

const nsCSI = xep.NSCSI

// tombstones remember the final inbound h of ended resumable sessions, so a
// late <resume/> gets <failed h=.../> and the client knows what arrived.
type tombstones struct {
	mu sync.Mutex
	m  map[string]tomb
}

type tomb struct {
	bare string
	h    uint32
	exp  time.Time
}

func (ts *tombstones) add(id, bare string, h uint32, ttl time.Duration) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	now := time.Now()
	for k, v := range ts.m {
		if now.After(v.exp) {
			delete(ts.m, k)
		}
	}
	if len(ts.m) < 100000 {
		ts.m[id] = tomb{bare: bare, h: h, exp: now.Add(ttl)}
	}
}

func (ts *tombstones) get(id, bare string) (uint32, bool) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	t, ok := ts.m[id]
	if !ok || t.bare != bare || time.Now().After(t.exp) {
		return 0, false
	}
	return t.h, true
}

func smFailed(cond string, h *uint32) string {
	b := "<failed xmlns='" + sm.NS + "'"
	if h != nil {
		b += " h='" + strconv.FormatUint(uint64(*h), 10) + "'"
	}
	return b + "><" + cond + " xmlns='" + wire.NSStanzas + "'/></failed>"
}

// handleSMBound handles stream management and CSI nonzas after binding.
func (c *conn) handleSMBound(st *wire.Stanza) error {
	s := c.sess
	switch {
	case st.NS == sm.NS && st.Name == "enable":
		return c.sessWrite(c.enableSM(s, st.Attr("resume"), st.Attr("max")))
	case st.NS == sm.NS && st.Name == "r":
		s.mu.Lock()
		enabled := s.smq != nil
		s.mu.Unlock()
		if !enabled {
			return &wire.StreamError{Condition: wire.CondUnsupportedStanzaType, Text: "stream management is not enabled"}
		}
		// The answer counts everything routed before the <r/>, so it may
		// wait for archive commits (without holding up the reader).
		if now, h := s.ackRequested(); now {
			return c.sessWrite(ackNonza(h))
		}
		return nil
	case st.NS == sm.NS && st.Name == "a":
		h, err := strconv.ParseUint(st.Attr("h"), 10, 32)
		if err != nil {
			return &wire.StreamError{Condition: wire.CondUndefinedCondition, Text: "the h attribute must be an unsigned 32-bit integer"}
		}
		return c.ackError(s.handleAck(uint32(h)))
	case st.NS == nsCSI && (st.Name == "active" || st.Name == "inactive"):
		s.mu.Lock()
		s.inactive = st.Name == "inactive"
		s.mu.Unlock()
		if st.Name == "active" {
			s.SetFlags(0, module.FlagInactive)
			s.enqueue(outItem{flush: true})
		} else {
			s.SetFlags(module.FlagInactive, 0)
		}
		return nil
	}
	return &wire.StreamError{Condition: wire.CondUnsupportedStanzaType, Text: "unexpected <" + st.Name + "/> in " + st.NS}
}

// enableSM turns on stream management for s (XEP-0198 §3) with the
// <enable/> attributes resume and max, and returns the answer: <enabled/>
// or, when it is on already, <failed/>. Bind2 puts the answer in <bound/>.
func (c *conn) enableSM(s *session, resumeAttr, maxAttr string) string {
	s.mu.Lock()
	already := s.smq != nil
	s.mu.Unlock()
	if already {
		return smFailed("unexpected-request", nil)
	}
	// Stanzas routed before <enable/> are not counted.
	s.settled()
	resume := resumeAttr == "true" || resumeAttr == "1"
	max := c.srv.cfg.ResumeTimeout
	if v, err := strconv.Atoi(maxAttr); err == nil && v > 0 && time.Duration(v)*time.Second < max {
		max = time.Duration(v) * time.Second
	}
	reply := "<enabled xmlns='" + sm.NS + "'"
	s.mu.Lock()
	s.smq = sm.NewQueue(c.srv.cfg.MaxUnacked, c.srv.cfg.MaxUnackedBytes)
	s.hIn = 0
	if resume && max > 0 {
		s.smID = sm.NewID()
		s.smMax = max
		reply += " id='" + s.smID + "' resume='true' max='" + strconv.Itoa(int(max/time.Second)) + "'"
	}
	id := s.smID
	s.mu.Unlock()
	if id != "" {
		c.srv.smDir.Add(id, s.jid.Bare().String(), s)
		s.changed() // the cluster registry learns where to resume it
	}
	return reply + "/>"
}

func (c *conn) ackError(err error) error {
	var high *sm.ErrTooHigh
	if errors.As(err, &high) {
		return &wire.StreamError{Condition: wire.CondUndefinedCondition, Text: high.Error(),
			App: wire.NewElement(sm.NS, "handled-count-too-high", "h", strconv.FormatUint(uint64(high.H), 10),
				"send-count", strconv.FormatUint(uint64(high.Sent), 10))}
	}
	return err
}

// sessWrite writes a nonza on the session's transport, in order with the
// writer goroutine.
func (c *conn) sessWrite(b string) error { return c.sess.writeNonza(b) }

// writeNonza writes b on the session's transport (if attached), in order
// with the writer goroutine.
func (s *session) writeNonza(b string) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	t := s.transport()
	if t == nil {
		return nil
	}
	if err := t.writeRaw([]byte(b)); err != nil {
		return err
	}
	return t.flush()
}

// resume handles <resume/> on an authenticated, unbound stream.
func (c *conn) resume(st *wire.Stanza) error {
	bare := c.username + "@" + c.domain
	id := st.Attr("previd")
	h64, err := strconv.ParseUint(st.Attr("h"), 10, 32)
	if err != nil {
		return c.resumeFailed(smFailed("bad-request", nil))
	}
	s, ok := c.srv.smDir.Get(id, bare)
	if !ok && c.srv.peers != nil {
		if _, ok := c.srv.tombs.get(id, bare); !ok {
			return c.resumeFromPeer(id, uint32(h64))
		}
	}
	if !ok {
		if h, ok := c.srv.tombs.get(id, bare); ok {
			return c.resumeFailed(smFailed("item-not-found", &h))
		}
		return c.resumeFailed(smFailed("item-not-found", nil))
	}
	s.mu.Lock()
	if s.ended {
		// Ending, not yet in the tombs: its h is final (end settles it
		// before marking the session ended), and the client needs it.
		h := s.hIn
		s.mu.Unlock()
		return c.resumeFailed(smFailed("item-not-found", &h))
	}
	old := s.owner
	s.owner = nil
	if s.hibernate != nil {
		s.hibernate.Stop()
		s.hibernate = nil
	}
	s.mu.Unlock()
	if old != nil {
		// The old connection may still look alive (XEP-0198 §5): take the
		// session away from it; its reader ends without ending the session.
		old.t.close()
	}
	if err := c.ackError(s.handleAck(uint32(h64))); err != nil {
		return err
	}
	return c.attachResumed(s, id)
}

// attachResumed attaches the resumed session s to this connection: it
// replays what the client has not acknowledged, then lets the writer
// continue on the new transport.
func (c *conn) attachResumed(s *session, id string) error {
	// What the old connection routed counts once its writes are done.
	s.settled()
	s.wmu.Lock()
	s.mu.Lock()
	hIn := s.hIn
	s.t = c.t
	s.owner = c
	s.rPending = false
	unacked := s.smq.Unacked()
	// Replayed stanzas are counted again from the acknowledged point.
	s.smq = sm.NewQueueFrom(s.smq)
	q := s.smq
	s.mu.Unlock()
	werr := c.t.writeRaw([]byte(c.resumedReply(s, "<resumed xmlns='"+sm.NS+"' previd='"+wire.EscapeAttr(id)+
		"' h='"+strconv.FormatUint(uint64(hIn), 10)+"'/>")))
	for _, it := range unacked {
		rs := withDelay(it.St, it.Stamp, c.domain)
		_ = q.Push(it.St, it.Stamp)
		if werr == nil {
			werr = c.t.write(rs)
		}
	}
	if werr == nil {
		werr = c.t.flush()
	}
	s.wmu.Unlock()
	c.mu.Lock()
	c.sess = s
	c.timer.Stop()
	c.mu.Unlock()
	c.logger().Info("session resumed", "jid", s.jid.String(), "replayed", len(unacked))
	c.startPing(s)
	return werr
}

// inlineResume is a resumption asked for inside a SASL2 <authenticate/>
// (XEP-0198 §7): its outcome goes into the <success/> instead of being a
// nonza of its own.
type inlineResume struct {
	success func(s *session, resumed string) string // the <success/> holding <resumed/>
	failed  string                                  // the <failed/> when it could not be resumed
}

// resumedReply is what announces a resumption of s: <resumed/>, or the
// SASL2 <success/> holding it.
func (c *conn) resumedReply(s *session, resumed string) string {
	if c.inline != nil {
		return c.inline.success(s, resumed)
	}
	return resumed
}

// resumeFailed answers a resumption that cannot be done with failed: as a
// nonza, or kept for the SASL2 <success/>.
func (c *conn) resumeFailed(failed string) error {
	if c.inline != nil {
		c.inline.failed = failed
		return nil
	}
	return c.writeNonza(failed)
}

func (c *conn) writeNonza(b string) error {
	if err := c.t.writeRaw([]byte(b)); err != nil {
		return err
	}
	return c.t.flush()
}

// endSession is called when the connection owning s ends. It hibernates a
// resumable session after an unclean end, otherwise terminates it. The
// caller closes the transport afterwards.
func (c *conn) endSession(s *session, se *wire.StreamError, clean bool) {
	s.mu.Lock()
	if s.owner != c || s.ended {
		// Resumed on another connection meanwhile, or ended already
		// (replaced by a new session with the same resource).
		s.mu.Unlock()
		return
	}
	resumable := s.smID != "" && !clean && se == nil && !s.noResume && !c.srv.isClosing()
	if resumable {
		s.owner = nil
		s.t = nil
		s.clearAckWaitLocked() // queued stanzas fire OnStanzaQueued instead
		srv := c.srv
		s.hibernate = time.AfterFunc(s.smMax, func() {
			srv.lives.add()
			defer srv.lives.done()
			srv.terminate(s, nil)
		})
		unacked := s.smq.Len() // s.smq changes when another connection resumes s
		s.mu.Unlock()
		c.logger().Info("session hibernated", "jid", s.jid.String(), "unacked", unacked)
		c.srv.reg.FireHibernated(context.Background(), s)
		return
	}
	s.mu.Unlock()
	c.srv.terminate(s, se)
}

// terminate ends a session for good: stream closed, unacknowledged
// messages stored offline (they were archived already, so they are not
// routed again), unanswered IQs bounced, unavailable broadcast.
func (srv *Server) terminate(s *session, se *wire.StreamError) { srv.end(s, se, false) }

// replaced terminates a session that a new bind of its full JID took the
// place of in the router. The hooks run before it returns (so before the
// new session's OnBound); the new session does not wait for the old one's
// writer: what the old one did not get is rescued once its writer is
// done, in the background.
func (srv *Server) replaced(s *session, se *wire.StreamError) { srv.end(s, se, true) }

// closeWait bounds how long ending a session waits for its writer to
// write what is queued and the stream end before the connection is closed
// under it.
const closeWait = 5 * time.Second

// end does the work of terminate once per session and reports whether it
// did. replaced says the router already bound another session in its
// place, so Unbind finds nothing and the session's end is still announced.
//
// Everything the client did not get is rescued: what it did not
// acknowledge (stream management) and what was queued but never written,
// collected once the writer is done.
func (srv *Server) end(s *session, se *wire.StreamError, replaced bool) bool {
	s.settled() // the h kept for a late <resume/> counts every routed stanza
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return false
	}
	s.ended = true
	if s.hibernate != nil {
		s.hibernate.Stop()
	}
	if s.ackTimer != nil {
		s.ackTimer.Stop()
	}
	s.clearAckWaitLocked()
	q, id, h := s.smq, s.smID, s.hIn
	s.mu.Unlock()
	if id != "" {
		srv.smDir.Remove(id)
		srv.tombs.add(id, s.jid.Bare().String(), h, 2*srv.cfg.ResumeTimeout)
	}
	s.closeStream(se)
	unbound := srv.router.Unbind(s) || replaced
	ctx := context.Background()
	rescue := func() {
		srv.awaitWriter(s)
		lost := s.takeUnsent()
		if !unbound {
			return
		}
		var items []sm.Item
		if q != nil {
			items = q.Unacked()
		}
		for _, st := range lost {
			items = append(items, sm.Item{St: st, Stamp: time.Now()})
		}
		srv.rescue(ctx, s, items)
	}
	if replaced {
		srv.lives.Go(rescue)
	} else {
		rescue()
	}
	if unbound {
		srv.reg.FireUnbound(ctx, s)
	}
	return true
}

// awaitWriter waits until the session's writer has written the stream end;
// when that takes longer than closeWait, the connection is closed under it
// (its writes then fail at once).
func (srv *Server) awaitWriter(s *session) {
	select {
	case <-s.finished:
		return
	case <-time.After(closeWait):
	}
	if t := s.transport(); t != nil {
		t.close()
	}
	select {
	case <-s.finished:
	case <-time.After(closeWait):
		srv.log.Warn("session writer did not finish", "jid", s.jid.String())
	}
}

// rescue handles stanzas the client never got (or never acknowledged).
func (srv *Server) rescue(ctx context.Context, s *session, items []sm.Item) {
	for _, it := range items {
		st := it.St
		switch {
		case st.Name == "message" && xep.OfflineWorthy(st):
			ev := &module.Event{Stanza: withDelay(st, it.Stamp, s.jid.Domainpart()), To: s.jid.Bare(), Origin: module.Origin{Kind: module.FromLocal}, Rescued: true}
			ev.From, _ = jid.Parse(st.From)
			module.RunChain(ctx, srv.reg.UndeliverableHooks(), ev)
		case st.Name == "iq" && (st.Type == "get" || st.Type == "set"):
			srv.router.Bounce(ctx, st, wire.ErrRecipientUnavailable, "")
		}
	}
}
