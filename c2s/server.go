// Package c2s serves client connections: STARTTLS and direct-TLS TCP
// listeners and RFC 7395 WebSocket. Each connection runs the negotiation
// state machine (TLS → SASL → bind) in one goroutine that owns its state,
// stamps 'from' on what the client sends and hands stanzas to the router.
package c2s

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/parley-xmpp/parley/auth"
	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/netlimit"
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
	Domains []string
	TLS     *tls.Config
	Limits  wire.Limits
	// SendQueueBytes bounds what is queued for one client (default 8 MiB,
	// each stanza counted with its bookkeeping); a client that lets more
	// pile up is disconnected with policy-violation.
	SendQueueBytes   int
	StanzasPerSecond int
	// WriteTimeout: a write to a client that does not progress for this
	// long fails and ends the connection (default 30s).
	WriteTimeout time.Duration
	// PreAuthBytesPerSecond and PreAuthStanzasPerSecond bound what a
	// connection may send before it authenticates (bursts of four
	// seconds' worth); beyond, the stream is closed with policy-violation.
	// 0: no limit.
	PreAuthBytesPerSecond   int
	PreAuthStanzasPerSecond int
	// ConnectionsPerAddress bounds the client connections (TCP, TLS and
	// WebSocket) from one address (IPv6: one /64); MaxUnauthenticated
	// bounds the connections that have not authenticated yet, in total.
	// 0: no limit.
	ConnectionsPerAddress int
	MaxUnauthenticated    int
	// TrustedProxies are reverse proxies in front of WebSocket: the
	// WebSocket connections they carry are not counted per address (they
	// all come from the proxy's).
	TrustedProxies []netip.Prefix
	RequireTLS     bool
	AuthTimeout    time.Duration
	PingInterval   time.Duration // 0 disables server pings
	PingTimeout    time.Duration
	// ResumeTimeout is the longest a stream management session stays
	// resumable after its connection drops (XEP-0198); 0 disables resumption.
	ResumeTimeout time.Duration
	// MaxUnacked bounds the stanzas and MaxUnackedBytes their bytes
	// (default 8 MiB) kept for a client until it acknowledges them; beyond,
	// the session ends for good and loses resumability, its
	// unacknowledged messages going to offline storage.
	MaxUnacked      int
	MaxUnackedBytes int
	// CSIHoldBytes bounds what is held back for an inactive client
	// (XEP-0352, default 512 KiB); beyond, the held stanzas are written.
	CSIHoldBytes int
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

	perAddr *netlimit.PerAddress
	unauth  atomic.Int64 // connections not authenticated yet
	rejects *netlimit.Refusals
	lives   lives

	mu     sync.Mutex
	conns  map[*conn]struct{}
	closed bool
}

// New returns a client server. register may be nil.
func New(cfg Config, r *router.Router, reg *module.Registry, a *auth.Server, th *auth.Throttle, register Registration) *Server {
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
	if cfg.SendQueueBytes <= 0 {
		cfg.SendQueueBytes = 8 << 20
	}
	if cfg.MaxUnackedBytes <= 0 {
		cfg.MaxUnackedBytes = 8 << 20
	}
	if cfg.CSIHoldBytes <= 0 {
		cfg.CSIHoldBytes = 512 << 10
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 30 * time.Second
	}
	s := &Server{cfg: cfg, log: cfg.Logger, router: r, reg: reg, auth: a, throttle: th, register: register,
		domains: map[string]bool{}, conns: map[*conn]struct{}{},
		smDir: sm.NewDirectory[*session](), tombs: &tombstones{m: map[string]tomb{}},
		perAddr: netlimit.NewPerAddress(cfg.ConnectionsPerAddress), rejects: netlimit.NewRefusals(64)}
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
	// The listener goroutine belongs to the caller; connections are counted
	// in lives.
	return netlimit.Serve(ln, func(c net.Conn) {
		if s.cfg.Bans.Banned(c.RemoteAddr().String()) {
			bannedRefused.Inc()
			_ = c.Close()
			return
		}
		adm, se := s.admit(c.RemoteAddr().String(), false)
		if se != nil {
			s.refuse(c, directTLS, se)
			return
		}
		l := s.limits()
		t := newTCPTransport(c, l.Limits, l.WriteTimeout)
		t.setBudget(preAuthBudget(l))
		cn := newConn(s, t, adm)
		s.lives.add()
		go func() {
			defer s.lives.done()
			cn.serve(directTLS)
		}()
	})
}

// admission is a connection admitted by the limits: it counts against its
// address until it ends and against the unauthenticated connections until
// it authenticates.
type admission struct {
	srv     *Server
	release func()
	unauth  atomic.Bool
}

// authenticated stops counting the connection as unauthenticated.
func (a *admission) authenticated() {
	if a != nil && a.unauth.Swap(false) {
		a.srv.unauth.Add(-1)
		unauthenticated.Dec()
	}
}

