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
// Send never blocks the router: it appends to a queue bounded in bytes and
// starts a writer goroutine when none is running. The writer drains the
// queue, flushes and exits, so an idle session has no writer goroutine and
// no write buffer (docs/adr/0012-writer-on-demand.md). wmu serializes the
// writer with resumption (which replays unacknowledged stanzas before
// anything new is written) and with nonzas the reader answers.
type session struct {
	id     string
	jid    jid.JID
	srv    *Server
	domain string

	wmu sync.Mutex // held while writing to the transport

	qmu      sync.Mutex
	queue    []outItem
	qbytes   int            // bytes of the stanzas queued or being written
	writing  bool           // a writer goroutine is running
	starting bool           // bound, but what must come first is not queued yet: no writer
	closing  bool           // the stream end is queued: Send no longer queues
	unsent   []*wire.Stanza // taken from the queue but never written: rescued
	unsentN  int            // bytes of unsent
	finished chan struct{}  // closed once the stream end was written (or could not be)
	// While the reader handles a stanza from the client (requesting), what
	// is queued is the answer the client asked for (a MAM page, its
	// offline messages) and counts as granted rather than against the
	// send queue's limit; the reader then waits (drained) until most of
	// it is written before it reads on: a client gets what it asks for at
	// the pace it reads.
	requesting bool
	req        atomic.Bool // requesting, read without qmu
	granted    int
	drained    chan struct{} // closed by the writer when granted is low again

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
	noResume  bool           // a limit ended the session: it must not hibernate
	inactive  bool           // XEP-0352
	held      []*wire.Stanza // CSI: held while inactive, latest per key
	heldBytes int
	values    map[string][]byte // module.SessionValues

	// ackWait has one timer per OnAckOverdue hook, running while an <r/>
	// is outstanding; overdue marks the hooks whose time ran out. ackGen
	// changes whenever they are reset, so a timer that fires late does
	// nothing.
	ackWait []*time.Timer
	overdue []bool
	ackGen  uint64

	flags atomic.Uint32

	// moved forwards what is sent to the session after it was handed over
	// to another node of a cluster (see cluster.go); under qmu.
	moved func(*wire.Stanza)
	// arrived is closed once a session that came from another node
	// writes (see arrive); nil for sessions bound here.
	arrived chan struct{}
}

// outItem is one entry of the send queue: a stanza, raw bytes (a nonza),
// or an instruction for the writer.
type outItem struct {
	st    *wire.Stanza
	after module.Barrier // written only once these writes are committed
	close bool
	err   *wire.StreamError
	flush bool // CSI <active/>: write what is held
	ack   bool // ask for an acknowledgement (quiet period ran out)
	// granted: queued in answer to the client's own request.
	granted bool
	// handover: the session moves to another node; the writer stops here
	// (everything before is in the SM queue) and closes the channel.
	handover chan struct{}
}

var (
	_ module.Session    = (*session)(nil)
	_ module.HeldSender = (*session)(nil)
)

const ackEvery = 5

// newSession returns a session for c that does not write until start.
func newSession(c *conn, full jid.JID) *session {
	return &session{id: c.id, jid: full, srv: c.srv, domain: c.domain, t: c.t, owner: c,
		finished: make(chan struct{}), starting: true}
}

// queueFirst puts st before everything queued (the bind result), for a
// session that has not started.
func (s *session) queueFirst(st *wire.Stanza) {
	s.qmu.Lock()
	s.queue = append([]outItem{{st: st}}, s.queue...)
	s.qbytes += queuedSize(st)
	s.qmu.Unlock()
}

// start lets the session write (what was routed to it meanwhile too).
func (s *session) start() {
	s.qmu.Lock()
	s.starting = false
	if len(s.queue) > 0 {
		s.startWriterLocked()
	}
	s.qmu.Unlock()
}

func (s *session) JID() jid.JID   { return s.jid }
func (s *session) ConnID() string { return s.id }

// Send queues st for the client. It refuses (module.ErrNoSession) once the
// end of the stream is queued, and when the client let more than the send
// queue's bytes pile up (it is then disconnected rather than allowed to
// grow the server's memory or stall the router): the router then treats
// the stanza as for a session that is gone, a message goes to another
// resource or to offline storage.
func (s *session) Send(st *wire.Stanza) error { return s.SendAfter(st, module.Barrier{}) }

