// Package server wires Parley together from a Config: storage, router,
// modules, listeners. cmd/parley and the in-process test server both use it,
// which is why the wiring lives here rather than in package main (see
// docs/adr/0001-server-package.md).
package server

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/crypto/acme"

	"github.com/parley-xmpp/parley/admin"
	"github.com/parley-xmpp/parley/adminapi"
	"github.com/parley-xmpp/parley/auth"
	"github.com/parley-xmpp/parley/c2s"
	"github.com/parley-xmpp/parley/cluster"
	"github.com/parley-xmpp/parley/component"
	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/proxy65"
	"github.com/parley-xmpp/parley/router"
	"github.com/parley-xmpp/parley/s2s"
	"github.com/parley-xmpp/parley/storage"
	"github.com/parley-xmpp/parley/storage/groupcommit"
	"github.com/parley-xmpp/parley/storage/pg"
	"github.com/parley-xmpp/parley/storage/sqlite"
	"github.com/parley-xmpp/parley/upload"
	"github.com/parley-xmpp/parley/wire"
)

// Version is set at build time (-ldflags "-X .../server.Version=...").
var Version = "0.1.0-dev"

// OpenStore opens the configured storage backend.
func OpenStore(ctx context.Context, cfg Config) (storage.Store, error) {
	gc := groupcommit.Options{Enabled: cfg.Storage.GroupCommit, MaxBatch: cfg.Storage.GroupCommitMaxBatch,
		MaxWait: cfg.Storage.GroupCommitMaxWait}
	if gc.MaxWait == 0 {
		gc.MaxWait = -1 // configured as "do not wait"
	}
	// The full-text index costs every archive write: kept only while
	// search is offered.
	fts := storage.FulltextOff
	if cfg.MAM.Fulltext {
		fts = storage.FulltextOn
	}
	switch cfg.Storage.Backend {
	case "", "sqlite":
		st, err := sqlite.OpenOptions(ctx, cfg.DataDir, sqlite.Options{GroupCommit: gc, Fulltext: fts})
		if err != nil {
			return nil, fmt.Errorf("storage (sqlite in %s): %w", cfg.DataDir, err)
		}
		return st, nil
	case "postgres":
		st, err := pg.Open(ctx, pg.Config{DSN: cfg.Storage.Postgres.DSN, MaxConns: cfg.Storage.Postgres.MaxConns,
			Schema: cfg.Storage.Postgres.Schema, Migrate: !cfg.Storage.Postgres.NoMigrate, GroupCommit: gc,
			Fulltext: fts})
		if err != nil {
			return nil, fmt.Errorf("storage (postgres): %w", err)
		}
		return st, nil
	default:
		return nil, fmt.Errorf("storage.backend: %q is not supported (use sqlite or postgres)", cfg.Storage.Backend)
	}
}

// Server is a running Parley instance.
type Server struct {
	cfg      Config
	proxies  proxySet   // http.trusted_proxies
	bans     *auth.Bans // fail2ban-style bans of client addresses
	log      *slog.Logger
	store    storage.Store
	ownStore bool
	tls      *tls.Config
	certs    *certificates
	// bg lives from Start to shutdown (certificate watching, ACME).
	bg       context.Context
	bgCancel context.CancelFunc
	*core
	c2s     *c2s.Server
	s2s     *s2s.Service
	cluster *cluster.Node // nil: a single node

	mu           sync.Mutex
	listeners    map[string]net.Listener
	https        []*http.Server
	ready        atomic.Bool
	shutdownOnce sync.Once
	drainOnce    sync.Once
	stopped      chan struct{} // closed when Shutdown is done
	started      bool
}

// New builds a server from cfg. It opens the store and loads (or creates)
// the certificate, but binds no port until Start.
func New(cfg Config, log *slog.Logger) (*Server, error) {
	return NewWithStore(cfg, log, nil)
}

