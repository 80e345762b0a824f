package carbons

import (
	"sync"
	"time"
)

// An error message is eligible for carbons when it answers a message that
// was (§6.1). The answer names the original's id and comes from where the
// original went, so the module remembers, for a while, which messages it
// copied: (user, peer, id). Bounded in size and age: a forgotten entry only
// means an error is not copied.
const (
	sentMemory  = 2 * time.Minute
	sentEntries = 10000
)

type sentKey struct{ user, peer, id string }

type sentLog struct {
	mu    sync.Mutex
	at    map[sentKey]time.Time
	order []sentKey // insertion order, for eviction
}

func (l *sentLog) add(k sentKey, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.at == nil {
		l.at = make(map[sentKey]time.Time)
	}
	for len(l.order) > 0 && (len(l.order) >= sentEntries || now.Sub(l.at[l.order[0]]) > sentMemory) {
		delete(l.at, l.order[0])
		l.order = l.order[1:]
	}
	if _, ok := l.at[k]; !ok {
		l.order = append(l.order, k)
	}
	l.at[k] = now
}

// answered reports whether k was copied within sentMemory.
func (l *sentLog) answered(k sentKey, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	t, ok := l.at[k]
	return ok && now.Sub(t) <= sentMemory
}
