package auth

import (
	"sync"
	"time"

	"github.com/parley-xmpp/parley/netlimit"
)

// maxThrottleEntries caps each of the counter maps so that a flood of
// failures from many addresses or for many names cannot exhaust memory.
const maxThrottleEntries = 100_000

// Defaults of ThrottleConfig.
const (
	DefaultMaxDelay = time.Minute
	DefaultMaxWait  = 20 * time.Second
	// knownPerAccount bounds the addresses remembered per account.
	knownPerAccount = 4
	// knownFor is how long an address that logged in stays known.
	knownFor = 30 * 24 * time.Hour
)

// ThrottleConfig sets the failed-login policy.
type ThrottleConfig struct {
	// MaxFailures failed logins from one address (an IPv4 address or an
	// IPv6 /64) within Window refuse further attempts from it until the
	// window that began with its first failure ends. The same number of
	// failures against one account within Window of each other slow down
	// attempts on that account instead (see Admit). <= 0 disables both.
	MaxFailures int
	Window      time.Duration
	// MaxDelay is the longest spacing between two verified attempts on a
	// throttled account (default one minute).
	MaxDelay time.Duration
	// MaxWait is the longest an attempt waits for its turn on a throttled
	// account; one that would wait longer is refused (default 20s).
	MaxWait time.Duration
}

// Throttle counts authentication failures per client address and per
// account. An address over the limit is refused; an account over the
// limit is slowed down, never locked: attempts on it are verified one
// after the other, spaced by a delay that doubles with each failure up
// to MaxDelay, so guessing gets no faster however many connections an
// attacker opens, while addresses that logged into the account before go
// straight through. It is safe for concurrent use.
type Throttle struct {
	cfg   ThrottleConfig
	limit int              // map size cap; a field so tests can lower it
	now   func() time.Time // a field so tests can move time

	mu        sync.Mutex
	addrs     map[string]*failures
	accounts  map[string]*failures
	known     map[string][]knownAddr // account → addresses that logged in
	lastPrune time.Time
}

type failures struct {
	n     int
	start time.Time // first failure (addresses) or last failure (accounts)
	next  time.Time // accounts: when the next attempt may be verified
}

type knownAddr struct {
	key  string
	seen time.Time
}

// NewThrottle returns a throttle with the given policy.
func NewThrottle(cfg ThrottleConfig) *Throttle {
	if cfg.MaxDelay <= 0 {
		cfg.MaxDelay = DefaultMaxDelay
	}
	if cfg.MaxWait <= 0 {
		cfg.MaxWait = DefaultMaxWait
	}
	return &Throttle{
		cfg: cfg, limit: maxThrottleEntries, now: time.Now,
		addrs: map[string]*failures{}, accounts: map[string]*failures{}, known: map[string][]knownAddr{},
	}
}

// Allowed reports whether an attempt from addr (an IP, or "host:port" as
// net.Conn.RemoteAddr gives it) may start at all: false while the address
// is over the limit. It says nothing about the account, which is checked
// by Admit once the client has named it.
func (t *Throttle) Allowed(addr string) bool {
	if t.cfg.MaxFailures <= 0 {
		return true
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	f := t.addrs[netlimit.AddrKey(addr)]
	return f == nil || t.now().Sub(f.start) >= t.cfg.Window || f.n < t.cfg.MaxFailures
}

// Admit is called when the client has named the account bare ("" when
// the name cannot be an account), before its proof is verified. It
// returns how long the caller must wait before verifying, or ok false when
// the attempt must be refused now (the address is over its limit, or the
// account's queue is longer than MaxWait). Either way the answer does not
// depend on the proof. A successful Admit with a wait reserves the
// account's next turn.
func (t *Throttle) Admit(addr, bare string) (wait time.Duration, ok bool) {
	if t.cfg.MaxFailures <= 0 {
		return 0, true
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	key := netlimit.AddrKey(addr)
	if f := t.addrs[key]; f != nil && now.Sub(f.start) < t.cfg.Window && f.n >= t.cfg.MaxFailures {
		return 0, false
	}
	if bare == "" {
		return 0, true
	}
	f := t.accounts[bare]
	if f == nil || now.Sub(f.start) >= t.cfg.Window || f.n < t.cfg.MaxFailures || t.isKnown(bare, key, now) {
		return 0, true
	}
	start := f.next
	if start.Before(now) {
		start = now
	}
	wait = start.Sub(now)
	if wait > t.cfg.MaxWait {
		return 0, false
	}
	f.next = start.Add(t.delay(f.n))
	return wait, true
}

// delay is the spacing after n failures: 1s at the limit, doubling with
// each further failure, at most MaxDelay.
func (t *Throttle) delay(n int) time.Duration {
	d := time.Second << min(n-t.cfg.MaxFailures, 20)
	return min(d, t.cfg.MaxDelay)
}

func (t *Throttle) isKnown(bare, key string, now time.Time) bool {
	for _, k := range t.known[bare] {
		if k.key == key && now.Sub(k.seen) < knownFor {
			return true
		}
	}
	return false
}

// Failed records a failed attempt.
func (t *Throttle) Failed(addr, bare string) {
	if t.cfg.MaxFailures <= 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	if now.Sub(t.lastPrune) > t.cfg.Window {
		t.prune(now)
	}
	key := netlimit.AddrKey(addr)
	if f := t.addrs[key]; f != nil && now.Sub(f.start) < t.cfg.Window {
		f.n++
	} else {
		t.insert(t.addrs, key, now)
	}
	if bare == "" {
		return
	}
	// An account's window restarts with every failure: the delay stays up
	// while someone keeps guessing, and ends a quiet window later.
	if f := t.accounts[bare]; f != nil && now.Sub(f.start) < t.cfg.Window {
		f.n++
		f.start = now
	} else {
		t.insert(t.accounts, bare, now)
	}
}

// Succeeded clears the account's count and remembers the address as one
// its owner uses. The address count stays, otherwise an attacker holding
// one account could log into it between guesses at others to reset the
// per-address limit.
func (t *Throttle) Succeeded(addr, bare string) {
	if t.cfg.MaxFailures <= 0 || bare == "" {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.accounts, bare)
	now, key := t.now(), netlimit.AddrKey(addr)
	list := t.known[bare]
	for i, k := range list {
		if k.key == key {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(list) >= knownPerAccount {
		list = list[1:] // the least recently seen
	}
	if list == nil && len(t.known) >= t.limit {
		for k := range t.known { // any: a flood of logins, not of failures
			delete(t.known, k)
			break
		}
	}
	t.known[bare] = append(list, knownAddr{key: key, seen: now})
}

func (t *Throttle) insert(m map[string]*failures, key string, now time.Time) {
	if len(m) >= t.limit {
		t.prune(now)
		if len(m) >= t.limit {
			evictOldest(m)
		}
	}
	m[key] = &failures{n: 1, start: now}
}

func (t *Throttle) prune(now time.Time) {
	t.lastPrune = now
	for _, m := range []map[string]*failures{t.addrs, t.accounts} {
		for k, f := range m {
			if now.Sub(f.start) >= t.cfg.Window && !now.Before(f.next) {
				delete(m, k)
			}
		}
	}
}

// evictOldest makes room when every entry is still live. Dropping the
// oldest loses the least remaining throttling; it is a linear scan, but
// only a flood that filled the map pays for it.
func evictOldest(m map[string]*failures) {
	var oldest string
	var when time.Time
	found := false
	for k, f := range m {
		if !found || f.start.Before(when) {
			oldest, when, found = k, f.start, true
		}
	}
	delete(m, oldest)
}
