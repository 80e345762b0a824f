// Package groupcommit batches concurrent writes into shared transactions
// ("group commit"): many callers each hand in one item and wait; one
// writer goroutine collects the items that arrive within a short window
// (or until a batch is full), writes them with one transaction and one
// commit, and only then answers each caller. A database commit — above
// all its fsync — costs about the same for one row as for hundreds, so
// under concurrency this multiplies write throughput, at the price of up
// to MaxWait of extra latency per write while writes are concurrent (a
// lone writer is never held back).
//
// The package is backend-independent: storage/pg and storage/sqlite give
// it a function that writes a batch atomically and one that writes a
// single item.
//
// Guarantees:
//
//   - A caller gets nil only after the transaction holding its item has
//     committed (store before acknowledge).
//   - When a batch fails, only the callers in that batch get an error.
//     When the failure may be specific to one row (Config.Retry says so),
//     the batch is retried one item at a time, so a bad row fails only
//     its own caller.
//   - Context: a caller whose ctx ends while its item still waits in the
//     queue gets ctx's error and the item is withdrawn — it is never
//     written. Once the item has joined a batch, the batch is written
//     regardless; the caller still returns ctx's error at once, and the
//     item then may or may not be committed (like a commit whose
//     acknowledgement was lost). Either way an error means "not known to
//     be stored": callers must not act as if it were.
package groupcommit

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults for zero Config fields.
const (
	DefaultMaxBatch = 256
	DefaultMaxWait  = time.Millisecond
)

// ErrClosed is returned by Do after Close.
var ErrClosed = errors.New("groupcommit: closed")

// Config is what a Committer writes with.
type Config[T any] struct {
	// Queue bounds the items waiting for the writer (4×MaxBatch when
	// zero); callers beyond it wait in Do, honouring their ctx.
	Queue int

	// Batch writes items in one transaction: all of them commit, or none
	// and it returns an error. Required.
	Batch func(ctx context.Context, items []T) error
	// One writes one item in a transaction of its own. Required: Do
	// calls it directly when group commit is disabled, and a failed
	// batch is retried item by item with it (see Retry).
	One func(ctx context.Context, item T) error
	// Retry reports whether a batch that failed with err should be
	// retried item by item, i.e. whether err may be caused by one row
	// (a constraint, an invalid value) rather than by the database
	// (unreachable, timed out). When nil, nothing is retried.
	Retry func(err error) bool
	// Context returns the context a write runs under, with its cancel
	// function (e.g. the store's query timeout). When nil, writes run
	// under context.Background().
	Context func() (context.Context, context.CancelFunc)
	// Observe, when set, is called after each batch with its size, how
	// long it took and its error (metrics).
	Observe func(items int, took time.Duration, err error)
}

// Committer batches items of type T. Its methods are safe for concurrent
// use.
type Committer[T any] struct {
	cfg  Config[T]
	opt  Options
	reqs chan *request[T]
	done chan struct{} // closed when the writer has ended

	mu     sync.RWMutex // held for reading while sending on reqs
	closed bool
}

// request states.
const (
	pending   int32 = iota // in the queue
	taken                  // in a batch being written
	withdrawn              // its caller gave up before it was taken
)

type request[T any] struct {
	item  T
	state atomic.Int32
	fut   *Future
}

// Future is the outcome of one submitted item: Done is closed once the
// item's transaction committed or failed, then Err says which. Any number
// of goroutines may wait on it.
type Future struct {
	done chan struct{}
	err  error
	then func(error) // set before the item is queued; runs once resolved
}

func newFuture() *Future { return &Future{done: make(chan struct{})} }

// resolve runs then before it closes done, so that whoever waited for
// the future sees what then did (a count, a quota's bytes).
func (f *Future) resolve(err error) {
	f.err = err
	if f.then != nil {
		f.then(err)
	}
	close(f.done)
}

// Done is closed when the item's outcome is known.
func (f *Future) Done() <-chan struct{} { return f.done }

// Err is nil when the item is committed, else why it is not known to be
// stored. It must only be called once Done is closed.
func (f *Future) Err() error { return f.err }

