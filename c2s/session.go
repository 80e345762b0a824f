package c2s

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/sm"
	"github.com/parley-xmpp/parley/wire"
	"github.com/parley-xmpp/parley/xep"
)

// session is a bound client session as the router and modules see it. It
// can outlive its connection: with stream management resumption it
// hibernates when the transport drops and is attached to the next
// connection that resumes it.
//
// Writes go through a writer goroutine draining out, so Send never blocks
// the router. wmu serializes the writer with resumption (which replays
// unacknowledged stanzas before anything new is written).
type session struct {
	id     string
	jid    jid.JID
	srv    *Server
	domain string
	out    chan outItem
	done   chan struct{}

	wmu sync.Mutex // held while writing to the transport

	mu        sync.Mutex
	t         transport // nil while hibernated
	owner     *conn     // the connection reading for this session, nil while hibernated
	presence  *wire.Stanza
	priority  int
	smq       *sm.Queue // nil until <enable/>
	smID      string    // resumption id, "" when not resumable
	smMax     time.Duration
	hIn       uint32 // stanzas handled from the client (XEP-0198 inbound h)
	pipe      pipeline
	rPending  bool // an <r/> is outstanding
	ackTimer  *time.Timer
	hibernate *time.Timer
	ended     bool
	inactive  bool              // XEP-0352
	held      []*wire.Stanza    // CSI: held while inactive, latest per key
	values    map[string][]byte // module.SessionValues

	// ackWait has one timer per OnAckOverdue hook, running while an <r/>
	// is outstanding; overdue marks the hooks whose time ran out. ackGen
	// changes whenever they are reset, so a timer that fires late does
	// nothing.
	ackWait []*time.Timer
	overdue []bool
	ackGen  uint64

	flags     atomic.Uint32
	closeOnce sync.Once

	// moved forwards what is sent to the session after it was handed over
	// to another node of a cluster (see cluster.go); sendMu orders that
	// with Send.
	sendMu sync.Mutex
	// closing (under sendMu): the end of the stream is queued, so Send
	// refuses, since nothing queued behind it would be written; the router
	// then stores a message offline instead of losing it.
	closing bool
	moved   func(*wire.Stanza)
}

type outItem struct {
	st    *wire.Stanza
	after module.Barrier // written only once these writes are committed
	close bool
	err   *wire.StreamError
	flush bool // CSI <active/>: write what is held
	// handover: the session moves to another node; the writer stops here
	// (everything before is in the SM queue) and closes the channel.
	handover chan struct{}
}

var (
	_ module.Session    = (*session)(nil)
	_ module.HeldSender = (*session)(nil)
)

const ackEvery = 5

func (s *session) JID() jid.JID   { return s.jid }
func (s *session) ConnID() string { return s.id }

func (s *session) Send(st *wire.Stanza) error { return s.SendAfter(st, module.Barrier{}) }

// SendAfter implements module.HeldSender: st is queued now and written
// once b's writes are committed; the writer waits for them, so what is
// queued after st waits too and the order stays. If a write failed, st is
// dropped (its sender has been told).
func (s *session) SendAfter(st *wire.Stanza, b module.Barrier) error {
	s.sendMu.Lock()
	if s.moved != nil {
		fwd := s.moved
		s.sendMu.Unlock()
		// Moved to another node: forwarded only once stored.
		if b.Wait(context.Background()) == nil {
			fwd(st)
		}
		return nil
	}
	select {
	case <-s.done:
		s.sendMu.Unlock()
		return module.ErrNoSession
	default:
	}
	if s.closing {
		s.sendMu.Unlock()
		return module.ErrNoSession
	}
	select {
	case s.out <- outItem{st: st, after: b}:
		s.sendMu.Unlock()
		stanzasOut.WithLabelValues(kindLabel(st.Name)).Inc()
		return nil
	default:
		s.sendMu.Unlock()
		// A client that cannot keep up must not stall everyone who routes
		// to it (ARCHITECTURE: never block the router).
		s.Close(&wire.StreamError{Condition: wire.CondPolicyViolation, Text: "too many stanzas queued for this client"})
		return module.ErrNoSession
	}
}

func (s *session) Presence() *wire.Stanza {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.presence
}

func (s *session) SetPresence(st *wire.Stanza) {
	prio := 0
	if st != nil {
		if p := st.Child(wire.NSClient, "priority"); p != nil {
			if v, err := strconv.Atoi(p.Text()); err == nil && v >= -128 && v <= 127 {
				prio = v
			}
		}
	}
	s.mu.Lock()
	s.presence, s.priority = st, prio
	s.mu.Unlock()
	s.changed()
}

// Value implements module.SessionValues.
func (s *session) Value(key string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.values[key]
}

// SetValue implements module.SessionValues; in a cluster the registry
// entry follows.
func (s *session) SetValue(key string, v []byte) {
	s.mu.Lock()
	if len(v) == 0 {
		if _, ok := s.values[key]; !ok {
			s.mu.Unlock()
			return
		}
		delete(s.values, key)
	} else {
		if s.values == nil {
			s.values = map[string][]byte{}
		}
		s.values[key] = append([]byte(nil), v...)
	}
	s.mu.Unlock()
	s.changed()
}