// core is the server without its network side: the router, the module
// registry and the modules registered into it. Tools that change
// accounts (parley user delete) build one too, so that they run the same
// module hooks as the server.
type core struct {
	accounts storage.Accounts
	router   *router.Router
	reg      *module.Registry
	modules  []module.Module
	upload   *upload.Module
	admin    *admin.Service
	// components serves XEP-0114 external components (their domains are
	// service hosts).
	components *component.Service
	// proxy is the XEP-0065 SOCKS5 bytestreams proxy.
	proxy *proxy65.Module
}

func newCore(cfg Config, store storage.Store, log *slog.Logger, secret []byte, httpsBase func(string) string) (*core, error) {
	c := &core{accounts: store, router: router.New(router.Config{Domains: cfg.Hosts, Logger: log})}
	c.reg = module.NewRegistry(cfg.Hosts, c.router.Sender(), c.router)
	c.reg.SetAccounts(store)
	var err error
	if c.modules, c.upload, c.admin, err = buildModules(cfg, store, c.reg, log, secret, httpsBase); err != nil {
		return nil, err
	}
	c.components = component.New(component.Config{Components: cfg.Components, Hosts: cfg.Hosts,
		Limits: wire.Limits{MaxStanzaBytes: cfg.Limits.MaxStanzaBytes, MaxDepth: cfg.Limits.MaxDepth,
			MaxAttrs: cfg.Limits.MaxAttributes}, HandshakeTimeout: cfg.Auth.Timeout, Logger: log}, c.router)
	c.proxy = proxy65.New(proxy65.Config{Settings: cfg.Proxy65, Domains: cfg.Hosts, Logger: log})
	// Last: their hosts must not take a domain another module serves.
	c.modules = append(c.modules, c.proxy, c.components)
	for _, m := range c.modules {
		if err := m.Register(c.reg); err != nil {
			return nil, fmt.Errorf("module %s: %w", m.Name(), err)
		}
	}
	c.router.SetRegistry(c.reg)
	return c, nil
}

// DeleteAccount deletes an account and everything kept for it, as the
// running server does (module hooks, then the account's rows), for tools
// working on the store of a stopped server. storage.ErrNotFound when
// there is no such account.
func DeleteAccount(ctx context.Context, cfg Config, store storage.Store, log *slog.Logger, bare string) error {
	secret, err := loadOrCreateSecret(cfg.DataDir)
	if err != nil {
		return err
	}
	c, err := newCore(cfg, store, log, secret, func(domain string) string { return "https://" + domain })
	if err != nil {
		return err
	}
	return c.DeleteAccount(ctx, bare)
}

// DeleteAccount deletes an account and everything kept for it: each
// module's OnDeleteAccount hook (uploaded files, …), then the account's
// rows. It does not end the account's sessions. storage.ErrNotFound when
// there is no such account.
func (c *core) DeleteAccount(ctx context.Context, bare string) error {
	return deletingAccounts{Accounts: c.accounts, reg: c.reg}.DeleteAccount(ctx, bare)
}

