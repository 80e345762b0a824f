// Package proxy65 is an XEP-0065 SOCKS5 bytestreams proxy
// (proxy.<host>): two clients that cannot reach each other directly —
// both behind NAT — each open a SOCKS5 connection to it naming the same
// stream (SHA-1 of the stream id and both JIDs), the initiator asks for
// activation, and the proxy relays the bytes. Jingle file transfer in
// Gajim and Dino, and slixmpp's xep_0065, use it for transfers that do not
// go through HTTP upload.
//
// Only users of this server may activate streams, and each user a few at
// a time; a stream carries at most a configured number of bytes; a
// connection must make its SOCKS5 request within 10 s, an unactivated one
// is dropped after a minute, and there are caps on how many may wait and
// on the connections open at once.
package proxy65

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/netlimit"
	"github.com/parley-xmpp/parley/wire"
	"github.com/parley-xmpp/parley/xep"
)

// NS is the XEP-0065 namespace.
const NS = xep.NSBytestreams

// Settings is the proxy65 section of the configuration file.
type Settings struct {
	// Listen is the address SOCKS5 clients connect to ("" disables the
	// proxy and its service hosts).
	Listen string `mapstructure:"listen"`
	// Host is the address announced to clients (a name or IP they can
	// reach); "" announces each virtual host's own name.
	Host string `mapstructure:"host"`
	// Port announced to clients; 0: the port of Listen.
	Port int `mapstructure:"port"`
	// MaxBytes a stream may carry (both directions together).
	MaxBytes int64 `mapstructure:"max_bytes"`
	// MaxStreams active at once in all; MaxStreamsPerUser per activating
	// user.
	MaxStreams        int `mapstructure:"max_streams"`
	MaxStreamsPerUser int `mapstructure:"max_streams_per_user"`
}

// DefaultSettings: off; when on, 1 GiB per stream, 100 streams, 5 per user.
func DefaultSettings() Settings {
	return Settings{MaxBytes: 1 << 30, MaxStreams: 100, MaxStreamsPerUser: 5}
}

// Problems returns what is wrong with s ("key: problem").
func (s Settings) Problems() []string {
	var p []string
	if s.Listen != "" {
		if _, port, err := net.SplitHostPort(s.Listen); err != nil || port == "" {
			p = append(p, fmt.Sprintf("listen: %q is not a host:port address (\"\" disables the proxy)", s.Listen))
		}
	}
	if s.Port < 0 || s.Port > 65535 {
		p = append(p, "port: expected a port from 1 to 65535, or 0 for the port of listen")
	}
	if s.MaxBytes < 1<<20 {
		p = append(p, "max_bytes: expected at least 1048576 bytes")
	}
	if s.MaxStreams < 1 {
		p = append(p, "max_streams: expected at least 1")
	}
	if s.MaxStreamsPerUser < 1 {
		p = append(p, "max_streams_per_user: expected at least 1")
	}
	return p
}

// Limits of connections that wait for their pair and activation.
const (
	handshakeTimeout = 10 * time.Second // the SOCKS5 greeting and request
	pendingTimeout   = time.Minute
	maxPending       = 512
	idleTimeout      = 5 * time.Minute // no byte either way
)

// Config configures the module.
type Config struct {
	Settings
	Domains []string // the virtual hosts: each gets proxy.<host>
	Logger  *slog.Logger
}

// Module implements module.Module.
type Module struct {
	cfg  Config
	log  *slog.Logger
	port int // announced

	// maxConns bounds the connections open at once, whatever their
	// stage: a connection costs a goroutine from its accept on, also
	// before its SOCKS5 request is in.
	maxConns int
	// idle: a connection that moves no byte either way for this long, or
	// a write that makes no progress, ends the stream (a field so tests
	// can shorten it).
	idle time.Duration

	mu      sync.Mutex
	pending map[string][]*pconn // by destination hash: connections waiting
	active  int
	perUser map[string]int
	all     map[*pconn]struct{}
	closed  bool
	wg      sync.WaitGroup
}

var _ module.Module = (*Module)(nil)

// New returns the module.
func New(cfg Config) *Module {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Module{cfg: cfg, log: cfg.Logger, maxConns: maxPending + 2*cfg.MaxStreams, idle: idleTimeout,
		pending: map[string][]*pconn{}, perUser: map[string]int{}, all: map[*pconn]struct{}{}}
}

// Enabled reports whether the proxy is configured.
func (m *Module) Enabled() bool { return m.cfg.Listen != "" }

// Name implements module.Module.
func (m *Module) Name() string { return "proxy65" }

