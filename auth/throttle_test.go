package auth

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

func newTestThrottle(max int) (*Throttle, *time.Time) {
	th := NewThrottle(ThrottleConfig{MaxFailures: max, Window: time.Minute, MaxDelay: 8 * time.Second, MaxWait: 10 * time.Second})
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	th.now = func() time.Time { return now }
	return th, &now
}

func TestThrottlePerAddress(t *testing.T) {
	th, now := newTestThrottle(3)
	for i := range 3 {
		if !th.Allowed("192.0.2.1:1000") {
			t.Fatalf("blocked after %d failures", i)
		}
		// A new connection each time: the port must not matter.
		th.Failed(fmt.Sprintf("192.0.2.1:%d", 1000+i), fmt.Sprintf("u%d@example.net", i))
	}
	if th.Allowed("192.0.2.1:2000") {
		t.Fatal("address not blocked after 3 failures")
	}
	if _, ok := th.Admit("192.0.2.1", "other@example.net"); ok {
		t.Fatal("Admit let a blocked address through")
	}
	if w, ok := th.Admit("192.0.2.2:1000", "u0@example.net"); !ok || w != 0 {
		t.Fatal("another address blocked")
	}
	// A success does not reset the address: that would let one owned
	// account launder guesses at others.
	th.Succeeded("192.0.2.1:3000", "mine@example.net")
	if th.Allowed("192.0.2.1:3000") {
		t.Fatal("success reset the address count")
	}
	*now = now.Add(time.Minute)
	if !th.Allowed("192.0.2.1:2000") {
		t.Fatal("still blocked after the window")
	}
}

// TestThrottleSlowsAccount: failures against one account from anywhere
// slow attempts on it down, one at a time with growing spacing, and
// refuse those that would queue longer than MaxWait; nothing locks it.
func TestThrottleSlowsAccount(t *testing.T) {
	th, now := newTestThrottle(2)
	const victim = "victim@example.net"
	admit := func(addr string) (time.Duration, bool) { return th.Admit(addr, victim) }
	for i := range 2 {
		if w, ok := admit(fmt.Sprintf("198.51.100.%d:1", i)); !ok || w != 0 {
			t.Fatalf("attempt %d under the limit: wait %v ok %v", i, w, ok)
		}
		th.Failed(fmt.Sprintf("198.51.100.%d:1", i), victim)
	}
	// At the limit: the first attempt goes now, the next a second later.
	for i, want := range []time.Duration{0, time.Second, 2 * time.Second} {
		w, ok := admit(fmt.Sprintf("203.0.113.%d:1", i))
		if !ok || w != want {
			t.Fatalf("queued attempt %d: wait %v ok %v, want %v", i, w, ok, want)
		}
	}
	// More failures double the spacing up to MaxDelay (8s).
	for range 6 {
		th.Failed("203.0.113.50:1", victim)
	}
	*now = now.Add(3 * time.Second) // the queue is empty again
	for i, want := range []time.Duration{0, 8 * time.Second} {
		if w, ok := admit("203.0.113.60:1"); !ok || w != want {
			t.Fatalf("after 8 failures, attempt %d: wait %v ok %v, want %v", i, w, ok, want)
		}
	}
	// The next would wait 16s > MaxWait: refused, without taking a turn.
	if _, ok := admit("203.0.113.61:1"); ok {
		t.Fatal("an attempt beyond MaxWait was admitted")
	}
	*now = now.Add(8 * time.Second)
	if w, ok := admit("203.0.113.62:1"); !ok || w != 8*time.Second {
		t.Fatalf("refused attempt took a turn: wait %v ok %v", w, ok)
	}
	// Other accounts are not affected.
	if w, ok := th.Admit("203.0.113.62:1", "other@example.net"); !ok || w != 0 {
		t.Fatalf("other account: wait %v ok %v", w, ok)
	}
	// The window restarts with each failure, so a quiet window ends it.
	*now = now.Add(time.Minute)
	if w, ok := admit("203.0.113.63:1"); !ok || w != 0 {
		t.Fatalf("after a quiet window: wait %v ok %v", w, ok)
	}
}

// TestThrottleKnownAddress: the owner's usual address is not slowed down
// by someone else's failures against the account.
func TestThrottleKnownAddress(t *testing.T) {
	th, _ := newTestThrottle(1)
	const owner = "owner@example.net"
	th.Succeeded("[2001:db8:1:2::10]:5222", owner)
	for range 10 {
		th.Failed("192.0.2.1:1", owner)
	}
	for i := range 3 {
		// Same /64, another address and port: still the owner's network.
		if w, ok := th.Admit(fmt.Sprintf("[2001:db8:1:2::%d]:4000", 20+i), owner); !ok || w != 0 {
			t.Fatalf("known network attempt %d: wait %v ok %v", i, w, ok)
		}
	}
	th.Admit("[2001:db8:1:3::1]:4000", owner)
	if w, ok := th.Admit("[2001:db8:1:3::1]:4001", owner); ok && w == 0 {
		t.Fatal("an unknown network was not slowed down")
	}
}

func TestThrottleBounded(t *testing.T) {
	th, now := newTestThrottle(1)
	th.limit = 100
	for i := range 1000 {
		*now = now.Add(time.Millisecond)
		th.Failed(fmt.Sprintf("10.0.%d.%d:1", i/256, i%256), fmt.Sprintf("u%d@example.net", i))
		th.Succeeded(fmt.Sprintf("10.1.%d.%d:1", i/256, i%256), fmt.Sprintf("s%d@example.net", i))
	}
	if len(th.addrs) > 100 || len(th.accounts) > 100 || len(th.known) > 100 {
		t.Fatalf("maps grew to %d/%d/%d entries", len(th.addrs), len(th.accounts), len(th.known))
	}
	// The newest entries survive eviction.
	if th.Allowed("10.0.3.231:1") {
		t.Fatal("most recent failure evicted")
	}
	// Expired entries go on the next failure after a window.
	*now = now.Add(2 * time.Minute)
	th.Failed("10.2.0.0:1", "")
	if len(th.addrs) != 1 || len(th.accounts) != 0 {
		t.Fatalf("expired entries kept: %d/%d", len(th.addrs), len(th.accounts))
	}
}

func TestThrottleDisabled(t *testing.T) {
	th := NewThrottle(ThrottleConfig{Window: time.Minute})
	for range 10 {
		th.Failed("192.0.2.1:1", "a@example.net")
	}
	if w, ok := th.Admit("192.0.2.1:1", "a@example.net"); !th.Allowed("192.0.2.1:1") || !ok || w != 0 {
		t.Fatal("throttle with no limit blocked")
	}
}

func TestThrottleConcurrent(t *testing.T) {
	th := NewThrottle(ThrottleConfig{MaxFailures: 1000, Window: time.Minute})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				addr := fmt.Sprintf("192.0.2.%d:%d", g, i)
				th.Admit(addr, "a@example.net")
				th.Failed(addr, "a@example.net")
				th.Succeeded(addr, "b@example.net")
			}
		})
	}
	wg.Wait()
	if w, ok := th.Admit("192.0.2.9:1", "a@example.net"); ok && w == 0 {
		t.Fatal("1600 failures for one account did not slow it down")
	}
}
