package sm

import (
	"errors"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/wire"
)

func TestQueueAckAndWrap(t *testing.T) {
	q := NewQueue(10)
	q.sent, q.acked = ^uint32(0)-1, ^uint32(0)-1 // just below the wrap
	st := wire.MustParse("<message/>")
	for i := 0; i < 4; i++ {
		if err := q.Push(st, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	if q.Sent() != 2 {
		t.Fatalf("sent = %d, want wrapped 2", q.Sent())
	}
	if err := q.Ack(0); err != nil { // acknowledges 2 across the wrap
		t.Fatal(err)
	}
	if q.Len() != 2 {
		t.Fatalf("len = %d", q.Len())
	}
	var tooHigh *ErrTooHigh
	if err := q.Ack(5); !errors.As(err, &tooHigh) || tooHigh.Sent != 2 {
		t.Fatalf("err = %v", err)
	}
	if err := q.Ack(2); err != nil || q.Len() != 0 {
		t.Fatalf("err = %v len = %d", err, q.Len())
	}
	// An old h (already acknowledged) is a no-op... only if equal.
	if err := q.Ack(2); err != nil {
		t.Fatal(err)
	}
}

func TestQueueLimit(t *testing.T) {
	q := NewQueue(2)
	st := wire.MustParse("<message/>")
	q.Push(st, time.Now())
	q.Push(st, time.Now())
	if err := q.Push(st, time.Now()); !errors.Is(err, ErrFull) {
		t.Fatalf("err = %v", err)
	}
}

func TestDirectoryBindsToAccount(t *testing.T) {
	d := NewDirectory[int]()
	id := NewID()
	if len(id) < 20 || id == NewID() {
		t.Fatal("weak id")
	}
	d.Add(id, "alice@example.org", 7)
	if _, ok := d.Get(id, "mallory@example.org"); ok {
		t.Fatal("another account resumed the session")
	}
	if v, ok := d.Get(id, "alice@example.org"); !ok || v != 7 {
		t.Fatal("owner cannot resume")
	}
	d.Remove(id)
	if _, ok := d.Get(id, "alice@example.org"); ok {
		t.Fatal("removed id still resumable")
	}
}
