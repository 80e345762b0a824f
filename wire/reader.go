package wire

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// Limits bound what one peer can make the parser hold. Zero values take
// the defaults below.
type Limits struct {
	MaxStanzaBytes int // bytes of one top-level element, including markup
	MaxDepth       int // element nesting below the stream root
	MaxAttrs       int // attributes (including namespace declarations) per element
}

// Default limits (RFC 6120 §13.12 asks for at least 10000 bytes).
const (
	DefaultMaxStanzaBytes = 256 << 10
	DefaultMaxDepth       = 32
	DefaultMaxAttrs       = 64
	maxHeaderBytes        = 8 << 10
)

func (l Limits) withDefaults() Limits {
	if l.MaxStanzaBytes <= 0 {
		l.MaxStanzaBytes = DefaultMaxStanzaBytes
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = DefaultMaxDepth
	}
	if l.MaxAttrs <= 0 {
		l.MaxAttrs = DefaultMaxAttrs
	}
	return l
}

// Header is a parsed <stream:stream> (or WebSocket <open/>) header.
type Header struct {
	To, From, ID, Version, Lang string
	NS                          string // default (content) namespace
}

// errTooBig is raised by the byte source when an element outgrows the
// limit, so encoding/xml never buffers an oversized token.
var errTooBig = errors.New("wire: element too large")

// Reader splits an XMPP stream into top-level elements, enforcing limits and
// the RFC 6120 §11 restrictions. It keeps the original bytes of each element.
type Reader struct {
	lim Limits
	src *byteSource
	dec *xml.Decoder
	pd  *pooledDecoder // dec's, while the reader has one from the pool
	// broken: an error was returned, so the decoder may hold state (a
	// sticky error, an unfinished element) and must not go back to the
	// pool.
	broken bool
	// selfClosed: the stream header was self-closing (<stream:stream/>).
	// The decoder then holds the stream's end, which RawToken returns
	// next without reading: it must neither go back to the pool (the next
	// stream to take it would read an end it never sent) nor be dropped
	// while idle (this stream would never see its end).
	selfClosed bool

	started      bool   // header read
	contentNS    string // default namespace of the stream
	streamNS     nsList // prefixes declared on the stream header
	fragmentMode bool
}

// byteSource feeds encoding/xml one byte at a time (it asks for an
// io.ByteReader) and records everything it hands out, so the exact bytes of
// an element can be sliced out by input offset.
//
// Both of its buffers come from pools and go back while the stream is idle
// (see idle), so a connection waiting for its next stanza holds neither.
type byteSource struct {
	r          io.Reader
	rbuf       []byte  // read buffer: a pooled buffer, one[:] after an idle wait, or nil
	rbufp      *[]byte // the pool's pointer to rbuf, kept to put it back without allocating
	rpos, rend int
	rerr       error // the read error, returned once the bytes before it are read
	one        [1]byte
	// full: the last read filled the read buffer, so the reader below
	// (crypto/tls) may hold more (see Reader.Park).
	full bool

	buf   []byte // recorded bytes (pooled, nil while idle)
	bufp  *[]byte
	base  int64 // input offset of buf[0]
	limit int   // max len(buf) before errTooBig; 0 = no limit
}

const (
	readBufSize   = 4096
	recordBufSize = 4096
	// maxPooledRecord: larger record buffers (a big stanza went through)
	// are left to the garbage collector rather than kept in the pool.
	maxPooledRecord = 64 << 10
)

var (
	readPool   = sync.Pool{New: func() any { b := make([]byte, readBufSize); return &b }}
	recordPool = sync.Pool{New: func() any { b := make([]byte, 0, recordBufSize); return &b }}
)

// fill reads more input into the read buffer.
func (b *byteSource) fill() error {
	if b.rerr != nil {
		// Errors stay: a decoder made after one (idle) must see it too.
		return b.rerr
	}
	if b.rbufp == nil {
		b.rbufp = readPool.Get().(*[]byte)
		b.rbuf = *b.rbufp
	}
	for range 100 {
		n, err := b.r.Read(b.rbuf)
		if n > 0 {
			b.rpos, b.rend, b.rerr, b.full = 0, n, err, n == len(b.rbuf)
			return nil
		}
		if err != nil {
			b.rerr = err
			return err
		}
	}
	b.rerr = io.ErrNoProgress
	return b.rerr
}

