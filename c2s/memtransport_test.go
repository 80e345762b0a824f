package c2s

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/auth"
	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/netlimit"
	"github.com/parley-xmpp/parley/router"
	"github.com/parley-xmpp/parley/storage/sqlite"
	"github.com/parley-xmpp/parley/wire"
)

// memTransport is an in-memory transport: the test hands the connection
// whole stream headers and elements, and reads back what the server wrote,
// one element (or header with features) at a time. It runs the state
// machine without XML on sockets, and without TLS (secure says whether the
// stream counts as encrypted).
type memTransport struct {
	in     chan any // wire.Header, *wire.Stanza or error
	out    chan any // wire.Header (ours), *wire.Stanza, or io.EOF when closed
	sec    bool
	closed atomic.Bool
	once   sync.Once
	done   chan struct{}
	last   atomic.Int64
}

func newMemTransport(secure bool) *memTransport {
	t := &memTransport{in: make(chan any, 64), out: make(chan any, 4096), sec: secure, done: make(chan struct{})}
	t.last.Store(time.Now().UnixNano())
	return t
}

func (t *memTransport) read() (any, error) {
	select {
	case v := <-t.in:
		t.last.Store(time.Now().UnixNano())
		if err, ok := v.(error); ok {
			return nil, err
		}
		return v, nil
	case <-t.done:
		return nil, io.EOF
	}
}

func (t *memTransport) readHeader() (wire.Header, error) {
	v, err := t.read()
	if err != nil {
		return wire.Header{}, err
	}
	h, ok := v.(wire.Header)
	if !ok {
		return wire.Header{}, &wire.StreamError{Condition: wire.CondNotWellFormed, Text: "expected a header"}
	}
	return h, nil
}

func (t *memTransport) park() bool  { return false }
func (t *memTransport) wait() error { return nil }

func (t *memTransport) next() (*wire.Stanza, error) {
	v, err := t.read()
	if err != nil {
		return nil, err
	}
	st, ok := v.(*wire.Stanza)
	if !ok {
		return nil, &wire.StreamError{Condition: wire.CondUnsupportedStanzaType, Text: "a stream header inside the stream"}
	}
	return st, nil
}

func (t *memTransport) emit(v any) error {
	if t.closed.Load() {
		return errClosed
	}
	select {
	case t.out <- v:
		return nil
	default:
		return errors.New("memTransport: the test does not read")
	}
}

func (t *memTransport) writeHeader(id, from, lang string, features []byte) error {
	if err := t.emit(wire.Header{ID: id, From: from, Lang: lang}); err != nil {
		return err
	}
	if features == nil {
		return nil
	}
	f, err := wire.Parse([]byte("<features xmlns='"+wire.NSStream+"'>"+string(features)+"</features>"), wire.Limits{})
	if err != nil {
		return err
	}
	return t.emit(f)
}

func (t *memTransport) write(st *wire.Stanza) error { return t.emit(st) }

func (t *memTransport) writeRaw(b []byte) error {
	st, err := wire.Parse(b, wire.Limits{})
	if err != nil {
		return err
	}
	return t.emit(st)
}

func (t *memTransport) flush() error { return nil }

func (t *memTransport) closeStream(se *wire.StreamError) {
	if se != nil {
		b := se.Bytes()
		if st, err := wire.Parse(append([]byte("<stream:error xmlns:stream='"+wire.NSStream+"'>"), b[len("<stream:error>"):]...), wire.Limits{}); err == nil {
			_ = t.emit(st)
		}
	}
	t.close()
}

func (t *memTransport) close() {
	t.once.Do(func() {
		t.closed.Store(true)
		close(t.done)
		t.out <- io.EOF
	})
}

func (t *memTransport) finalClose()                    { t.close() }
func (t *memTransport) setBudget(*netlimit.Bucket)     {}
func (t *memTransport) startTLS(*tls.Config) error     { return errors.New("no TLS in memory") }
func (t *memTransport) restart()                       {}
func (t *memTransport) tlsState() *tls.ConnectionState { return nil }
func (t *memTransport) secure() bool                   { return t.sec }
func (t *memTransport) remoteAddr() string             { return "192.0.2.1:5222" }
func (t *memTransport) kind() string                   { return "tcp" }
func (t *memTransport) lastActivity() time.Time        { return time.Unix(0, t.last.Load()) }

