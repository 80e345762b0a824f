package groupcommit

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"
)

// fakeDB records committed items; items listed in bad fail any
// transaction they are in.
type fakeDB struct {
	mu        sync.Mutex
	committed []int
	batches   []int // sizes of successful and failed Batch calls
	ones      int
	bad       map[int]bool
	down      bool
	gate      chan struct{} // when set, Batch waits for it
	atGate    int           // items of the batches waiting for gate
	delay     time.Duration // what a commit takes
}

// waitAtGate waits until n items are in batches blocked at the gate plus
// queued in c: the writer holds them where the test wants them.
func (db *fakeDB) waitAtGate(t *testing.T, c *Committer[int], n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		db.mu.Lock()
		got := db.atGate + len(c.reqs)
		db.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d items at the gate or queued, want %d", got, n)
		}
	}
}

var (
	errBadRow = errors.New("bad row")
	errDown   = errors.New("database down")
)

func (db *fakeDB) batch(ctx context.Context, items []int) error {
	if db.gate != nil {
		db.mu.Lock()
		db.atGate += len(items)
		db.mu.Unlock()
		<-db.gate
		db.mu.Lock()
		db.atGate -= len(items)
		db.mu.Unlock()
	}
	time.Sleep(db.delay)
	db.mu.Lock()
	defer db.mu.Unlock()
	db.batches = append(db.batches, len(items))
	if db.down {
		return errDown
	}
	for _, it := range items {
		if db.bad[it] {
			return errBadRow
		}
	}
	db.committed = append(db.committed, items...)
	return nil
}

func (db *fakeDB) one(ctx context.Context, it int) error {
	db.mu.Lock()
	defer db.mu.Unlock()
	db.ones++
	if db.down {
		return errDown
	}
	if db.bad[it] {
		return errBadRow
	}
	db.committed = append(db.committed, it)
	return nil
}

func (db *fakeDB) has(it int) bool {
	db.mu.Lock()
	defer db.mu.Unlock()
	return slices.Contains(db.committed, it)
}

func newCommitter(db *fakeDB, maxBatch int, maxWait time.Duration) *Committer[int] {
	return New(Options{Enabled: true, MaxBatch: maxBatch, MaxWait: maxWait}, Config[int]{
		Batch: db.batch, One: db.one,
		Retry: func(err error) bool { return !errors.Is(err, errDown) },
	})
}

// doAll calls Do for each item concurrently and returns the errors.
func doAll(c *Committer[int], items []int) map[int]error {
	var mu sync.Mutex
	errs := map[int]error{}
	var wg sync.WaitGroup
	for _, it := range items {
		wg.Go(func() {
			err := c.Do(context.Background(), it)
			mu.Lock()
			errs[it] = err
			mu.Unlock()
		})
	}
	wg.Wait()
	return errs
}

func TestBatches(t *testing.T) {
	// A commit takes time, as a real one does: callers that arrive
	// meanwhile queue up (with instant commits on a busy machine each
	// caller could find the writer idle).
	db := &fakeDB{delay: 2 * time.Millisecond}
	c := newCommitter(db, 64, 20*time.Millisecond)
	defer c.Close()
	items := make([]int, 200)
	for i := range items {
		items[i] = i
	}
	for it, err := range doAll(c, items) {
		if err != nil {
			t.Errorf("item %d: %v", it, err)
		}
		if !db.has(it) {
			t.Errorf("item %d acknowledged but not committed", it)
		}
	}
	if len(db.batches) >= len(items)/2 {
		t.Errorf("%d transactions for %d concurrent items: not batched (%v)", len(db.batches), len(items), db.batches)
	}
	for _, n := range db.batches {
		if n > 64 {
			t.Errorf("batch of %d exceeds MaxBatch 64", n)
		}
	}
}

func TestBadRowFailsOnlyItself(t *testing.T) {
	db := &fakeDB{bad: map[int]bool{7: true}}
	c := newCommitter(db, 64, 20*time.Millisecond)
	defer c.Close()
	items := []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	for it, err := range doAll(c, items) {
		switch {
		case it == 7 && !errors.Is(err, errBadRow):
			t.Errorf("bad item: %v, want errBadRow", err)
		case it != 7 && err != nil:
			t.Errorf("item %d failed with the bad row's batch: %v", it, err)
		case it != 7 && !db.has(it):
			t.Errorf("item %d not committed", it)
		}
	}
	if db.has(7) {
		t.Error("bad item committed")
	}
}