// Values returns a copy of every value (router.Valued: the cluster
// registry carries them).
func (s *session) Values() map[string][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.values) == 0 {
		return nil
	}
	out := make(map[string][]byte, len(s.values))
	for k, v := range s.values {
		out[k] = v
	}
	return out
}

func (s *session) Priority() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.priority
}

func (s *session) Flags() module.Flags { return module.Flags(s.flags.Load()) }

func (s *session) SetFlags(set, clear module.Flags) {
	for {
		old := s.flags.Load()
		n := (old | uint32(set)) &^ uint32(clear)
		if s.flags.CompareAndSwap(old, n) {
			if old != n {
				s.changed()
			}
			return
		}
	}
}

// Close ends the session's stream with err (nil for a plain close). It is
// safe to call from any goroutine, more than once.
//
// A session that a new bind of the same full JID replaced in the router
// (RFC 6120 §7.7.2.2, the caller closes it with <conflict/>) is ended for
// good at once: it can no longer be resumed, what it did not get
// acknowledged is stored offline, and OnUnbound runs before Close returns,
// so modules drop its state before the new session's OnBound.
func (s *session) Close(err *wire.StreamError) {
	if s.replaced() {
		s.srv.replaced(s, err)
		return
	}
	s.closeStream(err)
}

// replaced reports whether s is still running although the router binds
// another session to its full JID.
func (s *session) replaced() bool {
	if s.srv == nil || s.srv.router == nil {
		return false
	}
	s.mu.Lock()
	ended := s.ended
	s.mu.Unlock()
	if ended {
		return false
	}
	cur := s.srv.router.Session(s.jid)
	return cur != nil && cur != module.Session(s)
}

// closeStream queues the end of the stream behind what is queued.
func (s *session) closeStream(err *wire.StreamError) {
	s.closeOnce.Do(func() {
		s.sendMu.Lock()
		s.closing = true
		s.sendMu.Unlock()
		select {
		case s.out <- outItem{close: true, err: err}:
		default:
			// Queue full: skip what is queued and close now.
			if t := s.transport(); t != nil {
				go t.closeStream(err)
			}
		}
	})
}

func (s *session) transport() transport {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.t
}

// writeLoop writes queued stanzas, flushing whenever the queue drains.
func (s *session) writeLoop() {
	defer close(s.done)
	// broken is the transport a write failed on: nothing more is written
	// to it (stanzas stay in the SM queue for a resumption), while a
	// transport attached later by a resumption is written to.
	var broken transport
	for item := range s.out {
		if item.handover != nil {
			close(item.handover)
			return
		}
		if item.close {
			s.wmu.Lock()
			if t := s.transport(); t != nil && t != broken {
				_ = t.flush()
				t.closeStream(item.err)
			}
			s.wmu.Unlock()
			return
		}
		if item.flush {
			s.mu.Lock()
			held := s.held
			s.held = nil
			s.mu.Unlock()
			for _, st := range held {
				broken = s.writeOne(st, broken)
			}
		} else if !item.after.Empty() && item.after.Wait(context.Background()) != nil {
			stanzasUnstored.Inc()
			continue
		} else if s.hold(item.st) {
			continue
		} else {
			broken = s.writeOne(item.st, broken)
		}
		if len(s.out) == 0 {
			s.wmu.Lock()
			if t := s.transport(); t != nil && t != broken {
				if t.flush() != nil {
					broken = t
				}
			}
			s.wmu.Unlock()
			s.armAckRequest()
		}
	}
}

// writeOne counts st for stream management and writes it if a transport
// is attached that is not broken. It returns the broken transport.
func (s *session) writeOne(st *wire.Stanza, broken transport) transport {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.Lock()
	q, t := s.smq, s.t
	s.mu.Unlock()
	if q != nil {
		if err := q.Push(st, time.Now()); err != nil {
			go s.Close(&wire.StreamError{Condition: wire.CondPolicyViolation, Text: "too many unacknowledged stanzas"})
			if t != nil {
				return t
			}
			return broken
		}
	}
	if t == nil {
		// Hibernated: kept in the SM queue for resumption; modules (push)
		// may wake the device.
		s.srv.reg.FireStanzaQueued(context.Background(), s, st)
		return nil
	}
	if t == broken {
		return broken
	}
	if err := t.write(st); err != nil {
		t.close()
		return t
	}
	if q != nil {
		s.stillOverdue(st)
		if q.Len() >= ackEvery {
			s.requestAck(t)
		}
	}
	return nil
}

// requestAck sends <r/> unless one is outstanding. Caller holds wmu.
func (s *session) requestAck(t transport) {
	s.mu.Lock()
	if s.rPending {
		s.mu.Unlock()
		return
	}
	s.rPending = true
	s.armAckWaitLocked()
	s.mu.Unlock()
	_ = t.writeRaw([]byte("<r xmlns='" + sm.NS + "'/>"))
}

