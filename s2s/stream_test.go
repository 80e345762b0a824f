package s2s

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/netlimit"
	"github.com/parley-xmpp/parley/wire"
)

// TestStreamWriteDeadlineAndClose: over a real TCP connection whose peer
// never reads, a write fails at the write timeout instead of blocking its
// goroutine forever, and closing the stream meanwhile does not wait for
// that write.
func TestStreamWriteDeadlineAndClose(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	peer, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close() // never read
	c := <-accepted
	const timeout = 300 * time.Millisecond
	st := newStream(netlimit.NewConn(c, timeout, nil), wire.Limits{})
	chunk := []byte("<message>" + strings.Repeat("x", 64<<10) + "</message>")
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		for {
			if err := st.send(chunk); err != nil {
				done <- err
				return
			}
		}
	}()
	// Let the socket buffers fill so that the writer blocks.
	time.Sleep(200 * time.Millisecond)
	closeStart := time.Now()
	st.closeStream(&wire.StreamError{Condition: wire.CondPolicyViolation})
	if d := time.Since(closeStart); d > 200*time.Millisecond {
		t.Fatalf("closeStream waited %v behind a blocked write", d)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the blocked write did not end")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("the write ended after %v with a %v timeout", d, timeout)
	}

	// Without a close, the write deadline alone ends the write.
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	peer2, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer peer2.Close()
	st2 := newStream(netlimit.NewConn(<-accepted, timeout, nil), wire.Limits{})
	start = time.Now()
	for {
		if err := st2.send(chunk); err != nil {
			break
		}
		if time.Since(start) > 10*time.Second {
			t.Fatal("writes to a peer that never reads did not fail")
		}
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("the write failed after %v with a %v timeout", d, timeout)
	}
}
