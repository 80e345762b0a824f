package c2s

import (
	"context"
	"strconv"
	"sync"

	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/sm"
)

// maxPending bounds the stanzas of one stream whose writes (archive rows)
// are queued but not yet committed. Up to this many, the stream reads its
// next stanza while earlier ones wait for their commit, so one busy client
// fills a group-commit batch instead of waiting for one commit per
// message; beyond it the reader waits (TCP backpressure).
const maxPending = 256

// pipeline tracks the stanzas a stream has routed whose held writes are
// not done yet, in the order they were read. The XEP-0198 inbound h counts
// a stanza only once it is settled (its writes committed, or failed and
// its sender told), so an <a/> never acknowledges a message the server
// could still lose; settling goes in order, so h is always a prefix.
//
// A goroutine settles pending stanzas while there are any and ends when
// none are left: an idle stream has none.
type pipeline struct {
	pend    []*module.Hold
	running bool       // the settling goroutine runs
	cond    *sync.Cond // on session.mu: pend shrank or the settler ended
	// queued and settled count the stanzas that ever went through pend;
	// acks holds, per <r/> received while stanzas were pending, the
	// queued count to settle before answering it.
	queued, settled uint64
	acks            []uint64
}

// handled records that the reader routed a stanza whose queued writes are
// in h. It blocks while maxPending stanzas are pending.
func (s *session) handled(h *module.Hold) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := &s.pipe
	if len(p.pend) == 0 && h.Empty() {
		s.countHandledLocked()
		return
	}
	if p.cond == nil {
		p.cond = sync.NewCond(&s.mu)
	}
	p.pend = append(p.pend, h)
	p.queued++
	if !p.running {
		p.running = true
		s.srv.lives.Go(s.settle)
	}
	for len(p.pend) >= maxPending {
		p.cond.Wait()
	}
}

func (s *session) countHandledLocked() {
	if s.smq != nil {
		s.hIn++
	}
}

// settle waits for pending stanzas in order and counts them as handled.
func (s *session) settle() {
	p := &s.pipe
	s.mu.Lock()
	for len(p.pend) > 0 {
		h := p.pend[0]
		s.mu.Unlock()
		// A write that failed still settles the stanza: it was refused
		// and its sender told, as when routing refuses it at once.
		_ = h.Wait(context.Background())
		s.mu.Lock()
		p.pend[0] = nil
		p.pend = p.pend[1:]
		p.settled++
		s.countHandledLocked()
		p.cond.Broadcast()
		for len(p.acks) > 0 && p.acks[0] <= p.settled {
			p.acks = p.acks[1:]
			h := s.hIn
			s.mu.Unlock()
			_ = s.writeNonza(ackNonza(h))
			s.mu.Lock()
		}
	}
	p.pend = nil
	p.running = false
	p.cond.Broadcast()
	s.mu.Unlock()
}

// settled waits until every stanza routed so far is settled, so that hIn
// counts all of them (before it is reported on resumption or kept after
// the session ends, and before stream management starts counting).
func (s *session) settled() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.pipe.running {
		s.pipe.cond.Wait()
	}
}

// ackRequested answers an <r/>: at once when nothing is pending, else
// once what was routed before it is settled (the settling goroutine
// writes the <a/>). It reports whether it answered.
func (s *session) ackRequested() (answerNow bool, h uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := &s.pipe
	if p.settled >= p.queued {
		return true, s.hIn
	}
	p.acks = append(p.acks, p.queued)
	return false, 0
}

func ackNonza(h uint32) string {
	return "<a xmlns='" + sm.NS + "' h='" + strconv.FormatUint(uint64(h), 10) + "'/>"
}
