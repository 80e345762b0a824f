package auth

import (
	"net/netip"
	"sort"
	"sync"
	"time"

	"github.com/parley-xmpp/parley/netlimit"
)

// BanConfig sets the fail2ban-style policy of Bans.
type BanConfig struct {
	// MaxStrikes offences from one address (an IPv4 address or an IPv6
	// /64) within Window ban it for Duration. <= 0 disables bans.
	MaxStrikes int
	Window     time.Duration
	Duration   time.Duration
	// Exempt addresses are never banned (e.g. a reverse proxy, loopback).
	Exempt []netip.Prefix
}

// Bans counts offences per client address (failed logins, streams the
// server had to close for broken XML or exceeded limits) and bans an
// address that keeps offending for a while: its connections are closed
// at accept. Bans end by themselves. It is safe for concurrent use; its
// tables are bounded like the Throttle's.
type Bans struct {
	cfg   BanConfig
	limit int
	now   func() time.Time

	mu      sync.Mutex
	strikes map[string]*failures
	banned  map[string]Ban
}

// Ban is one address banned until a time.
type Ban struct {
	Addr   string // address or /64 prefix
	Until  time.Time
	Reason string // the offence that tipped it
}

// NewBans returns the ban list with the given policy.
func NewBans(cfg BanConfig) *Bans {
	return &Bans{cfg: cfg, limit: maxThrottleEntries, now: time.Now, strikes: map[string]*failures{}, banned: map[string]Ban{}}
}

// Banned reports whether addr ("host:port" or an IP) is banned now.
func (b *Bans) Banned(addr string) bool {
	if b == nil || b.cfg.MaxStrikes <= 0 {
		return false
	}
	key := netlimit.AddrKey(addr)
	b.mu.Lock()
	defer b.mu.Unlock()
	ban, ok := b.banned[key]
	if ok && !b.now().Before(ban.Until) {
		delete(b.banned, key)
		return false
	}
	return ok
}

// Strike counts an offence by addr and reports whether it got the address
// banned.
func (b *Bans) Strike(addr, reason string) bool {
	if b == nil || b.cfg.MaxStrikes <= 0 || netlimit.Exempt(addr, b.cfg.Exempt) {
		return false
	}
	key := netlimit.AddrKey(addr)
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	f := b.strikes[key]
	if f != nil && now.Sub(f.start) < b.cfg.Window {
		f.n++
	} else {
		if f == nil && len(b.strikes) >= b.limit {
			b.prune(now)
			if len(b.strikes) >= b.limit {
				evictOldest(b.strikes)
			}
		}
		f = &failures{n: 1, start: now}
		b.strikes[key] = f
	}
	if f.n < b.cfg.MaxStrikes {
		return false
	}
	delete(b.strikes, key)
	if len(b.banned) >= b.limit {
		b.prune(now)
	}
	if len(b.banned) >= b.limit {
		return false // full of live bans: better unbanned than unbounded
	}
	b.banned[key] = Ban{Addr: key, Until: now.Add(b.cfg.Duration), Reason: reason}
	return true
}

func (b *Bans) prune(now time.Time) {
	for k, f := range b.strikes {
		if now.Sub(f.start) >= b.cfg.Window {
			delete(b.strikes, k)
		}
	}
	for k, ban := range b.banned {
		if !now.Before(ban.Until) {
			delete(b.banned, k)
		}
	}
}

// List returns the bans in force, soonest to end first.
func (b *Bans) List() []Ban {
	if b == nil {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	var out []Ban
	for _, ban := range b.banned {
		if now.Before(ban.Until) {
			out = append(out, ban)
		}
	}
	// Bans made at the same moment expire together: the address keeps the
	// order stable (map iteration is not).
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Until.Equal(out[j].Until) {
			return out[i].Until.Before(out[j].Until)
		}
		return out[i].Addr < out[j].Addr
	})
	return out
}

// Unban lifts the ban of addr (an address or the prefix List shows); it
// reports whether there was one.
func (b *Bans) Unban(addr string) bool {
	if b == nil {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, key := range []string{addr, netlimit.AddrKey(addr)} {
		if _, ok := b.banned[key]; ok {
			delete(b.banned, key)
			return true
		}
	}
	return false
}