// peekByte returns the next input byte without consuming or recording it.
func (b *byteSource) peekByte() (byte, error) {
	if b.rpos == b.rend {
		if err := b.fill(); err != nil {
			return 0, err
		}
	}
	return b.rbuf[b.rpos], nil
}

func (b *byteSource) ReadByte() (byte, error) {
	c, err := b.peekByte()
	if err != nil {
		return 0, err
	}
	if b.limit > 0 && len(b.buf) >= b.limit {
		return 0, errTooBig
	}
	b.rpos++
	if b.buf == nil {
		b.bufp = recordPool.Get().(*[]byte)
		b.buf = (*b.bufp)[:0]
	}
	b.buf = append(b.buf, c)
	return c, nil
}

func (b *byteSource) Read(p []byte) (int, error) {
	// encoding/xml only uses ReadByte; Read exists to satisfy io.Reader.
	if len(p) == 0 {
		return 0, nil
	}
	c, err := b.ReadByte()
	if err != nil {
		return 0, err
	}
	p[0] = c
	return 1, nil
}

// discard drops recorded bytes before input offset off.
func (b *byteSource) discard(off int64) {
	n := int(off - b.base)
	if n <= 0 {
		return
	}
	if n > len(b.buf) {
		n = len(b.buf)
	}
	rest := copy(b.buf, b.buf[n:])
	b.buf = b.buf[:rest]
	b.base += int64(n)
}

// buffered reports whether input is waiting in the read buffer.
func (b *byteSource) buffered() bool { return b.rpos < b.rend || b.rerr != nil }

// release gives both buffers back to their pools. The recorded bytes must
// have been discarded.
func (b *byteSource) release() {
	if b.rbufp != nil {
		readPool.Put(b.rbufp)
	}
	b.rbuf, b.rbufp, b.rpos, b.rend = nil, nil, 0, 0
	if b.bufp != nil && cap(b.buf) <= maxPooledRecord {
		*b.bufp = b.buf[:0]
		recordPool.Put(b.bufp)
	}
	b.buf, b.bufp = nil, nil
}