func TestDatabaseDownFailsBatchWithoutRetries(t *testing.T) {
	db := &fakeDB{down: true}
	c := newCommitter(db, 64, 20*time.Millisecond)
	defer c.Close()
	for it, err := range doAll(c, []int{1, 2, 3, 4, 5}) {
		if !errors.Is(err, errDown) {
			t.Errorf("item %d: %v, want errDown", it, err)
		}
	}
	if db.ones != 0 {
		t.Errorf("%d single-item retries while the database is down", db.ones)
	}
}

func TestErrorsGoToTheFailedBatchOnly(t *testing.T) {
	db := &fakeDB{}
	c := newCommitter(db, 64, -1)
	defer c.Close()
	if err := c.Do(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	db.mu.Lock()
	db.down = true
	db.mu.Unlock()
	if err := c.Do(context.Background(), 2); !errors.Is(err, errDown) {
		t.Fatalf("during outage: %v", err)
	}
	db.mu.Lock()
	db.down = false
	db.mu.Unlock()
	if err := c.Do(context.Background(), 3); err != nil {
		t.Fatalf("after outage: %v", err)
	}
	if !db.has(1) || db.has(2) || !db.has(3) {
		t.Errorf("committed %v, want 1 and 3", db.committed)
	}
}

func TestCancelWhileQueuedWithdraws(t *testing.T) {
	db := &fakeDB{gate: make(chan struct{})}
	c := newCommitter(db, 1, -1)
	// Item 1 occupies the writer (blocked in Batch); item 2 waits in the
	// queue and its caller gives up.
	go c.Do(context.Background(), 1)
	db.waitAtGate(t, c, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := c.Do(ctx, 2); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Do = %v, want deadline exceeded", err)
	}
	close(db.gate)
	if err := c.Do(context.Background(), 3); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if db.has(2) {
		t.Error("withdrawn item was written")
	}
	if !db.has(1) || !db.has(3) {
		t.Errorf("committed %v", db.committed)
	}
}

func TestCancelWhileWritingStillCommits(t *testing.T) {
	db := &fakeDB{gate: make(chan struct{})}
	c := newCommitter(db, 8, -1)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error)
	go func() { errc <- c.Do(ctx, 1) }()
	db.waitAtGate(t, c, 1) // item 1 is in Batch, blocked
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("Do = %v, want canceled", err)
	}
	close(db.gate)
	c.Close()
	if !db.has(1) {
		t.Error("item taken into a batch was not written after its caller left")
	}
}

func TestCloseWritesQueuedThenRefuses(t *testing.T) {
	db := &fakeDB{gate: make(chan struct{})}
	c := newCommitter(db, 2, -1)
	var wg sync.WaitGroup
	errs := make([]error, 6)
	for i := range 6 {
		wg.Go(func() { errs[i] = c.Do(context.Background(), i) })
	}
	db.waitAtGate(t, c, 6)
	closed := make(chan struct{})
	go func() { c.Close(); close(closed) }()
	close(db.gate)
	<-closed
	wg.Wait()
	for i, err := range errs {
		if err != nil || !db.has(i) {
			t.Errorf("item %d: %v, committed %v", i, err, db.has(i))
		}
	}
	if err := c.Do(context.Background(), 9); !errors.Is(err, ErrClosed) {
		t.Errorf("Do after Close = %v, want ErrClosed", err)
	}
}

func TestDisabledWritesDirectly(t *testing.T) {
	db := &fakeDB{}
	c := New(Options{}, Config[int]{Batch: db.batch, One: db.one})
	for it, err := range doAll(c, []int{1, 2, 3}) {
		if err != nil || !db.has(it) {
			t.Errorf("item %d: %v", it, err)
		}
	}
	if len(db.batches) != 0 || db.ones != 3 {
		t.Errorf("batches %v, single writes %d; want none and 3", db.batches, db.ones)
	}
	c.Close()
	if err := c.Do(context.Background(), 4); !errors.Is(err, ErrClosed) {
		t.Errorf("Do after Close = %v", err)
	}
}

