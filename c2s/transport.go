package c2s

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/parley-xmpp/parley/netlimit"
	"github.com/parley-xmpp/parley/wire"
)

// transport is the framing a session runs over: an XML stream on TCP
// (optionally upgraded with STARTTLS) or RFC 7395 WebSocket messages.
type transport interface {
	// readHeader waits for the client's stream header (or <open/>).
	readHeader() (wire.Header, error)
	// park reports, between elements, that nothing is buffered and the
	// stream has given its buffers back (wire.Reader.Park): the reader may
	// then hand the connection to a new goroutine that waits in wait, on
	// a short stack. Transports that cannot wait that way report false.
	park() bool
	wait() error
	// next reads the next element.
	next() (*wire.Stanza, error)
	// writeHeader sends our stream header followed by features.
	writeHeader(id, from, lang string, features []byte) error
	// write sends one element; stanzas in jabber:client get the framing
	// they need.
	write(st *wire.Stanza) error
	writeRaw(b []byte) error
	flush() error
	// closeStream sends a stream error (if any) and the stream end from
	// any goroutine, never waiting behind a blocked write.
	closeStream(se *wire.StreamError)
	// close closes the connection at once.
	close()
	// finalClose is called by the reader goroutine when it is done: it
	// lets the peer read the stream end, then closes the connection.
	finalClose()
	// setBudget charges input to b until authentication (nil: no limit).
	setBudget(b *netlimit.Bucket)
	// startTLS upgrades a TCP stream; WebSocket cannot.
	startTLS(cfg *tls.Config) error
	// restart begins a new stream on the same connection (after STARTTLS
	// or SASL success).
	restart()
	tlsState() *tls.ConnectionState
	secure() bool
	remoteAddr() string
	kind() string
	lastActivity() time.Time
}

// lingerTime is how long a closed stream waits for the peer to read the
// stream end (and close its side) before the socket is closed.
const lingerTime = 2 * time.Second

// errClosed: the stream was closed; nothing more may be written.
var errClosed = errors.New("c2s: stream closed")

// writerPool holds the write buffers of streams that have something
// buffered; a stream takes one for a burst of writes and gives it back on
// flush, so an idle stream holds none.
var writerPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4096) }}

type tcpTransport struct {
	raw *netlimit.Conn
	// tlsConn is the TLS conn on top of raw once STARTTLS (or direct TLS)
	// is done. Atomic: closing and reporting happen on other goroutines
	// than the reader's, which sets it (a data race under -race).
	tlsConn atomic.Pointer[tls.Conn]
	rd      *wire.Reader
	lim     wire.Limits
	wmu     sync.Mutex
	bw      *bufio.Writer // from writerPool while something is buffered
	closed  atomic.Bool   // the stream end was sent (or the socket closed)
	ended   atomic.Bool   // closeStream wrote the stream end: linger before closing
}

func newTCPTransport(c net.Conn, lim wire.Limits, writeTimeout time.Duration) *tcpTransport {
	sc := netlimit.NewConn(c, writeTimeout, func() { limitHits.WithLabelValues(limitWriteTimeout).Inc() })
	t := &tcpTransport{raw: sc, lim: lim}
	t.rd = wire.NewReader(sc, lim)
	return t
}

// conn is what the stream reads and writes: raw, or the TLS conn on top.
func (t *tcpTransport) conn() net.Conn {
	if tc := t.tlsConn.Load(); tc != nil {
		return tc
	}
	return t.raw
}

func (t *tcpTransport) kind() string {
	if t.secure() {
		return "tls"
	}
	return "tcp"
}

func (t *tcpTransport) lastActivity() time.Time { return t.raw.LastRead() }

func (t *tcpTransport) setBudget(b *netlimit.Bucket) { t.raw.SetBudget(b) }

