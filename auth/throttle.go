package auth

import (
	"net/netip"
	"sync"
	"time"
)

// maxThrottleEntries caps each of the two counter maps so that a flood of
// failures from many addresses or for many names cannot exhaust memory.
const maxThrottleEntries = 100_000

// Throttle counts authentication failures per client address and per
// account in fixed windows. When either count reaches the limit, Allowed
// reports false until the window that started with the first failure ends.
// It is safe for concurrent use.
type Throttle struct {
	max    int
	window time.Duration
	limit  int              // map size cap; a field so tests can lower it
	now    func() time.Time // a field so tests can move time

	mu        sync.Mutex
	addrs     map[string]*failures
	accounts  map[string]*failures
	lastPrune time.Time
}

type failures struct {
	n     int
	start time.Time
}

// NewThrottle allows maxFailures failures per window from one address and
// against one account. maxFailures <= 0 disables throttling.
func NewThrottle(maxFailures int, window time.Duration) *Throttle {
	return &Throttle{
		max: maxFailures, window: window, limit: maxThrottleEntries, now: time.Now,
		addrs: map[string]*failures{}, accounts: map[string]*failures{},
	}
}

// Allowed reports whether an attempt from addr (an IP, or "host:port" as
// net.Conn.RemoteAddr gives it) for bare ("" when not yet known) may go on.
func (t *Throttle) Allowed(addr, bare string) bool {
	if t.max <= 0 {
		return true
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	if t.blocked(t.addrs, addrKey(addr), now) {
		return false
	}
	return bare == "" || !t.blocked(t.accounts, bare, now)
}

// Failed records a failed attempt.
func (t *Throttle) Failed(addr, bare string) {
	if t.max <= 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	if now.Sub(t.lastPrune) > t.window {
		t.prune(now)
	}
	t.count(t.addrs, addrKey(addr), now)
	if bare != "" {
		t.count(t.accounts, bare, now)
	}
}

// Succeeded clears the account's count: its owner knows the password.
// The address count stays, otherwise an attacker holding one account could
// log into it between guesses at others to reset the per-address limit.
func (t *Throttle) Succeeded(addr, bare string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.accounts, bare)
}

func (t *Throttle) blocked(m map[string]*failures, key string, now time.Time) bool {
	f := m[key]
	return f != nil && now.Sub(f.start) < t.window && f.n >= t.max
}

func (t *Throttle) count(m map[string]*failures, key string, now time.Time) {
	f := m[key]
	if f != nil && now.Sub(f.start) < t.window {
		f.n++
		return
	}
	if f == nil && len(m) >= t.limit {
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
			if now.Sub(f.start) >= t.window {
				delete(m, k)
			}
		}
	}
}

// evictOldest makes room when every entry is still live. Dropping the
// oldest loses the least remaining lockout time; it is a linear scan, but
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

// addrKey drops the port, which changes with every connection, and widens
// IPv6 addresses to their /64, which one host usually has to itself.
func addrKey(addr string) string {
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		ap, err := netip.ParseAddrPort(addr)
		if err != nil {
			return addr
		}
		ip = ap.Addr()
	}
	ip = ip.Unmap().WithZone("")
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}
