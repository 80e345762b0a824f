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
	"time"

	"github.com/parley-xmpp/parley/netlimit"
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

	// auth holds the authenticated domain pairs, shared with dialback
	// verification goroutines; done is closed when the stream has ended.
	auth *authSet
	done chan struct{}

	// Until a domain pair is authenticated the stream has a deadline that
	// no traffic extends (authBy) and its input is rate-limited (the
	// connection's byte budget, preauth for elements).
	authBy  time.Time
	preauth *netlimit.Bucket
	release func() // of the inbound connection limits
}

func newInConn(s *Service, c net.Conn, release func()) *inConn {
	nc := s.wrapConn(c)
	nc.SetBudget(netlimit.NewBucket(s.cfg.PreAuthBytesPerSecond, 4*s.cfg.PreAuthBytesPerSecond))
	return &inConn{svc: s, s: newStream(nc, s.cfg.Limits), auth: newAuthSet(s, "in"), done: make(chan struct{}),
		log:     s.log.With("dir", "in", "remote_addr", c.RemoteAddr().String()),
		authBy:  time.Now().Add(s.cfg.AuthTimeout),
		preauth: netlimit.NewBucket(s.cfg.PreAuthStanzasPerSecond, 4*s.cfg.PreAuthStanzasPerSecond),
		release: release}
}

func (c *inConn) run(directTLS bool) {
	defer c.svc.wg.Done()
	defer c.release()
	defer c.svc.removeIn(c)
	ctx, cancel := context.WithCancel(c.svc.ctx)
	defer cancel()
	defer c.s.endRouting()
	c.ctx = ctx
	defer c.auth.release()
	defer close(c.done)
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
	if errors.Is(err, netlimit.ErrBudget) {
		limitHits.WithLabelValues(limitPreAuthBytes).Inc()
		err = &wire.StreamError{Condition: wire.CondPolicyViolation, Text: "too much data before authentication"}
	}
	var se *wire.StreamError
	switch {
	case errors.Is(err, errAlreadyClosed):
	case err == nil, errors.Is(err, wire.ErrStreamEnd), errors.Is(err, io.EOF):
		c.s.closeStream(nil)
	case errors.As(err, &se):
		c.log.Info("stream error", "condition", se.Condition, "text", se.Text)
		countStreamError(se.Condition)
		if peerOffence(se.Condition) && c.svc.cfg.Bans.Strike(c.s.raw.RemoteAddr().String(), se.Condition) {
			c.log.Warn("peer address banned after repeated abuse", "reason", se.Condition)
		}
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
			authed := c.isAuthed()
			if authed {
				c.s.setReadDeadline(c.svc.cfg.IdleTimeout)
				c.s.raw.SetBudget(nil)
			} else {
				_ = c.s.conn.SetReadDeadline(c.authBy)
			}
			st, err := c.s.rd.Next()
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					if !authed {
						limitHits.WithLabelValues(limitAuthTimeout).Inc()
						return &wire.StreamError{Condition: wire.CondConnectionTimeout, Text: "no domain authenticated in time"}
					}
					return &wire.StreamError{Condition: wire.CondConnectionTimeout}
				}
				return err
			}
			if !authed && !c.preauth.Take(1) {
				limitHits.WithLabelValues(limitPreAuthStanzas).Inc()
				return &wire.StreamError{Condition: wire.CondPolicyViolation, Text: "too many requests before authentication"}
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

func (c *inConn) isAuthed() bool { return c.auth.any() }

func (s *Service) firstDomain() string {
	if len(s.cfg.LocalDomains) > 0 {
		return s.cfg.LocalDomains[0]
	}
	return ""
}

func (c *inConn) openStream() error {
	if c.isAuthed() {
		c.s.setReadDeadline(c.svc.preAuthTimeout())
	} else {
		_ = c.s.conn.SetReadDeadline(c.authBy)
	}
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
	if c.remote != "" && !c.svc.Permitted(c.remote) {
		policyRefusals.WithLabelValues("in").Inc()
		c.s.headerThenError(c.local, &wire.StreamError{Condition: wire.CondPolicyViolation, Text: "this server does not federate with " + c.remote})
		return errAlreadyClosed
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
	// XEP-0288 §2.1: offered once TLS is in place, before authentication.
	if c.svc.bidiEnabled() && !c.saslDone && !c.auth.any() && !c.auth.isBidi() {
		b = append(b, "<bidi xmlns='"+nsBidiFeat+"'/>"...)
	}
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
	case st.NS == nsBidi && st.Name == "bidi":
		return c.bidi()
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
	c.auth.mark(pair{local: c.local, remote: c.remote})
	c.saslDone = true
	if err := c.s.send([]byte("<success xmlns='" + nsSASL + "'/>")); err != nil {
		return err
	}
	c.log.Info("peer authenticated", "mechanism", "EXTERNAL", "remote", c.remote)
	c.s.restart()
	return errRestart
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
	return c.svc.dialbackRequest(c.ctx, c.s, c.id, c.auth, st, c.log)
}

// dbVerify answers a verification request as the authoritative server.
func (c *inConn) dbVerify(st *wire.Stanza) error { return c.svc.dialbackVerify(c.s, st) }

// bidi enables XEP-0288 on this stream: once the peer has authenticated a
// domain pair, Send may use the stream for stanzas to it.
func (c *inConn) bidi() error {
	if err := c.requireTLS(); err != nil {
		return err
	}
	if !c.svc.bidiEnabled() {
		// Not offered; a peer that asks anyway gets no bidirectional use.
		c.log.Debug("ignoring bidi request: disabled")
		return nil
	}
	c.log.Debug("peer enabled bidirectional stream")
	c.auth.setBidi(&link{s: c.s, done: c.done, log: c.log})
	return nil
}

// stanza accepts a stanza only for a domain pair authenticated on this
// stream.
func (c *inConn) stanza(st *wire.Stanza) error { return c.svc.acceptStanza(c.ctx, c.s, c.auth, st) }

// peerOffence reports whether a stream error is the peer's doing (broken
// or forbidden XML, exceeded limits, failed authentication), which counts
// toward a ban of its address (Config.Bans).
func peerOffence(cond string) bool {
	switch cond {
	case wire.CondNotWellFormed, wire.CondRestrictedXML, wire.CondPolicyViolation, wire.CondBadFormat,
		wire.CondInvalidNamespace, wire.CondUnsupportedEncoding, wire.CondUnsupportedStanzaType,
		wire.CondInvalidXML, wire.CondNotAuthorized, wire.CondInvalidFrom, wire.CondConnectionTimeout:
		return true
	}
	return false
}