// NewWithStore is New with an already open store (tests); the caller keeps
// ownership of it.
func NewWithStore(cfg Config, log *slog.Logger, store storage.Store) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	certs, err := newCertificates(cfg, log)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: log, listeners: map[string]net.Listener{}, certs: certs}
	s.proxies, _ = parseProxies(cfg.HTTP.TrustedProxies)
	s.bg, s.bgCancel = context.WithCancel(context.Background())
	s.stopped = make(chan struct{})
	// GetCertificate rather than Certificates: a reloaded or renewed
	// certificate serves new connections at once, established ones keep
	// theirs.
	s.tls = &tls.Config{
		GetCertificate: certs.get,
		MinVersion:     tls.VersionTLS12,
		NextProtos:     []string{"xmpp-client"},
	}
	if store == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if store, err = OpenStore(ctx, cfg); err != nil {
			return nil, err
		}
		s.ownStore = true
	}
	s.store = store
	built := false
	defer func() {
		if !built {
			s.Close() // a store this constructor opened does not outlive its error
		}
	}()

	secret, err := loadOrCreateSecret(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	if cfg.Cluster.Enabled {
		if secret, err = sharedSecret(store, secret); err != nil {
			return nil, err
		}
	}
	if s.core, err = newCore(cfg, store, log, secret, s.httpsBaseURL); err != nil {
		return nil, err
	}
	// One ban list for clients and servers (auth.Bans).
	exempt, _ := parseProxies(append(append([]string(nil), cfg.Bans.Exempt...), cfg.HTTP.TrustedProxies...))
	s.bans = auth.NewBans(auth.BanConfig{MaxStrikes: cfg.Bans.MaxStrikes, Window: cfg.Bans.Window, Duration: cfg.Bans.Duration,
		Exempt: exempt})
	if err := s.setupS2S(cfg, secret); err != nil {
		return nil, err
	}

	authSrv := auth.NewServer(auth.Config{AllowPlain: cfg.Auth.AllowPlain, RequireTLS: cfg.Auth.RequireTLS,
		Secret: secret, Iterations: cfg.Auth.Iterations, Suspensions: store}, store)
	throttle := auth.NewThrottle(auth.ThrottleConfig{MaxFailures: cfg.Auth.MaxFailures, Window: cfg.Auth.FailureWindow,
		MaxDelay: cfg.Auth.MaxDelay, MaxWait: min(cfg.Auth.MaxWait, cfg.Auth.Timeout*2/3)})
	s.c2s = c2s.New(c2s.Config{
		Domains: cfg.Hosts,
		TLS:     s.tls,
		Limits: wire.Limits{
			MaxStanzaBytes: cfg.Limits.MaxStanzaBytes,
			MaxDepth:       cfg.Limits.MaxDepth,
			MaxAttrs:       cfg.Limits.MaxAttributes,
		},
		SendQueueBytes:          cfg.Limits.SendQueueBytes,
		StanzasPerSecond:        cfg.Limits.StanzasPerSecond,
		WriteTimeout:            cfg.Limits.WriteTimeout,
		PreAuthBytesPerSecond:   cfg.Limits.PreAuthBytesPerSecond,
		PreAuthStanzasPerSecond: cfg.Limits.PreAuthStanzasPerSecond,
		ConnectionsPerAddress:   cfg.Limits.ConnectionsPerAddress,
		MaxUnauthenticated:      cfg.Limits.UnauthenticatedConnections,
		MaxUnackedBytes:         cfg.C2S.MaxUnackedBytes,
		CSIHoldBytes:            cfg.C2S.CSIHoldBytes,
		RequireTLS:              cfg.Auth.RequireTLS,
		AuthTimeout:             cfg.Auth.Timeout,
		PingInterval:            cfg.C2S.PingInterval,
		PingTimeout:             cfg.C2S.PingTimeout,
		ResumeTimeout:           cfg.C2S.ResumeTimeout,
		MaxUnacked:              cfg.C2S.MaxUnacked,
		WebSocketOrigins:        cfg.WebSocket.Origins,
		TrustedProxies:          s.proxies,
		Bans:                    s.bans,
		FAST:                    auth.NewFAST(auth.FASTConfig{Lifetime: cfg.Auth.FASTTokenLifetime}, store),
		Secret:                  secret,
		Logger:                  log,
	}, s.router, s.reg, authSrv, throttle, registrationOf(s.modules))
	if cfg.Cluster.Enabled {
		if err := s.joinCluster(cfg, log); err != nil {
			return nil, err
		}
	}
	built = true
	return s, nil
}

// joinCluster connects to NATS; the node joins the cluster in Start.
func (s *Server) joinCluster(cfg Config, log *slog.Logger) error {
	s.cluster = cluster.New(ClusterNodeConfig(cfg, log))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.cluster.Connect(ctx); err != nil {
		return err
	}
	s.router.SetCluster(s.cluster)
	s.c2s.SetPeers(s.cluster)
	s.reg.SetPlacement(s.cluster.Placement())
	s.cluster.OnDrain(s.Stop)
	if s.s2s != nil {
		// A remote server may verify a dialback key one node sent by
		// asking another.
		s.s2s.SetDialbackElsewhere(s.cluster.DialbackPending)
		s.cluster.SetDialbackPending(s.s2s.DialbackPending)
	}
	return nil
}

