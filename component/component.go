// Package component accepts XEP-0114 external components (bridges,
// gateways, bots) on listen.component: a component connects with the
// jabber:component:accept namespace and the domain it serves as 'to',
// proves it knows that domain's secret with the <handshake/> (SHA-1 of
// the stream id and the secret, in hex), and from then on sends stanzas
// from JIDs at its domain and receives every stanza to them.
//
// Each configured domain is a service host of the server (module.Host
// with AllStanzas), so stanzas to it reach the component whatever they
// are; while it is not connected, they are bounced with
// service-unavailable. In a cluster the connected node holds the domain
// (module.Placement) and the others forward to it.
package component

import (
	"bufio"
	"context"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/netlimit"
	"github.com/parley-xmpp/parley/router"
	"github.com/parley-xmpp/parley/wire"
)

// Component is one configured component.
type Component struct {
	// Domain the component serves (a subdomain of a host, usually).
	Domain string `mapstructure:"domain"`
	// Secret the component authenticates with.
	Secret string `mapstructure:"secret"`
}

// Config configures the service.
type Config struct {
	Components []Component
	// Hosts are the server's virtual hosts (the parent of a component in
	// disco#items is the one its domain is under).
	Hosts  []string
	Limits wire.Limits
	// HandshakeTimeout bounds the time from connect to a valid handshake.
	HandshakeTimeout time.Duration
	// WriteTimeout bounds every write to a component.
	WriteTimeout time.Duration
	// SendQueue bounds the stanzas waiting to be written to one component;
	// a component that lets it fill up is disconnected.
	SendQueue int
	Logger    *slog.Logger
}

