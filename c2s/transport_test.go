package c2s

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/wire"
)

// selfSigned returns a throwaway certificate for localhost.
func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		DNSNames: []string{"localhost"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestTLSStateReadWhileUpgrading: what other goroutines ask a TCP stream
// (secure, kind, the TLS state; closeStream at shutdown) is safe while its
// reader upgrades it to TLS (-race found shutdown reading the TLS flag
// STARTTLS was setting).
func TestTLSStateReadWhileUpgrading(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			return
		}
		defer c.Close()
		tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true})
		_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
		if tc.Handshake() == nil {
			var buf [64]byte
			_, _ = tc.Read(buf[:]) // until the server ends the stream
		}
	}()
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	tr := newTCPTransport(c, wire.Limits{}, 5*time.Second)
	defer tr.close()
	upgraded := make(chan error, 1)
	go func() { upgraded <- tr.startTLS(&tls.Config{Certificates: []tls.Certificate{selfSigned(t)}}) }()
	deadline := time.Now().Add(10 * time.Second)
	for !tr.secure() {
		if tr.kind() != "tcp" || tr.tlsState() != nil {
			t.Fatal("TLS state before the upgrade")
		}
		if time.Now().After(deadline) {
			t.Fatal("no TLS after 10s")
		}
		time.Sleep(time.Millisecond)
	}
	if err := <-upgraded; err != nil {
		t.Fatal(err)
	}
	if tr.kind() != "tls" || tr.tlsState() == nil {
		t.Fatalf("after the upgrade: kind %s, state %v", tr.kind(), tr.tlsState())
	}
	tr.closeStream(nil)
}

// heldConn sends what is written while hold is set in one write on
// release: several TLS records in one TCP segment.
type heldConn struct {
	net.Conn
	hold bool
	buf  []byte
}

func (c *heldConn) Write(p []byte) (int, error) {
	if c.hold {
		c.buf = append(c.buf, p...)
		return len(p), nil
	}
	return c.Conn.Write(p)
}

func (c *heldConn) release() error {
	c.hold = false
	_, err := c.Conn.Write(c.buf)
	c.buf = nil
	return err
}

// TestIdleStreamWaitsBelowTLS: a TCP stream, plain and TLS, parks between
// elements only when it holds no input, including records crypto/tls
// read in the same segment as the previous one (tlsRecords), skips
// keepalives while parked, and reads what arrives after waiting on the
// raw connection.
func TestIdleStreamWaitsBelowTLS(t *testing.T) {
	for _, secure := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "tls"}[secure], func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			client := make(chan *heldConn, 1)
			var cc net.Conn
			go func() {
				c, err := net.Dial("tcp", ln.Addr().String())
				if err != nil {
					close(client)
					return
				}
				hc := &heldConn{Conn: c}
				client <- hc
			}()
			c, err := ln.Accept()
			if err != nil {
				t.Fatal(err)
			}
			hc := <-client
			if hc == nil {
				t.Fatal("no client")
			}
			defer hc.Close()
			tr := newTCPTransport(c, wire.Limits{}, 5*time.Second)
			defer tr.close()
			cc = hc
			if secure {
				tc := tls.Client(hc, &tls.Config{InsecureSkipVerify: true})
				done := make(chan error, 1)
				go func() { done <- tc.Handshake() }()
				if err := tr.startTLS(&tls.Config{Certificates: []tls.Certificate{selfSigned(t)}}); err != nil {
					t.Fatal(err)
				}
				if err := <-done; err != nil {
					t.Fatal(err)
				}
				tr.restart()
				cc = tc
			}
			_ = tr.raw.SetReadDeadline(time.Now().Add(10 * time.Second)) // a hang fails
			send := func(parts ...string) {
				t.Helper()
				hc.hold = true
				for _, p := range parts {
					if _, err := cc.Write([]byte(p)); err != nil {
						t.Fatal(err)
					}
				}
				if err := hc.release(); err != nil {
					t.Fatal(err)
				}
			}
			// next reads an element as conn.loop does: waiting below
			// the stream whenever it parks, then parking again (which
			// reads what arrived) until there is an element to read.
			parked, waits := false, 0
			next := func() string {
				t.Helper()
				for {
					if !parked {
						parked = tr.park()
					}
					if !parked {
						break
					}
					waits++
					if err := tr.wait(); err != nil {
						t.Fatal(err)
					}
					parked = false
				}
				st, err := tr.next()
				if err != nil {
					t.Fatal(err)
				}
				return st.Name
			}
			send("<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>")
			if _, err := tr.readHeader(); err != nil {
				t.Fatal(err)
			}
			// Separate TLS records in one segment: crypto/tls must not
			// keep b's record where the wait below it cannot see it (the
			// read deadline fails a hang).
			send("<a/>", "<b/>")
			if a, b := next(), next(); a != "a" || b != "b" {
				t.Fatalf("read %s, %s", a, b)
			}
			if parked = tr.park(); !parked {
				t.Fatal("not parked with nothing left")
			}
			send(" ") // a keepalive: parks again once read
			if err := tr.wait(); err != nil {
				t.Fatal(err)
			}
			if parked = tr.park(); !parked {
				t.Fatal("not parked after a keepalive")
			}
			go func() {
				time.Sleep(50 * time.Millisecond)
				send("<c/>")
			}()
			waits = 0
			if c := next(); c != "c" || waits != 1 {
				t.Fatalf("after waiting: %s (%d waits)", c, waits)
			}
		})
	}
}

// A client that sends a self-closing stream header ends its stream: the
// reader must not park it (and so give its decoder, which holds that end,
// to the pool) but read the end, and another connection's stream must not
// read an end it never sent (over real sockets, as conn.loop reads).
func TestSelfClosingHeaderEndsOnlyItsStream(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	open := func(header string) *tcpTransport {
		t.Helper()
		cc, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cc.Close() })
		c, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		tr := newTCPTransport(c, wire.Limits{}, 5*time.Second)
		t.Cleanup(tr.close)
		_ = tr.raw.SetReadDeadline(time.Now().Add(5 * time.Second)) // a hang fails
		if _, err := cc.Write([]byte(header)); err != nil {
			t.Fatal(err)
		}
		if _, err := tr.readHeader(); err != nil {
			t.Fatal(err)
		}
		return tr
	}
	const hdr = "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>"
	for i := range 20 { // the race detector drops pooled items at random
		a := open(strings.Replace(hdr, "'1.0'>", "'1.0'/>", 1))
		if a.park() {
			t.Fatal("parked a stream whose end was read")
		}
		b := open(hdr + "<message/>")
		if b.park() {
			t.Fatal("parked with a stanza buffered")
		}
		if st, err := b.next(); err != nil || st.Name != "message" {
			t.Fatalf("round %d: another stream read %v, %v", i, st, err)
		}
		if _, err := a.next(); err != wire.ErrStreamEnd {
			t.Fatalf("round %d: the self-closed stream read %v, not its end", i, err)
		}
	}
}