// ClusterNodeConfig is the cluster package's view of cfg (the server and
// `parley cluster status` / `parley check` share it).
func ClusterNodeConfig(cfg Config, log *slog.Logger) cluster.Config {
	c := cfg.Cluster
	return cluster.Config{Node: c.Node, URLs: c.NATS.URLs, Prefix: c.NATS.Prefix,
		Replicas: c.NATS.Replicas, CredsFile: c.NATS.CredsFile, CAFile: c.NATS.CAFile,
		Heartbeat: c.Heartbeat, DeadAfter: c.DeadAfter, Advertise: c.Advertise, Version: Version, Logger: log}
}

// Cluster is this server's cluster membership, nil for a single node.
func (s *Server) Cluster() *cluster.Node { return s.cluster }

// httpsBaseURL is the public URL of the https listener for a domain
// (uploads and invitation pages when their base_url is not set).
func (s *Server) httpsBaseURL(domain string) string {
	port := "5281"
	if a := s.Addr("https"); a != "" {
		_, port, _ = net.SplitHostPort(a)
	}
	return "https://" + domain + ":" + port
}

// Admin exposes the admin service (tests, the HTTP API).
func (s *Server) Admin() *admin.Service { return s.admin }

// Router exposes the router (tests, load tools).
func (s *Server) Router() *router.Router { return s.router }

// ClientGoroutines is the number of goroutines serving client connections
// and sessions (tests check that a connection left nothing behind).
func (s *Server) ClientGoroutines() int { return s.c2s.Goroutines() }

// Store exposes the store.
func (s *Server) Store() storage.Store { return s.store }

// C2S exposes the client service (tests).
func (s *Server) C2S() *c2s.Server { return s.c2s }

// Addr returns the bound address of a listener ("c2s", "c2s_tls", "http",
// "https", "admin"), or "" when it is disabled.
func (s *Server) Addr(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ln := s.listeners[name]; ln != nil {
		return ln.Addr().String()
	}
	return ""
}

// Start binds every configured listener and serves in the background.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return errors.New("server already started")
	}
	s.started = true
	for _, m := range s.modules {
		if st, ok := m.(module.Starter); ok {
			if err := st.Start(ctx); err != nil {
				return fmt.Errorf("module %s: %w", m.Name(), err)
			}
		}
	}
	if s.cluster != nil {
		jctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := s.cluster.Start(jctx, s.router, s.reg, s.c2s)
		cancel()
		if err != nil {
			return err
		}
	}
	type lspec struct{ name, addr string }
	for _, l := range []lspec{{"c2s", s.cfg.Listen.C2S}, {"c2s_tls", s.cfg.Listen.C2STLS},
		{"http", s.cfg.Listen.HTTP}, {"https", s.cfg.Listen.HTTPS}, {"admin", s.cfg.Listen.Admin},
		{"s2s", s.cfg.Listen.S2S}, {"s2s_tls", s.cfg.Listen.S2STLS}, {"component", s.cfg.Listen.Component}} {
		if l.addr == "" {
			continue
		}
		ln, err := net.Listen("tcp", l.addr)
		if err != nil {
			s.closeListenersLocked()
			return fmt.Errorf("listen.%s: cannot listen on %s: %w", l.name, l.addr, err)
		}
		s.listeners[l.name] = ln
	}
	if ln := s.listeners["c2s"]; ln != nil {
		go s.serveC2S(ln, false)
	}
	if ln := s.listeners["c2s_tls"]; ln != nil {
		go s.serveC2S(ln, true)
	}
	if ln := s.listeners["http"]; ln != nil {
		var h http.Handler = s.clientHTTP(false)
		if s.certs.acme != nil {
			h = s.certs.acme.httpHandler(h) // HTTP-01 challenges
		}
		s.serveHTTP(s.limitHTTPListener(ln, true), h)
	}
	if ln := s.listeners["https"]; ln != nil {
		s.serveHTTP(tls.NewListener(s.limitHTTPListener(ln, false), s.tlsForHTTP()), s.clientHTTP(true))
	}
	if ln := s.listeners["admin"]; ln != nil {
		s.serveHTTP(ln, s.adminHTTP())
	}
	for name, direct := range map[string]bool{"s2s": false, "s2s_tls": true} {
		if ln := s.listeners[name]; ln != nil {
			go func() {
				if err := s.s2s.ServeTCP(ln, direct); err != nil {
					s.log.Error("server-to-server listener stopped", "err", err)
				}
			}()
		}
	}
	if addr := s.cfg.Proxy65.Listen; addr != "" {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			s.closeListenersLocked()
			return fmt.Errorf("proxy65.listen: cannot listen on %s: %w", addr, err)
		}
		s.listeners["proxy65"] = ln
		go func() {
			if err := s.proxy.Serve(ln); err != nil {
				s.log.Error("SOCKS5 proxy listener stopped", "err", err)
			}
		}()
	}
	if ln := s.listeners["component"]; ln != nil {
		go func() {
			if err := s.components.Serve(ln); err != nil {
				s.log.Error("component listener stopped", "err", err)
			}
		}()
	}
	s.certs.watch(s.bg)
	if s.certs.acme != nil {
		s.certs.acme.setNames(s.certNames())
		s.certs.acme.obtain(s.bg)
	}
	s.ready.Store(true)
	attrs := []any{"hosts", s.cfg.Hosts, "data_dir", s.cfg.DataDir}
	for _, n := range []string{"c2s", "c2s_tls", "http", "https", "admin", "s2s", "s2s_tls", "component", "proxy65"} {
		if ln := s.listeners[n]; ln != nil {
			attrs = append(attrs, n, ln.Addr().String())
		}
	}
	s.log.Info("parley is running", attrs...)
	if msg, attrs := selfSignedNotice(s.cfg, s.certs.current()); msg != "" {
		s.log.Warn(msg, attrs...)
	}
	return nil
}