func (t *tcpTransport) readHeader() (wire.Header, error) { return t.rd.ReadHeader() }
func (t *tcpTransport) next() (*wire.Stanza, error)      { return t.rd.Next() }
func (t *tcpTransport) park() bool                       { return t.rd.Park() }
func (t *tcpTransport) wait() error {
	if t.secure() {
		// Below crypto/tls (see tlsRecords): waiting in tls.Conn.Read
		// would take the deeper stack this wait exists to avoid.
		return t.raw.Wait()
	}
	// One read of what arrived, into a pooled buffer (netlimit.ReadIdle).
	return t.rd.Wait()
}

// buffer returns the write buffer, taking one from the pool. Caller holds wmu.
func (t *tcpTransport) buffer() *bufio.Writer {
	if t.bw == nil {
		t.bw = writerPool.Get().(*bufio.Writer)
		t.bw.Reset(t.conn())
	}
	return t.bw
}

// flushLocked writes out the buffer and gives it back. Caller holds wmu.
func (t *tcpTransport) flushLocked() error {
	if t.bw == nil {
		return nil
	}
	if err := t.bw.Flush(); err != nil {
		return err // the buffer keeps the error; it is not reused
	}
	t.bw.Reset(nil)
	writerPool.Put(t.bw)
	t.bw = nil
	return nil
}

func (t *tcpTransport) writeHeader(id, from, lang string, features []byte) error {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	if t.closed.Load() {
		return errClosed
	}
	bw := t.buffer()
	bw.WriteString("<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='")
	bw.WriteString(wire.EscapeAttr(id))
	bw.WriteString("' from='")
	bw.WriteString(wire.EscapeAttr(from))
	bw.WriteString("' version='1.0' xml:lang='")
	bw.WriteString(wire.EscapeAttr(lang))
	bw.WriteString("'>")
	if features != nil {
		bw.WriteString("<stream:features>")
		bw.Write(features)
		bw.WriteString("</stream:features>")
	}
	return t.flushLocked()
}

func (t *tcpTransport) write(st *wire.Stanza) error { return t.writeRaw(st.Raw) }

func (t *tcpTransport) writeRaw(b []byte) error {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	if t.closed.Load() {
		return errClosed
	}
	_, err := t.buffer().Write(b)
	return err
}

func (t *tcpTransport) flush() error {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	if t.closed.Load() {
		return errClosed
	}
	return t.flushLocked()
}

// closeStream ends the stream from any goroutine without waiting behind a
// blocked writer: when a write in progress does not end within moments
// (a peer that does not read) the socket is closed, which fails that
// write.
// Otherwise the stream error and end are written and the reader lingers
// (see finalClose).
func (t *tcpTransport) closeStream(se *wire.StreamError) {
	if t.closed.Swap(true) {
		return
	}
	if !netlimit.LockSoon(&t.wmu) {
		_ = t.conn().Close()
		return
	}
	bw := t.buffer()
	if se != nil {
		bw.Write(se.Bytes())
	}
	bw.WriteString("</stream:stream>")
	err := t.flushLocked()
	t.wmu.Unlock()
	if err != nil {
		_ = t.conn().Close()
		return
	}
	if !t.secure() {
		_ = t.raw.CloseWrite()
	}
	t.ended.Store(true)
	// Wake the reader; it drains what the peer still sends, then closes.
	_ = t.raw.SetReadDeadline(time.Now().Add(lingerTime))
}

func (t *tcpTransport) close() {
	t.closed.Store(true)
	_ = t.conn().Close()
}

// finalClose is the reader goroutine's last act: after closeStream it
// reads (and drops) what the peer sends until the peer closes or the
// linger time is over, so the stream end is not lost to a reset; then it
// closes the socket.
func (t *tcpTransport) finalClose() {
	if t.ended.Load() {
		var buf [512]byte
		for {
			if _, err := t.conn().Read(buf[:]); err != nil {
				break
			}
		}
	}
	t.close()
}

