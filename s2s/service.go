// Package s2s connects Parley to other XMPP servers (RFC 6120 server-to-
// server streams). It accepts inbound streams (STARTTLS on 5269, direct TLS
// per XEP-0368), keeps one outbound stream per (local, remote) domain pair,
// authenticates with SASL EXTERNAL (XEP-0178) when certificates allow and
// with dialback (XEP-0220, keys per XEP-0185) otherwise, and implements
// router.Remote.
package s2s

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/parley-xmpp/parley/auth"
	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/netlimit"
	"github.com/parley-xmpp/parley/router"
	"github.com/parley-xmpp/parley/wire"
)

// DefaultMaxStanzaBytes is the stanza limit on s2s streams when
// Config.Limits leaves it unset.
const DefaultMaxStanzaBytes = 512 << 10

// The default bounds of what is queued per domain pair (Config.QueueStanzas,
// QueueBytes). Stanzas to a remote domain wait in its queue for their
// senders' archive commits, so the queue holds at least the commit latency
// times the rate: about 1,000 stanzas at 10,000 msg/s with commits of
// 100 ms (the earlier fixed bound, which bounced under such load).
// 20,000 leaves two seconds of stall at that rate; the bytes (each stanza
// counted with stanzaOverhead) bound the memory whatever the stanzas' size.
const (
	DefaultQueueStanzas = 20000
	DefaultQueueBytes   = 8 << 20
)

// Config configures the s2s service.
type Config struct {
	// LocalDomains are the domains this server is authoritative for.
	LocalDomains []string
	// TLS holds our certificate(s). It is used as the server config for
	// inbound streams and as the source of our client certificate on
	// outbound ones (GetCertificate is consulted with the local domain).
	TLS *tls.Config
	// RootCAs validates peer certificates (system roots plus an optional
	// CA file); nil means the system pool.
	RootCAs *x509.CertPool
	// RequireValidCerts refuses peers whose certificate is not valid for
	// their domain; otherwise such peers may authenticate with dialback.
	RequireValidCerts bool
	// Routes maps a remote domain to fixed addresses ("host:port", or
	// "tls://host:port" for direct TLS), bypassing DNS.
	Routes map[string][]string
	// DialbackSecret keys dialback (XEP-0185). It should persist across
	// restarts and be shared by all nodes of a cluster; when empty a random
	// one is generated.
	DialbackSecret []byte
	// Limits bound what a peer can make us buffer (default 512 KiB stanzas).
	Limits wire.Limits
	// IdleTimeout closes streams without traffic (default 10 minutes).
	IdleTimeout time.Duration
	// AuthTimeout closes an inbound stream on which no domain pair has
	// authenticated within this time from its start, whatever it sends
	// (default 60s): a stream used only for <db:verify/> ends too.
	AuthTimeout time.Duration
	// WriteTimeout: a write that does not progress for this long fails and
	// ends the stream (default 30s).
	WriteTimeout time.Duration
	// PreAuthBytesPerSecond and PreAuthStanzasPerSecond bound what an
	// inbound stream sends before a domain authenticated on it (bursts of
	// four seconds' worth); beyond, it is closed. 0: no limit.
	PreAuthBytesPerSecond   int
	PreAuthStanzasPerSecond int
	// MaxInbound bounds inbound streams in total, ConnectionsPerAddress
	// those from one address (IPv6: one /64); MaxDialbacks the dialback
	// verifications this server runs at once for peers (each opens a
	// connection to a domain the peer names). 0: no limit.
	MaxInbound            int
	ConnectionsPerAddress int
	MaxDialbacks          int
	// QueueStanzas and QueueBytes bound, per domain pair, the stanzas
	// queued for its stream while it connects, is slow or waits for their
	// senders' archive commits (beyond, they bounce), and the stanzas read
	// ahead on one stream while their recipients' archive rows commit
	// (beyond, the stream's reader waits). Defaults: DefaultQueueStanzas,
	// DefaultQueueBytes.
	QueueStanzas int
	QueueBytes   int
	// ConnectTimeout bounds connecting, TLS and authentication (default 30s).
	ConnectTimeout time.Duration
	// DisableBidi turns off bidirectional streams (XEP-0288), which are
	// on by default: then every outbound stanza travels on a connection we
	// opened and peers' inbound streams carry only their stanzas to us.
	DisableBidi bool
	// Bans refuses connections from banned addresses and counts the
	// offences of inbound peers (auth.Bans, shared with c2s); nil: none.
	Bans *auth.Bans
	// BlockedDomains are remote domains (with their subdomains) this server
	// does not federate with: no stream to or from them, stanzas to them
	// bounce with not-allowed.
	BlockedDomains []string
	// AllowedDomains, when not empty, are the only remote domains (with
	// their subdomains) this server federates with.
	AllowedDomains []string
	// MetricsDomains are remote domains that get their own label in the
	// per-domain metrics, besides those in Routes; the others share "other".
	MetricsDomains []string
	// Resolver for SRV/A/AAAA lookups (nil: net.DefaultResolver).
	Resolver *net.Resolver
	Logger   *slog.Logger
}

