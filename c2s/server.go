// Package c2s serves client connections: STARTTLS and direct-TLS TCP
// listeners and RFC 7395 WebSocket. Each connection runs the negotiation
// state machine (TLS → SASL → bind) in one goroutine that owns its state,
// stamps 'from' on what the client sends and hands stanzas to the router.
package c2s

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/parley-xmpp/parley/auth"
	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/router"
	"github.com/parley-xmpp/parley/sm"
	"github.com/parley-xmpp/parley/wire"
)

// Registration answers XEP-0077 requests on streams that are not yet
// authenticated.
type Registration interface {
	// PreAuthStream answers a request on stream st, which keeps state
	// between requests (an invitation token).
	PreAuthStream(ctx context.Context, iq *wire.Stanza, st *module.PreAuthStream) *wire.Stanza
}

// Config configures client service.
type Config struct {
	Domains          []string
	TLS              *tls.Config
	Limits           wire.Limits
	SendQueue        int
	StanzasPerSecond int
	RequireTLS       bool
	AuthTimeout      time.Duration
	PingInterval     time.Duration // 0 disables server pings
	PingTimeout      time.Duration
	// ResumeTimeout is the longest a stream management session stays
	// resumable after its connection drops (XEP-0198); 0 disables resumption.
	ResumeTimeout time.Duration
	// MaxUnacked bounds the stanzas kept for a client until it acknowledges them.
	MaxUnacked int
	// AckQuiet: ask for an acknowledgement this long after the last write
	// when stanzas are unacknowledged.
	AckQuiet time.Duration
	// FAST issues and checks XEP-0484 tokens; nil disables them.
	FAST *auth.FAST
	// Secret keys the stable Bind2 resources (XEP-0386); it must be the
	// same on every node and across restarts.
	Secret []byte
	// WebSocketOrigins: allowed Origin patterns (empty: any).
	WebSocketOrigins []string
	// Bans refuses connections from banned addresses and is told about
	// offences (failed logins, streams closed for the client's fault);
	// nil: no bans.
	Bans   *auth.Bans
	Logger *slog.Logger
}