func (t *tcpTransport) startTLS(cfg *tls.Config) error {
	tc := tls.Server(&tlsRecords{Conn: t.raw}, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		return err
	}
	t.wmu.Lock()
	t.tlsConn.Store(tc)
	t.wmu.Unlock()
	return nil
}

func (t *tcpTransport) restart() { t.rd.Reset(t.conn()) }

func (t *tcpTransport) tlsState() *tls.ConnectionState {
	if tc := t.tlsConn.Load(); tc != nil {
		cs := tc.ConnectionState()
		return &cs
	}
	return nil
}

func (t *tcpTransport) secure() bool       { return t.tlsConn.Load() != nil }
func (t *tcpTransport) remoteAddr() string { return t.raw.RemoteAddr().String() }

// wsTransport implements RFC 7395: every WebSocket text message is exactly
// one element; the stream is opened with <open/> and ended with <close/>.
type wsTransport struct {
	c            *websocket.Conn
	ctx          context.Context
	cancel       context.CancelFunc
	lim          wire.Limits
	isSec        bool
	cs           *tls.ConnectionState
	addr         string
	writeTimeout time.Duration
	last         atomic.Int64
	budget       atomic.Pointer[netlimit.Bucket]
	wmu          sync.Mutex
	closing      atomic.Bool // closeStream ran
	closed       atomic.Bool // nothing more may be written
	ended        atomic.Bool // the stream end was written
}

func newWSTransport(c *websocket.Conn, lim wire.Limits, secure bool, cs *tls.ConnectionState, addr string, writeTimeout time.Duration) *wsTransport {
	ctx, cancel := context.WithCancel(context.Background())
	c.SetReadLimit(int64(lim.MaxStanzaBytes) + 1024)
	t := &wsTransport{c: c, ctx: ctx, cancel: cancel, lim: lim, isSec: secure, cs: cs, addr: addr, writeTimeout: writeTimeout}
	t.last.Store(time.Now().UnixNano())
	return t
}

func (t *wsTransport) kind() string                 { return "websocket" }
func (t *wsTransport) lastActivity() time.Time      { return time.Unix(0, t.last.Load()) }
func (t *wsTransport) setBudget(b *netlimit.Bucket) { t.budget.Store(b) }

func (t *wsTransport) readFrame() (*wire.Stanza, error) {
	for {
		typ, data, err := t.c.Read(t.ctx)
		if err != nil {
			var ce websocket.CloseError
			if errors.As(err, &ce) {
				return nil, io.EOF
			}
			if strings.Contains(err.Error(), "read limited") {
				return nil, &wire.StreamError{Condition: wire.CondPolicyViolation, Text: "stanza too large"}
			}
			return nil, io.EOF
		}
		t.last.Store(time.Now().UnixNano())
		if b := t.budget.Load(); b != nil && !b.Take(float64(len(data))) {
			return nil, netlimit.ErrBudget
		}
		if typ != websocket.MessageText {
			return nil, &wire.StreamError{Condition: wire.CondBadFormat, Text: "binary WebSocket messages are not allowed"}
		}
		if len(strings.TrimSpace(string(data))) == 0 {
			continue // whitespace keepalive
		}
		return wire.Parse(data, t.lim)
	}
}

func (t *wsTransport) readHeader() (wire.Header, error) {
	st, err := t.readFrame()
	if err != nil {
		return wire.Header{}, err
	}
	if st.NS != wire.NSFraming || st.Name != "open" {
		return wire.Header{}, &wire.StreamError{Condition: wire.CondInvalidNamespace, Text: "expected <open xmlns='" + wire.NSFraming + "'/>"}
	}
	return wire.Header{To: st.To, From: st.From, Version: st.Attr("version"), Lang: st.Lang, NS: wire.NSClient}, nil
}

// park: an idle WebSocket stream waits in next (the library reads
// through its own buffers).
func (t *wsTransport) park() bool  { return false }
func (t *wsTransport) wait() error { return nil }