// Service is the server-to-server subsystem.
type Service struct {
	cfg       Config
	log       *slog.Logger
	router    *router.Router
	local     map[string]bool
	secret    []byte // hex(SHA256(DialbackSecret)), the HMAC key of XEP-0185
	serverTLS *tls.Config
	ourCertOK map[string]bool
	ctx       context.Context
	cancel    context.CancelFunc

	mu      sync.Mutex
	out     map[pair]*outConn
	links   map[pair]*link // bidirectional streams usable per pair (XEP-0288)
	backoff map[pair]backoffState
	in      map[*inConn]struct{}
	lns     map[net.Listener]struct{}
	closed  bool
	wg      sync.WaitGroup

	dbMu      sync.Mutex
	dbPending map[string]int // local, remote, stream id of our outbound dialback requests
	// dbElsewhere asks the other nodes of a cluster whether one of them
	// is waiting on a dialback request (nil: a single node).
	dbElsewhere func(ctx context.Context, local, remote, id string) bool

	perAddr   *netlimit.PerAddress
	rejects   *netlimit.Refusals
	dialbacks chan struct{} // dialback verifications running (nil: no limit)

	stats stats
}

type pair struct{ local, remote string }

type backoffState struct {
	until    time.Time
	failures int
	cond     string
	text     string
}

