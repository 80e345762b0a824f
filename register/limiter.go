package register

import (
	"net"
	"net/netip"
	"sync"
	"time"
)

// window is the period PerAddressPerHour counts over.
const window = time.Hour

// limiter counts recent registrations per address key in a bounded map.
// A slot is reserved before the (slow) registration and released when it
// fails, so concurrent requests from one address cannot overshoot.
type limiter struct {
	max     int // per key and window; 0: unlimited
	maxKeys int

	mu   sync.Mutex
	seen map[string][]time.Time // oldest first
}

func newLimiter(max, maxKeys int) *limiter {
	return &limiter{max: max, maxKeys: maxKeys, seen: map[string][]time.Time{}}
}

// reserve takes a slot for key at now. It reports false when the key used
// up its slots; otherwise release undoes the reservation.
func (l *limiter) reserve(key string, now time.Time) (ok bool, release func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.max <= 0 {
		return true, func() {}
	}
	times := prune(l.seen[key], now)
	if len(times) >= l.max {
		l.seen[key] = times
		return false, nil
	}
	if _, tracked := l.seen[key]; !tracked && len(l.seen) >= l.maxKeys {
		l.evict(now)
	}
	l.seen[key] = append(times, now)
	return true, func() { l.release(key, now) }
}

// setMax changes the limit per key and window.
func (l *limiter) setMax(max int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.max = max
}

func (l *limiter) release(key string, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	times := l.seen[key]
	for i := len(times) - 1; i >= 0; i-- {
		if times[i].Equal(at) {
			times = append(times[:i:i], times[i+1:]...)
			break
		}
	}
	if len(times) == 0 {
		delete(l.seen, key)
	} else {
		l.seen[key] = times
	}
}

// evict makes room for one key: first drop expired entries, then, if the
// map is still full, the key whose latest registration is oldest.
func (l *limiter) evict(now time.Time) {
	var victim string
	var oldest time.Time
	for k, times := range l.seen {
		times = prune(times, now)
		if len(times) == 0 {
			delete(l.seen, k)
			continue
		}
		l.seen[k] = times
		if last := times[len(times)-1]; victim == "" || last.Before(oldest) {
			victim, oldest = k, last
		}
	}
	if len(l.seen) >= l.maxKeys && victim != "" {
		delete(l.seen, victim)
	}
}

// prune drops times older than the window.
func prune(times []time.Time, now time.Time) []time.Time {
	i := 0
	for i < len(times) && now.Sub(times[i]) >= window {
		i++
	}
	return times[i:]
}

// addressKey maps a remote address ("host:port" or a bare host) to the
// unit that is rate limited: the IPv4 address, or the IPv6 /64.
func addressKey(remoteAddr string) string {
	host := remoteAddr
	if h, _, err := net.SplitHostPort(remoteAddr); err == nil {
		host = h
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	ip = ip.Unmap().WithZone("")
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}
