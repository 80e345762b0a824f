package c2s

import (
	"context"
	"sync"
)

// lives counts the goroutines that belong to connections and sessions
// (readers, writers, session endings), so Shutdown can wait for them.
// Unlike a sync.WaitGroup it may go from zero to one while someone waits,
// which a hibernated session's timer ending it during shutdown does.
type lives struct {
	mu   sync.Mutex
	n    int
	zero chan struct{} // closed when n drops to zero; nil while nobody waits
}

// Go runs f in a goroutine that Wait waits for.
func (l *lives) Go(f func()) {
	l.add()
	go func() {
		defer l.done()
		f()
	}()
}

func (l *lives) add() {
	l.mu.Lock()
	l.n++
	l.mu.Unlock()
}

func (l *lives) done() {
	l.mu.Lock()
	l.n--
	if l.n == 0 && l.zero != nil {
		close(l.zero)
		l.zero = nil
	}
	l.mu.Unlock()
}

// Count is the number of goroutines running.
func (l *lives) Count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n
}

// Wait waits until no goroutine runs or ctx ends.
func (l *lives) Wait(ctx context.Context) {
	for {
		l.mu.Lock()
		if l.n == 0 {
			l.mu.Unlock()
			return
		}
		if l.zero == nil {
			l.zero = make(chan struct{})
		}
		ch := l.zero
		l.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return
		}
	}
}