// New returns the service; call ServeTCP for listeners and install it with
// router.SetRemote.
func New(cfg Config, r *router.Router) *Service {
	if cfg.Limits.MaxStanzaBytes <= 0 {
		cfg.Limits.MaxStanzaBytes = DefaultMaxStanzaBytes
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 10 * time.Minute
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = 30 * time.Second
	}
	if cfg.QueueStanzas <= 0 {
		cfg.QueueStanzas = DefaultQueueStanzas
	}
	if cfg.QueueBytes <= 0 {
		cfg.QueueBytes = DefaultQueueBytes
	}
	if cfg.AuthTimeout <= 0 {
		cfg.AuthTimeout = time.Minute
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 30 * time.Second
	}
	if cfg.Resolver == nil {
		cfg.Resolver = net.DefaultResolver
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	secret := cfg.DialbackSecret
	if len(secret) == 0 {
		secret = []byte(router.NewID() + router.NewID())
	}
	// XEP-0185 keys the HMAC with the hex digest of the secret.
	h := sha256.Sum256(secret)
	ctx, cancel := context.WithCancel(context.Background())
	s := &Service{cfg: cfg, log: cfg.Logger.With("subsystem", "s2s"), router: r, local: map[string]bool{},
		secret: []byte(hex.EncodeToString(h[:])), ourCertOK: map[string]bool{}, ctx: ctx, cancel: cancel,
		out: map[pair]*outConn{}, links: map[pair]*link{}, backoff: map[pair]backoffState{}, in: map[*inConn]struct{}{},
		lns: map[net.Listener]struct{}{}, dbPending: map[string]int{},
		perAddr: netlimit.NewPerAddress(cfg.ConnectionsPerAddress), rejects: netlimit.NewRefusals(16)}
	if cfg.MaxDialbacks > 0 {
		s.dialbacks = make(chan struct{}, cfg.MaxDialbacks)
	}
	for _, d := range cfg.LocalDomains {
		s.local[strings.ToLower(d)] = true
	}
	s.stats.named = map[string]bool{}
	for d := range cfg.Routes {
		s.stats.named[strings.ToLower(d)] = true
	}
	for _, d := range cfg.MetricsDomains {
		s.stats.named[strings.ToLower(d)] = true
	}
	for d := range s.stats.named {
		prewarmDomain(d)
	}
	if cfg.TLS != nil {
		s.serverTLS = cfg.TLS.Clone()
		s.serverTLS.ClientAuth = tls.RequestClientCert // verified per domain, see certValid
		s.serverTLS.NextProtos = []string{alpnServer}
		if s.serverTLS.MinVersion < tls.VersionTLS12 {
			s.serverTLS.MinVersion = tls.VersionTLS12
		}
	}
	for d := range s.local {
		if c := s.certFor(d); c != nil && len(c.Certificate) > 0 {
			s.ourCertOK[d] = s.chainValid(c.Certificate, d) == nil
		}
	}
	return s
}

// IsLocal reports whether domain is one of ours.
func (s *Service) IsLocal(domain string) bool { return s.local[domain] }

// certFor returns our certificate for a local domain, or nil.
func (s *Service) certFor(local string) *tls.Certificate {
	if s.cfg.TLS == nil {
		return nil
	}
	if s.cfg.TLS.GetCertificate != nil {
		if c, err := s.cfg.TLS.GetCertificate(&tls.ClientHelloInfo{ServerName: local}); err == nil && c != nil {
			return c
		}
	}
	for i := range s.cfg.TLS.Certificates {
		c := &s.cfg.TLS.Certificates[i]
		leaf := c.Leaf
		if leaf == nil && len(c.Certificate) > 0 {
			leaf, _ = x509.ParseCertificate(c.Certificate[0])
		}
		if leaf != nil && certNames(leaf).match(local) {
			return c
		}
	}
	if len(s.cfg.TLS.Certificates) > 0 {
		return &s.cfg.TLS.Certificates[0]
	}
	return nil
}

// chainValid checks a DER chain against RootCAs for domain.
func (s *Service) chainValid(der [][]byte, domain string) error {
	chain := make([]*x509.Certificate, 0, len(der))
	for _, b := range der {
		c, err := x509.ParseCertificate(b)
		if err != nil {
			return err
		}
		chain = append(chain, c)
	}
	return verifyChain(chain, s.cfg.RootCAs, domain, time.Now())
}

// peerCertValid checks the peer's certificate of a TLS connection.
func (s *Service) peerCertValid(cs *tls.ConnectionState, domain string) error {
	if cs == nil {
		return errors.New("no TLS")
	}
	return verifyChain(cs.PeerCertificates, s.cfg.RootCAs, domain, time.Now())
}

func (s *Service) clientTLS(local, remote string, direct bool) *tls.Config {
	c := &tls.Config{
		ServerName: remote,
		MinVersion: tls.VersionTLS12,
		// The peer certificate is verified after the handshake against the
		// remote domain (verifyChain), because an invalid certificate is not
		// fatal when dialback is allowed.
		InsecureSkipVerify: true,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			if c := s.certFor(local); c != nil {
				return c, nil
			}
			return &tls.Certificate{}, nil
		},
	}
	if direct {
		c.NextProtos = []string{alpnServer}
	}
	return c
}

// Send implements router.Remote: it queues st on the stream for its
// (from domain, to domain) pair, connecting when needed. Failures are
// reported to the sender with router.Bounce.
func (s *Service) Send(ctx context.Context, st *wire.Stanza) error {
	return s.SendAfter(ctx, st, module.Barrier{})
}

