package sm

import (
	"errors"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/wire"
)

func TestQueueAckAndWrap(t *testing.T) {
	q := NewQueue(10, 0)
	q.sent, q.acked = ^uint32(0)-1, ^uint32(0)-1 // just below the wrap
	st := wire.MustParse("<message/>")
	for i := 0; i < 4; i++ {
		if !q.Push(st, time.Now()) {
			t.Fatal("push refused below the limit")
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
	q := NewQueue(2, 0)
	st := wire.MustParse("<message/>")
	q.Push(st, time.Now())
	q.Push(st, time.Now())
	if q.Push(st, time.Now()) {
		t.Fatal("third stanza accepted within a limit of two")
	}
	if q.Len() != 3 {
		t.Fatalf("len = %d: a stanza beyond the limit must be kept for rescue", q.Len())
	}
}

func TestQueueByteLimit(t *testing.T) {
	q := NewQueue(100, 25)
	st := wire.MustParse("<message><body>x</body></message>") // 32 bytes
	small := wire.MustParse("<message/>")                     // 10 bytes
	if !q.Push(small, time.Now()) || !q.Push(small, time.Now()) {
		t.Fatal("20 bytes refused within 25")
	}
	if q.Push(small, time.Now()) {
		t.Fatal("30 bytes accepted within 25")
	}
	if err := q.Ack(3); err != nil || q.Bytes() != 0 {
		t.Fatalf("after ack: err %v, %d bytes", err, q.Bytes())
	}
	if q.Push(st, time.Now()) {
		t.Fatal("one stanza of 32 bytes accepted within 25")
	}
	if q.Bytes() != len(st.Raw) {
		t.Fatalf("bytes = %d", q.Bytes())
	}
	r := NewQueueFrom(q)
	if r.Push(st, time.Now()) {
		t.Fatal("the byte limit is lost on resumption")
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

// BenchmarkQueueInFlight: a session under load, acknowledged every 16
// stanzas with 4 still in flight.
func BenchmarkQueueInFlight(b *testing.B) {
	st := wire.MustParse("<message to='a@b' type='chat'><body>x</body></message>")
	q := NewQueue(0, 0)
	now := time.Now()
	var h uint32
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		q.Push(st, now)
		if q.Len() == 16 {
			h += 12
			if err := q.Ack(h); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// TestQueueAckKeepsLittle: an acknowledged queue holds no array, and one
// far bigger than what is left gives the surplus back.
func TestQueueAckKeepsLittle(t *testing.T) {
	st := wire.MustParse("<message/>")
	q := NewQueue(0, 0)
	for range 1000 {
		q.Push(st, time.Now())
	}
	if err := q.Ack(998); err != nil || q.Len() != 2 || cap(q.items) > 64 {
		t.Fatalf("after a large ack: len %d cap %d, %v", q.Len(), cap(q.items), err)
	}
	q.Push(st, time.Now())
	if err := q.Ack(1000); err != nil || q.Len() != 1 || q.Unacked()[0].St != st {
		t.Fatalf("in flight: %d %v", q.Len(), err)
	}
	if err := q.Ack(1001); err != nil || q.items != nil || q.Bytes() != 0 {
		t.Fatalf("all acknowledged: %v items %v bytes %d", err, q.items, q.Bytes())
	}
}
