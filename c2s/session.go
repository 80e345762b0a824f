package c2s

import (
	"strconv"
	"sync"
	"sync/atomic"

	"mellium.im/xmpp/jid"

	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/wire"
)

// session is a bound client stream as the router and modules see it. The
// connection goroutine owns negotiation; after binding, a writer goroutine
// drains out so that Send never blocks the router.
type session struct {
	id   string
	jid  jid.JID
	t    transport
	out  chan outItem
	done chan struct{}

	mu       sync.Mutex
	presence *wire.Stanza
	priority int
	flags    atomic.Uint32

	closeOnce sync.Once
}

type outItem struct {
	st    *wire.Stanza
	close bool
	err   *wire.StreamError
}

var _ module.Session = (*session)(nil)

func (s *session) JID() jid.JID   { return s.jid }
func (s *session) ConnID() string { return s.id }

func (s *session) Send(st *wire.Stanza) error {
	select {
	case <-s.done:
		return module.ErrNoSession
	default:
	}
	select {
	case s.out <- outItem{st: st}:
		stanzasOut.WithLabelValues(st.Name).Inc()
		return nil
	default:
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
			return
		}
	}
}

// Close ends the stream. It is safe to call from any goroutine, more than
// once.
func (s *session) Close(err *wire.StreamError) {
	s.closeOnce.Do(func() {
		select {
		case s.out <- outItem{close: true, err: err}:
		default:
			// Queue full: skip what is queued and close now.
			go s.t.closeStream(err)
		}
	})
}

// writeLoop writes queued stanzas, flushing whenever the queue drains.
func (s *session) writeLoop() {
	defer close(s.done)
	for item := range s.out {
		if item.close {
			_ = s.t.flush()
			s.t.closeStream(item.err)
			return
		}
		if err := s.t.write(item.st); err != nil {
			s.t.close()
			return
		}
		if len(s.out) == 0 {
			if err := s.t.flush(); err != nil {
				s.t.close()
				return
			}
		}
	}
}