// SendAfter is Send for a stanza that may be written only once the writes
// before b are committed (router.HeldRemote): it is queued at once and the
// stream's writer waits, so stanzas to the same domain keep their order.
func (s *Service) SendAfter(ctx context.Context, st *wire.Stanza, b module.Barrier) error {
	from, err := router.ParseJID(st.From)
	if err != nil {
		return errors.New("s2s: invalid from address")
	}
	to, err := router.ParseJID(st.To)
	if err != nil {
		return errors.New("s2s: invalid to address")
	}
	p := pair{local: from.Domainpart(), remote: to.Domainpart()}
	if !s.local[p.local] {
		return errors.New("s2s: " + p.local + " is not a local domain")
	}
	if s.local[p.remote] {
		return errors.New("s2s: " + p.remote + " is a local domain")
	}
	if !s.Permitted(p.remote) {
		policyRefusals.WithLabelValues("out").Inc()
		s.bounce(st, wire.ErrNotAllowed, "this server does not federate with "+p.remote)
		return nil
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return errors.New("s2s: shutting down")
	}
	l := s.links[p]
	if l != nil && l.ended() {
		l = nil
	}
	if b, ok := s.backoff[p]; ok && time.Now().Before(b.until) && l == nil && s.out[p] == nil {
		s.mu.Unlock()
		s.bounce(st, b.cond, b.text)
		return nil
	}
	o := s.out[p]
	if o == nil {
		o = newOutConn(s, p)
		// One connection per domain pair: a bidirectional stream the peer
		// opened and authenticated for this pair is used before dialing.
		o.via = l
		s.out[p] = o
		s.wg.Add(1)
		go o.run()
	}
	queued := o.enqueue(st, b)
	s.mu.Unlock()
	if !queued {
		s.bounce(st, wire.ErrResourceConstraint, "too many stanzas queued for "+p.remote)
	}
	return nil
}

func (s *Service) bounce(st *wire.Stanza, cond, text string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s.router.Bounce(ctx, st, cond, text)
}

// ServeTCP accepts inbound server connections on ln until it is closed.
// With directTLS the TLS handshake comes first (XEP-0368, port 5270);
// otherwise peers must use STARTTLS (port 5269).
func (s *Service) ServeTCP(ln net.Listener, directTLS bool) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return errors.New("s2s: shut down")
	}
	s.lns[ln] = struct{}{}
	s.mu.Unlock()
	return netlimit.Serve(ln, func(c net.Conn) {
		if s.cfg.Bans.Banned(c.RemoteAddr().String()) {
			_ = c.Close()
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			_ = c.Close()
			return
		}
		release, se := s.admitInbound(c)
		if se != nil {
			s.mu.Unlock()
			s.refuse(c, directTLS, se)
			return
		}
		ic := newInConn(s, c, release)
		s.in[ic] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go ic.run(directTLS)
	})
}

// Shutdown closes listeners and every stream with <system-shutdown/>, and
// waits for the connection goroutines (or ctx).
func (s *Service) Shutdown(ctx context.Context) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	for ln := range s.lns {
		_ = ln.Close()
	}
	ins := make([]*inConn, 0, len(s.in))
	for c := range s.in {
		ins = append(ins, c)
	}
	s.mu.Unlock()
	s.cancel()
	for _, c := range ins {
		c.s.closeStream(&wire.StreamError{Condition: wire.CondSystemShutdown})
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

func (s *Service) removeIn(c *inConn) {
	s.mu.Lock()
	delete(s.in, c)
	s.mu.Unlock()
}

// domainOnly parses a domain-only JID (dialback from/to attributes).
func domainOnly(v string) (string, bool) {
	j, err := jid.Parse(v)
	if err != nil || j.Localpart() != "" || j.Resourcepart() != "" {
		return "", false
	}
	return j.Domainpart(), true
}

func domainOf(v string) (string, bool) {
	j, err := jid.Parse(v)
	if err != nil {
		return "", false
	}
	return j.Domainpart(), true
}

func newStreamID() string { return router.NewID() }

// Permitted reports whether the federation policy (BlockedDomains,
// AllowedDomains) lets this server exchange stanzas with domain. A listed
// domain covers its subdomains (rooms, upload services, …).
func (s *Service) Permitted(domain string) bool {
	domain = strings.TrimRight(strings.ToLower(domain), ".")
	if matchesDomain(domain, s.cfg.BlockedDomains) {
		return false
	}
	return len(s.cfg.AllowedDomains) == 0 || matchesDomain(domain, s.cfg.AllowedDomains)
}

func matchesDomain(d string, list []string) bool {
	for _, e := range list {
		e = strings.ToLower(e)
		if d == e || strings.HasSuffix(d, "."+e) {
			return true
		}
	}
	return false
}

var _ router.HeldRemote = (*Service)(nil)
