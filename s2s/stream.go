package s2s

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parley-xmpp/parley/netlimit"
	"github.com/parley-xmpp/parley/wire"
	"github.com/parley-xmpp/parley/xep"
)

// Namespaces used on server-to-server streams.
const (
	nsDialback     = xep.NSDialback
	nsDialbackFeat = xep.NSDialbackFeature
	nsTLS          = xep.NSTLS
	nsSASL         = xep.NSSASL
	alpnServer     = "xmpp-server"
	condInvalidID  = "invalid-id"
)

// errStreamClosed: the stream was closed (nothing may follow its end tag).
var errStreamClosed = errors.New("s2s: stream closed")

// stream is one TCP connection carrying an XML stream in jabber:server,
// optionally upgraded with TLS. Reading is done by exactly one goroutine at
// a time; writes are serialized by wmu.
type stream struct {
	raw    *netlimit.Conn // every write has a deadline
	conn   net.Conn       // raw or the TLS conn on top of it
	rd     *wire.Reader
	lim    wire.Limits
	bw     *bufio.Writer
	wmu    sync.Mutex
	tls    bool
	closed atomic.Bool
	// disp routes the stanzas read on this stream (its reader's; nil
	// until the first).
	disp *dispatcher
}

// route routes a stanza its reader accepted (see dispatcher).
func (s *stream) route(svc *Service, st *wire.Stanza) {
	if s.disp == nil {
		s.disp = newDispatcher(svc)
	}
	s.disp.route(st)
}

// endRouting waits until what the reader accepted is routed; the reader
// calls it when it ends.
func (s *stream) endRouting() {
	if s.disp != nil {
		s.disp.close()
	}
}

func newStream(c *netlimit.Conn, lim wire.Limits) *stream {
	s := &stream{raw: c, conn: c, lim: lim}
	s.rd = wire.NewReader(c, lim)
	s.bw = bufio.NewWriterSize(c, 4096)
	return s
}

// header writes our stream header (and features when not nil).
func (s *stream) header(from, to, id string, features []byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.bw.WriteString("<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback'")
	if from != "" {
		s.bw.WriteString(" from='" + wire.EscapeAttr(from) + "'")
	}
	if to != "" {
		s.bw.WriteString(" to='" + wire.EscapeAttr(to) + "'")
	}
	if id != "" {
		s.bw.WriteString(" id='" + wire.EscapeAttr(id) + "'")
	}
	s.bw.WriteString(" version='1.0' xml:lang='en'>")
	if features != nil {
		s.bw.WriteString("<stream:features>")
		s.bw.Write(features)
		s.bw.WriteString("</stream:features>")
	}
	return s.bw.Flush()
}

// send writes b and flushes.
func (s *stream) send(b []byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed.Load() {
		return errStreamClosed
	}
	if _, err := s.bw.Write(b); err != nil {
		return err
	}
	return s.bw.Flush()
}

// write buffers b without flushing.
func (s *stream) write(b []byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed.Load() {
		return errStreamClosed
	}
	_, err := s.bw.Write(b)
	return err
}

func (s *stream) flush() error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.bw.Flush()
}

// closeStream sends an optional stream error and the closing tag, then
// closes the connection shortly after so the peer can read the error. It
// does not wait behind a write that is blocked (on a peer that does not
// read): it then closes the connection, which fails that write.
func (s *stream) closeStream(se *wire.StreamError) {
	if s.closed.Swap(true) {
		return
	}
	if !netlimit.LockSoon(&s.wmu) {
		_ = s.conn.Close()
		return
	}
	if se != nil {
		s.bw.Write(se.Bytes())
	}
	s.bw.WriteString("</stream:stream>")
	err := s.bw.Flush()
	s.wmu.Unlock()
	if err != nil {
		_ = s.conn.Close()
		return
	}
	if !s.tls {
		_ = s.raw.CloseWrite()
	}
	time.AfterFunc(lingerTime, func() { _ = s.conn.Close() })
}

// lingerTime is how long a closed stream's connection stays open for the
// peer to read the stream end.
const lingerTime = 2 * time.Second

func (s *stream) close() {
	s.closed.Store(true)
	_ = s.conn.Close()
}

// headerThenError answers a bad stream header: RFC 6120 §4.9.1.2 wants our
// header before the error.
func (s *stream) headerThenError(from string, se *wire.StreamError) {
	_ = s.header(from, "", newStreamID(), nil)
	s.closeStream(se)
}

func (s *stream) upgrade(tc *tls.Conn, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		return err
	}
	s.conn = tc
	s.tls = true
	s.bw = bufio.NewWriterSize(tc, 4096)
	s.rd.Reset(tc)
	return nil
}

func (s *stream) tlsState() *tls.ConnectionState {
	if tc, ok := s.conn.(*tls.Conn); ok {
		cs := tc.ConnectionState()
		return &cs
	}
	return nil
}

// restart begins a new stream on the same connection.
func (s *stream) restart() { s.rd.Reset(s.conn) }

func (s *stream) setReadDeadline(d time.Duration) {
	if d <= 0 {
		_ = s.conn.SetReadDeadline(time.Time{})
		return
	}
	_ = s.conn.SetReadDeadline(time.Now().Add(d))
}

func (s *stream) remoteAddr() string { return s.raw.RemoteAddr().String() }
