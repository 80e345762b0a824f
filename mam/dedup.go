package mam

import (
	"hash/maphash"
	"sync"
	"time"

	"github.com/parley-xmpp/parley/module"
)

// dedup answers, for a message with an origin-id, whether the same
// sender's message with that origin-id may already be in the owner's
// archive within the dedup window — without a database query for the
// messages that certainly are not (nearly all of them: every message of
// a modern client has an origin-id, resends are rare).
//
// What this process archived is known exactly: writes still in flight are
// in a map (with their ids), committed ones in Bloom filters that cover at
// least the window. "No" is then certain; "maybe" (a filter match, or a
// window reaching back before the process started or before a filter was
// dropped to bound memory) sends the caller to the database, as does a
// store other nodes write to as well (shared).
//
// A unique index cannot do this job: the window would be forever, and
// some clients reuse ids (counters restarted per session) that must not
// make later messages vanish.
type dedup struct {
	window time.Duration
	shared bool
	seed   maphash.Seed
	// perFilter and maxFilters size the filters (bloomEntries and
	// maxBlooms; tests use smaller ones).
	perFilter, maxFilters int

	mu       sync.Mutex
	inflight map[string]pendingWrite // writes not yet done
	filters  []*bloom                // oldest first; the last takes additions
	// unsureUntil: until then a miss is not certain (the process started,
	// or a filter holding entries of the window was dropped).
	unsureUntil time.Time
}

// Filter sizing: 2^20 entries per filter at about 1% false matches
// (10 bits and 7 hashes an entry, 1.25 MiB), at most 24 filters (30 MiB,
// some 25 million messages in the window, 80,000 a second over five
// minutes) before the oldest is dropped.
const (
	bloomEntries = 1 << 20
	bloomHashes  = 7
	maxBlooms    = 24
)

// pendingWrite is a queued write: its id and its completion (nil until
// queued).
type pendingWrite struct {
	id string
	c  module.Completion
}

type bloom struct {
	bits   []uint64
	n      int
	newest time.Time // latest addition
}

func newDedup(window time.Duration, shared bool, now time.Time) *dedup {
	return &dedup{window: window, shared: shared, seed: maphash.MakeSeed(), perFilter: bloomEntries, maxFilters: maxBlooms,
		inflight: map[string]pendingWrite{}, unsureUntil: now.Add(window)}
}

func dedupKey(owner, from, originID string) string {
	return owner + "\x00" + from + "\x00" + originID
}

// check returns a queued write of the key (its id and completion, which
// whoever reuses the id must wait for), or maybe reporting whether the
// database must be asked.
func (d *dedup) check(key string, now time.Time) (w pendingWrite, maybe bool) {
	h := maphash.String(d.seed, key)
	d.mu.Lock()
	defer d.mu.Unlock()
	if w, ok := d.inflight[key]; ok {
		return w, w.c == nil
	}
	if d.shared || now.Before(d.unsureUntil) {
		return pendingWrite{}, true
	}
	d.expireLocked(now)
	for _, b := range d.filters {
		if b.has(h) {
			return pendingWrite{}, true
		}
	}
	return pendingWrite{}, false
}

// settle narrows the uncertainty of a start: nothing an earlier run
// archived is newer than newest (zero: nothing at all), so a miss is
// certain once the window has passed since then rather than since the
// start — at once on a new server, or one idle for the window before.
func (d *dedup) settle(newest time.Time) {
	var until time.Time
	if !newest.IsZero() {
		until = newest.Add(d.window)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if until.Before(d.unsureUntil) {
		d.unsureUntil = until
	}
}

// starting records that a write of key is about to be queued; queued
// gives it its id once known (its outcome may be known first).
func (d *dedup) starting(key string) {
	d.mu.Lock()
	d.inflight[key] = pendingWrite{}
	d.mu.Unlock()
}

func (d *dedup) queued(key, id string, c module.Completion) {
	d.mu.Lock()
	if _, ok := d.inflight[key]; ok {
		d.inflight[key] = pendingWrite{id: id, c: c}
	}
	d.mu.Unlock()
}

// finished records the outcome of the write of key.
func (d *dedup) finished(key string, ok bool, now time.Time) {
	h := maphash.String(d.seed, key)
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.inflight, key)
	if ok {
		d.addLocked(h, now)
	}
}

// add records a key archived by a write that was not queued.
func (d *dedup) add(key string, now time.Time) {
	h := maphash.String(d.seed, key)
	d.mu.Lock()
	defer d.mu.Unlock()
	d.addLocked(h, now)
}

func (d *dedup) addLocked(h uint64, now time.Time) {
	if d.shared {
		return
	}
	d.expireLocked(now)
	if len(d.filters) == 0 || d.filters[len(d.filters)-1].n >= d.perFilter {
		if len(d.filters) >= d.maxFilters {
			// Over the memory bound: forget the oldest, and be unsure
			// for as long as its entries would have counted.
			if until := d.filters[0].newest.Add(d.window); until.After(d.unsureUntil) {
				d.unsureUntil = until
			}
			d.filters[0] = nil
			d.filters = d.filters[1:]
		}
		d.filters = append(d.filters, &bloom{bits: make([]uint64, 10*d.perFilter/64+1)})
	}
	b := d.filters[len(d.filters)-1]
	b.add(h)
	if now.After(b.newest) {
		b.newest = now
	}
}

// expireLocked drops filters whose every entry is older than the window.
func (d *dedup) expireLocked(now time.Time) {
	for len(d.filters) > 1 && now.Sub(d.filters[0].newest) > d.window {
		d.filters[0] = nil
		d.filters = d.filters[1:]
	}
}

// The k bit positions of h, by double hashing.
func (b *bloom) bit(h uint64, i uint32) uint32 {
	h1, h2 := uint32(h), uint32(h>>32)|1
	return (h1 + i*h2) % uint32(64*len(b.bits))
}

func (b *bloom) add(h uint64) {
	for i := range uint32(bloomHashes) {
		bit := b.bit(h, i)
		b.bits[bit/64] |= 1 << (bit % 64)
	}
	b.n++
}

func (b *bloom) has(h uint64) bool {
	for i := range uint32(bloomHashes) {
		bit := b.bit(h, i)
		if b.bits[bit/64]&(1<<(bit%64)) == 0 {
			return false
		}
	}
	return true
}