// SendAfter implements module.HeldSender: st is queued now and written
// once b's writes are committed; the writer waits for them, so what is
// queued after st waits too and the order stays. If a write failed, st is
// dropped (its sender has been told). Otherwise as Send.
func (s *session) SendAfter(st *wire.Stanza, b module.Barrier) error {
	n := queuedSize(st)
	limit := s.srv.limits().SendQueueBytes
	room := requestFactor * limit
	if s.req.Load() {
		room = min(room, s.unackedRoom())
	}
	s.qmu.Lock()
	switch {
	case s.moved != nil:
		fwd := s.moved
		s.qmu.Unlock()
		// Moved to another node: forwarded only once stored.
		if b.Wait(context.Background()) == nil {
			fwd(st)
		}
		return nil
	case s.closing:
		s.qmu.Unlock()
		return module.ErrNoSession
	case s.requesting && s.qbytes+n > room:
		// An answer larger than this is refused, not the client.
		s.qmu.Unlock()
		return module.ErrNoSession
	case !s.requesting && s.qbytes-s.granted+n > limit:
		s.qmu.Unlock()
		s.limitClose(limitSendQueue, "too much data queued for this client")
		return module.ErrNoSession
	}
	s.queue = append(s.queue, outItem{st: st, after: b, granted: s.requesting})
	s.qbytes += n
	if s.requesting {
		s.granted += n
	}
	s.startWriterLocked()
	s.qmu.Unlock()
	kindOut[wire.KindIndex(st.Name)].Inc()
	return nil
}

// requestFactor bounds the answer to one request in multiples of the send
// queue's limit.
const requestFactor = 8

// beginRequest is called by the reader before it handles a stanza from
// the client, endRequest after: it waits until what the stanza made the
// server queue for the client is mostly written (or the session ends).
func (s *session) beginRequest() {
	s.qmu.Lock()
	s.requesting = true
	s.req.Store(true)
	s.qmu.Unlock()
}

func (s *session) endRequest() {
	s.qmu.Lock()
	s.requesting = false
	s.req.Store(false)
	if s.granted <= s.srv.limits().SendQueueBytes/2 {
		s.qmu.Unlock()
		return
	}
	if s.drained == nil {
		s.drained = make(chan struct{})
	}
	ch := s.drained
	s.qmu.Unlock()
	select {
	case <-ch:
	case <-s.finished:
	}
}

// unackedRoom is how many more bytes stream management may keep unacknowledged.
func (s *session) unackedRoom() int {
	s.mu.Lock()
	q := s.smq
	s.mu.Unlock()
	if q == nil {
		return int(^uint(0) >> 1)
	}
	return s.srv.cfg.MaxUnackedBytes - q.Bytes()
}

// written accounts for a stanza item leaving the queue. Caller holds qmu.
func (s *session) writtenLocked(item outItem) {
	n := queuedSize(item.st)
	s.qbytes -= n
	if item.granted {
		s.granted -= n
		if s.drained != nil && s.granted <= s.srv.limits().SendQueueBytes/2 {
			close(s.drained)
			s.drained = nil
		}
	}
}

// stanzaOverhead is what a queued stanza costs beyond its bytes (the
// Stanza, its attributes, the queue entry), so that many tiny stanzas
// count for what they hold.
const stanzaOverhead = 256

func queuedSize(st *wire.Stanza) int { return len(st.Raw) + stanzaOverhead }

// keepUnsentLocked keeps st, taken from the queue but not written, for
// rescue when the session ends. Its bytes are bounded by the queue's.
// Caller holds qmu.
func (s *session) keepUnsentLocked(st *wire.Stanza) {
	if s.unsentN+queuedSize(st) > s.srv.limits().SendQueueBytes {
		return
	}
	s.unsent = append(s.unsent, st)
	s.unsentN += queuedSize(st)
}

// takeUnsent returns what was queued but never written.
func (s *session) takeUnsent() []*wire.Stanza {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	lost := s.unsent
	s.unsent, s.unsentN = nil, 0
	return lost
}

// enqueue adds an instruction for the writer, whatever the queue holds.
func (s *session) enqueue(it outItem) {
	s.qmu.Lock()
	if !s.closing {
		s.queue = append(s.queue, it)
		s.startWriterLocked()
	}
	s.qmu.Unlock()
}

