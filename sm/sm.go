// Package sm holds XEP-0198 stream management state: the counters and the
// buffer of stanzas not yet acknowledged by the client, and the directory
// of sessions that can be resumed. It is a package of its own, rather
// than part of c2s, because cluster hands these sessions between nodes
// (handover.go) and must not import c2s.
package sm

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"sync"
	"time"

	"github.com/parley-xmpp/parley/wire"
	"github.com/parley-xmpp/parley/xep"
)

// NS is the stream management namespace.
const NS = xep.NSSM

// Item is an outbound stanza kept until the client acknowledges it.
type Item struct {
	St    *wire.Stanza
	Stamp time.Time // when it was first queued, for <delay/> on resend
}

// ErrTooHigh is returned when a client acknowledges more than was sent.
type ErrTooHigh struct{ H, Sent uint32 }

func (e *ErrTooHigh) Error() string {
	return fmt.Sprintf("You acknowledged %d stanzas, but I only sent you %d so far.", e.H, e.Sent)
}

// Queue counts stanzas sent to a client and keeps those not yet
// acknowledged. Counters are 32-bit and wrap (XEP-0198 §4).
type Queue struct {
	mu       sync.Mutex
	items    []Item
	bytes    int
	sent     uint32 // stanzas counted as sent (h the client should reach)
	acked    uint32 // last h the client acknowledged
	max      int
	maxBytes int
}

// NewQueue returns a queue meant to hold at most max unacknowledged
// stanzas of at most maxBytes in all (0: no limit).
func NewQueue(max, maxBytes int) *Queue { return &Queue{max: max, maxBytes: maxBytes} }

// Push records st as sent. It reports false when the queue is now beyond
// its limits; st is kept all the same, so that whoever ends the session
// finds every unacknowledged stanza in Unacked.
func (q *Queue) Push(st *wire.Stanza, now time.Time) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.items = append(q.items, Item{St: st, Stamp: now})
	q.bytes += len(st.Raw)
	q.sent++
	return (q.max <= 0 || len(q.items) <= q.max) && (q.maxBytes <= 0 || q.bytes <= q.maxBytes)
}

// Ack processes <a h=/>: it drops acknowledged stanzas.
func (q *Queue) Ack(h uint32) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := h - q.acked // stanzas newly acknowledged, modulo 2^32
	if n > uint32(len(q.items)) {
		return &ErrTooHigh{H: h, Sent: q.sent}
	}
	for _, it := range q.items[:n] {
		q.bytes -= len(it.St.Raw)
	}
	rest := q.items[n:]
	switch {
	case len(rest) == 0:
		// All acknowledged: an idle session holds no array.
		q.items = nil
	case cap(q.items) <= 4*len(rest)+32:
		// Under load the client acknowledges with stanzas in flight:
		// keep the array (it was grown for this traffic) rather than
		// grow a new one from nothing after every ack.
		k := copy(q.items, rest)
		clear(q.items[k:])
		q.items = q.items[:k]
	default:
		// Far bigger than what is left: give the surplus back.
		q.items = append(make([]Item, 0, len(rest)+8), rest...)
	}
	q.acked = h
	return nil
}

// Unacked returns the stanzas not yet acknowledged, oldest first.
func (q *Queue) Unacked() []Item {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]Item(nil), q.items...)
}

// Bytes is the size of the unacknowledged stanzas.
func (q *Queue) Bytes() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.bytes
}

// Len is the number of unacknowledged stanzas.
func (q *Queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items)
}

// Sent is the outbound counter.
func (q *Queue) Sent() uint32 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.sent
}

// NewID returns an unguessable resumption id (128 random bits).
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// Directory maps resumption ids to sessions. An id is bound to the account
// it was issued for: a client of another account cannot resume it.
type Directory[S any] struct {
	mu sync.Mutex
	m  map[string]entry[S]
}

type entry[S any] struct {
	bare string
	s    S
}

// NewDirectory returns an empty directory.
func NewDirectory[S any]() *Directory[S] { return &Directory[S]{m: map[string]entry[S]{}} }

// Add registers a resumable session.
func (d *Directory[S]) Add(id, bare string, s S) {
	d.mu.Lock()
	d.m[id] = entry[S]{bare: bare, s: s}
	d.mu.Unlock()
}

// Get returns the session for id if it belongs to bare.
func (d *Directory[S]) Get(id, bare string) (S, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	e, ok := d.m[id]
	if !ok || e.bare != bare {
		var zero S
		return zero, false
	}
	return e.s, true
}

// Remove forgets id.
func (d *Directory[S]) Remove(id string) {
	d.mu.Lock()
	delete(d.m, id)
	d.mu.Unlock()
}

// NewQueueFrom returns an empty queue continuing q's acknowledged counter,
// for replaying unacknowledged stanzas on resumption.
func NewQueueFrom(q *Queue) *Queue {
	q.mu.Lock()
	defer q.mu.Unlock()
	return &Queue{max: q.max, maxBytes: q.maxBytes, sent: q.acked, acked: q.acked}
}