// idle waits for the next input byte holding no buffer: it is called
// between top-level elements when nothing is buffered, which is where an
// idle connection spends its time.
func (b *byteSource) idle() error {
	b.release()
	if ir, ok := b.r.(idleReader); ok {
		n, ok, err := ir.ReadIdle(b)
		if ok {
			if n > 0 {
				b.rpos, b.rend, b.rerr, b.full = 0, n, err, n == len(b.rbuf)
				return nil
			}
			if err == nil {
				err = io.ErrNoProgress
			}
			return err
		}
	}
	n, err := b.r.Read(b.one[:])
	if n == 1 {
		b.rbuf, b.rpos, b.rend, b.rerr, b.full = b.one[:], 0, 1, err, true
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

// idleReader is an io.Reader that can wait for input without being handed
// a buffer (netlimit.Conn on a TCP connection): ReadIdle blocks until
// input is there and reads it into buf.Take(), or calls buf.Give() when
// it found none after all; ok false means it cannot, and did nothing.
// Waiting so, a message that arrives is read with one read instead of a
// one-byte read and another for the rest.
type idleReader interface {
	ReadIdle(buf interface {
		Take() []byte
		Give()
	}) (n int, ok bool, err error)
}

// Take and Give lend the read buffer to an idleReader.
func (b *byteSource) Take() []byte {
	if b.rbufp == nil {
		b.rbufp = readPool.Get().(*[]byte)
		b.rbuf = *b.rbufp
	}
	return b.rbuf
}

func (b *byteSource) Give() {
	if b.rbufp != nil {
		readPool.Put(b.rbufp)
	}
	b.rbuf, b.rbufp, b.rpos, b.rend = nil, nil, 0, 0
}

// NewReader returns a Reader on r.
func NewReader(r io.Reader, lim Limits) *Reader {
	rd := &Reader{lim: lim.withDefaults()}
	rd.Reset(r)
	return rd
}

// Reset starts a new stream on r (after STARTTLS or SASL success, RFC 6120
// §4.3.3): the next call must be ReadHeader.
func (r *Reader) Reset(rd io.Reader) {
	if r.src != nil {
		// Whatever is buffered belongs to the old stream (after STARTTLS
		// it must not be read as the new one's).
		r.src.release()
	}
	r.src = &byteSource{r: rd}
	// The old decoder may be in the middle of the old stream: it is left
	// to the garbage collector.
	r.pd, r.broken, r.selfClosed = nil, false, false
	r.newDecoder()
	r.started = false
	r.streamNS = nil
}

// pooledDecoder is an xml.Decoder lent to one Reader at a time: between
// top-level elements RawToken keeps no state (no lookahead once the
// recorded bytes are all consumed, no open elements, no error), so the
// decoder a stream drops when it goes idle (see waitIdle) serves the next
// stream that has input instead of being made anew for every stanza.
type pooledDecoder struct {
	dec *xml.Decoder
	src *byteSource
}

func (p *pooledDecoder) ReadByte() (byte, error)    { return p.src.ReadByte() }
func (p *pooledDecoder) Read(b []byte) (int, error) { return p.src.Read(b) }

var decoderPool = sync.Pool{New: func() any {
	p := &pooledDecoder{}
	p.dec = xml.NewDecoder(p)
	p.dec.Strict = true
	p.dec.CharsetReader = func(charset string, input io.Reader) (io.Reader, error) {
		return nil, streamErr(CondUnsupportedEncoding, "only UTF-8 is supported")
	}
	return p
}}

// newDecoder takes a decoder from the pool. Nothing may be recorded: the
// decoder's offset (which runs on from stream to stream) becomes the
// source's base.
func (r *Reader) newDecoder() {
	r.pd = decoderPool.Get().(*pooledDecoder)
	r.pd.src = r.src
	r.dec = r.pd.dec
	r.src.base = r.dec.InputOffset()
}

// dropDecoder gives the decoder back to the pool between top-level
// elements, unless an error may have left state in it or it read a large
// element (its token buffer grew with it: that one is left to the garbage
// collector, as the record buffer is).
func (r *Reader) dropDecoder() {
	if r.pd != nil && !r.broken && !r.selfClosed && cap(r.src.buf) <= recordBufSize {
		r.pd.src = nil
		decoderPool.Put(r.pd)
	}
	r.pd, r.dec = nil, nil
}

// Release returns the reader's buffers to their pools; the reader must not
// be used afterwards. Calling it is optional (the garbage collector
// reclaims them too).
func (r *Reader) Release() {
	if r.src != nil {
		r.src.release()
	}
}

// Park may be called between top-level elements: it skips the whitespace
// that is buffered (keepalives) and, when the reader then holds no input
// (nothing more buffered, and its last read did not fill its buffer, so
// that a reader below it that returns at most one record a read, such as
// crypto/tls on c2s's tlsRecords, holds none either), gives its buffers
// back, drops its decoder and reports true: the caller may wait for input
// on the connection below (netlimit.Conn.Wait), on a shorter stack than
// Next's, and then call Park again (which reads what arrived) or Next.
// Otherwise it reports false and Next has input to read, or an error, or
// waits in its read. Read errors are left to Next.
func (r *Reader) Park() bool {
	if !r.started || r.selfClosed {
		return false
	}
	src := r.src
	if r.dec != nil {
		src.discard(r.dec.InputOffset())
		if len(src.buf) != 0 {
			return false // the decoder has looked ahead
		}
	} else if !src.buffered() && src.fill() != nil {
		return false
	}
	// The decoder holds no state between top-level elements, so input it
	// has not seen may be skipped once it is given back (the next one
	// starts with an empty record, see newDecoder).
	r.dropDecoder()
	for src.rpos < src.rend && isSpace(src.rbuf[src.rpos]) {
		src.rpos++
	}
	if src.buffered() || src.full {
		return false
	}
	src.release()
	return true
}

// Wait, after Park reported true, blocks until input arrives, on the
// caller's stack: on a connection that can wait without a buffer
// (netlimit.Conn on TCP, see idleReader) it reads what arrived into a
// pooled buffer with one read; otherwise it reads one byte, through
// whatever the reader reads from (below TLS, wait on the raw connection
// instead). Park then finds what arrived.
func (r *Reader) Wait() error {
	if err := r.src.idle(); err != nil {
		return r.mapErr(err)
	}
	return nil
}

func isSpace(b byte) bool { return b == ' ' || b == '\t' || b == '\r' || b == '\n' }

// waitIdle is called between top-level elements. When nothing is buffered
// it gives the buffers back and blocks until input arrives, so an idle
// stream holds no buffer and no decoder (it holds no state between
// elements, see Next).
func (r *Reader) waitIdle() error {
	if r.dec == nil {
		// Parked: the caller waited for input.
		r.newDecoder()
		return nil
	}
	if r.src.buffered() || len(r.src.buf) != 0 || r.selfClosed {
		// Input is waiting, or the decoder has looked one byte ahead,
		// or it holds the stream's end.
		return nil
	}
	// The decoder is given back while idle too (it holds nothing between
	// elements) and another taken when input arrives.
	r.dropDecoder()
	err := r.src.idle()
	r.newDecoder()
	if err != nil {
		return r.mapErr(err)
	}
	return nil
}

// nsList holds the prefixes declared on a stream header: usually one or
// two, so a slice is smaller than a map and as fast.
type nsList []nsDecl

type nsDecl struct{ prefix, uri string }

func (l nsList) get(prefix string) (string, bool) {
	for _, d := range l {
		if d.prefix == prefix {
			return d.uri, true
		}
	}
	return "", false
}

// fragment puts the reader in single-element mode (no stream header).
func (r *Reader) fragment(ns string) {
	r.started = true
	r.fragmentMode = true
	r.contentNS = ns
}

// ReadHeader reads an optional XML declaration and the stream header.
// A <stream:stream> is required unless websocket is true, in which case an
// RFC 7395 <open/> is expected.
func (r *Reader) ReadHeader() (Header, error) {
	h, err := r.readHeader()
	if err != nil {
		r.broken = true
	}
	return h, err
}

func (r *Reader) readHeader() (Header, error) {
	r.src.limit = maxHeaderBytes
	defer func() { r.src.limit = 0 }()
	// Fail fast on peers that are not speaking XML at all (an HTTP request,
	// a TLS ClientHello on the STARTTLS port): the tokenizer would wait for
	// a '<' that never comes.
	for i := 0; i < maxHeaderBytes; i++ {
		b, err := r.src.peekByte()
		if err != nil {
			return Header{}, r.mapErr(err)
		}
		if b == ' ' || b == '\t' || b == '\r' || b == '\n' {
			r.src.rpos++
			continue
		}
		if b != '<' {
			return Header{}, streamErr(CondNotWellFormed, "expected an XML stream")
		}
		break
	}
	sawDecl := false
	for {
		tok, err := r.rawToken()
		if err != nil {
			return Header{}, err
		}
		switch t := tok.(type) {
		case xml.ProcInst:
			if t.Target != "xml" || sawDecl {
				return Header{}, streamErr(CondRestrictedXML, "processing instructions are not allowed")
			}
			if enc := procInstAttr(string(t.Inst), "encoding"); enc != "" && !strings.EqualFold(enc, "utf-8") {
				return Header{}, streamErr(CondUnsupportedEncoding, "only UTF-8 is supported")
			}
			sawDecl = true
		case xml.CharData:
			if len(bytes.TrimSpace(t)) != 0 {
				return Header{}, streamErr(CondNotWellFormed, "text before the stream header")
			}
		case xml.StartElement:
			return r.header(t)
		case xml.Comment:
			return Header{}, streamErr(CondRestrictedXML, "comments are not allowed")
		case xml.Directive:
			return Header{}, streamErr(CondRestrictedXML, "DTDs and directives are not allowed")
		default:
			return Header{}, streamErr(CondNotWellFormed, "expected a stream header")
		}
		r.src.discard(r.dec.InputOffset())
	}
}

func (r *Reader) header(t xml.StartElement) (Header, error) {
	ns := map[string]string{}
	h := Header{}
	for _, a := range t.Attr {
		switch {
		case a.Name.Space == "xmlns":
			ns[a.Name.Local] = a.Value
		case a.Name.Space == "" && a.Name.Local == "xmlns":
			h.NS = a.Value
		case a.Name.Space == "xml" && a.Name.Local == "lang":
			h.Lang = a.Value
		case a.Name.Space == "":
			switch a.Name.Local {
			case "to":
				h.To = a.Value
			case "from":
				h.From = a.Value
			case "id":
				h.ID = a.Value
			case "version":
				h.Version = a.Value
			}
		}
	}
	if len(t.Attr) > r.lim.MaxAttrs {
		return h, streamErr(CondPolicyViolation, "too many attributes")
	}
	elemNS := h.NS
	if t.Name.Space != "" {
		elemNS = ns[t.Name.Space]
	}
	switch {
	case t.Name.Local == "stream" && elemNS == NSStream:
		// The decoder reads a start tag up to its '>' and no further,
		// so the recorded bytes end the tag.
		r.selfClosed = bytes.HasSuffix(r.src.buf, []byte("/>"))
	case t.Name.Local == "open" && elemNS == NSFraming:
		// RFC 7395: a self-closing <open/> frame is the whole header.
		r.src.discard(r.dec.InputOffset())
		if _, err := r.rawToken(); err != nil { // the matching EndElement
			return h, err
		}
		h.NS = NSClient
		r.contentNS = NSClient
		r.started = true
		r.fragmentMode = true
		r.src.discard(r.dec.InputOffset())
		return h, nil
	default:
		return h, streamErr(CondInvalidNamespace, "expected a stream header in "+NSStream)
	}
	r.streamNS = nil
	for p, uri := range ns {
		r.streamNS = append(r.streamNS, nsDecl{p, uri})
	}
	r.contentNS = h.NS
	r.started = true
	r.src.discard(r.dec.InputOffset())
	return h, nil
}

func procInstAttr(inst, name string) string {
	i := strings.Index(inst, name)
	if i < 0 {
		return ""
	}
	rest := strings.TrimLeft(inst[i+len(name):], " \t\r\n=")
	if rest == "" {
		return ""
	}
	q := rest[0]
	if q != '"' && q != '\'' {
		return ""
	}
	if j := strings.IndexByte(rest[1:], q); j >= 0 {
		return rest[1 : 1+j]
	}
	return ""
}

// rawToken wraps RawToken and maps parser failures to stream errors.
func (r *Reader) rawToken() (xml.Token, error) {
	tok, err := r.dec.RawToken()
	if err != nil {
		return nil, r.mapErr(err)
	}
	return tok, nil
}

func (r *Reader) mapErr(err error) error {
	if se, ok := AsStreamError(err); ok {
		return se
	}
	if errors.Is(err, errTooBig) {
		return streamErr(CondPolicyViolation, fmt.Sprintf("stanza exceeds %d bytes", r.lim.MaxStanzaBytes))
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return io.EOF
	}
	var syn *xml.SyntaxError
	if errors.As(err, &syn) {
		msg := syn.Msg
		if syn.Msg == "unexpected EOF" {
			return io.EOF
		}
		if strings.Contains(msg, "entity") {
			return streamErr(CondRestrictedXML, "entity references other than the predefined ones are not allowed")
		}
		return streamErr(CondNotWellFormed, msg)
	}
	// A transport error (closed connection, timeout): not the peer's XML.
	return err
}

// Next returns the next top-level element. It returns ErrStreamEnd when the
// peer closed the stream, io.EOF when the transport ended, a *StreamError
// when the peer broke the rules, or another error from the transport.
func (r *Reader) Next() (*Stanza, error) {
	if !r.started {
		return nil, errors.New("wire: Next before ReadHeader")
	}
	s, err := r.next()
	if err != nil {
		r.broken = true
	}
	return s, err
}

func (r *Reader) next() (*Stanza, error) {
	r.src.limit = 0
	for {
		if r.dec != nil {
			r.src.discard(r.dec.InputOffset())
		}
		// RawToken keeps no state between top-level elements (it neither
		// checks nor translates names), so this is where the stream may
		// go idle and the decoder may be replaced.
		if err := r.waitIdle(); err != nil {
			return nil, err
		}
		start := r.dec.InputOffset()
		// Bytes between stanzas (whitespace keepalives) count against the
		// limit too, so a peer cannot stream endless text.
		r.src.limit = r.lim.MaxStanzaBytes
		tok, err := r.rawToken()
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.CharData:
			if len(bytes.TrimSpace(t)) != 0 {
				return nil, streamErr(CondBadFormat, "text is not allowed between stanzas")
			}
			continue
		case xml.EndElement:
			return nil, ErrStreamEnd
		case xml.StartElement:
			return r.element(t, start)
		case xml.Comment:
			return nil, streamErr(CondRestrictedXML, "comments are not allowed")
		case xml.ProcInst:
			return nil, streamErr(CondRestrictedXML, "processing instructions are not allowed")
		case xml.Directive:
			return nil, streamErr(CondRestrictedXML, "DTDs and directives are not allowed")
		}
	}
}

// inheritNS marks, while an element is read, a child in whatever default
// namespace its root passes on (not a namespace name: it holds a NUL).
const inheritNS = "\x00inherit"

type scope struct {
	name  xml.Name
	decls int // where the prefixes this element declares start in the declaration stack
}

// elemScratch is what reading one element needs only while it reads:
// the open elements, the namespace declarations in scope (innermost
// last) and the root's children. Pooled, so reading a stanza does not
// grow them anew.
type elemScratch struct {
	stack []scope
	decls []nsDecl
	kids  []childName
}

var scratchPool = sync.Pool{New: func() any { return new(elemScratch) }}

// maxPooledScratch: scratch grown beyond this by a deep or declaration-
// heavy element is left to the garbage collector.
const maxPooledScratch = 256

// element reads the rest of a top-level element started by first.
func (r *Reader) element(first xml.StartElement, start int64) (*Stanza, error) {
	sc := scratchPool.Get().(*elemScratch)
	stack, decls, kids := sc.stack[:0], sc.decls[:0], sc.kids[:0]
	defer func() {
		if cap(stack) > maxPooledScratch || cap(decls) > maxPooledScratch || cap(kids) > maxPooledScratch {
			return
		}
		clear(stack[:cap(stack)])
		clear(decls[:cap(decls)])
		clear(kids[:cap(kids)])
		sc.stack, sc.decls, sc.kids = stack[:0], decls[:0], kids[:0]
		scratchPool.Put(sc)
	}()
	needCanonical := false // uses stream-scope prefixes or is prefixed
	dropXmlns := false     // the root declares the content namespace

	lookup := func(prefix string) (string, bool) {
		for i := len(decls) - 1; i >= 0; i-- {
			if decls[i].prefix == prefix {
				return decls[i].uri, true
			}
		}
		if v, ok := r.streamNS.get(prefix); ok {
			needCanonical = true
			return v, true
		}
		return "", false
	}
	push := func(t xml.StartElement) error {
		if len(stack) >= r.lim.MaxDepth {
			return streamErr(CondPolicyViolation, fmt.Sprintf("elements nested deeper than %d", r.lim.MaxDepth))
		}
		if len(t.Attr) > r.lim.MaxAttrs {
			return streamErr(CondPolicyViolation, fmt.Sprintf("more than %d attributes on one element", r.lim.MaxAttrs))
		}
		if !validName(t.Name) {
			return streamErr(CondNotWellFormed, "invalid element name "+attrName(t.Name))
		}
		first := len(decls)
		for i, a := range t.Attr {
			if !validName(a.Name) {
				return streamErr(CondNotWellFormed, "invalid attribute name "+attrName(a.Name))
			}
			for _, b := range t.Attr[:i] {
				if a.Name == b.Name {
					return streamErr(CondNotWellFormed, "duplicate attribute "+attrName(a.Name))
				}
			}
			if a.Name.Space == "xmlns" {
				if a.Name.Local == "xml" || a.Name.Local == "xmlns" || a.Value == "" {
					return streamErr(CondNotWellFormed, "invalid namespace declaration xmlns:"+a.Name.Local)
				}
				decls = append(decls, nsDecl{a.Name.Local, a.Value})
			} else if a.Name.Space == "" && a.Name.Local == "xmlns" {
				decls = append(decls, nsDecl{"", a.Value})
			}
		}
		stack = append(stack, scope{name: t.Name, decls: first})
		// Every prefix used must be bound (XML Namespaces §5).
		var ns string
		if p := t.Name.Space; p != "" {
			var ok bool
			if ns, ok = lookup(p); !ok {
				return streamErr(CondNotWellFormed, "undeclared namespace prefix "+p)
			}
		}
		if len(stack) == 2 {
			// A child of the root: note its name as the tree will
			// resolve it (see Stanza.kids).
			switch {
			case t.Name.Space != "":
			case t.Name.Local == "xmlns":
				// encoding/xml leaves an element named xmlns unresolved.
			default:
				if v, ok := nsList(decls[first:]).get(""); ok {
					ns = v
				} else if v, ok := nsList(decls[:first]).get(""); ok && !dropXmlns {
					ns = v
				} else {
					ns = inheritNS
				}
			}
			k := childName{ns: ns, local: t.Name.Local, idKnown: true}
			for _, a := range t.Attr {
				if a.Name.Local == "id" && a.Name.Space == "" {
					k.id = a.Value
					break
				}
			}
			kids = append(kids, k)
		}
		for i, a := range t.Attr {
			if p := a.Name.Space; p != "" && p != "xmlns" && p != "xml" {
				ns, ok := lookup(p)
				if !ok {
					return streamErr(CondNotWellFormed, "undeclared namespace prefix "+p)
				}
				// XML Namespaces §6.3: two attributes may not have the same
				// expanded name through different prefixes; a strict parser
				// downstream would reject the stanza and break the stream.
				for _, b := range t.Attr[:i] {
					if b.Name.Local == a.Name.Local && b.Name.Space != "" && b.Name.Space != "xmlns" {
						if bns, _ := lookup(b.Name.Space); bns == ns {
							return streamErr(CondNotWellFormed, "duplicate attribute {"+ns+"}"+a.Name.Local)
						}
					}
				}
			}
		}
		return nil
	}
	if err := push(first); err != nil {
		return nil, err
	}
	// The root's attributes, resolved now while its declarations are in
	// scope, and as written, for rewriting the start tag later.
	// Both lists share one allocation.
	attrs := make([]xml.Attr, 0, 2*len(first.Attr))
	rootAttrs := attrs[:0:len(first.Attr)]
	for _, a := range first.Attr {
		switch {
		case a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns"):
			continue
		case a.Name.Space == "xml":
			a.Name.Space = NSXML
		case a.Name.Space != "":
			a.Name.Space, _ = lookup(a.Name.Space)
		}
		rootAttrs = append(rootAttrs, a)
	}
	rootNS := r.contentNS
	if first.Name.Space != "" {
		rootNS, _ = lookup(first.Name.Space)
		needCanonical = true
	}
	if rootNS == NSStream && first.Name.Local == "stream" {
		// A second stream header inside the stream would never end.
		return nil, streamErr(CondUnsupportedStanzaType, "a stream cannot be opened inside a stream")
	} else if v, ok := nsList(decls).get(""); ok {
		rootNS = v
		if v == r.contentNS || isContentNS(v) {
			// The root says it is content (every WebSocket frame does):
			// the declaration is dropped from the start tag, the rest
			// stays as sent.
			dropXmlns = true
		}
	}
	bodyStart := r.dec.InputOffset() - start
	for len(stack) > 0 {
		tok, err := r.rawToken()
		if err != nil {
			if errors.Is(err, io.EOF) && r.fragmentMode {
				return nil, streamErr(CondNotWellFormed, "incomplete element")
			}
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if err := push(t); err != nil {
				return nil, err
			}
		case xml.EndElement:
			top := stack[len(stack)-1].name
			if t.Name != top {
				return nil, streamErr(CondNotWellFormed, "mismatched end tag </"+attrName(t.Name)+">")
			}
			decls = decls[:stack[len(stack)-1].decls]
			stack = stack[:len(stack)-1]
		case xml.Comment:
			return nil, streamErr(CondRestrictedXML, "comments are not allowed")
		case xml.ProcInst:
			return nil, streamErr(CondRestrictedXML, "processing instructions are not allowed")
		case xml.Directive:
			return nil, streamErr(CondRestrictedXML, "DTDs and directives are not allowed")
		}
	}
	end := r.dec.InputOffset()
	b := r.src.buf[start-r.src.base : end-r.src.base]
	if bytes.Contains(b, []byte("&#")) {
		if err := checkCharRefs(b); err != nil {
			return nil, err
		}
	}
	var raw []byte
	if dropXmlns && !needCanonical {
		raw = b // the start tag is rewritten below, into bytes of its own
	} else {
		raw = make([]byte, len(b))
		copy(raw, b)
	}

	ns := rootNS
	if isContentNS(ns) {
		ns = NSClient
	}
	s := &Stanza{Name: first.Name.Local, NS: ns, Raw: raw, bodyStart: int(bodyStart)}
	if raw[len(raw)-2] == '/' && int(bodyStart) == len(raw) {
		s.bodyStart = len(raw)
	}
	if needCanonical {
		tree, err := parseTree(r.wrapForTree(raw), r.contentNS)
		if err != nil {
			return nil, streamErr(CondNotWellFormed, err.Error())
		}
		if tree.Name.Local == "parley-wrap" {
			tree = tree.FirstElement()
		}
		if isContentNS(tree.Name.Space) {
			normalizeContentNS(tree)
		}
		c := FromElement(tree)
		return c, nil
	}
	// Children in the default namespace the root passes on take the one
	// the tree is parsed with.
	for i := range kids {
		if kids[i].ns == inheritNS {
			kids[i].ns = contentDefault(s.NS)
		}
	}
	s.kids, s.kidsKnown = slices.Clone(kids), true
	s.attrs = rootAttrs
	s.rawAttrs = attrs[len(first.Attr):len(first.Attr):cap(attrs)]
	for _, a := range first.Attr {
		if dropXmlns && a.Name.Space == "" && a.Name.Local == "xmlns" {
			continue
		}
		s.rawAttrs = append(s.rawAttrs, a)
	}
	if dropXmlns {
		// Children without a declaration of their own were in the content
		// namespace through the root's, and are so without it too: in any
		// stream the bytes are written to, content is the default.
		selfClosing := s.bodyStart >= len(raw)
		body := raw[s.bodyStart:]
		if selfClosing {
			body = nil
		}
		out := s.appendStartTag(make([]byte, 0, s.startTagSize()+len(body)), selfClosing)
		s.bodyStart = len(out)
		s.Raw = append(out, body...)
	}
	s.fillHeader()
	return s, nil
}

// wrapForTree re-declares stream-level prefixes around raw so that it can
// be parsed on its own.
func (r *Reader) wrapForTree(raw []byte) []byte {
	if len(r.streamNS) == 0 {
		return raw
	}
	var b bytes.Buffer
	b.WriteString("<parley-wrap")
	for _, d := range r.streamNS {
		b.WriteString(" xmlns:" + d.prefix + "='" + EscapeAttr(d.uri) + "'")
	}
	b.WriteByte('>')
	b.Write(raw)
	b.WriteString("</parley-wrap>")
	return b.Bytes()
}

func isContentNS(ns string) bool { return ns == NSClient || ns == NSServer || ns == NSComponent }

// normalizeContentNS maps jabber:server and jabber:component:accept to
// jabber:client throughout a tree so that stanzas from any stream compare
// and serialize the same way.
func normalizeContentNS(e *Element) {
	if e.Name.Space == NSServer || e.Name.Space == NSComponent {
		e.Name.Space = NSClient
	}
	for _, c := range e.Children {
		if c.Elem != nil {
			normalizeContentNS(c.Elem)
		}
	}
}

// validName checks what encoding/xml leaves unchecked in a raw name: both
// parts of a prefixed name must be NCNames (XML Namespaces §3), so a part
// may not start with a digit, '-' or '.', and neither may hold a colon
// (":a" and "a:" come back unsplit). A name that breaks this would be
// written out as malformed XML when the stanza is re-serialized.
func validName(n xml.Name) bool {
	return ncNameStart(n.Local) && (n.Space == "" || ncNameStart(n.Space))
}

func ncNameStart(s string) bool {
	if s == "" || strings.ContainsRune(s, ':') {
		return false
	}
	r, _ := utf8.DecodeRuneInString(s)
	return !(r == '-' || r == '.' || r == 0xB7 || unicode.IsDigit(r) || unicode.In(r, unicode.Mn, unicode.Mc))
}

func attrName(n xml.Name) string {
	if n.Space == "" {
		return n.Local
	}
	return n.Space + ":" + n.Local
}

// checkCharRefs rejects numeric character references to code points XML
// forbids. encoding/xml turns surrogates into U+FFFD silently, which would
// let a sender smuggle characters a strict peer rejects.
func checkCharRefs(b []byte) error {
	for {
		i := bytes.Index(b, []byte("&#"))
		if i < 0 {
			return nil
		}
		b = b[i+2:]
		end := bytes.IndexByte(b, ';')
		if end < 0 {
			return nil
		}
		ref := string(b[:end])
		var n uint64
		var err error
		if strings.HasPrefix(ref, "x") {
			n, err = strconv.ParseUint(ref[1:], 16, 32)
		} else {
			n, err = strconv.ParseUint(ref, 10, 32)
		}
		if err != nil {
			return streamErr(CondNotWellFormed, "invalid character reference &#"+ref+";")
		}
		r := rune(n)
		if !(r == 0x09 || r == 0x0A || r == 0x0D || (r >= 0x20 && r <= 0xD7FF) || (r >= 0xE000 && r <= 0xFFFD) || (r >= 0x10000 && r <= 0x10FFFF)) {
			return streamErr(CondNotWellFormed, "character reference to an illegal code point &#"+ref+";")
		}
		b = b[end:]
	}
}
