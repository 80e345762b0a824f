package s2s

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"

	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/wire"
)

// maxPendingVerifications bounds concurrent dialback checks per stream.
const maxPendingVerifications = 8

// errRestart tells the read loop that a new stream begins on the connection.
var errRestart = errors.New("stream restart")

// inConn is one inbound stream. Its goroutine (run) reads and owns the
// negotiation state; the set of authenticated domain pairs is shared with
// dialback verification goroutines under mu.
type inConn struct {
	svc *Service
	s   *stream
	id  string // our stream id (dialback keys are bound to it)
	log *slog.Logger
	ctx context.Context

	local    string // 'to' of the stream header
	remote   string // 'from' of the stream header (may be empty)
	saslDone bool

	mu      sync.Mutex
	authed  map[pair]bool
	pending map[pair]bool
	domains map[string]int // remote domains authenticated (for metrics)
}

func newInConn(s *Service, c net.Conn) *inConn {
	return &inConn{svc: s, s: newStream(c, s.cfg.Limits), authed: map[pair]bool{}, pending: map[pair]bool{},
		domains: map[string]int{},
		log:     s.log.With("dir", "in", "remote_addr", c.RemoteAddr().String())}
}

func (c *inConn) run(directTLS bool) {
	defer c.svc.wg.Done()
	defer c.svc.removeIn(c)
	ctx, cancel := context.WithCancel(c.svc.ctx)
	defer cancel()
	c.ctx = ctx
	defer func() {
		c.mu.Lock()
		for d := range c.domains {
			c.svc.stats.conn(d, "in", -1)
		}
		c.mu.Unlock()
	}()
	if c.svc.serverTLS == nil {
		c.s.headerThenError(c.svc.firstDomain(), &wire.StreamError{Condition: wire.CondInternalServerError, Text: "no certificate configured"})
		return
	}
	if directTLS {
		if err := c.s.upgrade(tls.Server(c.s.raw, c.svc.serverTLS), c.svc.cfg.ConnectTimeout); err != nil {
			c.log.Debug("TLS handshake failed", "err", err)
			c.s.close()
			return
		}
	}
	err := c.loop()
	var se *wire.StreamError
	switch {
	case errors.Is(err, errAlreadyClosed):
	case err == nil, errors.Is(err, wire.ErrStreamEnd), errors.Is(err, io.EOF):
		c.s.closeStream(nil)
	case errors.As(err, &se):
		c.log.Info("stream error", "condition", se.Condition, "text", se.Text)
		streamErrors.WithLabelValues(se.Condition).Inc()
		c.s.closeStream(se)
	default:
		c.log.Debug("inbound stream ended", "err", err)
		c.s.close()
	}
}

func (c *inConn) loop() error {
	for {
		if err := c.openStream(); err != nil {
			return err
		}
		for {
			if c.isAuthed() {
				c.s.setReadDeadline(c.svc.cfg.IdleTimeout)
			} else {
				c.s.setReadDeadline(c.svc.preAuthTimeout())
			}
			st, err := c.s.rd.Next()
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					return &wire.StreamError{Condition: wire.CondConnectionTimeout}
				}
				return err
			}
			if err := c.handle(st); err != nil {
				if err == errRestart {
					break
				}
				return err
			}
		}
	}
}

func (c *inConn) isAuthed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.authed) > 0
}

func (s *Service) firstDomain() string {
	if len(s.cfg.LocalDomains) > 0 {
		return s.cfg.LocalDomains[0]
	}
	return ""
}