// Register implements module.Module.
func (m *Module) Register(r *module.Registry) error {
	if !m.Enabled() {
		return nil
	}
	taken := map[string]bool{}
	for _, h := range r.Hosts() {
		taken[h.Domain] = true
	}
	for _, d := range m.cfg.Domains {
		host := "proxy." + d
		if taken[host] {
			return fmt.Errorf("proxy65: service host %q is used twice", host)
		}
		// No Handler: messages and presence to it get service-unavailable.
		r.AddHost(module.Host{Domain: host, Parent: d, Name: "SOCKS5 bytestreams proxy"})
		r.HostIQ(host, xep.NSDiscoInfo, "query", module.TargetHost, m.discoInfo)
		r.HostIQ(host, xep.NSDiscoItems, "query", module.TargetHost, m.discoItems)
		r.HostIQ(host, NS, "query", module.TargetHost, m.handle)
	}
	return nil
}

func (m *Module) discoInfo(_ context.Context, ev *module.Event) (*wire.Element, error) {
	if ev.Stanza.Type != "get" || ev.Stanza.Tree().FirstElement().AttrValue("node") != "" {
		return nil, module.Err(wire.ErrItemNotFound)
	}
	return wire.NewElement(xep.NSDiscoInfo, "query").Add(
		wire.NewElement(xep.NSDiscoInfo, "identity", "category", "proxy", "type", "bytestreams", "name", "SOCKS5 bytestreams proxy"),
		wire.NewElement(xep.NSDiscoInfo, "feature", "var", xep.NSDiscoInfo),
		wire.NewElement(xep.NSDiscoInfo, "feature", "var", xep.NSDiscoItems),
		wire.NewElement(xep.NSDiscoInfo, "feature", "var", NS)), nil
}

func (m *Module) discoItems(_ context.Context, ev *module.Event) (*wire.Element, error) {
	if ev.Stanza.Type != "get" || ev.Stanza.Tree().FirstElement().AttrValue("node") != "" {
		return nil, module.Err(wire.ErrItemNotFound)
	}
	return wire.NewElement(xep.NSDiscoItems, "query"), nil
}

func (m *Module) isProxy(domain string) bool {
	for _, d := range m.cfg.Domains {
		if domain == "proxy."+d {
			return true
		}
	}
	return false
}

// handle answers the network address query (§6.3.1) and activation
// requests (§6.3.4), for the server's own users.
func (m *Module) handle(ctx context.Context, ev *module.Event) (*wire.Element, error) {
	proxy := ev.To.Domainpart()
	if !m.isProxy(proxy) {
		return nil, module.Err(wire.ErrServiceUnavailable)
	}
	parent := proxy[len("proxy."):]
	if ev.Origin.Kind != module.FromClient || ev.From.Localpart() == "" || ev.From.Domainpart() != parent {
		return nil, module.Errorf(wire.ErrForbidden, "this proxy is for the users of %s", parent)
	}
	q := ev.Stanza.Child(NS, "query")
	if ev.Stanza.Type == "get" {
		host := m.cfg.Host
		if host == "" {
			host = parent
		}
		return wire.NewElement(NS, "query").Add(wire.NewElement(NS, "streamhost", "jid", proxy, "host", host,
			"port", strconv.Itoa(m.announcedPort()))), nil
	}
	sid := q.AttrValue("sid")
	target := q.ChildText(NS, "activate")
	if sid == "" || target == "" {
		return nil, module.Errorf(wire.ErrBadRequest, "activation needs a sid and an <activate/> target")
	}
	return nil, m.activate(DestHash(sid, ev.From.String(), target), ev.From.Bare().String())
}

// DestHash is the SOCKS5 destination both parties of a stream name:
// hex SHA-1(sid ‖ initiator's full JID ‖ target's full JID) (§5.3.2).
func DestHash(sid, initiator, target string) string {
	d := sha1.Sum([]byte(sid + initiator + target))
	return hex.EncodeToString(d[:])
}

func (m *Module) announcedPort() int {
	if m.cfg.Port > 0 {
		return m.cfg.Port
	}
	m.mu.Lock()
	port := m.port
	m.mu.Unlock()
	if port > 0 {
		return port
	}
	_, p, _ := net.SplitHostPort(m.cfg.Listen)
	n, _ := strconv.Atoi(p)
	return n
}

