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

	"github.com/parley-xmpp/parley/wire"
)

// transport is the framing a session runs over: an XML stream on TCP
// (optionally upgraded with STARTTLS) or RFC 7395 WebSocket messages.
type transport interface {
	// readHeader waits for the client's stream header (or <open/>).
	readHeader() (wire.Header, error)
	next() (*wire.Stanza, error)
	// writeHeader sends our stream header followed by features.
	writeHeader(id, from, lang string, features []byte) error
	// write sends one element; stanzas in jabber:client get the framing
	// they need.
	write(st *wire.Stanza) error
	writeRaw(b []byte) error
	flush() error
	// closeStream sends a stream error (if any) and the stream end, then
	// closes the connection.
	closeStream(se *wire.StreamError)
	close()
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

// activityConn records the time of the last read so idle clients can be
// pinged without putting deadlines on the parser (a deadline mid-token
// would poison encoding/xml's state).
type activityConn struct {
	net.Conn
	last atomic.Int64
}

func (c *activityConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.last.Store(time.Now().UnixNano())
	}
	return n, err
}

type tcpTransport struct {
	raw    *activityConn
	conn   net.Conn // raw, or the TLS conn on top of it
	rd     *wire.Reader
	bw     *bufio.Writer
	lim    wire.Limits
	tls    bool
	wmu    sync.Mutex
	closed atomic.Bool
}

func newTCPTransport(c net.Conn, lim wire.Limits) *tcpTransport {
	ac := &activityConn{Conn: c}
	ac.last.Store(time.Now().UnixNano())
	t := &tcpTransport{raw: ac, conn: ac, lim: lim}
	t.rd = wire.NewReader(t.conn, lim)
	t.bw = bufio.NewWriterSize(t.conn, 4096)
	return t
}

func (t *tcpTransport) kind() string {
	if t.tls {
		return "tls"
	}
	return "tcp"
}

func (t *tcpTransport) lastActivity() time.Time { return time.Unix(0, t.raw.last.Load()) }

func (t *tcpTransport) readHeader() (wire.Header, error) { return t.rd.ReadHeader() }
func (t *tcpTransport) next() (*wire.Stanza, error)      { return t.rd.Next() }

func (t *tcpTransport) writeHeader(id, from, lang string, features []byte) error {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	t.bw.WriteString("<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='")
	t.bw.WriteString(wire.EscapeAttr(id))
	t.bw.WriteString("' from='")
	t.bw.WriteString(wire.EscapeAttr(from))
	t.bw.WriteString("' version='1.0' xml:lang='")
	t.bw.WriteString(wire.EscapeAttr(lang))
	t.bw.WriteString("'>")
	if features != nil {
		t.bw.WriteString("<stream:features>")
		t.bw.Write(features)
		t.bw.WriteString("</stream:features>")
	}
	return t.bw.Flush()
}

func (t *tcpTransport) write(st *wire.Stanza) error { return t.writeRaw(st.Raw) }

func (t *tcpTransport) writeRaw(b []byte) error {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	_, err := t.bw.Write(b)
	return err
}

func (t *tcpTransport) flush() error {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	return t.bw.Flush()
}

func (t *tcpTransport) closeStream(se *wire.StreamError) {
	if t.closed.Swap(true) {
		return
	}
	t.wmu.Lock()
	_ = t.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if se != nil {
		t.bw.Write(se.Bytes())
	}
	t.bw.WriteString("</stream:stream>")
	_ = t.bw.Flush()
	t.wmu.Unlock()
	// Give the peer a moment to read the error before the socket goes.
	if tc, ok := t.conn.(interface{ CloseWrite() error }); ok {
		_ = tc.CloseWrite()
	}
	time.AfterFunc(2*time.Second, func() { _ = t.conn.Close() })
}

func (t *tcpTransport) close() {
	t.closed.Store(true)
	_ = t.conn.Close()
}

func (t *tcpTransport) startTLS(cfg *tls.Config) error {
	tc := tls.Server(t.raw, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		return err
	}
	t.conn = tc
	t.tls = true
	t.bw = bufio.NewWriterSize(tc, 4096)
	return nil
}

func (t *tcpTransport) restart() { t.rd.Reset(t.conn) }

func (t *tcpTransport) tlsState() *tls.ConnectionState {
	if tc, ok := t.conn.(*tls.Conn); ok {
		cs := tc.ConnectionState()
		return &cs
	}
	return nil
}

func (t *tcpTransport) secure() bool       { return t.tls }
func (t *tcpTransport) remoteAddr() string { return t.raw.RemoteAddr().String() }

// wsTransport implements RFC 7395: every WebSocket text message is exactly
// one element; the stream is opened with <open/> and ended with <close/>.
type wsTransport struct {
	c       *websocket.Conn
	ctx     context.Context
	cancel  context.CancelFunc
	lim     wire.Limits
	isSec   bool
	cs      *tls.ConnectionState
	addr    string
	last    atomic.Int64
	wmu     sync.Mutex
	pending []byte
	closed  atomic.Bool
}

func newWSTransport(c *websocket.Conn, lim wire.Limits, secure bool, cs *tls.ConnectionState, addr string) *wsTransport {
	ctx, cancel := context.WithCancel(context.Background())
	c.SetReadLimit(int64(lim.MaxStanzaBytes) + 1024)
	t := &wsTransport{c: c, ctx: ctx, cancel: cancel, lim: lim, isSec: secure, cs: cs, addr: addr}
	t.last.Store(time.Now().UnixNano())
	return t
}

func (t *wsTransport) kind() string            { return "websocket" }
func (t *wsTransport) lastActivity() time.Time { return time.Unix(0, t.last.Load()) }

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

func (t *wsTransport) send(b []byte) error {
	ctx, cancel := context.WithTimeout(t.ctx, 30*time.Second)
	defer cancel()
	return t.c.Write(ctx, websocket.MessageText, b)
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

func (t *wsTransport) closeStream(se *wire.StreamError) {
	if t.closed.Swap(true) {
		return
	}
	t.wmu.Lock()
	if se != nil {
		b := se.Bytes()
		// Declare the stream prefix: the frame stands alone.
		b = append([]byte("<stream:error xmlns:stream='"+wire.NSStream+"'>"), b[len("<stream:error>"):]...)
		_ = t.send(b)
	}
	_ = t.send([]byte("<close xmlns='" + wire.NSFraming + "'/>"))
	t.wmu.Unlock()
	_ = t.c.Close(websocket.StatusNormalClosure, "")
	t.cancel()
}

func (t *wsTransport) close() {
	t.closed.Store(true)
	_ = t.c.CloseNow()
	t.cancel()
}

func (t *wsTransport) startTLS(*tls.Config) error {
	return errors.New("STARTTLS is not available over WebSocket")
}
func (t *wsTransport) restart()                       {}
func (t *wsTransport) tlsState() *tls.ConnectionState { return t.cs }
func (t *wsTransport) secure() bool                   { return t.isSec }
func (t *wsTransport) remoteAddr() string             { return t.addr }