func (c *inConn) openStream() error {
	c.s.setReadDeadline(c.svc.preAuthTimeout())
	h, err := c.s.rd.ReadHeader()
	if err != nil {
		if se, ok := wire.AsStreamError(err); ok {
			c.s.headerThenError(c.svc.firstDomain(), se)
			return errAlreadyClosed
		}
		return err
	}
	to := strings.ToLower(h.To)
	var se *wire.StreamError
	switch {
	case h.NS != wire.NSServer:
		se = &wire.StreamError{Condition: wire.CondInvalidNamespace, Text: "the default namespace must be jabber:server"}
	case !strings.HasPrefix(h.Version, "1."):
		se = &wire.StreamError{Condition: wire.CondUnsupportedVersion, Text: "XMPP 1.0 streams with STARTTLS are required"}
	case !c.svc.local[to]:
		se = &wire.StreamError{Condition: wire.CondHostUnknown, Text: "this server does not serve " + h.To}
	case c.local != "" && to != c.local:
		se = &wire.StreamError{Condition: wire.CondHostUnknown, Text: "the domain cannot change on stream restart"}
	}
	if se != nil {
		c.s.headerThenError(c.svc.firstDomain(), se)
		return errAlreadyClosed
	}
	c.local = to
	if h.From != "" {
		if d, ok := domainOnly(h.From); ok {
			c.remote = d
		}
	}
	c.id = newStreamID()
	return c.s.header(c.local, c.remote, c.id, c.features())
}

// errAlreadyClosed: the stream was closed with an error already.
var errAlreadyClosed = errors.New("stream already closed")

func (c *inConn) features() []byte {
	if !c.s.tls {
		return []byte("<starttls xmlns='" + nsTLS + "'><required/></starttls>")
	}
	var b []byte
	if !c.saslDone && c.remote != "" && !c.svc.local[c.remote] &&
		c.svc.peerCertValid(c.s.tlsState(), c.remote) == nil {
		b = append(b, "<mechanisms xmlns='"+nsSASL+"'><mechanism>EXTERNAL</mechanism></mechanisms>"...)
	}
	b = append(b, "<dialback xmlns='"+nsDialbackFeat+"'><errors/></dialback>"...)
	return b
}

func (c *inConn) handle(st *wire.Stanza) error {
	switch {
	case st.IsStanza():
		return c.stanza(st)
	case st.NS == nsDialback && st.Name == "result":
		return c.dbResult(st)
	case st.NS == nsDialback && st.Name == "verify":
		return c.dbVerify(st)
	case st.NS == nsTLS && st.Name == "starttls":
		return c.startTLS()
	case st.NS == nsSASL && st.Name == "auth":
		return c.saslAuth(st)
	case isStreamError(st):
		c.log.Info("peer sent stream error", "condition", streamErrorCondition(st))
		return wire.ErrStreamEnd
	}
	return &wire.StreamError{Condition: wire.CondUnsupportedStanzaType, Text: "unexpected <" + st.Name + "/> in " + st.NS}
}

func (c *inConn) requireTLS() error {
	if !c.s.tls {
		return &wire.StreamError{Condition: wire.CondPolicyViolation, Text: "use STARTTLS first"}
	}
	return nil
}

func (c *inConn) startTLS() error {
	if c.s.tls {
		_ = c.s.send([]byte("<failure xmlns='" + nsTLS + "'/>"))
		return &wire.StreamError{Condition: wire.CondPolicyViolation, Text: "TLS is already negotiated"}
	}
	if err := c.s.send([]byte("<proceed xmlns='" + nsTLS + "'/>")); err != nil {
		return err
	}
	if err := c.s.upgrade(tls.Server(c.s.raw, c.svc.serverTLS), c.svc.cfg.ConnectTimeout); err != nil {
		c.log.Debug("TLS handshake failed", "err", err)
		return err
	}
	return errRestart
}

