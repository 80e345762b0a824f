package auth

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

func newTestThrottle(max int) (*Throttle, *time.Time) {
	th := NewThrottle(max, time.Minute)
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	th.now = func() time.Time { return now }
	return th, &now
}

func TestThrottlePerAddress(t *testing.T) {
	th, now := newTestThrottle(3)
	for i := range 3 {
		if !th.Allowed("192.0.2.1:1000", "") {
			t.Fatalf("blocked after %d failures", i)
		}
		// A new connection each time: the port must not matter.
		th.Failed(fmt.Sprintf("192.0.2.1:%d", 1000+i), fmt.Sprintf("u%d@example.net", i))
	}
	if th.Allowed("192.0.2.1:2000", "") || th.Allowed("192.0.2.1", "other@example.net") {
		t.Fatal("address not blocked after 3 failures")
	}
	if !th.Allowed("192.0.2.2:1000", "u0@example.net") {
		t.Fatal("another address blocked")
	}
	// A success does not reset the address: that would let one owned
	// account launder guesses at others.
	th.Succeeded("192.0.2.1:3000", "mine@example.net")
	if th.Allowed("192.0.2.1:3000", "") {
		t.Fatal("success reset the address count")
	}
	*now = now.Add(time.Minute)
	if !th.Allowed("192.0.2.1:2000", "") {
		t.Fatal("still blocked after the window")
	}
}

func TestThrottlePerAccount(t *testing.T) {
	th, now := newTestThrottle(2)
	th.Failed("192.0.2.1:1", "victim@example.net")
	th.Failed("198.51.100.7:1", "victim@example.net")
	if th.Allowed("203.0.113.9:1", "victim@example.net") {
		t.Fatal("account not blocked across addresses")
	}
	if !th.Allowed("203.0.113.9:1", "") || !th.Allowed("203.0.113.9:1", "other@example.net") {
		t.Fatal("unrelated attempt blocked")
	}
	*now = now.Add(59 * time.Second)
	if th.Allowed("203.0.113.9:1", "victim@example.net") {
		t.Fatal("unblocked before the window ended")
	}
	*now = now.Add(time.Second)
	if !th.Allowed("203.0.113.9:1", "victim@example.net") {
		t.Fatal("still blocked after the window")
	}
	th.Failed("192.0.2.1:1", "victim@example.net")
	th.Succeeded("192.0.2.1:1", "victim@example.net")
	th.Failed("192.0.2.1:1", "victim@example.net")
	if !th.Allowed("203.0.113.9:1", "victim@example.net") {
		t.Fatal("success did not clear the account count")
	}
}

func TestThrottleAddressKeys(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1:5222":              "192.0.2.1",
		"192.0.2.1":                   "192.0.2.1",
		"[::ffff:192.0.2.1]:5222":     "192.0.2.1",
		"[2001:db8:1:2:3:4:5:6]:5222": "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::1":        "2001:db8:1:2::/64",
		"[fe80::1%eth0]:5222":         "fe80::/64",
		"not an address":              "not an address",
		"":                            "",
	} {
		if got := addrKey(in); got != want {
			t.Errorf("addrKey(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestThrottleBounded(t *testing.T) {
	th, now := newTestThrottle(1)
	th.limit = 100
	for i := range 1000 {
		*now = now.Add(time.Millisecond)
		th.Failed(fmt.Sprintf("10.0.%d.%d:1", i/256, i%256), fmt.Sprintf("u%d@example.net", i))
	}
	if len(th.addrs) > 100 || len(th.accounts) > 100 {
		t.Fatalf("maps grew to %d/%d entries", len(th.addrs), len(th.accounts))
	}
	// The newest entries survive eviction.
	if th.Allowed("10.0.3.231:1", "") {
		t.Fatal("most recent failure evicted")
	}
	// Expired entries go on the next failure after a window.
	*now = now.Add(2 * time.Minute)
	th.Failed("10.1.0.0:1", "")
	if len(th.addrs) != 1 || len(th.accounts) != 0 {
		t.Fatalf("expired entries kept: %d/%d", len(th.addrs), len(th.accounts))
	}
}

func TestThrottleDisabled(t *testing.T) {
	th := NewThrottle(0, time.Minute)
	for range 10 {
		th.Failed("192.0.2.1:1", "a@example.net")
	}
	if !th.Allowed("192.0.2.1:1", "a@example.net") {
		t.Fatal("throttle with no limit blocked")
	}
}

func TestThrottleConcurrent(t *testing.T) {
	th := NewThrottle(1000, time.Minute)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				addr := fmt.Sprintf("192.0.2.%d:%d", g, i)
				th.Allowed(addr, "a@example.net")
				th.Failed(addr, "a@example.net")
				th.Succeeded(addr, "b@example.net")
			}
		})
	}
	wg.Wait()
	if th.Allowed("192.0.2.9:1", "a@example.net") {
		t.Fatal("1600 failures for one account did not block it")
	}
}