// Wait waits for the outcome or for ctx to end (then ctx's error: the
// item may still be committed later).
func (f *Future) Wait(ctx context.Context) error {
	select {
	case <-f.done:
		return f.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// New returns a Committer. With o.Enabled it starts the writer
// goroutine (Close stops it); otherwise Do simply calls cfg.One.
func New[T any](o Options, cfg Config[T]) *Committer[T] {
	if cfg.Batch == nil || cfg.One == nil {
		panic("groupcommit: Config.Batch and Config.One are required")
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = DefaultMaxBatch
	}
	if o.MaxWait == 0 {
		o.MaxWait = DefaultMaxWait
	}
	if cfg.Queue <= 0 {
		cfg.Queue = 4 * o.MaxBatch
	}
	c := &Committer[T]{cfg: cfg, opt: o, done: make(chan struct{})}
	if !o.Enabled {
		close(c.done)
		return c
	}
	c.reqs = make(chan *request[T], cfg.Queue)
	go c.loop()
	return c
}

// Do hands item to the writer and waits until it is committed (nil), its
// batch failed (that error) or ctx ends (ctx's error; see the package
// comment for what happened to the item then).
func (c *Committer[T]) Do(ctx context.Context, item T) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !c.opt.Enabled {
		if c.isClosed() {
			return ErrClosed
		}
		return c.cfg.One(ctx, item)
	}
	r, err := c.enqueue(ctx, item, nil)
	if err != nil {
		return err
	}
	select {
	case <-r.fut.done:
		return r.fut.err
	case <-ctx.Done():
		// Withdraw it unless the writer has it already.
		if r.state.CompareAndSwap(pending, withdrawn) {
			return ctx.Err()
		}
		select {
		case <-r.fut.done: // answered meanwhile
			return r.fut.err
		default:
			return ctx.Err()
		}
	}
}

// Submit hands item to the writer without waiting for its commit, so a
// caller can go on (read its next request) while the item waits for
// company and its transaction. It blocks only while the queue is full,
// honouring ctx; an error means the item was not queued. Once queued the
// item is written whatever happens to ctx. then, when not nil, runs with
// the outcome as soon as it is known, on the writer's goroutine, before
// the future is done: it must not block.
//
// Without group commit the item is written before Submit returns.
func (c *Committer[T]) Submit(ctx context.Context, item T, then func(error)) (*Future, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if !c.opt.Enabled {
		if c.isClosed() {
			return nil, ErrClosed
		}
		f := newFuture()
		f.then = then
		f.resolve(c.cfg.One(ctx, item))
		return f, nil
	}
	r, err := c.enqueue(ctx, item, then)
	if err != nil {
		return nil, err
	}
	return r.fut, nil
}

// enqueue puts item in the writer's queue.
func (c *Committer[T]) enqueue(ctx context.Context, item T, then func(error)) (*request[T], error) {
	r := &request[T]{item: item, fut: newFuture()}
	r.fut.then = then
	c.mu.RLock()
	if c.closed {
		c.mu.RUnlock()
		return nil, ErrClosed
	}
	select {
	case c.reqs <- r:
		c.mu.RUnlock()
		return r, nil
	case <-ctx.Done():
		c.mu.RUnlock()
		return nil, ctx.Err()
	}
}

// Close stops accepting items, writes those queued and returns once the
// writer has ended.
func (c *Committer[T]) Close() {
	c.mu.Lock()
	if !c.closed {
		c.closed = true
		if c.reqs != nil {
			close(c.reqs)
		}
	}
	c.mu.Unlock()
	<-c.done
}

func (c *Committer[T]) isClosed() bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.closed
}

func (c *Committer[T]) loop() {
	defer close(c.done)
	batch := make([]*request[T], 0, c.opt.MaxBatch)
	var timer *time.Timer
	lastSize := 0
	for {
		first, ok := <-c.reqs
		if !ok {
			return
		}
		batch = c.take(batch[:0], first)
		open := true
		// Whatever queued meanwhile joins at once.
	drain:
		for open && len(batch) < c.opt.MaxBatch {
			select {
			case r, ok := <-c.reqs:
				if !ok {
					open = false
					break drain
				}
				batch = c.take(batch, r)
			default:
				break drain
			}
		}
		// Then wait a little for more, but only under concurrency: when
		// this batch or the previous one had company. A lone writer (one
		// conversation on a quiet server) must not pay MaxWait on every
		// message; its next write, if others queue meanwhile, still
		// joins the batch after this one.
		concurrent := len(batch) > 1 || lastSize > 1
		if open && concurrent && len(batch) < c.opt.MaxBatch && c.opt.MaxWait > 0 {
			if timer == nil {
				timer = time.NewTimer(c.opt.MaxWait)
			} else {
				timer.Reset(c.opt.MaxWait)
			}
		wait:
			for len(batch) < c.opt.MaxBatch {
				select {
				case r, ok := <-c.reqs:
					if !ok {
						open = false
						break wait
					}
					batch = c.take(batch, r)
				case <-timer.C:
					break wait
				}
			}
			timer.Stop()
		}
		// After Close the loop goes on until the queue is empty: what
		// was accepted gets written.
		c.flush(batch)
		lastSize = len(batch)
		clear(batch) // let the items be collected
	}
}

// take adds r to batch unless its caller has withdrawn it.
func (c *Committer[T]) take(batch []*request[T], r *request[T]) []*request[T] {
	if r.state.CompareAndSwap(pending, taken) {
		return append(batch, r)
	}
	return batch
}

func (c *Committer[T]) run(fn func(ctx context.Context) error) error {
	ctx, cancel := context.Background(), context.CancelFunc(func() {})
	if c.cfg.Context != nil {
		ctx, cancel = c.cfg.Context()
	}
	defer cancel()
	return fn(ctx)
}

func (c *Committer[T]) flush(batch []*request[T]) {
	if len(batch) == 0 {
		return
	}
	items := make([]T, len(batch))
	for i, r := range batch {
		items[i] = r.item
	}
	start := time.Now()
	err := c.run(func(ctx context.Context) error { return c.cfg.Batch(ctx, items) })
	if c.cfg.Observe != nil {
		c.cfg.Observe(len(items), time.Since(start), err)
	}
	if err == nil || len(batch) == 1 || c.cfg.Retry == nil || !c.cfg.Retry(err) {
		for _, r := range batch {
			r.fut.resolve(err)
		}
		return
	}
	// Perhaps one bad row: each on its own, until the database itself
	// fails (then the rest get that error without more tries).
	var fatal error
	for _, r := range batch {
		if fatal != nil {
			r.fut.resolve(fatal)
			continue
		}
		err := c.run(func(ctx context.Context) error { return c.cfg.One(ctx, r.item) })
		if err != nil && !c.cfg.Retry(err) {
			fatal = err
		}
		r.fut.resolve(err)
	}
}