// Server accepts client connections.
type Server struct {
	cfg      Config
	log      *slog.Logger
	router   *router.Router
	reg      *module.Registry
	auth     *auth.Server
	throttle *auth.Throttle
	register Registration
	domains  map[string]bool
	leaf     *x509.Certificate // our certificate, for tls-server-end-point
	// connLimits, when set, replace cfg's limits for new connections.
	connLimits atomic.Pointer[ConnLimits]

	smDir *sm.Directory[*session]
	tombs *tombstones
	peers Peers // nil: a single node

	mu     sync.Mutex
	conns  map[*conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// New returns a client server. register may be nil.
func New(cfg Config, r *router.Router, reg *module.Registry, a *auth.Server, th *auth.Throttle, register Registration) *Server {
	if cfg.SendQueue <= 0 {
		cfg.SendQueue = 1024
	}
	if cfg.AuthTimeout <= 0 {
		cfg.AuthTimeout = 30 * time.Second
	}
	if cfg.PingTimeout <= 0 {
		cfg.PingTimeout = time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxUnacked <= 0 {
		cfg.MaxUnacked = 1000
	}
	if cfg.AckQuiet <= 0 {
		cfg.AckQuiet = 30 * time.Second
	}
	s := &Server{cfg: cfg, log: cfg.Logger, router: r, reg: reg, auth: a, throttle: th, register: register,
		domains: map[string]bool{}, conns: map[*conn]struct{}{},
		smDir: sm.NewDirectory[*session](), tombs: &tombstones{m: map[string]tomb{}}}
	for _, d := range cfg.Domains {
		s.domains[d] = true
	}
	if cfg.TLS != nil && len(cfg.TLS.Certificates) > 0 {
		s.leaf = leafOf(&cfg.TLS.Certificates[0])
	}
	return s
}

// leafFor is our certificate for domain, for tls-server-end-point: the
// one GetCertificate serves now (it may be reloaded), else the fixed one.
func (s *Server) leafFor(domain string) *x509.Certificate {
	if s.cfg.TLS != nil && s.cfg.TLS.GetCertificate != nil {
		if cert, err := s.cfg.TLS.GetCertificate(&tls.ClientHelloInfo{ServerName: domain}); err == nil && cert != nil {
			return leafOf(cert)
		}
	}
	return s.leaf
}

func leafOf(cert *tls.Certificate) *x509.Certificate {
	if cert.Leaf != nil {
		return cert.Leaf
	}
	if len(cert.Certificate) > 0 {
		leaf, _ := x509.ParseCertificate(cert.Certificate[0])
		return leaf
	}
	return nil
}

// ServeTCP accepts connections on ln until it is closed. With directTLS the
// TLS handshake happens first (XEP-0368); otherwise clients use STARTTLS.
func (s *Server) ServeTCP(ln net.Listener, directTLS bool) error {
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				delay = min(max(delay*2, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		if s.cfg.Bans.Banned(c.RemoteAddr().String()) {
			bannedRefused.Inc()
			_ = c.Close()
			continue
		}
		go s.serveTCPConn(c, directTLS)
	}
}

func (s *Server) serveTCPConn(c net.Conn, directTLS bool) {
	t := newTCPTransport(c, s.limits().Limits)
	if directTLS {
		if err := t.startTLS(s.cfg.TLS); err != nil {
			_ = c.Close()
			return
		}
		t.restart()
	}
	s.serve(t)
}

// WebSocketHandler serves RFC 7395 at the path it is mounted on. secure
// says whether the HTTP listener itself is TLS; plain HTTP counts as
// secure only from loopback (a local reverse proxy or a local client).
func (s *Server) WebSocketHandler(secure bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		opts := &websocket.AcceptOptions{Subprotocols: []string{"xmpp"}}
		if len(s.cfg.WebSocketOrigins) == 0 {
			// Web clients are served from other origins and authenticate
			// with SASL, not cookies, so any origin may connect.
			opts.InsecureSkipVerify = true
		} else {
			opts.OriginPatterns = s.cfg.WebSocketOrigins
		}
		if !strings.Contains(strings.ToLower(r.Header.Get("Sec-WebSocket-Protocol")), "xmpp") {
			http.Error(w, "the WebSocket subprotocol must be xmpp (RFC 7395)", http.StatusBadRequest)
			return
		}
		if s.cfg.Bans.Banned(r.RemoteAddr) {
			bannedRefused.Inc()
			http.Error(w, "this address is banned for a while", http.StatusForbidden)
			return
		}
		c, err := websocket.Accept(w, r, opts)
		if err != nil {
			return
		}
		isSecure := secure || r.TLS != nil || isLoopback(r.RemoteAddr)
		s.serve(newWSTransport(c, s.limits().Limits, isSecure, r.TLS, r.RemoteAddr))
	})
}

func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (s *Server) serve(t transport) {
	c := newConn(s, t)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		t.closeStream(&wire.StreamError{Condition: wire.CondSystemShutdown})
		return
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	connections.WithLabelValues(t.kind()).Inc()
	connectionsTotal.WithLabelValues(t.kind()).Inc()
	defer func() {
		connections.WithLabelValues(t.kind()).Dec()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		s.wg.Done()
	}()
	c.run()
}

func (s *Server) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Shutdown closes every stream with <system-shutdown/> and waits for the
// connections to finish (or ctx to expire).
func (s *Server) Shutdown(ctx context.Context) {
	s.mu.Lock()
	s.closed = true
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.shutdown()
	}
	// Hibernated sessions have no connection: end them now.
	for _, ms := range s.router.AllSessions() {
		if ss, ok := ms.(*session); ok && ss.transport() == nil {
			go s.terminate(ss, nil)
		}
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// ConnLimits are the limits a new connection gets; SetLimits changes them
// for connections opened afterwards (configuration reload).
type ConnLimits struct {
	Limits           wire.Limits
	SendQueue        int
	StanzasPerSecond int
}

// SetLimits replaces the limits of new connections.
func (s *Server) SetLimits(l ConnLimits) {
	if l.SendQueue <= 0 {
		l.SendQueue = s.cfg.SendQueue
	}
	s.connLimits.Store(&l)
}

func (s *Server) limits() *ConnLimits {
	if l := s.connLimits.Load(); l != nil {
		return l
	}
	return &ConnLimits{Limits: s.cfg.Limits, SendQueue: s.cfg.SendQueue, StanzasPerSecond: s.cfg.StanzasPerSecond}
}

// Connections returns how many client connections are open (a session
// that hibernated has none), for tests that wait for the server to notice
// a client that went away.
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}