// harness is a c2s server with a real router and SQLite store, served over
// memTransports.
type harness struct {
	t      testing.TB
	srv    *Server
	router *router.Router
}

const testDomain = "example.org"

func newHarness(t testing.TB, mod func(*Config)) *harness {
	t.Helper()
	ctx := context.Background()
	store, err := sqlite.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	for _, u := range []string{"alice", "bob"} {
		creds, err := auth.DeriveCredentials("pw-"+u, auth.MinIterations)
		if err != nil {
			t.Fatal(err)
		}
		if err := store.CreateAccount(ctx, u+"@"+testDomain, creds); err != nil {
			t.Fatal(err)
		}
	}
	r := router.New(router.Config{Domains: []string{testDomain}})
	reg := module.NewRegistry([]string{testDomain}, r.Sender(), r)
	r.SetRegistry(reg)
	cfg := Config{Domains: []string{testDomain}, RequireTLS: true, AuthTimeout: 5 * time.Second,
		ResumeTimeout: time.Minute, PingInterval: 0, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if mod != nil {
		mod(&cfg)
	}
	srv := New(cfg, r, reg, auth.NewServer(auth.Config{AllowPlain: true, RequireTLS: true}, store),
		auth.NewThrottle(auth.ThrottleConfig{MaxFailures: 100, Window: time.Minute}), nil)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		if n := srv.Goroutines(); n != 0 {
			t.Errorf("%d connection goroutines left after Shutdown", n)
		}
	})
	return &harness{t: t, srv: srv, router: r}
}

// client drives one memTransport connection.
type client struct {
	t   testing.TB
	tr  *memTransport
	jid string
}

// connect serves a new connection (counted as encrypted) and opens the
// stream; it returns the features.
func (h *harness) connect() (*client, *wire.Stanza) {
	h.t.Helper()
	return h.connectAs(h.t)
}

// connectAs is connect reporting to t (a fuzz input's, where the harness
// belongs to the fuzz target).
func (h *harness) connectAs(t testing.TB) (*client, *wire.Stanza) {
	t.Helper()
	adm, se := h.srv.admit("192.0.2.1:5222", false)
	if se != nil {
		t.Fatalf("admit: %v", se)
	}
	tr := newMemTransport(true)
	c := newConn(h.srv, tr, adm)
	h.srv.lives.add()
	go func() {
		defer h.srv.lives.done()
		c.serve(false)
	}()
	cl := &client{t: t, tr: tr}
	return cl, cl.open()
}

func (c *client) open() *wire.Stanza {
	c.t.Helper()
	c.tr.in <- wire.Header{To: testDomain, Version: "1.0", NS: wire.NSClient}
	if _, ok := c.next().(wire.Header); !ok {
		c.t.Fatal("no stream header")
	}
	return c.element()
}

func (c *client) send(xml string) {
	c.t.Helper()
	st, err := wire.Parse([]byte(xml), wire.Limits{})
	if err != nil {
		c.t.Fatalf("bad test input %s: %v", xml, err)
	}
	c.tr.in <- st
}

// next returns what the server wrote next.
func (c *client) next() any {
	c.t.Helper()
	select {
	case v := <-c.tr.out:
		return v
	case <-time.After(5 * time.Second):
		c.t.Fatal("the server wrote nothing within 5s")
		return nil
	}
}

// element returns the next element the server wrote.
func (c *client) element() *wire.Stanza {
	c.t.Helper()
	v := c.next()
	st, ok := v.(*wire.Stanza)
	if !ok {
		c.t.Fatalf("want an element, got %v", v)
	}
	return st
}

// expect returns the next element matching, skipping others.
func (c *client) expect(what string, match func(*wire.Stanza) bool) *wire.Stanza {
	c.t.Helper()
	for {
		v := c.next()
		if st, ok := v.(*wire.Stanza); ok && match(st) {
			return st
		}
		if v == io.EOF {
			c.t.Fatalf("stream closed before %s", what)
		}
	}
}

// streamError waits for the stream to end and returns its error condition.
func (c *client) streamError() string {
	c.t.Helper()
	for {
		switch v := c.next().(type) {
		case *wire.Stanza:
			if v.NS == wire.NSStream && v.Name == "error" {
				return v.Tree().FirstElement().Name.Local
			}
		case error:
			return ""
		}
	}
}
