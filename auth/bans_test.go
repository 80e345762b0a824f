package auth

import (
	"fmt"
	"net/netip"
	"testing"
	"time"
)

func newTestBans(max int) (*Bans, *time.Time) {
	b := NewBans(BanConfig{MaxStrikes: max, Window: time.Minute, Duration: 10 * time.Minute,
		Exempt: []netip.Prefix{netip.MustParsePrefix("10.9.0.0/16")}})
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	b.now = func() time.Time { return now }
	return b, &now
}

func TestBansAfterStrikes(t *testing.T) {
	b, now := newTestBans(3)
	for i := range 2 {
		if b.Strike(fmt.Sprintf("192.0.2.1:%d", 1000+i), "not-well-formed") || b.Banned("192.0.2.1:5") {
			t.Fatalf("banned after %d strikes", i+1)
		}
	}
	if !b.Strike("192.0.2.1:2000", "not-authorized") || !b.Banned("192.0.2.1:9") {
		t.Fatal("not banned after 3 strikes")
	}
	if b.Banned("192.0.2.2:1") {
		t.Fatal("another address banned")
	}
	// IPv6: the /64 is one offender.
	for i := range 3 {
		b.Strike(fmt.Sprintf("[2001:db8:0:1::%x]:1", i+1), "policy-violation")
	}
	if !b.Banned("[2001:db8:0:1::ffff]:4") || b.Banned("[2001:db8:0:2::1]:4") {
		t.Fatal("IPv6 bans are not per /64")
	}
	if l := b.List(); len(l) != 2 || l[0].Addr != "192.0.2.1" || l[0].Reason != "not-authorized" {
		t.Fatalf("List = %+v", l)
	}
	// Bans end by themselves; strikes age out of the window.
	*now = now.Add(10 * time.Minute)
	if b.Banned("192.0.2.1:9") {
		t.Fatal("ban did not end")
	}
	b.Strike("192.0.2.3:1", "x")
	b.Strike("192.0.2.3:1", "x")
	*now = now.Add(time.Minute)
	if b.Strike("192.0.2.3:1", "x") {
		t.Fatal("strikes from an old window counted")
	}
}

func TestBansExemptAndUnban(t *testing.T) {
	b, _ := newTestBans(1)
	if b.Strike("10.9.1.1:1", "x") || b.Banned("10.9.1.1:1") {
		t.Fatal("exempt address banned")
	}
	b.Strike("192.0.2.7:1", "x")
	if !b.Unban("192.0.2.7") || b.Banned("192.0.2.7:1") || b.Unban("192.0.2.7") {
		t.Fatal("Unban")
	}
	if NewBans(BanConfig{}).Strike("192.0.2.8:1", "x") {
		t.Fatal("disabled bans banned")
	}
	var nilBans *Bans
	if nilBans.Banned("192.0.2.8:1") || nilBans.Strike("192.0.2.8:1", "x") {
		t.Fatal("nil Bans")
	}
}

func TestBansBounded(t *testing.T) {
	b, now := newTestBans(1)
	b.limit = 50
	for i := range 500 {
		*now = now.Add(time.Millisecond)
		b.Strike(fmt.Sprintf("198.51.%d.%d:1", i/256, i%256), "x")
	}
	if len(b.banned) > 50 || len(b.strikes) > 50 {
		t.Fatalf("tables grew to %d/%d", len(b.banned), len(b.strikes))
	}
}