// end releases the connection's counts.
func (a *admission) end() {
	if a == nil {
		return
	}
	a.authenticated()
	a.release()
}

// admit applies the connection limits to a new connection from addr. When
// it is admitted the caller must call end on the admission when the
// connection ends; otherwise se says why not.
func (s *Server) admit(addr string, viaProxy bool) (*admission, *wire.StreamError) {
	rel, ok := func() { /* counted below */ }, true
	if !viaProxy {
		rel, ok = s.perAddr.Acquire(addr)
	}
	if !ok {
		limitHits.WithLabelValues(limitPerAddress).Inc()
		return nil, &wire.StreamError{Condition: wire.CondPolicyViolation, Text: "too many connections from your address"}
	}
	if n := s.unauth.Add(1); s.cfg.MaxUnauthenticated > 0 && n > int64(s.cfg.MaxUnauthenticated) {
		s.unauth.Add(-1)
		rel()
		limitHits.WithLabelValues(limitUnauth).Inc()
		return nil, &wire.StreamError{Condition: wire.CondResourceConstraint, Text: "too many connections are authenticating; try again later"}
	}
	unauthenticated.Inc()
	a := &admission{srv: s, release: rel}
	a.unauth.Store(true)
	return a, nil
}

// refuse tells a refused client why (on plain TCP; a TLS handshake would
// cost more than the refusal saves) and closes the connection. It never
// blocks the accept loop, and at most a few refusals linger at a time.
func (s *Server) refuse(c net.Conn, directTLS bool, se *wire.StreamError) {
	if directTLS {
		_ = c.Close()
		return
	}
	s.rejects.Refuse(c, s.lives.Go, func(c net.Conn) {
		t := newTCPTransport(c, s.cfg.Limits, time.Second)
		from := ""
		if len(s.cfg.Domains) > 0 {
			from = s.cfg.Domains[0]
		}
		_ = c.SetReadDeadline(time.Now().Add(lingerTime))
		_ = t.writeHeader(router.NewID(), from, "en", nil)
		t.closeStream(se)
		t.finalClose()
	})
}

// preAuthBudget is the byte budget of a connection until it authenticates.
func preAuthBudget(l *ConnLimits) *netlimit.Bucket {
	return netlimit.NewBucket(l.PreAuthBytesPerSecond, 4*l.PreAuthBytesPerSecond)
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
		adm, se := s.admit(r.RemoteAddr, netlimit.Exempt(r.RemoteAddr, s.cfg.TrustedProxies))
		if se != nil {
			w.Header().Set("Retry-After", "60")
			http.Error(w, se.Text, http.StatusTooManyRequests)
			return
		}
		s.lives.add()
		defer s.lives.done()
		c, err := websocket.Accept(w, r, opts)
		if err != nil {
			adm.end()
			return
		}
		isSecure := secure || r.TLS != nil || isLoopback(r.RemoteAddr)
		l := s.limits()
		t := newWSTransport(c, l.Limits, isSecure, r.TLS, r.RemoteAddr, l.WriteTimeout)
		t.setBudget(preAuthBudget(l))
		newConn(s, t, adm).serve(false)
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
			s.lives.Go(func() { s.terminate(ss, nil) })
		}
	}
	s.lives.Wait(ctx)
}

// Goroutines is the number of goroutines that belong to connections and
// sessions (tests: nothing may stay behind).
func (s *Server) Goroutines() int { return s.lives.Count() }

// ConnLimits are the limits a new connection gets; SetLimits changes them
// for connections opened afterwards (configuration reload).
type ConnLimits struct {
	Limits                  wire.Limits
	SendQueueBytes          int
	StanzasPerSecond        int
	WriteTimeout            time.Duration
	PreAuthBytesPerSecond   int
	PreAuthStanzasPerSecond int
}

// SetLimits replaces the limits of new connections (the send queue's
// applies to every session at once).
func (s *Server) SetLimits(l ConnLimits) {
	if l.SendQueueBytes <= 0 {
		l.SendQueueBytes = s.cfg.SendQueueBytes
	}
	if l.WriteTimeout <= 0 {
		l.WriteTimeout = s.cfg.WriteTimeout
	}
	s.connLimits.Store(&l)
}

func (s *Server) limits() *ConnLimits {
	if l := s.connLimits.Load(); l != nil {
		return l
	}
	l := &ConnLimits{Limits: s.cfg.Limits, SendQueueBytes: s.cfg.SendQueueBytes, StanzasPerSecond: s.cfg.StanzasPerSecond,
		WriteTimeout: s.cfg.WriteTimeout, PreAuthBytesPerSecond: s.cfg.PreAuthBytesPerSecond,
		PreAuthStanzasPerSecond: s.cfg.PreAuthStanzasPerSecond}
	s.connLimits.CompareAndSwap(nil, l)
	return s.connLimits.Load()
}

// Connections returns how many client connections are open (a session
// that hibernated has none), for tests that wait for the server to notice
// a client that went away.
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}