// saslAuth implements the receiving side of XEP-0178.
func (c *inConn) saslAuth(st *wire.Stanza) error {
	if err := c.requireTLS(); err != nil {
		return err
	}
	fail := func(cond string) error {
		return c.s.send([]byte("<failure xmlns='" + nsSASL + "'><" + cond + "/></failure>"))
	}
	if c.saslDone {
		return &wire.StreamError{Condition: wire.CondPolicyViolation, Text: "already authenticated"}
	}
	if st.Attr("mechanism") != "EXTERNAL" {
		return fail("invalid-mechanism")
	}
	if c.remote == "" || c.svc.local[c.remote] || c.svc.peerCertValid(c.s.tlsState(), c.remote) != nil {
		authFailures.WithLabelValues("external").Inc()
		return fail("not-authorized")
	}
	data := strings.TrimSpace(st.Tree().Text())
	if data != "" && data != "=" {
		b, err := base64.StdEncoding.DecodeString(data)
		if err != nil {
			return fail("incorrect-encoding")
		}
		if authz, ok := domainOnly(string(b)); !ok || authz != c.remote {
			authFailures.WithLabelValues("external").Inc()
			return fail("invalid-authzid")
		}
	}
	c.markAuthed(pair{local: c.local, remote: c.remote})
	c.saslDone = true
	if err := c.s.send([]byte("<success xmlns='" + nsSASL + "'/>")); err != nil {
		return err
	}
	c.log.Info("peer authenticated", "mechanism", "EXTERNAL", "remote", c.remote)
	c.s.restart()
	return errRestart
}

func (c *inConn) markAuthed(p pair) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.authed[p] = true
	if c.domains[p.remote]++; c.domains[p.remote] == 1 {
		c.svc.stats.conn(p.remote, "in", 1)
	}
}

func dbError(name, from, to, id, typ, cond string) []byte {
	b := "<db:" + name + " from='" + wire.EscapeAttr(from) + "' to='" + wire.EscapeAttr(to) + "'"
	if id != "" {
		b += " id='" + wire.EscapeAttr(id) + "'"
	}
	b += " type='error'><error type='" + typ + "'><" + cond + " xmlns='" + wire.NSStanzas + "'/></error></db:" + name + ">"
	return []byte(b)
}

// dbResult handles an authorization request (XEP-0220 §2.2.1): the peer
// claims to be 'from' and wants to send to 'to'. We ask the authoritative
// server of 'from' whether the key is valid for our stream id.
func (c *inConn) dbResult(st *wire.Stanza) error {
	if st.Type != "" {
		// Results flow from the receiving to the initiating server, never
		// to us on an inbound stream: an unsolicited 'valid' is an attack
		// (XSF notice 2012-08-21).
		authFailures.WithLabelValues("dialback").Inc()
		return &wire.StreamError{Condition: wire.CondNotAuthorized, Text: "unsolicited dialback result"}
	}
	if err := c.requireTLS(); err != nil {
		return err
	}
	from, okFrom := domainOnly(st.From)
	to, okTo := domainOnly(st.To)
	if !okFrom || !okTo {
		return &wire.StreamError{Condition: wire.CondImproperAddressing, Text: "dialback needs from and to domains"}
	}
	if !c.svc.local[to] {
		return c.s.send(dbError("result", st.To, st.From, "", "cancel", "item-not-found"))
	}
	if c.svc.local[from] {
		authFailures.WithLabelValues("dialback").Inc()
		return &wire.StreamError{Condition: wire.CondInvalidFrom, Text: "a peer cannot authenticate as a local domain"}
	}
	p := pair{local: to, remote: from}
	key := strings.TrimSpace(st.Tree().Text())
	c.mu.Lock()
	if c.authed[p] {
		c.mu.Unlock()
		return c.s.send([]byte("<db:result from='" + wire.EscapeAttr(to) + "' to='" + wire.EscapeAttr(from) + "' type='valid'/>"))
	}
	if c.pending[p] || len(c.pending) >= maxPendingVerifications {
		c.mu.Unlock()
		return c.s.send(dbError("result", to, from, "", "wait", "policy-violation"))
	}
	c.pending[p] = true
	c.mu.Unlock()
	id := c.id
	c.svc.wg.Add(1)
	go func() {
		defer c.svc.wg.Done()
		err := c.svc.verifyKey(c.ctx, to, from, id, key)
		c.mu.Lock()
		delete(c.pending, p)
		c.mu.Unlock()
		var resp []byte
		switch {
		case err == nil:
			c.markAuthed(p)
			c.log.Info("peer authenticated", "mechanism", "dialback", "remote", from, "local", to)
			resp = []byte("<db:result from='" + wire.EscapeAttr(to) + "' to='" + wire.EscapeAttr(from) + "' type='valid'/>")
		case errors.Is(err, errDialbackInvalid):
			authFailures.WithLabelValues("dialback").Inc()
			c.log.Info("dialback key rejected by authoritative server", "remote", from)
			resp = []byte("<db:result from='" + wire.EscapeAttr(to) + "' to='" + wire.EscapeAttr(from) + "' type='invalid'/>")
		default:
			authFailures.WithLabelValues("dialback").Inc()
			c.log.Info("dialback verification failed", "remote", from, "err", err)
			resp = dbError("result", to, from, "", "cancel", "remote-server-not-found")
		}
		_ = c.s.send(resp)
	}()
	return nil
}