// activate starts relaying between the two connections waiting for hash.
func (m *Module) activate(hash, user string) error {
	m.mu.Lock()
	conns := m.pending[hash]
	switch {
	case len(conns) < 2:
		m.mu.Unlock()
		return module.Errorf(wire.ErrItemNotFound, "both parties must be connected to the proxy before activation")
	case m.active >= m.cfg.MaxStreams:
		m.mu.Unlock()
		return module.Errorf(wire.ErrResourceConstraint, "the proxy relays as many streams as it may")
	case m.perUser[user] >= m.cfg.MaxStreamsPerUser:
		m.mu.Unlock()
		return module.Errorf(wire.ErrResourceConstraint, "at most %d streams at once per user", m.cfg.MaxStreamsPerUser)
	}
	delete(m.pending, hash)
	m.active++
	m.perUser[user]++
	a, b := conns[0], conns[1]
	close(a.act)
	close(b.act)
	m.mu.Unlock()
	go m.relay(a, b, user)
	return nil
}

// relay copies bytes both ways until one side closes or the stream has
// carried MaxBytes.
func (m *Module) relay(a, b *pconn, user string) {
	streamsActive.Inc()
	defer streamsActive.Dec()
	budget := &byteBudget{left: m.cfg.MaxBytes}
	done := make(chan struct{}, 2)
	pipe := func(dst, src *pconn) {
		n, _ := io.Copy(dst.nc, budget.reader(src, m.idle))
		bytesRelayed.Add(float64(n))
		_ = dst.nc.CloseWrite() // the other side learns that no more data comes
		done <- struct{}{}
	}
	go pipe(a, b)
	go pipe(b, a)
	<-done
	<-done
	a.nc.Close()
	b.nc.Close()
	close(a.fin)
	close(b.fin)
	m.mu.Lock()
	m.active--
	if m.perUser[user]--; m.perUser[user] <= 0 {
		delete(m.perUser, user)
	}
	m.mu.Unlock()
}

// byteBudget is what a stream may still carry, shared by both directions.
type byteBudget struct {
	mu   sync.Mutex
	left int64
}

func (b *byteBudget) reader(c *pconn, idle time.Duration) io.Reader { return budgetReader{b, c, idle} }

type budgetReader struct {
	b    *byteBudget
	c    *pconn
	idle time.Duration
}

func (r budgetReader) Read(p []byte) (int, error) {
	r.b.mu.Lock()
	left := r.b.left
	r.b.mu.Unlock()
	if left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > left {
		p = p[:left]
	}
	_ = r.c.nc.SetReadDeadline(time.Now().Add(r.idle))
	n, err := r.c.nc.Read(p)
	r.b.mu.Lock()
	r.b.left -= int64(n)
	r.b.mu.Unlock()
	return n, err
}

// Serve accepts SOCKS5 connections on ln until it is closed.
func (m *Module) Serve(ln net.Listener) error {
	if a, ok := ln.Addr().(*net.TCPAddr); ok {
		m.mu.Lock()
		m.port = a.Port
		m.mu.Unlock()
	}
	return netlimit.Serve(ln, func(nc net.Conn) {
		// Every write has a deadline: a peer that stops reading ends
		// the stream instead of holding the relay.
		c := &pconn{nc: netlimit.NewConn(nc, m.idle, nil), act: make(chan struct{}), fin: make(chan struct{})}
		m.mu.Lock()
		if m.closed || len(m.all) >= m.maxConns {
			closed := m.closed
			m.mu.Unlock()
			if !closed {
				connsRefused.WithLabelValues("full").Inc()
			}
			nc.Close()
			return
		}
		m.all[c] = struct{}{}
		m.wg.Add(1)
		m.mu.Unlock()
		go func() {
			defer m.wg.Done()
			m.serveConn(c)
			m.mu.Lock()
			delete(m.all, c)
			m.mu.Unlock()
		}()
	})
}