func (t *wsTransport) next() (*wire.Stanza, error) {
	st, err := t.readFrame()
	if err != nil {
		return nil, err
	}
	if st.NS == wire.NSFraming {
		switch st.Name {
		case "close":
			return nil, wire.ErrStreamEnd
		case "open":
			return nil, &wire.StreamError{Condition: wire.CondPolicyViolation, Text: "unexpected <open/>"}
		}
	}
	return st, nil
}

// send writes one message; the library closes the connection when the
// write does not finish in time. Caller holds wmu.
func (t *wsTransport) send(b []byte) error {
	if t.closed.Load() {
		return errClosed
	}
	ctx, cancel := context.WithTimeout(t.ctx, t.writeTimeout)
	defer cancel()
	err := t.c.Write(ctx, websocket.MessageText, b)
	if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		limitHits.WithLabelValues(limitWriteTimeout).Inc()
	}
	return err
}

func (t *wsTransport) writeHeader(id, from, lang string, features []byte) error {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	open := "<open xmlns='" + wire.NSFraming + "' id='" + wire.EscapeAttr(id) + "' from='" + wire.EscapeAttr(from) +
		"' version='1.0' xml:lang='" + wire.EscapeAttr(lang) + "'/>"
	if err := t.send([]byte(open)); err != nil {
		return err
	}
	if features == nil {
		return nil
	}
	f := "<stream:features xmlns:stream='" + wire.NSStream + "'>" + string(features) + "</stream:features>"
	return t.send([]byte(f))
}

// withClientNS adds the content namespace to a stanza root, which RFC 7395
// frames need because each message stands alone.
func withClientNS(st *wire.Stanza) []byte {
	if st.NS != wire.NSClient {
		return st.Raw
	}
	n := 1 + len(st.Name)
	b := make([]byte, 0, len(st.Raw)+24)
	b = append(b, st.Raw[:n]...)
	b = append(b, " xmlns='jabber:client'"...)
	return append(b, st.Raw[n:]...)
}

func (t *wsTransport) write(st *wire.Stanza) error {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	return t.send(withClientNS(st))
}

func (t *wsTransport) writeRaw(b []byte) error {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	return t.send(b)
}

func (t *wsTransport) flush() error { return nil }

// closeStream: see tcpTransport.closeStream.
func (t *wsTransport) closeStream(se *wire.StreamError) {
	if t.closing.Swap(true) || t.closed.Load() {
		return
	}
	if !netlimit.LockSoon(&t.wmu) {
		t.close()
		return
	}
	if se != nil {
		b := se.Bytes()
		// Declare the stream prefix: the frame stands alone.
		b = append([]byte("<stream:error xmlns:stream='"+wire.NSStream+"'>"), b[len("<stream:error>"):]...)
		_ = t.send(b)
	}
	_ = t.send([]byte("<close xmlns='" + wire.NSFraming + "'/>"))
	t.closed.Store(true)
	t.ended.Store(true)
	t.wmu.Unlock()
	// Wake the reader; its finalClose runs the closing handshake.
	t.cancel()
}

func (t *wsTransport) close() {
	t.closed.Store(true)
	_ = t.c.CloseNow()
	t.cancel()
}

// finalClose runs the WebSocket closing handshake (bounded by the
// library) after a stream end, else closes at once.
func (t *wsTransport) finalClose() {
	if t.ended.Load() {
		_ = t.c.Close(websocket.StatusNormalClosure, "")
	}
	t.close()
}

func (t *wsTransport) startTLS(*tls.Config) error {
	return errors.New("STARTTLS is not available over WebSocket")
}
func (t *wsTransport) restart()                       {}
func (t *wsTransport) tlsState() *tls.ConnectionState { return t.cs }
func (t *wsTransport) secure() bool                   { return t.isSec }
func (t *wsTransport) remoteAddr() string             { return t.addr }