func (s *Server) serveC2S(ln net.Listener, directTLS bool) {
	// For direct TLS (XEP-0368) c2s runs the handshake itself, with a
	// timeout, in the connection goroutine.
	if err := s.c2s.ServeTCP(ln, directTLS); err != nil {
		s.log.Error("client listener stopped", "err", err)
	}
}

func (s *Server) tlsForHTTP() *tls.Config {
	c := s.tls.Clone()
	c.NextProtos = []string{"h2", "http/1.1"}
	if s.certs.acme != nil {
		c.NextProtos = append(c.NextProtos, acme.ALPNProto) // TLS-ALPN-01
	}
	return c
}

// certNames are the names a certificate must cover: every host and its
// service hosts (upload., conference., ...).
func (s *Server) certNames() []string {
	names := slices.Clone(s.cfg.Hosts)
	for _, h := range s.reg.Hosts() {
		names = append(names, h.Domain)
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// serveHTTP serves h on ln with the http.* timeouts: for the header, for
// an idle keep-alive connection, and for progress of request bodies and
// responses (withDeadlines). Connections that limitHTTPListener refused
// get 429 instead.
func (s *Server) serveHTTP(ln net.Listener, h http.Handler) {
	c := s.cfg.HTTP
	hs := &http.Server{Handler: refuseOverLimit(withDeadlines(h, c.BodyTimeout, c.WriteTimeout), c.WriteTimeout),
		ReadHeaderTimeout: c.ReadHeaderTimeout, IdleTimeout: c.IdleTimeout, ConnContext: markRefused,
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug)}
	s.https = append(s.https, hs)
	go func() {
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			s.log.Error("http listener stopped", "addr", ln.Addr().String(), "err", err)
		}
	}()
}