// TestLoneWriterNotHeld: sequential writes from one caller never wait for
// company, however long MaxWait is (a quiet server must not add latency).
func TestLoneWriterNotHeld(t *testing.T) {
	db := &fakeDB{}
	c := newCommitter(db, 64, time.Minute)
	defer c.Close()
	done := make(chan error, 1)
	go func() {
		for i := range 5 {
			if err := c.Do(context.Background(), i); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("a lone writer was held for MaxWait")
	}
	if len(db.batches) != 5 {
		t.Fatalf("batches %v, want 5 of one", db.batches)
	}
}

// TestSubmitPipelines: one caller submits many items without waiting; they
// share transactions, commit in the order submitted, and each future (and
// its then callback) reports its own item's outcome.
func TestSubmitPipelines(t *testing.T) {
	db := &fakeDB{bad: map[int]bool{13: true}}
	c := newCommitter(db, 16, 5*time.Millisecond)
	var mu sync.Mutex
	thens := map[int]error{}
	futs := make([]*Future, 100)
	for i := range futs {
		f, err := c.Submit(context.Background(), i, func(err error) {
			mu.Lock()
			thens[i] = err
			mu.Unlock()
		})
		if err != nil {
			t.Fatal(err)
		}
		futs[i] = f
	}
	for i, f := range futs {
		err := f.Wait(context.Background())
		if i == 13 {
			if !errors.Is(err, errBadRow) || !errors.Is(f.Err(), errBadRow) {
				t.Errorf("bad item: %v", err)
			}
			continue
		}
		if err != nil || !db.has(i) {
			t.Errorf("item %d: %v, committed %v", i, err, db.has(i))
		}
	}
	c.Close()
	mu.Lock()
	defer mu.Unlock()
	if len(thens) != 100 || !errors.Is(thens[13], errBadRow) || thens[12] != nil {
		t.Errorf("then callbacks: %d, item 13 %v", len(thens), thens[13])
	}
	// Commit order is submission order (the bad row was retried alone
	// within its batch, the others kept their places).
	var ok []int
	for i := range 100 {
		if i != 13 {
			ok = append(ok, i)
		}
	}
	if !slices.Equal(db.committed, ok) {
		t.Errorf("commit order %v", db.committed)
	}
	if len(db.batches) > 50 {
		t.Errorf("%d transactions for 100 pipelined items: not batched", len(db.batches))
	}
	if _, err := c.Submit(context.Background(), 1, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Submit after Close = %v", err)
	}
}

// TestSubmitOutlivesCallerContext: an item once queued is written even
// when the submitter's context ends.
func TestSubmitOutlivesCallerContext(t *testing.T) {
	db := &fakeDB{gate: make(chan struct{})}
	c := newCommitter(db, 8, -1)
	ctx, cancel := context.WithCancel(context.Background())
	f, err := c.Submit(ctx, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := f.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Wait with an ended ctx = %v", err)
	}
	close(db.gate)
	if err := f.Wait(context.Background()); err != nil || !db.has(1) {
		t.Errorf("item: %v, committed %v", err, db.has(1))
	}
	c.Close()
}

// TestThenBeforeDone: a future's then callback has run when the future is
// done, so a waiter sees its effects (the storage contract test counted
// 39 callbacks for 40 done writes).
func TestThenBeforeDone(t *testing.T) {
	c := newCommitter(&fakeDB{}, 16, time.Millisecond)
	defer c.Close()
	futs := make(chan *Future, 1)
	ran := make(chan struct{})
	f, err := c.Submit(context.Background(), 1, func(err error) {
		defer close(ran)
		select {
		case <-(<-futs).Done():
			t.Error("the future was done before its then callback ran")
		default:
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	futs <- f
	if err := f.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ran:
	default:
		t.Error("the future is done, its then callback has not run")
	}
}

func TestSubmitDisabledWritesBeforeReturning(t *testing.T) {
	db := &fakeDB{bad: map[int]bool{2: true}}
	c := New(Options{}, Config[int]{Batch: db.batch, One: db.one})
	f, err := c.Submit(context.Background(), 1, nil)
	if err != nil || !db.has(1) {
		t.Fatalf("Submit: %v", err)
	}
	select {
	case <-f.Done():
	default:
		t.Error("future of a direct write not done")
	}
	var then error
	f, _ = c.Submit(context.Background(), 2, func(err error) { then = err })
	if !errors.Is(f.Err(), errBadRow) || !errors.Is(then, errBadRow) {
		t.Errorf("bad row: %v, then %v", f.Err(), then)
	}
}
