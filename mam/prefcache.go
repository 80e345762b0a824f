package mam

import (
	"sync"
	"time"

	"github.com/parley-xmpp/parley/storage"
)

// prefsTTL is how long cached preferences are trusted. Preferences set on
// this node apply at once (the entry is dropped); set on another node
// sharing the database, they apply here within this time.
const prefsTTL = 30 * time.Second

// maxCachedPrefs bounds the accounts whose preferences are cached.
const maxCachedPrefs = 100_000

// prefsCache keeps users' XEP-0441 preferences in memory. Every archived
// message needs them for its sender and its recipient, and they almost
// never change: without the cache each message costs two queries.
type prefsCache struct {
	mu  sync.Mutex
	m   map[string]prefsEntry
	gen uint64 // bumped by forget: a load that began before must not store
}

type prefsEntry struct {
	p  storage.ArchivePrefs
	at time.Time
}

func newPrefsCache() *prefsCache { return &prefsCache{m: map[string]prefsEntry{}} }

// get returns owner's cached preferences, or the generation to pass to put
// after loading them.
func (c *prefsCache) get(owner string, now time.Time) (storage.ArchivePrefs, bool, uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[owner]
	if ok && now.Sub(e.at) < prefsTTL {
		return e.p, true, 0
	}
	return storage.ArchivePrefs{}, false, c.gen
}

// put caches preferences loaded at generation gen.
func (c *prefsCache) put(owner string, p storage.ArchivePrefs, gen uint64, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return // changed while it was read
	}
	if len(c.m) >= maxCachedPrefs {
		for k, e := range c.m {
			if now.Sub(e.at) >= prefsTTL {
				delete(c.m, k)
			}
		}
		if len(c.m) >= maxCachedPrefs {
			clear(c.m)
		}
	}
	c.m[owner] = prefsEntry{p: p, at: now}
}

// forget drops owner's entry (preferences set, account deleted).
func (c *prefsCache) forget(owner string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, owner)
	c.gen++
}