// Service accepts components. It is a module.Module: registering it makes
// the component domains service hosts.
type Service struct {
	cfg     Config
	router  *router.Router
	reg     *module.Registry
	log     *slog.Logger
	secrets map[string]string

	mu     sync.Mutex
	conns  map[string]*conn // connected components by domain
	all    map[*conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

var _ module.Module = (*Service)(nil)

// New returns the service; r routes what components send.
func New(cfg Config, r *router.Router) *Service {
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = 30 * time.Second
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 30 * time.Second
	}
	if cfg.SendQueue <= 0 {
		cfg.SendQueue = 4096
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Service{cfg: cfg, router: r, log: cfg.Logger, secrets: map[string]string{},
		conns: map[string]*conn{}, all: map[*conn]struct{}{}}
	for _, c := range cfg.Components {
		s.secrets[strings.ToLower(c.Domain)] = c.Secret
	}
	return s
}

// Name implements module.Module.
func (s *Service) Name() string { return "component" }

// Register implements module.Module.
func (s *Service) Register(r *module.Registry) error {
	s.reg = r
	taken := map[string]bool{}
	for _, h := range r.Hosts() {
		taken[h.Domain] = true
	}
	for _, c := range s.cfg.Components {
		domain := strings.ToLower(c.Domain)
		if taken[domain] {
			return fmt.Errorf("components: %s is served by the server itself (a MUC or upload service)", domain)
		}
		r.AddHost(module.Host{Domain: domain, Parent: s.parent(domain), Name: domain, AllStanzas: true,
			Handler: func(ctx context.Context, ev *module.Event) module.Verdict {
				s.toComponent(ctx, domain, ev)
				return module.Handled
			}})
	}
	return nil
}

// parent is the host domain is under (the first host otherwise).
func (s *Service) parent(domain string) string {
	for _, h := range s.cfg.Hosts {
		if strings.HasSuffix(domain, "."+h) {
			return h
		}
	}
	if len(s.cfg.Hosts) > 0 {
		return s.cfg.Hosts[0]
	}
	return ""
}

func leaseEntity(domain string) string { return "component:" + domain }

// toComponent delivers a stanza for domain to its component: on this
// node, on the node that has it, or nowhere (bounced).
func (s *Service) toComponent(ctx context.Context, domain string, ev *module.Event) {
	s.mu.Lock()
	c := s.conns[domain]
	s.mu.Unlock()
	if c != nil {
		c.send(ev.Stanza)
		return
	}
	if place := s.reg.Placement(); place != nil && ev.Forwards < module.MaxForwards {
		node, err := place.Acquire(ctx, leaseEntity(domain))
		switch {
		case err == nil && node != "":
			if err := place.Forward(ctx, node, ev); err == nil {
				return
			}
		case err == nil:
			// Nobody had it, so now this node does: give it back.
			place.Release(leaseEntity(domain))
		}
	}
	componentStanzas.WithLabelValues("bounced").Inc()
	s.router.Bounce(ctx, ev.Stanza, wire.ErrServiceUnavailable, "the component "+domain+" is not connected")
}

// Serve accepts components on ln until it is closed.
func (s *Service) Serve(ln net.Listener) error {
	return netlimit.Serve(ln, func(nc net.Conn) {
		// Every write gets its own deadline: the buffered writer also
		// writes on its own (a stanza larger than its buffer) between
		// flushes.
		nc = netlimit.NewConn(nc, s.cfg.WriteTimeout, nil)
		c := &conn{s: s, nc: nc, bw: bufio.NewWriter(nc), out: make(chan *wire.Stanza, s.cfg.SendQueue),
			done: make(chan struct{}), log: s.log.With("component_conn", router.NewID()[:12], "remote", nc.RemoteAddr().String())}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			nc.Close()
			return
		}
		s.all[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			c.run()
			s.mu.Lock()
			delete(s.all, c)
			s.mu.Unlock()
		}()
	})
}

// Shutdown closes every component stream with <system-shutdown/> and waits
// for them to end (or ctx).
func (s *Service) Shutdown(ctx context.Context) {
	s.mu.Lock()
	s.closed = true
	var cs []*conn
	for c := range s.all {
		cs = append(cs, c)
	}
	s.mu.Unlock()
	for _, c := range cs {
		c.fail(&wire.StreamError{Condition: wire.CondSystemShutdown})
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// attach makes c the component of domain, unless one is connected here
// or on another node.
func (s *Service) attach(c *conn, domain string) bool {
	s.mu.Lock()
	if s.conns[domain] != nil {
		s.mu.Unlock()
		return false
	}
	s.conns[domain] = c
	s.mu.Unlock()
	if place := s.reg.Placement(); place != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		node, err := place.Acquire(ctx, leaseEntity(domain))
		cancel()
		if err != nil || node != "" {
			s.mu.Lock()
			delete(s.conns, domain)
			s.mu.Unlock()
			return false
		}
	}
	return true
}

func (s *Service) detach(c *conn, domain string) {
	s.mu.Lock()
	mine := s.conns[domain] == c
	if mine {
		delete(s.conns, domain)
	}
	s.mu.Unlock()
	if mine {
		if place := s.reg.Placement(); place != nil {
			place.Release(leaseEntity(domain))
		}
	}
}

// handshake is the expected handshake value (XEP-0114 §3): hex
// SHA-1(stream id ‖ secret), lower case.
func handshake(id, secret string) string {
	d := sha1.Sum([]byte(id + secret))
	return hex.EncodeToString(d[:])
}

// conn is one component connection. Its goroutine (run) reads; a writer
// goroutine drains out, so a slow component never holds up the router.
type conn struct {
	s      *Service
	nc     net.Conn
	bw     *bufio.Writer
	wmu    sync.Mutex // bw, and closing
	out    chan *wire.Stanza
	done   chan struct{}
	once   sync.Once
	domain string
	rd     *wire.Reader
	log    *slog.Logger
}

func (c *conn) run() {
	timer := time.AfterFunc(c.s.cfg.HandshakeTimeout, func() {
		c.fail(&wire.StreamError{Condition: wire.CondConnectionTimeout, Text: "no valid handshake in time"})
	})
	defer timer.Stop()
	err := c.negotiate()
	timer.Stop()
	if err != nil {
		c.end(err)
		return
	}
	defer c.s.detach(c, c.domain)
	componentsConnected.Inc()
	defer componentsConnected.Dec()
	c.log.Info("component connected", "domain", c.domain)
	go c.writeLoop()
	err = c.readLoop()
	c.log.Info("component disconnected", "domain", c.domain, "err", err)
	c.end(err)
}

// negotiate reads the stream header and the handshake (XEP-0114 §3).
func (c *conn) negotiate() error {
	rd := wire.NewReader(c.nc, c.s.cfg.Limits)
	h, err := rd.ReadHeader()
	if err != nil {
		return err
	}
	id := router.NewID()
	c.domain = strings.ToLower(h.To)
	c.wmu.Lock()
	c.bw.WriteString("<?xml version='1.0'?><stream:stream xmlns:stream='" + wire.NSStream + "' xmlns='" + wire.NSComponent +
		"' id='" + id + "' from='" + wire.EscapeAttr(c.domain) + "'>")
	err = c.flushLocked()
	c.wmu.Unlock()
	if err != nil {
		return err
	}
	secret, known := c.s.secrets[c.domain]
	switch {
	case h.NS != wire.NSComponent:
		return &wire.StreamError{Condition: wire.CondInvalidNamespace, Text: "components use the jabber:component:accept namespace"}
	case !known:
		componentAuth.WithLabelValues("unknown-domain").Inc()
		return &wire.StreamError{Condition: wire.CondHostUnknown, Text: "no component is configured for this domain"}
	}
	st, err := rd.Next()
	if err != nil {
		return err
	}
	if st.Name != "handshake" {
		return &wire.StreamError{Condition: wire.CondNotAuthorized, Text: "send the handshake first"}
	}
	got := strings.ToLower(strings.TrimSpace(st.Tree().Text()))
	if subtle.ConstantTimeCompare([]byte(got), []byte(handshake(id, secret))) != 1 {
		componentAuth.WithLabelValues("failure").Inc()
		c.log.Info("component handshake failed", "domain", c.domain)
		return &wire.StreamError{Condition: wire.CondNotAuthorized, Text: "wrong handshake"}
	}
	if !c.s.attach(c, c.domain) {
		componentAuth.WithLabelValues("conflict").Inc()
		return &wire.StreamError{Condition: wire.CondConflict, Text: "a component for this domain is connected already"}
	}
	componentAuth.WithLabelValues("success").Inc()
	c.wmu.Lock()
	c.bw.WriteString("<handshake/>")
	err = c.flushLocked()
	c.wmu.Unlock()
	c.rd = rd
	return err
}

// readLoop routes what the component sends: stanzas from JIDs at its
// domain, with a 'to' (XEP-0114 §3).
func (c *conn) readLoop() error {
	ctx := context.Background()
	for {
		st, err := c.rd.Next()
		if err != nil {
			return err
		}
		if !st.IsStanza() {
			return &wire.StreamError{Condition: wire.CondUnsupportedStanzaType, Text: "unexpected <" + st.Name + "/>"}
		}
		from, err := jid.Parse(st.From)
		if err != nil || from.Domainpart() != c.domain {
			return &wire.StreamError{Condition: wire.CondInvalidFrom, Text: "a component sends from JIDs at " + c.domain}
		}
		if st.To == "" {
			return &wire.StreamError{Condition: wire.CondImproperAddressing, Text: "a component's stanzas need a 'to'"}
		}
		componentStanzas.WithLabelValues("in").Inc()
		c.s.router.Route(ctx, st, module.Origin{Kind: module.FromComponent})
	}
}

// send queues st for the component; a full queue disconnects it.
func (c *conn) send(st *wire.Stanza) {
	select {
	case <-c.done:
		c.s.router.Bounce(context.Background(), st, wire.ErrServiceUnavailable, "the component "+c.domain+" went away")
	case c.out <- st:
	default:
		c.fail(&wire.StreamError{Condition: wire.CondPolicyViolation, Text: "too many stanzas queued for this component"})
	}
}

func (c *conn) writeLoop() {
	for {
		select {
		case <-c.done:
			return
		case st := <-c.out:
			c.wmu.Lock()
			_, err := c.bw.Write(st.Raw)
			if err == nil && len(c.out) == 0 {
				err = c.flushLocked()
			}
			c.wmu.Unlock()
			if err != nil {
				c.fail(nil)
				return
			}
			componentStanzas.WithLabelValues("out").Inc()
		}
	}
}

// flushLocked writes what is buffered (within the write timeout: nc puts
// a deadline on every write).
func (c *conn) flushLocked() error { return c.bw.Flush() }

// end closes the stream after the read loop stopped, and bounces what
// was still queued for the component.
func (c *conn) end(err error) {
	var se *wire.StreamError
	if !errors.As(err, &se) {
		se = nil
	}
	c.fail(se)
	for {
		select {
		case st := <-c.out:
			c.s.router.Bounce(context.Background(), st, wire.ErrServiceUnavailable, "the component "+c.domain+" went away")
		default:
			return
		}
	}
}

// fail ends the stream with se (nil: just closes it), from any goroutine.
func (c *conn) fail(se *wire.StreamError) {
	c.once.Do(func() {
		close(c.done)
		c.wmu.Lock()
		if se != nil {
			c.bw.Write(se.Bytes())
		}
		c.bw.WriteString("</stream:stream>")
		_ = c.flushLocked()
		c.wmu.Unlock()
		_ = c.nc.Close()
	})
}