// Shutdown closes every connection and waits for them (or ctx).
func (m *Module) Shutdown(ctx context.Context) {
	m.mu.Lock()
	m.closed = true
	for c := range m.all {
		c.nc.Close()
	}
	m.mu.Unlock()
	done := make(chan struct{})
	go func() { m.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// serveConn runs the SOCKS5 handshake (RFC 1928, as XEP-0065 §5.3
// profiles it: no authentication, CONNECT to a domain name that is the
// 40-character destination hash, port 0) and waits for activation.
func (m *Module) serveConn(c *pconn) {
	_ = c.nc.SetDeadline(time.Now().Add(handshakeTimeout))
	hash, err := socks5Handshake(c.nc)
	if err != nil {
		connsRefused.WithLabelValues("protocol").Inc()
		c.nc.Close()
		return
	}
	// The handshake's deadline ends here, before the connection can be
	// activated: cleared later, it could clear the deadlines the relay
	// had set meanwhile and leave a stalled peer's stream without any.
	// Waiting for the pair is bounded by the timer below, each write by
	// netlimit.Conn.
	_ = c.nc.SetDeadline(time.Time{})
	m.mu.Lock()
	n := 0
	for _, cs := range m.pending {
		n += len(cs)
	}
	if n >= maxPending || len(m.pending[hash]) >= 2 {
		m.mu.Unlock()
		connsRefused.WithLabelValues("full").Inc()
		c.nc.Close()
		return
	}
	m.pending[hash] = append(m.pending[hash], c)
	m.mu.Unlock()
	// Answered only now: a client that has its reply can be activated.
	if err := socks5Reply(c.nc, hash); err != nil {
		m.drop(c, hash)
		c.nc.Close()
		return
	}
	timer := time.NewTimer(pendingTimeout)
	defer timer.Stop()
	select {
	case <-c.act:
		<-c.fin // the relay owns it now
	case <-timer.C:
		if !m.drop(c, hash) {
			connsRefused.WithLabelValues("timeout").Inc()
			c.nc.Close()
			return
		}
		<-c.fin
	}
}

// socks5Handshake reads the greeting and the CONNECT request and returns
// the destination hash; the caller answers the request (socks5Reply) once
// the connection can be activated.
func socks5Handshake(rw io.ReadWriter) (string, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(rw, hdr[:]); err != nil || hdr[0] != 5 || hdr[1] == 0 {
		return "", errors.New("proxy65: not a SOCKS5 greeting")
	}
	methods := make([]byte, hdr[1])
	if _, err := io.ReadFull(rw, methods); err != nil {
		return "", err
	}
	noAuth := false
	for _, mth := range methods {
		noAuth = noAuth || mth == 0
	}
	if !noAuth {
		_, _ = rw.Write([]byte{5, 0xff})
		return "", errors.New("proxy65: client does not offer 'no authentication'")
	}
	if _, err := rw.Write([]byte{5, 0}); err != nil {
		return "", err
	}
	var req [5]byte // VER CMD RSV ATYP LEN
	if _, err := io.ReadFull(rw, req[:]); err != nil {
		return "", err
	}
	if req[0] != 5 || req[1] != 1 || req[3] != 3 || req[4] != 40 {
		_, _ = rw.Write([]byte{5, 8, 0, 1, 0, 0, 0, 0, 0, 0}) // address type not supported
		return "", errors.New("proxy65: expected CONNECT to a 40-character domain name")
	}
	rest := make([]byte, 40+2)
	if _, err := io.ReadFull(rw, rest); err != nil {
		return "", err
	}
	hash := string(rest[:40])
	if _, err := hex.DecodeString(hash); err != nil {
		return "", errors.New("proxy65: the destination is not a hex SHA-1")
	}
	return hash, nil
}

// socks5Reply tells the client its CONNECT to hash succeeded.
func socks5Reply(w io.Writer, hash string) error {
	reply := append([]byte{5, 0, 0, 3, 40}, hash...)
	_, err := w.Write(append(reply, 0, 0))
	return err
}

// Connect is the client side of the CONNECT this proxy accepts (XEP-0065
// §5.3: no authentication, the destination hash as a domain name, port
// 0): it returns once the proxy has answered, so the stream can be
// activated. For tests and tools; clients have their own.
func Connect(rw io.ReadWriter, hash string) error {
	if _, err := rw.Write([]byte{5, 1, 0}); err != nil {
		return err
	}
	var sel [2]byte
	if _, err := io.ReadFull(rw, sel[:]); err != nil {
		return err
	}
	if sel != [2]byte{5, 0} {
		return fmt.Errorf("proxy65: method selection %v", sel)
	}
	req := append([]byte{5, 1, 0, 3, byte(len(hash))}, hash...)
	if _, err := rw.Write(append(req, 0, 0)); err != nil {
		return err
	}
	reply := make([]byte, 5+len(hash)+2)
	if _, err := io.ReadFull(rw, reply); err != nil {
		return err
	}
	if reply[1] != 0 || string(reply[5:5+len(hash)]) != hash {
		return fmt.Errorf("proxy65: CONNECT answered %v", reply)
	}
	return nil
}

// pconn is one SOCKS5 connection.
type pconn struct {
	nc  *netlimit.Conn
	act chan struct{} // closed at activation (under Module.mu)
	fin chan struct{} // closed when the relay is over
}

// drop removes c from the connections waiting for hash, unless it was
// activated meanwhile (then it reports true).
func (m *Module) drop(c *pconn, hash string) (activated bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	cs := m.pending[hash]
	for i, x := range cs {
		if x == c {
			m.pending[hash] = append(cs[:i:i], cs[i+1:]...)
		}
	}
	if len(m.pending[hash]) == 0 {
		delete(m.pending, hash)
	}
	return isClosed(c.act)
}

func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