// dbVerify answers a verification request as the authoritative server
// (XEP-0220 §2.2.2). The key must match and we must really be waiting for
// a dialback result on a stream with that id.
func (c *inConn) dbVerify(st *wire.Stanza) error {
	if st.Type != "" {
		authFailures.WithLabelValues("dialback").Inc()
		return &wire.StreamError{Condition: condInvalidID, Text: "unsolicited dialback verification"}
	}
	// Answering needs no TLS: the answer only says whether an HMAC over
	// public values matches (XEP-0220 allows bare verification streams).
	from, okFrom := domainOnly(st.From)
	to, okTo := domainOnly(st.To)
	if !okFrom || !okTo || st.ID == "" {
		return &wire.StreamError{Condition: wire.CondImproperAddressing, Text: "dialback needs from, to and id"}
	}
	if !c.svc.local[to] {
		return c.s.send(dbError("verify", st.To, st.From, st.ID, "cancel", "item-not-found"))
	}
	key := strings.TrimSpace(st.Tree().Text())
	typ := "invalid"
	if c.svc.checkKey(from, to, st.ID, key) && c.svc.isPending(to, from, st.ID) {
		typ = "valid"
	}
	return c.s.send([]byte("<db:verify from='" + wire.EscapeAttr(to) + "' to='" + wire.EscapeAttr(from) +
		"' id='" + wire.EscapeAttr(st.ID) + "' type='" + typ + "'/>"))
}

// stanza accepts a stanza only for a domain pair authenticated on this
// stream (RFC 6120 §13.9, XEP-0220 §4.3).
func (c *inConn) stanza(st *wire.Stanza) error {
	c.mu.Lock()
	n := len(c.authed)
	c.mu.Unlock()
	if n == 0 {
		return &wire.StreamError{Condition: wire.CondNotAuthorized, Text: "authenticate first"}
	}
	if st.From == "" || st.To == "" {
		return &wire.StreamError{Condition: wire.CondImproperAddressing, Text: "stanzas between servers need from and to"}
	}
	fromDom, ok := domainOf(st.From)
	if !ok {
		return &wire.StreamError{Condition: wire.CondInvalidFrom, Text: "malformed from address"}
	}
	toDom, ok := domainOf(st.To)
	if !ok || !c.svc.local[toDom] {
		return &wire.StreamError{Condition: wire.CondHostUnknown, Text: "this server does not serve " + st.To}
	}
	c.mu.Lock()
	ok = c.authed[pair{local: toDom, remote: fromDom}]
	c.mu.Unlock()
	if !ok {
		return &wire.StreamError{Condition: wire.CondInvalidFrom, Text: fromDom + " is not authenticated on this stream"}
	}
	c.svc.stats.in(fromDom)
	_ = c.svc.router.Route(c.ctx, st, module.Origin{Kind: module.FromServer})
	return nil
}