func (s *Server) adminHTTP() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.Handler())
	// The JSON admin API (bearer tokens); see docs/admin-api.md.
	mux.Handle("/api/", adminapi.Handler(s.admin, s.log))
	if s.cfg.Debug.PProf {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if !s.ready.Load() {
			http.Error(w, "starting or stopping", http.StatusServiceUnavailable)
			return
		}
		if err := s.store.Ping(ctx); err != nil {
			http.Error(w, "storage unavailable: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		if s.cluster != nil {
			if err := s.cluster.Ready(); err != nil {
				http.Error(w, "cluster unavailable: "+err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	return mux
}

// Run starts the server and blocks until ctx is cancelled (or a cluster
// node was asked to drain), then stops it (Stop).
func (s *Server) Run(ctx context.Context) error {
	if err := s.Start(ctx); err != nil {
		s.Close()
		return err
	}
	select {
	case <-ctx.Done():
	case <-s.stopped:
	}
	s.Stop()
	return nil
}

// Stop stops the server gracefully: a cluster node drains first
// (cluster.drain), then Shutdown.
func (s *Server) Stop() {
	if s.cluster != nil && s.cfg.Cluster.Drain > 0 {
		s.Drain(s.cfg.Cluster.Drain)
	}
	s.log.Info("shutting down")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s.Shutdown(ctx)
}

// Drain takes a cluster node out of service before it stops (rolling
// upgrade): /readyz fails and the node says it is draining (the others
// give it no new rooms and do not redirect clients to it), its listeners
// close, chat rooms tell their occupants (status 332) and release their
// leases, and its clients move to other nodes: a resumable session
// (XEP-0198) loses its connection and is resumed on another node, which
// takes it over with everything it had not delivered; other streams end
// with <see-other-host/> (an address another node advertises,
// cluster.advertise) or <system-shutdown/>. It returns when no session is
// left here or after period; Shutdown then ends what is left (what those
// clients did not get is stored offline).
func (s *Server) Drain(period time.Duration) {
	if s.cluster == nil {
		return
	}
	s.drainOnce.Do(func() {
		start := time.Now()
		s.log.Info("draining: clients move to the other nodes", "period", period)
		s.ready.Store(false)
		s.cluster.SetDraining()
		s.mu.Lock()
		s.closeListenersLocked()
		s.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), period)
		defer cancel()
		for i := len(s.modules) - 1; i >= 0; i-- {
			if d, ok := s.modules[i].(module.Drainer); ok {
				d.Drain(ctx)
			}
		}
		s.c2s.Drain(s.cluster.OtherAddress)
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for s.router.LocalCount() > 0 {
			select {
			case <-t.C:
			case <-ctx.Done():
				s.log.Warn("drain period over; closing the sessions left", "sessions", s.router.LocalCount())
				return
			}
		}
		s.log.Info("drained: every session left this node", "took", time.Since(start).Round(time.Millisecond))
	})
}

// Stopped is closed once the server has shut down.
func (s *Server) Stopped() <-chan struct{} { return s.stopped }

// Shutdown stops accepting, closes every stream with <system-shutdown/>,
// stops modules and closes the store.
func (s *Server) Shutdown(ctx context.Context) {
	s.shutdownOnce.Do(func() {
		s.shutdown(ctx)
		close(s.stopped)
	})
}

func (s *Server) shutdown(ctx context.Context) {
	s.ready.Store(false)
	s.bgCancel()
	s.mu.Lock()
	s.closeListenersLocked()
	servers := s.https
	s.mu.Unlock()
	for i := len(s.modules) - 1; i >= 0; i-- {
		if d, ok := s.modules[i].(module.Drainer); ok {
			d.Drain(ctx)
		}
	}
	s.c2s.Shutdown(ctx)
	s.s2s.Shutdown(ctx)
	s.components.Shutdown(ctx)
	s.proxy.Shutdown(ctx)
	for _, hs := range servers {
		_ = hs.Shutdown(ctx)
	}
	for i := len(s.modules) - 1; i >= 0; i-- {
		if st, ok := s.modules[i].(module.Stopper); ok {
			if err := st.Stop(ctx); err != nil {
				s.log.Warn("module stop failed", "module", s.modules[i].Name(), "err", err)
			}
		}
	}
	if s.cluster != nil {
		// Sessions are closed and released, rooms stored and released
		// (what modules sent on their way out reached the other nodes):
		// leave the cluster.
		s.cluster.Stop()
	}
	s.Close()
}

// Close releases the store (when the server opened it).
func (s *Server) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ownStore && s.store != nil {
		_ = s.store.Close()
		s.store = nil
	}
}

func (s *Server) closeListenersLocked() {
	for _, ln := range s.listeners {
		_ = ln.Close()
	}
}

// loadOrCreateSecret returns the server secret (keys fake SCRAM salts for
// unknown users, so they stay stable across restarts and reveal nothing).
func loadOrCreateSecret(dir string) ([]byte, error) {
	path := filepath.Join(dir, "secret")
	if b, err := os.ReadFile(path); err == nil && len(b) >= 32 {
		return b, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("data_dir: %w", err)
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return nil, fmt.Errorf("data_dir: cannot write %s: %w", path, err)
	}
	return b, nil
}

// sharedSecret returns the server secret every node of a cluster uses
// (upload URLs signed by one node verify on another; dialback keys and
// fake SCRAM salts are the same everywhere). It lives in the shared
// store; the first node to start contributes its own.
func sharedSecret(store storage.Store, own []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	v, err := store.SettingOrSet(ctx, "cluster.server_secret", base64.StdEncoding.EncodeToString(own))
	if err != nil {
		return nil, fmt.Errorf("storage: cannot read the cluster's shared secret: %w", err)
	}
	b, err := base64.StdEncoding.DecodeString(v)
	if err != nil || len(b) < 32 {
		return nil, errors.New("storage: the cluster's shared secret (setting cluster.server_secret) is damaged")
	}
	return b, nil
}

// setupS2S builds federation: trust roots, a dialback secret derived from
// the server secret (stable across restarts and equal on every node of a
// cluster: see sharedSecret), and local domains including service hosts.
func (s *Server) setupS2S(cfg Config, secret []byte) error {
	roots, err := x509.SystemCertPool()
	if err != nil || roots == nil {
		roots = x509.NewCertPool()
	}
	if cfg.S2S.CAFile != "" {
		pem, err := os.ReadFile(cfg.S2S.CAFile)
		if err != nil {
			return fmt.Errorf("s2s.ca_file: %w", err)
		}
		if !roots.AppendCertsFromPEM(pem) {
			return fmt.Errorf("s2s.ca_file: %s holds no PEM certificate", cfg.S2S.CAFile)
		}
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte("parley s2s dialback"))
	local := append([]string(nil), cfg.Hosts...)
	for _, h := range s.reg.Hosts() {
		local = append(local, h.Domain)
	}
	s.s2s = s2s.New(s2s.Config{
		LocalDomains:            local,
		TLS:                     s.tls,
		RootCAs:                 roots,
		RequireValidCerts:       cfg.S2S.RequireValidCerts,
		Routes:                  cfg.S2S.RouteMap(),
		DialbackSecret:          mac.Sum(nil),
		Limits:                  wire.Limits{MaxStanzaBytes: max(cfg.Limits.MaxStanzaBytes, s2s.DefaultMaxStanzaBytes), MaxDepth: cfg.Limits.MaxDepth, MaxAttrs: cfg.Limits.MaxAttributes},
		IdleTimeout:             cfg.S2S.IdleTimeout,
		AuthTimeout:             cfg.S2S.AuthTimeout,
		WriteTimeout:            cfg.Limits.WriteTimeout,
		PreAuthBytesPerSecond:   cfg.Limits.PreAuthBytesPerSecond,
		PreAuthStanzasPerSecond: cfg.Limits.PreAuthStanzasPerSecond,
		MaxInbound:              cfg.S2S.MaxInbound,
		ConnectionsPerAddress:   cfg.S2S.ConnectionsPerAddress,
		MaxDialbacks:            cfg.S2S.MaxDialbacks,
		QueueStanzas:            cfg.S2S.QueueStanzas,
		QueueBytes:              cfg.S2S.QueueBytes,
		DisableBidi:             !cfg.S2S.Bidi,
		MetricsDomains:          cfg.S2S.MetricsDomains,
		BlockedDomains:          cfg.S2S.BlockedDomains,
		AllowedDomains:          cfg.S2S.AllowedDomains,
		Bans:                    s.bans,
		Logger:                  s.log,
	}, s.router)
	s.router.SetRemote(s.s2s)
	return nil
}

// Bans is the list of banned client addresses (for admin tools: List,
// Unban).
func (s *Server) Bans() *auth.Bans { return s.bans }
