package module

import (
	"context"
	"sync"

	"github.com/parley-xmpp/parley/wire"
)

// Completion is a write in progress: Done is closed once its outcome is
// known, then Err is nil when it is committed. Storage's queued writes
// (storage.Completion) are Completions.
type Completion interface {
	Done() <-chan struct{}
	Err() error
}

// Hold collects the writes a stanza's routing has queued but not yet seen
// committed, so that the connection it came from can read its next stanza
// meanwhile (a pipeline) while store-before-forward still holds: whatever
// the routing delivers waits for the writes queued before the delivery
// (see Deliver), and the stream acknowledges the stanza (XEP-0198 h) only
// once all of them are done.
//
// A transport that pipelines puts a Hold in Origin.Hold; a module that
// queues a write for a stanza (mam) adds it with Add, and everything that
// forwards the stanza goes through Deliver or waits with Wait. Without a
// Hold (nil) modules write synchronously, as before.
type Hold struct {
	mu     sync.Mutex
	writes []Completion
	failed bool
}

// NewHold returns an empty hold.
func NewHold() *Hold { return &Hold{} }

// Add registers a queued write.
func (h *Hold) Add(c Completion) {
	h.mu.Lock()
	h.writes = append(h.writes, c)
	h.mu.Unlock()
}

// FirstFailure records that one of the hold's writes failed and reports
// whether it is the first to say so: the stanza's sender is told once,
// however many of its writes fail.
func (h *Hold) FirstFailure() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	first := !h.failed
	h.failed = true
	return first
}

// Empty reports whether no write was added (a nil Hold is empty).
func (h *Hold) Empty() bool {
	if h == nil {
		return true
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.writes) == 0
}

// Wait waits for every write added so far. An error means one of them is
// not known to be stored: what depends on it must not be forwarded. ctx
// ending returns its error.
func (h *Hold) Wait(ctx context.Context) error { return h.Barrier().Wait(ctx) }

// Barrier returns the point after the writes added so far; later writes
// do not delay it.
func (h *Hold) Barrier() Barrier {
	if h == nil {
		return Barrier{}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return Barrier{h: h, n: len(h.writes)}
}

// Barrier is a point in a Hold: the first n writes. The zero Barrier is
// passed at once.
type Barrier struct {
	h *Hold
	n int
}

// Empty reports whether the barrier waits for nothing.
func (b Barrier) Empty() bool { return b.n == 0 }

// Passed reports, without waiting, whether the barrier's writes are all
// done.
func (b Barrier) Passed() bool {
	for _, c := range b.writes() {
		select {
		case <-c.Done():
		default:
			return false
		}
	}
	return true
}

// writes returns the writes the barrier waits for.
func (b Barrier) writes() []Completion {
	if b.n == 0 {
		return nil
	}
	b.h.mu.Lock()
	defer b.h.mu.Unlock()
	return b.h.writes[:b.n:b.n]
}

// Wait waits until the barrier's writes are done; it returns the first
// error among them (the writes are then not all stored).
func (b Barrier) Wait(ctx context.Context) error {
	for _, c := range b.writes() {
		select {
		case <-c.Done():
		case <-ctx.Done():
			return ctx.Err()
		}
		if err := c.Err(); err != nil {
			return err
		}
	}
	return nil
}

// HeldSender is implemented by sessions that can queue a stanza to be
// written only once a barrier is passed, without blocking the caller
// (c2s sessions). Stanzas queued after it wait behind it, so the order of
// everything a session receives stays the order it was queued in.
type HeldSender interface {
	SendAfter(st *wire.Stanza, b Barrier) error
}

// Deliver sends st to s once the writes ev's routing queued so far are
// committed (store before forward); if one of them failed, st is not
// delivered (the module whose write failed answers the sender). Sessions
// that are HeldSenders queue it at once; others make Deliver wait.
func Deliver(ev *Event, s Session, st *wire.Stanza) error {
	b := ev.Origin.Hold.Barrier()
	if b.Empty() {
		return s.Send(st)
	}
	if hs, ok := s.(HeldSender); ok {
		return hs.SendAfter(st, b)
	}
	if err := b.Wait(context.Background()); err != nil {
		return nil
	}
	return s.Send(st)
}