// startWriterLocked starts the writer unless it runs. Caller holds qmu.
func (s *session) startWriterLocked() {
	if !s.writing && !s.starting {
		s.writing = true
		s.srv.lives.Go(s.writeLoop)
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

// closeStream queues the end of the stream behind what is queued; the
// writer writes it once the rest is out.
func (s *session) closeStream(err *wire.StreamError) {
	if err != nil && err.Condition != wire.CondConnectionTimeout {
		// A stream error ends the session (RFC 6120 §4.9); only a
		// connection that timed out may be resumed (XEP-0198 §5).
		s.mu.Lock()
		s.noResume = true
		s.mu.Unlock()
	}
	s.qmu.Lock()
	if !s.closing {
		s.queue = append(s.queue, outItem{close: true, err: err})
		s.closing = true
		s.startWriterLocked()
	}
	s.qmu.Unlock()
}

// limitClose ends a session that hit a limit (once): it loses
// resumability, so its unacknowledged stanzas go to offline storage when it
// ends, and the stream is closed with policy-violation without waiting for
// what is queued or for a write in progress.
func (s *session) limitClose(limit, text string) {
	s.mu.Lock()
	first := !s.noResume
	s.noResume = true
	t := s.t
	hibernated := t == nil && !s.ended
	s.mu.Unlock()
	if !first {
		return
	}
	limitHits.WithLabelValues(limit).Inc()
	err := &wire.StreamError{Condition: wire.CondPolicyViolation, Text: text}
	s.closeStream(err)
	if t != nil {
		t.closeStream(err)
	}
	if hibernated {
		// Nobody reads for a hibernated session: end it here, as the
		// resume timeout would.
		s.srv.lives.Go(func() { s.srv.terminate(s, nil) })
	}
}

func (s *session) transport() transport {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.t
}

// writeLoop writes what is queued, flushing after each batch, and exits
// when the queue is empty (Send starts it again).
func (s *session) writeLoop() {
	// broken is the transport a write failed on: nothing more is written
	// to it (stanzas stay in the SM queue for a resumption), while a
	// transport attached later by a resumption is written to.
	var broken transport
	for {
		s.qmu.Lock()
		items := s.queue
		s.queue = nil
		if len(items) == 0 {
			s.writing = false
			s.qmu.Unlock()
			return
		}
		s.qmu.Unlock()
		for i, item := range items {
			switch {
			case item.close:
				s.wmu.Lock()
				if t := s.transport(); t != nil && t != broken {
					_ = t.flush()
					t.closeStream(item.err)
				}
				s.wmu.Unlock()
				// Nothing follows the stream end (closeStream queues it
				// last); the writer is done for good.
				s.qmu.Lock()
				for _, rest := range items[i+1:] {
					if rest.st != nil {
						s.writtenLocked(rest)
						s.keepUnsentLocked(rest.st)
					}
				}
				s.writing = false
				s.qmu.Unlock()
				close(s.finished)
				return
			case item.handover != nil:
				// Moved to another node: what was queued before is in the
				// SM queue (or held); Send forwards from now on.
				s.qmu.Lock()
				s.closing, s.writing = true, false
				s.qmu.Unlock()
				close(item.handover)
				close(s.finished)
				return
			case item.flush:
				for _, st := range s.takeHeld() {
					broken = s.writeOne(st, broken)
				}
			case item.ack:
				s.wmu.Lock()
				if t := s.transport(); t != nil && t != broken {
					s.mu.Lock()
					q := s.smq
					s.mu.Unlock()
					if q != nil && q.Len() > 0 {
						s.requestAck(t)
					}
				}
				s.wmu.Unlock()
			default:
				if !item.after.Empty() && item.after.Wait(context.Background()) != nil {
					stanzasUnstored.Inc()
				} else if !s.hold(item.st) {
					broken = s.writeOne(item.st, broken)
				}
				s.qmu.Lock()
				s.writtenLocked(item)
				s.qmu.Unlock()
			}
		}
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

// writeOne counts st for stream management and writes it if a transport
// is attached that is not broken. It returns the broken transport.
func (s *session) writeOne(st *wire.Stanza, broken transport) transport {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.Lock()
	q, t := s.smq, s.t
	s.mu.Unlock()
	if q != nil && !q.Push(st, time.Now()) {
		// Kept in the queue all the same: it is rescued (stored offline)
		// with the rest when the session ends.
		s.limitClose(limitUnacked, "too much data not acknowledged")
		if t != nil {
			return t
		}
		return broken
	}
	if t == nil {
		if q == nil {
			s.qmu.Lock()
			s.keepUnsentLocked(st)
			s.qmu.Unlock()
			return broken
		}
		// Hibernated: kept in the SM queue for resumption; modules (push)
		// may wake the device.
		s.srv.reg.FireStanzaQueued(context.Background(), s, st)
		return nil
	}
	if t == broken {
		if q == nil {
			s.qmu.Lock()
			s.keepUnsentLocked(st)
			s.qmu.Unlock()
		}
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
	if s.smq == nil || s.smq.Len() == 0 || s.rPending || s.ackTimer != nil || s.ended {
		return
	}
	s.ackTimer = time.AfterFunc(s.srv.cfg.AckQuiet, func() {
		s.mu.Lock()
		s.ackTimer = nil
		s.mu.Unlock()
		s.enqueue(outItem{ack: true})
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
// anything important flushes them first. What is held is bounded in
// bytes: beyond the limit everything held is written out, as for an
// important stanza.
func (s *session) hold(st *wire.Stanza) bool {
	s.mu.Lock()
	if !s.inactive {
		s.mu.Unlock()
		return false
	}
	key, holdable := csiKey(st)
	if holdable {
		for i, h := range s.held {
			if k, _ := csiKey(h); k == key {
				s.heldBytes -= len(h.Raw)
				s.held = append(s.held[:i:i], s.held[i+1:]...)
				break
			}
		}
		if s.heldBytes+len(st.Raw) <= s.srv.cfg.CSIHoldBytes {
			s.held = append(s.held, st)
			s.heldBytes += len(st.Raw)
			s.mu.Unlock()
			return true
		}
		limitHits.WithLabelValues(limitCSIHold).Inc()
	}
	s.mu.Unlock()
	for _, h := range s.takeHeld() {
		s.writeOne(h, nil)
	}
	return false
}

// takeHeld returns what CSI holds and forgets it.
func (s *session) takeHeld() []*wire.Stanza {
	s.mu.Lock()
	defer s.mu.Unlock()
	held := s.held
	s.held, s.heldBytes = nil, 0
	return held
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