// armAckWaitLocked starts the OnAckOverdue timers for an <r/> being sent.
// Caller holds mu.
func (s *session) armAckWaitLocked() {
	hooks := s.srv.reg.AckOverdueHooks()
	if len(hooks) == 0 {
		return
	}
	if s.ackWait == nil {
		s.ackWait, s.overdue = make([]*time.Timer, len(hooks)), make([]bool, len(hooks))
	}
	gen := s.ackGen
	for i, h := range hooks {
		if s.ackWait[i] == nil && !s.overdue[i] {
			s.ackWait[i] = time.AfterFunc(h.After, func() { s.ackOverdue(i, h, gen) })
		}
	}
}

// clearAckWaitLocked stops the OnAckOverdue timers and forgets overdue
// state: the client answered, or the session hibernated or ended. Caller
// holds mu.
func (s *session) clearAckWaitLocked() {
	s.ackGen++
	for i, t := range s.ackWait {
		if t != nil {
			t.Stop()
			s.ackWait[i] = nil
		}
		s.overdue[i] = false
	}
}

// ackOverdue runs when hook i's time for an answer to <r/> ran out.
func (s *session) ackOverdue(i int, h module.AckOverdueHook, gen uint64) {
	s.mu.Lock()
	if gen != s.ackGen || s.ended || s.t == nil || !s.rPending || s.smq == nil {
		s.mu.Unlock()
		return
	}
	s.ackWait[i] = nil
	s.overdue[i] = true
	q := s.smq
	s.mu.Unlock()
	items := q.Unacked()
	if len(items) == 0 {
		return
	}
	sts := make([]*wire.Stanza, len(items))
	for j, it := range items {
		sts[j] = it.St
	}
	h.F(context.Background(), s, sts)
}

// stillOverdue passes st, just sent, to the OnAckOverdue hooks whose ack
// request is overdue.
func (s *session) stillOverdue(st *wire.Stanza) {
	s.mu.Lock()
	var late []module.AckOverdueHook
	for i, o := range s.overdue {
		if o {
			late = append(late, s.srv.reg.AckOverdueHooks()[i])
		}
	}
	s.mu.Unlock()
	for _, h := range late {
		h.F(context.Background(), s, []*wire.Stanza{st})
	}
}

// armAckRequest asks for an ack after a quiet period when stanzas are
// still unacknowledged, so the server learns about a dead connection even
// when the client sends nothing.
func (s *session) armAckRequest() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.smq == nil || s.smq.Len() == 0 || s.rPending || s.ackTimer != nil {
		return
	}
	s.ackTimer = time.AfterFunc(s.srv.cfg.AckQuiet, func() {
		s.mu.Lock()
		s.ackTimer = nil
		s.mu.Unlock()
		s.wmu.Lock()
		defer s.wmu.Unlock()
		if t := s.transport(); t != nil && s.smq.Len() > 0 {
			s.requestAck(t)
			_ = t.flush()
		}
	})
}

// handleAck processes the client's <a h=/>.
func (s *session) handleAck(h uint32) error {
	s.mu.Lock()
	q := s.smq
	s.rPending = false
	s.clearAckWaitLocked()
	s.mu.Unlock()
	if q == nil {
		return nil
	}
	return q.Ack(h)
}

// hold implements XEP-0352: while the client is inactive, presence, chat
// states and PEP notifications wait (only the latest per sender and kind);
// anything important flushes them first.
func (s *session) hold(st *wire.Stanza) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.inactive {
		return false
	}
	key, holdable := csiKey(st)
	if !holdable {
		if len(s.held) > 0 {
			held := s.held
			s.held = nil
			s.mu.Unlock()
			for _, h := range held {
				s.writeOne(h, nil)
			}
			s.mu.Lock()
		}
		return false
	}
	for i, h := range s.held {
		if k, _ := csiKey(h); k == key {
			s.held = append(s.held[:i:i], s.held[i+1:]...)
			break
		}
	}
	s.held = append(s.held, st)
	return true
}

// csiKey says whether st can wait while the client is inactive, and what
// newer stanza replaces it.
func csiKey(st *wire.Stanza) (string, bool) {
	switch st.Name {
	case "presence":
		if st.Type == "" || st.Type == "unavailable" {
			return "p\x00" + st.From, true
		}
	case "message":
		if xep.HasBody(st) || xep.IsEncrypted(st) || st.Child(xep.NSHints, "store") != nil || st.Type == "error" {
			return "", false
		}
		if xep.IsChatStateOnly(st) {
			return "cs\x00" + st.From, true
		}
		if ev := st.Child(xep.NSPubSubEvent, "event"); ev != nil {
			node := ev.Child(xep.NSPubSubEvent, "items").AttrValue("node")
			return "pep\x00" + st.From + "\x00" + node, true
		}
	}
	return "", false
}

// withDelay marks a resent stanza with when it was first queued.
func withDelay(st *wire.Stanza, stamp time.Time, from string) *wire.Stanza {
	if st.Name != "message" && st.Name != "presence" {
		return st
	}
	if st.Child(xep.NSDelay, "delay") != nil {
		return st
	}
	return st.WithChild(wire.NewElement(xep.NSDelay, "delay", "from", from, "stamp", stamp.UTC().Format("2006-01-02T15:04:05.000Z")))
}
