package s2s

import (
	"bufio"
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/netlimit"
	"github.com/parley-xmpp/parley/wire"
)

// commit is a write whose outcome the test decides.
type commit struct{ done chan struct{} }

func newCommit() *commit                { return &commit{done: make(chan struct{})} }
func (c *commit) Done() <-chan struct{} { return c.done }
func (c *commit) Err() error            { return nil }
func (c *commit) finish()               { close(c.done) }
func heldBy(c *commit) *module.Hold     { h := module.NewHold(); h.Add(c); return h }
func stanza(i int, pad string) *wire.Stanza {
	return &wire.Stanza{Raw: []byte("<message id='m" + strconv.Itoa(i) + "'>" + pad + "</message>")}
}

// TestOutQueueBounds: the queue of a domain pair holds at most
// QueueStanzas stanzas and QueueBytes bytes, and gives them back in order
// however many pass through it (its array is reused and compacted).
func TestOutQueueBounds(t *testing.T) {
	s := New(Config{QueueStanzas: 3}, nil)
	o := newOutConn(s, pair{"a.test", "b.test"})
	for i := range 3 {
		if !o.enqueue(stanza(i, ""), module.Barrier{}) {
			t.Fatalf("stanza %d refused with %d queued", i, i)
		}
	}
	if o.enqueue(stanza(3, ""), module.Barrier{}) {
		t.Fatal("a fourth stanza queued with queue_stanzas 3")
	}
	if it, _ := o.next(); string(it.st.Raw) != string(stanza(0, "").Raw) {
		t.Fatalf("first out: %s", it.st.Raw)
	}
	if !o.enqueue(stanza(3, ""), module.Barrier{}) {
		t.Fatal("refused with room for one")
	}

	s = New(Config{QueueBytes: 2000}, nil) // two stanzas of 427 bytes with the overhead, not three
	o = newOutConn(s, pair{"a.test", "b.test"})
	pad := strings.Repeat("x", 400)
	if !o.enqueue(stanza(0, pad), module.Barrier{}) || !o.enqueue(stanza(1, pad), module.Barrier{}) {
		t.Fatal("refused within queue_bytes")
	}
	if o.enqueue(stanza(2, pad), module.Barrier{}) {
		t.Fatal("queued beyond queue_bytes")
	}
	o.next()
	if !o.enqueue(stanza(2, pad), module.Barrier{}) {
		t.Fatal("refused once the bytes of a written stanza were given back")
	}

	s = New(Config{}, nil)
	o = newOutConn(s, pair{"a.test", "b.test"})
	in, out := 0, 0
	for _, step := range []struct{ add, take int }{{3000, 2000}, {5000, 1}, {10, 5000}, {0, 1009}} {
		for range step.add {
			if !o.enqueue(stanza(in, ""), module.Barrier{}) {
				t.Fatalf("stanza %d refused with %d queued", in, o.queued())
			}
			in++
		}
		for range step.take {
			it, ok := o.next()
			if !ok {
				t.Fatalf("queue empty after %d of %d", out, in)
			}
			if want := stanza(out, "").Raw; string(it.st.Raw) != string(want) {
				t.Fatalf("got %s, want %s", it.st.Raw, want)
			}
			out++
		}
	}
	if _, ok := o.next(); ok || o.queued() != 0 || o.qbytes != 0 {
		t.Fatalf("queue not empty at the end: %d, %d bytes", o.queued(), o.qbytes)
	}
}

// TestWriterFlushesBeforeWaiting: a stanza ready to go is on the wire
// before the writer waits for the commit of the next one (it used to stay
// in the buffer until up to 64 stanzas had been written), and a stanza
// waiting for its sender's commit is written only after it.
func TestWriterFlushesBeforeWaiting(t *testing.T) {
	s := New(Config{}, nil)
	defer s.cancel()
	o := newOutConn(s, pair{"a.test", "b.test"})
	c1, c2 := net.Pipe()
	defer c1.Close()
	defer c2.Close()
	w := newStream(netlimit.NewConn(c1, 5*time.Second, nil), wire.Limits{})
	late := newCommit()
	o.enqueue(stanza(0, ""), module.Barrier{})
	o.enqueue(stanza(1, ""), heldBy(late).Barrier())
	o.enqueue(stanza(2, ""), module.Barrier{})
	type result struct {
		n   int
		err error
	}
	done := make(chan result, 1)
	go func() {
		n, err := o.writeQueued(w)
		done <- result{n, err}
	}()
	rd := bufio.NewReader(c2)
	readStanza := func() string {
		_ = c2.SetReadDeadline(time.Now().Add(5 * time.Second))
		b, err := rd.ReadString('>')
		if err != nil {
			t.Fatalf("reading: %v", err)
		}
		rest, err := rd.ReadString('>')
		if err != nil {
			t.Fatalf("reading: %v", err)
		}
		return b + rest
	}
	if got := readStanza(); got != string(stanza(0, "").Raw) {
		t.Fatalf("first on the wire: %s", got)
	}
	_ = c2.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if b, err := rd.ReadByte(); err == nil {
		t.Fatalf("wrote %q before the commit it waits for", b)
	}
	late.finish()
	for i := 1; i <= 2; i++ {
		if got := readStanza(); got != string(stanza(i, "").Raw) {
			t.Fatalf("stanza %d: got %s", i, got)
		}
	}
	if r := <-done; r.err != nil || r.n != 3 {
		t.Fatalf("writeQueued = %d, %v", r.n, r.err)
	}
}

// TestPendingBounds: a stream's reader reads ahead of the commits of what
// it routed, up to a number of stanzas and of bytes; beyond, it waits for
// the oldest.
func TestPendingBounds(t *testing.T) {
	for _, c := range []struct {
		name             string
		n, maxN, maxB    int
		routedBeforeWait int
	}{
		{"stanzas", 10, 3, 1 << 20, 3},
		{"bytes", 400, 1000, 1000, 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			var p pending
			var commits []*commit
			for i := range c.routedBeforeWait {
				cm := newCommit()
				commits = append(commits, cm)
				p.routed(context.Background(), heldBy(cm), c.n, c.maxN, c.maxB)
				_ = i
			}
			next := newCommit()
			returned := make(chan struct{})
			go func() {
				p.routed(context.Background(), heldBy(next), c.n, c.maxN, c.maxB)
				close(returned)
			}()
			select {
			case <-returned:
				t.Fatalf("routed %d stanzas without waiting", c.routedBeforeWait+1)
			case <-time.After(100 * time.Millisecond):
			}
			commits[0].finish()
			select {
			case <-returned:
			case <-time.After(5 * time.Second):
				t.Fatal("still waiting once the oldest committed")
			}
			for _, cm := range commits[1:] {
				cm.finish()
			}
			next.finish()
			p.routed(context.Background(), nil, c.n, c.maxN, c.maxB)
			if p.bytes != 0 || len(p.holds) != 0 {
				t.Fatalf("%d holds, %d bytes left after every commit", len(p.holds), p.bytes)
			}
		})
	}
}
